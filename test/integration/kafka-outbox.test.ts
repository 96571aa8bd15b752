// Lineage facts reach the shared lineage topic whatever happens between storing a batch and
// publishing its facts: a producer that fails, a process killed in between. Another instance,
// which learns lineage only from the topic, ends with the complete graph.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { afterAll, describe, expect, inject, it } from "vitest";
import { openStore, Table, type Store } from "../../services/store/index.ts";
import { createProcessor, type Processor } from "../../services/processor/index.ts";
import { createKafka, ensureTopics, startKafkaProcessor, type KafkaConfig, type KafkaProcessor } from "../../services/kafka/index.ts";
import type { DataAccessEvent } from "../../services/codec/index.ts";
import { ADS, pipeline2019, pseudo, read, use } from "../unit/helpers.ts";
import { core, kafkaForTest, randomDatabase, tempDir, waitFor } from "./helpers.ts";

const dir = tempDir("lineage-outbox-");
const { taxonomy, policy, codec } = core();
const running: KafkaProcessor[] = [];
const children = new Set<ChildProcess>();
const opened: Store[] = [];

afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  for (const p of running) await p.close().catch(() => undefined);
  for (const s of opened) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

// chDB takes one data directory per process, and a directory one process at a time: the killed
// child uses `dir` first, and this process opens it only after the child is dead.
async function storeFor(database: string): Promise<Store> {
  const s = await openStore({ path: dir, database });
  await s.migrate();
  opened.push(s);
  return s;
}

async function produce(config: KafkaConfig, events: DataAccessEvent[]): Promise<void> {
  const producer = createKafka(config).producer();
  await producer.connect();
  await producer.send({
    topic: config.topics?.events ?? "",
    messages: events.map((e) => ({ key: e.eventId, value: Buffer.from(codec.encode(e)) })),
  });
  await producer.disconnect();
}

const storedFactKeys = async (s: Store) =>
  (await s.query<{ fact_key: string }>(`SELECT DISTINCT fact_key FROM ${s.database}.${Table.facts}`)).map((r) => r.fact_key).sort();

/**
 * A second instance that learns lineage only from the topic (its own events topic is empty, its
 * store is its own): once it has learned every fact, a use of the hashed phone violates both rules.
 */
async function secondInstance(config: KafkaConfig, facts: number): Promise<{ processor: Processor; kafka: KafkaProcessor }> {
  const s = await storeFor(randomDatabase("second"));
  const own = { ...config, topics: { ...config.topics, events: `${config.topics?.events}.second` } } as KafkaConfig;
  const processor = createProcessor({ policy, taxonomy, codec }, { sink: s });
  const kafka = await startKafkaProcessor(
    own,
    { instanceId: "second", groupId: `second-${config.clientId}` },
    { processor, codec, store: s },
  );
  running.push(kafka);
  await waitFor(async () => kafka.factsLearned >= facts, 60_000, `the second instance to learn ${facts} facts`);
  return { processor, kafka };
}

async function judgesTheUse(processor: Processor): Promise<number> {
  const u = use([read("ads.matching_keys", "phone_sha256")], [ADS], { subjects: [pseudo(1)] });
  return (await processor.processMessages([{ bytes: codec.encode(u), source: "check" }])).violations;
}

describe("lineage outbox", () => {
  it("publishes on restart the facts a processor stored before it was SIGKILLed, and a second instance learns the complete graph", async () => {
    const config = kafkaForTest(inject, 1);
    const database = randomDatabase("kill");
    const group = `g-${config.clientId}`;
    await ensureTopics(createKafka(config), config);
    const child = spawn(process.execPath, ["--import", "tsx", new URL("./kafka-outbox-child.ts", import.meta.url).pathname], {
      env: {
        PATH: process.env["PATH"] ?? "",
        KAFKAJS_NO_PARTITIONER_WARNING: "1",
        STORE_PATH: dir,
        DATABASE: database,
        BROKERS: config.brokers.join(","),
        GROUP: group,
        TOPIC_EVENTS: config.topics.events,
        TOPIC_DLQ: config.topics.deadLetters,
        TOPIC_LINEAGE: config.topics.lineage,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    let out = "";
    let err = "";
    child.stderr?.on("data", (c: Buffer) => (err += c.toString()));
    const said = (text: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => out.includes(text) && resolve();
        child.stdout?.on("data", (c: Buffer) => {
          out += c.toString();
          check();
        });
        check();
        child.once("exit", (code) => reject(new Error(`child exited (${code}): ${err.slice(-800)}`)));
      });
    await said("consuming");
    const p = pipeline2019();
    await produce(config, [p.collect, p.copy, p.join, p.hash]);
    await said("stored 4 facts");
    child.kill("SIGKILL");
    await once(child, "exit");
    children.delete(child);

    // Restarted on the same store: the facts are stored, and nothing marks them published.
    const s = await storeFor(database);
    expect(await storedFactKeys(s)).toHaveLength(4);
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: s });
    await processor.restore(s.lineageFacts());
    running.push(await startKafkaProcessor(config, { instanceId: "a", groupId: group }, { processor, codec, store: s }));

    const second = await secondInstance(config, 4);
    expect(second.kafka.factsLearned).toBe(4);
    expect(await judgesTheUse(second.processor)).toBe(2);
  });

  it("publishes the facts of a stored batch after the producer failed to, and a second instance learns the complete graph", async () => {
    const config = kafkaForTest(inject, 1);
    const s = await storeFor(randomDatabase("pf"));
    const kafka = createKafka(config);
    await ensureTopics(kafka, config);
    const real = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await real.connect();
    let broken = true;
    let refused = 0;
    const producer = {
      ...real,
      async send(record: Parameters<typeof real.send>[0]) {
        if (broken && record.topic === config.topics.lineage) {
          refused++;
          throw new Error("the broker refused the lineage facts (simulated)");
        }
        return real.send(record);
      },
    };
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: s });
    const lines: string[] = [];
    running.push(
      await startKafkaProcessor(
        config,
        { instanceId: "a", groupId: `g-${config.clientId}`, outboxIntervalMs: 200 },
        { processor, codec, store: s, producer, log: (line) => lines.push(line) },
      ),
    );
    const p = pipeline2019();
    await produce(config, [p.collect, p.copy, p.join, p.hash]);
    await waitFor(async () => (await storedFactKeys(s)).length === 4, 60_000, "the four facts stored");
    await waitFor(async () => refused > 1, 30_000, "the outbox to try again");
    expect(lines.some((l) => l.includes("stay in the outbox"))).toBe(true);

    broken = false;
    const second = await secondInstance(config, 4);
    expect(second.kafka.factsLearned).toBe(4);
    expect(await judgesTheUse(second.processor)).toBe(2);
    await real.disconnect();
  });
});
