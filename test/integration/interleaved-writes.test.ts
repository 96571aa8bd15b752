// HTTP and Kafka feed one processor. A Kafka batch's write fails while an HTTP batch is being
// written; the HTTP write then succeeds. The rows of the failed batch that exist only once (its
// lineage facts, labels, violation paths) must still reach the store.
import { rmSync } from "node:fs";
import { afterAll, describe, expect, inject, it } from "vitest";
import { openStore, Table, type Store } from "../../services/store/index.ts";
import { createProcessor, type AuditSink, type Processor } from "../../services/processor/index.ts";
import { StoreError } from "../../services/errors/index.ts";
import { startIngestServer } from "../../services/api/index.ts";
import { EVENT_BATCH_MEDIA_TYPE, frameBatch } from "../../services/codec/index.ts";
import { createKafka, ensureTopics, startKafkaProcessor, type KafkaProcessor } from "../../services/kafka/index.ts";
import { ADS, collect, EMAIL, pipeline2019, pseudo, read, SECURITY, use } from "../unit/helpers.ts";
import { core, kafkaForTest, randomDatabase, tempDir, waitFor } from "./helpers.ts";

const dir = tempDir("lineage-interleaved-");
const { taxonomy, policy, codec } = core();
const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

// Distinct keys: a retried write stores some rows twice until ReplacingMergeTree merges them.
const count = async (s: Store, table: string, key: string) =>
  Number((await s.query<{ n: string }>(`SELECT uniqExact(${key}) AS n FROM ${s.database}.${table}`))[0]?.n);

describe("writes from HTTP and Kafka interleaved with a failure", () => {
  it("stores the facts, labels and paths of a failed Kafka batch when an HTTP batch's write succeeds meanwhile", async () => {
    const s = await openStore({ path: dir, database: randomDatabase("mix") });
    await s.migrate();
    closers.push(() => s.close());

    // The first write (Kafka's) waits until HTTP's batch is in, then fails; the next write
    // (HTTP's) completes only after that failure.
    let releaseFirst!: () => void;
    const firstMayFail = new Promise<void>((resolve) => (releaseFirst = resolve));
    let firstEntered!: () => void;
    const entered = new Promise<void>((resolve) => (firstEntered = resolve));
    let firstFailed!: () => void;
    const failed = new Promise<void>((resolve) => (firstFailed = resolve));
    let writes = 0;
    const sink: AuditSink = {
      async write(batch) {
        if (writes++ === 0) {
          firstEntered();
          await firstMayFail;
          firstFailed();
          throw new StoreError("the store is down (simulated)", { retriable: true });
        }
        await failed;
        await s.write(batch);
      },
    };
    const processor = createProcessor({ policy, taxonomy, codec }, { sink });

    const config = kafkaForTest(inject, 1);
    await ensureTopics(createKafka(config), config);
    const group = `g-${config.clientId}`;
    const kafka: KafkaProcessor = await startKafkaProcessor(
      config,
      { instanceId: "a", groupId: group, retryBackoffMs: 50 },
      { processor, codec, store: s, log: () => undefined },
    );
    closers.push(() => kafka.close());
    // HTTP's batch is handed to the processor (its write started or queued) before Kafka's write fails.
    const http: Processor = {
      ...processor,
      auditor: processor.auditor,
      stats: processor.stats,
      processMessages(messages) {
        const result = processor.processMessages(messages);
        releaseFirst();
        return result;
      },
    };
    const server = await startIngestServer(http, { port: 0, host: "127.0.0.1" });
    closers.push(() => server.close());

    const p = pipeline2019();
    const u = use([read("ads.matching_keys", "phone_sha256")], [ADS], { subjects: [pseudo(1)] });
    const producer = createKafka(config).producer();
    await producer.connect();
    await producer.send({
      topic: config.topics.events,
      messages: [p.collect, p.copy, p.join, p.hash, u].map((e) => ({ value: Buffer.from(codec.encode(e)) })),
    });
    await producer.disconnect();
    await entered;

    const other = collect("crm.contacts", { email: [EMAIL] }, [SECURITY], { subjects: [pseudo(2)] });
    const res = await fetch(`${server.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": EVENT_BATCH_MEDIA_TYPE },
      body: frameBatch([codec.encode(other)]),
    });
    expect(res.status).toBe(200);

    await waitFor(async () => (await count(s, Table.events, "event_id")) === 6, 60_000, "every event stored");
    await waitFor(async () => (await count(s, Table.violations, "violation_id")) === 2, 60_000, "the use's violations stored");
    expect(await count(s, Table.facts, "fact_key")).toBe(5);
    expect(await count(s, Table.labels, "label_id")).toBeGreaterThan(0);
    expect(await count(s, Table.paths, "path_id")).toBeGreaterThan(0);
  });
});
