import { describe, expect, it } from "vitest";
import { Masking, Transform, type DataAccessEvent } from "../../../services/codec/index.ts";
import { EventKind } from "../../../services/codec/index.ts";
import {
  art17In,
  evaluateProvenance,
  Reason,
  summarize,
  timeOrder,
  type ProvenanceResult,
  type UseVerdict,
} from "../../reference/provenance.ts";
import {
  ADS,
  collect,
  defaultPolicy,
  deriveDatasets,
  deriveFields,
  EMAIL,
  map,
  PHONE,
  pseudo,
  read,
  ref,
  SECURITY,
  share,
  use,
} from "../helpers.ts";

const DAY = 86_400_000;
const day = (n: number) => Date.UTC(2019, 0, 1) + n * DAY;
const [alice, bob, carol, dave, erin] = ["alice", "bob", "carol", "dave", "erin"].map((n) => pseudo(n)) as [
  string,
  string,
  string,
  string,
  string,
];
const sorted = (...s: string[]) => [...s].sort();

const RULE = "security-contact-not-for-marketing";
const PL = "purpose-limitation";
const EXPORT_RULE = "security-data-not-shared-externally";

function evaluate(...history: DataAccessEvent[]): ProvenanceResult {
  return evaluateProvenance(history, defaultPolicy().policy);
}

function verdictOf(r: ProvenanceResult, e: DataAccessEvent, rule = RULE): UseVerdict {
  const found = r.verdicts.filter((v) => v.eventId === e.eventId && v.ruleId === rule);
  expect(found).toHaveLength(1);
  return found[0] as UseVerdict;
}

function deleteOf(inputs: DataAccessEvent["inputs"], overrides: Partial<DataAccessEvent> = {}): DataAccessEvent {
  return { ...use(inputs, []), kind: EventKind.delete, service: "eraser", job: { namespace: "test", name: "delete-job" }, ...overrides };
}

const twoFactor = (subjects: string[], at: number) =>
  collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { subjects, occurredAt: at, service: "auth-service" });
/** The copy of the 2FA phone into profile contact points, as a batch job runs it. */
const copy2fa = (at: number, subjects: string[] = []) =>
  deriveFields([map(ref("profile.contact", "phone"), [ref("security.two_factor", "phone")], Transform.copy)], { occurredAt: at, subjects });
const adsUse = (subjects: string[], at: number) =>
  use([read("profile.contact", "phone")], [ADS], { subjects, occurredAt: at, service: "partner-audiences" });

describe("reference evaluator: the issue's four-line example", () => {
  const signUp = collect("accounts.users", { phone: [PHONE] }, ["essential.service", "marketing.advertising"], {
    subjects: [carol, dave],
    occurredAt: day(1),
  });
  const security = twoFactor([alice, bob], day(1));
  const copyBoth = deriveFields(
    [map(ref("profile.contact", "phone"), [ref("accounts.users", "phone"), ref("security.two_factor", "phone")], Transform.copy)],
    { occurredAt: day(2) },
  );
  const match = adsUse([alice, carol, erin], day(3));

  it("counts alice exactly and alice, carol and erin as possibly affected, carol and erin for want of provenance", () => {
    const r = evaluate(signUp, security, copyBoth, match);
    const v = verdictOf(r, match);
    expect(v.exact).toEqual([alice]);
    expect(v.fieldLevel).toEqual(sorted(alice, carol, erin));
    expect(v.reasons).toEqual({ [carol]: Reason.noProvenance, [erin]: Reason.noProvenance });
    expect(v.exactRecords).toEqual([`${alice}|${PHONE}`]);
    expect(v.fieldLevelRecords).toHaveLength(3);

    const s = summarize(r, RULE);
    expect(s.exact).toEqual({ users: 1, records: 1, violatingEvents: 1, first: day(3), last: day(3) });
    expect(s.fieldLevel).toEqual({ users: 3, records: 3, violatingEvents: 1, first: day(3), last: day(3) });
    expect(s.possiblyNotExactly).toEqual({
      users: 2,
      reasons: { [Reason.deletedBefore]: 0, [Reason.notCarried]: 0, [Reason.collectedAfter]: 0, [Reason.noProvenance]: 2 },
    });
    expect(s.onDeclarationOnly).toBe(0);
  });

  it("gives the same split under purpose limitation: carol's number was collected with an advertising purpose", () => {
    const v = verdictOf(evaluate(signUp, security, copyBoth, match), match, PL);
    expect(v.exact).toEqual([alice]);
    expect(v.reasons[carol]).toBe(Reason.noProvenance);
  });
});

