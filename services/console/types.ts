// What the console's API answers: shared by the server (services/console) and the app (web/console).
// No imports, so the app's bundle takes only these types.

export interface RuleOverview {
  id: string;
  description: string;
  severity: string;
  mode: string;
  /** Exactly affected users (per person: docs/rules.md, "Exact affected users"). */
  exact: number;
  /**
   * The field-level reading of the same model: every user a flagged use names. Shown beside the
   * exact count, never instead; it can be smaller, since a whole-table export names nobody.
   */
  possibly: number;
  violations: number;
  first: string | null;
  last: string | null;
  stillHappening: boolean;
  /** New users named by the rule's violations per day (field level), oldest first. */
  daily: { day: string; users: number }[];
}

export interface Overview {
  rules: RuleOverview[];
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
  exact: { users: number; records: number; violatingEvents: number };
  possibly: { users: number };
  sharedOutside: { shared: boolean; subjects: number; events: number };
  /** Per day with a violation: exactly affected users that day and so far; new and so far at field level. */
  timeline: { day: string; exactDay: number; exactSoFar: number; possiblyNew: number; possiblySoFar: number }[];
  /** The most frequent routes its violations took (at most 5; paths that draw the same route are one). */
  paths: RulePath[];
  services: { service: string; job: string; violations: number }[];
  shares: { recipient: string; external: boolean; service: string; violations: number; first: string | null; last: string | null }[];
  alerts: { state: string; alerts: number }[];
}
