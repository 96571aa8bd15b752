// The package as a consumer gets it: `npm pack` (prepare → build) here, the tarball installed into a
// fresh project in the temp folder, then used from plain ESM, CommonJS (require(esm)) and strict
// TypeScript, with the events going to a `lineage-audit serve` started from the installed copy.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TIMEOUT = 600_000;
const HMAC_KEY = "packaging-test-key-0123456789abcdef-0123";
const repoPackage = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { name: string; version: string };

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to its end (killed after `timeoutMs`), without a shell. */
function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 300_000);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${command}: ${error.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** The result, or an error naming the command with the tail of its output. */
function succeeded(r: RunResult, what: string): RunResult {
  if (r.code === 0) return r;
  const tail = `${r.stdout}\n${r.stderr}`.trim().split("\n").slice(-25).join("\n");
  throw new Error(`${what} failed (exit ${r.code ?? r.signal}):\n${tail}`);
}

const seconds = (ms: number) => (ms / 1000).toFixed(1);

// npm gets the environment vitest runs in (its cache, registry settings); the consumer's own
// processes get a bare one, as a fresh shell would give them.
const npmEnv: NodeJS.ProcessEnv = {
  ...process.env,
  npm_config_update_notifier: "false",
  npm_config_fund: "false",
  npm_config_audit: "false",
};

let work = "";
let app = "";
let consumerEnv: NodeJS.ProcessEnv = {};
let packed: { filename: string; files: { path: string }[] } | undefined;
let tarball = "";
const timings: Record<string, string> = {};
let serve: ChildProcess | undefined;
let serveUrl = "";
let serveStderr = "";

/** Where the installed package lives in the consumer project. */
const installed = (...parts: string[]) => join(app, "node_modules", repoPackage.name, ...parts);

const ESM_CONSUMER = `
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
// CommonJS modules (chdb, @clickhouse/client and kafkajs all are) land in require.cache when loaded.
const loaded = () => {
  const keys = Object.keys(require.cache);
  return Object.fromEntries(
    ["chdb", "@clickhouse", "kafkajs"].map((name) => [name, keys.some((k) => k.includes(\`/node_modules/\${name}/\`))]),
  );
};
const before = loaded();
const { createEmitter, createHttpTransport } = await import("lineage-audit/emitter");
const afterImport = loaded();
const emitter = createEmitter({
  transport: createHttpTransport({ url: process.argv[2] }),
  pseudonymKey: process.env.LINEAGE_AUDIT_HMAC_KEY,
  service: "packaging-esm",
});
await emitter.emit({
  kind: "COLLECT",
  job: { namespace: "web", name: "signup" },
  runId: "esm-1",
  outputs: [{ namespace: "warehouse", name: "users", fields: [{ name: "email", categories: ["user.contact.email"] }] }],
  purposes: ["essential.service"],
  dataSubject: "customer",
  subjects: ["ada@example.com"],
});
await emitter.emit({
  kind: "DERIVE",
  job: { namespace: "etl", name: "hash-emails" },
  runId: "esm-2",
  inputs: [{ namespace: "warehouse", name: "users", fields: [{ name: "email" }] }],
  outputs: [{ namespace: "warehouse", name: "users_hashed", fields: [{ name: "email_sha256", categories: ["user.contact.email"] }] }],
  transform: "HASH",
  dataSubject: "customer",
  subjects: ["ada@example.com"],
});
await emitter.emit({
  kind: "USE",
  job: { namespace: "web", name: "login" },
  runId: "esm-3",
  inputs: [{ namespace: "warehouse", name: "users", fields: [{ name: "email" }] }],
  purposes: ["essential.service.authentication"],
  dataSubject: "customer",
  subjects: ["ada@example.com"],
});
await emitter.close();
const afterEmit = loaded();
await import("lineage-audit/emitter/kafka");
const afterKafka = loaded();
// Not an export: reached by file, only to show the check sees chdb and @clickhouse/client when they load.
await import(new URL("./node_modules/lineage-audit/dist/store/index.js", import.meta.url).href);
const afterStore = loaded();
console.log(JSON.stringify({ stats: emitter.stats, before, afterImport, afterEmit, afterKafka, afterStore }));
`;

const CJS_CONSUMER = `
const { createEmitter, createHttpTransport } = require("lineage-audit/emitter");
async function main() {
  const emitter = createEmitter({
    transport: createHttpTransport({ url: process.argv[2] }),
    pseudonymKey: process.env.LINEAGE_AUDIT_HMAC_KEY,
    service: "packaging-cjs",
  });
  await emitter.emit({
    kind: "USE",
    job: { namespace: "web", name: "password-reset" },
    runId: "cjs-1",
    inputs: [{ namespace: "warehouse", name: "users", fields: [{ name: "email" }] }],
    purposes: ["essential.service.authentication"],
    dataSubject: "customer",
    subjects: ["ada@example.com"],
  });
  await emitter.emit({
    kind: "SHARE",
    job: { namespace: "ads", name: "partner-export" },
    runId: "cjs-2",
    inputs: [{ namespace: "warehouse", name: "users_hashed", fields: [{ name: "email_sha256" }] }],
    purposes: ["marketing.advertising"],
    recipient: { name: "ad-partner", external: true },
    dataSubject: "customer",
    subjects: ["ada@example.com"],
  });
  await emitter.close();
  const kept = Object.keys(require.cache).filter((k) => /[\\\\/]node_modules[\\\\/](chdb|@clickhouse|kafkajs)[\\\\/]/.test(k));
  console.log(JSON.stringify({ stats: emitter.stats, heavyModules: kept.length }));
}
main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
`;

const TS_CONSUMER = `
import { createEmitter, createHttpTransport, createPseudonymizer } from "lineage-audit/emitter";
import type { EmitInput, Emitter, EmitterOptions, OutboundMessage, SendResult, Transport } from "lineage-audit/emitter";
import { createKafkaTransport } from "lineage-audit/emitter/kafka";

const sent: OutboundMessage[] = [];
const recording: Transport = {
  async send(messages: OutboundMessage[]): Promise<SendResult> {
    sent.push(...messages);
    return { accepted: messages.length, rejected: [] };
  },
  async close(): Promise<void> {},
};
const options: EmitterOptions = {
  transport: recording,
  pseudonymKey: "k".repeat(40),
  service: "typed-consumer",
  maxBatch: 10,
  onRejected: (rejected) => rejected.forEach((r) => console.error(r.index, r.code, r.reason)),
};
const emitter: Emitter = createEmitter(options);
const use: EmitInput = {
  kind: "USE",
  job: { namespace: "web", name: "login" },
  runId: "r",
  inputs: [{ namespace: "warehouse", name: "users", fields: [{ name: "email" }] }],
  purposes: ["essential.service.authentication"],
  dataSubject: "customer",
  subjects: ["ada@example.com"],
};
await emitter.emit(use);
await emitter.flush();
const count: number = emitter.stats.sent;
const first: OutboundMessage | undefined = sent[0]; // noUncheckedIndexedAccess: possibly undefined
const key: string = first?.key ?? "";
const pseudonym: string = createPseudonymizer("k".repeat(40))("ada@example.com");
const http: Transport = createHttpTransport({ url: "http://127.0.0.1:8787", token: "t".repeat(16), timeoutMs: 1000 });
const kafka: Transport = createKafkaTransport({ brokers: ["127.0.0.1:9092"], clientId: "typed-consumer" });

// Each line below must fail to type-check: were the SDK typed \`any\`, the directive itself would be the error.
// @ts-expect-error: not an event kind
await emitter.emit({ ...use, kind: "READ" });
// @ts-expect-error: exactOptionalPropertyTypes: an optional option is left out, never \`undefined\`
createEmitter({ transport: http, pseudonymKey: "k".repeat(40), service: undefined });
// @ts-expect-error: a transport needs close()
createEmitter({ transport: { send: recording.send }, pseudonymKey: "k".repeat(40) });
// @ts-expect-error: noUncheckedIndexedAccess: an element of an array may be undefined
const firstKey: string = sent[0].key;

export { count, key, pseudonym, kafka, firstKey };
`;

const CTS_CONSUMER = `
import sdk = require("lineage-audit/emitter");
import type { Transport } from "lineage-audit/emitter";

const transport: Transport = sdk.createHttpTransport({ url: "http://127.0.0.1:8787" });
const emitter = sdk.createEmitter({ transport, pseudonymKey: "k".repeat(40), service: "typed-cjs-consumer" });
// @ts-expect-error: not an event kind
void emitter.emit({ kind: "READ", job: { namespace: "a", name: "b" }, runId: "r", dataSubject: "customer" });
export = emitter;
`;

const TSCONFIG = {
  compilerOptions: {
    target: "ES2023",
    lib: ["ES2023"],
    module: "nodenext",
    moduleResolution: "nodenext",
    types: ["node"],
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: true,
    verbatimModuleSyntax: true,
    skipLibCheck: false,
    noEmit: true,
  },
  files: ["consumer.ts", "consumer-cjs.cts"],
};

/** Starts the installed `lineage-audit serve`; resolves with its URL once it listens. */
function startServe(): Promise<string> {
  const bin = join(app, "node_modules", ".bin", "lineage-audit");
  if (!existsSync(bin)) throw new Error(`npm install created no ${relative(app, bin)} (package.json "bin")`);
  const child = spawn(bin, ["serve", "--port", "0"], { cwd: app, env: consumerEnv, stdio: ["ignore", "ignore", "pipe"] });
  serve = child;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not listen within 120 s:\n${serveStderr}`)), 120_000);
    child.on("error", (error) => reject(new Error(`could not start ${bin}: ${error.message}`)));
    child.stderr?.on("data", (d: Buffer) => {
      serveStderr += d.toString("utf8");
      const url = /POST (http:\/\/127\.0\.0\.1:\d+)\/v1\/events/.exec(serveStderr)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve(url);
      }
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code ?? signal}) before listening:\n${serveStderr}`));
    });
  });
}

