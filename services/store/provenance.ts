// Issue 9 on the store side: the processor's provenance recorder (keeps the history, recomputes
// the per-subject model with the pure core and stores it as a new snapshot) and the exact count as
// a query over the latest snapshot (docs/tables.md, "The issue-9 model").
import { EventKind, type DataAccessEvent } from "../codec/index.ts";
import { computeProvenance, OPEN_END } from "../provenance/index.ts";
import type { Policy } from "../rules/index.ts";
import { Table, type Store } from "./store.ts";

/** Half-open window of use times in milliseconds: `from` inclusive, `to` exclusive. */
export interface ExactWindow {
  from?: number;
  to?: number;
}

export interface ExactCounts {
  /** Distinct subjects exactly affected. */
  users: number;
  /** Distinct (subject, data category) pairs of forbidden data held where it was used. */
  records: number;
  /** Uses and shares with at least one exactly affected subject. */
  violatingEvents: number;
  first: number | null;
  last: number | null;
}

/** Why subjects named by flagged uses were not exactly affected (each subject once, under its first reason). */
export interface NotExactReasons {
  deletedBefore: number;
  notCarried: number;
  collectedAfter: number;
  noProvenance: number;
}

export interface ExactAnswer {
  ruleId: string;
  exact: ExactCounts;
  /** The field-level reading of the same model: every subject each flagged use names ("possibly affected"). */
  fieldLevel: ExactCounts;
  /** Subjects counted at field level but never exactly in the window, by reason. */
  possiblyNotExactly: { users: number; reasons: NotExactReasons };
  /** SHAREs to an external recipient with at least one exactly affected subject, whole-table exports included. */
  sharedOutside: { shared: boolean; subjects: number; events: number };
  /** Exactly affected subjects whose every exact violation rests only on declarations (collections naming nobody). */
  onDeclarationOnly: number;
}

/**
 * The exact answer for one rule over a window of use times: a subject counts for a use when, at
 * the use's time, it holds data with a label the rule forbids for that use in a field the use
 * read, and the use names it (or names nobody and the subject is there by per-subject evidence).
 */
