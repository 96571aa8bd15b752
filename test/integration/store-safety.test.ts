// The store against hostile or awkward input, on the real engine (chDB): database names that
// collide with the SQL around them, one event id sent with two contents, and answers narrowed
// to one data category.
import { rmSync } from "node:fs";
import { afterAll, describe, expect, it, onTestFinished } from "vitest";
import { affectedSummary, openStore, type Store } from "../../services/store/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
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
