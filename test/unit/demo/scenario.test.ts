// The demo's planted ground truth against the reference evaluator (test/reference/provenance.ts):
// a small 2019 scenario, turned into the events the processor would receive, judged by brute force.
// Both readings must equal what the generator planted: the field-level one (every subject a
// flagged use names) and the exact one (only those whose own two-factor data was in the field read
// at the use's time). The scenario must also contain the shapes that make the two differ.

import { beforeAll, describe, expect, it } from "vitest";
import { EventKind, type DataAccessEvent } from "../../../services/codec/index.ts";
import { emptyGroundTruth, generateScenario, SCENARIO_RULE, type GroundTruth } from "../../../services/demo/index.ts";
import { createEventBuilder, createPseudonymizer } from "../../../services/emitter/index.ts";
import { evaluateProvenance, Reason, summarize, type ProvenanceResult, type RuleSummary } from "../../reference/provenance.ts";
import { defaultPolicy } from "../helpers.ts";

const PHONE = "user.contact.phone_number";
const TWO_FACTOR_PHONE = "warehouse/security.two_factor#phone_number";

const ms = (iso: string | null) => (iso === null ? null : Date.parse(iso));

describe("demo scenario: planted truth equals the reference evaluator", () => {
  const truth: GroundTruth = emptyGroundTruth();
  let events: DataAccessEvent[] = [];
  let result: ProvenanceResult;
  let summary: RuleSummary;

  beforeAll(() => {
    // As the emitter builds them for the processor: raw user ids pseudonymised with a keyed HMAC.
    const build = createEventBuilder({ pseudonymize: createPseudonymizer("ab".repeat(32)), pseudonymKeyId: "default" });
    events = [...generateScenario({ users: 800, eventsPerUser: 1.5, seed: 7, start: "2019-06-01", matchingScale: 20 }, truth)].map(build);
    result = evaluateProvenance(events, defaultPolicy().policy);
    summary = summarize(result, SCENARIO_RULE);
  }, 120_000);

  it("plants the field-level numbers the reference finds (users named by flagged uses, records, events, first, last)", () => {
    expect(truth.events).toBe(events.length);
    expect(summary.fieldLevel).toEqual({
      users: truth.affectedUsers,
      records: truth.affectedRecords,
      violatingEvents: truth.violatingEvents,
      first: ms(truth.firstViolation),
      last: ms(truth.lastViolation),
    });
    expect(summary.sharedOutside.fieldLevel).toEqual(truth.sharedOutside);
    expect(truth.externalSharesOfViolatedData).toBe(truth.sharedOutside.events);
  });

  it("plants the exact numbers the reference finds, shared outside included", () => {
    expect(summary.exact).toEqual({
      users: truth.exact.users,
      records: truth.exact.records,
      violatingEvents: truth.exact.violatingEvents,
      first: ms(truth.exact.firstViolation),
      last: ms(truth.exact.lastViolation),
    });
    expect(summary.sharedOutside.exact).toEqual(truth.exact.sharedOutside);
    // Per use: each affected subject of each flagged use (what the totals can hide, e.g. a deletion).
    const pairs = result.verdicts.filter((v) => v.ruleId === SCENARIO_RULE).reduce((sum, v) => sum + v.exact.length, 0);
    expect(pairs).toBe(truth.exact.subjectUses);
    expect(truth.exact.sharedOutside.shared).toBe(true);
    expect(truth.exact.sharedOutside.subjects).toBeGreaterThan(0);
  });

  it("mixes origins: fewer users are affected exactly than at field level, and those never counted exactly have no provenance or enrolled too late", () => {
    expect(truth.exact.users).toBeGreaterThan(0);
    expect(truth.exact.users).toBeLessThan(truth.affectedUsers);
    expect(truth.exact.records).toBeLessThan(truth.affectedRecords);
    const r = summary.possiblyNotExactly.reasons;
    expect(r[Reason.noProvenance]).toBeGreaterThan(0); // sign-up contact points only
    expect(r[Reason.collectedAfter]).toBeGreaterThan(0); // matched before enrolling, never after
    expect(r[Reason.notCarried]).toBe(0);
  });

  it("has people matched before they enrolled in two-factor, and counted exactly by a later match", () => {
    const named = result.verdicts.filter((v) => v.ruleId === SCENARIO_RULE && !v.wholeTable);
    const before = new Set(
      named.flatMap((v) =>
        Object.entries(v.reasons)
          .filter(([, r]) => r === Reason.collectedAfter)
          .map(([s]) => s),
      ),
    );
    const laterExact = named.filter((v) => v.exact.some((s) => before.has(s)));
    expect(before.size).toBeGreaterThan(0);
    expect(laterExact.length).toBeGreaterThan(0);
  });

  it("has people who deleted their number from the two-factor store only and were still matched exactly afterwards", () => {
    const deletes = events.filter((e) => e.kind === EventKind.delete && e.subjects.length === 1 && e.inputs.length === 1);
    expect(deletes.length).toBeGreaterThan(0);
    expect(
      deletes.every((e) => `${e.inputs[0]?.namespace}/${e.inputs[0]?.name}#${e.inputs[0]?.fields[0]?.name}` === TWO_FACTOR_PHONE),
    ).toBe(true);
    const stillMatched = deletes.filter((d) =>
      result.verdicts.some(
        (v) =>
          v.ruleId === SCENARIO_RULE &&
          !v.wholeTable &&
          v.occurredAt > d.occurredAt &&
          v.exactRecords.includes(`${d.subjects[0] as string}|${PHONE}`),
      ),
    );
    expect(stillMatched.length).toBeGreaterThan(0);
  });

  it("has people who deleted their number everywhere, whose phone no later use affects exactly", () => {
    const erasures = events.filter((e) => e.kind === EventKind.delete && e.subjects.length === 1 && e.inputs.length > 1);
    expect(erasures.length).toBeGreaterThan(0);
    for (const d of erasures) {
      const s = d.subjects[0] as string;
      const after = result.verdicts.filter((v) => v.ruleId === SCENARIO_RULE && v.occurredAt > d.occurredAt);
      expect(after.some((v) => v.exactRecords.includes(`${s}|${PHONE}`))).toBe(false);
    }
    const matchedAfter = erasures.filter((d) =>
      result.verdicts.some(
        (v) =>
          v.ruleId === SCENARIO_RULE &&
          v.occurredAt > d.occurredAt &&
          v.fieldLevel.includes(d.subjects[0] as string) &&
          v.reasons[d.subjects[0] as string] === Reason.deletedBefore,
      ),
    );
    expect(matchedAfter.length).toBeGreaterThan(0);
  });

  it("exports the whole matching-key table outside, naming nobody, until the fix", () => {
    const exports = result.verdicts.filter((v) => v.ruleId === SCENARIO_RULE && v.wholeTable);
    expect(exports.length).toBe(truth.sharedOutside.events);
    expect(exports.every((v) => v.kind === "SHARE" && v.external && v.fieldLevel.length === 0)).toBe(true);
    expect(Math.max(...exports.map((v) => v.occurredAt))).toBeLessThan(Date.parse("2019-09-17T00:00:00Z"));
  });
});
