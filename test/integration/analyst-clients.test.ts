// Issue 8, item 21: the analyst interface speaks ClickHouse's HTTP protocol as real clients expect
// it. clickhouse-connect (Python, with pandas) and the official JDBC driver run as the test's
// children, from the place .ci/clients.sh installs them; curl checks the protocol's details.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore, type Store } from "../../services/store/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import { createEmitter, createInProcessTransport } from "../../services/emitter/index.ts";
import { startAnalystServer, type AnalystServer } from "../../services/api/index.ts";
import { cityHash128 } from "../../services/api/compressed.ts";
import { emptyGroundTruth, generateScenario } from "../../services/demo/index.ts";
import { core, HMAC_KEY, randomDatabase, tempDir } from "./helpers.ts";

const CLIENTS = process.env["LINEAGE_AUDIT_CLIENTS_DIR"] ?? join(homedir(), ".cache/lineage-audit/clients");
const PYTHON = join(CLIENTS, "py/bin/python");
const JARS = join(CLIENTS, "jdbc");
const ROOT = new URL("../../", import.meta.url).pathname;
const USER = "analyst";
const PASSWORD = "clients-test-password";

const dir = tempDir("lineage-clients-");
let store: Store;
let server: AnalystServer;
const truth = emptyGroundTruth();

beforeAll(async () => {
  store = await openStore({ path: dir, database: randomDatabase("cl") });
  await store.migrate();
  const { taxonomy, policy, codec } = core();
  const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
  const emitter = createEmitter({ transport: createInProcessTransport(processor), pseudonymKey: HMAC_KEY, maxBatch: 1000 }, { codec });
  for (const input of generateScenario({ users: 1000, seed: 4 }, truth)) await emitter.emit(input);
  await emitter.close();
  server = await startAnalystServer(store, { port: 0, user: USER, password: PASSWORD });
});
afterAll(async () => {
  await server?.close();
  await store?.close();
});

async function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(command, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const [code] = (await once(child, "exit")) as [number];
  return { code, stdout, stderr };
}

/** The installed clients, or a failure that says how to install them (never a skip). */
function needClients(): void {
  if (!existsSync(PYTHON) || !existsSync(JARS) || !readdirSync(JARS).some((f) => f.startsWith("jdbc-v2-")))
    throw new Error(`analyst clients missing in ${CLIENTS}: run bash .ci/clients.sh`);
}

