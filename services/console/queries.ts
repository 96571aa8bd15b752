// What the console shows, read from the store with fixed SQL and bound parameters only: nothing
// a person types is spliced into a statement.
import {
  exactCount,
  exactCounts,
  createModelRefresher,
  storedTimeToIso,
  subjectHistory,
  subjectViolations,
  Table,
  type ModelRefresher,
  type Store,
} from "../store/index.ts";
import type { Policy } from "../rules/index.ts";
import { defaults } from "../config/index.ts";
import { buildReport, renderHtml, renderJson, renderMarkdown } from "../report/index.ts";
import type {
  DatasetList,
  DatasetView,
  ModelState,
  OperationsView,
  Overview,
  PathHop,
  RuleAlert,
  RuleDetail,
  RuleOverview,
  RulePath,
} from "./types.ts";
import { createLineageGraph, datasetId, WHOLE_DATASET } from "../lineage/index.ts";
import { EventKind } from "../codec/index.ts";

export type { Overview, RuleDetail, RuleOverview };

export const REPORT_FORMATS = {
  md: { type: "text/markdown; charset=utf-8", render: renderMarkdown },
  json: { type: "application/json; charset=utf-8", render: renderJson },
  html: { type: "text/html; charset=utf-8", render: renderHtml },
} as const;
export type ReportFormat = keyof typeof REPORT_FORMATS;

/** A violation stops counting as "still happening" when the newest stored event is this much later. */
export const STILL_HAPPENING_MS = 7 * 24 * 60 * 60 * 1000;
/** How far the dataset page follows lineage, and how many datasets it shows per side. */
const MAX_DEPTH = 32;
const MAX_DATASETS = 500;
/** How many datasets a search lists. */
const DATASETS_LISTED = 50;
/** How many of a rule's latest alerts its page lists with their deliveries. */
const ALERTS_SHOWN = 20;

/** Datasets reachable from `start` along dataset edges, each with its distance (breadth first, capped). */
function walk(
  edges: readonly { from_dataset: string; to_dataset: string }[],
  start: string,
  way: "up" | "down",
): { dataset: string; depth: number }[] {
  const next = new Map<string, string[]>();
  for (const e of edges) {
    const [from, to] = way === "down" ? [e.from_dataset, e.to_dataset] : [e.to_dataset, e.from_dataset];
    if (from === to) continue;
    next.set(from, [...(next.get(from) ?? []), to]);
  }
  const depth = new Map<string, number>([[start, 0]]);
  const queue = [start];
  while (queue.length > 0 && depth.size <= MAX_DATASETS) {
    const d = queue.shift() as string;
    for (const n of next.get(d) ?? []) {
      if (depth.has(n) || (depth.get(d) as number) >= MAX_DEPTH) continue;
      depth.set(n, (depth.get(d) as number) + 1);
      queue.push(n);
    }
  }
  depth.delete(start);
  return [...depth].map(([dataset, d]) => ({ dataset, depth: d })).sort((a, b) => a.depth - b.depth || a.dataset.localeCompare(b.dataset));
}

export interface ConsoleData {
  overview(): Promise<Overview>;
  /** One rule's page; undefined when the policy has no such rule. */
  rule(id: string): Promise<RuleDetail | undefined>;
  /** Whether the policy has this rule (an allow-list for every parameter naming one). */
  knows(id: string): boolean;
  /**
   * A person's history (an access request): the identifier is pseudonymised here with the
   * organisation's key, then only the pseudonym is used; undefined when no key is configured.
   */
  person(identifier: string): Promise<PersonHistory | undefined>;
  /** The datasets the lineage names whose `namespace/name` holds `q` (any case), at most 50, by name. */
  datasets(q: string): Promise<DatasetList>;
  /** A dataset (`namespace/name`) the lineage names; undefined when none does. */
  dataset(id: string): Promise<DatasetView | undefined>;
  /** Dead letters, consumer lag, webhook endpoints and failed deliveries. */
  operations(): Promise<OperationsView>;
  /** The Art. 33 incident report of a known rule, rendered (as `lineage-audit report` does). */
  report(id: string, format: ReportFormat): Promise<{ filename: string; type: string; body: string } | undefined>;
  /** How many violations are stored (cheap: polled for the live view). */
  violationCount(): Promise<number>;
  /**
   * When the latest snapshot of the exact model was computed (null before the first); polled for
   * the live view, it also starts a refresh of the model when one is due.
   */
  modelComputedAt(): Promise<string | null>;
}

