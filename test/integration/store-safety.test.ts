// The store against hostile or awkward input, on the real engine (chDB): database names that
// collide with the SQL around them, one event id sent with two contents, and answers narrowed
// to one data category.
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it, onTestFinished } from "vitest";
import { affectedSummary, MIGRATIONS_DIR, openStore, Table, type Store } from "../../services/store/index.ts";
import { createProcessor, type AuditBatch } from "../../services/processor/index.ts";
import { ConfigError } from "../../services/errors/index.ts";
import type { DataAccessEvent } from "../../services/codec/index.ts";
import { core, randomDatabase, tempDir } from "./helpers.ts";

const dir = tempDir("lineage-store-safety-");
const { taxonomy, policy, codec } = core();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const RULE = "security-contact-not-for-marketing";
const hex = (i: number) => i.toString(16).padStart(32, "0");
const at = (iso: string) => Date.parse(iso);

function event(e: Partial<DataAccessEvent> & Pick<DataAccessEvent, "eventId" | "kind" | "occurredAt">): DataAccessEvent {
  return {
    service: "svc",
    job: { namespace: "ns", name: "job" },
    runId: "run",
    inputs: [],
    outputs: [],
    transform: "OTHER",
    fieldLineage: [],
    masking: "NONE",
    purposes: [],
    dataSubject: "customer",
    subjects: [],
    recipient: null,
    traceparent: null,
    pseudonymKeyId: "default",
    attributes: {},
    ...e,
  };
}

/** Phone collected for security; email for security and authentication; both in one dataset. */
function collect(eventId: string, field: "phone_number" | "email", purposes: string[], subjects: string[], when: number) {
  return event({
    eventId,
    kind: "COLLECT",
    occurredAt: when,
    service: "auth-service",
    job: { namespace: "web", name: "2fa-enrolment" },
    outputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: field, categories: [`user.contact.${field}`] }] }],
    purposes,
    subjects,
  });
}

function adsUse(eventId: string, fields: string[], subjects: string[], when: number) {
  return event({
    eventId,
    kind: "USE",
    occurredAt: when,
    service: "partner-audiences",
    job: { namespace: "ads", name: "partner-audiences.match" },
    inputs: [{ namespace: "warehouse", name: "security.two_factor", fields: fields.map((name) => ({ name, categories: [] })) }],
    purposes: ["marketing.advertising.third_party.targeted"],
    subjects,
  });
}

async function open(database = randomDatabase("safe")): Promise<Store> {
  const store = await openStore({ path: dir, database });
  onTestFinished(() => store.close());
  await store.migrate();
  return store;
}

function processorFor(store: Store) {
  return createProcessor({ policy, taxonomy, codec }, { sink: store });
}

async function feed(processor: ReturnType<typeof processorFor>, events: DataAccessEvent[]) {
  return processor.processMessages(events.map((e) => ({ bytes: codec.encode(e), source: e.eventId })));
}

describe("database names", () => {
  it("migrates and answers in a database named like an alias the SQL uses (p)", async () => {
    const store = await open("p");
    const [view] = await store.query<{ n: string }>(`SELECT count() AS n FROM p.violations_with_paths`);
    expect(Number(view?.n)).toBe(0);
    await feed(processorFor(store), [
      collect("p-1", "phone_number", ["essential.service.security"], [hex(1)], at("2019-03-01T00:00:00Z")),
      adsUse("p-2", ["phone_number"], [hex(1)], at("2019-03-02T00:00:00Z")),
    ]);
    const summary = await affectedSummary(store, { ruleId: RULE });
    expect(summary.subjects).toBe(1);
    expect(summary.paths).toHaveLength(1);
    const [row] = await store.query<{ path_text: string }>(`SELECT path_text FROM p.violations_with_paths`);
    expect(row?.path_text).toMatch(/^COLLECT /);
  });

  it("refuses a database name that is not a plain identifier, before touching the store", async () => {
    for (const name of ["p; DROP DATABASE x", "a.b", "`x`", "1abc", "x y", ""]) {
      await expect(openStore({ path: dir, database: name }), name).rejects.toBeInstanceOf(ConfigError);
    }
  });
});

