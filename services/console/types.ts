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
