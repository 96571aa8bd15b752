// Issue 10, "multi-node ready": the ON CLUSTER / Distributed variant of the tables in docs/tables.md
// and the replay's compiled statements are checked with ClickHouse's own parser (formatQuery, in
// chDB). No cluster runs here; what a cluster would run must at least be what ClickHouse reads.
import { readFileSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { replayRulesSql } from "../../services/replay/index.ts";
import { openStore, splitStatements, type Store } from "../../services/store/index.ts";
import { core, randomDatabase, tempDir } from "./helpers.ts";

const dir = tempDir();
let store: Store;
const { policy } = core();

beforeAll(async () => {
  store = await openStore({ path: dir, database: randomDatabase("cluster") });
  await store.migrate();
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** ClickHouse's formatting of a statement: it throws when the parser refuses it. */
async function format(sql: string): Promise<string> {
  const [row] = await store.query<{ f: string }>("SELECT formatQuery({q:String}) AS f", { q: sql });
  return row?.f ?? "";
}

function clusterBlock(): string {
  const doc = readFileSync(new URL("../../docs/tables.md", import.meta.url), "utf8");
  const section = doc.slice(doc.indexOf("## On a cluster"));
  const match = /```sql\n([\s\S]*?)```/.exec(section);
  if (!match?.[1]) throw new Error("docs/tables.md has no sql block under '## On a cluster'");
  return match[1];
}

describe("the tables on a cluster (docs/tables.md), by ClickHouse's parser", () => {
  it("parses every statement of the documented cluster variant", async () => {
    const statements = splitStatements(clusterBlock());
    expect(statements.length).toBeGreaterThanOrEqual(9);
    for (const s of statements) {
      const formatted = await format(s);
      expect(formatted).toContain("ON CLUSTER `{cluster}`");
    }
  });

  it("shards the uses and their violations alike, and replicates the replay's working tables whole", async () => {
    const statements = splitStatements(clusterBlock());
    const distributed = statements.filter((s) => /ENGINE = Distributed/.test(s));
    expect(distributed.map((s) => /CREATE TABLE lineage\.(\w+)/.exec(s)?.[1]).sort()).toEqual(["events_v1", "violations_v1"]);
    for (const s of distributed) expect(s).toContain("cityHash64(event_id)");
    for (const t of ["replay_shapes_v1", "replay_timeline_v1", "replay_epochs_v1", "replay_progress_v1"]) {
      const s = statements.find((x) => x.includes(`CREATE TABLE lineage.${t} `));
      expect(s, t).toMatch(/ENGINE = Replicated\w*MergeTree\('\/clickhouse\/tables\/all\//);
    }
  });

  it("documents every column the single-node tables have", async () => {
    const statements = splitStatements(clusterBlock());
    for (const table of [
      "events_v1",
      "violations_v1",
      "replay_shapes_v1",
      "replay_timeline_v1",
      "replay_epochs_v1",
      "replay_progress_v1",
    ]) {
      const columns = await store.query<{ name: string }>(
        `SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position`,
        { db: store.database, t: table },
      );
      const ddl =
        statements.find((s) => new RegExp(`CREATE TABLE lineage\\.${table}(_local)? ON CLUSTER '\\{cluster\\}'\\n\\(`).test(s)) ?? "";
      for (const c of columns) expect(ddl, `${table}.${c.name}`).toMatch(new RegExp(`\\n    ${c.name} `));
    }
  });

  it("parses the replay's compiled statements, which name the same tables a cluster has", async () => {
    const dry = await replayRulesSql(store, { policy, rulesText: "cluster", dryRun: true });
    expect(await format(dry.sql.verdicts)).toContain("ARRAY JOIN");
    const violations = dry.sql.violations
      .replace("{from}", "toDateTime64('2019-01-01 00:00:00', 3, 'UTC')")
      .replace("{to}", "toDateTime64('2019-02-01 00:00:00', 3, 'UTC')");
    const formatted = await format(violations);
    expect(formatted).toContain("ASOF INNER JOIN");
    expect(formatted).toContain(`INSERT INTO ${store.database}.violations_v1`);
  });
});
