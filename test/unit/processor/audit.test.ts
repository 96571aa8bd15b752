import { beforeEach, describe, expect, it } from "vitest";
import { Masking, Transform, type DataAccessEvent } from "../../../services/codec/index.ts";
import { InputError } from "../../../services/errors/index.ts";
import {
  createAuditor,
  edgeRowsOf,
  emptyBatch,
  FindingKind,
  RawIdentifierError,
  type AuditBatch,
  type Auditor,
  type EventMeta,
  type EdgesRow,
  type EventRow,
} from "../../../services/processor/index.ts";
import { factDigest } from "../../../services/lineage/index.ts";
import {
  ADS,
  EMAIL,
  AUTHENTICATION,
  collect,
  defaultPolicy,
  deriveDatasets,
  deriveFields,
  map,
  nextEventId,
  PHONE,
  pipeline2019,
  pseudo,
  read,
  ref,
  SECURITY,
  share,
  use,
} from "../helpers.ts";

const META: EventMeta = { writerFingerprint: "0123456789abcdef", writerVersion: 2 };
const SUBJECTS = [pseudo("alice"), pseudo("bob")];
const ORIGIN = "wh/security.two_factor#phone_number";

let auditor: Auditor;
beforeEach(() => {
  const { policy, taxonomy } = defaultPolicy();
  auditor = createAuditor(policy, taxonomy);
});

function handleAll(...events: DataAccessEvent[]): AuditBatch {
  const out = emptyBatch();
  for (const e of events) auditor.handle(e, META, out);
  return out;
}

function rowOf(out: AuditBatch, e: DataAccessEvent): EventRow {
  const rows = out.events.filter((r) => r.event_id === e.eventId);
  expect(rows).toHaveLength(1);
  return rows[0] as EventRow;
}

function lineage2019(): AuditBatch {
  const p = pipeline2019();
  return handleAll(p.collect, p.copy, p.join, p.hash);
}

const adsUse = () => use([read("ads.matching_keys", "phone_sha256")], [ADS], { service: "partner-audiences", subjects: SUBJECTS });

