// The ClickHouse store against the real engine (chDB in-process): migrations, idempotent
// writes, the affected-users answer, read-only queries, lineage restored after a restart.
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  openStore,
  affectedSummary,
  exactAffected,
  fastAffectedCount,
  refreshProvenance,
  Table,
  type Store,
} from "../../services/store/index.ts";
import { createProcessor, edgeRowsOf } from "../../services/processor/index.ts";
import { createEmitter, createInProcessTransport, createMemoryTransport } from "../../services/emitter/index.ts";
import { emptyGroundTruth, generateScenario, SCENARIO_RULE } from "../../services/demo/index.ts";
import { StoreError } from "../../services/errors/index.ts";
import { EventKind } from "../../services/codec/index.ts";
import { core, HMAC_KEY, randomDatabase, tempDir } from "./helpers.ts";

const dir = tempDir();
let store: Store;
const { taxonomy, policy, codec } = core();

beforeAll(async () => {
  store = await openStore({ path: dir, database: randomDatabase("store") });
  await store.migrate();
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Encodes the demo scenario once, so the same bytes can be replayed. */
async function encodeScenario(users: number) {
  const transport = createMemoryTransport();
  const messages = transport.messages;
  const truth = emptyGroundTruth();
  const emitter = createEmitter(
    {
      transport,
      pseudonymKey: HMAC_KEY,
      maxBatch: 2000,
    },
    { codec },
  );
  for (const input of generateScenario({ users, seed: 7 }, truth)) await emitter.emit(input);
  await emitter.close();
  return { messages, truth };
}

async function counts(s: Store) {
  const db = s.database;
  const [row] = await s.query<Record<string, string>>(`
    SELECT (SELECT count() FROM ${db}.${Table.events} FINAL) AS events,
           (SELECT uniqExact(event_id) FROM ${db}.${Table.events}) AS event_ids,
           (SELECT count() FROM ${db}.${Table.subjects} FINAL) AS subject_rows,
           (SELECT uniqExact(subject_id) FROM ${db}.${Table.subjects}) AS subjects,
           (SELECT count() FROM ${db}.${Table.violations} FINAL) AS violations,
           (SELECT count() FROM ${db}.${Table.violationSubjects} FINAL) AS violation_subject_rows,
           (SELECT count() FROM ${db}.${Table.edges} FINAL) AS edges,
           (SELECT count() FROM ${db}.${Table.facts} FINAL) AS facts`);
  return row;
}

describe("store on the real ClickHouse engine (chDB)", () => {
  it("applies each numbered migration once", async () => {
    expect(await store.migrate()).toEqual([]);
    const applied = await store.query<{ name: string }>(`SELECT name FROM ${store.database}.schema_migrations FINAL ORDER BY version`);
    expect(applied.map((r) => r.name)).toEqual([
      "001_events_v1.sql",
      "002_event_subjects_v1.sql",
      "003_lineage_v1.sql",
      "004_violations_v1.sql",
      "005_findings_v1.sql",
      "006_webhooks_v1.sql",
      "007_replay_v1.sql",
      "008_affected_daily_v1.sql",
      "009_event_ids_v1.sql",
      "010_lineage_published_v1.sql",
      "011_lineage_fact_datasets_v1.sql",
      "012_event_ids_by_id.sql",
      "013_holdings_v1.sql",
      "014_events_output_categories.sql",
      "015_exact_bitmaps.sql",
      "016_replay_sql.sql",
      "017_openlineage_events_v1.sql",
      "018_lineage_edges_in.sql",
      "019_openlineage_static_events.sql",
      "020_lineage_fact_keys.sql",
    ]);
  });

  it("counts the planted affected users exactly, and a replay of the same events changes no count", async () => {
    const { messages, truth } = await encodeScenario(3000);
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
    for (let i = 0; i < messages.length; i += 1000) {
      await processor.processMessages(messages.slice(i, i + 1000).map((bytes, k) => ({ bytes, source: `test#${i + k}` })));
    }
    const first = await counts(store);
    const summary = await affectedSummary(store, { ruleId: SCENARIO_RULE });
    expect(summary.subjects).toBe(truth.affectedUsers);
    expect(summary.records).toBe(truth.affectedRecords);
    expect(summary.violationEvents).toBe(truth.violatingEvents);
    expect(summary.externalShares.carryingViolatedData).toBe(truth.externalSharesOfViolatedData);
    expect(summary.externalShares.checked).toBeGreaterThan(0);
    // The exact, per-person reading of the same store equals the generator's per-subject truth.
    await refreshProvenance(store, policy);
    const exact = await exactAffected(store, SCENARIO_RULE);
    expect(exact.exact).toEqual({
      users: truth.exact.users,
      records: truth.exact.records,
      violatingEvents: truth.exact.violatingEvents,
      first: truth.exact.firstViolation === null ? null : Date.parse(truth.exact.firstViolation),
      last: truth.exact.lastViolation === null ? null : Date.parse(truth.exact.lastViolation),
    });
    expect(exact.sharedOutside).toEqual(truth.exact.sharedOutside);
    expect(exact.fieldLevel.users).toBe(truth.affectedUsers);
    expect(Number(first?.events)).toBe(truth.events);
    expect(Number(first?.event_ids)).toBe(truth.events);

    // Replay everything, in other batch sizes, through a fresh processor (as after a crash).
    const again = createProcessor({ policy, taxonomy, codec }, { sink: store });
    await again.restore(store.lineageFacts());
    for (let i = 0; i < messages.length; i += 777) {
      await again.processMessages(messages.slice(i, i + 777).map((bytes, k) => ({ bytes, source: `replay#${i + k}` })));
    }
    expect(await counts(store)).toEqual(first);
    expect(await affectedSummary(store, { ruleId: SCENARIO_RULE })).toEqual(summary);
  });

  it("stores every edge the processor made once per lineage fact, one row each, through the staging table's arrays (migrations 018, 020)", async () => {
    const s = await openStore({ path: dir, database: randomDatabase("edges") });
    try {
      await s.migrate();
      const made: string[] = [];
      const sink = {
        write: async (batch: Parameters<Store["write"]>[0]) => {
          for (const e of batch.edges.flatMap(edgeRowsOf))
            made.push(
              [
                e.event_id,
                e.fact_key,
                e.occurred_at,
                e.service,
                e.job_name,
                e.run_id,
                e.from_dataset,
                e.from_field,
                e.to_dataset,
                e.to_field,
                e.transform,
                e.masking,
              ].join("|"),
            );
          await s.write(batch);
        },
      };
      const { messages } = await encodeScenario(300);
      const processor = createProcessor({ policy, taxonomy, codec }, { sink });
      for (let i = 0; i < messages.length; i += 500)
        await processor.processMessages(messages.slice(i, i + 500).map((bytes, k) => ({ bytes, source: `m#${i + k}` })));
      const stored = await s.query<{ row: string }>(
        `SELECT concat(event_id, '|', fact_key, '|', toString(toUnixTimestamp64Milli(occurred_at)), '|', service, '|', job_name, '|', run_id, '|', from_dataset, '|', from_field, '|', to_dataset, '|', to_field, '|', transform, '|', masking) AS row
         FROM ${s.database}.${Table.edges} FINAL`,
      );
      // Several DERIVEs with several edges each, in the batches as made.
      expect(new Set(made.map((m) => m.split("|")[0])).size).toBeGreaterThan(3);
      expect(made.length).toBeGreaterThan(10);
      // Every DERIVE stored finds its edges by its fact, whether its run wrote them or an earlier one did.
      const [derives] = await s.query<{ runs: string; facts: string; orphans: string }>(
        `SELECT toString(count()) AS runs, toString(uniqExact(fact_key)) AS facts,
                toString(countIf(fact_key = '' OR fact_key NOT IN (SELECT fact_key FROM ${s.database}.${Table.edges}))) AS orphans
         FROM ${s.database}.${Table.events} FINAL WHERE kind = 'DERIVE'`,
      );
      expect(derives?.orphans).toBe("0");
      // The scenario's jobs run again with the same lineage: more runs than facts, and edges only from the first of each.
      expect(Number(derives?.runs)).toBeGreaterThan(Number(derives?.facts));
      expect(new Set(made.map((m) => m.split("|")[0])).size).toBe(Number(derives?.facts));
      // One row per distinct edge: the same edge again (a message redelivered) is one row (ReplacingMergeTree).
      expect(stored.map((r) => r.row).sort()).toEqual([...new Set(made)].sort());
      const [staged] = await s.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${s.database}.${Table.edgesIn}`);
      expect(staged?.n).toBe("0"); // Null: the staging table keeps nothing
    } finally {
      await s.close();
    }
  });

  it("gives the same affected count from the daily aggregate views, exact and approximate", async () => {
    const raw = await affectedSummary(store, { ruleId: SCENARIO_RULE });
    const fast = await fastAffectedCount(store, { ruleId: SCENARIO_RULE });
    expect(fast.exact).toBe(raw.subjects);
    expect(fast.records).toBe(raw.records);
    expect(Math.abs(fast.approximate - raw.subjects) / raw.subjects).toBeLessThan(0.05);
    const january = await affectedSummary(store, { ruleId: SCENARIO_RULE, from: "2019-01-01", to: "2019-02-01" });
    expect((await fastAffectedCount(store, { ruleId: SCENARIO_RULE, from: "2019-01-01", to: "2019-02-01" })).exact).toBe(january.subjects);
    const phones = await affectedSummary(store, { ruleId: SCENARIO_RULE, category: "user.contact.phone_number" });
    expect((await fastAffectedCount(store, { ruleId: SCENARIO_RULE, category: "user.contact.phone_number" })).exact).toBe(phones.subjects);
  });

  it("narrows the answer to a data category and a time window", async () => {
    const all = await affectedSummary(store, { ruleId: SCENARIO_RULE });
    const phones = await affectedSummary(store, { ruleId: SCENARIO_RULE, category: "user.contact.phone_number" });
    const emails = await affectedSummary(store, { ruleId: SCENARIO_RULE, category: "user.contact" });
    expect(phones.subjects).toBeGreaterThan(0);
    expect(phones.subjects).toBeLessThan(all.subjects);
    expect(phones.categories).toEqual(["user.contact.phone_number"]);
    expect(emails.subjects).toBe(all.subjects);
    const january = await affectedSummary(store, { ruleId: SCENARIO_RULE, from: "2019-01-01", to: "2019-02-01" });
    expect(january.violationEvents).toBeGreaterThan(0);
    expect(january.violationEvents).toBeLessThan(all.violationEvents);
    expect(january.lastViolation! < "2019-02-01").toBe(true);
    const afterFix = await affectedSummary(store, { ruleId: SCENARIO_RULE, from: "2019-09-17" });
    expect(afterFix.subjects).toBe(0);
    expect(afterFix.firstViolation).toBeNull();
  });

  it("stores the full lineage path of a violation", async () => {
    const [row] = await store.query<{ path_text: string; lineage_path: string; categories: string[] }>(
      `SELECT path_text, lineage_path, categories FROM ${store.database}.violations_with_paths
       WHERE rule_id = {rule:String} AND has(categories, 'user.contact.phone_number') LIMIT 1`,
      { rule: SCENARIO_RULE },
    );
    expect(row?.path_text.split(" ⇒ ").map((h) => h.split(" ")[0])).toEqual(["COLLECT", "COPY", "JOIN", "HASH", "USE"]);
    const path = JSON.parse(row?.lineage_path ?? "{}") as { paths: { origin: string; hops: { kind: string; dataset: string }[] }[] };
    expect(path.paths[0]?.origin).toBe("warehouse/security.two_factor#phone_number");
    expect(path.paths[0]?.hops.map((h) => h.dataset)).toEqual([
      "warehouse/security.two_factor",
      "warehouse/profile.contact_points",
      "warehouse/identity.graph",
      "warehouse/ads.matching_keys",
    ]);
  });

  it("gives back the most recent uses as events, with the rules already written for them", async () => {
    const recent = await store.recentUses(50);
    expect(recent).toHaveLength(50);
    expect(recent.every((r) => r.event.kind === "USE" || r.event.kind === "SHARE")).toBe(true);
    const misuse = await store.query<{ event_id: string; input_fields: string[] }>(
      `SELECT event_id, input_fields FROM ${store.database}.${Table.events} FINAL WHERE verdict = 'violation' ORDER BY ingested_at DESC LIMIT 1`,
    );
    const all = await store.recentUses(1_000_000);
    const found = all.find((r) => r.event.eventId === misuse[0]?.event_id);
    expect(found?.rules.sort()).toEqual(["purpose-limitation", "security-contact-not-for-marketing"]);
    expect(found?.event.inputs.flatMap((d) => d.fields.map((f) => `${d.namespace}/${d.name}#${f.name}`))).toEqual(misuse[0]?.input_fields);
  });

  it("refuses statements that write through the read-only path", async () => {
    for (const sql of [
      `INSERT INTO ${store.database}.${Table.events} (event_id) VALUES ('x')`,
      `DROP TABLE ${store.database}.${Table.events}`,
      `CREATE TABLE ${store.database}.evil (a UInt8) ENGINE = Memory`,
      `ALTER TABLE ${store.database}.${Table.events} DELETE WHERE 1`,
    ]) {
      const error = await store.queryReadOnly(sql).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, sql).toBeInstanceOf(StoreError);
      expect((error as StoreError).message).toMatch(/^read-only: (INSERT|DROP|CREATE|ALTER) is not allowed$/);
    }
    const [row] = await store.queryReadOnly<{ n: string }>(`SELECT count() AS n FROM ${store.database}.${Table.events}`);
    expect(Number(row?.n)).toBeGreaterThan(0);
  });

  it("rebuilds the lineage graph from stored facts, so a restarted processor still catches a misuse", async () => {
    const restarted = createProcessor({ policy, taxonomy, codec }, { sink: store });
    const facts = await restarted.restore(store.lineageFacts());
    expect(facts).toBeGreaterThan(3);
    expect(restarted.auditor.graph.knows("warehouse/ads.matching_keys")).toBe(true);
    const emitter = createEmitter({ transport: createInProcessTransport(restarted), pseudonymKey: HMAC_KEY, lingerMs: 1 }, { codec });
    await emitter.emit({
      kind: EventKind.use,
      eventId: "restart-check-1",
      occurredAt: Date.parse("2019-06-01T12:00:00Z"),
      service: "partner-audiences",
      job: { namespace: "ads", name: "partner-audiences.match" },
      runId: "after-restart",
      inputs: [{ namespace: "warehouse", name: "ads.matching_keys", fields: [{ name: "phone_sha256" }] }],
      purposes: ["marketing.advertising.third_party.targeted"],
      dataSubject: "customer",
      subjects: ["someone@example.com"],
    });
    await emitter.close();
    const rows = await store.query<{ rule_id: string }>(
      `SELECT rule_id FROM ${store.database}.${Table.violations} WHERE event_id = 'restart-check-1' ORDER BY rule_id`,
    );
    expect(rows.map((r) => r.rule_id)).toEqual(["purpose-limitation", "security-contact-not-for-marketing"]);
    const raw = await store.query<{ n: string }>(
      `SELECT count() AS n FROM ${store.database}.${Table.subjects} WHERE subject_id LIKE '%@%'`,
    );
    expect(Number(raw[0]?.n)).toBe(0);
  });
});
