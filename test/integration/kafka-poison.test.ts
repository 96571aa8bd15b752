// A record the store refuses, or one whose processing throws something unexpected, must not stall
// its partition: it is dead-lettered with its reason, the good records around it are stored and
// the partition's offsets move past it.
import { rmSync } from "node:fs";
import { afterAll, describe, expect, inject, it } from "vitest";
import { openStore, Table, type Store } from "../../services/store/index.ts";
import { createProcessor, type Processor } from "../../services/processor/index.ts";
import {
  createKafka,
  ensureTopics,
  startKafkaProcessor,
  DeadLetterHeader,
  type KafkaConfig,
  type KafkaProcessor,
} from "../../services/kafka/index.ts";
import type { DataAccessEvent } from "../../services/codec/index.ts";
import { collect, PHONE, pipeline2019, pseudo, SECURITY } from "../unit/helpers.ts";
import { core, kafkaForTest, randomDatabase, tempDir, waitFor } from "./helpers.ts";

const dir = tempDir("lineage-poison-");
const { taxonomy, policy, codec } = core();
const running: KafkaProcessor[] = [];
const opened: Store[] = [];
afterAll(async () => {
  for (const p of running) await p.close().catch(() => undefined);
  for (const s of opened) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function storeFor(database: string): Promise<Store> {
  const s = await openStore({ path: dir, database });
  await s.migrate();
  opened.push(s);
  return s;
}

async function produce(config: KafkaConfig, events: DataAccessEvent[]): Promise<void> {
  const producer = createKafka(config).producer();
  await producer.connect();
  await producer.send({ topic: config.topics?.events ?? "", messages: events.map((e) => ({ value: Buffer.from(codec.encode(e)) })) });
  await producer.disconnect();
}

async function committedToEnd(config: KafkaConfig, group: string): Promise<boolean> {
  const admin = createKafka(config).admin();
  await admin.connect();
  try {
    const topic = config.topics?.events ?? "";
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    return ends.every((e) => committed?.partitions.find((p) => p.partition === e.partition)?.offset === e.high);
  } finally {
    await admin.disconnect();
  }
}

async function deadLetterTopic(config: KafkaConfig, count: number): Promise<Record<string, string>[]> {
  const consumer = createKafka(config).consumer({ groupId: `dlq-${config.clientId}-${Math.random()}` });
  await consumer.connect();
  await consumer.subscribe({ topic: config.topics?.deadLetters ?? "", fromBeginning: true });
  const headers: Record<string, string>[] = [];
  await consumer.run({
    eachMessage: async ({ message }) => {
      headers.push(Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])));
    },
  });
  await waitFor(async () => headers.length >= count, 30_000, `${count} dead letter(s) on the topic`);
  await consumer.disconnect();
  return headers;
}

const storedIds = async (s: Store) =>
  (await s.query<{ event_id: string }>(`SELECT DISTINCT event_id FROM ${s.database}.${Table.events}`)).map((r) => r.event_id).sort();

describe("a poison record on Kafka", () => {
  it("dead-letters the record the store refuses with ClickHouse's error code, stores the good records and moves the partition on", async () => {
    const config = kafkaForTest(inject, 1);
    await ensureTopics(createKafka(config), config);
    const s = await storeFor(randomDatabase("poison"));
    // A constraint makes the real store refuse one record for what it holds (VIOLATED_CONSTRAINT).
    await s.query(`ALTER TABLE ${s.database}.${Table.events} ADD CONSTRAINT no_poison CHECK service != 'poison-service'`);
    const group = `g-${config.clientId}`;
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: s });
    running.push(
      await startKafkaProcessor(config, { instanceId: "a", groupId: group }, { processor, codec, store: s, log: () => undefined }),
    );

    const p = pipeline2019();
    const poison = collect("other", { phone: [PHONE] }, [SECURITY], { service: "poison-service", subjects: [pseudo(7)] });
    const good = [p.collect, p.copy, p.join, p.hash];
    await produce(config, [good[0], good[1], poison, good[2], good[3]] as DataAccessEvent[]);

    await waitFor(() => committedToEnd(config, group), 60_000, "the partition's offsets to move past the poison record");
    expect(await storedIds(s)).toEqual(good.map((e) => e.eventId).sort());
    const letters = await s.query<{ source: string; error_code: string; reason: string }>(
      `SELECT source, error_code, reason FROM ${s.database}.${Table.deadLetters}`,
    );
    expect(letters).toEqual([
      {
        source: `${config.topics.events}/0/2`,
        error_code: "STORE",
        reason: expect.stringContaining("ClickHouse error 469 (VIOLATED_CONSTRAINT)"),
      },
    ]);
    // ClickHouse's own text quotes the row; the reason does not.
    expect(letters[0]?.reason).not.toContain("poison-service");
    const [letter] = await deadLetterTopic(config, 1);
    expect(letter?.[DeadLetterHeader.offset]).toBe("2");
    expect(letter?.[DeadLetterHeader.code]).toBe("STORE");
  });

  it("sets aside a message whose processing throws an unexpected error, instead of restarting on the same batch forever", async () => {
    const config = kafkaForTest(inject, 1);
    await ensureTopics(createKafka(config), config);
    const s = await storeFor(randomDatabase("bug"));
    const group = `g-${config.clientId}`;
    const real = createProcessor({ policy, taxonomy, codec }, { sink: s });
    const p = pipeline2019();
    const trigger = Buffer.from(codec.encode(p.join));
    // A bug that strikes one message: a TypeError, not one of the project's errors.
    const buggy: Processor = {
      ...real,
      auditor: real.auditor,
      stats: real.stats,
      processMessages: (messages) =>
        messages.some((m) => Buffer.from(m.bytes).equals(trigger))
          ? Promise.reject(new TypeError("Cannot read properties of undefined (reading 'x')"))
          : real.processMessages(messages),
      processEvents: (events) => real.processEvents(events),
      learn: (facts) => real.learn(facts),
      restore: (facts, uses) => real.restore(facts, uses),
    };
    running.push(
      await startKafkaProcessor(config, { instanceId: "a", groupId: group }, { processor: buggy, codec, store: s, log: () => undefined }),
    );
    await produce(config, [p.collect, p.copy, p.join, p.hash]);

    await waitFor(() => committedToEnd(config, group), 60_000, "the partition's offsets to move past the message");
    expect(await storedIds(s)).toEqual([p.collect, p.copy, p.hash].map((e) => e.eventId).sort());
    const letters = await s.query<{ source: string; error_code: string; reason: string; redacted: number }>(
      `SELECT source, error_code, reason, redacted FROM ${s.database}.${Table.deadLetters}`,
    );
    expect(letters).toEqual([
      {
        source: `${config.topics.events}/0/2`,
        error_code: "INTERNAL",
        reason: "processing the message failed (TypeError); it was set aside",
        redacted: 1,
      },
    ]);
  });
});