describe("auditor: the 2019 case", () => {
  it("flags 2FA phone numbers hashed into ad matching keys under security-contact-not-for-marketing and purpose-limitation", () => {
    const lineage = lineage2019();
    expect(lineage.events.map((r) => r.kind)).toEqual(["COLLECT", "DERIVE", "DERIVE", "DERIVE"]);
    expect(lineage.facts).toHaveLength(4);
    expect(
      lineage.edges.flatMap(edgeRowsOf).map((e) => `${e.from_dataset}#${e.from_field}>${e.to_dataset}#${e.to_field}:${e.transform}`),
    ).toEqual([
      "wh/security.two_factor#phone_number>wh/profile.contact_points#phone_number:COPY",
      "wh/profile.contact_points#phone_number>wh/identity.graph#security_phone:JOIN",
      "wh/identity.graph#security_phone>wh/ads.matching_keys#phone_sha256:HASH",
    ]);
    expect(lineage.violations).toEqual([]);

    const e = adsUse();
    const out = handleAll(e);

    const row = rowOf(out, e);
    expect(row).toMatchObject({
      kind: "USE",
      verdict: "violation",
      subjects: SUBJECTS,
      purposes: [ADS],
      categories: [PHONE],
      collected_for: [AUTHENTICATION, SECURITY],
      input_fields: ["wh/ads.matching_keys#phone_sha256"],
      schema_fingerprint: META.writerFingerprint,
      schema_version: 2,
    });

    const byRule = new Map(out.violations.map((v) => [v.rule_id, v]));
    expect([...byRule.keys()].sort()).toEqual(["purpose-limitation", "security-contact-not-for-marketing"]);
    expect(byRule.get("security-contact-not-for-marketing")).toMatchObject({
      violation_id: `${e.eventId}:security-contact-not-for-marketing`,
      event_id: e.eventId,
      basis: "deny",
      mode: "enforce",
      severity: "critical",
      service: "partner-audiences",
      datasets: ["wh/ads.matching_keys"],
      purposes: [ADS],
      categories: [PHONE],
      collected_for: [AUTHENTICATION, SECURITY],
      origins: [ORIGIN],
      subjects: SUBJECTS,
      late_lineage: 0,
      reason: `${PHONE} collected for ${AUTHENTICATION}, ${SECURITY} used for ${ADS}`,
    });
    expect(byRule.get("purpose-limitation")).toMatchObject({
      basis: "purpose-limitation",
      mode: "enforce",
      severity: "high",
      late_lineage: 0,
    });

    expect(out.labels).toHaveLength(1);
    expect(out.labels[0]).toMatchObject({
      origin: ORIGIN,
      category: PHONE,
      collected_for: [AUTHENTICATION, SECURITY],
      data_subject: "customer",
    });
    expect(byRule.get("purpose-limitation")?.label_ids).toEqual([out.labels[0]?.label_id]);

    // Both verdicts share one lineage path, stored once.
    expect(out.paths).toHaveLength(1);
    const path = out.paths[0];
    for (const v of out.violations) expect(v.path_id).toBe(path?.path_id);
    expect(path?.path_text.startsWith("COLLECT ")).toBe(true);
    expect(path?.path_text.endsWith(`USE wh/ads.matching_keys#phone_sha256 for ${ADS} by partner-audiences`)).toBe(true);
    expect(path?.path_text).toBe(
      [
        `COLLECT ${ORIGIN} [${PHONE}; for ${AUTHENTICATION}, ${SECURITY}] by auth-service`,
        "COPY → wh/profile.contact_points#phone_number by profile-sync",
        "JOIN → wh/identity.graph#security_phone by identity-graph",
        "HASH → wh/ads.matching_keys#phone_sha256 by ads-identity",
        `USE wh/ads.matching_keys#phone_sha256 for ${ADS} by partner-audiences`,
      ].join(" ⇒ "),
    );
    const json = JSON.parse(path?.lineage_path ?? "{}") as {
      totalPaths: number;
      paths: { origin: string; hops: { dataset: string }[] }[];
      use: { kind: string };
    };
    expect(json.totalPaths).toBe(1);
    expect(json.use.kind).toBe("USE");
    expect(json.paths[0]?.origin).toBe(ORIGIN);
    expect(json.paths[0]?.hops.map((h) => h.dataset)).toEqual([
      "wh/security.two_factor",
      "wh/profile.contact_points",
      "wh/identity.graph",
      "wh/ads.matching_keys",
    ]);
  });

  it("flags a marketing use of a hash of a column of a whole-dataset copy of the 2FA table", () => {
    handleAll(
      collect("security.two_factor", { phone_number: [PHONE] }, [SECURITY, AUTHENTICATION]),
      deriveDatasets(["security.two_factor"], ["backup.two_factor"], Transform.copy),
      deriveFields([map(ref("ads.keys", "phone_sha256"), [ref("backup.two_factor", "phone_number")], Transform.hash)]),
    );
    // Control: reading the copy's column directly is judged on the phone label.
    const direct = use([read("backup.two_factor", "phone_number")], [ADS]);
    expect(rowOf(handleAll(direct), direct).verdict).toBe("violation");

    const e = use([read("ads.keys", "phone_sha256")], [ADS]);
    const out = handleAll(e);
    expect(rowOf(out, e)).toMatchObject({ verdict: "violation", categories: [PHONE] });
    expect(out.violations.map((v) => v.rule_id).sort()).toEqual(["purpose-limitation", "security-contact-not-for-marketing"]);
  });

  it("does not store the same label or path twice for a second identical use", () => {
    lineage2019();
    handleAll(adsUse());
    const second = handleAll(adsUse());
    expect(second.violations).toHaveLength(2);
    expect(second.labels).toEqual([]);
    expect(second.paths).toEqual([]);
  });

  it("finds no violation for a legitimate authentication use of the 2FA phone (verdict ok)", () => {
    lineage2019();
    const e = use([read("security.two_factor", "phone_number")], [AUTHENTICATION], { subjects: SUBJECTS });
    const out = handleAll(e);
    expect(out.violations).toEqual([]);
    expect(out.findings).toEqual([]);
    expect(rowOf(out, e)).toMatchObject({ verdict: "ok", categories: [PHONE] });
  });

  it("records a match of the shadow rule credentials-never-for-analytics with mode shadow and verdict shadow", () => {
    handleAll(
      collect("accounts.credentials", { password_hash: ["user.authorization.credentials"] }, [AUTHENTICATION, "analytics.reporting"]),
    );
    const e = use([read("accounts.credentials", "password_hash")], ["analytics.reporting.system"]);
    const out = handleAll(e);
    expect(out.violations.map((v) => [v.rule_id, v.mode, v.severity, v.basis])).toEqual([
      ["credentials-never-for-analytics", "shadow", "medium", "deny"],
    ]);
    expect(rowOf(out, e).verdict).toBe("shadow");
  });
});

