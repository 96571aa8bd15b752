// Analysts' tools against the embedded store: @clickhouse/client over HTTP, with credentials;
// reads work, anything that writes is refused.
import { rmSync } from "node:fs";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type ClickHouseClient } from "@clickhouse/client";
import { openStore, type Store } from "../../services/store/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import { createEmitter, createInProcessTransport } from "../../services/emitter/index.ts";
import { startAnalystServer, type AnalystServer } from "../../services/api/index.ts";
import { emptyGroundTruth, generateScenario } from "../../services/demo/index.ts";
import { core, HMAC_KEY, randomDatabase, tempDir, waitFor } from "./helpers.ts";

const dir = tempDir("lineage-analyst-");
let store: Store;
let server: AnalystServer;
let client: ClickHouseClient;
const truth = emptyGroundTruth();

beforeAll(async () => {
  store = await openStore({ path: dir, database: randomDatabase("an") });
  await store.migrate();
  const { taxonomy, policy, codec } = core();
  const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
  const emitter = createEmitter({ transport: createInProcessTransport(processor), pseudonymKey: HMAC_KEY, maxBatch: 2000 }, { codec });
  for (const input of generateScenario({ users: 1000, seed: 4 }, truth)) await emitter.emit(input);
  await emitter.close();
  server = await startAnalystServer(store, { port: 0, user: "analyst", password: "s3cret-for-tests" });
  client = createClient({ url: server.url, username: "analyst", password: "s3cret-for-tests" });
});
afterAll(async () => {
  await client.close();
  await server.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("ClickHouse HTTP interface for analysts", () => {
  it("answers @clickhouse/client queries over HTTP with credentials", async () => {
    expect((await client.ping()).success).toBe(true);
    const rows = await (
      await client.query({ query: "SELECT uniqExact(event_id) AS n FROM events_v1", format: "JSONEachRow" })
    ).json<{ n: string }>();
    expect(Number(rows[0]?.n)).toBe(truth.events);
    const users = await (
      await client.query({
        query: "SELECT uniqExact(subject_id) AS users FROM violation_subjects_v1 WHERE rule_id = {rule:String}",
        query_params: { rule: "security-contact-not-for-marketing" },
        format: "JSONEachRow",
      })
    ).json<{ users: string }>();
    expect(Number(users[0]?.users)).toBe(truth.affectedUsers);
  });

  it("refuses statements that write, and wrong credentials", async () => {
    await expect(client.command({ query: "DROP TABLE events_v1" })).rejects.toThrow(/read-only: DROP is not allowed/);
    await expect(client.insert({ table: "events_v1", values: [{ event_id: "x" }], format: "JSONEachRow" })).rejects.toThrow(
      /read-only: INSERT is not allowed/,
    );
    await expect(client.command({ query: "SELECT 1; DROP TABLE events_v1" })).rejects.toThrow(/read-only: one statement at a time/);
    const intruder = createClient({ url: server.url, username: "analyst", password: "guess" });
    await expect(intruder.query({ query: "SELECT 1", format: "JSONEachRow" })).rejects.toThrow(/Authentication failed/);
    await intruder.close();
    const rows = await (await client.query({ query: "SELECT count() AS n FROM events_v1", format: "JSONEachRow" })).json<{ n: string }>();
    expect(Number(rows[0]?.n)).toBeGreaterThan(0);
  });
});

describe("lineage-audit sql while serve holds the store", () => {
  const BIN = new URL("../../bin/lineage-audit.mjs", import.meta.url).pathname;
  const env = {
    PATH: process.env["PATH"] ?? "",
    HOME: dir,
    LINEAGE_AUDIT_DATA: join(dir, "held"),
    LINEAGE_AUDIT_ANALYST_PASSWORD: "pw-for-tests",
    LINEAGE_AUDIT_ANALYST_PORT: "0",
  };
  async function run(args: string[], extra: Record<string, string | undefined> = {}) {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...env, ...extra }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const [code] = (await once(child, "exit")) as [number];
    return { code, stdout, stderr };
  }

  it("asks the running serve over its HTTP interface, and says what to set when it cannot", async () => {
    const serve = spawn(process.execPath, [BIN, "serve", "--port", "0"], { env, stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    serve.stderr.on("data", (c: Buffer) => (log += c.toString()));
    try {
      await waitFor(async () => log.includes("read-only ClickHouse HTTP interface"), 30_000, "serve to start");
      const ok = await run(["sql", "SELECT count() AS n FROM events_v1", "--json"]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)).toEqual([{ n: 0 }]);
      const refused = await run(["sql", "DROP TABLE events_v1"]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^lineage-audit: read-only: DROP is not allowed$/m);
      const noKey = await run(["sql", "SELECT 1"], { LINEAGE_AUDIT_ANALYST_PASSWORD: undefined });
      expect(noKey.code).toBe(1);
      expect(noKey.stderr.trim().split("\n")).toEqual([
        expect.stringMatching(/^lineage-audit: the store is held by a running serve \(pid \d+\): set LINEAGE_AUDIT_ANALYST_PASSWORD/),
      ]);
    } finally {
      serve.kill("SIGTERM");
      await once(serve, "exit");
    }
    // Once serve has stopped, sql opens the store itself again.
    const after = await run(["sql", "SELECT count() AS n FROM events_v1", "--json"], { LINEAGE_AUDIT_ANALYST_PASSWORD: undefined });
    expect(after.code, after.stderr).toBe(0);
  });
});