/** SIGTERM, then the exit code (SIGKILL after `graceMs`). */
async function stopServe(graceMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const child = serve;
  if (!child) throw new Error("serve was never started");
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  const result = await exited;
  clearTimeout(timer);
  return result;
}

/** Runs a consumer script with the installed package; its last stdout line is JSON. */
async function consumer(file: string): Promise<{ result: Record<string, unknown>; stderr: string }> {
  const r = succeeded(await run(process.execPath, [file, serveUrl], { cwd: app, env: consumerEnv, timeoutMs: 120_000 }), `node ${file}`);
  const last = r.stdout.trim().split("\n").at(-1) ?? "";
  return { result: JSON.parse(last) as Record<string, unknown>, stderr: r.stderr };
}

function filesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(ROOT, join(e.parentPath, e.name)).split(sep).join("/"));
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "lineage-packaging-"));
  app = join(work, "app");
  mkdirSync(join(work, "pack"));
  mkdirSync(app);
  consumerEnv = {
    PATH: [dirname(process.execPath), process.env["PATH"] ?? ""].join(delimiter),
    HOME: work,
    LINEAGE_AUDIT_DATA: join(work, "store"),
    LINEAGE_AUDIT_HMAC_KEY: HMAC_KEY,
  };

  // npm pack runs `prepare` (the build) first; its output goes to stderr, the JSON to stdout.
  const pack = succeeded(
    await run("npm", ["pack", "--json", "--pack-destination", join(work, "pack")], { cwd: ROOT, env: npmEnv, timeoutMs: 300_000 }),
    "npm pack (prepare runs `npm run build`)",
  );
  timings["npm pack (with build)"] = `${seconds(pack.ms)} s`;
  const start = pack.stdout.search(/^\[/m);
  if (start < 0) throw new Error(`npm pack --json printed no JSON list:\n${pack.stdout}\n${pack.stderr}`);
  const list = JSON.parse(pack.stdout.slice(start)) as { filename: string; files: { path: string }[] }[];
  packed = list[0];
  if (!packed) throw new Error(`npm pack --json printed no package:\n${pack.stdout}`);
  tarball = join(work, "pack", packed.filename);
  if (!existsSync(tarball)) throw new Error(`npm pack wrote no ${tarball}`);

  // A project of its own: "type": "module", so .ts is ESM; .cjs/.cts are CommonJS by extension.
  writeFileSync(
    join(app, "package.json"),
    JSON.stringify({ name: "packaging-consumer", version: "1.0.0", private: true, type: "module" }, null, 2),
  );
  writeFileSync(join(app, "emit.mjs"), ESM_CONSUMER);
  writeFileSync(join(app, "emit.cjs"), CJS_CONSUMER);
  writeFileSync(join(app, "consumer.ts"), TS_CONSUMER);
  writeFileSync(join(app, "consumer-cjs.cts"), CTS_CONSUMER);
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2));
  const install = succeeded(
    await run(
      "npm",
      ["install", tarball, "@types/node@20.19.43", "typescript@6.0.3", "--no-audit", "--no-fund", "--prefer-offline", "--no-package-lock"],
      { cwd: app, env: npmEnv, timeoutMs: 400_000 },
    ),
    "npm install of the tarball into a fresh project",
  );
  timings["npm install (tarball + @types/node + typescript)"] = `${seconds(install.ms)} s`;
  const warnings = install.stderr
    .split("\n")
    .filter((l) => l.startsWith("npm warn"))
    .map((l) => l.trim());
  if (warnings.length > 0) timings["npm install warnings"] = `\n    ${warnings.join("\n    ")}`;

  serveUrl = await startServe();
}, TIMEOUT);

