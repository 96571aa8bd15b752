// A write cut short between a table's insert and its materialized views' (chDB, real engine):
// ClickHouse commits the source's part first and fills each view's table in an insert of its own,
// so a process killed between them leaves source rows whose view rows never come (a violation
// whose people are missing from violation_subjects_v1, and from every affected count). At open,
// refillViews finds them among the newest inserts and gives them to the views again.
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { openStore, REFILL_INSERTS, refillViews, Table, type Store } from "../../services/store/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import type { DataAccessEvent } from "../../services/codec/index.ts";
import { ADS, collect, deriveFields, EMAIL, map, pseudo, read, ref, use } from "../unit/helpers.ts";
import { parseConfig } from "../../services/config/index.ts";
import { openAuditor } from "../../services/cli/context.ts";
import { core, HMAC_KEY, randomDatabase, tempDir } from "./helpers.ts";

const SERVICE = "essential.service";
const VIEWS = ["event_subjects_mv", "event_ids_v2_mv", "lineage_fact_datasets_mv", "violation_subjects_mv", "affected_daily_mv"];
const dir = tempDir("lineage-refill-");
const stores: Store[] = [];
afterAll(async () => {
  for (const s of stores) await s.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

async function open(database = randomDatabase("refill")): Promise<Store> {
  const store = await openStore({ path: dir, database });
  stores.push(store);
  await store.migrate();
  return store;
}

const subjects = (from: number, n: number) => Array.from({ length: n }, (_, i) => pseudo(`refill-${from + i}`));

/** Collections, a derivation and misuses: rows for every table a view reads. */
function batches(): [DataAccessEvent[], DataAccessEvent[]] {
  const first = [
    collect("users", { email: [EMAIL] }, [SERVICE], { subjects: subjects(0, 20) }),
    deriveFields([map(ref("ads.audience", "email"), [ref("users", "email")])]),
    use([read("ads.audience", "email")], [ADS], { subjects: subjects(0, 10) }),
  ];
  const second = [
    collect("users", { email: [EMAIL] }, [SERVICE], { subjects: subjects(20, 30) }),
    deriveFields([map(ref("ads.partner", "email"), [ref("users", "email")])]),
    use([read("ads.audience", "email")], [ADS], { subjects: subjects(5, 25) }),
    use([read("ads.partner", "email")], [ADS], { subjects: subjects(20, 30) }),
  ];
  return [first, second];
}

/** What the views' tables hold, as sorted text (sets per day for affected_daily_v1). */
async function views(store: Store) {
  const db = store.database;
  const rows = async (sql: string) => (await store.query<Record<string, unknown>>(sql)).map((r) => JSON.stringify(Object.values(r))).sort();
  return {
    eventSubjects: await rows(`SELECT DISTINCT subject_id, event_id, kind, service, verdict FROM ${db}.${Table.subjects}`),
    eventIds: await rows(`SELECT DISTINCT event_id, content_sha256 FROM ${db}.${Table.eventIds}`),
    factDatasets: await rows(`SELECT DISTINCT dataset, role, fact_key FROM ${db}.${Table.factDatasets}`),
    violationSubjects: await rows(`SELECT DISTINCT rule_id, subject_id, violation_id, categories FROM ${db}.${Table.violationSubjects}`),
    daily: await rows(
      `SELECT rule_id, day, category, service, mode, uniqExactMerge(subjects_exact), uniqExactMerge(records_exact)
       FROM ${db}.affected_daily_v1 GROUP BY rule_id, day, category, service, mode`,
    ),
  };
}

/** The first batch whole; the second with `cut` views detached, as a kill between the inserts leaves it. */
async function write(store: Store, [first, second]: [DataAccessEvent[], DataAccessEvent[]], cut: readonly string[]): Promise<void> {
  const processor = createProcessor(core(), { sink: store });
  const process = async (events: DataAccessEvent[]) => {
    const result = await processor.processEvents(events.map((event, i) => ({ event, source: `refill#${i}` })));
    expect(result.rejected).toEqual([]);
  };
  await process(first);
  for (const view of cut) await store.command(`DETACH TABLE ${store.database}.${view}`);
  await process(second);
  for (const view of cut) await store.command(`ATTACH TABLE ${store.database}.${view}`);
}

/** The same events into two stores: one whole, one with `cut` views detached for the second batch. */
async function wholeAndCut(cut: readonly string[], events = batches()) {
  const whole = await open();
  const short = await open();
  await write(whole, events, []);
  await write(short, events, cut);
  return { events, whole, cut: short };
}

describe("refilling materialized views after a cut write (chDB)", () => {
  it("finds the source rows whose views' rows are missing and leaves every view as an uncut write would", async () => {
    const { events, whole, cut } = await wholeAndCut(VIEWS);
    const expected = await views(whole);
    expect(expected.violationSubjects.length).toBeGreaterThan(0);
    // The cut store is short in every view before the refill (else this test could not fail).
    const before = await views(cut);
    for (const key of Object.keys(expected) as (keyof typeof expected)[]) expect(before[key], key).not.toEqual(expected[key]);

    const report = await refillViews(cut);
    expect(report.map((r) => r.table)).toEqual([Table.facts, Table.events, Table.violations]);
    const second = events[1];
    expect(report.find((r) => r.table === Table.events)?.rows).toBe(second.length);
    // Uses of the second batch that broke a rule: one violation each.
    expect(report.find((r) => r.table === Table.violations)?.rows).toBeGreaterThanOrEqual(2);
    expect(await views(cut)).toEqual(expected);
    // Nothing is missing any more: a second open refills nothing.
    expect(await refillViews(cut)).toEqual([]);
  });

  it("gives the daily sets of people the newest rows' sets again, without repeating the rows they come from", async () => {
    const { whole, cut } = await wholeAndCut(["affected_daily_mv"]);
    expect((await views(cut)).daily).not.toEqual((await views(whole)).daily);

    const report = await refillViews(cut);
    expect(report).toEqual([{ table: Table.violationSubjects, views: ["affected_daily_v1"], rows: expect.any(Number) as number }]);
    expect(await views(cut)).toEqual(await views(whole));
    const raw = async (s: Store) =>
      (await s.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${s.database}.${Table.violationSubjects}`))[0]?.n;
    expect(await raw(cut)).toBe(await raw(whole));
    expect(await refillViews(cut)).toEqual([]);
  });

  it("finds a cut write that spans more months than the window has inserts (an insert takes a block a month)", async () => {
    const months = REFILL_INSERTS + 8;
    const first = [
      collect("users", { email: [EMAIL] }, [SERVICE], { subjects: subjects(100, 10), occurredAt: Date.UTC(2015, 0, 1) }),
      deriveFields([map(ref("ads.audience", "email"), [ref("users", "email")])], { occurredAt: Date.UTC(2015, 0, 2) }),
    ];
    const second = Array.from({ length: months }, (_, m) =>
      use([read("ads.audience", "email")], [ADS], { subjects: subjects(100 + (m % 10), 1), occurredAt: Date.UTC(2016, m, 15) }),
    );
    const { whole, cut } = await wholeAndCut(VIEWS, [first, second]);
    const expected = await views(whole);
    expect(expected.violationSubjects).toHaveLength(months);
    const report = await refillViews(cut);
    expect(report.find((r) => r.table === Table.violations)?.rows).toBe(months);
    expect(report.find((r) => r.table === Table.events)?.rows).toBe(months);
    expect(await views(cut)).toEqual(expected);
  });

  it("refills nothing in a store whose writes were never cut, or that is empty", async () => {
    const empty = await open();
    expect(await refillViews(empty)).toEqual([]);
    const whole = await open();
    await write(whole, batches(), []);
    expect(await refillViews(whole)).toEqual([]);
  });

  it("is done by every command that opens the auditor, before its processor reads what is stored", async () => {
    const { whole, cut } = await wholeAndCut(VIEWS);
    const ctx = await openAuditor(parseConfig({ LINEAGE_AUDIT_DATA: dir, LINEAGE_AUDIT_DATABASE: cut.database }));
    try {
      expect(ctx.refilled.map((r) => r.table)).toEqual([Table.facts, Table.events, Table.violations]);
      expect(await views(ctx.store)).toEqual(await views(whole));
    } finally {
      await ctx.close();
    }
  });

  it("is told by serve on stderr, one line a table refilled", { timeout: 120_000 }, async () => {
    const { cut } = await wholeAndCut(VIEWS);
    // One process a data directory: serve opens it once this process has let go.
    for (const s of stores.splice(0)) await s.close();
    const child = spawn(process.execPath, [new URL("../../bin/lineage-audit.mjs", import.meta.url).pathname, "serve", "--port", "0"], {
      env: {
        PATH: process.env["PATH"] ?? "",
        HOME: dir,
        LINEAGE_AUDIT_DATA: dir,
        LINEAGE_AUDIT_DATABASE: cut.database,
        LINEAGE_AUDIT_HMAC_KEY: HMAC_KEY,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    const listening = await new Promise<boolean>((resolve) => {
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString("utf8");
        if (stderr.includes("/v1/events")) resolve(true);
      });
      child.once("exit", () => resolve(false));
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
    expect(listening, stderr).toBe(true);
    const said = stderr.split("\n").filter((l) => l.includes("again: a write before was cut short"));
    expect(said).toEqual([
      expect.stringMatching(/^lineage-audit serve: \d+ row\(s\) of lineage_facts_v1 given to lineage_fact_datasets_v1 again/),
      expect.stringMatching(/^lineage-audit serve: \d+ row\(s\) of events_v1 given to event_subjects_v1 and event_ids_v2 again/),
      expect.stringMatching(
        /^lineage-audit serve: \d+ row\(s\) of violations_v1 given to violation_subjects_v1 and affected_daily_v1 again/,
      ),
    ]);
  });

  it("after SIGKILLs in the middle of writes, the refill leaves every violation's people in the views", { timeout: 180_000 }, async () => {
    // chDB opens one data directory a process: the other tests' stores are closed first.
    for (const s of stores.splice(0)) await s.close();
    const path = tempDir("lineage-refill-kill-");
    try {
      let gaps = 0;
      for (let round = 0; round < 5; round++) {
        const child = spawn(
          process.execPath,
          ["--import", "tsx", new URL("./refill-child.ts", import.meta.url).pathname, path, String(round)],
          {
            stdio: ["ignore", "pipe", "inherit"],
          },
        );
        await new Promise<void>((resolve, reject) => {
          child.stdout.once("data", () => resolve());
          child.once("exit", (code) => reject(new Error(`the writer exited (${code}) before writing`)));
        });
        await new Promise((r) => setTimeout(r, 400 + Math.random() * 1200));
        child.kill("SIGKILL");
        await new Promise((r) => child.once("exit", r));
        const store = await openStore({ path, database: "killed" });
        try {
          const counts = async () =>
            (
              await store.query<{ v: string; vs: string; people: string; daily: string }>(
                `SELECT (SELECT toString(count(DISTINCT violation_id)) FROM killed.violations_v1) AS v,
                        (SELECT toString(count(DISTINCT violation_id)) FROM killed.violation_subjects_v1) AS vs,
                        (SELECT toString(count(DISTINCT subject_id)) FROM killed.violation_subjects_v1) AS people,
                        (SELECT toString(uniqExactMerge(subjects_exact)) FROM killed.affected_daily_v1) AS daily`,
              )
            )[0];
          const before = await counts();
          if (before?.v !== before?.vs || before?.people !== before?.daily) gaps++;
          await refillViews(store);
          const after = await counts();
          expect(Number(after?.v)).toBeGreaterThan(0);
          expect(after?.vs).toBe(after?.v);
          expect(after?.daily).toBe(after?.people);
          // Eight people a violation, each in one violation only.
          expect(Number(after?.people)).toBe(Number(after?.v) * 8);
        } finally {
          await store.close();
        }
      }
      // How often a kill fell between the inserts (not asserted: it depends on timing).
      console.log(`refill after SIGKILL: ${gaps} of 5 kills left a view short`);
    } finally {
      rmSync(path, { recursive: true, force: true });
    }
  });
});
