// The Kafka path against a real Apache Kafka broker (infra/kafka, started by test/kafka-setup.ts):
// services emit onto the broker, processors consume as a group, store into chDB.
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { openStore, affectedSummary, Table, type Store } from "../../services/store/index.ts";
import { createProcessor, type AuditSink } from "../../services/processor/index.ts";
import { StoreError } from "../../services/errors/index.ts";
import { createEmitter } from "../../services/emitter/index.ts";
import { emptyGroundTruth, generateScenario, SCENARIO_RULE } from "../../services/demo/index.ts";
import {
  createKafkaTransport,
  startKafkaProcessor,
  DeadLetterHeader,
  createKafka,
  ensureTopics,
  type KafkaProcessor,
  type KafkaConfig,
} from "../../services/kafka/index.ts";
import { core, HMAC_KEY, kafkaForTest, randomDatabase, tempDir, waitFor } from "./helpers.ts";

const dir = tempDir("lineage-kafka-");
const { taxonomy, policy, codec } = core();
let store: Store;
const running: KafkaProcessor[] = [];

beforeAll(async () => {
  store = await openStore({ path: dir, database: "kafka_tests" });
  await store.migrate();
});
afterAll(async () => {
  for (const p of running) await p.close().catch(() => undefined);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function storeFor(database: string): Promise<Store> {
  // One chDB session per process: every database of this file shares it.
  const s = await openStore({ path: dir, database });
  await s.migrate();
  return s;
}

async function startInstance(config: KafkaConfig, s: Store, instanceId: string, groupId: string) {
  const processor = createProcessor({ policy, taxonomy, codec }, { sink: s });
  const p = await startKafkaProcessor(config, { instanceId, groupId }, { processor, codec, store: s });
  running.push(p);
  return { processor, kafka: p };
}

const storedEvents = async (s: Store) =>
  Number((await s.query<{ n: string }>(`SELECT uniqExact(event_id) AS n FROM ${s.database}.${Table.events}`))[0]?.n);

describe("Kafka end to end", () => {
  it("creates its topics with a leader for every partition, even while other instances create theirs", async () => {
    // A KRaft broker answers "does not host this topic-partition" for a moment after a topic is
    // created; several instances starting at once on a new cluster met it (KafkaJS gave up there).
    const configs = Array.from({ length: 24 }, () => kafkaForTest(inject));
    const results = await Promise.allSettled(configs.map((c) => ensureTopics(createKafka(c), c)));
    expect(results.filter((r) => r.status === "rejected").map((r) => String(r.reason))).toEqual([]);
    const admin = createKafka(configs[0]!).admin();
    await admin.connect();
    try {
      const names = configs.flatMap((c) => [c.topics.events, c.topics.deadLetters, c.topics.lineage]);
      const { topics } = await admin.fetchTopicMetadata({ topics: names });
      expect(topics.filter((t) => t.partitions.some((p) => p.leader < 0)).map((t) => t.name)).toEqual([]);
      expect(topics).toHaveLength(names.length);
    } finally {
      await admin.disconnect();
    }
  });

  it("emits onto a real broker; a processor group stores every event and the affected count equals the ground truth", async () => {
    const config = kafkaForTest(inject);
    const s = await storeFor(randomDatabase("k1"));
    const { kafka } = await startInstance(config, s, "a", `g-${config.clientId}`);
    const truth = emptyGroundTruth();
    const emitter = createEmitter(
      { transport: createKafkaTransport(config), pseudonymKey: HMAC_KEY, maxBatch: 8000, lingerMs: 5 },
      { codec },
    );
    for (const input of generateScenario({ users: 2000, seed: 21 }, truth)) await emitter.emit(input);
    await emitter.close();
    // Every event row stored, and every batch written whole (its violations come after its event rows).
    await waitFor(
      async () => (await storedEvents(s)) === truth.events && kafka.lag().every((l) => l.lag === 0),
      90_000,
      "all events stored",
    );
    const summary = await affectedSummary(s, { ruleId: SCENARIO_RULE });
    expect(summary.subjects).toBe(truth.affectedUsers);
    expect(summary.records).toBe(truth.affectedRecords);
    expect(summary.violationEvents).toBe(truth.violatingEvents);
    expect(summary.externalShares.carryingViolatedData).toBe(truth.externalSharesOfViolatedData);
  });

  it("sends each kind of bad message to the dead-letter topic with its bytes, source and reason, and goes on", async () => {
    const config = kafkaForTest(inject, 1);
    const s = await storeFor(randomDatabase("k2"));
    await startInstance(config, s, "a", `g-${config.clientId}`);
    const good = (id: string, subjects: string[]) =>
      codec.encode({
        eventId: id,
        kind: "COLLECT",
        occurredAt: Date.parse("2019-04-01T00:00:00Z"),
        service: "auth-service",
        job: { namespace: "web", name: "2fa-enrolment" },
        runId: "r",
        inputs: [],
        outputs: [
          {
            namespace: "warehouse",
            name: "security.two_factor",
            fields: [{ name: "phone_number", categories: ["user.contact.phone_number"] }],
          },
        ],
        transform: "OTHER",
        fieldLineage: [],
        masking: "NONE",
        purposes: ["essential.service.security"],
        dataSubject: "customer",
        subjects,
        recipient: null,
        traceparent: null,
        pseudonymKeyId: "default",
        attributes: {},
      });
    const unknownFingerprint = Buffer.from(good("x", []));
    unknownFingerprint.writeBigUInt64LE(42n, 2);
    const badPurpose = codec.encode({ ...codec.decode(good("bad-purpose", [])).event, purposes: ["marketting"] });
    const messages = [
      { key: "a", value: Buffer.from("garbage, not avro") },
      { key: "b", value: unknownFingerprint },
      { key: "c", value: Buffer.from(good("raw-id", ["alice@example.com"])) },
      { key: "d", value: Buffer.from(badPurpose) },
      { key: "e", value: Buffer.from(good("fine", ["0123456789abcdef0123456789abcdef"])) },
      { key: "f", value: Buffer.concat([Buffer.from([0, 0, 0, 0, 99]), Buffer.from(good("confluent", [])).subarray(10)]) },
    ];
    const kafka = createKafka(config);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: config.topics.events, messages });
    await producer.disconnect();
    await waitFor(async () => (await storedEvents(s)) === 1, 60_000, "the good event stored");

    const dlq = kafka.consumer({ groupId: `dlq-${config.clientId}` });
    await dlq.connect();
    await dlq.subscribe({ topic: config.topics.deadLetters, fromBeginning: true });
    const letters: { value: Buffer | null; headers: Record<string, string> }[] = [];
    await dlq.run({
      eachMessage: async ({ message }) => {
        letters.push({
          value: message.value,
          headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
        });
      },
    });
    await waitFor(async () => letters.length >= 5, 30_000, "five dead letters");
    await dlq.disconnect();
    const byKey = letters.sort((a, b) => Number(a.headers[DeadLetterHeader.offset]) - Number(b.headers[DeadLetterHeader.offset]));
    expect(byKey.map((l) => [l.headers[DeadLetterHeader.offset], l.headers[DeadLetterHeader.code]])).toEqual([
      ["0", "SCHEMA"],
      ["1", "SCHEMA"],
      ["2", "INPUT"],
      ["3", "INPUT"],
      ["5", "SCHEMA"],
    ]);
    expect(byKey[4]?.headers[DeadLetterHeader.reason]).toBe("message names unknown registry schema id 99");
    expect(byKey[4]?.value).toBeNull();
    expect(
      byKey.every((l) => l.headers[DeadLetterHeader.topic] === config.topics.events && l.headers[DeadLetterHeader.partition] === "0"),
    ).toBe(true);
    // Bytes that did not decode may hold anything: withheld (length and SHA-256 only in the store).
    expect(byKey[0]?.value).toBeNull();
    expect(byKey[0]?.headers[DeadLetterHeader.redacted]).toBe("true");
    expect(byKey[1]?.headers[DeadLetterHeader.reason]).toMatch(/unknown schema \(fingerprint 000000000000002a\)/);
    expect(byKey[1]?.value).toBeNull();
    // The message with a raw identifier is dead-lettered without its bytes.
    expect(byKey[2]?.headers[DeadLetterHeader.redacted]).toBe("true");
    expect(byKey[2]?.value).toBeNull();
    expect(JSON.stringify(byKey)).not.toContain("alice@example.com");
    expect(byKey[3]?.headers[DeadLetterHeader.reason]).toMatch(/'purposes\[0\]' is not a fideslang data use \('marketting'\)/);
  });

  it("holds the partition while the store fails and stores every event once it recovers", async () => {
    const config = kafkaForTest(inject, 2);
    const s = await storeFor(randomDatabase("k4"));
    let failures = 0;
    const flaky: AuditSink = {
      async write(batch) {
        if (failures < 3) {
          failures++;
          throw new StoreError("the store is down (simulated)", { retriable: true });
        }
        await s.write(batch);
      },
    };
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: flaky });
    const p = await startKafkaProcessor(
      config,
      { instanceId: "a", groupId: `g-${config.clientId}`, retryBackoffMs: 50 },
      { processor, codec, store: s },
    );
    running.push(p);
    const truth = emptyGroundTruth();
    const emitter = createEmitter(
      { transport: createKafkaTransport(config), pseudonymKey: HMAC_KEY, maxBatch: 500, lingerMs: 5 },
      { codec },
    );
    for (const input of generateScenario({ users: 300, seed: 3 }, truth)) await emitter.emit(input);
    await emitter.close();
    await waitFor(async () => (await storedEvents(s)) === truth.events, 60_000, "all events stored after the outage");
    expect(failures).toBe(3);
    const [row] = await s.query<{ n: string }>(`SELECT count() AS n FROM ${s.database}.${Table.events} FINAL`);
    expect(Number(row?.n)).toBe(truth.events);
    expect((await affectedSummary(s, { ruleId: SCENARIO_RULE })).subjects).toBe(truth.affectedUsers);
  });

  it("shares lineage across two instances of one group, and one takes over when the other stops", async () => {
    const config = kafkaForTest(inject, 4);
    const s = await storeFor(randomDatabase("k3"));
    const group = `g-${config.clientId}`;
    const a = await startInstance(config, s, "a", group);
    const b = await startInstance(config, s, "b", group);
    const truth = emptyGroundTruth();
    const all = [...generateScenario({ users: 1500, seed: 5 }, truth)];
    const half = Math.floor(all.length / 2);
    const emitter = createEmitter(
      { transport: createKafkaTransport(config), pseudonymKey: HMAC_KEY, maxBatch: 500, lingerMs: 5 },
      { codec },
    );
    for (const input of all.slice(0, half)) await emitter.emit(input);
    await emitter.flush();
    await waitFor(async () => (await storedEvents(s)) === half, 90_000, "first half stored");
    // Both instances took part: each learned facts the other processed.
    expect(a.processor.stats.events).toBeGreaterThan(0);
    expect(b.processor.stats.events).toBeGreaterThan(0);
    expect(a.processor.stats.events + b.processor.stats.events).toBeGreaterThanOrEqual(half);
    expect(a.kafka.factsLearned).toBeGreaterThan(0);
    expect(b.kafka.factsLearned).toBeGreaterThan(0);

    await a.kafka.close();
    const aAtStop = a.processor.stats.events;
    running.splice(running.indexOf(a.kafka), 1);
    for (const input of all.slice(half)) await emitter.emit(input);
    await emitter.close();
    await waitFor(async () => (await storedEvents(s)) === truth.events, 120_000, "second half stored by the remaining instance");
    // The stopped instance took nothing more: the remaining one consumed every partition.
    expect(a.processor.stats.events).toBe(aAtStop);
    const summary = await affectedSummary(s, { ruleId: SCENARIO_RULE });
    expect(summary.subjects).toBe(truth.affectedUsers);
    expect(summary.violationEvents).toBe(truth.violatingEvents);
  });
});
