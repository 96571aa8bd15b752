// Late lineage against the real engine (chDB): a use that already violates purpose limitation
// through one category and learns of another later is rewritten, and `affected` counts it under
// both, once (issue 8, item 20). And the bounded lineage graph refilling itself from
// lineage_fact_datasets_v1 after a restart (item 13).
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { affectedSummary, fastAffectedCount, openStore, Table, type Store } from "../../services/store/index.ts";
import { createProcessor, type Processor } from "../../services/processor/index.ts";
import type { DataAccessEvent } from "../../services/codec/index.ts";
import { collect, deriveFields, EMAIL, map, pseudo, read, ref, use, ADS } from "../unit/helpers.ts";
import { core, randomDatabase, tempDir } from "./helpers.ts";

const HEALTH = "user.health.condition";
const SERVICE = "essential.service";
const RULE = "purpose-limitation";
const SUBJECTS = [pseudo("late-1"), pseudo("late-2")];

const dir = tempDir();
let store: Store;
const { taxonomy, policy, codec } = core();

beforeAll(async () => {
  store = await openStore({ path: dir, database: randomDatabase("late") });
  await store.migrate();
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One batch per call: the arrival order is the order of the calls, never left to chance. */
async function batch(processor: Processor, ...events: DataAccessEvent[]): Promise<void> {
  const result = await processor.processEvents(events.map((event, i) => ({ event, source: `test#${i}` })));
  expect(result.rejected).toEqual([]);
}

async function violationRows(eventId: string) {
  const db = store.database;
  const [row] = await store.query<{
    final: string | number;
    raw: string | number;
    categories: string[];
    late: number;
    subject_rows: string | number;
  }>(
    `SELECT (SELECT count() FROM ${db}.${Table.violations} FINAL WHERE event_id = {id:String}) AS final,
            (SELECT count() FROM ${db}.${Table.violations} WHERE event_id = {id:String}) AS raw,
            (SELECT any(categories) FROM ${db}.${Table.violations} FINAL WHERE event_id = {id:String}) AS categories,
            (SELECT any(late_lineage) FROM ${db}.${Table.violations} FINAL WHERE event_id = {id:String}) AS late,
            (SELECT count() FROM ${db}.${Table.violationSubjects} FINAL WHERE event_id = {id:String}) AS subject_rows`,
    { id: eventId },
  );
  return {
    final: Number(row?.final),
    raw: Number(row?.raw),
    categories: row?.categories,
    late: Number(row?.late),
    subjectRows: Number(row?.subject_rows),
  };
}

describe("late lineage on an already-violating use (chDB, affected)", () => {
  it("rewrites the violation with the contact category that arrived late, and affected counts it once under each category", async () => {
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
    await batch(processor, collect("clinic.patients", { condition: [HEALTH] }, [SERVICE]));
    const misuse = use([read("clinic.patients", "condition", "email")], [ADS], { subjects: SUBJECTS });
    await batch(processor, misuse);
    expect((await affectedSummary(store, { ruleId: RULE, category: "user.contact" })).violationEvents).toBe(0);

    // The collection of the contact field the use also read arrives after it.
    await batch(processor, collect("clinic.patients", { email: [EMAIL] }, [SERVICE]));

    const contact = await affectedSummary(store, { ruleId: RULE, category: "user.contact" });
    expect(contact).toMatchObject({ violationEvents: 1, subjects: 2, records: 2, firstViolation: expect.any(String) as string });
    expect(contact.categories).toContain(EMAIL);
    const all = await affectedSummary(store, { ruleId: RULE });
    expect(all).toMatchObject({ violationEvents: 1, subjects: 2, records: 4, categories: [EMAIL, HEALTH] });
    // The most frequent paths: the rewritten violation under its new path only.
    expect(all.paths.map((p) => p.violations)).toEqual([1]);

    // The daily aggregates and the subject rows hold the rewritten violation once.
    expect(await fastAffectedCount(store, { ruleId: RULE })).toMatchObject({ exact: 2, records: 4 });
    expect(await fastAffectedCount(store, { ruleId: RULE, category: "user.contact" })).toMatchObject({ exact: 2, records: 2 });
    const rows = await violationRows(misuse.eventId);
    expect(rows).toMatchObject({ final: 1, categories: [EMAIL, HEALTH], late: 1, subjectRows: 2 });
    expect(rows.raw).toBe(2); // the first row and its rewrite, until ClickHouse merges them
  });

  it("after a restart, a bounded graph of one fact fetches the lineage of each batch from the store and still rewrites a late violation", async () => {
    const first = createProcessor({ policy, taxonomy, codec }, { sink: store });
    await batch(
      first,
      collect("crm.people", { diagnosis: [HEALTH] }, [SERVICE]),
      deriveFields([map(ref("crm.copy", "diagnosis"), [ref("crm.people", "diagnosis")])]),
      deriveFields([map(ref("crm.copy", "mail"), [ref("crm.people", "mail")])]),
    );
    const misuse = use([read("crm.copy", "diagnosis", "mail")], [ADS], { subjects: SUBJECTS });
    await batch(first, misuse);

    // A new process: nothing in memory, one fact of capacity; the use is in its recheck window.
    const restarted = createProcessor({ policy, taxonomy, codec, lineageCapacity: 1, retainFacts: 1 }, { sink: store, lineage: store });
    expect(await restarted.restore(store.lineageFacts(), await store.recentUses(100))).toBe(0);
    expect(restarted.auditor.graph.stats.facts).toBe(0);
    for (let i = 0; i < 5; i++) await batch(restarted, collect(`churn.t${i}`, { v: ["user.name"] }, [SERVICE]));
    await batch(restarted, collect("crm.people", { mail: [EMAIL] }, [SERVICE]));

    const rows = await violationRows(misuse.eventId);
    expect(rows).toMatchObject({ final: 1, categories: [EMAIL, HEALTH], late: 1, subjectRows: 2 });
    // And a new misuse of the copy is found through facts fetched from the store.
    const again = use([read("crm.copy", "mail")], [ADS], { subjects: [pseudo("late-3")] });
    await batch(restarted, again);
    expect((await violationRows(again.eventId)).categories).toEqual([EMAIL]);
  });
});

describe("a use parked for unknown provenance, across a restart (chDB)", () => {
  it("is still resolved when its dataset's lineage arrives after the processor restarted", async () => {
    const first = createProcessor({ policy, taxonomy, codec }, { sink: store, lineage: store });
    // Read before anything describes the dataset (another partition's COLLECT is late): parked.
    const early = use([read("orders.buyers", "mail")], [ADS], { subjects: [pseudo("parked-1")] });
    await batch(first, early);
    expect((await violationRows(early.eventId)).final).toBe(0);

    // The process stops; a new one restores from the store, then the lineage arrives.
    const restarted = createProcessor({ policy, taxonomy, codec }, { sink: store, lineage: store });
    await restarted.restore(store.lineageFacts(), await store.recentUses(100));
    await batch(restarted, collect("orders.buyers", { mail: [EMAIL] }, [SERVICE]));

    expect(await violationRows(early.eventId)).toMatchObject({ final: 1, categories: [EMAIL], subjectRows: 1 });
    const [row] = await store.query<{ verdict: string }>(
      `SELECT verdict FROM ${store.database}.${Table.events} FINAL WHERE event_id = {id:String}`,
      { id: early.eventId },
    );
    expect(row?.verdict).not.toBe("unknown_provenance");
  });
  it("is resolved after a restart when its lineage was stored meanwhile by a process that did not hold it", async () => {
    const first = createProcessor({ policy, taxonomy, codec }, { sink: store, lineage: store });
    const early = use([read("orders.sellers", "mail")], [ADS], { subjects: [pseudo("parked-2")] });
    await batch(first, early);
    // The lineage is stored by a process that never saw the use (another instance; or this one,
    // killed after storing the fact and before writing what resolving the use gave).
    const other = createProcessor({ policy, taxonomy, codec }, { sink: store, lineage: store });
    await batch(other, collect("orders.sellers", { mail: [EMAIL] }, [SERVICE]));
    expect((await violationRows(early.eventId)).final).toBe(0);

    const restarted = createProcessor({ policy, taxonomy, codec }, { sink: store, lineage: store });
    await restarted.restore(store.lineageFacts(), await store.recentUses(100));
    // Any next batch fetches what the parked use reads, and resolves it.
    await batch(restarted, collect("unrelated.table", { v: ["user.name"] }, [SERVICE]));
    expect(await violationRows(early.eventId)).toMatchObject({ final: 1, categories: [EMAIL], subjectRows: 1 });
  });
});

describe("a checked use in the recheck window, across a restart (chDB)", () => {
  it("is rewritten after a restart when the lineage that makes it a violation was stored meanwhile by a process that did not hold it", async () => {
    const first = createProcessor({ policy, taxonomy, codec }, { sink: store, lineage: store });
    // A copy of a table whose collection is late (another partition): the use of the copy finds
    // it described but carrying no label yet, so nothing is flagged; it stays in the recheck window.
    await batch(first, deriveFields([map(ref("shop.copy", "mail"), [ref("shop.people", "mail")])]));
    const misuse = use([read("shop.copy", "mail")], [ADS], { subjects: [pseudo("window-1")] });
    await batch(first, misuse);
    expect((await violationRows(misuse.eventId)).final).toBe(0);
    // The collection is stored by a process that never held the use (another instance; or this
    // one, killed after storing the fact and before writing what rechecking the use gave).
    const other = createProcessor({ policy, taxonomy, codec }, { sink: store, lineage: store });
    await batch(other, collect("shop.people", { mail: [EMAIL] }, [SERVICE]));
    expect((await violationRows(misuse.eventId)).final).toBe(0);

    const restarted = createProcessor({ policy, taxonomy, codec }, { sink: store, lineage: store });
    await restarted.restore(store.lineageFacts(), await store.recentUses(100));
    // Any next batch fetches what the remembered use reads, and checks it again against it.
    await batch(restarted, collect("unrelated.things", { v: ["user.name"] }, [SERVICE]));
    expect(await violationRows(misuse.eventId)).toMatchObject({ final: 1, categories: [EMAIL], subjectRows: 1 });
  });

  it("is rewritten after a restart when a kill came between its rewritten row and its violation", async () => {
    // The store writes a batch's event rows before its violations: a kill between the two leaves
    // the use's row flagged, with the label, and no violation row.
    let killedAfterEvents = false;
    const sink = {
      write: (b: Parameters<typeof store.write>[0]) =>
        store.write(killedAfterEvents ? { ...b, paths: [], violations: [], outbox: [], findings: [], deadLetters: [] } : b),
    };
    const first = createProcessor({ policy, taxonomy, codec }, { sink, lineage: store });
    await batch(first, deriveFields([map(ref("mail.copy", "mail"), [ref("mail.people", "mail")])]));
    const misuse = use([read("mail.copy", "mail")], [ADS], { subjects: [pseudo("torn-1")] });
    await batch(first, misuse);
    const late = collect("mail.people", { mail: [EMAIL] }, [SERVICE]);
    killedAfterEvents = true;
    await batch(first, late); // the late collection: the use is rechecked, its row rewritten, its violation lost
    const [row] = await store.query<{ verdict: string }>(
      `SELECT verdict FROM ${store.database}.${Table.events} FINAL WHERE event_id = {id:String}`,
      { id: misuse.eventId },
    );
    expect(row?.verdict).toBe("violation");
    expect((await violationRows(misuse.eventId)).final).toBe(0);

    // Restarted, it is given the collection again (its offset was never committed).
    const restarted = createProcessor({ policy, taxonomy, codec }, { sink: store, lineage: store });
    await restarted.restore(store.lineageFacts(), await store.recentUses(100));
    await batch(restarted, late);
    expect(await violationRows(misuse.eventId)).toMatchObject({ final: 1, categories: [EMAIL], subjectRows: 1 });
  });
});

describe("stored lineage facts (chDB)", () => {
  it("streams every stored fact a page at a time, in time order, and finds the facts of a dataset through lineage_fact_datasets_v1", async () => {
    const n = 25_001; // more than two pages
    const rows = Array.from({ length: n }, (_, i) => {
      const fact = collect(`paged.d${i}`, { v: ["user.name"] }, [SERVICE], { occurredAt: Date.UTC(2020, 0, 1) + Math.floor(i / 3) });
      return { fact_key: `k${i}`, kind: fact.kind, occurred_at: fact.occurredAt, event_id: fact.eventId, fact: JSON.stringify(fact) };
    });
    await store.insert(Table.facts, rows);
    const seen = new Set<string>();
    let previous = 0;
    let ordered = true;
    for await (const fact of store.lineageFacts()) {
      if (!fact.outputs[0]?.name.startsWith("paged.")) continue;
      seen.add(fact.eventId);
      ordered &&= fact.occurredAt >= previous;
      previous = fact.occurredAt;
    }
    expect(seen.size).toBe(n);
    expect(ordered).toBe(true);
    const found = await store.lineageFactsOf({ datasets: ["wh/paged.d7"], upstream: ["wh/paged.d9", "wh/nothing"] });
    expect(found.map((f) => f.outputs[0]?.name).sort()).toEqual(["paged.d7", "paged.d9"]);
  });
});
