// What the console's API answers: shared by the server (services/console) and the app (web/console).
// No imports, so the app's bundle takes only these types.

export interface RuleOverview {
  id: string;
  description: string;
  severity: string;
  mode: string;
  /** Exactly affected users (per person: docs/rules.md, "Exact affected users"). */
  exact: number;
  /** Every user a flagged use names (field level): shown beside the exact count, never instead; it can be smaller, since a whole-table export names nobody. */
  possibly: number;
  violations: number;
  first: string | null;
  last: string | null;
  stillHappening: boolean;
  /** New users named by the rule's violations per day (field level), oldest first. */
  daily: { day: string; users: number }[];
}

/** Which snapshot of the exact model the exact counts come from. */
export interface ModelState {
  /** When the snapshot the exact counts come from was computed; null before the first. */
  computedAt: string | null;
  /** A newer snapshot is being computed (in the background: no call waits for it). */
  updating: boolean;
}

export interface Overview {
  rules: RuleOverview[];
  model: ModelState;
  /** The newest event time stored. */
  latestEvent: string | null;
  /** Violations stored: the live view reloads when this grows. */
  violations: number;
}

/** One step of a lineage path as the processor records it (violation_paths_v1.lineage_path). */
export interface PathHop {
  kind: string;
  dataset: string;
  field: string;
  service: string;
  job: string;
  transform?: string;
  masking?: string;
}

export interface RulePath {
  pathId: string;
  violations: number;
  category: string;
  collectedFor: string[];
  hops: PathHop[];
  use: {
    kind: string;
    datasets: string[];
    service: string;
    job: string;
    purposes: string[];
    recipient: { name: string; external: boolean } | null;
  };
}

export interface RuleDetail {
  rule: { id: string; description: string; severity: string; mode: string };
  model: ModelState;
  exact: { users: number; records: number };
  possibly: { users: number };
  /** Uses and shares that broke the rule. */
  violatingEvents: number;
  /** Of them, shares to an external recipient. */
  externalShares: number;
  /** Per day with a violation: exactly affected users that day and so far; new and so far at field level. */
  timeline: { day: string; exactDay: number; exactSoFar: number; possiblyNew: number; possiblySoFar: number }[];
  /** The most frequent routes its violations took (at most 5; paths that draw the same route are one). */
  paths: RulePath[];
  services: { service: string; job: string; violations: number }[];
  shares: { recipient: string; external: boolean; service: string; violations: number; first: string | null; last: string | null }[];
  /** Alerts raised for the rule, by delivery state. */
  alerts: { state: string; alerts: number }[];
  /** The latest alerts (at most 20), each with every delivery attempt made for it. */
  alertList: RuleAlert[];
}

/** One alert (a webhook to one subscription) and its delivery attempts. */
export interface RuleAlert {
  webhookId: string;
  subscription: string;
  /** pending, delivered, failed or disabled. */
  state: string;
  service: string;
  job: string;
  /** The job run that raised it. */
  run: string;
  windowStart: string | null;
  windowEnd: string | null;
  createdAt: string | null;
  deliveries: { attempt: number; at: string | null; status: number; outcome: string; durationMs: number; error: string }[];
}

/** What the person page reads of an access request's answer. */
export interface PersonView {
  subject: string;
  events: {
    occurredAt: string;
    kind: string;
    service: string;
    job: string;
    datasets: string[];
    fields: string[];
    categories: string[];
    purposes: string[];
    recipient: string | null;
    violations: string[];
  }[];
  violations: {
    ruleId: string;
    eventId: string;
    kind: string;
    occurredAt: number;
    wholeTable: boolean;
    exact: boolean;
    reason: string | null;
    evidence: {
      origin: string;
      category: string;
      collectedFor: string[];
      collected: { occurredAt: string; service: string; job: string; eventId: string } | null;
      hops: { transform?: string | null; kind: string; dataset: string; field: string; service: string; job: string; occurredAt: number }[];
    }[];
  }[];
}

/** The operations page: what did not go in, and what did not go out. */
export interface OperationsView {
  deadLetters: {
    total: number;
    byReason: { code: string; reason: string; count: number }[];
    latest: { at: string; source: string; code: string; reason: string; bytes: number; redacted: boolean }[];
  };
  /** Null when this serve consumes no Kafka topic. */
  lag: { topic: string; partition: number; lag: number }[] | null;
  /** RunEvents answered 201 over HTTP and not yet stored (still in the intake journal); null without that intake. */
  openLineage: { notYetStored: number } | null;
  /** Null when no alert subscriptions are configured. */
  endpoints: { id: string; target: string; enabled: boolean; disabledBy: string | null }[] | null;
  failedDeliveries: {
    at: string;
    subscription: string;
    webhookId: string;
    attempt: number;
    status: number;
    outcome: string;
    error: string;
  }[];
}

/** Datasets found by a part of their name. */
export interface DatasetList {
  query: string;
  /** How many match; at most 50 are listed. */
  total: number;
  datasets: { dataset: string }[];
}

/** A dataset's page: its fields' labels and where they came from, its readers, its neighbours. */
export interface DatasetView {
  dataset: string;
  fields: { field: string; labels: { category: string; collectedFor: string[]; dataSubject: string; origin: string; hops: number }[] }[];
  /** Uses and shares that read it, by service and purpose. */
  readers: { kind: string; service: string; purposes: string[]; events: number; last: string | null }[];
  /** Datasets it derives from, and that derive from it, at any depth (capped), with their distance. */
  upstream: { dataset: string; depth: number }[];
  downstream: { dataset: string; depth: number }[];
}
