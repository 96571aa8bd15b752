// Replay is time-valid against the real engine (chDB): each stored use is judged by the lineage
// that had occurred by its time, whenever that lineage arrived (issue 9, "Replay judges each use
// by the lineage and holdings as they were at its time").
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore, Table, type Store } from "../../services/store/index.ts";
import { createProcessor, type Processor } from "../../services/processor/index.ts";
import { replayRules } from "../../services/replay/index.ts";
import { parsePolicy } from "../../services/rules/index.ts";
import { Transform, type DataAccessEvent } from "../../services/codec/index.ts";
import { collect, deriveFields, EMAIL, map, pseudo, read, ref, use } from "../unit/helpers.ts";
import { core, randomDatabase, tempDir } from "./helpers.ts";

const RULE = "security-contact-not-for-marketing";
const TARGETED = "marketing.advertising.third_party.targeted";
const SECURITY = "essential.service.security";
/** The live processor checks nothing: every violation stored is the replay's. */
const LIVE_RULES = ["version: 1", "purposeLimitation: { enabled: false }", "rules: []", ""].join("\n");
/** The rule written after the fact, as rules/default.yaml has it. */
const REPLAY_RULES = [
  "version: 1",
  "purposeLimitation: { enabled: false }",
  "rules:",
  `  - id: ${RULE}`,
  "    description: Contact data collected for account security or authentication must never be used for marketing or advertising.",
  "    effect: deny",
  "    severity: critical",
  "    mode: enforce",
  "    match:",
  "      categories: [user.contact.*]",
  "      collectedFor: [essential.service.security, essential.service.authentication]",
  "      usedFor: [marketing.*]",
  "",
].join("\n");

const at = (iso: string) => Date.parse(`${iso}Z`);
const dir = tempDir();
let store: Store;
const { taxonomy, codec } = core();
const livePolicy = parsePolicy(LIVE_RULES, "live.yaml", taxonomy);
const replayPolicy = parsePolicy(REPLAY_RULES, "after-the-fact.yaml", taxonomy);

/** One batch per call: the arrival order is the order of the calls. */
async function batch(processor: Processor, ...events: DataAccessEvent[]): Promise<void> {
  const result = await processor.processEvents(events.map((event, i) => ({ event, source: `test#${i}` })));
  expect(result.rejected).toEqual([]);
}

function matching(dataset: string, occurredAt: number, from: string): DataAccessEvent {
  return deriveFields([map(ref(dataset, "email_key"), [ref(from, "email")], Transform.hash)], {
    occurredAt,
    service: "ads-identity",
    job: { namespace: "ads", name: `${dataset}.from.${from}` },
  });
}

function audience(dataset: string, iso: string, subject: string): DataAccessEvent {
  return use([read(dataset, "email_key")], [TARGETED], { occurredAt: at(iso), service: "tailored-audiences", subjects: [pseudo(subject)] });
}

async function stored(): Promise<{ event_id: string; retroactive: number }[]> {
  return store.query(
    `SELECT event_id, retroactive FROM ${store.database}.${Table.violations} FINAL WHERE rule_id = {rule:String} ORDER BY occurred_at, event_id`,
    { rule: RULE },
  );
}

