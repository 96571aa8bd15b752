// Issue 10 on the demo store (chDB): the 2019 scenario streamed through the live processor, then
// replayed in SQL with the same rules, gives exactly the violations of the stream replay (the
// time-valid evaluator of record), as the demo emits it and fed in the order events occurred.
// (The live path judges a use by the lineage that had arrived, not occurred: docs/rules.md,
// "Replay".) A second replay adds nothing; one stopped halfway resumes and ends with the same
// violations; a dry run counts what a run writes and writes nothing.
import { readFileSync, rmSync } from "node:fs";
import type { DataAccessEvent } from "../../services/codec/index.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateScenario, emptyGroundTruth } from "../../services/demo/index.ts";
import { createEventBuilder, createPseudonymizer } from "../../services/emitter/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import { replayRules, replayRulesSql } from "../../services/replay/index.ts";
import { DEFAULT_POLICY_PATH } from "../../services/rules/index.ts";
import { openStore, Table, type Store } from "../../services/store/index.ts";
import { core, HMAC_KEY, randomDatabase, tempDir } from "./helpers.ts";

const dir = tempDir();
let store: Store;
const { taxonomy, policy, codec } = core();
const rulesText = readFileSync(DEFAULT_POLICY_PATH, "utf8");

/** Everything a violation says but how it was found (live or replay), when, and the route its path shows. */
const COMPARED =
  "violation_id, event_id, rule_id, basis, severity, mode, kind, toString(occurred_at) AS at, service, job_namespace, job_name, run_id, datasets, purposes, categories, collected_for, origins, label_ids, subjects, data_subject, recipient, recipient_external, trace_id, reason";

const violations = () =>
  store.query<Record<string, unknown>>(`SELECT ${COMPARED} FROM ${store.database}.${Table.violations} FINAL ORDER BY violation_id`);
const rowCount = async () =>
  Number((await store.query<{ n: string }>(`SELECT count() AS n FROM ${store.database}.${Table.violations}`))[0]?.n);
const retroactive = async () =>
  Number((await store.query<{ n: string }>(`SELECT countIf(retroactive = 1) AS n FROM ${store.database}.${Table.violations} FINAL`))[0]?.n);

/** The stream replay's violations on the time-ordered store: what every SQL replay must reproduce. */
let expected: Record<string, unknown>[] = [];
const build = createEventBuilder({ pseudonymize: createPseudonymizer(HMAC_KEY), pseudonymKeyId: "default" });
const demo = [
  ...generateScenario({ users: 3000, eventsPerUser: 1.5, seed: 11, start: "2019-06-01", matchingScale: 20 }, emptyGroundTruth()),
].map(build);

async function storeOf(events: readonly DataAccessEvent[]): Promise<Store> {
  const s = await openStore({ path: dir, database: randomDatabase("rsqldemo") });
  await s.migrate();
  const processor = createProcessor({ policy, taxonomy, codec }, { sink: s });
  for (let i = 0; i < events.length; i += 2000) {
    const result = await processor.processEvents(events.slice(i, i + 2000).map((event, j) => ({ event, source: `demo#${i + j}` })));
    expect(result.rejected).toEqual([]);
  }
  return s;
}