export async function exactAffected(store: Store, ruleId: string, window: ExactWindow = {}): Promise<ExactAnswer> {
  const db = store.database;
  const [latest] = await store.query<{ version: string | number }>(`SELECT max(version) AS version FROM ${db}.${Table.provenanceVersions}`);
  const version = Number(latest?.version ?? 0);
  // (use, subject) pairs exactly affected in the window, with what the answer needs of each.
  const exactPairs = `
       SELECT r.event_id AS event_id, any(r.occurred_at) AS at, h.subject AS subject,
              max(h.evidence) AS evidence, any(r.whole_table) AS whole, any(r.external) AS external,
              groupUniqArrayIf(f.category, f.label_key != '') AS categories,
              minIf(h.declaration, f.label_key != '') AS declared
       FROM ${db}.${Table.useReads} AS r
       INNER JOIN (SELECT * FROM ${db}.${Table.holdings} WHERE version = {version:UInt64} AND variant = 0) AS h ON h.field = r.field
       LEFT JOIN (
         SELECT event_id, label_key, category FROM ${db}.${Table.useForbidden}
         WHERE version = {version:UInt64} AND rule_id = {rule:String}
       ) AS f ON f.event_id = r.event_id AND f.label_key = h.label_key
       WHERE r.version = {version:UInt64}
         AND r.occurred_at >= {from:Int64} AND r.occurred_at < {to:Int64}
         AND h.valid_from <= r.occurred_at AND r.occurred_at < h.valid_to
         AND (r.whole_table = 1 OR has(r.subjects, h.subject))
       GROUP BY event_id, subject
       HAVING length(categories) > 0 AND (whole = 0 OR evidence = 1)`;
  const [row] = await store.query<{
    users: string;
    records: string;
    events: string;
    first: string | null;
    last: string | null;
    shared_subjects: string;
    shared_events: string;
    declaration_only: string;
  }>(
    `SELECT uniqExact(subject) AS users,
            length(groupUniqArrayArray(arrayMap(c -> (subject, c), categories))) AS records,
            uniqExact(event_id) AS events,
            if(count() = 0, NULL, min(at)) AS first,
            if(count() = 0, NULL, max(at)) AS last,
            uniqExactIf(subject, external = 1) AS shared_subjects,
            uniqExactIf(event_id, external = 1) AS shared_events,
            length(arrayFilter(s -> NOT has(groupUniqArrayIf(subject, declared = 0), s), groupUniqArrayIf(subject, declared = 1))) AS declaration_only
     FROM (
       ${exactPairs}
     )`,
    { version, rule: ruleId, from: window.from ?? Number.MIN_SAFE_INTEGER, to: window.to ?? Number.MAX_SAFE_INTEGER },
  );
  const [field] = await store.query<{
    users: string;
    records: string;
    events: string;
    first: string | null;
    last: string | null;
    deleted_before: string;
    not_carried: string;
    collected_after: string;
    no_provenance: string;
  }>(
    `WITH
       forbidden AS (
         SELECT event_id, label_key, category FROM ${db}.${Table.useForbidden} WHERE version = {version:UInt64} AND rule_id = {rule:String}
       ),
       reads AS (
         SELECT * FROM ${db}.${Table.useReads}
         WHERE version = {version:UInt64} AND occurred_at >= {from:Int64} AND occurred_at < {to:Int64}
           AND event_id IN (SELECT event_id FROM forbidden)
       ),
       flagged AS (SELECT event_id, any(occurred_at) AS at, any(subjects) AS subjects FROM reads GROUP BY event_id),
       pairs AS (SELECT event_id, at, subject FROM flagged ARRAY JOIN subjects AS subject),
       -- Per (use, named subject): 0 held a forbidden label at the use's time (exact); 1 would
       -- have without deletions; 2 would have if every run carried everyone; 3 does at the end.
       codes AS (
         SELECT r.event_id AS event_id, h.subject AS subject,
                min(multiIf(h.valid_from <= r.occurred_at AND r.occurred_at < h.valid_to, h.variant,
                            h.variant = 2 AND h.valid_to = {open:Int64}, 3, 4)) AS code
         FROM reads AS r
         INNER JOIN (SELECT * FROM ${db}.${Table.holdings} WHERE version = {version:UInt64}) AS h ON h.field = r.field
         INNER JOIN forbidden AS f ON f.event_id = r.event_id AND f.label_key = h.label_key
         WHERE has(r.subjects, h.subject)
         GROUP BY event_id, subject
       ),
       per_subject AS (
         SELECT p.subject AS subject, min(if(c.event_id = '', 4, c.code)) AS code
         FROM pairs AS p LEFT JOIN codes AS c ON c.event_id = p.event_id AND c.subject = p.subject
         GROUP BY subject
       )
     SELECT (SELECT uniqExact(subject) FROM pairs) AS users,
            (SELECT uniqExact(p.subject, f.category) FROM pairs AS p INNER JOIN forbidden AS f ON f.event_id = p.event_id) AS records,
            (SELECT count() FROM flagged) AS events,
            (SELECT if(count() = 0, NULL, min(at)) FROM flagged) AS first,
            (SELECT if(count() = 0, NULL, max(at)) FROM flagged) AS last,
            countIf(code = 1) AS deleted_before,
            countIf(code = 2) AS not_carried,
            countIf(code = 3) AS collected_after,
            countIf(code = 4) AS no_provenance
     FROM per_subject
     WHERE code > 0 AND subject NOT IN (SELECT subject FROM (${exactPairs}))`,
    { version, rule: ruleId, from: window.from ?? Number.MIN_SAFE_INTEGER, to: window.to ?? Number.MAX_SAFE_INTEGER, open: OPEN_END },
  );
  const time = (t: string | number | null | undefined) => (t === null || t === undefined ? null : Number(t));
  const sharedEvents = Number(row?.shared_events ?? 0);
  return {
    ruleId,
    exact: {
      users: Number(row?.users ?? 0),
      records: Number(row?.records ?? 0),
      violatingEvents: Number(row?.events ?? 0),
      first: time(row?.first),
      last: time(row?.last),
    },
    fieldLevel: {
      users: Number(field?.users ?? 0),
      records: Number(field?.records ?? 0),
      violatingEvents: Number(field?.events ?? 0),
      first: time(field?.first),
      last: time(field?.last),
    },
    possiblyNotExactly: {
      users: ["deleted_before", "not_carried", "collected_after", "no_provenance"].reduce(
        (n, k) => n + Number(field?.[k as "deleted_before"] ?? 0),
        0,
      ),
      reasons: {
        deletedBefore: Number(field?.deleted_before ?? 0),
        notCarried: Number(field?.not_carried ?? 0),
        collectedAfter: Number(field?.collected_after ?? 0),
        noProvenance: Number(field?.no_provenance ?? 0),
      },
    },
    sharedOutside: { shared: sharedEvents > 0, subjects: Number(row?.shared_subjects ?? 0), events: sharedEvents },
    onDeclarationOnly: Number(row?.declaration_only ?? 0),
  };
}

/** Where the processor hands the events it accepted, for the per-subject model. */
export interface ProvenanceRecorder {
  record(events: readonly DataAccessEvent[]): Promise<void>;
}

const RECORDED: ReadonlySet<string> = new Set([EventKind.collect, EventKind.derive, EventKind.delete, EventKind.use, EventKind.share]);

/**
 * First slice (issue 9): keeps every accepted event in memory and, after each batch that brought
 * a new one, recomputes the whole model and stores it as a new snapshot. Correct in any arrival
 * order; neither bounded in memory nor incremental, and it starts empty after a restart.
 */
export function createProvenanceRecorder(policy: Policy, store: Store): ProvenanceRecorder {
  const history = new Map<string, DataAccessEvent>();
  let version = 0;
  /** The stored snapshot lacks some recorded event (a new one, or a write that failed). */
  let dirty = false;
  let writing: Promise<void> = Promise.resolve();
  return {
    async record(events) {
      for (const e of events) {
        if (!RECORDED.has(e.kind) || history.has(e.eventId)) continue;
        history.set(e.eventId, e);
        dirty = true;
      }
      if (!dirty) return;
      // Snapshots are written one at a time, each newer than the last (and than any stored one).
      const mine = writing
        .catch(() => {})
        .then(async () => {
          if (!dirty) return;
          dirty = false;
          version = Math.max(version + 1, Date.now() * 1000);
          try {
            await store.writeProvenance(version, computeProvenance([...history.values()], policy));
          } catch (error) {
            // The batch is retried or the next one comes: either writes the snapshot again.
            dirty = true;
            throw error;
          }
        });
      writing = mine;
      await mine;
    },
  };
}
