// Issue 9, speed: the exact count from bitmaps of subject ordinals (exactCount) equals the join
// over the holdings (exactAffected): users, records, first and last, on the worked examples and on
// random histories fed through a processor in random batches and orders, for windows that cut days.
import { rmSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Transform, type DataAccessEvent } from "../../services/codec/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import {
  exactAffected,
  exactCount,
  exactCounts,
  openStore,
  refreshProvenance,
  Table,
  windowPieces,
  type ExactWindow,
  type Store,
} from "../../services/store/index.ts";
import { HISTORY_DAY, HISTORY_START, HISTORY_SUBJECTS, historyArb, subjectsArb, timeArb, withIds } from "../reference/histories.ts";
import { ADS, collect, deriveFields, EMAIL, map, PHONE, pseudo, read, ref, SECURITY, share, use } from "../unit/helpers.ts";
import { core, randomDatabase, tempDir } from "./helpers.ts";

const RULE = "security-contact-not-for-marketing";
const DAY = 86_400_000;
const HOUR = 3_600_000;
const MINUTE = 60_000;
const day = (n: number) => Date.UTC(2019, 0, 1) + n * DAY;
const [alice, bob, carol, dave, erin] = ["alice", "bob", "carol", "dave", "erin"].map((n) => pseudo(n)) as [
  string,
  string,
  string,
  string,
  string,
];

const dir = tempDir();
let store: Store;
const { taxonomy, policy, codec } = core();

async function freshStore(): Promise<void> {
  await store?.close();
  store = await openStore({ path: dir, database: randomDatabase("bitmaps") });
  await store.migrate();
}
beforeAll(freshStore);
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Feeds `history` through a new processor in `batches` batches into a fresh database and refreshes the model. */
async function feed(history: readonly DataAccessEvent[], batches = 1): Promise<void> {
  await freshStore();
  const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
  const size = Math.max(1, Math.ceil(history.length / batches));
  for (let i = 0; i < history.length; i += size) {
    const result = await processor.processEvents(history.slice(i, i + size).map((event, k) => ({ event, source: `test#${i + k}` })));
    expect(result.rejected).toEqual([]);
  }
  await refreshProvenance(store, policy);
}

/** exactCount equals exactAffected's exact users, records, first and last for each rule and window. */
async function expectBitmapsEqualJoins(rules: readonly string[], windows: readonly ExactWindow[]) {
  for (const window of windows) {
    // Every rule at once (as the console's overview asks), and a rule with nothing counted.
    const all = await exactCounts(store, [...rules, "no-such-rule"], window);
    expect(all.get("no-such-rule")).toEqual({ users: 0, records: 0, first: null, last: null });
    for (const rule of rules) {
      const joined = (await exactAffected(store, rule, window)).exact;
      const expected = { users: joined.users, records: joined.records, first: joined.first, last: joined.last };
      expect({ rule, window, count: await exactCount(store, rule, window) }).toEqual({ rule, window, count: expected });
      expect({ rule, window, count: all.get(rule) }).toEqual({ rule, window, count: expected });
    }
  }
}

/**
 * Security-collected contact data in wh/a and uses of it for advertising, on random days and
 * subjects: mixed into a random history (whose lineage may copy, delete or re-label it), so that
 * most histories affect someone exactly.
 */
function plantedArb(days: number): fc.Arbitrary<DataAccessEvent[]> {
  return fc
    .record({
      collected: fc.subarray([...HISTORY_SUBJECTS], { minLength: 1 }),
      at: timeArb(days),
      uses: fc.array(fc.record({ at: timeArb(days), subjects: subjectsArb, field: fc.constantFrom("x", "y") }), {
        minLength: 1,
        maxLength: 4,
      }),
    })
    .map(({ collected, at, uses }) => [
      collect("a", { x: [PHONE], y: [EMAIL] }, [SECURITY], { subjects: collected, occurredAt: at }),
      ...uses.map((u) => use([read("a", u.field)], [ADS], { subjects: u.subjects, occurredAt: u.at })),
    ]);
}