describe("affected --category", () => {
  it("lists only the category asked for: categories, collected for, collected at, and the shares checked against it", async () => {
    const store = await open();
    const t = at("2019-05-01T00:00:00Z");
    await feed(processorFor(store), [
      collect("c-1", "phone_number", ["essential.service.security"], [hex(1), hex(2)], t),
      collect("c-2", "email", ["essential.service.security", "essential.service.authentication"], [hex(1), hex(2)], t + 1),
      // One use reads both: its violation carries both categories.
      adsUse("u-1", ["phone_number", "email"], [hex(1)], t + 10),
      // An external share of the email alone.
      event({
        eventId: "s-1",
        kind: "SHARE",
        occurredAt: t + 20,
        service: "export",
        job: { namespace: "ops", name: "export" },
        inputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "email", categories: [] }] }],
        purposes: ["essential.service.security"],
        subjects: [hex(2)],
        recipient: { name: "partner", external: true },
      }),
    ]);
    const all = await affectedSummary(store, { ruleId: RULE });
    expect(all.categories).toEqual(["user.contact.email", "user.contact.phone_number"]);
    expect(all.externalShares.carryingViolatedData).toBe(1);

    const phone = await affectedSummary(store, { ruleId: RULE, category: "user.contact.phone_number" });
    expect(phone.subjects).toBe(1);
    expect(phone.records).toBe(1);
    expect(phone.categories).toEqual(["user.contact.phone_number"]);
    expect(phone.collectedFor).toEqual(["essential.service.security"]);
    expect(phone.origins).toEqual(["warehouse/security.two_factor#phone_number"]);
    expect(phone.externalShares).toMatchObject({ checked: 1, carryingViolatedData: 0, subjects: 0, evidence: [] });

    const email = await affectedSummary(store, { ruleId: RULE, category: "user.contact.email" });
    expect(email.categories).toEqual(["user.contact.email"]);
    expect(email.collectedFor).toEqual(["essential.service.authentication", "essential.service.security"]);
    expect(email.origins).toEqual(["warehouse/security.two_factor#email"]);
    expect(email.externalShares).toMatchObject({ checked: 1, carryingViolatedData: 1, subjects: 1 });
  });
});

