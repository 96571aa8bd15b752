// What the console shows, read from the store with fixed SQL and bound parameters only: nothing
// a person types is spliced into a statement.
import { exactAffected, refreshProvenance, Table, type Store } from "../store/index.ts";
import type { Policy } from "../rules/index.ts";
import { buildReport, renderHtml, renderJson, renderMarkdown } from "../report/index.ts";
import type { Overview, PathHop, RuleDetail, RuleOverview, RulePath } from "./types.ts";

export type { Overview, RuleDetail, RuleOverview };

export const REPORT_FORMATS = {
  md: { type: "text/markdown; charset=utf-8", render: renderMarkdown },
  json: { type: "application/json; charset=utf-8", render: renderJson },
  html: { type: "text/html; charset=utf-8", render: renderHtml },
} as const;
export type ReportFormat = keyof typeof REPORT_FORMATS;

/** A violation stops counting as "still happening" when the newest stored event is this much later. */
export const STILL_HAPPENING_MS = 7 * 24 * 60 * 60 * 1000;
/** The exact model is brought up to date at most this often for the console. */
export const MODEL_REFRESH_MS = 30_000;

export interface ConsoleData {
  overview(): Promise<Overview>;
  /** One rule's page; undefined when the policy has no such rule. */
  rule(id: string): Promise<RuleDetail | undefined>;
  /** Whether the policy has this rule (an allow-list for every parameter naming one). */
  knows(id: string): boolean;
  /** The Art. 33 incident report of a known rule, rendered (as `lineage-audit report` does). */
  report(id: string, format: ReportFormat): Promise<{ filename: string; type: string; body: string } | undefined>;
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