afterAll(async () => {
  if (serve && serve.exitCode === null && serve.signalCode === null) await stopServe(30_000);
  console.info(
    `packaging: ${Object.entries(timings)
      .map(([k, v]) => `${k}: ${v}`)
      .join("; ")}`,
  );
  if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

describe("the packed tarball", { timeout: TIMEOUT }, () => {
  it("holds the compiled SDK with its types, the CLI, the schemas and the rules", () => {
    const paths = packed!.files.map((f) => f.path);
    for (const file of [
      "package.json",
      "bin/lineage-audit.mjs",
      "dist/cli/main.js",
      "dist/emitter/index.js",
      "dist/emitter/index.d.ts",
      "dist/emitter/kafka.js",
      "dist/emitter/kafka.d.ts",
      "rules/default.yaml",
    ]) {
      expect(paths, `${file} is not in the tarball`).toContain(file);
    }
    // Every schema (Avro, ClickHouse migrations, taxonomy) and rules file of the repository.
    const data = [...filesUnder("schemas"), ...filesUnder("rules")];
    expect(data.filter((p) => p.startsWith("schemas/avro/")).length).toBeGreaterThan(0);
    expect(data.filter((p) => p.startsWith("schemas/clickhouse/")).length).toBeGreaterThan(0);
    for (const file of data) expect(paths, `${file} is not in the tarball`).toContain(file);
  });

  it("holds no TypeScript sources, tests or build state", () => {
    const paths = packed!.files.map((f) => f.path);
    expect(paths.length).toBeGreaterThan(0);
    expect(paths.filter((p) => p.startsWith("services/"))).toEqual([]);
    expect(paths.filter((p) => p.startsWith("test/"))).toEqual([]);
    expect(paths.filter((p) => p.endsWith(".ts") && !p.endsWith(".d.ts"))).toEqual([]);
    expect(paths.filter((p) => p.endsWith(".tsbuildinfo"))).toEqual([]);
    expect(paths.filter((p) => p.startsWith("node_modules/") || p.startsWith(".lineage-audit/"))).toEqual([]);
  });

  it("ships exactly the compiled services: no module left over from a deleted or renamed source", () => {
    const paths = packed!.files.map((f) => f.path);
    // dist/web is the console's bundle (web/, built by vite), not compiled services.
    const compiled = paths
      .filter((p) => p.startsWith("dist/") && !p.startsWith("dist/web/") && p.endsWith(".js"))
      .map((p) => p.slice("dist/".length, -".js".length));
    const sources = filesUnder("services")
      .filter((p) => p.endsWith(".ts") && !p.endsWith(".d.ts"))
      .map((p) => p.slice("services/".length, -".ts".length));
    expect(compiled.length).toBeGreaterThan(0);
    expect(compiled.filter((m) => !sources.includes(m)).map((m) => `dist/${m}.js`)).toEqual([]);
    expect(sources.filter((m) => !compiled.includes(m)).map((m) => `services/${m}.ts`)).toEqual([]);
  });
});

describe("installed into a fresh project", { timeout: TIMEOUT }, () => {
  it("is a copy from the tarball (not a link to this checkout) at this version", () => {
    expect(lstatSync(installed()).isSymbolicLink()).toBe(false);
    const pkg = JSON.parse(readFileSync(installed("package.json"), "utf8")) as { version: string };
    expect(pkg.version).toBe(repoPackage.version);
    expect(existsSync(installed("services")), "the installed package holds services/").toBe(false);
    expect(existsSync(installed("dist", "emitter", "index.js"))).toBe(true);
  });

  it("answers npx lineage-audit --help and --version", async () => {
    // As typed in a shell; offline and without installing, so a missing bin fails instead of fetching a namesake.
    const env = { ...consumerEnv, npm_config_yes: "false", npm_config_offline: "true", npm_config_update_notifier: "false" };
    const help = succeeded(await run("npx", ["lineage-audit", "--help"], { cwd: app, env }), "npx lineage-audit --help");
    expect(help.stdout).toContain("lineage-audit serve");
    const version = succeeded(await run("npx", ["lineage-audit", "--version"], { cwd: app, env }), "npx lineage-audit --version");
    expect(version.stdout.trim()).toBe(repoPackage.version);
  });

  it("runs the installed command with V8's young generation as the benchmarks measure it (64 MiB semi-spaces)", () => {
    // What the kernel ran for npm's bin link, through its #! line (Linux: /proc).
    const argv = readFileSync(`/proc/${serve?.pid}/cmdline`, "utf8").split("\0");
    expect(argv.slice(0, 2)).toEqual(["node", "--max-semi-space-size=64"]);
    expect(argv.slice(-4)).toEqual(["serve", "--port", "0", ""]);
  });

  it("type-checks a consumer under strict settings (strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes, nodenext)", async () => {
    const tsc = join(app, "node_modules", "typescript", "bin", "tsc");
    const r = await run(process.execPath, [tsc, "-p", "tsconfig.json", "--listFiles"], { cwd: app, env: consumerEnv });
    const errors = r.stdout
      .split("\n")
      .filter((l) => /error TS\d+/.test(l))
      .join("\n");
    expect(errors, "tsc errors (an unused @ts-expect-error means a type is `any`)").toBe("");
    expect(r.code, r.stderr).toBe(0);
    // The types came from the installed package's dist (and the checker read our files).
    const listed = r.stdout.split("\n").map((l) => l.trim());
    for (const file of [
      "consumer.ts",
      "consumer-cjs.cts",
      "node_modules/lineage-audit/dist/emitter/index.d.ts",
      "node_modules/lineage-audit/dist/emitter/kafka.d.ts",
    ]) {
      expect(
        listed.some((l) => l.endsWith(`/${file}`)),
        `tsc did not read ${file}`,
      ).toBe(true);
    }
    expect(listed.filter((l) => l.startsWith(ROOT))).toEqual([]);
  });

  it("emits from plain ESM without loading chdb, @clickhouse/client or kafkajs, until the Kafka entry is imported", async () => {
    const { result, stderr } = await consumer("emit.mjs");
    expect(stderr).toBe("");
    expect(result["stats"]).toEqual({ emitted: 3, sent: 3, rejected: 0, batches: expect.any(Number) });
    const none = { chdb: false, "@clickhouse": false, kafkajs: false };
    expect(result["before"]).toEqual(none);
    expect(result["afterImport"], "importing lineage-audit/emitter").toEqual(none);
    expect(result["afterEmit"], "emitting over HTTP").toEqual(none);
    // The check can fail: the Kafka entry loads kafkajs, the store chdb and @clickhouse/client.
    expect(result["afterKafka"], "importing lineage-audit/emitter/kafka").toEqual({ ...none, kafkajs: true });
    expect(result["afterStore"]).toEqual({ chdb: true, "@clickhouse": true, kafkajs: true });
  });

  it("emits from CommonJS through require()", async () => {
    const { result, stderr } = await consumer("emit.cjs");
    const other = stderr
      .split("\n")
      .filter((l) => l.trim() !== "" && !/ExperimentalWarning|--trace-warnings/.test(l))
      .join("\n");
    if (stderr.includes("ExperimentalWarning")) timings["require(esm) warning"] = stderr.trim();
    expect(other).toBe("");
    expect(result["stats"]).toEqual({ emitted: 2, sent: 2, rejected: 0, batches: expect.any(Number) });
    expect(result["heavyModules"]).toBe(0);
  });

  it("stores exactly those events: serve stops on SIGTERM with 0, and `lineage-audit sql` counts them", async () => {
    const stopped = await stopServe();
    expect(stopped, serveStderr).toEqual({ code: 0, signal: null });
    const bin = join(app, "node_modules", ".bin", "lineage-audit");
    const sql = async (query: string) => {
      const r = succeeded(
        await run(bin, ["sql", query, "--json"], { cwd: app, env: consumerEnv, timeoutMs: 120_000 }),
        `lineage-audit sql ${query}`,
      );
      return JSON.parse(r.stdout) as unknown;
    };
    expect(await sql("SELECT kind, count() AS n FROM events_v1 GROUP BY kind ORDER BY kind")).toEqual([
      { kind: "COLLECT", n: 1 },
      { kind: "DERIVE", n: 1 },
      { kind: "SHARE", n: 1 },
      { kind: "USE", n: 2 },
    ]);
    expect(await sql("SELECT service, count() AS n FROM events_v1 GROUP BY service ORDER BY service")).toEqual([
      { service: "packaging-cjs", n: 2 },
      { service: "packaging-esm", n: 3 },
    ]);
  });
});