describe("real ClickHouse clients against the analyst interface", () => {
  it("clickhouse-connect connects, queries, reads a pandas DataFrame and gets refusals as ClickHouse errors", async () => {
    needClients();
    const r = await run(PYTHON, ["test/clients/python/query.py", server.url, USER, PASSWORD]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      server_version: string;
      events: number;
      frame: { shape: number[]; columns: string[]; dtypes: string[]; users: number };
      refused: string;
    };
    expect(out.server_version).toMatch(/^\d+\.\d+\.\d+/);
    expect(out.events).toBe(truth.events);
    expect(out.frame.columns).toEqual(["service", "users"]);
    expect(out.frame.shape[0]).toBeGreaterThan(0);
    expect(out.frame.dtypes[1]).toMatch(/int/);
    const [expected] = await store.query<{ n: string }>(
      `SELECT sum(users) AS n FROM (SELECT service, uniqExact(subject_id) AS users FROM ${store.database}.violation_subjects_v1 WHERE rule_id = 'security-contact-not-for-marketing' GROUP BY service)`,
    );
    expect(truth.affectedUsers).toBeGreaterThan(0);
    expect(out.frame.users).toBe(Number(expected?.n));
    expect(out.refused).toMatch(/code: 164.*read-only: SYSTEM is not allowed/);
  });

  it("the official JDBC driver (0.10.0) connects with its default native compression, reads rows and sees refusals", async () => {
    needClients();
    const url = `jdbc:clickhouse://${new URL(server.url).host}/${store.database}`;
    const r = await run("java", [
      "-cp",
      `${JARS}/*`,
      "test/clients/jdbc/Query.java",
      url,
      USER,
      PASSWORD,
      "SELECT uniqExact(event_id) AS events FROM events_v1",
      "SELECT service, uniqExact(subject_id) AS users FROM violation_subjects_v1 GROUP BY service ORDER BY service",
      "SELECT * FROM file('/etc/passwd', 'LineAsString')",
      "SELECT * FROM no_such_table",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^connected ClickHouse \d+\.\d+/);
    expect(lines[1]).toMatch(/^metadata\t([2-9]\d) tables\t([2-9]\d) columns of events_v1$/);
    expect(lines[2]).toBe("columns\tevents:UInt64");
    expect(lines[3]).toBe(`row\t${truth.events}`);
    expect(lines[4]).toBe("columns\tservice:String\tusers:UInt64");
    expect(lines[5]).toMatch(/^row\t\S+\t[1-9]\d*$/);
    expect(lines).toContainEqual(expect.stringMatching(/^ERROR 497 .*read-only: table function file is not allowed/));
    expect(lines).toContainEqual(expect.stringMatching(/^ERROR 60 .*no_such_table/));
  });
});

describe("the protocol with curl", () => {
  let bodies = 0;
  async function curl(args: string[], body?: string) {
    // From a file: a command line argument holds at most 128 KiB.
    const file = join(dir, `body-${bodies++}`);
    if (body !== undefined) writeFileSync(file, body);
    const r = await run("curl", [
      "-sS",
      "-D",
      "-",
      "-u",
      `${USER}:${PASSWORD}`,
      ...(body === undefined ? [] : ["--data-binary", `@${file}`]),
      ...args,
    ]);
    const split = r.stdout.indexOf("\r\n\r\n");
    const head = r.stdout.slice(0, split);
    const headers = Object.fromEntries(
      head
        .split("\r\n")
        .slice(1)
        .map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
    );
    return { status: Number(head.split(" ")[1]), headers, body: r.stdout.slice(split + 4) };
  }
  const at = (query: string) => `${server.url}/?${query}`;

  it("answers TabSeparated by default with ClickHouse's headers, a generated query id and a summary", async () => {
    const r = await curl([at("query=SELECT+1+AS+a,+'x'+AS+b")]);
    expect(r.status).toBe(200);
    expect(r.body).toBe("1\tx\n");
    expect(r.headers["content-type"]).toBe("text/tab-separated-values; charset=UTF-8");
    expect(r.headers["x-clickhouse-format"]).toBe("TabSeparated");
    expect(r.headers["x-clickhouse-timezone"]).toMatch(/UTC/);
    expect(r.headers["x-clickhouse-query-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.headers["x-clickhouse-server-display-name"]).toBe("lineage-audit");
    expect(JSON.parse(r.headers["x-clickhouse-summary"] ?? "{}")).toMatchObject({ read_rows: expect.any(String), result_rows: "1" });
    const given = await curl([at("query_id=my-query-1&session_id=s1")], "SELECT 1");
    expect(given.headers["x-clickhouse-query-id"]).toBe("my-query-1");
    expect(given.headers["x-clickhouse-session-id"]).toBe("s1");
  });

  it("takes default_format, database and param_ values; a FORMAT in the query wins", async () => {
    const json = await curl(
      [at(`default_format=JSONEachRow&database=${store.database}`)],
      "SELECT uniqExact(event_id) AS n FROM events_v1",
    );
    expect(json.headers["x-clickhouse-format"]).toBe("JSONEachRow");
    expect(json.headers["content-type"]).toMatch(/^application\/json/);
    expect(Number((JSON.parse(json.body) as { n: number | string }).n)).toBe(truth.events);
    const csv = await curl([at("default_format=JSONEachRow")], "SELECT 1 AS a FORMAT CSVWithNames");
    expect(csv.headers["x-clickhouse-format"]).toBe("CSVWithNames");
    expect(csv.body).toBe('"a"\n1\n');
    const bound = await curl(
      [at("param_rule=security-contact-not-for-marketing")],
      "SELECT uniqExact(subject_id) FROM violation_subjects_v1 WHERE rule_id = {rule:String}",
    );
    expect(Number(bound.body.trim())).toBe(truth.affectedUsers);
    const other = await curl([at("database=system")], "SELECT 1");
    expect(other.status).toBe(404);
    expect(other.headers["x-clickhouse-exception-code"]).toBe("81");
  });

  it("compresses when asked: gzip with enable_http_compression=1, ClickHouse blocks with compress=1", async () => {
    const gz = await run("curl", [
      "-sS",
      "-u",
      `${USER}:${PASSWORD}`,
      "-H",
      "Accept-Encoding: gzip",
      "-o",
      join(dir, "gz"),
      "-D",
      join(dir, "gz.h"),
      at("enable_http_compression=1&query=SELECT+number+FROM+numbers(1000)"),
    ]);
    expect(gz.code, gz.stderr).toBe(0);
    expect(readFileSync(join(dir, "gz.h"), "utf8")).toMatch(/content-encoding: gzip/i);
    const text = gunzipSync(readFileSync(join(dir, "gz"))).toString();
    expect(text.split("\n")).toHaveLength(1001);
    const blocks = await run("curl", [
      "-sS",
      "-u",
      `${USER}:${PASSWORD}`,
      "-o",
      join(dir, "blocks"),
      at("compress=1&query=SELECT+number+FROM+numbers(10)"),
    ]);
    expect(blocks.code, blocks.stderr).toBe(0);
    const raw = readFileSync(join(dir, "blocks"));
    expect(raw[16]).toBe(0x82);
    const size = raw.readUInt32LE(17);
    const [low, high] = cityHash128(raw.subarray(16, 16 + size));
    expect(raw.readBigUInt64LE(0)).toBe(low);
    expect(raw.readBigUInt64LE(8)).toBe(high);
    // An LZ4 block of literals only: a token, one more length byte (20 literals), the literals.
    expect(raw.subarray(16 + 9 + 2, 16 + size).toString()).toBe("0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n");
  });

  it("answers errors in ClickHouse's shape with its codes and HTTP statuses", async () => {
    const cases: [string[], string | undefined, number, string, RegExp][] = [
      [[at("")], "SYSTEM STOP MERGES", 403, "164", /^Code: 164\. DB::Exception: read-only: SYSTEM is not allowed\. \(READONLY\)\n$/],
      [[at("")], "SELECT * FROM no_such_table", 404, "60", /\(UNKNOWN_TABLE\)\n$/],
      [[at("")], "SELEC 1", 400, "62", /\(SYNTAX_ERROR\)\n$/],
      [[at("")], "SELECT * FROM system.disks", 403, "497", /read-only: table system\.disks is not allowed.*\(ACCESS_DENIED\)\n$/],
      [[at("max_execution_time=0")], "SELECT 1", 403, "164", /setting max_execution_time cannot be changed/],
      [[at("max_result_rows=0")], "SELECT 1", 403, "164", /setting max_result_rows cannot be changed/],
      [[at("")], `SELECT '${"x".repeat(300_000)}'`, 413, "62", /over 262144 bytes/],
    ];
    for (const [args, body, status, code, pattern] of cases) {
      const r = await curl(args, body);
      expect(r.status, body?.slice(0, 40)).toBe(status);
      expect(r.headers["x-clickhouse-exception-code"], body?.slice(0, 40)).toBe(code);
      expect(r.body, body?.slice(0, 40)).toMatch(pattern);
    }
    const harmless = await curl([at("output_format_json_quote_64bit_integers=1&wait_end_of_query=1")], "SELECT 1");
    expect(harmless.status).toBe(200);
    const intruder = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-u", `${USER}:wrong`, at("query=SELECT+1")]);
    expect(intruder.stdout).toBe("401");
    const longUrl = await run("curl", [
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-u",
      `${USER}:${PASSWORD}`,
      at(`query=SELECT+'${"x".repeat(20_000)}'`),
    ]);
    expect(longUrl.stdout).toBe("431");
    const ping = await run("curl", ["-sS", `${server.url}/ping`]);
    expect(ping.stdout).toBe("Ok.\n");
  });
});
