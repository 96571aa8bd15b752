import { describe, expect, it } from "vitest";
import { emptyBatch, type AuditBatch, type EventRow, type ViolationRow } from "../../../services/processor/index.ts";
import { eventContentDigest, EventIdConflict, guardEventIds } from "../../../services/store/index.ts";

function row(id: string, at: number, subjects: string[]): EventRow {
  return {
    event_id: id,
    kind: "USE",
    occurred_at: at,
    service: "svc",
    job_namespace: "ns",
    job_name: "job",
    run_id: "run",
    data_subject: "customer",
    schema_fingerprint: "f",
    schema_version: 2,
    input_fields: ["w/a#x", "w/b#y"],
    subjects,
  };
}

function violation(e: EventRow): ViolationRow {
  return {
    violation_id: `${e.event_id}:rule`,
    event_id: e.event_id,
    rule_id: "rule",
    basis: "deny",
    severity: "high",
    mode: "enforce",
    kind: e.kind,
    occurred_at: e.occurred_at,
    service: e.service,
    job_namespace: e.job_namespace,
    job_name: e.job_name,
    run_id: e.run_id,
    datasets: [],
    purposes: [],
    categories: [],
    collected_for: [],
    origins: [],
    label_ids: [],
    path_id: "p",
    subjects: e.subjects ?? [],
    data_subject: "customer",
    recipient: "",
    recipient_external: 0,
    trace_id: "",
    late_lineage: 0,
    reason: "",
  };
}

function batchOf(...events: EventRow[]): AuditBatch {
  return { ...emptyBatch(), events, violations: events.map(violation) };
}

describe("one content per event id", () => {
  it("digests what the emitter said, whatever the order of its lists, and not what the auditor derived", () => {
    const a = row("e", 1, ["s1", "s2"]);
    expect(eventContentDigest({ ...a, subjects: ["s2", "s1"], input_fields: ["w/b#y", "w/a#x"] })).toBe(eventContentDigest(a));
    expect(eventContentDigest({ ...a, verdict: "violation", label_ids: ["l"], categories: ["c"], schema_version: 1 })).toBe(
      eventContentDigest(a),
    );
    expect(eventContentDigest({ ...a, occurred_at: 2 })).not.toBe(eventContentDigest(a));
    // Length prefixes: moving text between neighbouring values is another content.
    expect(eventContentDigest({ ...a, service: "sv", job_namespace: "cns" })).not.toBe(eventContentDigest(a));
  });

  it("passes a batch of new ids and replays of stored contents through untouched", () => {
    const a = row("a", 1, ["s1"]);
    const b = row("b", 2, ["s2"]);
    const batch = batchOf(a, b);
    const guarded = guardEventIds(batch, new Map([["a", eventContentDigest(a)]]));
    expect(guarded.conflicts).toBe(0);
    expect(guarded.batch).toBe(batch);
  });

  it("drops another content of a stored id, with everything it produced, and records one finding", () => {
    const stored = row("a", 1, ["s1"]);
    const later = row("a", 99, ["s2"]);
    const batch = batchOf(later, row("b", 2, ["s3"]));
    batch.outbox.push({
      webhook_id: "w",
      subscription_id: "s",
      rule_id: "rule",
      severity: "high",
      mode: "enforce",
      service: "svc",
      job_namespace: "ns",
      job_name: "job",
      run_id: "run",
      window_start: 0,
      window_end: 1,
      first_violation_id: "a:rule",
      version: 1,
    });
    const guarded = guardEventIds(batch, new Map([["a", eventContentDigest(stored)]]));
    expect(guarded.conflicts).toBe(1);
    expect(guarded.batch.events.map((e) => e.event_id)).toEqual(["b"]);
    expect(guarded.batch.violations.map((v) => v.event_id)).toEqual(["b"]);
    expect(guarded.batch.outbox).toEqual([]);
    expect(guarded.batch.findings).toMatchObject([{ kind: EventIdConflict.kind, event_id: "a", occurred_at: 99, subject_count: 1 }]);
    expect(JSON.stringify(guarded.batch.findings)).not.toContain("s2");
  });

  it("keeps the first of two contents of a new id within a batch, and its own violation", () => {
    const first = row("a", 1, ["s1"]);
    const second = row("a", 50, ["s2"]);
    const guarded = guardEventIds(batchOf(first, second), new Map());
    expect(guarded.batch.events).toEqual([first]);
    expect(guarded.batch.violations.map((v) => v.occurred_at)).toEqual([1]);
    expect(guarded.batch.findings).toHaveLength(1);
  });
});
