import { affectedAnswer, exactWeekly, type AffectedAnswer, type AffectedQuery, type RefreshOptions, type Store } from "../store/index.ts";
import { Table } from "../store/index.ts";
import type { Policy, Rule } from "../rules/index.ts";

/** An incident report shaped like a GDPR Art. 33 notification, built from the store. */
export interface IncidentReport {
  generatedAt: string;
  rule: { id: string; description: string; severity: string; mode: string };
  /** The exact, per-person numbers (`summary.exact`) beside the field-level ones. */
  summary: AffectedAnswer;
  subjectTypes: string[];
  /** Distinct subjects first exactly affected per week, and the running total. */
  timeline: { week: string; newSubjects: number; totalSubjects: number }[];
  /** The most frequent lineage path, hop by hop. */
  path: { kind: string; label: string }[];
}

export async function buildReport(
  store: Store,
  policy: Policy,
  q: AffectedQuery,
  rule: Pick<Rule, "id" | "description" | "severity" | "mode"> | undefined,
  options: RefreshOptions = {},
): Promise<IncidentReport> {
  const summary = await affectedAnswer(store, policy, q, options);
  const db = store.database;
  const params = { rule: q.ruleId, from: q.from ?? "1970-01-01", to: q.to ?? "2299-12-31" };
  const window = `rule_id = {rule:String} AND occurred_at >= parseDateTime64BestEffort({from:String}, 3, 'UTC') AND occurred_at < parseDateTime64BestEffort({to:String}, 3, 'UTC')`;
  const timeline = await exactWeekly(store, q.ruleId, {
    ...(q.from ? { from: Date.parse(q.from) } : {}),
    ...(q.to ? { to: Date.parse(q.to) } : {}),
    ...(q.category ? { category: q.category } : {}),
  });
  const [types] = await store.query<{ t: string[] }>(
    `SELECT groupUniqArray(data_subject) AS t FROM ${db}.${Table.violations} WHERE ${window}`,
    params,
  );
  const path = (summary.paths[0]?.path ?? "")
    .split(" ⇒ ")
    .filter(Boolean)
    .map((hop) => ({ kind: hop.split(" ")[0] ?? "", label: hop }));
  return {
    generatedAt: new Date().toISOString(),
    rule: {
      id: q.ruleId,
      description: rule?.description ?? "",
      severity: summary.severity ?? rule?.severity ?? "",
      mode: summary.mode ?? rule?.mode ?? "",
    },
    summary,
    subjectTypes: (types?.t ?? []).sort(),
    timeline,
    path,
  };
}
