// One event id, one content. events_v1 is laid out for time-range questions (its key includes
// kind and time), so a second content under a known id would land on a new row and be counted
// again. ClickHouse keeps each id's content digest in event_ids_v2 (keyed by the id alone,
// filled from events_v1 by event_ids_v2_mv); per batch the store looks the batch's ids up once and
// lets through only rows of the first content; any other content under the id is recorded as
// an EVENT_ID_CONFLICT finding and not counted.
import { hash } from "node:crypto";
import type { AuditBatch, EventRow, FindingRow } from "../processor/index.ts";

export const EventIdConflict = { kind: "EVENT_ID_CONFLICT", severity: "high" } as const;

/**
 * SHA-256 of what the emitter said (not what the auditor derived: verdict, labels and categories
 * change when late lineage re-checks a use), each value length-prefixed (in bytes) so that no two
 * contents share an encoding; lists are compared as sets in order. Attributes and the writer schema are left out: a re-send under another
 * schema version, or a use rebuilt from the store for a re-check, is the same event.
 * Migration 009 computes the same digest in SQL for events stored before it.
 */
export function eventContentDigest(row: EventRow): string {
  const parts: string[] = [];
  const text = (v: string) => parts.push(`${Buffer.byteLength(v)}:${v}`);
  const list = (a: readonly string[] | undefined) => {
    const items = inByteOrder(a ?? []);
    parts.push(`${items.length}[`);
    for (const v of items) text(v);
    parts.push("]");
  };
  text(row.kind);
  text(String(row.occurred_at));
  text(row.service);
  text(row.job_namespace);
  text(row.job_name);
  text(row.run_id);
  list(row.input_fields);
  list(row.output_fields);
  list(row.purposes);
  text(row.data_subject);
  list(row.subjects);
  text(row.transform ?? "");
  text(row.masking ?? "");
  text(row.recipient ?? "");
  text(String(row.recipient_external ?? 0));
  text(row.traceparent ?? "");
  text(row.pseudonym_key_id ?? "default");
  return hash("sha256", parts.join(""), "hex");
}

/**
 * Lists in UTF-8 byte order, as ClickHouse's arraySort (a use rebuilt from the store for a
 * re-check lists its fields grouped by dataset, which need not be the order they came in).
 * JavaScript compares UTF-16 code units, which agrees unless a surrogate pair is involved.
 */
function inByteOrder(items: readonly string[]): readonly string[] {
  if (items.length < 2) return items;
  if (items.every((v) => /^[\u0000-\ud7ff]*$/.test(v))) return [...items].sort();
  return items
    .map((v) => Buffer.from(v, "utf8"))
    .sort((a, b) => Buffer.compare(a, b))
    .map((b) => b.toString("utf8"));
}

export interface GuardedBatch {
  batch: AuditBatch;
  /** How many event rows were held back as conflicts. */
  conflicts: number;
}

/**
 * Keeps, for each event id, only the rows of its first content: the stored one when `stored`
 * knows the id, else the first in the batch. Rows another content produced (its event row,
 * edges, facts, violations, findings, and alerts first raised by those violations) are dropped,
 * and each such content becomes one EVENT_ID_CONFLICT finding. Digests are computed only for ids
 * the store knows or the batch repeats (replays and conflicts); a new id is registered by
 * ClickHouse itself when its event row is written (event_ids_v2_mv).
 */
export function guardEventIds(batch: AuditBatch, stored: ReadonlyMap<string, string>): GuardedBatch {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const row of batch.events) {
    if (seen.has(row.event_id)) repeated.add(row.event_id);
    else seen.add(row.event_id);
  }
  if (repeated.size === 0 && !batch.events.some((row) => stored.has(row.event_id))) return { batch, conflicts: 0 };
  const digests = batch.events.map((row) => (repeated.has(row.event_id) || stored.has(row.event_id) ? eventContentDigest(row) : ""));
  /** id -> the content that counts, and its event row when this batch has it. */
  const winners = new Map<string, { digest: string; row?: EventRow }>();
  batch.events.forEach((row, i) => {
    const digest = digests[i] as string;
    const known = winners.get(row.event_id);
    if (known) {
      if (!known.row && known.digest === digest) known.row = row;
      return;
    }
    const first = stored.get(row.event_id);
    if (first === undefined) winners.set(row.event_id, { digest, row });
    else winners.set(row.event_id, first === digest ? { digest, row } : { digest: first });
  });
  const losers: EventRow[] = [];
  const events: EventRow[] = [];
  batch.events.forEach((row, i) => {
    if (winners.get(row.event_id)?.digest === digests[i]) events.push(row);
    else losers.push(row);
  });
  if (losers.length === 0) return { batch, conflicts: 0 };

  const conflicted = new Set(losers.map((r) => r.event_id));
  /** A row derived from an event under a conflicted id counts only if it matches the winner's event row. */
  const fromWinner = (eventId: string, matches: (w: EventRow) => boolean): boolean => {
    if (!conflicted.has(eventId)) return true;
    const w = winners.get(eventId)?.row;
    return w !== undefined && matches(w);
  };
  const violations = batch.violations.filter((v) =>
    fromWinner(
      v.event_id,
      (w) =>
        w.occurred_at === v.occurred_at &&
        w.kind === v.kind &&
        w.service === v.service &&
        w.job_name === v.job_name &&
        w.run_id === v.run_id &&
        (w.subjects ?? []).join("\n") === v.subjects.join("\n"),
    ),
  );
  const kept = new Set(violations.map((v) => v.violation_id));
  const dropped = new Set(batch.violations.filter((v) => !kept.has(v.violation_id)).map((v) => v.violation_id));
  const recorded = new Set<string>();
  const conflictFindings: FindingRow[] = [];
  losers.forEach((row) => {
    const digest = eventContentDigest(row);
    const id = `${row.event_id}:${EventIdConflict.kind}:${digest.slice(0, 16)}`;
    if (recorded.has(id)) return;
    recorded.add(id);
    conflictFindings.push({
      finding_id: id,
      kind: EventIdConflict.kind,
      event_id: row.event_id,
      occurred_at: row.occurred_at,
      service: row.service,
      job_name: row.job_name,
      datasets: datasetsOf(row),
      severity: EventIdConflict.severity,
      detail: `event id already stored with other content (content sha256 ${digest.slice(0, 16)}…): this ${row.kind} was not stored or counted`,
      subject_count: row.subjects?.length ?? 0,
    });
  });
  return {
    batch: {
      ...batch,
      events,
      edges: batch.edges.filter((e) =>
        fromWinner(e.event_id, (w) => w.occurred_at === e.occurred_at && w.service === e.service && w.run_id === e.run_id),
      ),
      facts: batch.facts.filter((f) => fromWinner(f.event_id, (w) => w.occurred_at === f.occurred_at && w.kind === f.kind)),
      violations,
      outbox: batch.outbox.filter((o) => !dropped.has(o.first_violation_id)),
      findings: [
        ...batch.findings.filter((f) =>
          fromWinner(f.event_id, (w) => w.occurred_at === f.occurred_at && w.service === f.service && w.job_name === f.job_name),
        ),
        ...conflictFindings,
      ],
    },
    conflicts: losers.length,
  };
}

function datasetsOf(row: EventRow): string[] {
  const fields = [...(row.input_fields ?? []), ...(row.output_fields ?? [])];
  return [...new Set(fields.map((f) => f.slice(0, f.lastIndexOf("#"))))];
}