describe("reference evaluator: time", () => {
  it("does not count a subject who enrolled in two-factor after the match, and does count the next match", () => {
    const before = adsUse([alice], day(3));
    const after = adsUse([alice], day(6));
    const r = evaluate(copy2fa(day(1)), twoFactor([alice], day(5)), before, after);
    expect(verdictOf(r, before).exact).toEqual([]);
    expect(verdictOf(r, before).reasons).toEqual({ [alice]: Reason.collectedAfter });
    expect(verdictOf(r, after).exact).toEqual([alice]);
    const s = summarize(r, RULE);
    expect([s.exact.first, s.exact.last]).toEqual([day(6), day(6)]);
    expect([s.fieldLevel.first, s.fieldLevel.last]).toEqual([day(3), day(6)]);
    expect(summarize(r, RULE, { to: day(4) }).exact.users).toBe(0);
    expect(summarize(r, RULE, { to: day(4) }).possiblyNotExactly.reasons[Reason.collectedAfter]).toBe(1);
  });

  it("counts lineage that arrives after the use as 'collected after the use' (the pipeline did not exist yet)", () => {
    const early = adsUse([alice], day(2));
    const r = evaluate(twoFactor([alice], day(1)), early, copy2fa(day(3)));
    expect(verdictOf(r, early).reasons).toEqual({ [alice]: Reason.collectedAfter });
  });

  it("at equal times, a use sees the collection and derivation at its time, and a deletion at its time only afterwards", () => {
    const t = day(2);
    const same = adsUse([alice], t);
    const next = adsUse([alice], t + 1);
    const erase = deleteOf([read("profile.contact", "phone")], { subjects: [alice], occurredAt: t });
    // Given out of order on purpose: the evaluator orders by time, then lineage, uses, deletions.
    const r = evaluate(erase, same, copy2fa(t), twoFactor([alice], t), next);
    expect(timeOrder([erase, same, copy2fa(t)]).map((e) => e.kind)).toEqual(["DERIVE", "USE", "DELETE"]);
    expect(verdictOf(r, same).exact).toEqual([alice]);
    expect(verdictOf(r, next).exact).toEqual([]);
    expect(verdictOf(r, next).reasons).toEqual({ [alice]: Reason.deletedBefore });
  });
});

describe("reference evaluator: deletion", () => {
  it("keeps counting a subject who deleted from the 2FA store only (the copy survives), not one who deleted everywhere", () => {
    const match = adsUse([alice, bob], day(3));
    const r = evaluate(
      twoFactor([alice, bob], day(1)),
      copy2fa(day(1)),
      deleteOf([read("security.two_factor", "phone")], { subjects: [bob], occurredAt: day(2) }),
      deleteOf([read("security.two_factor", "phone"), read("profile.contact", "phone")], { subjects: [alice], occurredAt: day(2) }),
      match,
    );
    const v = verdictOf(r, match);
    expect(v.exact).toEqual([bob]);
    expect(v.reasons).toEqual({ [alice]: Reason.deletedBefore });
    // Art. 17: bob's number is still held in the copy after his erasure; alice's is gone.
    expect(r.art17).toEqual([
      { deleteEventId: expect.any(String), occurredAt: day(2), subject: bob, fields: ["wh/profile.contact#phone"] },
    ]);
    expect(art17In(r, { from: day(3) }).subjects).toBe(0);
    expect(art17In(r).subjects).toBe(1);
  });

  it("after deleting a copy its source still feeds, holds it again only from the next run into the copy that carries the subject", () => {
    const afterDelete = adsUse([alice], day(3));
    const afterBobRun = adsUse([alice], day(5));
    const afterRun = adsUse([alice], day(7));
    const r = evaluate(
      twoFactor([alice, bob], day(1)),
      copy2fa(day(1)),
      deleteOf([read("profile.contact", "phone")], { subjects: [alice], occurredAt: day(2) }),
      afterDelete,
      copy2fa(day(4), [bob]),
      afterBobRun,
      copy2fa(day(6)),
      afterRun,
    );
    expect(verdictOf(r, afterDelete).reasons).toEqual({ [alice]: Reason.deletedBefore });
    expect(verdictOf(r, afterBobRun).exact).toEqual([]);
    expect(verdictOf(r, afterRun).exact).toEqual([alice]);
    // Her data is still in the 2FA store, its origin: not an Art. 17 finding.
    expect(r.art17).toEqual([]);
  });

  it("ends everyone's holding in a field with a deletion naming nobody", () => {
    const match = adsUse([alice, bob], day(3));
    const r = evaluate(
      twoFactor([alice, bob], day(1)),
      copy2fa(day(1)),
      deleteOf([read("profile.contact")], { occurredAt: day(2) }),
      match,
    );
    expect(verdictOf(r, match).exact).toEqual([]);
    expect(summarize(r, RULE).possiblyNotExactly.reasons[Reason.deletedBefore]).toBe(2);
  });
});