describe("auditor: a job's repeated run", () => {
  it("stores a DERIVE's edges with the run that first brings its fact; later runs point at that fact instead", () => {
    const p = pipeline2019();
    const first = handleAll(p.collect, p.copy, p.join, p.hash);
    for (const e of [p.collect, p.copy, p.join, p.hash]) expect(rowOf(first, e).fact_key).toBe(factDigest(e));
    expect(first.edges.map((r) => [r.event_id, r.fact_key])).toEqual([p.copy, p.join, p.hash].map((e) => [e.eventId, factDigest(e)]));
    expect(edgeRowsOf(first.edges[0] as EdgesRow)[0]).toMatchObject({ event_id: p.copy.eventId, fact_key: factDigest(p.copy) });

    // The same jobs the next day: the same lineage under new runs.
    const nextDay = (e: DataAccessEvent) => ({ ...e, eventId: nextEventId(), runId: "run-2", occurredAt: e.occurredAt + 86_400_000 });
    const copy2 = nextDay(p.copy);
    const hash2 = nextDay(p.hash);
    const again = handleAll(copy2, hash2);
    expect(again.edges).toEqual([]);
    expect(again.facts).toEqual([]);
    expect(rowOf(again, copy2)).toMatchObject({ kind: "DERIVE", run_id: "run-2", fact_key: factDigest(p.copy) });
    expect(rowOf(again, hash2).fact_key).toBe(factDigest(p.hash));

    // A run whose lineage changed (one more column) is a new fact: its edges are stored.
    const widened = deriveFields(
      [
        map(ref("profile.contact_points", "phone_number"), [ref("security.two_factor", "phone_number")], Transform.copy),
        map(ref("profile.contact_points", "country"), [ref("security.two_factor", "country")], Transform.copy),
      ],
      { service: "profile-sync", job: p.copy.job, runId: "run-3" },
    );
    const changed = handleAll(widened);
    expect(rowOf(changed, widened).fact_key).toBe(factDigest(widened));
    expect(changed.edges.flatMap(edgeRowsOf).map((e) => [e.fact_key, e.to_field])).toEqual([
      [factDigest(widened), "phone_number"],
      [factDigest(widened), "country"],
    ]);

    // A dataset-level DERIVE repeated: its edges once too.
    const whole = deriveDatasets(["ads.matching_keys"], ["ads.audiences"], Transform.copy);
    expect(handleAll(whole).edges).toHaveLength(1);
    const whole2 = nextDay(whole);
    const repeated = handleAll(whole2);
    expect(repeated.edges).toEqual([]);
    expect(rowOf(repeated, whole2).fact_key).toBe(factDigest(whole));

    // The lineage still carries the labels: a use downstream is flagged as before.
    const u = adsUse();
    expect(rowOf(handleAll(u), u).verdict).toBe("violation");
  });
});

