// The OpenLineage line of `npm run bench` (also runnable alone: node --import tsx
// scripts/bench-openlineage.ts --runevents 20000). RunEvents per second through serve's HTTP
// intake as serve runs it (POST /api/v1/lineage through the intake journal, one RunEvent a
// request, as OpenLineage clients send them, from `--clients` keep-alive connections): stored,
// from the first post to the last stored, and answered; beside it, in the same run, the same
// derivations as our own Avro events through POST /v1/events (the emitter SDK's HTTP transport,
// batches of 1,000).
// Each RunEvent is a COMPLETE with column lineage of 20 fields (goal: 5,000 RunEvents/s).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { createEventCodec, loadEventSchemas } from "../services/codec/index.ts";
import { loadFideslangTaxonomy } from "../services/taxonomy/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy } from "../services/rules/index.ts";
import { createEmitter, createHttpTransport, type EmitInput } from "../services/emitter/index.ts";
import { createProcessor } from "../services/processor/index.ts";
import { openStore, Table } from "../services/store/index.ts";
import { startIngestServer } from "../services/api/index.ts";
import { createOpenLineageIntake, defaultOpenLineageIntakeOptions } from "../services/openlineage/index.ts";
import { openIntakeJournal } from "../services/ingest/index.ts";

const FIELDS = 20;
const DATASETS = 500;
const PRODUCER = "https://github.com/lineage-audit/lineage-audit/scripts/bench-openlineage.ts";

export interface OpenLineageBench {
  runEvents: number;
  /** Every RunEvent answered 201 (on disk in the journal), per second of the posting. */
  answeredPerSecond: number;
  /** Every RunEvent stored (queryable), per second from the first post: the end-to-end figure. */
  runEventsPerSecond: number;
  /** Share of the OpenLineage part's wall time the main thread was busy (0..1). */
  mainBusy: number;
  /** The process's CPU (all threads, load generator included) over that time, in cores. */
  cores: number;
  /** The same, in µs a RunEvent. */
  cpuPerRunEvent: number;
  /**
   * Where that CPU went, by thread, in µs a RunEvent (Linux: from /proc/self/task; undefined
   * elsewhere): the main thread's time on a CPU and its time ready to run but waiting for one (both
   * cores taken by other threads), ClickHouse's own threads, and Node's others (V8's garbage
   * collector and compiler, libuv's pool where chDB's calls and the journal's writes run). Threads
   * that ended before the last RunEvent was stored (the load generator's) are in none of them.
   */
  threads?: { mainCpu: number; mainWaiting: number; clickhouse: number; nodeOther: number };
  /** Baseline: each RunEvent answered once stored (no journal), in a fresh database. */
  directPerSecond: number;
  avroEventsPerSecond: number;
  clients: number;
  /**
   * What the machine allows whatever the intake does, measured in the same run: HTTP alone (the
   * same requests from the same load generator, answered 201 unread) and storing alone (the rows
   * these RunEvents become, written as the intake writes them), each in µs of CPU of the whole
   * process a RunEvent; and the RunEvents/s the machine's cores would allow if checking, mapping,
   * processing and journaling cost nothing.
   */
  floors: {
    httpCpuPerRequest: number;
    httpPerSecond: number;
    parseCpuPerRunEvent: number;
    storeCpuPerRunEvent: number;
    cores: number;
    ceilingPerSecond: number;
  };
}

const field = (i: number) => `f${String(i).padStart(2, "0")}`;
const dataset = (i: number) => ({ namespace: "warehouse", name: `bench.table_${i % DATASETS}` });

/** RunEvent i: table_i → table_{i+1}, 20 columns, every fifth a masking TRANSFORMATION, the rest IDENTITY. */
export function runEventBytes(i: number): Buffer {
  const input = dataset(i);
  const output = dataset(i + 1);
  const schema = { _producer: PRODUCER, _schemaURL: "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json" };
  const fields = Object.fromEntries(
    Array.from({ length: FIELDS }, (_, f) => [
      field(f),
      {
        inputFields: [
          {
            ...input,
            field: field(f),
            transformations: [
              f % 5 === 0 ? { type: "DIRECT", subtype: "TRANSFORMATION", masking: true } : { type: "DIRECT", subtype: "IDENTITY" },
            ],
          },
        ],
      },
    ]),
  );
  const hex = i.toString(16).padStart(12, "0");
  return Buffer.from(
    JSON.stringify({
      eventType: "COMPLETE",
      eventTime: new Date(Date.UTC(2019, 5, 1) + i * 1000).toISOString(),
      producer: PRODUCER,
      schemaURL: "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
      run: { runId: `0190d8a0-1c2b-7c3d-8e4f-${hex}` },
      job: { namespace: "bench-jobs", name: `job_${i % 1000}` },
      inputs: [
        {
          ...input,
          facets: { schema: { ...schema, fields: Array.from({ length: FIELDS }, (_, f) => ({ name: field(f), type: "VARCHAR" })) } },
        },
      ],
      outputs: [
        {
          ...output,
          facets: {
            columnLineage: {
              _producer: PRODUCER,
              _schemaURL: "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
              fields,
            },
          },
        },
      ],
    }),
  );
}

