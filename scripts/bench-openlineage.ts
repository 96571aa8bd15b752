// The OpenLineage line of `npm run bench` (also runnable alone: node --import tsx
// scripts/bench-openlineage.ts --runevents 60000). RunEvents per second through serve's HTTP
// intake as serve runs it (POST /api/v1/lineage through the intake journal, one RunEvent a
// request, as OpenLineage clients send them, from `--clients` keep-alive connections): stored,
// from the first post to the last stored, and answered; beside it, in the same run, the same
// derivations as our own Avro events through POST /v1/events (the emitter SDK's HTTP transport,
// batches of 1,000). It runs the compiled dist/ that serve runs, built first (serveModules).
// Each RunEvent is a COMPLETE with column lineage of 20 fields (goal: 5,000 RunEvents/s).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import type { EmitInput } from "../dist/emitter/index.js";
import { FIELDS, dataset, field, runEventBytes } from "./openlineage-runevents.ts";

/** What the benchmark runs of the auditor: serve's own modules. */
interface Serve {
  codec: typeof import("../dist/codec/index.js");
  taxonomy: typeof import("../dist/taxonomy/index.js");
  rules: typeof import("../dist/rules/index.js");
  emitter: typeof import("../dist/emitter/index.js");
  processor: typeof import("../dist/processor/index.js");
  store: typeof import("../dist/store/index.js");
  api: typeof import("../dist/api/index.js");
  openlineage: typeof import("../dist/openlineage/index.js");
  ingest: typeof import("../dist/ingest/index.js");
}

/**
 * The compiled dist/ that `serve` runs (bin/lineage-audit.mjs), brought up to date first (tsc
 * is incremental: a couple of seconds when nothing changed), rather than the TypeScript sources
 * as tsx transforms them: tsx keeps function names by redefining each closure's name as it is
 * made (Object.defineProperty), work serve never does, on each request and RunEvent here.
 */
async function serveModules(): Promise<Serve> {
  const root = new URL("../", import.meta.url).pathname;
  process.stderr.write("bringing dist/ up to date (tsc -p tsconfig.build.json): the benchmark runs the compiled code serve runs\n");
  execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], {
    stdio: "inherit",
  });
  const [codec, taxonomy, rules, emitter, processor, store, api, openlineage, ingest] = await Promise.all([
    import("../dist/codec/index.js"),
    import("../dist/taxonomy/index.js"),
    import("../dist/rules/index.js"),
    import("../dist/emitter/index.js"),
    import("../dist/processor/index.js"),
    import("../dist/store/index.js"),
    import("../dist/api/index.js"),
    import("../dist/openlineage/index.js"),
    import("../dist/ingest/index.js"),
  ]);
  return { codec, taxonomy, rules, emitter, processor, store, api, openlineage, ingest };
}

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
  const serve = await serveModules();
  const { createOpenLineageIntake } = serve.openlineage;
  const taxonomy = serve.taxonomy.loadFideslangTaxonomy();
  const policy = serve.rules.loadPolicy(serve.rules.DEFAULT_POLICY_PATH, taxonomy);
  const codec = serve.codec.createEventCodec(serve.codec.loadEventSchemas());
  const core: BenchCore = { policy, taxonomy, codec };
  const dir = mkdtempSync(join(process.env["BENCH_DIR"] ?? tmpdir(), "lineage-bench-ol-"));
  const store = await serve.store.openStore({ path: dir, database: "bench_openlineage" });
  try {
    await store.migrate();
    const processor = serve.processor.createProcessor(core, { sink: store, lineage: store });
    // As serve runs it: answered once in the journal, stored behind it in batches.
    const journal = await serve.ingest.openIntakeJournal({ dir: join(dir, "openlineage-journal") });
    const openLineage = createOpenLineageIntake({ processor, store, taxonomy, journal });
    const server = await serve.api.startIngestServer(processor, { port: 0, openLineage });
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
      const emitter = serve.emitter.createEmitter({
        transport: serve.emitter.createHttpTransport({ url: server.url }),
        pseudonymKey: "bench-key-".repeat(4),
        maxBatch: 1000,
      });
      const avroStarted = performance.now();
      for (let i = 0; i < n; i++) await emitter.emit(deriveInput(i));
      await emitter.close();
      const avroMs = performance.now() - avroStarted;
      const [row] = await store.query<{ n: string }>(
        `SELECT toString(count()) AS n FROM ${store.database}.${serve.store.Table.openLineage}`,
      );
      if (Number(row?.n) !== n) throw new Error(`openlineage_events_v1 holds ${row?.n} rows, not ${n}`);
      const directPerSecond = await withoutJournal(serve, dir, bodies, options.clients, core);
      // Each after ClickHouse's background merges of what came before have settled (they would count).
      await quiet();
      const http = await httpFloor(bodies, options.clients);
      await quiet();
      const storeCpuPerRunEvent = await storeFloor(serve, dir, bodies, core);
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
  policy: ReturnType<Serve["rules"]["loadPolicy"]>;
  taxonomy: ReturnType<Serve["taxonomy"]["loadFideslangTaxonomy"]>;
  codec: ReturnType<Serve["codec"]["createEventCodec"]>;
}

/** The baseline: the same RunEvents into a fresh database, each answered once stored (group commit, no journal). */
async function withoutJournal(serve: Serve, dir: string, bodies: readonly string[], clients: number, core: BenchCore): Promise<number> {
  const store = await serve.store.openStore({ path: dir, database: "bench_openlineage_direct" });
  try {
    await store.migrate();
    const processor = serve.processor.createProcessor(core, { sink: store, lineage: store });
    const openLineage = serve.openlineage.createOpenLineageIntake({ processor, store, taxonomy: core.taxonomy });
    const server = await serve.api.startIngestServer(processor, { port: 0, openLineage });
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
async function storeFloor(serve: Serve, dir: string, bodies: readonly string[], core: BenchCore): Promise<number> {
  const store = await serve.store.openStore({ path: dir, database: "bench_openlineage_store" });
  try {
    await store.migrate();
    const writes: (() => Promise<void>)[] = [];
    const processor = serve.processor.createProcessor(core, {
      sink: { write: async (batch) => void writes.push(() => store.write(batch)) },
    });
    const held = { insert: async (table: string, rows: readonly object[]) => void writes.push(() => store.insert(table, rows)) };
    const intake = serve.openlineage.createOpenLineageIntake({ processor, store: held, taxonomy: core.taxonomy });
    const batch = serve.openlineage.defaultOpenLineageIntakeOptions.maxBatch;
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
    // As `npm run bench` (scripts/bench.ts): long enough that the warm-up is a small part of the figure.
    options: { runevents: { type: "string", default: "60000" }, clients: { type: "string", default: "256" } },
  });
  console.log(formatOpenLineageBench(await benchOpenLineage({ runEvents: Number(values.runevents), clients: Number(values.clients) })));
}
