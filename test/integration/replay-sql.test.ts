// Issue 10 against the real engine (chDB): the replay compiled to SQL gives the same violations as
// the stream replay, the evaluator of record. Random policies (deny, allow, compatible purposes,
// purpose limitation, declassify, shadow mode, service and subject matchers) over random histories
// (fast-check), each evaluated by both; a second run adds nothing; an interrupted run resumes.
import { rmSync } from "node:fs";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { Masking, Transform, type DataAccessEvent } from "../../services/codec/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import { replayRules, replayRulesSql } from "../../services/replay/index.ts";
import {
  compilePolicy,
  createEvaluator,
  parsePolicy,
  sqlLiteral,
  type Policy,
  type Rule,
  type RuleMatch,
} from "../../services/rules/index.ts";
import { openStore, Table, type Store } from "../../services/store/index.ts";
import { historyArb, withIds } from "../reference/histories.ts";
import { core, randomDatabase, tempDir } from "./helpers.ts";

const dir = tempDir();
const stores: Store[] = [];
const { taxonomy, codec } = core();
const QUIET = parsePolicy("version: 1\npurposeLimitation: { enabled: false }\nrules: []\n", "quiet.yaml", taxonomy);

afterAll(async () => {
  for (const s of stores) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function storeWith(events: readonly DataAccessEvent[]): Promise<Store> {
  const store = await openStore({ path: dir, database: randomDatabase("rsql") });
  stores.push(store);
  await store.migrate();
  // The live processor checks nothing: every violation stored is a replay's.
  const processor = createProcessor({ policy: QUIET, taxonomy, codec }, { sink: store });
  const result = await processor.processEvents(events.map((event, i) => ({ event, source: `test#${i}` })));
  expect(result.rejected).toEqual([]);
  return store;
}

/** Everything a violation says but the route its path shows (where labels arrive by several routes, either is right). */
const COMPARED =
  "violation_id, event_id, rule_id, basis, severity, mode, kind, toString(occurred_at) AS at, service, job_namespace, job_name, run_id, datasets, purposes, categories, collected_for, origins, label_ids, subjects, data_subject, recipient, recipient_external, trace_id, late_lineage, reason, retroactive";

async function violations(store: Store): Promise<Record<string, unknown>[]> {
  return store.query(`SELECT ${COMPARED} FROM ${store.database}.${Table.violations} FINAL ORDER BY violation_id`);
}

async function clearViolations(store: Store): Promise<void> {
  for (const t of [Table.violations, Table.violationSubjects, Table.paths, "replay_progress_v1"]) {
    await store.command(`TRUNCATE TABLE ${store.database}.${t}`);
  }
}

// --- random policies -------------------------------------------------------------------------

const CATEGORIES = ["user", "user.contact", "user.contact.*", "user.contact.email", "user.contact.phone_number", "user.health", "*"];
const PURPOSES = [
  "marketing",
  "marketing.*",
  "marketing.advertising",
  "marketing.advertising.third_party.targeted",
  "essential",
  "essential.service",
  "essential.service.security",
  "essential.service.authentication",
  "analytics",
  "*",
];
const SERVICES = ["use-service", "share-service", "ads", "bi"];
const list = <T>(items: readonly T[]) => fc.subarray([...items], { minLength: 1, maxLength: Math.min(3, items.length) });

const matchArb: fc.Arbitrary<RuleMatch> = fc
  .record(
    {
      categories: list(CATEGORIES),
      collectedFor: list(PURPOSES),
      usedFor: list(PURPOSES),
      subjects: list(["customer", "employee"]),
      kinds: list(["USE", "SHARE"] as const),
      recipients: fc.constantFrom<"any" | "internal" | "external">("any", "internal", "external"),
      services: list(SERVICES),
    },
    { requiredKeys: [] },
  )
  .filter((m) => Object.keys(m).length > 0);

const severity = fc.constantFrom("info", "low", "medium", "high", "critical") as fc.Arbitrary<Rule["severity"]>;
const mode = fc.constantFrom("enforce", "enforce", "shadow") as fc.Arbitrary<Rule["mode"]>;

const policyArb: fc.Arbitrary<Policy> = fc
  .record({
    rules: fc.array(fc.record({ effect: fc.constantFrom<Rule["effect"]>("deny", "deny", "allow"), severity, mode, match: matchArb }), {
      maxLength: 4,
    }),
    compatible: fc.array(fc.record({ collectedFor: list(PURPOSES), usedFor: list(PURPOSES) }), { maxLength: 2 }),
    declassify: fc.array(
      fc.record({
        transforms: list([Transform.hash, Transform.aggregate, Transform.copy, Transform.join]),
        masking: list([Masking.masked, Masking.anonymised] as const),
        categories: list(CATEGORIES),
        action: fc.oneof(
          fc.constant({ drop: true as const }),
          fc.constantFrom("user.unique_id", "user.contact.email").map((c) => ({ reclassifyTo: c })),
        ),
      }),
      { maxLength: 2 },
    ),
    pl: fc.record({ enabled: fc.boolean(), severity, mode }),
  })
  .map((r) => ({
    source: "random.yaml",
    purposeLimitation: { id: "purpose-limitation", ...r.pl },
    compatible: r.compatible.map((c, i) => ({ id: `compatible-${i}`, ...c })),
    rules: r.rules.map((rule, i) => ({ id: `rule-${i}`, description: "", ...rule })),
    declassify: r.declassify.map((d, i) => ({ id: `declassify-${i}`, ...d })),
    unknownProvenance: { severity: "medium" as const },
  }));

/** The histories' uses and shares, spread over services, several purposes and both subject types. */
const historyWithVariety = fc
  .tuple(
    historyArb({ maxEvents: 24, days: 4 }),
    fc.array(
      fc.tuple(
        fc.constantFrom(...SERVICES),
        fc.constantFrom("customer", "employee"),
        fc.subarray(["analytics", "marketing.advertising", "essential.service.security"]),
      ),
      {
        minLength: 24,
        maxLength: 24,
      },
    ),
  )
  .map(([events, extra]) =>
    withIds(
      events.map((e, i) => {
        if (e.kind !== "USE" && e.kind !== "SHARE") return e;
        const [service, dataSubject, purposes] = extra[i] as [string, string, string[]];
        return { ...e, service, dataSubject, purposes: [...new Set([...e.purposes, ...purposes])] };
      }),
    ),
  );

describe("replay compiled to SQL agrees with the stream replay (chDB)", () => {
  it("gives identical violation sets for random policies over random histories", async () => {
    let compared = 0;
    let nonEmpty = 0;
    await fc.assert(
      fc.asyncProperty(historyWithVariety, policyArb, async (history, policy) => {
        const store = await storeWith(history);
        const rulesText = JSON.stringify(policy);
        await replayRules(store, { policy, rulesText, taxonomy });
        const stream = await violations(store);
        await clearViolations(store);
        const sql = await replayRulesSql(store, { policy, rulesText, chunkRows: 3 });
        const compiled = await violations(store);
        expect(compiled).toEqual(stream);
        expect(sql.done).toBe(true);
        // Every violation the SQL wrote has its path stored.
        const [orphans] = await store.query<{ n: string }>(
          `SELECT count() AS n FROM ${store.database}.${Table.violations} WHERE path_id NOT IN (SELECT path_id FROM ${store.database}.${Table.paths})`,
        );
        expect(Number(orphans?.n)).toBe(0);
        compared++;
        if (stream.length > 0) nonEmpty++;
        await store.close();
        stores.splice(stores.indexOf(store), 1);
      }),
      { numRuns: 25, seed: 10 },
    );
    expect(compared).toBe(25);
    expect(nonEmpty).toBeGreaterThan(5);
  }, 600_000);
});

// The compiled expression alone, decision by decision: many (label, use, purpose) rows per random
// policy in one query, against createEvaluator on each row.
const CATEGORY_KEYS = [
  "user.contact.email",
  "user.contact.phone_number",
  "user.contact",
  "user.health",
  "user.unique_id",
  "user.account.username",
];
const PURPOSE_KEYS = [
  "marketing.advertising.third_party.targeted",
  "marketing.advertising",
  "essential.service.security",
  "essential.service.authentication",
  "essential.service",
  "analytics",
  "analytics.reporting",
];
const rowArb = fc.record({
  category: fc.constantFrom(...CATEGORY_KEYS),
  collectedFor: fc.subarray(PURPOSE_KEYS, { minLength: 1, maxLength: 3 }),
  labelSubject: fc.constantFrom("customer", "employee"),
  kind: fc.constantFrom<"USE" | "SHARE">("USE", "SHARE"),
  service: fc.constantFrom(...SERVICES),
  useSubject: fc.constantFrom("customer", "employee"),
  recipient: fc.constantFrom(null, { name: "bi", external: false }, { name: "partner", external: true }),
  purpose: fc.constantFrom(...PURPOSE_KEYS),
});

describe("the compiled rules decide as the evaluator does, row by row (chDB)", () => {
  it("breaks the same rules for every (label, use, purpose) of random policies", async () => {
    const store = await openStore({ path: dir, database: randomDatabase("rsqlrows") });
    stores.push(store);
    let broken = 0;
    await fc.assert(
      fc.asyncProperty(policyArb, fc.array(rowArb, { minLength: 150, maxLength: 150 }), async (policy, rows) => {
        const compiled = compilePolicy(policy);
        const evaluator = createEvaluator(policy);
        const expected = rows.map((r) =>
          evaluator
            .evaluate([{ id: "l", category: r.category, collectedFor: r.collectedFor, dataSubject: r.labelSubject }], {
              kind: r.kind,
              purposes: [r.purpose],
              dataSubject: r.useSubject,
              service: r.service,
              recipient: r.kind === "SHARE" ? r.recipient : null,
            })
            .map((v) => v.ruleId)
            .sort(),
        );
        const data = rows
          .map((r, i) =>
            JSON.stringify({
              i,
              u_kind: r.kind,
              u_service: r.service,
              u_data_subject: r.useSubject,
              u_recipient: r.kind === "SHARE" ? (r.recipient?.name ?? "") : "",
              u_recipient_external: r.kind === "SHARE" && r.recipient?.external ? 1 : 0,
              l_category: r.category,
              l_collected_for: r.collectedFor,
              l_data_subject: r.labelSubject,
              u_purpose: r.purpose,
            }),
          )
          .join("\n");
        const structure =
          "i UInt32, u_kind String, u_service String, u_data_subject String, u_recipient String, u_recipient_external UInt8, l_category String, l_collected_for Array(String), l_data_subject String, u_purpose String";
        const got = await store.query<{ i: number; broken: string[] }>(
          `SELECT i, arraySort(${compiled.ruleIds}) AS broken FROM format(JSONEachRow, ${sqlLiteral(structure)}, ${sqlLiteral(data)}) ORDER BY i`,
        );
        expect(got.map((g) => g.broken)).toEqual(expected);
        broken += expected.filter((e) => e.length > 0).length;
      }),
      { numRuns: 150 },
    );
    expect(broken).toBeGreaterThan(1000);
  }, 300_000);
});