describe("exact count from bitmaps of subject ordinals", () => {
  it("splits a window into whole blocks of 128, 32 and 8 days, days and hours, and the uses of its partial hours", () => {
    // 2019-01-01 is day 17,897 since the epoch: day(23) starts a 128-day block, day(55) a 32-day one, day(7) and day(63) 8-day ones.
    const from = day(0) + HOUR + 5;
    const to = day(70) + 2 * HOUR + 7;
    expect(windowPieces(from, to)).toEqual({
      blocks: [
        { hours: 768, from: day(23), to: day(55) },
        { hours: 192, from: day(7), to: day(23) },
        { hours: 192, from: day(55), to: day(63) },
        { hours: 24, from: day(1), to: day(7) },
        { hours: 24, from: day(63), to: day(70) },
        { hours: 1, from: day(0) + 2 * HOUR, to: day(1) },
        { hours: 1, from: day(70), to: day(70) + 2 * HOUR },
      ],
      uses: [
        { from, to: day(0) + 2 * HOUR },
        { from: day(70) + 2 * HOUR, to },
      ],
    });
    expect(windowPieces(day(3) + HOUR, day(3) + 2 * HOUR)).toEqual({
      blocks: [{ hours: 1, from: day(3) + HOUR, to: day(3) + 2 * HOUR }],
      uses: [],
    });
    expect(windowPieces(day(23) - HOUR, day(23 + 128 + 32) + HOUR).blocks.slice(0, 2)).toEqual([
      { hours: 3072, from: day(23), to: day(151) },
      { hours: 768, from: day(151), to: day(183) },
    ]);
    expect(windowPieces(day(3) + 1, day(3) + 2)).toEqual({ blocks: [], uses: [{ from: day(3) + 1, to: day(3) + 2 }] });
    expect(windowPieces(day(3), day(3))).toEqual({ blocks: [], uses: [] });
    // Before the epoch too: blocks stay aligned.
    expect(windowPieces(-2 * DAY - HOUR - 1, -DAY)).toEqual({
      blocks: [
        { hours: 24, from: -2 * DAY, to: -DAY },
        { hours: 1, from: -2 * DAY - HOUR, to: -2 * DAY },
      ],
      uses: [{ from: -2 * DAY - HOUR - 1, to: -2 * DAY - HOUR }],
    });
  });

  it("counts alice alone in the issue's four-line example, and nobody before the use", async () => {
    await feed([
      use([read("profile.contact", "phone")], [ADS], { subjects: [alice, carol, erin], occurredAt: day(3) + 5 * HOUR }),
      collect("accounts.users", { phone: [PHONE] }, ["essential.service", "marketing.advertising"], {
        subjects: [carol, dave],
        occurredAt: day(1),
      }),
      collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { subjects: [alice, bob], occurredAt: day(1) }),
      deriveFields(
        [map(ref("profile.contact", "phone"), [ref("accounts.users", "phone"), ref("security.two_factor", "phone")], Transform.copy)],
        { occurredAt: day(2) },
      ),
    ]);
    const at = day(3) + 5 * HOUR;
    expect(await exactCount(store, RULE)).toEqual({ users: 1, records: 1, first: at, last: at });
    expect(await exactCount(store, RULE, { from: day(3) + 5 * HOUR + 1 })).toEqual({ users: 0, records: 0, first: null, last: null });
    expect(await exactCount(store, RULE, { from: day(3) + HOUR, to: day(3) + 6 * HOUR })).toEqual({
      users: 1,
      records: 1,
      first: at,
      last: at,
    });
    expect(await exactCount(store, RULE, { category: "user.contact" })).toEqual({ users: 1, records: 1, first: at, last: at });
    expect(await exactCount(store, RULE, { category: "user.health" })).toEqual({ users: 0, records: 0, first: null, last: null });
    expect(await exactCount(store, "no-such-rule")).toEqual({ users: 0, records: 0, first: null, last: null });
    await expectBitmapsEqualJoins(
      [RULE],
      [{}, { to: day(3) }, { from: day(3) - HOUR, to: day(3) + 6 * HOUR }, { category: "user.contact" }],
    );
  });

  it("fills the bitmaps of a snapshot committed without them, and drops them with the snapshot", async () => {
    const db = store.database;
    const v = (await store.query<{ v: string }>(`SELECT toString(max(version)) AS v FROM ${db}.${Table.provenanceVersions}`))[0]!.v;
    for (const table of [Table.subjectOrdinals, Table.exactUses, Table.exactRollups, Table.exactVersions]) {
      await store.command(`ALTER TABLE ${db}.${table} DROP PARTITION ID '${v}'`);
    }
    expect(await exactCount(store, RULE)).toMatchObject({ users: 1, records: 1 });
    const bitmapVersions = async () =>
      (await store.query<{ v: string }>(`SELECT DISTINCT toString(version) AS v FROM ${db}.${Table.exactUses} ORDER BY v`)).map((r) => r.v);
    expect(await bitmapVersions()).toEqual([v]);
    // Two more snapshots: the first one's bitmaps are dropped with it.
    await refreshProvenance(store, policy, { force: true });
    await refreshProvenance(store, policy, { force: true });
    expect(await bitmapVersions()).not.toContain(v);
    expect((await bitmapVersions()).length).toBe(2);
    expect(await exactCount(store, RULE)).toMatchObject({ users: 1, records: 1 });
  });

  it("equals the joins on the worked examples: deletions, subject-named runs, a whole-table export", async () => {
    const twoFactor = (subjects: string[], at: number) =>
      collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { subjects, occurredAt: at });
    const copy = (at: number, subjects: string[] = []) =>
      deriveFields([map(ref("profile.contact", "phone"), [ref("security.two_factor", "phone")], Transform.copy)], {
        occurredAt: at,
        subjects,
      });
    const match = (subjects: string[], at: number) => use([read("profile.contact", "phone")], [ADS], { subjects, occurredAt: at });
    const erase = (subjects: string[], at: number, ...datasets: string[]): DataAccessEvent => ({
      ...use(
        datasets.map((d) => read(d, "phone")),
        [],
      ),
      kind: "DELETE",
      subjects,
      occurredAt: at,
    });
    const windows = [{}, { from: day(2) + HOUR }, { to: day(4) + HOUR }, { from: day(1) + HOUR, to: day(40) }];
    await feed([
      twoFactor([alice, bob], day(1)),
      copy(day(1)),
      erase([bob], day(2), "security.two_factor"),
      erase([alice], day(2), "security.two_factor", "profile.contact"),
      match([alice, bob], day(3)),
      match([alice, bob, carol], day(3) + HOUR),
      // Naming nobody: every subject held there with per-subject evidence (carol only, after the deletions).
      twoFactor([carol], day(2) + HOUR),
      share(
        [read("security.two_factor", "phone")],
        ["essential.service"],
        { name: "vendor", external: true },
        { occurredAt: day(3) + 2 * HOUR },
      ),
    ]);
    expect(await exactCount(store, "security-data-not-shared-externally")).toEqual({
      users: 1,
      records: 1,
      first: day(3) + 2 * HOUR,
      last: day(3) + 2 * HOUR,
    });
    await expectBitmapsEqualJoins([RULE, "security-data-not-shared-externally"], windows);
    await feed([
      twoFactor([bob, carol], day(0)),
      copy(day(1), [alice]),
      twoFactor([alice], day(1) + HOUR),
      match([alice, bob, carol], day(2)),
      copy(day(3), [bob]),
      match([alice, bob, carol], day(4)),
      match([alice, dave], day(45) + 3 * HOUR),
    ]);
    expect(await exactCount(store, RULE)).toEqual({ users: 2, records: 2, first: day(2), last: day(45) + 3 * HOUR });
    await expectBitmapsEqualJoins([RULE], windows);
  });

  it("equals the joins on random histories, in random batches and arrival orders, for windows cutting hours", async () => {
    let run = 0;
    let nonEmpty = 0;
    await fc.assert(
      fc.asyncProperty(
        fc
          .constantFrom(5, 40)
          .chain((days) => fc.tuple(historyArb({ maxEvents: 10, days }), plantedArb(days)))
          .map(([random, planted]) => [...random, ...planted]),
        fc.integer({ min: 1, max: 3 }),
        fc.boolean(),
        fc.array(
          // In minutes: the uses fall on whole hours, so a window's partial hours may hold some.
          fc
            .tuple(fc.integer({ min: -2 * 24 * 60, max: 42 * 24 * 60 }), fc.integer({ min: 0, max: 42 * 24 * 60 }))
            .map(([start, minutes]) => ({
              from: HISTORY_START + start * MINUTE,
              to: HISTORY_START + (start + minutes) * MINUTE,
            })),
          { minLength: 2, maxLength: 3 },
        ),
        async (generated, batches, reversed, cuts) => {
          const history = withIds(generated, ++run);
          await feed(reversed ? [...history].reverse() : history, batches);
          const rules = (
            await store.query<{ r: string }>(`SELECT DISTINCT rule_id AS r FROM ${store.database}.${Table.useForbidden} ORDER BY r`)
          ).map((x) => x.r);
          const times = [...new Set(history.filter((e) => e.kind === "USE" || e.kind === "SHARE").map((e) => e.occurredAt))];
          const windows: ExactWindow[] = [
            {},
            { to: HISTORY_START + 2 * HISTORY_DAY },
            { from: HISTORY_START + HISTORY_DAY + 1 },
            ...cuts,
            // Each cutting the hour of a use: before it, after it, or around it across a 32-day block.
            ...times
              .slice(0, 2)
              .flatMap((t) => [
                { from: t, to: t + 1 },
                { to: t + 1 },
                { from: t },
                { from: t - 33 * HISTORY_DAY - HOUR - MINUTE, to: t + HOUR + MINUTE },
              ]),
          ];
          windows.push(
            { category: "user.contact" },
            { ...cuts[0], category: "user.health" },
            { ...cuts[1], category: "user.contact.email" },
          );
          await expectBitmapsEqualJoins(rules, windows);
          for (const rule of rules) if ((await exactCount(store, rule)).users > 0) nonEmpty++;
        },
      ),
      // Each run takes seconds: report the first failing history as it is, unshrunk.
      { numRuns: 6, endOnFailure: true },
    );
    // Not vacuous: some histories affect someone exactly.
    expect(nonEmpty).toBeGreaterThan(1);
  }, 300_000);
});
