// What the console shows, read from the store with fixed SQL and bound parameters only: nothing
// a person types is spliced into a statement.
import { exactAffected, refreshProvenance, Table, type Store } from "../store/index.ts";
import type { Policy } from "../rules/index.ts";
import type { Overview, RuleOverview } from "./types.ts";

export type { Overview, RuleOverview };

/** A violation stops counting as "still happening" when the newest stored event is this much later. */
export const STILL_HAPPENING_MS = 7 * 24 * 60 * 60 * 1000;
/** The exact model is brought up to date at most this often for the console. */
export const MODEL_REFRESH_MS = 30_000;

export interface ConsoleData {
  overview(): Promise<Overview>;
  /** How many violations are stored (cheap: polled for the live view). */
  violationCount(): Promise<number>;
}

const iso = (stored: string | null | undefined): string | null => (stored ? new Date(`${stored.replace(" ", "T")}Z`).toISOString() : null);

export function createConsoleData(store: Store, policy: Policy): ConsoleData {
  const db = store.database;
  const rules = new Map<string, { description: string; severity: string; mode: string }>([
    [
      policy.purposeLimitation.id,
      {
        description: "Data used outside the purposes it was collected for (purpose limitation).",
        severity: policy.purposeLimitation.severity,
        mode: policy.purposeLimitation.mode,
      },
    ],
    ...policy.rules.map((r) => [r.id, { description: r.description, severity: r.severity, mode: r.mode }] as const),
  ]);
  let refreshed = 0;
  let refreshing: Promise<unknown> | undefined;

  async function freshModel(): Promise<void> {
    if (Date.now() - refreshed < MODEL_REFRESH_MS) return;
    refreshing ??= refreshProvenance(store, policy).finally(() => {
      refreshed = Date.now();
      refreshing = undefined;
    });
    await refreshing;
  }

  async function violationCount(): Promise<number> {
    const [row] = await store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${db}.${Table.violations}`);
    return Number(row?.n ?? 0);
  }

  return {
    violationCount,
    async overview() {
      await freshModel();
      const [byRule, daily, latest, count] = await Promise.all([
        store.query<{ rule_id: string; violations: string; first: string; last: string }>(
          `SELECT rule_id, toString(uniqExact(violation_id)) AS violations, toString(min(occurred_at)) AS first, toString(max(occurred_at)) AS last
           FROM ${db}.${Table.violations} GROUP BY rule_id ORDER BY rule_id`,
        ),
        store.query<{ rule_id: string; day: string; users: string }>(
          `SELECT rule_id, toString(day) AS day, toString(count()) AS users
           FROM (SELECT rule_id, subject_id, min(toDate(occurred_at)) AS day FROM ${db}.${Table.violationSubjects} GROUP BY rule_id, subject_id)
           GROUP BY rule_id, day ORDER BY rule_id, day`,
        ),
        store.query<{ at: string | null }>(`SELECT if(count() = 0, NULL, toString(max(occurred_at))) AS at FROM ${db}.${Table.events}`),
        violationCount(),
      ]);
      const latestEvent = iso(latest[0]?.at);
      const out: RuleOverview[] = [];
      for (const r of byRule) {
        const meta = rules.get(r.rule_id) ?? { description: "", severity: "", mode: "" };
        const exact = await exactAffected(store, r.rule_id);
        const last = iso(r.last);
        out.push({
          id: r.rule_id,
          ...meta,
          exact: exact.exact.users,
          possibly: exact.fieldLevel.users,
          violations: Number(r.violations),
          first: iso(r.first),
          last,
          stillHappening: last !== null && latestEvent !== null && Date.parse(latestEvent) - Date.parse(last) <= STILL_HAPPENING_MS,
          daily: daily.filter((d) => d.rule_id === r.rule_id).map((d) => ({ day: d.day, users: Number(d.users) })),
        });
      }
      return { rules: out, latestEvent, violations: count };
    },
  };
}
