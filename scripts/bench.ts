// npm run bench: the embedded pipeline's throughput (decode → evaluate → store, one subject
// per event) next to its ceiling, the same rows inserted straight into chDB, in one run.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createEventCodec, loadEventSchemas } from "../services/codec/index.ts";
import { loadFideslangTaxonomy } from "../services/taxonomy/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy } from "../services/rules/index.ts";
import { createEmitter, createMemoryTransport } from "../services/emitter/index.ts";
import { emptyGroundTruth, generateScenario } from "../services/demo/index.ts";
import { createProcessor, type AuditBatch } from "../services/processor/index.ts";
import { openStore, Table, type Store } from "../services/store/index.ts";
import { benchOpenLineage, formatOpenLineageBench } from "./bench-openlineage.ts";

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "1000000" },
    batch: { type: "string", default: "20000" },
    runs: { type: "string", default: "2" },
    /**
     * The OpenLineage line: RunEvents through the HTTP intake (0 leaves it out). 60,000 (about 12 s
     * of posting), so that the process's warm-up (V8 compiling the hot paths over the first 10,000
     * or so, the facet memo's first sightings) is a small part of the figure, as in a serve that
     * has run for a while (docs/performance.md).
     */
    runevents: { type: "string", default: "60000" },
    clients: { type: "string", default: "256" },
  },
});
const target = Number(values.events);
const batchSize = Number(values.batch);
const runs = Number(values.runs);

const taxonomy = loadFideslangTaxonomy();
const policy = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);
const codec = createEventCodec(loadEventSchemas());

// 1. Encode the demo scenario's events, split to one subject each (not timed).
const transport = createMemoryTransport();
const messages = transport.messages;
const emitter = createEmitter(
  {
    transport,
    pseudonymKey: "bench-key-".repeat(4),
    maxBatch: 10_000,
    pseudonymCacheSize: 2_000_000,
  },
  { codec },
);
const users = Math.max(1000, Math.round(target / 5));
outer: for (const input of generateScenario({ users }, emptyGroundTruth())) {
  const subjects = input.subjects ?? [];
  if (subjects.length <= 1) {
    await emitter.emit(input);
    if (messages.length >= target) break;
    continue;
  }
  for (let k = 0; k < subjects.length; k++) {
    await emitter.emit({ ...input, eventId: `${input.eventId}-${k}`, subjects: [subjects[k] as string] });
    if (messages.length >= target) break outer;
  }
}
await emitter.flush();
messages.length = Math.min(messages.length, target);
console.error(`encoded ${messages.length.toLocaleString("en-US")} events (${users.toLocaleString("en-US")} users)`);

const dir = mkdtempSync(join(process.env["BENCH_DIR"] ?? tmpdir(), "lineage-bench-"));
const store = await openStore({ path: dir, database: "bench_pipeline" });
const ceilingStore = await openStore({ path: dir, database: "bench_ceiling" });
await store.migrate();
await ceilingStore.migrate();

async function truncate(s: Store): Promise<void> {
  // Every table that keeps rows (the edges' staging table is Null: it keeps none, and cannot be truncated).
  for (const t of Object.values(Table)) if (t !== Table.edgesIn) await s.command(`TRUNCATE TABLE IF EXISTS ${s.database}.${t}`);
  await settle();
}

/** Waits for background merges to finish, so neither side pays for the other's. */
async function settle(): Promise<void> {
  for (let i = 0; i < 120; i++) {
    const [row] = await store.query<{ n: string }>("SELECT count() AS n FROM system.merges");
    if (Number(row?.n ?? 0) === 0) return;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Pipeline: decode → evaluate → store, two batches in flight so evaluation overlaps the insert. */
async function pipeline(capture?: AuditBatch[]): Promise<number> {
  await truncate(store);
  const sink = capture
    ? {
        async write(b: AuditBatch) {
          capture.push(b);
        },
      }
    : store;
  const processor = createProcessor({ policy, taxonomy, codec }, { sink });
  const started = performance.now();
  const inFlight = new Set<Promise<unknown>>();
  for (let i = 0; i < messages.length; i += batchSize) {
    if (inFlight.size >= 2) await Promise.race(inFlight);
    const batch = messages.slice(i, i + batchSize).map((bytes, k) => ({ bytes, source: `bench#${i + k}` }));
    const p = processor.processMessages(batch).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  await Promise.all(inFlight);
  return performance.now() - started;
}

/** Ceiling: the very rows the pipeline produced, inserted straight into chDB (same tables, same views). */
async function ceiling(batches: AuditBatch[]): Promise<number> {
  await truncate(ceilingStore);
  const started = performance.now();
  const inFlight = new Set<Promise<unknown>>();
  for (const b of batches) {
    if (inFlight.size >= 2) await Promise.race(inFlight);
    const p = ceilingStore.write(b).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  await Promise.all(inFlight);
  return performance.now() - started;
}

const captured: AuditBatch[] = [];
await pipeline(captured); // warm-up, and the rows for the ceiling
const evaluateOnly = messages.length / ((await pipeline([])) / 1000);
const rows = captured.reduce((n, b) => n + b.events.length, 0);
const results: { run: number; pipeline: number; ceiling: number }[] = [];
console.error(`decode → evaluate only (rows built, not stored): ${Math.round(evaluateOnly).toLocaleString("en-US")} events/s`);
for (let r = 1; r <= runs; r++) {
  const c = await ceiling(captured);
  const p = await pipeline();
  results.push({ run: r, pipeline: messages.length / (p / 1000), ceiling: rows / (c / 1000) });
}
const [check] = await store.query<{ events: string; subjects: string }>(
  `SELECT (SELECT uniqExact(event_id) FROM ${store.database}.${Table.events}) AS events, (SELECT count() FROM ${store.database}.${Table.subjects}) AS subjects`,
);
await store.close();
await ceilingStore.close();

const fmt = (n: number) => Math.round(n).toLocaleString("en-US").padStart(10);
console.log(
  `\nembedded pipeline, ${messages.length.toLocaleString("en-US")} events, one subject each, batches of ${batchSize.toLocaleString("en-US")}`,
);
console.log(`run  pipeline ev/s  ceiling ev/s  pipeline/ceiling`);
for (const r of results)
  console.log(
    `${String(r.run).padEnd(4)} ${fmt(r.pipeline)}    ${fmt(r.ceiling)}    ${((r.pipeline / r.ceiling) * 100).toFixed(0).padStart(5)}%`,
  );
const best = results.reduce((a, b) => (b.pipeline > a.pipeline ? b : a));
console.log(
  `best pipeline: ${fmt(best.pipeline).trim()} events/s (goal 100,000); stored ${Number(check?.events).toLocaleString("en-US")} events, ${Number(check?.subjects).toLocaleString("en-US")} subject rows`,
);

// The OpenLineage line: RunEvents through serve's HTTP intake, our Avro intake beside it.
// The pipeline's files are removed after it, not before: on ext4 without a journal (this machine's
// disk) each file created in the next minutes skips every inode freed in them, which cost the
// OpenLineage part 34-44 µs of CPU a RunEvent after a large removal (docs/performance.md).
try {
  if (Number(values.runevents) > 0)
    console.log(formatOpenLineageBench(await benchOpenLineage({ runEvents: Number(values.runevents), clients: Number(values.clients) })));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
