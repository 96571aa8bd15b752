// npm run bench:kafka: the auditor's processor consuming from a real local broker, next to a
// bare kafkajs consumer reading the same topic and discarding the messages (the ceiling for this
// client here), plus the time from produce to stored at a steady 10,000 events/s.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createEventCodec, loadEventSchemas } from "../services/codec/index.ts";
import { loadFideslangTaxonomy } from "../services/taxonomy/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy } from "../services/rules/index.ts";
import { createEmitter, createMemoryTransport } from "../services/emitter/index.ts";
import { emptyGroundTruth, generateScenario } from "../services/demo/index.ts";
import { createProcessor } from "../services/processor/index.ts";
import { openStore } from "../services/store/index.ts";
import { createKafka, ensureTopics, startKafkaProcessor, type KafkaConfig } from "../services/kafka/index.ts";

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "1000000" },
    partitions: { type: "string", default: "6" },
    rate: { type: "string", default: "10000" },
    seconds: { type: "string", default: "20" },
  },
});
const total = Number(values.events);
const partitions = Number(values.partitions);
const rate = Number(values.rate);
const seconds = Number(values.seconds);
process.env["KAFKAJS_NO_PARTITIONER_WARNING"] = "1";

// A broker: the one in KAFKA_BROKERS, or infra/kafka's on its own ports for this run.
const script = fileURLToPath(new URL("../infra/kafka/broker.sh", import.meta.url));
const brokerEnv = { ...process.env, KAFKA_PORT: "29092", KAFKA_CONTROLLER_PORT: "29093" };
let ownBroker = false;
if (!process.env["KAFKA_BROKERS"]) {
  execFileSync("bash", [script, "start"], { env: brokerEnv, stdio: ["ignore", "ignore", "inherit"] });
  ownBroker = true;
}
const brokers = (process.env["KAFKA_BROKERS"] ?? "127.0.0.1:29092").split(",");
const run = Date.now().toString(36);
const config: KafkaConfig = {
  brokers,
  clientId: `bench-${run}`,
  partitions,
  topics: { events: `bench-${run}.events`, deadLetters: `bench-${run}.dlq`, lineage: `bench-${run}.lineage` },
};
const topic = config.topics!.events!;
const kafka = createKafka(config);
await ensureTopics(kafka, config);

const taxonomy = loadFideslangTaxonomy();
const policy = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);
const codec = createEventCodec(loadEventSchemas());

/** The demo scenario, one subject per event, encoded with routing keys (not timed). */
async function encode(n: number, seed: number) {
  const memory = createMemoryTransport();
  const emitter = createEmitter(
    { transport: memory, pseudonymKey: "bench-key-".repeat(4), maxBatch: 10_000, pseudonymCacheSize: 2_000_000 },
    { codec },
  );
  outer: for (const input of generateScenario({ users: Math.max(1000, Math.round(n / 5)), seed }, emptyGroundTruth())) {
    const subjects = input.subjects ?? [];
    for (let k = 0; k < Math.max(1, subjects.length); k++) {
      await emitter.emit(subjects.length <= 1 ? input : { ...input, eventId: `${input.eventId}-${k}`, subjects: [subjects[k] as string] });
      if (memory.sent.length >= n) break outer;
    }
  }
  await emitter.flush();
  return memory.sent.slice(0, n);
}

const producer = kafka.producer({ allowAutoTopicCreation: false });
await producer.connect();

async function produce(messages: Awaited<ReturnType<typeof encode>>, targetTopic: string): Promise<number> {
  const started = performance.now();
  // Requests under the broker's 1 MiB limit per partition batch.
  for (let i = 0; i < messages.length; i += 2000) {
    await producer.send({
      topic: targetTopic,
      acks: -1,
      messages: messages.slice(i, i + 2000).map((m) => ({ key: m.key, value: Buffer.from(m.value) })),
    });
  }
  return performance.now() - started;
}

// 1. Fill the topic.
const messages = await encode(total, 2019);
process.stderr.write(`producing ${total.toLocaleString("en-US")} events to ${topic} (${partitions} partitions)...\n`);
const produceMs = await produce(messages, topic);

