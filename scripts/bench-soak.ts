// npm run bench:soak: the processor as `serve` runs it (embedded store, bounded lineage graph)
// fed a steady stream for a bounded time, with a churn of new datasets and fields, printing RSS
// and heap as it goes. Goal: RSS flat and under 1 GB (docs/performance.md). By default 5% of uses
// and shares break a rule (--violating); the rest use data for what it was collected for.
//   npm run bench:soak -- --minutes 10 --rate 5000 --every 10
import { randomUUID, createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { createEventCodec, loadEventSchemas, type DataAccessEvent } from "../services/codec/index.ts";
import { loadFideslangTaxonomy } from "../services/taxonomy/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy } from "../services/rules/index.ts";
import { createProcessor, defaultAuditorOptions } from "../services/processor/index.ts";
import { openStore } from "../services/store/index.ts";
import { boundHeapGrowth } from "../services/cli/heap.ts";

// As `serve` does at start-up.
boundHeapGrowth();

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    rate: { type: "string", default: "5000" },
    every: { type: "string", default: "10" },
    batch: { type: "string", default: "10000" },
    capacity: { type: "string", default: String(defaultAuditorOptions.lineageCapacity) },
    /** For comparison: the graph holds every fact, as before issue 8. */
    unbounded: { type: "boolean", default: false },
    /** Share of uses and shares that break a rule (the rest use data for what it was collected for). */
    violating: { type: "string", default: "0.05" },
  },
});
const seconds = Number(values.minutes) * 60;
const rate = Number(values.rate);
const every = Number(values.every);
const batchSize = Number(values.batch);
const capacity = Number(values.capacity);
const violating = Number(values.violating);
if (!(violating >= 0 && violating <= 1)) throw new Error("--violating must be a share between 0 and 1");
for (const [name, v] of Object.entries({ minutes: seconds, rate, every, batch: batchSize, capacity })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
}

const taxonomy = loadFideslangTaxonomy();
const policy = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);
const codec = createEventCodec(loadEventSchemas());
const dir = mkdtempSync(join(tmpdir(), "lineage-soak-"));
const store = await openStore({ path: dir, database: `soak_${Date.now().toString(36)}` });
await store.migrate();
const processor = createProcessor(
  { policy, taxonomy, codec, lineageCapacity: capacity },
  values.unbounded ? { sink: store } : { sink: store, lineage: store },
);

const CATEGORIES = ["user.contact.email", "user.contact.phone_number", "user.health.condition", "user.name", "user.device.ip_address"];
const COLLECTED_FOR = ["essential.service", "essential.service.security", "essential.service.authentication", "marketing.advertising"];

