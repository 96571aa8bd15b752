import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EventKind, Masking, Transform, type DataAccessEvent } from "../../../services/codec/index.ts";
import { computeProvenance, OPEN_END } from "../../../services/provenance/index.ts";
import { historyArb } from "../../reference/histories.ts";
import { evaluateProvenance, expectedAnswer, type TimeWindow } from "../../reference/provenance.ts";
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
import { answerFromRows, exactFromRows } from "./exact.ts";

const { policy } = defaultPolicy();
const DAY = 86_400_000;
const day = (n: number) => Date.UTC(2019, 0, 1) + n * DAY;
const [alice, bob, carol, dave, erin] = ["alice", "bob", "carol", "dave", "erin"].map((n) => pseudo(n)) as [
  string,
  string,
  string,
  string,
  string,
];
const RULE = "security-contact-not-for-marketing";

const deleteOf = (inputs: DataAccessEvent["inputs"], overrides: Partial<DataAccessEvent> = {}): DataAccessEvent => ({
  ...use(inputs, []),
  kind: EventKind.delete,
  service: "eraser",
  job: { namespace: "test", name: "delete-job" },
  ...overrides,
});
const twoFactor = (subjects: string[], at: number) =>
  collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { subjects, occurredAt: at, service: "auth-service" });
const copy2fa = (at: number, subjects: string[] = []) =>
  deriveFields([map(ref("profile.contact", "phone"), [ref("security.two_factor", "phone")], Transform.copy)], { occurredAt: at, subjects });
const adsUse = (subjects: string[], at: number) =>
  use([read("profile.contact", "phone")], [ADS], { subjects, occurredAt: at, service: "partner-audiences" });

/** The rows' exact answer (users, records, first, last, shared outside, declaration-only) equals the reference's, per rule and window. */
function expectSameAsReference(history: readonly DataAccessEvent[]): void {
  const reference = evaluateProvenance(history, policy);
  const rows = computeProvenance(history, policy);
  // Art. 17: the same erasures whose copies survive, with the same fields.
  const byKey = (f: { deleteEventId: string; subject: string }) => `${f.deleteEventId}|${f.subject}`;
  const sorted = <T extends { deleteEventId: string; subject: string }>(list: readonly T[]) =>
    [...list].sort((a, b) => byKey(a).localeCompare(byKey(b)));
  expect(sorted(rows.erasures)).toEqual(sorted(reference.art17));
  const rules = [...new Set([...reference.verdicts.map((v) => v.ruleId), ...rows.forbidden.map((f) => f.rule_id)])];
  const times = [...new Set(history.filter((e) => e.kind === EventKind.use || e.kind === EventKind.share).map((e) => e.occurredAt))];
  const windows: TimeWindow[] = [{}, ...times.flatMap((t) => [{ to: t }, { from: t }, { from: t, to: t + 1 }])];
  for (const rule of rules) {
    for (const w of windows) {
      expect({ rule, w, answer: answerFromRows(rows, rule, w) }).toEqual({ rule, w, answer: expectedAnswer(reference, rule, w) });
    }
  }
}

export const fourLines = (): DataAccessEvent[] => [
  collect("accounts.users", { phone: [PHONE] }, ["essential.service", "marketing.advertising"], {
    subjects: [carol, dave],
    occurredAt: day(1),
  }),
  twoFactor([alice, bob], day(1)),
  deriveFields(
    [map(ref("profile.contact", "phone"), [ref("accounts.users", "phone"), ref("security.two_factor", "phone")], Transform.copy)],
    { occurredAt: day(2) },
  ),
  adsUse([alice, carol, erin], day(3)),
];