const iso = (stored: string | null | undefined): string | null => (stored ? storedTimeToIso(stored) : null);

export interface PersonHistory {
  /** The pseudonym: never the identifier that was typed. */
  subject: string;
  events: Awaited<ReturnType<typeof subjectHistory>>;
  violations: Awaited<ReturnType<typeof subjectViolations>>;
}

export interface ConsoleDataOptions {
  /** The organisation's keyed pseudonymisation, for access requests. */
  pseudonymize?: (raw: string) => string;
  /** The Kafka consumer's lag, when serve consumes Kafka (read when asked: Kafka may start later). */
  lag?: () => { topic: string; partition: number; lag: number }[] | undefined;
  /** OpenLineage RunEvents answered over HTTP and not yet stored (the intake journal's backlog). */
  openLineageBacklog?: () => number;
  /** How often at most a refresh of the exact model starts. @default defaults.modelRefreshMs (30 s) */
  modelRefreshMs?: number;
  /** Where a failure of the background model refresh is reported (one line, no personal data). */
  onError?: (line: string) => void;
  /** The alert subscriptions serve delivers to (their URLs are shown as origin and path only). */
  subscriptions?: readonly { id: string; url: string; enabled: boolean }[];
  /** The process's one refresher of the exact model, shared with the alert deliverer. @default one of its own */
  refresher?: ModelRefresher;
}