describe("auditor: shares", () => {
  it("flags an external share of security data under security-data-not-shared-externally", () => {
    lineage2019();
    const e = share([read("security.two_factor", "phone_number")], [SECURITY], { name: "sms-gateway", external: true });
    const out = handleAll(e);
    expect(out.violations.map((v) => [v.rule_id, v.mode, v.severity])).toEqual([
      ["security-data-not-shared-externally", "enforce", "critical"],
    ]);
    expect(out.violations[0]).toMatchObject({ kind: "SHARE", recipient: "sms-gateway", recipient_external: 1 });
    expect(rowOf(out, e)).toMatchObject({ verdict: "violation", recipient: "sms-gateway", recipient_external: 1 });
    expect(
      out.paths[0]?.path_text.endsWith(`SHARE wh/security.two_factor#phone_number for ${SECURITY} by sharer to sms-gateway (external)`),
    ).toBe(true);
  });

  it("allows an internal share of security data for a security purpose", () => {
    lineage2019();
    const e = share([read("security.two_factor", "phone_number")], [SECURITY], { name: "trust-and-safety", external: false });
    const out = handleAll(e);
    expect(out.violations).toEqual([]);
    expect(rowOf(out, e)).toMatchObject({ verdict: "ok", recipient: "trust-and-safety", recipient_external: 0 });
  });

  it("allows an external share of an anonymised aggregate of security data", () => {
    lineage2019();
    handleAll(deriveDatasets(["ads.matching_keys"], ["ads.campaign_reports"], Transform.aggregate, { masking: Masking.anonymised }));
    const e = share([read("ads.campaign_reports")], ["analytics.reporting.campaign_insights"], { name: "advertiser-api", external: true });
    const out = handleAll(e);
    expect(out.violations).toEqual([]);
    expect(out.findings).toEqual([]);
    const row = rowOf(out, e);
    expect(row.verdict).toBe("ok");
    expect(row.categories).toBeUndefined();
  });
});