describe("reference evaluator: subject-named derivations", () => {
  it("carries only the named subjects, each from the time of the run that named them", () => {
    const between = adsUse([alice, bob, carol], day(2));
    const later = adsUse([alice, bob, carol], day(4));
    const r = evaluate(
      twoFactor([bob, carol], day(0)),
      copy2fa(day(1), [alice]),
      // A standing pipeline for alice: her number, collected after the run that named her, still flows.
      twoFactor([alice], day(1) + 3_600_000),
      between,
      copy2fa(day(3), [bob]),
      later,
    );
    expect(verdictOf(r, between).exact).toEqual([alice]);
    expect(verdictOf(r, between).reasons).toEqual({ [bob]: Reason.notCarried, [carol]: Reason.notCarried });
    expect(verdictOf(r, later).exact).toEqual(sorted(alice, bob));
    expect(verdictOf(r, later).reasons).toEqual({ [carol]: Reason.notCarried });
  });

  it("counts records as subject × category of the forbidden data held", () => {
    const match = use([read("profile.contact")], [ADS], { subjects: [alice, bob], occurredAt: day(3) });
    const r = evaluate(
      collect("security.two_factor", { phone: [PHONE], email: [EMAIL] }, [SECURITY], { subjects: [alice], occurredAt: day(1) }),
      collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { subjects: [bob], occurredAt: day(1) }),
      deriveDatasets(["security.two_factor"], ["profile.contact"], Transform.copy, { occurredAt: day(2) }),
      match,
    );
    const v = verdictOf(r, match);
    // A dataset-level DERIVE (no field lineage) carries every input field into every output field.
    expect(v.exactRecords).toEqual(sorted(`${alice}|${EMAIL}`, `${alice}|${PHONE}`, `${bob}|${PHONE}`));
    expect(summarize(r, RULE).exact.records).toBe(3);
    expect(summarize(r, RULE).fieldLevel.records).toBe(4);
  });
});

describe("reference evaluator: whole-table uses and declarations", () => {
  it("counts every subject held there for a whole-table export to an external recipient, which the field level counts as 0", () => {
    const exportAll = share(
      [read("security.two_factor")],
      ["essential.service.operations.support"],
      { name: "vendor", external: true },
      { occurredAt: day(3) },
    );
    const r = evaluate(
      twoFactor([alice, bob, carol], day(1)),
      deleteOf([read("security.two_factor")], { subjects: [carol], occurredAt: day(2) }),
      exportAll,
      twoFactor([dave], day(4)),
    );
    const v = verdictOf(r, exportAll, EXPORT_RULE);
    expect(v.wholeTable).toBe(true);
    expect(v.exact).toEqual(sorted(alice, bob));
    expect(v.fieldLevel).toEqual([]);
    const s = summarize(r, EXPORT_RULE);
    expect(s.sharedOutside.exact).toEqual({ shared: true, subjects: 2, events: 1 });
    expect(s.sharedOutside.fieldLevel).toEqual({ shared: true, subjects: 0, events: 1 });
    expect(s.exact.users).toBe(2);
    expect(s.fieldLevel.users).toBe(0);
  });

  it("treats a collection naming nobody as a declaration covering everyone the use names, from its time on", () => {
    const declare = collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { occurredAt: day(2) });
    const before = use([read("security.two_factor", "phone")], [ADS], { subjects: [alice, bob], occurredAt: day(1) });
    const after = use([read("security.two_factor", "phone")], [ADS], { subjects: [alice, bob], occurredAt: day(3) });
    const r = evaluate(declare, before, after);
    expect(verdictOf(r, before).reasons).toEqual({ [alice]: Reason.collectedAfter, [bob]: Reason.collectedAfter });
    expect(verdictOf(r, after).exact).toEqual(verdictOf(r, after).fieldLevel);
    expect(verdictOf(r, after).onDeclarationOnly).toEqual(sorted(alice, bob));
    expect(summarize(r, RULE, { from: day(3) }).onDeclarationOnly).toBe(2);
  });

  it("applies a declaration to a whole-table use only for subjects whose data is there by per-subject evidence", () => {
    const exportAll = use([read("security.two_factor")], [ADS], { occurredAt: day(3) });
    const r = evaluate(
      collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { occurredAt: day(1) }),
      collect("security.two_factor", { phone: [PHONE] }, ["essential.service"], { subjects: [carol], occurredAt: day(1) }),
      exportAll,
    );
    const v = verdictOf(r, exportAll);
    expect(v.exact).toEqual([carol]);
    expect(v.onDeclarationOnly).toEqual([carol]);
  });
});

describe("reference evaluator: masking", () => {
  it("drops labels at an anonymised aggregate the policy declassifies, and keeps them through a hash", () => {
    const agg = use([read("stats.daily", "phones")], [ADS], { subjects: [alice], occurredAt: day(3) });
    const hashed = use([read("ads.keys", "phone_sha256")], [ADS], { subjects: [alice], occurredAt: day(3) });
    const r = evaluate(
      twoFactor([alice], day(1)),
      deriveFields([map(ref("stats.daily", "phones"), [ref("security.two_factor", "phone")], Transform.aggregate)], {
        masking: Masking.anonymised,
        occurredAt: day(2),
      }),
      deriveFields([map(ref("ads.keys", "phone_sha256"), [ref("security.two_factor", "phone")], Transform.hash)], {
        masking: Masking.masked,
        occurredAt: day(2),
      }),
      agg,
      hashed,
    );
    expect(r.verdicts.filter((v) => v.eventId === agg.eventId)).toEqual([]);
    expect(verdictOf(r, hashed).exact).toEqual([alice]);
  });
});
