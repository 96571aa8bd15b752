// Issue 9 on the store side: the per-subject model computed from the stored events by the pure
// core (services/provenance) and kept as a snapshot (refreshProvenance), and the exact count as a
// query over the latest snapshot (docs/tables.md, "The issue-9 model").
import { createHash } from "node:crypto";
import { EventKind, type DataAccessEvent, type Masking, type Transform } from "../codec/index.ts";
import { OPEN_END, provenanceModel, type HoldingRow } from "../provenance/index.ts";
import type { Policy } from "../rules/index.ts";
import { emptyBatch, FindingKind } from "../processor/index.ts";
import { eventFromRow, Table, type StoredUseRow, type Store } from "./store.ts";
import { affectedSummary, type AffectedQuery, type AffectedSummary } from "./queries.ts";
import { materializeExactCounts } from "./exact-counts.ts";

/** Half-open window of use times in milliseconds: `from` inclusive, `to` exclusive. */
export interface ExactWindow {
  from?: number;
  to?: number;
  /** Only data of this category (or below it): a fideslang data category key. */
  category?: string;
  /** Only the uses of one run of one job (an alert's scope). */
  scope?: { jobNamespace: string; jobName: string; runId: string };
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
/** The snapshot readers take: the highest committed version (0 when none yet). */
async function latestVersion(store: Store): Promise<number> {
  const [latest] = await store.query<{ version: string | number }>(
    `SELECT max(version) AS version FROM ${store.database}.${Table.provenanceVersions}`,
  );
  return Number(latest?.version ?? 0);
}

/** The SQL of the exactly affected (use, subject) pairs of a rule in a window, and its parameters. */
export function exactPairsOf(db: string, version: number, ruleId: string, window: ExactWindow) {
  const inCategory = `({category:String} = '' OR category = {category:String} OR startsWith(category, concat({category:String}, '.')))`;
  const inScope = `({scoped:UInt8} = 0 OR event_id IN (SELECT event_id FROM ${db}.${Table.violations} WHERE rule_id = {rule:String}
                     AND job_namespace = {ns:String} AND job_name = {job:String} AND run_id = {run:String}))`;
  // (use, subject) pairs exactly affected in the window, with what the answer needs of each. The
  // reads of uses with a forbidden label for the rule are joined first with those labels, then with
  // the holdings of exactly those labels: a use naming subjects on (field, subject, label), a
  // whole-table one on (field, label). Joins with the holdings table on its right side, filtered to
  // forbidden labels' rows of the real history, keep the hash tables and the rows between small.
  const forbidden = `(SELECT event_id, label_key, category FROM ${db}.${Table.useForbidden}
                      WHERE version = {version:UInt64} AND rule_id = {rule:String} AND ${inCategory})`;
  const readsOf = (whole: 0 | 1) => `(SELECT event_id, occurred_at, external, field${whole ? "" : ", subjects"} FROM ${db}.${Table.useReads}
             WHERE version = {version:UInt64} AND whole_table = ${whole}
               AND occurred_at >= {from:Int64} AND occurred_at < {to:Int64} AND ${inScope}
               AND event_id IN (SELECT event_id FROM ${forbidden}))`;
  const heldLabels = `(SELECT subject, field, label_key, evidence, declaration, valid_from, valid_to FROM ${db}.${Table.holdings}
                       WHERE version = {version:UInt64} AND variant = 0 AND label_key != '')`;
  const valid = `h.valid_from <= r.occurred_at AND r.occurred_at < h.valid_to`;
  const wholeCandidates = (columns: string, extra: string) => `
       SELECT ${columns}
       FROM (SELECT r.event_id AS event_id, r.occurred_at AS occurred_at, r.external AS external, r.field AS field,
                    f.label_key AS label_key, f.category AS category
             FROM ${readsOf(1)} AS r INNER JOIN ${forbidden} AS f ON f.event_id = r.event_id) AS r
       INNER JOIN ${heldLabels} AS h ON h.field = r.field AND h.label_key = r.label_key
       WHERE ${valid}${extra}`;
  const candidates = `
       SELECT r.event_id AS event_id, r.occurred_at AS at, 0 AS whole, r.external AS external, h.subject AS subject,
              r.category AS category, h.evidence AS evidence, h.declaration AS declaration
       FROM (SELECT r.event_id AS event_id, r.occurred_at AS occurred_at, r.external AS external, r.field AS field, r.subject AS subject,
                    f.label_key AS label_key, f.category AS category
             FROM (SELECT event_id, occurred_at, external, field, subject FROM ${readsOf(0)} ARRAY JOIN subjects AS subject) AS r
             INNER JOIN ${forbidden} AS f ON f.event_id = r.event_id) AS r
       INNER JOIN ${heldLabels} AS h ON h.field = r.field AND h.subject = r.subject AND h.label_key = r.label_key
       WHERE ${valid}
       UNION ALL
       ${wholeCandidates(
         "r.event_id AS event_id, r.occurred_at AS at, 1 AS whole, r.external AS external, h.subject AS subject, r.category AS category, h.evidence AS evidence, h.declaration AS declaration",
         "",
       )}`;
  // A whole-table use reaches a subject held there by per-subject evidence. A forbidden label's row
  // carries its field's evidence; where it has none (the label rests on a declaration), evidence
  // in another field the use read counts too: looked up only for those few subjects.
  const evidenceElsewhere = `
       SELECT r.event_id AS event_id, h.subject AS subject
       FROM (SELECT event_id, occurred_at, field FROM ${readsOf(1)}) AS r
       INNER JOIN (SELECT subject, field, valid_from, valid_to FROM ${db}.${Table.holdings}
                   WHERE version = {version:UInt64} AND variant = 0 AND label_key = '' AND evidence = 1
                     AND subject IN (SELECT subject FROM (${wholeCandidates("h.subject AS subject", " AND h.evidence = 0")}))) AS h
               ON h.field = r.field
       WHERE ${valid}`;
  const exactPairs = `
       SELECT event_id, any(at) AS at, subject, max(evidence) AS evidence, any(whole) AS whole, any(external) AS external,
              groupUniqArray(category) AS categories, min(declaration) AS declared
       FROM (${candidates})
       GROUP BY event_id, subject
       HAVING whole = 0 OR evidence = 1 OR (event_id, subject) IN (${evidenceElsewhere})`;
  const params = {
    version,
    rule: ruleId,
    category: window.category ?? "",
    scoped: window.scope ? 1 : 0,
    ns: window.scope?.jobNamespace ?? "",
    job: window.scope?.jobName ?? "",
    run: window.scope?.runId ?? "",
    from: window.from ?? Number.MIN_SAFE_INTEGER,
    to: window.to ?? Number.MAX_SAFE_INTEGER,
  };
  return { exactPairs, inCategory, inScope, params };
}

/** Users first exactly affected per week (Monday, UTC), with the running total: the report's chart. */
export async function exactWeekly(
  store: Store,
  ruleId: string,
  window: ExactWindow = {},
): Promise<{ week: string; newSubjects: number; totalSubjects: number }[]> {
  const { exactPairs, params } = exactPairsOf(store.database, await latestVersion(store), ruleId, window);
  const weeks = await store.query<{ week: string; n: string }>(
    `SELECT toString(toMonday(fromUnixTimestamp64Milli(first, 'UTC'))) AS week, count() AS n
     FROM (SELECT subject, min(at) AS first FROM (${exactPairs}) GROUP BY subject)
     GROUP BY week ORDER BY week`,
    params,
  );
  let total = 0;
  return weeks.map((w) => {
    total += Number(w.n);
    return { week: w.week, newSubjects: Number(w.n), totalSubjects: total };
  });
}

export async function exactAffected(store: Store, ruleId: string, window: ExactWindow = {}): Promise<ExactAnswer> {
  const db = store.database;
  const version = await latestVersion(store);
  const { exactPairs, inCategory, inScope, params } = exactPairsOf(db, version, ruleId, window);
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
            uniqExactArray(arrayMap(c -> (subject, c), categories)) AS records,
            uniqExact(event_id) AS events,
            if(count() = 0, NULL, min(at)) AS first,
            if(count() = 0, NULL, max(at)) AS last,
            uniqExactIf(subject, external = 1) AS shared_subjects,
            uniqExactIf(event_id, external = 1) AS shared_events,
            -- every pair is declared (1) or not (0): the subjects with only declared pairs
            uniqExact(subject) - uniqExactIf(subject, declared = 0) AS declaration_only
     FROM (
       ${exactPairs}
     )`,
    params,
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
         SELECT event_id, label_key, category FROM ${db}.${Table.useForbidden} WHERE version = {version:UInt64} AND rule_id = {rule:String} AND ${inCategory}
       ),
       reads AS (
         SELECT * FROM ${db}.${Table.useReads}
         WHERE version = {version:UInt64} AND occurred_at >= {from:Int64} AND occurred_at < {to:Int64} AND ${inScope}
           AND event_id IN (SELECT event_id FROM forbidden)
       ),
       flagged AS (SELECT event_id, any(occurred_at) AS at, any(subjects) AS subjects FROM reads GROUP BY event_id),
       pairs AS (SELECT event_id, at, subject FROM flagged ARRAY JOIN subjects AS subject),
       -- Per (use, named subject): 0 held a forbidden label at the use's time (exact); 1 would
       -- have without deletions; 2 would have if every run carried everyone; 3 does at the end.
       codes AS (
         SELECT r.event_id AS event_id, r.subject AS subject,
                min(multiIf(h.valid_from <= r.occurred_at AND r.occurred_at < h.valid_to, h.variant,
                            h.variant = 2 AND h.valid_to = {open:Int64}, 3, 4)) AS code
         FROM (SELECT r.event_id AS event_id, r.occurred_at AS occurred_at, r.field AS field, r.subject AS subject, f.label_key AS label_key
               FROM (SELECT event_id, occurred_at, field, subject FROM reads ARRAY JOIN subjects AS subject) AS r
               INNER JOIN forbidden AS f ON f.event_id = r.event_id) AS r
         INNER JOIN (SELECT subject, field, label_key, variant, valid_from, valid_to FROM ${db}.${Table.holdings}
                     WHERE version = {version:UInt64} AND label_key != '') AS h
                 ON h.field = r.field AND h.subject = r.subject AND h.label_key = r.label_key
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
    { ...params, open: OPEN_END },
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

/** The field-level summary with the exact, per-subject answer beside it: what `affected`, `report` and the demo show. */
export type AffectedAnswer = AffectedSummary & { exact: ExactAnswer; provenance: { version: number; refreshedMs: number } };

/**
 * The answer to "how many users, which data, since when, through which systems, shared outside"
 * for one rule: the model brought up to date with the stored events, then its exact count, beside
 * the field-level summary (its paths, services and data are the context of both).
 */
export async function affectedAnswer(
  store: Store,
  policy: Policy,
  q: AffectedQuery,
  options: RefreshOptions = {},
): Promise<AffectedAnswer> {
  const refreshed = await refreshProvenance(store, policy, options);
  const ms = (iso: string | undefined) => (iso === undefined ? undefined : Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`));
  const from = ms(q.from);
  const to = ms(q.to);
  const [summary, exact] = await Promise.all([
    affectedSummary(store, q),
    exactAffected(store, q.ruleId, {
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
      ...(q.category ? { category: q.category } : {}),
    }),
  ]);
  return { ...summary, exact, provenance: { version: refreshed.version, refreshedMs: Math.round(refreshed.elapsedMs) } };
}