  async function ruleDetail(id: string): Promise<RuleDetail | undefined> {
    const meta = rules.get(id);
    if (!meta) return undefined;
    await freshModel();
    const params = { rule: id };
    const [exact, exactDays, possiblyDays, top, services, shares, alerts] = await Promise.all([
      exactAffected(store, id),
      store.query<{ day: string; today: string; so_far: string }>(
        `SELECT toString(toDate(fromUnixTimestamp64Milli(start, 'UTC'))) AS day, toString(bitmapCardinality(s)) AS today,
                toString(groupBitmapMerge(s) OVER (ORDER BY start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) AS so_far
         FROM (SELECT start, groupBitmapMergeState(subjects) AS s FROM ${db}.${Table.exactRollups}
               WHERE rule_id = {rule:String} AND hours = 24 AND version = (SELECT max(version) FROM ${db}.${Table.exactVersions})
               GROUP BY start)
         ORDER BY start`,
        params,
      ),
      store.query<{ day: string; users: string }>(
        `SELECT toString(day) AS day, toString(count()) AS users
         FROM (SELECT subject_id, min(toDate(occurred_at)) AS day FROM ${db}.${Table.violationSubjects} WHERE rule_id = {rule:String} GROUP BY subject_id)
         GROUP BY day ORDER BY day`,
        params,
      ),
      store.query<{ path_id: string; n: string; lineage_path: string }>(
        `SELECT v.path_id AS path_id, toString(v.n) AS n, p.lineage_path AS lineage_path
         FROM (SELECT path_id, count() AS n FROM ${db}.${Table.violations} WHERE rule_id = {rule:String} AND path_id != '' GROUP BY path_id ORDER BY n DESC, path_id LIMIT 20) AS v
         INNER JOIN (SELECT path_id, any(lineage_path) AS lineage_path FROM ${db}.${Table.paths} GROUP BY path_id) AS p ON p.path_id = v.path_id
         ORDER BY v.n DESC, v.path_id`,
        params,
      ),
      store.query<{ service: string; job: string; n: string }>(
        `SELECT service, concat(job_namespace, '/', job_name) AS job, toString(uniqExact(violation_id)) AS n
         FROM ${db}.${Table.violations} WHERE rule_id = {rule:String} GROUP BY service, job ORDER BY count() DESC, service, job LIMIT 50`,
        params,
      ),
      store.query<{ recipient: string; external: number; service: string; n: string; first: string; last: string }>(
        `SELECT recipient, recipient_external AS external, service, toString(uniqExact(violation_id)) AS n,
                toString(min(occurred_at)) AS first, toString(max(occurred_at)) AS last
         FROM ${db}.${Table.violations} WHERE rule_id = {rule:String} AND kind = 'SHARE'
         GROUP BY recipient, recipient_external, service ORDER BY recipient, service LIMIT 50`,
        params,
      ),
      store.query<{ state: string; n: string }>(
        `SELECT state, toString(count()) AS n FROM ${db}.${Table.outbox} FINAL WHERE rule_id = {rule:String} GROUP BY state ORDER BY state`,
        params,
      ),
    ]);
    const days = new Map<string, RuleDetail["timeline"][number]>();
    const at = (day: string) => {
      let d = days.get(day);
      if (!d) days.set(day, (d = { day, exactDay: 0, exactSoFar: 0, possiblyNew: 0, possiblySoFar: 0 }));
      return d;
    };
    for (const r of exactDays) Object.assign(at(r.day), { exactDay: Number(r.today), exactSoFar: Number(r.so_far) });
    for (const r of possiblyDays) at(r.day).possiblyNew = Number(r.users);
    const timeline = [...days.values()].sort((a, b) => a.day.localeCompare(b.day));
    let exactSoFar = 0;
    let possiblySoFar = 0;
    for (const d of timeline) {
      exactSoFar = d.exactSoFar = Math.max(exactSoFar, d.exactSoFar);
      possiblySoFar = d.possiblySoFar = possiblySoFar + d.possiblyNew;
    }
    const paths: RulePath[] = top.flatMap((t) => {
      const parsed = JSON.parse(t.lineage_path) as {
        paths: { category: string; collectedFor: string[]; hops: PathHop[] }[];
        use: RulePath["use"];
      };
      const first = parsed.paths[0];
      return first
        ? [
            {
              pathId: t.path_id,
              violations: Number(t.n),
              category: first.category,
              collectedFor: first.collectedFor,
              hops: first.hops,
              use: parsed.use,
            },
          ]
        : [];
    });
    // Paths stored apart (other runs, other times) that draw the same route are one route.
    const routes = new Map<string, RulePath>();
    for (const path of paths) {
      const key = JSON.stringify([
        path.category,
        path.collectedFor,
        path.hops.map((h) => [h.dataset, h.field, h.transform ?? "", h.masking ?? "", h.service]),
        [path.use.kind, path.use.service, path.use.purposes, path.use.recipient],
      ]);
      const known = routes.get(key);
      if (known) known.violations += path.violations;
      else routes.set(key, { ...path });
    }
    return {
      rule: { id, ...meta },
      exact: { users: exact.exact.users, records: exact.exact.records, violatingEvents: exact.exact.violatingEvents },
      possibly: { users: exact.fieldLevel.users },
      sharedOutside: exact.sharedOutside,
      timeline,
      paths: [...routes.values()].sort((x, y) => y.violations - x.violations).slice(0, 5),
      services: services.map((r) => ({ service: r.service, job: r.job, violations: Number(r.n) })),
      shares: shares.map((r) => ({
        recipient: r.recipient,
        external: Number(r.external) === 1,
        service: r.service,
        violations: Number(r.n),
        first: iso(r.first),
        last: iso(r.last),
      })),
      alerts: alerts.map((r) => ({ state: r.state, alerts: Number(r.n) })),
    };
  }

  return {
    async report(id, format) {
      const meta = rules.get(id);
      if (!meta) return undefined;
      const data = await buildReport(store, policy, { ruleId: id }, { id, ...meta } as Parameters<typeof buildReport>[3]);
      const spec = REPORT_FORMATS[format];
      return { filename: `incident-${id}.${format}`, type: spec.type, body: spec.render(data) };
    },
    knows: (id) => rules.has(id),
    rule: ruleDetail,
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