export function createConsoleData(store: Store, policy: Policy, options: ConsoleDataOptions = {}): ConsoleData {
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
  const modelRefreshMs = options.modelRefreshMs ?? defaults.modelRefreshMs;
  let lastStarted = 0;
  const refresher = options.refresher ?? createModelRefresher(store, policy);

  /**
   * Brings the exact model up to date in the background: at most one refresh at a time, started
   * at most every `modelRefreshMs`. No call waits for it (a refresh after new events rebuilds the
   * model, minutes at a million users): the counts are those of the latest complete snapshot,
   * and the pages say when it was computed.
   */
  function refreshModelSoon(): void {
    if (refresher.updating || Date.now() - lastStarted < modelRefreshMs) return;
    lastStarted = Date.now();
    refresher
      .upToDate(lastStarted)
      .catch((error: unknown) =>
        options.onError?.(`bringing the exact model up to date failed: ${(error as Error).message.split("\n")[0]}`),
      );
  }

  async function modelComputedAt(): Promise<string | null> {
    refreshModelSoon();
    const [row] = await store.query<{ v: string }>(`SELECT toString(max(version)) AS v FROM ${db}.${Table.provenanceVersions}`);
    const version = Number(row?.v ?? 0); // microseconds since the epoch, when the snapshot was computed
    return version > 0 ? new Date(Math.floor(version / 1000)).toISOString() : null;
  }

  async function modelState(): Promise<ModelState> {
    return { computedAt: await modelComputedAt(), updating: refresher.updating };
  }

  // Answers computed from whole tables, kept while those tables' active parts are the same: any
  // insert makes a new part and any merge replaces parts, so the key changes with the data.
  const kept = new Map<string, { version: string; value: Promise<unknown> }>();
  async function whileUnchanged<T>(name: string, tables: readonly string[], compute: () => Promise<T>): Promise<T> {
    const [row] = await store.query<{ v: string }>(
      `SELECT toString(cityHash64(arraySort(groupArray(concat(table, '/', name))))) AS v
       FROM system.parts WHERE database = {db:String} AND table IN {tables:Array(String)} AND active`,
      { db, tables },
    );
    const version = row?.v ?? "";
    const known = kept.get(name);
    if (known && known.version === version) return known.value as Promise<T>;
    const value = compute();
    kept.set(name, { version, value });
    value.catch(() => {
      if (kept.get(name)?.value === value) kept.delete(name);
    });
    return value;
  }

  async function violationCount(): Promise<number> {
    const [row] = await store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${db}.${Table.violations}`);
    return Number(row?.n ?? 0);
  }

  async function ruleDetail(id: string): Promise<RuleDetail | undefined> {
    const meta = rules.get(id);
    if (!meta) return undefined;
    const params = { rule: id };
    const model = await modelState();
    const [exact, counts, exactDays, possiblyDays, top, services, shares, alerts, alertList] = await Promise.all([
      // From the model's bitmaps: tens of ms where the joins behind `affected` take seconds at 1M users.
      exactCount(store, id),
      store.query<{ events: string }>(
        `SELECT toString(uniqExact(event_id)) AS events FROM ${db}.${Table.violations} WHERE rule_id = {rule:String}`,
        params,
      ),
      store.query<{ day: string; today: string; so_far: string }>(
        `SELECT toString(toDate(fromUnixTimestamp64Milli(start, 'UTC'))) AS day, toString(bitmapCardinality(s)) AS today,
                toString(groupBitmapMerge(s) OVER (ORDER BY start ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)) AS so_far
         FROM (SELECT start, groupBitmapMergeState(subjects) AS s FROM ${db}.${Table.exactRollups}
               WHERE rule_id = {rule:String} AND hours = 24 AND version = (SELECT max(version) FROM ${db}.${Table.exactVersions})
               GROUP BY start)
         ORDER BY start`,
        params,
      ),
      // Each person on the day first seen: their sum is the possibly-affected users.
      whileUnchanged(`rule daily ${id}`, [Table.violationSubjects], () =>
        store.query<{ day: string; users: string }>(
          `SELECT toString(day) AS day, toString(count()) AS users
           FROM (SELECT subject_id, min(toDate(occurred_at)) AS day FROM ${db}.${Table.violationSubjects} WHERE rule_id = {rule:String} GROUP BY subject_id)
           GROUP BY day ORDER BY day`,
          params,
        ),
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
      latestAlerts(id),
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
      model,
      exact: { users: exact.users, records: exact.records },
      possibly: { users: possiblyDays.reduce((sum, d) => sum + Number(d.users), 0) },
      violatingEvents: Number(counts[0]?.events ?? 0),
      externalShares: shares.filter((r) => Number(r.external) === 1).reduce((a, r) => a + Number(r.n), 0),
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
      alertList,
    };
  }

  /** The rule's latest alerts (by the time of the violations they report), with every delivery attempt of each. */
  async function latestAlerts(rule: string): Promise<RuleAlert[]> {
    const alerts = await store.query<{
      webhook_id: string;
      subscription_id: string;
      state: string;
      service: string;
      job: string;
      run_id: string;
      window_start: string;
      window_end: string;
      created_at: string;
    }>(
      `SELECT webhook_id, subscription_id, state, service, concat(job_namespace, '/', job_name) AS job, run_id,
              toString(window_start) AS window_start, toString(window_end) AS window_end, toString(created_at) AS created_at
       FROM ${db}.${Table.outbox} FINAL WHERE rule_id = {rule:String}
       ORDER BY window_start DESC, created_at DESC, subscription_id, webhook_id LIMIT ${ALERTS_SHOWN}`,
      { rule },
    );
    if (alerts.length === 0) return [];
    const deliveries = await store.query<{
      webhook_id: string;
      subscription_id: string;
      attempt: number;
      at: string;
      status: number;
      outcome: string;
      duration_ms: number;
      error: string;
    }>(
      `SELECT webhook_id, subscription_id, attempt, toString(at) AS at, status_code AS status, outcome, duration_ms, error
       FROM ${db}.${Table.deliveries} WHERE webhook_id IN {ids:Array(String)}
       ORDER BY webhook_id, subscription_id, attempt, at`,
      { ids: [...new Set(alerts.map((a) => a.webhook_id))] },
    );
    const key = (webhook: string, subscription: string) => `${webhook}\u0000${subscription}`;
    const bySend = new Map<string, RuleAlert["deliveries"]>();
    for (const d of deliveries) {
      const k = key(d.webhook_id, d.subscription_id);
      const list = bySend.get(k) ?? [];
      list.push({
        attempt: Number(d.attempt),
        at: iso(d.at),
        status: Number(d.status),
        outcome: d.outcome,
        durationMs: Number(d.duration_ms),
        error: d.error,
      });
      bySend.set(k, list);
    }
    return alerts.map((a) => ({
      webhookId: a.webhook_id,
      subscription: a.subscription_id,
      state: a.state,
      service: a.service,
      job: a.job,
      run: a.run_id,
      windowStart: iso(a.window_start),
      windowEnd: iso(a.window_end),
      createdAt: iso(a.created_at),
      deliveries: bySend.get(key(a.webhook_id, a.subscription_id)) ?? [],
    }));
  }

  /**
   * The uses and shares that read a dataset, by kind, service and purposes. Uses are grouped by
   * their shape first (events_v1.use_shape: kind, service, job, purposes, recipient and fields
   * read), a light column: the datasets each shape reads are then looked up on one stored use of
   * it, found by its time through the primary key, instead of every use's inputs being read.
   */
  async function readersOf(id: string): Promise<{ kind: string; service: string; purposes: string[]; n: string; last: string }[]> {
    const shapes = await store.query<{ shape: string; n: string; last: string; first: string }>(
      `SELECT toString(use_shape) AS shape, toString(count()) AS n, toString(max(occurred_at)) AS last,
              toString(toUnixTimestamp64Milli(min(occurred_at))) AS first
       FROM ${db}.${Table.events} WHERE kind IN ('USE', 'SHARE') GROUP BY use_shape`,
    );
    if (shapes.length === 0) return [];
    const reading = await store.query<{ shape: string; kind: string; service: string; purposes: string[] }>(
      `SELECT toString(use_shape) AS shape, kind, service, purposes FROM ${db}.${Table.events}
       WHERE kind IN ('USE', 'SHARE') AND occurred_at IN (SELECT fromUnixTimestamp64Milli(arrayJoin({times:Array(Int64)}), 'UTC'))
         AND has(inputs, {d:String})
       LIMIT 1 BY use_shape`,
      { times: [...new Set(shapes.map((x) => Number(x.first)))], d: id },
    );
    const byShape = new Map(shapes.map((x) => [x.shape, x]));
    const groups = new Map<string, { kind: string; service: string; purposes: string[]; n: number; last: string }>();
    for (const r of reading) {
      const shape = byShape.get(r.shape);
      if (!shape) continue;
      const key = JSON.stringify([r.kind, r.service, r.purposes]);
      const g = groups.get(key) ?? { kind: r.kind, service: r.service, purposes: r.purposes, n: 0, last: "" };
      g.n += Number(shape.n);
      if (shape.last > g.last) g.last = shape.last;
      groups.set(key, g);
    }
    return [...groups.values()]
      .sort((a, b) => b.n - a.n || a.kind.localeCompare(b.kind) || a.service.localeCompare(b.service))
      .slice(0, 50)
      .map((g) => ({ ...g, n: String(g.n) }));
  }

  /** Upstream closure and labels from the stored lineage facts (bounded, as the processor's graph is). */
  async function dataset(id: string): Promise<DatasetView | undefined> {
    const [known] = await store.query<{ n: string }>(
      `SELECT toString(count()) AS n FROM ${db}.${Table.factDatasets} WHERE dataset = {d:String}`,
      { d: id },
    );
    if (Number(known?.n ?? 0) === 0) return undefined;
    const graph = createLineageGraph(policy.declassify);
    const done = new Set<string>();
    let frontier = [id];
    let ownFacts: Awaited<ReturnType<Store["lineageFactsOf"]>> = [];
    for (let round = 0; round < MAX_DEPTH && frontier.length > 0; round++) {
      for (const d of frontier) done.add(d);
      const facts = await store.lineageFactsOf({ datasets: frontier, upstream: frontier });
      if (round === 0) ownFacts = facts;
      const next = new Set<string>();
      for (const f of facts) {
        graph.apply(f);
        if (f.kind !== EventKind.derive) continue;
        for (const d of [...f.inputs, ...f.fieldLineage.flatMap((m) => m.inputs)]) {
          const up = `${d.namespace}/${d.name}`;
          if (!done.has(up)) next.add(up);
        }
      }
      frontier = [...next].slice(0, MAX_DATASETS);
    }
    const [fieldRows, readers, edges] = await Promise.all([
      store.query<{ field: string }>(
        `SELECT DISTINCT field FROM (
           SELECT to_field AS field FROM ${db}.${Table.edges} WHERE to_dataset = {d:String}
           UNION ALL SELECT from_field AS field FROM ${db}.${Table.edges} WHERE from_dataset = {d:String}
         ) ORDER BY field LIMIT 500`,
        { d: id },
      ),
      readersOf(id),
      store.query<{ from_dataset: string; to_dataset: string }>(
        `SELECT DISTINCT from_dataset, to_dataset FROM ${db}.${Table.edges} LIMIT 100000`,
      ),
    ]);
    // Its fields: those its collections wrote and its derivations read or wrote (the stored facts
    // loaded above), and those on its lineage edges.
    const named = new Set(fieldRows.map((r) => r.field));
    for (const f of ownFacts) {
      for (const d of [...f.inputs, ...f.outputs]) if (datasetId(d) === id) for (const x of d.fields) named.add(x.name);
      for (const m of f.fieldLineage) {
        if (datasetId(m.output) === id) named.add(m.output.field);
        for (const i of m.inputs) if (datasetId(i) === id) named.add(i.field);
      }
    }
    const fields = [...named]
      .filter((f) => f !== "" && f !== WHOLE_DATASET)
      .sort()
      .slice(0, 500);
    const lookup = (field: string) => graph.labelsOf([{ dataset: id, fields: [field] }]).labels;
    return {
      dataset: id,
      fields: fields.map((field) => ({
        field,
        labels: lookup(field).map((l) => ({
          category: l.category,
          collectedFor: l.collectedFor,
          dataSubject: l.dataSubject,
          origin: l.origin,
          hops: l.path.length - 1,
        })),
      })),
      readers: readers.map((r) => ({ kind: r.kind, service: r.service, purposes: r.purposes, events: Number(r.n), last: iso(r.last) })),
      upstream: walk(edges, id, "up"),
      downstream: walk(edges, id, "down"),
    };
  }

  async function operations(): Promise<OperationsView> {
    const [total, byReason, latest, disabled, failed] = await Promise.all([
      store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${db}.${Table.deadLetters}`),
      store.query<{ code: string; reason: string; n: string }>(
        `SELECT error_code AS code, reason, toString(count()) AS n FROM ${db}.${Table.deadLetters} GROUP BY code, reason ORDER BY count() DESC, code, reason LIMIT 20`,
      ),
      store.query<{ at: string; source: string; code: string; reason: string; bytes: string; redacted: number }>(
        `SELECT toString(received_at) AS at, source, error_code AS code, reason, toString(payload_bytes) AS bytes, redacted
         FROM ${db}.${Table.deadLetters} ORDER BY received_at DESC, dead_letter_id LIMIT 20`,
      ),
      store.query<{ id: string; disabled: number; reason: string }>(
        `SELECT subscription_id AS id, disabled, reason FROM ${db}.${Table.endpoints} FINAL`,
      ),
      store.query<{
        at: string;
        subscription: string;
        webhook_id: string;
        attempt: number;
        status: number;
        outcome: string;
        error: string;
      }>(
        `SELECT toString(at) AS at, subscription_id AS subscription, webhook_id, attempt, status_code AS status, outcome, error
         FROM ${db}.${Table.deliveries} WHERE outcome != 'delivered' ORDER BY at DESC LIMIT 20`,
      ),
    ]);
    const off = new Map(disabled.filter((d) => Number(d.disabled) === 1).map((d) => [d.id, d.reason]));
    const target = (url: string) => {
      try {
        const u = new URL(url);
        return `${u.origin}${u.pathname}`;
      } catch {
        return "(not a URL)";
      }
    };
    return {
      deadLetters: {
        total: Number(total[0]?.n ?? 0),
        byReason: byReason.map((r) => ({ code: r.code, reason: r.reason, count: Number(r.n) })),
        latest: latest.map((r) => ({
          at: iso(r.at) ?? "",
          source: r.source,
          code: r.code,
          reason: r.reason,
          bytes: Number(r.bytes),
          redacted: Number(r.redacted) === 1,
        })),
      },
      lag: options.lag?.() ?? null,
      openLineage: options.openLineageBacklog ? { notYetStored: options.openLineageBacklog() } : null,
      endpoints: options.subscriptions
        ? options.subscriptions.map((s) => ({
            id: s.id,
            target: target(s.url),
            enabled: s.enabled && !off.has(s.id),
            disabledBy: off.get(s.id) ?? (s.enabled ? null : "disabled in the subscriptions file"),
          }))
        : null,
      failedDeliveries: failed.map((f) => ({
        at: iso(f.at) ?? "",
        subscription: f.subscription,
        webhookId: f.webhook_id,
        attempt: Number(f.attempt),
        status: Number(f.status),
        outcome: f.outcome,
        error: f.error,
      })),
    };
  }

  async function datasets(q: string): Promise<DatasetList> {
    // One statement: the matches' count is taken before the LIMIT.
    const rows = await store.query<{ dataset: string; total: string }>(
      `SELECT dataset, toString(count() OVER ()) AS total
       FROM (SELECT DISTINCT dataset FROM ${db}.${Table.factDatasets}
             WHERE {q:String} = '' OR positionCaseInsensitiveUTF8(dataset, {q:String}) > 0)
       ORDER BY dataset LIMIT ${DATASETS_LISTED}`,
      { q },
    );
    return { query: q, total: Number(rows[0]?.total ?? 0), datasets: rows.map((r) => ({ dataset: r.dataset })) };
  }

  return {
    dataset,
    datasets,
    operations,
    async person(identifier) {
      if (!options.pseudonymize) return undefined;
      const subject = options.pseudonymize(identifier);
      const events = await subjectHistory(store, subject);
      const violations = events.length === 0 ? [] : await subjectViolations(store, policy, subject);
      return { subject, events, violations };
    },
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
    modelComputedAt,
    async overview() {
      const model = await modelState();
      // Side by side, and each table read once: the possibly-affected users of a rule are the sum
      // of its new users per day (each person counted on the day first seen), so the per-person
      // scan of violation_subjects_v1 gives both; every rule's exact count from the model's bitmaps.
      const [byRule, daily, latest, count, exactByRule] = await Promise.all([
        store.query<{ rule_id: string; violations: string; first: string; last: string }>(
          `SELECT rule_id, toString(uniqExact(violation_id)) AS violations, toString(min(occurred_at)) AS first, toString(max(occurred_at)) AS last
           FROM ${db}.${Table.violations} GROUP BY rule_id ORDER BY rule_id`,
        ),
        // The one scan of every (rule, person) pair: kept until violation_subjects_v1 changes.
        whileUnchanged("overview daily", [Table.violationSubjects], () =>
          store.query<{ rule_id: string; day: string; users: string }>(
            `SELECT rule_id, toString(day) AS day, toString(count()) AS users
             FROM (SELECT rule_id, subject_id, min(toDate(occurred_at)) AS day FROM ${db}.${Table.violationSubjects} GROUP BY rule_id, subject_id)
             GROUP BY rule_id, day ORDER BY rule_id, day`,
          ),
        ),
        store.query<{ at: string | null }>(`SELECT if(count() = 0, NULL, toString(max(occurred_at))) AS at FROM ${db}.${Table.events}`),
        violationCount(),
        // Every rule's exact count from the model's bitmaps in one statement (not its joins).
        exactCounts(store, [...rules.keys()]),
      ]);
      const latestEvent = iso(latest[0]?.at);
      const dailyOf = new Map<string, { day: string; users: number }[]>();
      for (const d of daily) {
        const list = dailyOf.get(d.rule_id) ?? [];
        list.push({ day: d.day, users: Number(d.users) });
        dailyOf.set(d.rule_id, list);
      }
      const out: RuleOverview[] = [];
      for (const r of byRule) {
        const meta = rules.get(r.rule_id) ?? { description: "", severity: "", mode: "" };
        const exact = exactByRule.get(r.rule_id) ?? (await exactCount(store, r.rule_id));
        const last = iso(r.last);
        const days = dailyOf.get(r.rule_id) ?? [];
        out.push({
          id: r.rule_id,
          ...meta,
          exact: exact.users,
          possibly: days.reduce((sum, d) => sum + d.users, 0),
          violations: Number(r.violations),
          first: iso(r.first),
          last,
          stillHappening: last !== null && latestEvent !== null && Date.parse(latestEvent) - Date.parse(last) <= STILL_HAPPENING_MS,
          daily: days,
        });
      }
      return { rules: out, model, latestEvent, violations: count };
    },
  };
}