/** What a refresh did. */
export interface RefreshResult {
  version: number;
  /** The latest snapshot was already computed from the events stored now, with this policy: nothing done. */
  fresh: boolean;
  /** Lineage events (COLLECT, DERIVE, DELETE) and flagged uses read. */
  events: number;
  subjects: number;
  holdings: number;
  elapsedMs: number;
}

export interface RefreshOptions {
  /** Progress while reading and computing: a phase and how far. */
  onProgress?: (phase: "read" | "compute", done: number, total: number) => void;
  /** Recompute even when the snapshot looks fresh. */
  force?: boolean;
}

/** Fact keys per look-up of which facts have stored edges (they travel as one array parameter). */
const FACTS_PER_LOOKUP = 2_000;

/** Rows read per query from events_v1 (about: whole days at a time). */
const PAGE = 100_000;
const DAY_MS = 86_400_000;
/** Holdings written per insert. */
const HOLDINGS_PER_INSERT = 200_000;

/**
 * Brings the per-subject model up to date with the stored events: when any event was stored
 * since the latest snapshot (or the policy changed), recomputes it from events_v1 and
 * lineage_edges_v1 with the pure core and stores it as a new snapshot. Computed from what is
 * stored, not from one processor's stream, it is complete whatever instance or restart stored an
 * event, and time-valid whatever order events arrived in.
 *
 * Reads every COLLECT, DERIVE and DELETE, and the USEs and SHAREs the field-level check flagged
 * (an exactly affected use is always one of those). A whole recomputation: its time grows with the
 * stored lineage (docs/performance.md has the figures; incremental refresh is the next step).
 */
