import type { Store } from "./store.ts";
import { Table } from "./store.ts";

export interface AffectedQuery {
  ruleId: string;
  /** Inclusive lower bound (ISO date or date-time, UTC). */
  from?: string;
  /** Exclusive upper bound. */
  to?: string;
  /** Only data of this fideslang category (or below it). */
  category?: string;
}

export interface AffectedSummary {
  ruleId: string;
  window: { from: string | null; to: string | null };
  /** Distinct pseudonymous subjects whose data reached a violating use. Exact (uniqExact). */
  subjects: number;
  /** Distinct (subject, data category) pairs: e.g. one person's phone number and email are two records. */
  records: number;
  /** Distinct violating events (uses or shares). */
  violationEvents: number;
  firstViolation: string | null;
  lastViolation: string | null;
  severity: string | null;
  mode: string | null;
  categories: string[];
  collectedFor: string[];
  purposes: string[];
  services: string[];
  jobs: string[];
  datasets: string[];
  origins: string[];
  /** The most frequent lineage paths, as text, with how many violations took each. */
  paths: { path: string; violations: number }[];
  externalShares: {
    /** External SHARE events in the store. */
    checked: number;
    /** External SHARE events whose data carried any label found in these violations. */
    carryingViolatedData: number;
    /** Distinct subjects concerned by those shares. */
    subjects: number;
    evidence: { eventId: string; occurredAt: string; service: string; recipient: string; datasets: string[] }[];
  };
}