let seq = 0;
let rnd = 42;
/** A small deterministic generator: the same run every time. */
function random(): number {
  rnd = (rnd * 1103515245 + 12345) % 2147483648;
  return rnd / 2147483648;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
const subject = () =>
  createHash("sha256")
    .update(String(Math.floor(random() * 200_000)))
    .digest("hex")
    .slice(0, 32);

function event(kind: DataAccessEvent["kind"], fields: Partial<DataAccessEvent>): DataAccessEvent {
  return {
    eventId: randomUUID(),
    kind,
    occurredAt: Date.UTC(2026, 0, 1) + seq++,
    service: `svc-${seq % 50}`,
    job: { namespace: "soak", name: `job-${seq % 500}` },
    runId: "soak",
    inputs: [],
    outputs: [],
    transform: "OTHER",
    fieldLineage: [],
    masking: "NONE",
    purposes: [],
    dataSubject: "customer",
    subjects: [],
    recipient: null,
    traceparent: null,
    pseudonymKeyId: "default",
    attributes: {},
    ...fields,
  };
}

// The churn: every new dataset has new field names; uses read recent ones, copies of them, and
// a few long-lived hot datasets.
let datasets = 0;
const recentSources: number[] = [];
/** What each dataset was collected for, and which have a copy (uses read only what exists). */
const collectedFor: string[] = [];
const copied = new Set<number>();
function collectNew(): DataAccessEvent {
  const n = datasets++;
  recentSources.push(n);
  if (recentSources.length > 2_000) recentSources.shift();
  const fields = [0, 1, 2].map((k) => ({ name: `f${n}_${k}`, categories: [pick(CATEGORIES)] }));
  collectedFor[n] = pick(COLLECTED_FOR);
  return event("COLLECT", {
    outputs: [{ namespace: "soak", name: `src.d${n}`, fields }],
    purposes: [collectedFor[n]],
    service: "collector",
  });
}
function copyOf(n: number): DataAccessEvent {
  copied.add(n);
  return event("DERIVE", {
    inputs: [{ namespace: "soak", name: `src.d${n}`, fields: [] }],
    outputs: [{ namespace: "soak", name: `copy.d${n}`, fields: [] }],
    transform: "COPY",
    fieldLineage: [0, 1].map((k) => ({
      output: { namespace: "soak", name: `copy.d${n}`, field: `f${n}_${k}` },
      inputs: [{ namespace: "soak", name: `src.d${n}`, field: `f${n}_${k}` }],
      transform: "COPY" as const,
    })),
  });
}
function useOf(n: number, kind: "USE" | "SHARE"): DataAccessEvent {
  const name = copied.has(n) && random() < 0.5 ? `copy.d${n}` : `src.d${n}`;
  const collected = collectedFor[n] as string;
  // A breach: advertising on data collected for something else (or analytics on advertising
  // data), shared outside; otherwise the purpose it was collected for, shared inside.
  const breach = random() < violating;
  const purpose = !breach
    ? collected
    : collected.startsWith("marketing")
      ? "analytics.reporting"
      : "marketing.advertising.third_party.targeted";
  return event(kind, {
    inputs: [{ namespace: "soak", name, fields: [{ name: `f${n}_${Math.floor(random() * 2)}`, categories: [] }] }],
    purposes: [purpose],
    subjects: Array.from({ length: 1 + Math.floor(random() * 3) }, subject),
    ...(kind === "SHARE" ? { recipient: { name: "partner", external: breach } } : {}),
  });
}
function next(): DataAccessEvent {
  const r = random();
  if (r < 0.02 || recentSources.length === 0) return collectNew();
  const n = random() < 0.1 ? Math.floor(random() * Math.min(datasets, 20)) : pick(recentSources); // a few hot datasets
  if (r < 0.04) return copyOf(n);
  return useOf(n, r < 0.1 ? "SHARE" : "USE");
}

const mb = (bytes: number) => Math.round(bytes / 1048576);
const samples: { t: number; rss: number; heap: number }[] = [];
/** Live heap, not garbage waiting for a collection: the script runs with --expose-gc. */
const collect = (globalThis as { gc?: () => void }).gc;
/** What the embedded engine says it holds: tracked memory, its caches, and jemalloc's view. */
async function engineMemory(): Promise<string> {
  const rows = await store.query<{ name: string; value: number }>(
    `SELECT metric AS name, toFloat64(value) AS value FROM system.metrics
     WHERE metric IN ('MemoryTracking', 'MarkCacheBytes', 'PrimaryIndexCacheBytes', 'UncompressedCacheBytes', 'QueryConditionCacheBytes')
     UNION ALL SELECT 'jemalloc.resident' AS name, toFloat64OrZero(extract(stats, 'resident: (\\d+)')) AS value FROM system.jemalloc_stats`,
  );
  return rows.map((r) => `${r.name}=${mb(Number(r.value))}MB`).join(" ");
}
/** Linux: anonymous (heap, allocator) and file-backed (the engine's mapped code) parts of RSS. */
function rssParts(): string {
  try {
    const status = readFileSync("/proc/self/status", "utf8");
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    return `anon=${Math.round(kb("RssAnon") / 1024)}MB file=${Math.round(kb("RssFile") / 1024)}MB`;
  } catch {
    return "";
  }
}
async function sample(t: number, done: number): Promise<void> {
  // RSS as the process holds it; the heap live after a forced collection (garbage left out).
  const rss = process.memoryUsage.rss();
  collect?.();
  const m = { ...process.memoryUsage(), rss };
  samples.push({ t, rss: m.rss, heap: m.heapUsed });
  const g = processor.auditor.graph.stats;
  console.log(
    `t=${t.toFixed(0)}s events=${done} rate=${Math.round(done / Math.max(t, 1))}/s rss=${mb(m.rss)}MB (${rssParts()}) heap=${mb(m.heapUsed)}MB heapTotal=${mb(m.heapTotal)}MB external=${mb(m.external)}MB ` +
      `violations=${processor.stats.violations} findings=${processor.stats.findings} graph_facts=${g.facts} graph_labels=${g.labels} datasets_created=${datasets} engine: ${await engineMemory()}`,
  );
}

console.log(
  `soak: ${seconds} s at ${rate} events/s, ${Math.round(violating * 100)}% of uses breaking a rule, batches of up to ${batchSize}, lineage ${values.unbounded ? "unbounded" : `capacity ${capacity} facts`}, store ${store.location}`,
);
const started = performance.now();
let done = 0;
let nextReport = every;
await sample(0, 0);
try {
  for (;;) {
    const elapsed = (performance.now() - started) / 1000;
    if (elapsed >= seconds) break;
    const due = Math.min(Math.floor(elapsed * rate) - done, batchSize);
    if (due <= 0) {
      await sleep(5);
      continue;
    }
    const messages = Array.from({ length: due }, (_, i) => ({ bytes: codec.encode(next()), source: `soak#${done + i}` }));
    const result = await processor.processMessages(messages);
    if (result.rejected.length > 0) throw new Error(`soak events rejected: ${result.rejected[0]?.code} ${result.rejected[0]?.reason}`);
    done += due;
    const t = (performance.now() - started) / 1000;
    if (t >= nextReport) {
      await sample(t, done);
      nextReport += every;
    }
  }
  const total = (performance.now() - started) / 1000;
  await sample(total, done);
  const third = samples.filter((s) => s.t >= total / 3);
  const mid = third.filter((s) => s.t < (2 * total) / 3);
  const last = third.filter((s) => s.t >= (2 * total) / 3);
  const avg = (xs: typeof samples, k: "rss" | "heap") => (xs.length ? xs.reduce((a, s) => a + s[k], 0) / xs.length : 0);
  const maxRss = Math.max(...samples.map((s) => s.rss));
  console.log(
    `soak summary: ${done} events in ${total.toFixed(0)} s (${Math.round(done / total)}/s of ${rate}/s asked), ${datasets} datasets created; ` +
      `RSS max ${mb(maxRss)} MB, middle third ${mb(avg(mid, "rss"))} MB, last third ${mb(avg(last, "rss"))} MB; ` +
      `heap middle ${mb(avg(mid, "heap"))} MB, last ${mb(avg(last, "heap"))} MB; ${maxRss < 1024 ** 3 ? "under" : "OVER"} 1 GB`,
  );
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