export async function refreshProvenance(store: Store, policy: Policy, options: RefreshOptions = {}): Promise<RefreshResult> {
  const started = performance.now();
  const db = store.database;
  const digest = createHash("sha256").update(JSON.stringify(policy)).digest("hex").slice(0, 32);
  // What the snapshot is computed from: the stored events, and the violations that say which uses
  // were flagged (a replay adds violations without adding events).
  const [source] = await store.query<{ n: string; at: string; violations: string }>(
    `SELECT count() AS n, toString(max(ingested_at)) AS at, (SELECT count() FROM ${db}.${Table.violations}) AS violations FROM ${db}.${Table.events}`,
  );
  const sourceEvents = Number(source?.n ?? 0);
  const sourceIngested = `${source?.at ?? ""} ${source?.violations ?? 0}`;
  const [latest] = await store.query<{ v: string; source_events: string; source_ingested: string; policy: string }>(
    `SELECT toString(version) AS v, source_events, source_ingested, policy FROM ${db}.${Table.provenanceVersions} ORDER BY version DESC LIMIT 1`,
  );
  if (
    !options.force &&
    latest &&
    Number(latest.source_events) === sourceEvents &&
    latest.source_ingested === sourceIngested &&
    latest.policy === digest
  ) {
    return { version: Number(latest.v), fresh: true, events: 0, subjects: 0, holdings: 0, elapsedMs: performance.now() - started };
  }

  const history = await storedHistory(store, (done, total) => options.onProgress?.("read", done, total));
  const version = Math.max(Number(latest?.v ?? 0) + 1, Date.now() * 1000);
  const model = provenanceModel(history, policy);
  let pending: HoldingRow[] = [];
  let holdings = 0;
  let done = 0;
  const flush = async (): Promise<void> => {
    holdings += pending.length;
    await store.writeProvenance(version, { holdings: pending });
    pending = [];
    options.onProgress?.("compute", done, model.subjects);
  };
  // Subject by subject, written every so many rows: the event loop turns between inserts.
  for (const rows of model.holdings()) {
    done++;
    for (const r of rows) pending.push(r);
    if (pending.length >= HOLDINGS_PER_INSERT) await flush();
  }
  await flush();
  await store.writeProvenance(version, { reads: model.reads, forbidden: model.forbidden });
  // Findings the model makes (the same ids each refresh, so written again, not twice): Art. 17
  // erasure requests whose copies survive elsewhere; DELETEs and DERIVEs naming unknown fields.
  const lineageEvents = new Map(
    history.filter((e) => e.kind === EventKind.delete || e.kind === EventKind.derive).map((e) => [e.eventId, e]),
  );
  const finding = (eventId: string, at: number, kind: string, key: string, fields: string[], severity: string, detail: string) => {
    const e = lineageEvents.get(eventId);
    return {
      finding_id: `${eventId}:${kind}${key ? `:${key}` : ""}`,
      kind,
      event_id: eventId,
      occurred_at: at,
      service: e?.service ?? "",
      job_name: e?.job.name ?? "",
      datasets: fields,
      severity,
      detail,
      subject_count: key ? 1 : (e?.subjects.length ?? 0),
    };
  };
  const findings = [
    ...model.erasures.map((f) =>
      finding(
        f.deleteEventId,
        f.occurredAt,
        FindingKind.erasureIncomplete,
        f.subject,
        f.fields,
        "high",
        `subject ${f.subject} asked for erasure; copies of the erased data are still held in ${f.fields.join(", ")} (GDPR Art. 17)`,
      ),
    ),
    ...model.unknownTargets.map((u) =>
      finding(
        u.eventId,
        u.occurredAt,
        FindingKind.unknownTarget,
        "",
        u.fields,
        "low",
        u.kind === "DELETE"
          ? `DELETE names ${u.fields.join(", ")}, which no COLLECT or DERIVE wrote: it ends no holding there (check the dataset and field names)`
          : `DERIVE reads ${u.fields.join(", ")}, which no COLLECT or DERIVE wrote: it carries nothing from there (emit the lineage that writes it)`,
      ),
    ),
  ];
  if (findings.length > 0) await store.write({ ...emptyBatch(), findings });
  const subjects = model.subjects;
  const elapsedMs = performance.now() - started;
  await materializeExactCounts(store, version);
  await store.commitProvenance(version, {
    holdings,
    reads: model.reads.length,
    subjects,
    source_events: sourceEvents,
    source_ingested: sourceIngested,
    policy: digest,
    elapsed_ms: Math.round(elapsedMs),
  });
  return { version, fresh: false, events: history.length, subjects, holdings, elapsedMs };
}