/** Answers "how many users, which data, since when, through which systems, shared outside?" for one rule. */
export async function affectedSummary(store: Store, q: AffectedQuery): Promise<AffectedSummary> {
  const db = store.database;
  const params: Record<string, unknown> = {
    rule: q.ruleId,
    from: q.from ?? "1970-01-01",
    to: q.to ?? "2299-12-31",
    category: q.category ?? "",
  };
  const window = `rule_id = {rule:String} AND occurred_at >= parseDateTime64BestEffort({from:String}, 3, 'UTC') AND occurred_at < parseDateTime64BestEffort({to:String}, 3, 'UTC')`;
  const categoryIs = (col: string) =>
    `({category:String} = '' OR ${col} = {category:String} OR startsWith(${col}, concat({category:String}, '.')))`;

  const [counts] = await store.query<{ subjects: string; records: string }>(
    `SELECT uniqExact(subject_id) AS subjects, uniqExact(subject_id, category) AS records
     FROM ${db}.${Table.violationSubjects} ARRAY JOIN categories AS category
     WHERE ${window} AND ${categoryIs("category")}`,
    params,
  );
  const [v] = await store.query<{
    events: string;
    first: string | null;
    last: string | null;
    top_severity: string;
    top_mode: string;
    all_categories: string[];
    all_collected_for: string[];
    all_purposes: string[];
    all_services: string[];
    all_jobs: string[];
    all_datasets: string[];
    all_origins: string[];
    all_label_ids: string[];
  }>(
    `SELECT uniqExact(violation_id) AS events,
            if(events = 0, NULL, toString(min(occurred_at), 'UTC')) AS first,
            if(events = 0, NULL, toString(max(occurred_at))) AS last,
            any(severity) AS top_severity, any(mode) AS top_mode,
            arraySort(groupUniqArrayArray(categories)) AS all_categories,
            arraySort(groupUniqArrayArray(collected_for)) AS all_collected_for,
            arraySort(groupUniqArrayArray(purposes)) AS all_purposes,
            arraySort(groupUniqArray(service)) AS all_services,
            arraySort(groupUniqArray(concat(job_namespace, '/', job_name))) AS all_jobs,
            arraySort(groupUniqArrayArray(datasets)) AS all_datasets,
            arraySort(groupUniqArrayArray(origins)) AS all_origins,
            groupUniqArrayArray(label_ids) AS all_label_ids
     FROM ${db}.${Table.violations}
     WHERE ${window} AND arrayExists(c -> ${categoryIs("c")}, categories)`,
    params,
  );
  // No table aliases: a database may be named like one (`p`), and `p.path_id` would then be read as a table.
  const paths = await store.query<{ path: string; violations: string }>(
    `SELECT any(${Table.paths}.path_text) AS path, uniqExact(${Table.violations}.violation_id) AS violations
     FROM ${db}.${Table.violations} FINAL LEFT JOIN ${db}.${Table.paths} ON ${Table.paths}.path_id = ${Table.violations}.path_id
     WHERE ${window} AND arrayExists(c -> ${categoryIs("c")}, categories)
     GROUP BY ${Table.violations}.path_id ORDER BY violations DESC, path LIMIT 5`,
    params,
  );
  // With a category, what the violations say about their data comes from the labels of that
  // category alone: a violation of two categories lists both in its own columns.
  let data = {
    categories: v?.all_categories ?? [],
    collectedFor: v?.all_collected_for ?? [],
    origins: v?.all_origins ?? [],
    labelIds: v?.all_label_ids ?? [],
  };
  if (q.category) {
    const [l] = await store.query<{ categories: string[]; collected_for: string[]; origins: string[]; label_ids: string[] }>(
      `SELECT arraySort(groupUniqArray(category)) AS categories, arraySort(groupUniqArrayArray(collected_for)) AS collected_for,
              arraySort(groupUniqArray(origin)) AS origins, groupUniqArray(label_id) AS label_ids
       FROM ${db}.${Table.labels} FINAL
       WHERE ${categoryIs("category")} AND label_id IN (
         SELECT arrayJoin(label_ids) FROM ${db}.${Table.violations} WHERE ${window} AND arrayExists(c -> ${categoryIs("c")}, categories))`,
      params,
    );
    data = {
      categories: l?.categories ?? [],
      collectedFor: l?.collected_for ?? [],
      origins: l?.origins ?? [],
      labelIds: l?.label_ids ?? [],
    };
  }
  const labelKeys = data.labelIds;
  const [shares] = await store.query<{ checked: string; carrying: string }>(
    `SELECT uniqExact(event_id) AS checked, uniqExactIf(event_id, hasAny(label_ids, {keys:Array(String)})) AS carrying
     FROM ${db}.${Table.events} WHERE kind = 'SHARE' AND recipient_external = 1`,
    { keys: labelKeys },
  );
  const evidence = await store.query<{ event_id: string; occurred_at: string; service: string; recipient: string; inputs: string[] }>(
    `SELECT event_id, toString(occurred_at) AS occurred_at, service, recipient, inputs FROM ${db}.${Table.events} FINAL
     WHERE kind = 'SHARE' AND recipient_external = 1 AND hasAny(label_ids, {keys:Array(String)})
     ORDER BY occurred_at LIMIT 10`,
    { keys: labelKeys },
  );
  const [shareSubjects] = await store.query<{ subjects: string }>(
    `SELECT uniqExact(subject_id) AS subjects FROM ${db}.${Table.subjects}
     WHERE kind = 'SHARE' AND event_id IN (
       SELECT event_id FROM ${db}.${Table.events} WHERE kind = 'SHARE' AND recipient_external = 1 AND hasAny(label_ids, {keys:Array(String)}))`,
    { keys: labelKeys },
  );
  const events = Number(v?.events ?? 0);
  return {
    ruleId: q.ruleId,
    window: { from: q.from ?? null, to: q.to ?? null },
    subjects: Number(counts?.subjects ?? 0),
    records: Number(counts?.records ?? 0),
    violationEvents: events,
    firstViolation: events > 0 ? (v?.first ?? null) : null,
    lastViolation: events > 0 ? (v?.last ?? null) : null,
    severity: events > 0 ? (v?.top_severity ?? null) : null,
    mode: events > 0 ? (v?.top_mode ?? null) : null,
    categories: data.categories,
    collectedFor: data.collectedFor,
    purposes: v?.all_purposes ?? [],
    services: v?.all_services ?? [],
    jobs: v?.all_jobs ?? [],
    datasets: v?.all_datasets ?? [],
    origins: data.origins,
    paths: paths.map((p) => ({ path: p.path, violations: Number(p.violations) })),
    externalShares: {
      checked: Number(shares?.checked ?? 0),
      carryingViolatedData: Number(shares?.carrying ?? 0),
      subjects: Number(shareSubjects?.subjects ?? 0),
      evidence: evidence.map((e) => ({
        eventId: e.event_id,
        occurredAt: e.occurred_at,
        service: e.service,
        recipient: e.recipient,
        datasets: e.inputs,
      })),
    },
  };
}