/** The same derivation as our own event (what a service would emit with the SDK). */
function deriveInput(i: number): EmitInput {
  const input = dataset(i);
  const output = dataset(i + 1);
  return {
    kind: "DERIVE",
    occurredAt: Date.UTC(2019, 5, 1) + i * 1000,
    service: "bench-jobs",
    job: { namespace: "bench-jobs", name: `job_${i % 1000}` },
    runId: `avro-${i}`,
    inputs: [{ ...input, fields: Array.from({ length: FIELDS }, (_, f) => ({ name: field(f) })) }],
    outputs: [{ ...output }],
    transform: "COPY",
    fieldLineage: Array.from({ length: FIELDS }, (_, f) => ({
      output: { ...output, field: field(f) },
      inputs: [{ ...input, field: field(f) }],
      transform: "COPY" as const,
    })),
    dataSubject: "customer",
  };
}

/** Every request's bytes (head and body), built before anything is timed, shared with the load generator. */
interface Requests {
  bytes: Uint8Array;
  /** Where request i ends in `bytes` (it starts where i-1 ends). */
  ends: Uint32Array;
}

function requestsFor(url: string, bodies: readonly string[]): Requests {
  const target = new URL(url + "/api/v1/lineage");
  const requests = bodies.map((body) => {
    const b = Buffer.from(body);
    const head = `POST ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\nConnection: keep-alive\r\n\r\n`;
    return Buffer.concat([Buffer.from(head, "latin1"), b]);
  });
  const bytes = new Uint8Array(new SharedArrayBuffer(requests.reduce((n, r) => n + r.length, 0)));
  const ends = new Uint32Array(new SharedArrayBuffer(4 * requests.length));
  let at = 0;
  requests.forEach((r, i) => {
    bytes.set(r, at);
    at += r.length;
    ends[i] = at;
  });
  return { bytes, ends };
}

/**
 * Posts the requests from a worker thread (so the load generator does not share the server's
 * event loop), over `clients` keep-alive connections, each sending one request and waiting for
 * its answer as an OpenLineage client does. The client is a few lines over raw sockets rather than
 * node:http, whose client side costs about 80 µs of CPU a request here, and sends bytes built
 * before the timing starts: on two cores, the load generator would otherwise take what it measures.
 */
function postFromWorker(
  url: string,
  requests: Requests,
  clients: number,
): Promise<{ ms: number; startedAt: number; statuses: Record<string, number> }> {
  const source = `
    const { parentPort, workerData } = require("node:worker_threads");
    const net = require("node:net");
    const { url, clients, bytes, ends } = workerData;
    const n = ends.length;
    const target = new URL(url);
    const statuses = {};
    let next = 0;
    const started = performance.now();
    // One connection: a request, then its whole answer (status line, headers, Content-Length bytes), then the next.
    function client() {
      return new Promise((resolve, reject) => {
        const socket = net.connect({ host: target.hostname, port: Number(target.port), noDelay: true });
        let pending = Buffer.alloc(0);
        function send() {
          if (next >= n) { socket.end(); return resolve(); }
          const start = next === 0 ? 0 : ends[next - 1];
          const end = ends[next++];
          socket.write(Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start));
        }
        socket.on("connect", send);
        socket.on("error", reject);
        socket.on("data", (chunk) => {
          pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
          for (;;) {
            const end = pending.indexOf("\\r\\n\\r\\n");
            if (end < 0) return;
            const headers = pending.toString("latin1", 0, end);
            const length = Number(/content-length: *(\\d+)/i.exec(headers)?.[1] ?? 0);
            if (pending.length < end + 4 + length) return;
            const status = headers.slice(9, 12);
            statuses[status] = (statuses[status] || 0) + 1;
            pending = pending.subarray(end + 4 + length);
            send();
          }
        });
      });
    }
    Promise.all(Array.from({ length: clients }, client)).then(() => {
      parentPort.postMessage({ ms: performance.now() - started, startedAt: performance.timeOrigin + started, statuses });
    });`;
  const worker = new Worker(source, { eval: true, workerData: { url, clients, bytes: requests.bytes, ends: requests.ends } });
  return new Promise((resolve, reject) => {
    worker.once("message", (m: { ms: number; startedAt: number; statuses: Record<string, number> }) => resolve(m));
    worker.once("error", reject);
  });
}