interface StoredLineageRow extends StoredUseRow {
  /** The lineage fact a COLLECT or DERIVE is an instance of; '' in rows stored before migration 020. */
  fact_key: string;
  output_fields: string[];
  output_categories: string[][];
  categories: string[];
  transform: string;
  masking: string;
}

/** The events the model needs, rebuilt from events_v1 (and DERIVE field lineage from lineage_edges_v1). */
async function storedHistory(store: Store, onProgress: (done: number, total: number) => void): Promise<DataAccessEvent[]> {
  const db = store.database;
  const [count] = await store.query<{ n: string }>(
    `SELECT count() AS n FROM ${db}.${Table.events} WHERE kind IN ('COLLECT', 'DERIVE', 'DELETE')`,
  );
  const total = Number(count?.n ?? 0);
  const columns = `event_id, kind, toString(toUnixTimestamp64Milli(occurred_at)) AS at, service, job_namespace, job_name, run_id,
                   input_fields, output_fields, output_categories, categories, purposes, data_subject, subjects, transform, masking,
                   recipient, recipient_external, traceparent, pseudonym_key_id, fact_key`;
  const history: DataAccessEvent[] = [];
  const datasets = new Map<string, { namespace: string; name: string; fields: { name: string; categories: string[] }[] }>();
  /** Dataset values shared between events: a million sign-ups write the same two fields. */
  const dataset = (id: string, fields: { name: string; categories: string[] }[]) => {
    const key = `${id}|${fields.map((f) => `${f.name}:${f.categories.join(",")}`).join(";")}`;
    let d = datasets.get(key);
    if (!d) {
      const slash = id.indexOf("/");
      d = { namespace: id.slice(0, slash), name: id.slice(slash + 1), fields };
      datasets.set(key, d);
    }
    return d;
  };
  const grouped = (keys: readonly string[], categoriesOf: (i: number) => string[]) => {
    const byDataset = new Map<string, { name: string; categories: string[] }[]>();
    keys.forEach((k, i) => {
      const hash = k.lastIndexOf("#");
      const id = k.slice(0, hash);
      const name = k.slice(hash + 1);
      const list = byDataset.get(id) ?? [];
      byDataset.set(id, list);
      if (name !== "*") list.push({ name, categories: categoriesOf(i) });
    });
    return [...byDataset].map(([id, fields]) => dataset(id, fields));
  };
  const derives = new Map<string, DataAccessEvent>();
  /** DERIVEs by the fact they are runs of: a run that repeats a known fact has no edges of its own, only its fact's. */
  const derivesOfFact = new Map<string, DataAccessEvent[]>();
  // A window of whole days at a time, about PAGE rows each (from a count per day): each query then
  // reads only its partitions and primary-key ranges. No FINAL: a row stored twice before a merge
  // is the same event under the same id, kept once here.
  const days = await store.query<{ day: string; n: string }>(
    `SELECT toString(toUnixTimestamp(toStartOfDay(occurred_at, 'UTC')) * 1000) AS day, count() AS n FROM ${db}.${Table.events}
     WHERE kind IN ('COLLECT', 'DERIVE', 'DELETE') GROUP BY day ORDER BY day`,
  );
  const windows: { from: number; to: number }[] = [];
  let open: { from: number; to: number; n: number } | undefined;
  for (const d of days) {
    const day = Number(d.day);
    if (open && open.n + Number(d.n) > PAGE) {
      windows.push(open);
      open = undefined;
    }
    open = open ? { ...open, to: day + DAY_MS, n: open.n + Number(d.n) } : { from: day, to: day + DAY_MS, n: Number(d.n) };
  }
  if (open) windows.push(open);
  const seenIds = new Set<string>();
  for (const w of windows) {
    const rows = await store.query<StoredLineageRow>(
      `SELECT ${columns} FROM ${db}.${Table.events}
       WHERE kind IN ('COLLECT', 'DERIVE', 'DELETE')
         AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`,
      { from: w.from, to: w.to },
    );
    for (const r of rows) {
      if (seenIds.has(r.event_id)) continue;
      seenIds.add(r.event_id);
      const base = eventFromRow(r);
      if (r.kind === EventKind.collect) {
        // Rows stored before output_categories existed: each field gets the event's categories.
        const perField = r.output_categories.length === r.output_fields.length ? r.output_categories : undefined;
        history.push({ ...base, inputs: [], outputs: grouped(r.output_fields, (i) => perField?.[i] ?? r.categories) });
      } else if (r.kind === EventKind.derive) {
        const e: DataAccessEvent = {
          ...base,
          outputs: grouped(r.output_fields, () => []),
          transform: (r.transform || "OTHER") as Transform,
          masking: (r.masking || "NONE") as Masking,
        };
        derives.set(e.eventId, e);
        if (r.fact_key !== "") {
          const runs = derivesOfFact.get(r.fact_key);
          if (runs) runs.push(e);
          else derivesOfFact.set(r.fact_key, [e]);
        }
        history.push(e);
      } else {
        history.push(base);
      }
    }
    onProgress(history.length, total);
  }
  // Column-level lineage of the DERIVEs (edges from '*' are dataset-level: the event's inputs to an unmapped output).
  if (derives.size > 0) {
    let edgeCursor = "";
    for (;;) {
      const edges = await store.query<{ event_id: string; fact_key: string; from: string; to: string; transform: string; masking: string }>(
        `SELECT event_id, any(fact_key) AS fact_key, concat(from_dataset, '#', from_field) AS from, concat(to_dataset, '#', to_field) AS to,
                any(transform) AS transform, any(masking) AS masking
         FROM ${db}.${Table.edges} WHERE from_field != '*' AND event_id > {after:String}
         GROUP BY event_id, from, to ORDER BY event_id, to, from LIMIT {limit:UInt32}`,
        { after: edgeCursor, limit: PAGE },
      );
      for (const g of groupBy(edges, (x) => x.event_id)) {
        // The event that wrote these edges, and the runs that repeat its fact (they wrote none).
        const own = derives.get(g[0]?.event_id ?? "");
        const runs = (derivesOfFact.get(g[0]?.fact_key ?? "") ?? []).filter((r) => r !== own && r.fieldLineage.length === 0);
        if (!own && runs.length === 0) continue;
        const lineage = new Map<string, DataAccessEvent["fieldLineage"][number]>();
        for (const x of g) {
          // Each edge keeps the masking its mapping applied (its own or the event's, schema version 3).
          const m = lineage.get(x.to) ?? {
            output: fieldRef(x.to),
            inputs: [],
            transform: x.transform as Transform,
            masking: (x.masking || "NONE") as Masking,
          };
          lineage.set(x.to, m);
          m.inputs.push(fieldRef(x.from));
        }
        const fieldLineage = [...lineage.values()];
        if (own) own.fieldLineage = fieldLineage;
        // Shared: the model only reads a DERIVE's field lineage.
        for (const r of runs) r.fieldLineage = fieldLineage;
      }
      if (edges.length < PAGE) break;
      // A page may end inside an event: take that event again whole from the next page on.
      const lastEvent = edges.at(-1)?.event_id ?? "";
      const firstOfLast = edges.findIndex((x) => x.event_id === lastEvent);
      if (firstOfLast === 0) throw new Error(`more than ${PAGE} lineage edges for DERIVE ${lastEvent}`);
      edgeCursor = edges[firstOfLast - 1]?.event_id ?? "";
    }
  }
  // A run that points at a fact without any stored edge (the fact's first run was refused by the
  // store while the processor kept the fact) has lineage nobody can read: it is left out, so it
  // carries nobody exactly (its people stay possibly affected), rather than being read at the
  // dataset level (a DERIVE with no field lineage), which could name people it never carried.
  const unresolved = new Set<string>();
  for (const [fact, runs] of derivesOfFact) if (runs.every((r) => r.fieldLineage.length === 0)) unresolved.add(fact);
  const facts = [...unresolved];
  for (let i = 0; i < facts.length; i += FACTS_PER_LOOKUP) {
    const found = await store.query<{ fact_key: string }>(
      `SELECT DISTINCT fact_key FROM ${db}.${Table.edges} WHERE fact_key IN {facts:Array(String)}`,
      { facts: facts.slice(i, i + FACTS_PER_LOOKUP) },
    );
    for (const r of found) unresolved.delete(r.fact_key); // dataset-level edges only ('*'): read as such
  }
  if (unresolved.size > 0) {
    const lost = new Set(facts.filter((f) => unresolved.has(f)).flatMap((f) => derivesOfFact.get(f) ?? []));
    let kept = 0;
    for (const e of history) if (!lost.has(e)) history[kept++] = e;
    history.length = kept;
  }
  // Uses and shares the field-level check flagged, for any rule.
  let useCursor = "";
  for (;;) {
    const rows = await store.query<StoredUseRow>(
      `SELECT ${columns} FROM ${db}.${Table.events} FINAL
       WHERE kind IN ('USE', 'SHARE') AND event_id > {after:String}
         AND event_id IN (SELECT event_id FROM ${db}.${Table.violations})
       ORDER BY event_id LIMIT {limit:UInt32}`,
      { after: useCursor, limit: PAGE },
    );
    for (const r of rows) history.push(eventFromRow(r));
    if (rows.length < PAGE) break;
    useCursor = rows.at(-1)?.event_id ?? "";
  }
  return history;
}