describe("auditor: unknown provenance and late lineage", () => {
  it("marks a use of an undescribed dataset unknown_provenance, then resolves it with a late violation when the DERIVE arrives", () => {
    const p = pipeline2019();
    handleAll(p.collect, p.copy, p.join);
    const e = adsUse();

    const early = handleAll(e);
    expect(rowOf(early, e).verdict).toBe("unknown_provenance");
    expect(early.violations).toEqual([]);
    expect(early.findings).toHaveLength(1);
    expect(early.findings[0]).toMatchObject({
      finding_id: `${e.eventId}:UNKNOWN_PROVENANCE`,
      kind: FindingKind.unknownProvenance,
      event_id: e.eventId,
      datasets: ["wh/ads.matching_keys"],
      severity: "medium",
      subject_count: 2,
    });
    expect(auditor.pending).toBe(1);

    const late = handleAll(p.hash);
    expect(auditor.pending).toBe(0);
    expect(late.events.map((r) => r.event_id).sort()).toEqual([e.eventId, p.hash.eventId].sort());
    expect(rowOf(late, e)).toMatchObject({ verdict: "violation", subjects: SUBJECTS, categories: [PHONE] });
    expect(late.findings).toEqual([
      expect.objectContaining({
        finding_id: `${e.eventId}:PROVENANCE_RESOLVED`,
        kind: FindingKind.provenanceResolved,
        event_id: e.eventId,
        datasets: ["wh/ads.matching_keys"],
        severity: "info",
        detail: "lineage for wh/ads.matching_keys arrived after the USE; re-evaluated: violation",
      }),
    ]);
    expect(late.violations.map((v) => [v.rule_id, v.event_id, v.late_lineage]).sort()).toEqual([
      ["purpose-limitation", e.eventId, 1],
      ["security-contact-not-for-marketing", e.eventId, 1],
    ]);
  });

  it("checks a recent use again when a late COLLECT adds labels upstream, and writes only the new violations", () => {
    // The derivations are known, so the use is evaluated at once; the 2FA collection arrives late.
    const p = pipeline2019();
    handleAll(p.copy, p.join, p.hash);
    const e = adsUse();
    const early = handleAll(e);
    expect(rowOf(early, e).verdict).toBe("ok");
    expect(early.violations).toEqual([]);

    const late = handleAll(p.collect);
    expect(rowOf(late, e)).toMatchObject({ verdict: "violation", categories: [PHONE], subjects: SUBJECTS });
    expect(late.violations.map((v) => [v.rule_id, v.event_id, v.late_lineage]).sort()).toEqual([
      ["purpose-limitation", e.eventId, 1],
      ["security-contact-not-for-marketing", e.eventId, 1],
    ]);
    // A further label on the same data adds no new violation, but rewrites both with their complete labels.
    const again = handleAll(collect("security.two_factor", { phone_number: [PHONE] }, [AUTHENTICATION]));
    expect(again.violations.map((v) => [v.violation_id, v.label_ids.length]).sort()).toEqual([
      [`${e.eventId}:purpose-limitation`, 2],
      [`${e.eventId}:security-contact-not-for-marketing`, 2],
    ]);
    // The same label once more: nothing to write.
    expect(handleAll(collect("security.two_factor", { phone_number: [PHONE] }, [AUTHENTICATION], { service: "x" })).violations).toEqual([]);
  });

  it("does not check uses again once they fall out of the recheck window", () => {
    auditor = createAuditor(defaultPolicy().policy, defaultPolicy().taxonomy, { recheckWindow: 1 });
    const p = pipeline2019();
    handleAll(p.copy, p.join, p.hash);
    const first = adsUse();
    const second = adsUse();
    handleAll(first, second);
    const late = handleAll(p.collect);
    expect(late.events.map((r) => r.event_id).sort()).toEqual([p.collect.eventId, second.eventId].sort());
  });

  it("keeps a use that reads two unknown datasets pending until both are described", () => {
    handleAll(collect("src", { phone: [PHONE] }, [SECURITY]));
    const e = use([read("x", "phone"), read("y", "phone")], [ADS]);
    expect(handleAll(e).findings[0]?.datasets).toEqual(["wh/x", "wh/y"]);

    const first = handleAll(deriveFields([map(ref("x", "phone"), [ref("src", "phone")])]));
    expect(first.findings).toEqual([]);
    expect(auditor.pending).toBe(1);

    const second = handleAll(deriveFields([map(ref("y", "phone"), [ref("src", "phone")])]));
    expect(second.findings.map((f) => f.kind)).toEqual(["PROVENANCE_RESOLVED"]);
    expect(rowOf(second, e).verdict).toBe("violation");
    expect(auditor.pending).toBe(0);
  });
});