describe("per-subject holdings: the worked examples of docs/rules.md", () => {
  it("counts alice alone in the four-line example, as the reference does", () => {
    const history = fourLines();
    const rows = computeProvenance(history, policy);
    expect(exactFromRows(rows, RULE)).toEqual({ users: 1, records: 1, violatingEvents: 1, first: day(3), last: day(3) });
    // Carol's copy is held, with her sign-up labels only; erin holds nothing.
    expect(rows.holdings.some((h) => h.subject === erin)).toBe(false);
    expect(
      rows.holdings.filter((h) => h.variant === 0 && h.subject === carol && h.field === "wh/profile.contact#phone" && h.label_key !== ""),
    ).toHaveLength(1);
    expectSameAsReference(history);
  });

  it("gives the same answer whatever order the events arrive in", () => {
    const history = fourLines();
    const sorted = (h: DataAccessEvent[]) =>
      computeProvenance(h, policy)
        .holdings.map((r) => JSON.stringify(r))
        .sort();
    expect(sorted([...history].reverse())).toEqual(sorted(history));
  });

  it("holds a copy from the copy's time and the subject's enrolment, whichever is later", () => {
    const history = [copy2fa(day(1)), twoFactor([alice], day(5)), adsUse([alice], day(3)), adsUse([alice], day(6))];
    const copy = computeProvenance(history, policy).holdings.filter(
      (h) => h.variant === 0 && h.field === "wh/profile.contact#phone" && h.label_key !== "",
    );
    expect(copy.map((h) => [h.valid_from, h.valid_to])).toEqual([[day(5), OPEN_END]]);
    expectSameAsReference(history);
  });

  it("ends a holding one millisecond after a deletion at the time of a use (the use still sees it)", () => {
    const t = day(2);
    const history = [
      deleteOf([read("profile.contact", "phone")], { subjects: [alice], occurredAt: t }),
      adsUse([alice], t),
      copy2fa(t),
      twoFactor([alice], t),
      adsUse([alice], t + 1),
    ];
    const copy = computeProvenance(history, policy).holdings.filter(
      (h) => h.variant === 0 && h.field === "wh/profile.contact#phone" && h.label_key !== "",
    );
    expect(copy.map((h) => [h.valid_from, h.valid_to])).toEqual([[t, t + 1]]);
    expectSameAsReference(history);
  });

  it("keeps a copy after a deletion at the origin only, and ends it after a deletion everywhere", () => {
    expectSameAsReference([
      twoFactor([alice, bob], day(1)),
      copy2fa(day(1)),
      deleteOf([read("security.two_factor", "phone")], { subjects: [bob], occurredAt: day(2) }),
      deleteOf([read("security.two_factor", "phone"), read("profile.contact", "phone")], { subjects: [alice], occurredAt: day(2) }),
      adsUse([alice, bob], day(3)),
    ]);
  });

  it("holds a deleted copy again only from the next run that carries the subject", () => {
    const history = [
      twoFactor([alice, bob], day(1)),
      copy2fa(day(1)),
      deleteOf([read("profile.contact", "phone")], { subjects: [alice], occurredAt: day(2) }),
      adsUse([alice], day(3)),
      copy2fa(day(4), [bob]),
      adsUse([alice], day(5)),
      copy2fa(day(6)),
      adsUse([alice], day(7)),
    ];
    const rows = computeProvenance(history, policy);
    expect(exactFromRows(rows, RULE, { to: day(6) }).users).toBe(0);
    expect(exactFromRows(rows, RULE, { from: day(6) }).users).toBe(1);
    expectSameAsReference(history);
  });

  it("carries only the subjects a subject-named derivation names, from that run on", () => {
    expectSameAsReference([
      twoFactor([bob, carol], day(0)),
      copy2fa(day(1), [alice]),
      twoFactor([alice], day(1) + 3_600_000),
      adsUse([alice, bob, carol], day(2)),
      copy2fa(day(3), [bob]),
      adsUse([alice, bob, carol], day(4)),
    ]);
  });

  it("counts records as subject × category through a dataset-level derivation", () => {
    expectSameAsReference([
      collect("security.two_factor", { phone: [PHONE], email: [EMAIL] }, [SECURITY], { subjects: [alice], occurredAt: day(1) }),
      collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { subjects: [bob], occurredAt: day(1) }),
      deriveDatasets(["security.two_factor"], ["profile.contact"], Transform.copy, { occurredAt: day(2) }),
      use([read("profile.contact")], [ADS], { subjects: [alice, bob], occurredAt: day(3) }),
    ]);
  });

  it("counts a whole-table export by per-subject evidence, and declarations for the subjects a use names", () => {
    expectSameAsReference([
      twoFactor([alice, bob, carol], day(1)),
      deleteOf([read("security.two_factor")], { subjects: [carol], occurredAt: day(2) }),
      share(
        [read("security.two_factor")],
        ["essential.service.operations.support"],
        { name: "vendor", external: true },
        { occurredAt: day(3) },
      ),
      twoFactor([dave], day(4)),
    ]);
    expectSameAsReference([
      collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { occurredAt: day(2) }),
      use([read("security.two_factor", "phone")], [ADS], { subjects: [alice, bob], occurredAt: day(1) }),
      use([read("security.two_factor", "phone")], [ADS], { subjects: [alice, bob], occurredAt: day(3) }),
    ]);
    expectSameAsReference([
      collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { occurredAt: day(1) }),
      collect("security.two_factor", { phone: [PHONE] }, ["essential.service"], { subjects: [carol], occurredAt: day(1) }),
      use([read("security.two_factor")], [ADS], { occurredAt: day(3) }),
    ]);
  });

  it("drops labels at a declassified aggregate and keeps them through a hash", () => {
    expectSameAsReference([
      twoFactor([alice], day(1)),
      deriveFields([map(ref("stats.daily", "phones"), [ref("security.two_factor", "phone")], Transform.aggregate)], {
        masking: Masking.anonymised,
        occurredAt: day(2),
      }),
      deriveFields([map(ref("ads.keys", "phone_sha256"), [ref("security.two_factor", "phone")], Transform.hash)], {
        masking: Masking.masked,
        occurredAt: day(2),
      }),
      use([read("stats.daily", "phones")], [ADS], { subjects: [alice], occurredAt: day(3) }),
      use([read("ads.keys", "phone_sha256")], [ADS], { subjects: [alice], occurredAt: day(3) }),
    ]);
  });
});

describe("per-subject holdings: random histories", () => {
  it("give the reference's exact answer per rule and window, in any arrival order", () => {
    fc.assert(
      fc.property(historyArb(), fc.boolean(), (history, reversed) => {
        expectSameAsReference(reversed ? [...history].reverse() : history);
      }),
      { numRuns: 200 },
    );
  });
});