function fieldRef(key: string): { namespace: string; name: string; field: string } {
  const hash = key.lastIndexOf("#");
  const id = key.slice(0, hash);
  const slash = id.indexOf("/");
  return { namespace: id.slice(0, slash), name: id.slice(slash + 1), field: key.slice(hash + 1) };
}

function* groupBy<T>(list: readonly T[], key: (x: T) => string): Generator<T[]> {
  let group: T[] = [];
  for (const x of list) {
    if (group.length > 0 && key(group[0] as T) !== key(x)) {
      yield group;
      group = [];
    }
    group.push(x);
  }
  if (group.length > 0) yield group;
}

/** One collection of a person's data that a violation reached, and how it got there. */
export interface EvidenceLink {
  category: string;
  collectedFor: string[];
  /** Where it was collected, `namespace/name#field`. */
  origin: string;
  /** The COLLECT naming this person there, at or before the use; null when only a collection naming nobody declared it. */
  collected: { eventId: string; occurredAt: string; service: string; job: string; purposes: string[] } | null;
  /** The hops from the collection to the field used (the violation's stored lineage path for this origin and category). */
  hops: { kind: string; dataset: string; field: string; service: string; job: string; occurredAt: number; transform?: string }[];
}

/** A flagged use or share concerning one person, and whether (and by what evidence) it affected them exactly. */
export interface SubjectViolation {
  ruleId: string;
  eventId: string;
  kind: string;
  occurredAt: number;
  /** The use named nobody (a whole-table export): it concerns the person through their holdings only. */
  wholeTable: boolean;
  exact: boolean;
  /** When not exact: why the person is only possibly affected. */
  reason:
    | "deleted before the use"
    | "not carried by a subject-named derivation"
    | "collected after the use"
    | "no provenance for that subject"
    | null;
  evidence: EvidenceLink[];
}