describe("auditor: validation", () => {
  const cases: [string, () => DataAccessEvent, string][] = [
    ["an unknown data category", () => collect("src", { phone: ["user.contact.phone"] }, [SECURITY]), "outputs[0].fields[0].categories[0]"],
    ["an unknown purpose", () => use([read("src", "phone")], ["marketing.ads"]), "purposes[0]"],
    ["an unknown data subject", () => use([read("src", "phone")], [SECURITY], { dataSubject: "robot" }), "dataSubject"],
    ["a USE without purposes", () => use([read("src", "phone")], []), "purposes"],
    ["a SHARE without recipient", () => share([read("src", "phone")], [SECURITY], null), "recipient"],
  ];
  for (const [what, make, field] of cases) {
    it(`rejects ${what} with an InputError naming '${field}' and appends nothing`, () => {
      handleAll(collect("src", { phone: [PHONE] }, [SECURITY]));
      const factsBefore = auditor.graph.stats.facts;
      const out = emptyBatch();
      const e = make();
      let error: unknown;
      try {
        auditor.handle(e, META, out);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(InputError);
      expect(error).not.toBeInstanceOf(RawIdentifierError);
      expect((error as InputError).code).toBe("INPUT");
      expect((error as Error).message).toContain(`field '${field}'`);
      expect(out).toEqual(emptyBatch());
      expect(auditor.graph.stats.facts).toBe(factsBefore);
    });
  }

  for (const raw of ["alice@example.com", "+15551234567", pseudo("x").toUpperCase(), pseudo("x").slice(0, 31)]) {
    it(`rejects the non-pseudonymous subject id ${JSON.stringify(raw)} with a RawIdentifierError that does not quote it`, () => {
      const out = emptyBatch();
      const e = collect("src", { phone: [PHONE] }, [SECURITY], { subjects: [pseudo(1), raw] });
      let error: unknown;
      try {
        auditor.handle(e, META, out);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(RawIdentifierError);
      expect(error).toBeInstanceOf(InputError);
      expect((error as Error).message).toContain("'subjects[1]'");
      expect((error as Error).message).not.toContain(raw);
      expect(out).toEqual(emptyBatch());
      expect(auditor.graph.knows("wh/src")).toBe(false);
    });
  }
});

describe("auditor: evaluation cache", () => {
  it("resolves a parked use once a derivation describes its dataset, even when no label has reached it yet", () => {
    const e = use([read("ads.keys", "k")], [ADS]);
    expect(rowOf(handleAll(e), e).verdict).toBe("unknown_provenance");
    const same = use([read("ads.keys", "k")], [ADS]);
    handleAll(same);
    const late = handleAll(deriveFields([map(ref("ads.keys", "k"), [ref("not.yet.collected", "x")], Transform.hash)]));
    expect(late.events.filter((r) => r.kind === "USE").map((r) => r.verdict)).toEqual(["ok", "ok"]);
    expect(auditor.pending).toBe(0);
  });
});

describe("auditor: late lineage on an already-violating use (issue 8, item 20)", () => {
  const HEALTH = "user.health.condition";
  const SERVICE = "essential.service";

  it("rewrites the violation with the contact category when the contact collection arrives after the use already violated through health data", () => {
    // Forced order: the health collection, then the use (violates through health), then the
    // collection of the contact field it also read.
    handleAll(collect("clinic.patients", { condition: [HEALTH] }, [SERVICE]));
    const e = use([read("clinic.patients", "condition", "email")], [ADS], { subjects: SUBJECTS });
    const first = handleAll(e);
    expect(first.violations.map((v) => [v.violation_id, v.categories])).toEqual([[`${e.eventId}:purpose-limitation`, [HEALTH]]]);

    const late = handleAll(collect("clinic.patients", { email: [EMAIL] }, [SERVICE]));
    expect(late.violations).toHaveLength(1);
    expect(late.violations[0]).toMatchObject({
      violation_id: `${e.eventId}:purpose-limitation`,
      rule_id: "purpose-limitation",
      categories: [EMAIL, HEALTH],
      origins: ["wh/clinic.patients#condition", "wh/clinic.patients#email"],
      subjects: SUBJECTS,
      late_lineage: 1,
    });
    expect(late.violations[0]?.label_ids).toHaveLength(2);
    // The path of the rewritten violation is stored, and the use's row carries both categories.
    expect(late.paths.map((p) => p.path_id)).toEqual([late.violations[0]?.path_id]);
    expect(rowOf(late, e)).toMatchObject({ verdict: "violation", categories: [EMAIL, HEALTH] });

    // Nothing new: nothing rewritten.
    expect(handleAll(collect("clinic.patients", { email: [EMAIL] }, [SERVICE], { service: "other" })).violations).toEqual([]);
  });
});