// 2. The ceiling: a bare kafkajs consumer that reads and discards.
async function bare(): Promise<number> {
  const consumer = kafka.consumer({ groupId: `bench-bare-${run}-${Math.random()}`, maxBytesPerPartition: 4 * 1024 * 1024 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  let first = 0;
  const done = new Promise<number>((resolve) => {
    void consumer.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch }) => {
        if (first === 0) first = performance.now();
        seen += batch.messages.length;
        if (seen >= total) resolve(performance.now() - first);
      },
    });
  });
  const ms = await done;
  await consumer.disconnect();
  return ms;
}

// 3. The auditor: consume → decode → evaluate → store (chDB), committing after each stored batch.
async function auditor(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "lineage-bench-kafka-"));
  const store = await openStore({ path: dir, database: "bench" });
  await store.migrate();
  const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
  let seen = 0;
  let first = 0;
  let resolveDone!: (ms: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  const instance = await startKafkaProcessor(
    config,
    {
      instanceId: "bench",
      groupId: `bench-auditor-${run}-${Math.random()}`,
      onBatch: ({ messages: n }) => {
        if (first === 0) first = performance.now();
        seen += n;
        if (seen >= total) resolveDone(performance.now() - first);
      },
    },
    { processor, codec, store },
  );
  const ms = await done;
  await instance.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return ms;
}

// 4. Latency from produce to stored at a steady rate, on a fresh topic.
async function latency(): Promise<{ p50: number; p99: number; max: number; n: number }> {
  const latTopic = `bench-${run}.latency`;
  const latConfig: KafkaConfig = { ...config, topics: { ...config.topics, events: latTopic } };
  await ensureTopics(kafka, latConfig);
  const dir = mkdtempSync(join(tmpdir(), "lineage-bench-kafka-"));
  const store = await openStore({ path: dir, database: "latency" });
  await store.migrate();
  const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
  const samples: number[] = [];
  const instance = await startKafkaProcessor(
    latConfig,
    {
      instanceId: "latency",
      groupId: `bench-latency-${run}`,
      onBatch: ({ timestamps }) => {
        const now = Date.now();
        for (const t of timestamps) samples.push(now - t);
      },
    },
    { processor, codec, store },
  );
  const n = rate * seconds;
  const paced = await encode(n, 7);
  const tick = 50; // ms: send rate/20 events every 50 ms
  const perTick = Math.round((rate * tick) / 1000);
  const started = Date.now();
  for (let i = 0, t = 0; i < paced.length; i += perTick, t++) {
    const wait = started + t * tick - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await producer.send({
      topic: latTopic,
      acks: -1,
      messages: paced.slice(i, i + perTick).map((m) => ({ key: m.key, value: Buffer.from(m.value) })),
    });
  }
  const until = Date.now() + 60_000;
  while (samples.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  await instance.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  samples.sort((a, b) => a - b);
  const q = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? NaN;
  return { p50: q(0.5), p99: q(0.99), max: samples[samples.length - 1] ?? NaN, n: samples.length };
}

const bareMs = await bare();
const auditorMs = await auditor();
const lat = await latency();
await producer.disconnect();
if (ownBroker) execFileSync("bash", [script, "stop"], { env: brokerEnv, stdio: "ignore" });

const perSecond = (ms: number) => Math.round(total / (ms / 1000));
const fmt = (n: number) => n.toLocaleString("en-US");
console.log(`\nkafka pipeline, ${fmt(total)} events (one subject each), ${partitions} partitions, broker ${brokers.join(",")}`);
console.log(`produced in ${(produceMs / 1000).toFixed(1)} s (${fmt(perSecond(produceMs))} events/s)`);
console.log(`consumer                          events/s`);
console.log(`bare kafkajs (read and discard)   ${fmt(perSecond(bareMs)).padStart(8)}`);
console.log(
  `auditor (decode→evaluate→store)   ${fmt(perSecond(auditorMs)).padStart(8)}   ${((perSecond(auditorMs) / perSecond(bareMs)) * 100).toFixed(0)}% of bare (goal 70%)`,
);
console.log(
  `produce → stored at ${fmt(rate)} events/s for ${seconds} s: p50 ${lat.p50} ms, p99 ${lat.p99} ms, max ${lat.max} ms (${fmt(lat.n)} events; goal p99 < 1000 ms)`,
);
process.exit(0);