const REASON_TEXT = [
  null,
  "deleted before the use",
  "not carried by a subject-named derivation",
  "collected after the use",
  "no provenance for that subject",
] as const;

/**
 * For one pseudonymous subject, every flagged use that named them or, naming nobody, reached
 * their data; per use whether they were exactly affected, and the evidence chain for that one
 * person: collected where, when, by whom, for what; each hop; the use.
 */
export async function subjectViolations(store: Store, policy: Policy, subjectId: string): Promise<SubjectViolation[]> {
  await refreshProvenance(store, policy);
  const db = store.database;
  const version = await latestVersion(store);
  const rows = await store.query<{
    event_id: string;
    rule_id: string;
    at: string;
    kind: string;
    whole: number;
    variant: number;
    valid_from: string;
    valid_to: string;
    label_key: string;
    evidence: number;
  }>(
    `SELECT r.event_id AS event_id, f.rule_id AS rule_id, toString(r.occurred_at) AS at, r.kind AS kind, r.whole_table AS whole,
            h.variant AS variant, toString(h.valid_from) AS valid_from, toString(h.valid_to) AS valid_to, h.label_key AS label_key, h.evidence AS evidence
     FROM (SELECT * FROM ${db}.${Table.useReads} WHERE version = {version:UInt64} AND (whole_table = 1 OR has(subjects, {subject:String}))) AS r
     INNER JOIN (SELECT * FROM ${db}.${Table.holdings} WHERE version = {version:UInt64} AND subject = {subject:String}) AS h ON h.field = r.field
     INNER JOIN (SELECT * FROM ${db}.${Table.useForbidden} WHERE version = {version:UInt64}) AS f
             ON f.event_id = r.event_id AND f.label_key = h.label_key`,
    { version, subject: subjectId },
  );
  // Flagged uses naming the person, at field level: each is listed, exact or not.
  const named = await store.query<{ event_id: string; rule_id: string; at: string; kind: string; path_id: string }>(
    `SELECT v.event_id AS event_id, v.rule_id AS rule_id, toString(toUnixTimestamp64Milli(v.occurred_at)) AS at, v.kind AS kind, any(v.path_id) AS path_id
     FROM ${db}.${Table.violations} AS v
     WHERE v.event_id IN (SELECT event_id FROM ${db}.${Table.violationSubjects} WHERE subject_id = {subject:String})
     GROUP BY event_id, rule_id, at, kind`,
    { subject: subjectId },
  );
  type Acc = { ruleId: string; eventId: string; kind: string; at: number; whole: boolean; code: number; labels: Set<string> };
  const byUse = new Map<string, Acc>();
  const acc = (eventId: string, ruleId: string, at: number, kind: string, whole: boolean): Acc => {
    const key = `${eventId}\u0000${ruleId}`;
    let a = byUse.get(key);
    if (!a) byUse.set(key, (a = { ruleId, eventId, kind, at, whole, code: 4, labels: new Set() }));
    return a;
  };
  for (const n of named) acc(n.event_id, n.rule_id, Number(n.at), n.kind, false);
  for (const r of rows) {
    const at = Number(r.at);
    const held = Number(r.valid_from) <= at && at < Number(r.valid_to);
    if (r.whole === 1 && !(r.variant === 0 && held && r.evidence === 1)) continue; // a whole-table use concerns only whom it reached
    const a = acc(r.event_id, r.rule_id, at, r.kind, r.whole === 1);
    const code = held ? r.variant : r.variant === 2 && Number(r.valid_to) === OPEN_END ? 3 : 4;
    a.code = Math.min(a.code, code);
    if (r.variant === 0 && held) a.labels.add(r.label_key);
  }
  if (byUse.size === 0) return [];
  // The person's collections (for when, by whom, for what) and the stored paths (for the hops).
  const collections = await store.query<{
    event_id: string;
    at: string;
    service: string;
    job: string;
    purposes: string[];
    output_fields: string[];
  }>(
    `SELECT event_id, toString(toUnixTimestamp64Milli(occurred_at)) AS at, service, concat(job_namespace, '/', job_name) AS job, purposes, output_fields
     FROM ${db}.${Table.events} FINAL
     WHERE kind = 'COLLECT' AND event_id IN (SELECT event_id FROM ${db}.${Table.subjects} WHERE subject_id = {subject:String})
     ORDER BY occurred_at`,
    { subject: subjectId },
  );
  const paths = await store.query<{ event_id: string; rule_id: string; lineage_path: string }>(
    `SELECT v.event_id AS event_id, v.rule_id AS rule_id, any(p.lineage_path) AS lineage_path
     FROM (SELECT event_id, rule_id, path_id FROM ${db}.${Table.violations} WHERE event_id IN {events:Array(String)}) AS v
     INNER JOIN ${db}.${Table.paths} AS p ON p.path_id = v.path_id
     GROUP BY event_id, rule_id`,
    { events: [...new Set([...byUse.values()].map((a) => a.eventId))] },
  );
  const pathOf = new Map(paths.map((p) => [`${p.event_id}\u0000${p.rule_id}`, JSON.parse(p.lineage_path) as StoredPath]));
  const out: SubjectViolation[] = [];
  for (const [key, a] of byUse) {
    const evidence: EvidenceLink[] = [...a.labels].sort().map((label) => {
      const [origin = "", category = "", collectedFor = ""] = label.split("|");
      const purposes = collectedFor === "" ? [] : collectedFor.split(",");
      const c = collections.filter((x) => Number(x.at) <= a.at && x.output_fields.includes(origin)).at(-1);
      const path = pathOf.get(key)?.paths.find((p) => p.origin === origin && p.category === category);
      return {
        category,
        collectedFor: purposes,
        origin,
        collected: c
          ? { eventId: c.event_id, occurredAt: new Date(Number(c.at)).toISOString(), service: c.service, job: c.job, purposes: c.purposes }
          : null,
        hops: (path?.hops ?? []).filter((h) => h.kind !== "COLLECT"),
      };
    });
    out.push({
      ruleId: a.ruleId,
      eventId: a.eventId,
      kind: a.kind,
      occurredAt: a.at,
      wholeTable: a.whole,
      exact: a.code === 0,
      reason: REASON_TEXT[a.code] ?? null,
      evidence,
    });
  }
  return out.sort((x, y) => x.occurredAt - y.occurredAt || x.eventId.localeCompare(y.eventId) || x.ruleId.localeCompare(y.ruleId));
}

interface StoredPath {
  paths: { category: string; collectedFor: string[]; origin: string; hops: EvidenceLink["hops"] }[];
}
