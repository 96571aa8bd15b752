// Hostile messages on the real Kafka broker: the array-length bomb and a raw identifier are
// dead-lettered without their bytes, the partition moves on, and a redaction scan of the
// dead-letter topic and of dead_letters_v1 finds no raw e-mail or phone bytes. A compressed batch
// that would decompress past the limit does not stop its partition: its records are dead-lettered.
import { rmSync } from "node:fs";
import kafkajs from "kafkajs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { openStore, Table, type Store } from "../../services/store/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import { startKafkaProcessor, DeadLetterHeader, createKafka, type KafkaProcessor } from "../../services/kafka/index.ts";
import type { DataAccessEvent } from "../../services/codec/index.ts";
import { arrayLengthBomb } from "../unit/codec/hostile.ts";
import { core, kafkaForTest, randomDatabase, tempDir, waitFor } from "./helpers.ts";

const dir = tempDir("lineage-kafka-hostile-");
const { taxonomy, policy, codec } = core();
let store: Store;
const running: KafkaProcessor[] = [];
const EMAIL = "alice@example.com";
const PHONE = "+15555550123";
const MB = 1024 * 1024;

beforeAll(async () => {
  store = await openStore({ path: dir, database: randomDatabase("khostile") });
  await store.migrate();
});
afterAll(async () => {
  for (const p of running) await p.close().catch(() => undefined);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function event(eventId: string, overrides: Partial<DataAccessEvent> = {}): DataAccessEvent {
  return {
    eventId,
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
    subjects: ["0123456789abcdef0123456789abcdef"],
    recipient: null,
    traceparent: null,
    pseudonymKeyId: "default",
    attributes: {},
    ...overrides,
  };
}

describe("hostile messages on Kafka", () => {
  it("dead-letters the bomb and raw identifiers without their bytes or keys, stores the good ones, and no raw e-mail or phone reaches the dead-letter topic or table", async () => {
    const config = kafkaForTest(inject, 1);
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
    const before = process.memoryUsage().rss;
    running.push(await startKafkaProcessor(config, { instanceId: "a", groupId: `g-${config.clientId}` }, { processor, codec, store }));

    const messages = [
      { key: "warehouse/security.two_factor", value: Buffer.from(codec.encode(event("k-good-1"))) },
      { key: "bomb", value: arrayLengthBomb(codec) },
      { key: EMAIL, value: Buffer.concat([Buffer.from(codec.encode(event("k-raw", { subjects: [EMAIL] }))), Buffer.from([0])]) },
      { key: PHONE, value: Buffer.from(codec.encode(event("k-phone", { subjects: [PHONE] }))) },
      { key: "warehouse/security.two_factor", value: Buffer.from(codec.encode(event("k-far", { occurredAt: 2 ** 52 - 1 }))) },
      { key: "warehouse/security.two_factor", value: Buffer.from(codec.encode(event("k-good-2"))) },
    ];
    const kafka = createKafka(config);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: config.topics.events, messages });
    await producer.disconnect();

    const storedIds = async () =>
      (await store.query<{ event_id: string }>(`SELECT event_id FROM ${store.database}.${Table.events} ORDER BY event_id`)).map(
        (r) => r.event_id,
      );
    await waitFor(async () => (await storedIds()).length === 2, 60_000, "the two good events stored");
    expect(await storedIds()).toEqual(["k-good-1", "k-good-2"]);
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * MB);

    const dlq = kafka.consumer({ groupId: `dlq-${config.clientId}` });
    await dlq.connect();
    await dlq.subscribe({ topic: config.topics.deadLetters, fromBeginning: true });
    const letters: { key: Buffer | null; value: Buffer | null; headers: Record<string, string> }[] = [];
    await dlq.run({
      eachMessage: async ({ message }) => {
        letters.push({
          key: message.key,
          value: message.value,
          headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
        });
      },
    });
    await waitFor(async () => letters.length >= 4, 30_000, "four dead letters");
    await dlq.disconnect();

    const byOffset = letters.sort((a, b) => Number(a.headers[DeadLetterHeader.offset]) - Number(b.headers[DeadLetterHeader.offset]));
    expect(byOffset.map((l) => [l.headers[DeadLetterHeader.offset], l.headers[DeadLetterHeader.redacted] ?? "", l.value === null])).toEqual(
      [
        ["1", "true", true],
        ["2", "true", true],
        ["3", "true", true],
        ["4", "", false],
      ],
    );
    expect(byOffset[0]?.headers[DeadLetterHeader.reason]).toBe(
      "message field 'inputs' claims 268435456 items, over the limit of 100000 per message",
    );
    // Redaction scan of the topic: keys, values and headers.
    for (const l of byOffset) {
      const everything = Buffer.concat([
        l.key ?? Buffer.alloc(0),
        l.value ?? Buffer.alloc(0),
        Buffer.from(JSON.stringify(l.headers)),
      ]).toString("latin1");
      expect(everything).not.toContain("example.com");
      expect(everything).not.toContain("5555550123");
    }
    // …and of the table.
    const rows = await store.query<Record<string, unknown>>(`SELECT * FROM ${store.database}.${Table.deadLetters}`);
    expect(rows).toHaveLength(4);
    for (const r of rows) {
      const everything = `${JSON.stringify(r)}${Buffer.from(String(r["payload_base64"]), "base64").toString("latin1")}`;
      expect(everything).not.toContain("example.com");
      expect(everything).not.toContain("5555550123");
    }
  });

  it("dead-letters every record of a compressed batch that would decompress past 128 MiB, and its partition moves on", async () => {
    const config = kafkaForTest(inject, 1);
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
    running.push(await startKafkaProcessor(config, { instanceId: "b", groupId: `g-${config.clientId}` }, { processor, codec, store }));
    const kafka = createKafka(config);
    const producer = kafka.producer();
    await producer.connect();
    // 1,100 records of 128 KiB of zeros: 137.5 MiB in one gzip batch of about 140 KB, which the
    // broker takes (its limit is on the compressed batch); then a good event, uncompressed.
    const zeros = Buffer.alloc(128 * 1024);
    await producer.send({
      topic: config.topics.events,
      compression: kafkajs.CompressionTypes.GZIP,
      messages: Array.from({ length: 1100 }, () => ({ value: zeros })),
    });
    await producer.send({ topic: config.topics.events, messages: [{ value: Buffer.from(codec.encode(event("k-after-bomb"))) }] });
    await producer.disconnect();

    await waitFor(
      async () => (await store.query(`SELECT 1 FROM ${store.database}.${Table.events} WHERE event_id = 'k-after-bomb'`)).length === 1,
      90_000,
      "the event after the refused batch stored",
    );
    const letters = await store.query<{ n: string; offsets: string; reasons: string[] }>(
      `SELECT toString(count()) AS n, toString(max(toUInt64(splitByChar('/', source)[3])) - min(toUInt64(splitByChar('/', source)[3])) + 1) AS offsets,
              groupUniqArray(reason) AS reasons
       FROM ${store.database}.${Table.deadLetters} WHERE startsWith(source, {prefix:String})`,
      { prefix: `${config.topics.events}/` },
    );
    expect(letters[0]).toEqual({
      n: "1100",
      offsets: "1100",
      reasons: [
        "a gzip record batch would decompress past 128 MiB; batches are taken up to 128 MiB; its records were dead-lettered unread",
      ],
    });
  }, 180_000);
});