beforeAll(async () => {
  // In the order the events occurred, lineage before uses of the same millisecond.
  const lineageFirst = (k: string) => (k === "COLLECT" || k === "DERIVE" ? 0 : 1);
  store = await storeOf([...demo].sort((a, b) => a.occurredAt - b.occurredAt || lineageFirst(a.kind) - lineageFirst(b.kind)));
  // The live path flags at least what the time-valid replay does; the stream replay then rewrites
  // the rows it finds and the rest are cleared, so the store holds the replay's answer only.
  const liveIds = new Set((await violations()).map((v) => v["violation_id"]));
  const stream = await replayRules(store, { policy, rulesText: `${rulesText}\n# stream`, taxonomy });
  expect(stream.done).toBe(true);
  await store.command(`ALTER TABLE ${store.database}.${Table.violations} DELETE WHERE retroactive = 0 SETTINGS mutations_sync = 2`);
  expected = await violations();
  for (const v of expected) expect(liveIds.has(v["violation_id"])).toBe(true);
}, 300_000);
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("replay in SQL on the demo store (chDB)", () => {
  it("gives the stream replay's violations on the demo store as the demo emits it", async () => {
    const emitted = await storeOf(demo);
    try {
      const stream = await replayRules(emitted, { policy, rulesText, taxonomy });
      expect(stream.done).toBe(true);
      const byStream = await emitted.query<Record<string, unknown>>(
        `SELECT ${COMPARED} FROM ${emitted.database}.${Table.violations} FINAL ORDER BY violation_id`,
      );
      const sql = await replayRulesSql(emitted, { policy, rulesText });
      expect(sql.done).toBe(true);
      const bySql = await emitted.query<Record<string, unknown>>(
        `SELECT ${COMPARED} FROM ${emitted.database}.${Table.violations} FINAL WHERE retroactive = 1 ORDER BY violation_id`,
      );
      expect(bySql.length).toBeGreaterThan(50);
      expect(bySql).toEqual(byStream.filter((v) => bySql.some((w) => w["violation_id"] === v["violation_id"])));
      // Whatever the live path flagged and the time-valid replay did not is only what it saw of lineage that had not occurred yet.
      const [stale] = await emitted.query<{ n: string }>(
        `SELECT count() AS n FROM ${emitted.database}.${Table.violations} FINAL WHERE retroactive = 0`,
      );
      expect(Number(stale?.n)).toBeLessThan(bySql.length);
    } finally {
      await emitted.close();
    }
  }, 300_000);

  it("reproduces the stream replay's violations on the demo store fed in time order", async () => {
    expect(expected.length).toBeGreaterThan(50);
    expect(new Set(expected.map((v) => v["rule_id"])).size).toBeGreaterThan(1);
    await store.command(`TRUNCATE TABLE ${store.database}.${Table.violations}`);
    const result = await replayRulesSql(store, { policy, rulesText });
    expect(result.done).toBe(true);
    expect(await violations()).toEqual(expected);
    expect(await retroactive()).toBe(expected.length);
    expect(result.violations).toBe(expected.length);
  }, 300_000);

  it("adds nothing when run again, and says so", async () => {
    const before = await rowCount();
    const again = await replayRulesSql(store, { policy, rulesText });
    expect(again.alreadyDone).toBe(true);
    expect(again.violations).toBe(0);
    expect(await rowCount()).toBe(before);
  }, 300_000);

  it("resumes a replay stopped after its first chunk and ends with the same violations", async () => {
    const text = `${rulesText}\n# interrupted`;
    let chunks = 0;
    const first = await replayRulesSql(store, { policy, rulesText: text, chunkRows: 200, shouldStop: () => chunks++ >= 1 });
    expect(first.done).toBe(false);
    expect(first.events).toBeGreaterThan(0);
    const second = await replayRulesSql(store, { policy, rulesText: text, chunkRows: 200 });
    expect(second.resumed).toBe(true);
    expect(second.done).toBe(true);
    // The days done before were not evaluated again.
    expect(first.events + second.events).toBe(result0Events);
    expect(await violations()).toEqual(expected);
    const third = await replayRulesSql(store, { policy, rulesText: text, chunkRows: 200 });
    expect(third.alreadyDone).toBe(true);
  }, 300_000);

  it("dry run: prints the compiled SQL and counts what it would write, writing nothing", async () => {
    const before = await rowCount();
    const dry = await replayRulesSql(store, { policy, rulesText: `${rulesText}\n# dry`, dryRun: true });
    expect(dry.violations).toBe(expected.length);
    expect(Object.values(dry.byRule).reduce((a, b) => a + b, 0)).toBe(expected.length);
    expect(dry.sql.verdicts).toContain("ARRAY JOIN");
    expect(dry.sql.violations).toContain("ASOF INNER JOIN");
    expect(await rowCount()).toBe(before);
    const [progress] = await store.query<{ n: string }>(
      `SELECT count() AS n FROM ${store.database}.replay_progress_v1 WHERE replay_id = {id:String}`,
      { id: dry.replayId },
    );
    expect(Number(progress?.n)).toBe(0);
  }, 300_000);
});

let result0Events = 0;
beforeAll(async () => {
  const [n] = await store.query<{ n: string }>(`SELECT count() AS n FROM ${store.database}.${Table.events} WHERE kind IN ('USE', 'SHARE')`);
  result0Events = Number(n?.n);
});