export async function benchOpenLineage(options: { runEvents: number; clients: number }): Promise<OpenLineageBench> {
  const taxonomy = loadFideslangTaxonomy();
  const policy = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);
  const codec = createEventCodec(loadEventSchemas());
  const dir = mkdtempSync(join(process.env["BENCH_DIR"] ?? tmpdir(), "lineage-bench-ol-"));
  const store = await openStore({ path: dir, database: "bench_openlineage" });
  try {
    await store.migrate();
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: store, lineage: store });
    // As serve runs it: answered once in the journal, stored behind it in batches.
    const journal = await openIntakeJournal({ dir: join(dir, "openlineage-journal") });
    const openLineage = createOpenLineageIntake({ processor, store, taxonomy, journal });
    const server = await startIngestServer(processor, { port: 0, openLineage });
    try {
      const n = options.runEvents;
      const bodies = Array.from({ length: n }, (_, i) => runEventBytes(i).toString("utf8"));
      const requests = requestsFor(server.url, bodies);
      const elu0 = performance.eventLoopUtilization();
      const cpu0 = process.cpuUsage();
      const threads0 = threadTimes();
      const posted = await postFromWorker(server.url, requests, options.clients);
      if (posted.statuses["201"] !== n) throw new Error(`not every RunEvent was answered 201: ${JSON.stringify(posted.statuses)}`);
      await openLineage.settled();
      // From the worker's first post (one clock for both threads).
      const storedMs = performance.timeOrigin + performance.now() - posted.startedAt;
      // Where the limit lies: the main thread's share of the wall time, the whole process's CPU.
      const cpu = process.cpuUsage(cpu0);
      const mainBusy = performance.eventLoopUtilization(elu0).utilization;
      const cores = (cpu.user + cpu.system) / 1000 / storedMs;
      const cpuPerRunEvent = (cpu.user + cpu.system) / n;
      const threads = threadsPerRunEvent(threads0, threadTimes(), n);
      const emitter = createEmitter({
        transport: createHttpTransport({ url: server.url }),
        pseudonymKey: "bench-key-".repeat(4),
        maxBatch: 1000,
      });
      const avroStarted = performance.now();
      for (let i = 0; i < n; i++) await emitter.emit(deriveInput(i));
      await emitter.close();
      const avroMs = performance.now() - avroStarted;
      const [row] = await store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${store.database}.${Table.openLineage}`);
      if (Number(row?.n) !== n) throw new Error(`openlineage_events_v1 holds ${row?.n} rows, not ${n}`);
      const directPerSecond = await withoutJournal(dir, bodies, options.clients, { policy, taxonomy, codec });
      // Each after ClickHouse's background merges of what came before have settled (they would count).
      await quiet();
      const http = await httpFloor(bodies, options.clients);
      await quiet();
      const storeCpuPerRunEvent = await storeFloor(dir, bodies, { policy, taxonomy, codec });
      const parseCpuPerRunEvent = parseFloor(bodies);
      const machineCores = availableParallelism();
      return {
        runEvents: n,
        answeredPerSecond: n / (posted.ms / 1000),
        mainBusy,
        cores,
        cpuPerRunEvent,
        ...(threads ? { threads } : {}),
        runEventsPerSecond: n / (storedMs / 1000),
        avroEventsPerSecond: n / (avroMs / 1000),
        directPerSecond,
        clients: options.clients,
        floors: {
          httpCpuPerRequest: http.cpuPerRequest,
          httpPerSecond: http.perSecond,
          parseCpuPerRunEvent,
          storeCpuPerRunEvent,
          cores: machineCores,
          ceilingPerSecond: (machineCores * 1e6) / (http.cpuPerRequest + parseCpuPerRunEvent + storeCpuPerRunEvent),
        },
      };
    } finally {
      await openLineage.close();
      await server.close();
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Each thread of this process: its name, and its time on a CPU and waiting for one, in ns (Linux's schedstat); undefined where /proc has none. */
function threadTimes(): Map<string, { name: string; cpuNs: number; waitNs: number }> | undefined {
  try {
    const times = new Map<string, { name: string; cpuNs: number; waitNs: number }>();
    for (const tid of readdirSync("/proc/self/task")) {
      try {
        const [cpuNs, waitNs] = readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ").map(Number);
        const name = tid === String(process.pid) ? "main" : readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim();
        times.set(tid, { name, cpuNs: cpuNs ?? 0, waitNs: waitNs ?? 0 });
      } catch {
        // The thread ended meanwhile.
      }
    }
    return times.size > 0 ? times : undefined;
  } catch {
    return undefined;
  }
}

/** Threads' time between two readings, in µs a RunEvent: ClickHouse's threads are the ones it names (Node's are all "node"). */
function threadsPerRunEvent(
  before: ReturnType<typeof threadTimes>,
  after: ReturnType<typeof threadTimes>,
  n: number,
): OpenLineageBench["threads"] {
  if (!before || !after) return undefined;
  const sums = { mainCpu: 0, mainWaiting: 0, clickhouse: 0, nodeOther: 0 };
  for (const [tid, t] of after) {
    const b = before.get(tid) ?? { cpuNs: 0, waitNs: 0 };
    const cpu = (t.cpuNs - b.cpuNs) / 1000 / n;
    if (t.name === "main") {
      sums.mainCpu += cpu;
      sums.mainWaiting += (t.waitNs - b.waitNs) / 1000 / n;
    } else if (t.name === "node") sums.nodeOther += cpu;
    else sums.clickhouse += cpu;
  }
  return sums;
}

/** What a processor is made of: the policy, the taxonomy and the codec. */
interface BenchCore {
  policy: ReturnType<typeof loadPolicy>;
  taxonomy: ReturnType<typeof loadFideslangTaxonomy>;
  codec: ReturnType<typeof createEventCodec>;
}

/** The baseline: the same RunEvents into a fresh database, each answered once stored (group commit, no journal). */
async function withoutJournal(dir: string, bodies: readonly string[], clients: number, core: BenchCore): Promise<number> {
  const store = await openStore({ path: dir, database: "bench_openlineage_direct" });
  try {
    await store.migrate();
    const processor = createProcessor(core, { sink: store, lineage: store });
    const openLineage = createOpenLineageIntake({ processor, store, taxonomy: core.taxonomy });
    const server = await startIngestServer(processor, { port: 0, openLineage });
    try {
      const posted = await postFromWorker(server.url, requestsFor(server.url, bodies), clients);
      if (posted.statuses["201"] !== bodies.length) throw new Error(`not every RunEvent was stored: ${JSON.stringify(posted.statuses)}`);
      return bodies.length / (posted.ms / 1000);
    } finally {
      await openLineage.close();
      await server.close();
    }
  } finally {
    await store.close();
  }
}

/** Waits (at most 15 s) until the process uses under a tenth of a core over a quarter second. */
async function quiet(): Promise<void> {
  for (let tries = 0; tries < 60; tries++) {
    const cpu0 = process.cpuUsage();
    await new Promise((resolve) => setTimeout(resolve, 250));
    const cpu = process.cpuUsage(cpu0);
    if (cpu.user + cpu.system < 25_000) return;
  }
}

/** JSON.parse alone, of each body's bytes as they arrive (the second of two passes, warm), in µs of CPU. */
function parseFloor(bodies: readonly string[]): number {
  const bytes = bodies.map((b) => Buffer.from(b));
  let kept = 0;
  let cpu = 0;
  for (let pass = 0; pass < 2; pass++) {
    const cpu0 = process.cpuUsage();
    for (const b of bytes) kept += (JSON.parse(b.toString("utf8")) as { eventTime: string }).eventTime.length;
    const used = process.cpuUsage(cpu0);
    cpu = used.user + used.system;
  }
  if (kept === 0) throw new Error("parse floor: nothing parsed");
  return cpu / bodies.length;
}

/** HTTP alone: the same requests from the same load generator, each answered 201 with its body unread. */
async function httpFloor(bodies: readonly string[], clients: number): Promise<{ cpuPerRequest: number; perSecond: number }> {
  const server = createServer((req, res) => {
    req.on("data", () => {});
    req.on("end", () => {
      // With its length: the load generator reads answers by Content-Length, as serve sends them.
      res.writeHead(201, { "content-type": "application/json", "content-length": 15 });
      res.end('{"stored":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const requests = requestsFor(url, bodies);
    const cpu0 = process.cpuUsage();
    const posted = await postFromWorker(url, requests, clients);
    const cpu = process.cpuUsage(cpu0);
    if (posted.statuses["201"] !== bodies.length) throw new Error(`HTTP floor: ${JSON.stringify(posted.statuses)}`);
    return { cpuPerRequest: (cpu.user + cpu.system) / bodies.length, perSecond: bodies.length / (posted.ms / 1000) };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

/**
 * Storing alone: the RunEvents are checked, mapped and processed first with every write held back
 * (not timed), then those writes are made as the intake makes them, in its batches (under load,
 * `maxBatch` RunEvents), into a fresh database; the process's CPU (ClickHouse's threads included) a RunEvent.
 */
async function storeFloor(dir: string, bodies: readonly string[], core: BenchCore): Promise<number> {
  const store = await openStore({ path: dir, database: "bench_openlineage_store" });
  try {
    await store.migrate();
    const writes: (() => Promise<void>)[] = [];
    const processor = createProcessor(core, {
      sink: { write: async (batch) => void writes.push(() => store.write(batch)) },
    });
    const held = { insert: async (table: string, rows: readonly object[]) => void writes.push(() => store.insert(table, rows)) };
    const intake = createOpenLineageIntake({ processor, store: held, taxonomy: core.taxonomy });
    const batch = defaultOpenLineageIntakeOptions.maxBatch;
    for (let i = 0; i < bodies.length; i += batch) {
      const items = bodies.slice(i, i + batch).map((b, k) => ({ bytes: Buffer.from(b), source: `floor:${i + k}` }));
      const result = await intake.ingest(items);
      if (result.accepted !== items.length) throw new Error(`store floor: ${result.accepted} events accepted`);
    }
    const cpu0 = process.cpuUsage();
    for (const write of writes) await write();
    const cpu = process.cpuUsage(cpu0);
    return (cpu.user + cpu.system) / bodies.length;
  } finally {
    await store.close();
  }
}

export function formatOpenLineageBench(r: OpenLineageBench): string {
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  return [
    `\nOpenLineage over HTTP, ${fmt(r.runEvents)} COMPLETE RunEvents with column lineage of ${FIELDS} fields, ${r.clients} keep-alive clients, one RunEvent a request`,
    `  POST /api/v1/lineage (OpenLineage JSON)      ${fmt(r.runEventsPerSecond).padStart(8)} RunEvents/s stored, first post to last stored (goal 5,000)`,
    `    of which answered 201 (in the journal)     ${fmt(r.answeredPerSecond).padStart(8)} RunEvents/s`,
    `    main thread busy ${Math.round(r.mainBusy * 100)}%, the process ${r.cores.toFixed(2)} of the machine's cores, ${fmt(r.cpuPerRunEvent)} µs of CPU a RunEvent (load generator included)`,
    ...(r.threads
      ? [
          `    by thread: main ${fmt(r.threads.mainCpu)} µs on a CPU and ${fmt(r.threads.mainWaiting)} µs waiting for one, ClickHouse's threads ${fmt(r.threads.clickhouse)}, Node's others (GC, compiler, libuv's pool) ${fmt(r.threads.nodeOther)} µs a RunEvent`,
        ]
      : []),
    `  beside it: the same without the journal     ${fmt(r.directPerSecond).padStart(8)} RunEvents/s, each answered once stored`,
    `  POST /v1/events (our Avro, SDK batches)      ${fmt(r.avroEventsPerSecond).padStart(8)} events/s, the same derivations`,
    `  what this machine allows, in the same run:`,
    `    HTTP alone (answered 201 unread)           ${fmt(r.floors.httpPerSecond).padStart(8)} requests/s, ${fmt(r.floors.httpCpuPerRequest)} µs of CPU a request (load generator included)`,
    `    JSON.parse alone                                     ${fmt(r.floors.parseCpuPerRunEvent)} µs of CPU a RunEvent`,
    `    storing what a RunEvent becomes alone                ${fmt(r.floors.storeCpuPerRunEvent)} µs of CPU a RunEvent (ClickHouse's threads included)`,
    `    so, were schema checks, mapping, processing and the journal free: at most ${fmt(r.floors.ceilingPerSecond)} RunEvents/s on ${r.floors.cores} cores`,
  ].join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { runevents: { type: "string", default: "20000" }, clients: { type: "string", default: "256" } },
  });
  console.log(formatOpenLineageBench(await benchOpenLineage({ runEvents: Number(values.runevents), clients: Number(values.clients) })));
}
