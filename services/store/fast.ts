import type { Store } from "./store.ts";

export interface FastCount {
  ruleId: string;
  /** Whole days, UTC: [from, to). */
  window: { from: string; to: string };
  /** Exact (uniqExact) distinct subjects. */
  exact: number;
  /** Approximate (uniq) distinct subjects, about 1-2% error. */
  approximate: number;
  /** Exact distinct (subject, data category) records. */
  records: number;
}

/**
 * "How many distinct users did rule X affect between A and B", from the daily aggregate states
 * (affected_daily_v1) rather than the raw rows: whole UTC days only.
 */
export async function fastAffectedCount(
  store: Store,
  q: { ruleId: string; from?: string; to?: string; category?: string },
): Promise<FastCount> {
  const from = (q.from ?? "1970-01-01").slice(0, 10);
  const to = (q.to ?? "2299-12-31").slice(0, 10);
  const [row] = await store.query<{ exact: string; approximate: string; records: string }>(
    `SELECT uniqExactMerge(subjects_exact) AS exact, uniqMerge(subjects) AS approximate, uniqExactMerge(records_exact) AS records
     FROM ${store.database}.affected_daily_v1
     WHERE rule_id = {rule:String} AND day >= toDate({from:String}) AND day < toDate({to:String}) AND mode = 'enforce'
       AND ({category:String} = '' OR category = {category:String} OR startsWith(category, concat({category:String}, '.')))`,
    { rule: q.ruleId, from, to, category: q.category ?? "" },
  );
  return {
    ruleId: q.ruleId,
    window: { from, to },
    exact: Number(row?.exact ?? 0),
    approximate: Number(row?.approximate ?? 0),
    records: Number(row?.records ?? 0),
  };
}