beforeAll(async () => {
  store = await openStore({ path: dir, database: randomDatabase("replaytime") });
  await store.migrate();
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("replay judges each use by the lineage as it was at the use's time (chDB)", () => {
  // Field F = ads.*#email_key: since December it holds newsletter emails (collected for
  // marketing); the lineage that brings the two-factor email into it is what moves in time.
  const decDerive = at("2018-12-20T00:00:00");
  const marDerive = at("2019-03-10T09:00:00");
  const janA = audience("ads.matching_keys", "2019-01-15T10:00:00", "a-jan");
  const marA = use([read("ads.matching_keys", "email_key")], [TARGETED], {
    occurredAt: marDerive, // the same millisecond as the DERIVE: it sees it
    service: "tailored-audiences",
    subjects: [pseudo("a-mar")],
  });
  const aprA = audience("ads.matching_keys", "2019-04-15T10:00:00", "a-apr");
  const janB = audience("ads.partner_keys", "2019-01-20T10:00:00", "b-jan");
  const marC = audience("ads.lookalike_keys", "2019-03-01T10:00:00", "c-mar");
  const flagged = [janB, marC, marA, aprA].map((e) => e.eventId);

  it("flags a use only once the lineage bringing security contact data into its field has occurred, whenever that lineage arrived", async () => {
    const live = createProcessor({ policy: livePolicy, taxonomy, codec }, { sink: store });
    await batch(
      live,
      collect("security.two_factor", { email: [EMAIL] }, [SECURITY], { occurredAt: at("2018-12-01T00:00:00") }),
      collect("newsletter.subscribers", { email: [EMAIL] }, ["marketing.advertising"], { occurredAt: at("2018-12-01T00:00:00") }),
      matching("ads.matching_keys", decDerive, "newsletter.subscribers"),
      matching("ads.partner_keys", decDerive, "newsletter.subscribers"),
      matching("ads.lookalike_keys", decDerive, "newsletter.subscribers"),
    );
    // January: both audiences run.
    await batch(live, janA);
    await batch(live, janB);
    // Case C: the security email reaches lookalike_keys in February; a second processor that
    // never knew it stores the same fact again, occurring in May (the later row is the newer one).
    await batch(live, matching("ads.lookalike_keys", at("2019-02-01T00:00:00"), "security.two_factor"));
    await batch(live, marC);
    // March: the DERIVE into matching_keys occurs and arrives (case A), and the one into
    // partner_keys that occurred in December arrives at last (case B).
    await batch(live, matching("ads.matching_keys", marDerive, "security.two_factor"), marA);
    await batch(live, matching("ads.partner_keys", at("2018-12-20T00:00:00"), "security.two_factor"));
    await batch(live, aprA);
    const other = createProcessor({ policy: livePolicy, taxonomy, codec }, { sink: store });
    await batch(other, matching("ads.lookalike_keys", at("2019-05-01T00:00:00"), "security.two_factor"));
    expect(await stored()).toEqual([]);

    const result = await replayRules(store, { policy: replayPolicy, rulesText: REPLAY_RULES, taxonomy });
    expect(result).toMatchObject({ events: 5, violations: 4, done: true, resumed: false });
    const rows = await stored();
    expect(rows.map((r) => r.event_id)).toEqual(flagged);
    expect(rows.every((r) => r.retroactive === 1)).toBe(true);
    expect(rows.map((r) => r.event_id)).not.toContain(janA.eventId);
  });

  it("a replay interrupted after each page resumes with the lineage up to its cursor and finds the same uses", async () => {
    const rulesText = `${REPLAY_RULES}# resumed one page at a time\n`;
    let runs = 0;
    let violations = 0;
    let events = 0;
    for (;;) {
      let checks = 0;
      const result = await replayRules(store, {
        policy: replayPolicy,
        rulesText,
        taxonomy,
        pageSize: 1,
        shouldStop: () => checks++ >= 1, // one page, then Ctrl-C
      });
      runs++;
      violations += result.violations;
      events += result.events;
      expect(result.resumed).toBe(runs > 1);
      if (result.done) break;
    }
    expect(runs).toBe(6); // five pages of one use, then the empty page that finishes it
    expect(events).toBe(5);
    expect(violations).toBe(4);
    expect((await stored()).map((r) => r.event_id)).toEqual(flagged);
  });
});

describe("stored lineage facts in time order (chDB)", () => {
  it("yields each fact once, at the earliest time it was stored with, in that order, a page at a time", async () => {
    const n = 20_001; // more than two pages
    const base = at("2030-01-01T00:00:00"); // after every fact of the tests above
    const rows = Array.from({ length: n }, (_, i) => {
      const fact = collect(`timed.d${i}`, { v: ["user.name"] }, ["essential.service"], { occurredAt: base + Math.floor(i / 3) });
      return { fact_key: `timed-${i}`, kind: fact.kind, occurred_at: fact.occurredAt, event_id: fact.eventId, fact: JSON.stringify(fact) };
    });
    // The same facts stored again later (another processor, a restart): the newer rows.
    const again = rows
      .filter((_, i) => i % 2 === 0)
      .map((r) => ({ ...r, occurred_at: r.occurred_at + 86_400_000, event_id: `${r.event_id}-again` }));
    await store.insert(Table.facts, rows);
    await store.insert(Table.facts, again);
    const seen: DataAccessEvent[] = [];
    for await (const fact of store.lineageFactsInTimeOrder()) if (fact.outputs[0]?.name.startsWith("timed.")) seen.push(fact);
    expect(seen).toHaveLength(n);
    expect(new Set(seen.map((f) => f.eventId)).size).toBe(n);
    expect(seen.every((f, i) => f.occurredAt === base + Math.floor(i / 3) && !f.eventId.endsWith("-again"))).toBe(true);
  });
});