describe("one event id, one content", () => {
  async function counts(store: Store, eventId: string) {
    const db = store.database;
    const [row] = await store.query<Record<string, string>>(
      `SELECT (SELECT count() FROM ${db}.${Table.events} FINAL WHERE event_id = {id:String}) AS events,
              (SELECT toString(any(occurred_at)) FROM ${db}.${Table.events} FINAL WHERE event_id = {id:String}) AS occurred_at,
              (SELECT uniqExact(subject_id) FROM ${db}.${Table.subjects} WHERE event_id = {id:String}) AS subjects,
              (SELECT count() FROM ${db}.${Table.violations} FINAL WHERE event_id = {id:String}) AS violations,
              (SELECT uniqExact(subject_id) FROM ${db}.${Table.violationSubjects} WHERE event_id = {id:String}) AS violation_subjects,
              (SELECT count() FROM ${db}.${Table.findings} FINAL WHERE event_id = {id:String} AND kind = 'EVENT_ID_CONFLICT') AS conflicts`,
      { id: eventId },
    );
    return Object.fromEntries(Object.entries(row ?? {}).map(([k, v]) => [k, k === "occurred_at" ? v : Number(v)]));
  }

  const first = (id: string) => adsUse(id, ["phone_number"], [hex(1)], at("2019-06-01T10:00:00Z"));
  const second = (id: string) => adsUse(id, ["phone_number"], [hex(2)], at("2019-07-15T10:00:00Z"));
  const lineage = () =>
    collect(`c-${Math.random()}`, "phone_number", ["essential.service.security"], [hex(1), hex(2)], at("2019-05-01T00:00:00Z"));

  it("stores and counts an id once when a second content (another time and subject) comes in a later batch, and records the conflict", async () => {
    const store = await open();
    const processor = processorFor(store);
    await feed(processor, [lineage(), first("dup-1")]);
    await feed(processor, [second("dup-1")]);
    expect(await counts(store, "dup-1")).toEqual({
      events: 1,
      occurred_at: "2019-06-01 10:00:00.000",
      subjects: 1,
      violations: 2, // the deny rule and purpose limitation, once each
      violation_subjects: 1,
      conflicts: 1,
    });
    expect((await affectedSummary(store, { ruleId: RULE })).subjects).toBe(1);
    // The first content again is a replay, not a conflict; the second again is the same conflict.
    await feed(processor, [first("dup-1"), second("dup-1")]);
    expect(await counts(store, "dup-1")).toMatchObject({ events: 1, subjects: 1, violation_subjects: 1, conflicts: 1 });
  });

  it("keeps the first of two contents of one id within one batch", async () => {
    const store = await open();
    await feed(processorFor(store), [lineage(), first("dup-2"), second("dup-2")]);
    expect(await counts(store, "dup-2")).toEqual({
      events: 1,
      occurred_at: "2019-06-01 10:00:00.000",
      subjects: 1,
      violations: 2, // the deny rule and purpose limitation, once each
      violation_subjects: 1,
      conflicts: 1,
    });
  });

  it("keeps one content of an id written by two batches at the same time (two intakes feeding one process)", async () => {
    const store = await open();
    const processor = processorFor(store);
    await feed(processor, [lineage()]);
    await Promise.all([feed(processor, [first("dup-3")]), feed(processor, [second("dup-3")])]);
    expect(await counts(store, "dup-3")).toMatchObject({ events: 1, subjects: 1, violation_subjects: 1, conflicts: 1 });
  });

  it("migrates a store written before event ids were checked: the later content is taken out and recorded", async () => {
    const store = await open();
    const db = store.database;
    // The store as version 008 left it: no registry, and both contents written.
    await store.command(`DROP VIEW ${db}.event_ids_v2_mv`);
    await store.command(`DROP TABLE ${db}.${Table.eventIds}`);
    await store.command(`ALTER TABLE ${db}.schema_migrations DELETE WHERE version IN (9, 12) SETTINGS mutations_sync = 2`);
    const raw = async (batch: AuditBatch) => {
      for (const [table, rows] of [
        [Table.facts, batch.facts],
        [Table.edgesIn, batch.edges],
        [Table.labels, batch.labels],
        [Table.events, batch.events],
        [Table.paths, batch.paths],
        [Table.violations, batch.violations],
        [Table.findings, batch.findings],
      ] as const) {
        await store.insert(table, rows);
      }
    };
    const legacy = createProcessor({ policy, taxonomy, codec }, { sink: { write: raw } });
    await feed(legacy, [lineage(), first("old-1")]);
    await feed(legacy, [second("old-1")]);
    expect(await counts(store, "old-1")).toMatchObject({ events: 2, subjects: 2, violation_subjects: 2 });

    expect(await store.migrate()).toEqual(["009_event_ids_v1.sql", "012_event_ids_by_id.sql"]);
    expect(await counts(store, "old-1")).toEqual({
      events: 1,
      occurred_at: "2019-06-01 10:00:00.000",
      subjects: 1,
      violations: 2, // the deny rule and purpose limitation, once each
      violation_subjects: 1,
      conflicts: 1,
    });
    expect((await affectedSummary(store, { ruleId: RULE })).subjects).toBe(1);
    const [daily] = await store.query<{ n: string }>(
      `SELECT uniqExactMerge(subjects_exact) AS n FROM ${db}.affected_daily_v1 WHERE rule_id = {r:String}`,
      { r: RULE },
    );
    expect(Number(daily?.n)).toBe(1);
    // The SQL digest of the stored content agrees with the store's own: a replay is no conflict.
    await feed(processorFor(store), [first("old-1"), second("old-1")]);
    expect(await counts(store, "old-1")).toMatchObject({ events: 1, subjects: 1, violation_subjects: 1, conflicts: 1 });
  });

  it("computes in SQL (migration 009) the same content digest as the store, for every kind of event", async () => {
    const store = await open();
    const t = at("2019-08-01T00:00:00Z");
    await feed(processorFor(store), [
      collect("k-1", "email", ["essential.service.security"], [hex(7)], t),
      event({
        eventId: "k-2",
        kind: "DERIVE",
        occurredAt: t + 1,
        service: "profile-sync",
        job: { namespace: "etl", name: "copy – ünïcode" },
        inputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "email", categories: [] }] }],
        outputs: [{ namespace: "warehouse", name: "profile.contact", fields: [{ name: "email", categories: [] }] }],
        transform: "COPY",
        masking: "MASKED",
        subjects: [hex(7), hex(8)],
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        pseudonymKeyId: "k2",
        attributes: { note: "x" },
      }),
      event({
        eventId: "k-3",
        kind: "SHARE",
        occurredAt: t + 2,
        inputs: [{ namespace: "warehouse", name: "profile.contact", fields: [] }],
        purposes: ["essential.service.security"],
        subjects: [hex(7)],
        recipient: { name: "partner", external: true },
      }),
    ]);
    const text = readFileSync(join(MIGRATIONS_DIR, "009_event_ids_v1.sql"), "utf8");
    const digest = /(lower\(hex\(SHA256\([\s\S]*?\)\)\)\)\)) AS content_sha256/.exec(text)?.[1];
    expect(digest).toBeDefined();
    const rows = await store.query<{ event_id: string; sql: string; stored: string }>(
      `SELECT e.event_id AS event_id, ${digest} AS sql, r.content_sha256 AS stored
       FROM ${store.database}.${Table.events} AS e INNER JOIN ${store.database}.${Table.eventIds} AS r ON r.event_id = e.event_id
       WHERE e.event_id LIKE 'k-%' ORDER BY event_id`,
    );
    expect(rows.map((r) => r.event_id)).toEqual(["k-1", "k-2", "k-3"]);
    for (const r of rows) expect(r.sql, r.event_id).toBe(r.stored);
  });
});
