// Issue 8, items 1, 2 and 17: every hostile statement of the corpus is refused with one clear line,
// through the analyst HTTP interface and through `lineage-audit sql` (a real process on the
// embedded store), and the audit database's tables and row counts are the same afterwards.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore, type Store } from "../../services/store/index.ts";
import { createProcessor, type Processor } from "../../services/processor/index.ts";
import { createEmitter, createInProcessTransport } from "../../services/emitter/index.ts";
import { startAnalystServer, type AnalystServer } from "../../services/api/index.ts";
import { emptyGroundTruth, generateScenario } from "../../services/demo/index.ts";
import { core, HMAC_KEY, randomDatabase, tempDir } from "./helpers.ts";
import { HOSTILE_SQL } from "./hostile-sql.ts";

const dir = tempDir("lineage-guard-");
const OUT = join(dir, "outfile.txt");
const USER = "analyst";
const PASSWORD = "guard-test-password";
/** Every table of every user database with its row count: what no analyst statement may change. */
const TABLES_SQL =
  "SELECT database, name, total_rows FROM system.tables WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY database, name FORMAT TSV";

function fill(sql: string, db: string, port: string): string {
  return sql.replaceAll("{db}", db).replaceAll("{port}", port).replaceAll("{out}", OUT);
}

expect(HOSTILE_SQL.length).toBeGreaterThanOrEqual(40);

describe("the analyst HTTP interface refuses every hostile statement", () => {
  let store: Store;
  let processor: Processor;
  let server: AnalystServer;
  const truth = emptyGroundTruth();

  beforeAll(async () => {
    store = await openStore({ path: join(dir, "http"), database: randomDatabase("guard") });
    await store.migrate();
    const { taxonomy, policy, codec } = core();
    processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
    const emitter = createEmitter({ transport: createInProcessTransport(processor), pseudonymKey: HMAC_KEY, maxBatch: 500 }, { codec });
    for (const input of generateScenario({ users: 200, seed: 8 }, truth)) await emitter.emit(input);
    await emitter.close();
    server = await startAnalystServer(store, { port: 0, user: USER, password: PASSWORD });
  });
  afterAll(async () => {
    await server?.close();
    await store?.close();
  });

  async function ask(sql: string): Promise<{ status: number; body: string; code: string | null }> {
    const res = await fetch(`${server.url}/`, {
      method: "POST",
      body: sql,
      headers: { authorization: `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}` },
    });
    return { status: res.status, body: await res.text(), code: res.headers.get("x-clickhouse-exception-code") };
  }

  it("answers each with one ClickHouse error line, and the tables and row counts stay as they were", async () => {
    const before = await ask(TABLES_SQL);
    expect(before.status, before.body).toBe(200);
    expect(before.body).toMatch(new RegExp(`^${store.database}\tevents_v1\t[1-9]\\d*$`, "m"));
    const port = new URL(server.url).port;
    for (const { sql, refusal } of HOSTILE_SQL) {
      const answer = await ask(fill(sql, store.database, port));
      expect(answer.status, sql).toBeGreaterThanOrEqual(400);
      expect(answer.code, sql).toMatch(/^\d+$/);
      const lines = answer.body.trimEnd().split("\n");
      expect(lines, sql).toHaveLength(1);
      expect(lines[0], sql).toMatch(/^Code: \d+\. DB::Exception: .+\. \([A-Z_]+\)$/);
      expect(lines[0], sql).toMatch(refusal);
      expect(answer.body, sql).not.toContain(HMAC_KEY);
      expect(answer.body, sql).not.toMatch(/root:x:0:0|LINEAGE_AUDIT_/);
    }
    const after = await ask(TABLES_SQL);
    expect(after.body).toBe(before.body);
    expect(existsSync(OUT)).toBe(false);
  });

  it("lets every documented analyst question through (docs/sql.md)", async () => {
    const doc = readFileSync(new URL("../../docs/sql.md", import.meta.url), "utf8");
    const questions = [...doc.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1] as string);
    expect(questions.length).toBeGreaterThanOrEqual(14);
    for (const sql of questions) {
      const answer = await ask(sql.replace("<32-hex pseudonym>", "0".repeat(32)));
      expect(answer.status, `${sql}\n${answer.body}`).toBe(200);
    }
  });

  it("keeps the intake writing afterwards", async () => {
    const { codec } = core();
    const emitter = createEmitter({ transport: createInProcessTransport(processor), pseudonymKey: HMAC_KEY }, { codec });
    const extra = emptyGroundTruth();
    for (const input of generateScenario({ users: 20, seed: 9 }, extra)) await emitter.emit(input);
    await emitter.close();
    const count = await ask("SELECT uniqExact(event_id) FROM events_v1");
    expect(Number(count.body.trim())).toBe(truth.events + extra.events);
  });

  it("stops a query at its limits with ClickHouse's own error code", async () => {
    const limited = await openStore({
      path: join(dir, "http"),
      database: store.database,
      analystLimits: { maxExecutionTime: 1, maxResultRows: 1000 },
    });
    try {
      const tooMany = await limited.analystQuery({ sql: "SELECT number FROM numbers(100000)" }).then(
        () => undefined,
        (error: unknown) => error as Error & { context: Record<string, unknown> },
      );
      expect(tooMany?.context["clickhouseName"]).toBe("TOO_MANY_ROWS_OR_BYTES");
      const slow = await limited.analystQuery({ sql: "SELECT count() FROM numbers(1000000000000)" }).then(
        () => undefined,
        (error: unknown) => error as Error & { context: Record<string, unknown> },
      );
      expect(slow?.context["clickhouseName"]).toBe("TIMEOUT_EXCEEDED");
      expect(slow?.message.split("\n")).toHaveLength(1);
    } finally {
      await limited.close();
    }
  });
});

describe("lineage-audit sql refuses every hostile statement", () => {
  const BIN = new URL("../../bin/lineage-audit.mjs", import.meta.url).pathname;
  const env = { PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: join(dir, "cli"), LINEAGE_AUDIT_DATABASE: "demo" };
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env, encoding: "utf8", timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("answers each with one line on stderr and exit 1, and the tables and row counts stay as they were", { timeout: 900_000 }, () => {
    const demo = cli(["demo", "--users", "100", "--quiet"]);
    expect(demo.code, demo.stderr).toBe(0);
    const before = cli(["sql", TABLES_SQL]);
    expect(before.code, before.stderr).toBe(0);
    expect(before.stdout).toMatch(/^demo\tevents_v1\t[1-9]\d*$/m);
    for (const { sql, refusal } of HOSTILE_SQL) {
      const r = cli(["sql", fill(sql, "demo", "9")]);
      expect(r.code, sql).toBe(1);
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines, `${sql}\n${r.stderr}`).toHaveLength(1);
      expect(lines[0], sql).toMatch(/^lineage-audit: /);
      expect(lines[0], sql).toMatch(refusal);
      expect(r.stdout, sql).toBe("");
    }
    const after = cli(["sql", TABLES_SQL]);
    expect(after.stdout).toBe(before.stdout);
    expect(existsSync(OUT)).toBe(false);
  });
});
