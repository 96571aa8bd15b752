import type { EventKind, Masking, Transform } from "../codec/index.ts";

export const Severity = { info: "info", low: "low", medium: "medium", high: "high", critical: "critical" } as const;
export type Severity = (typeof Severity)[keyof typeof Severity];
export const SEVERITIES: readonly Severity[] = Object.values(Severity);

/** `enforce` rules make violations (and, later, alerts); `shadow` rules only record what they would flag. */
export const RuleMode = { enforce: "enforce", shadow: "shadow" } as const;
export type RuleMode = (typeof RuleMode)[keyof typeof RuleMode];

export const RecipientScope = { any: "any", internal: "internal", external: "external" } as const;
export type RecipientScope = (typeof RecipientScope)[keyof typeof RecipientScope];

/** What a rule looks at. Every present list must match; an absent list matches everything. */
export interface RuleMatch {
  /** fideslang data categories (subtrees) of the data reaching the use. */
  categories?: string[];
  /** Purposes the data was collected for (subtrees); matches when any collection purpose is covered. */
  collectedFor?: string[];
  /** Purposes of the use or share (subtrees). */
  usedFor?: string[];
  /** fideslang data subjects. */
  subjects?: string[];
  /** Event kinds the rule applies to. @default ["USE", "SHARE"] */
  kinds?: Extract<EventKind, "USE" | "SHARE">[];
  /** For SHARE: which recipients. @default "any" */
  recipients?: RecipientScope;
  /** Services doing the use. */
  services?: string[];
}

export interface Rule {
  id: string;
  description: string;
  /** `deny` flags the match even when the purposes would allow it; `allow` exempts it from purpose limitation. */
  effect: "deny" | "allow";
  severity: Severity;
  mode: RuleMode;
  match: RuleMatch;
}

/** Declares that data collected for one purpose may also be used for another. */
export interface Compatibility {
  id: string;
  collectedFor: string[];
  usedFor: string[];
}

/** When a masking or anonymising derivation may drop or reclassify labels. Without one, labels pass through. */
export interface Declassification {
  id: string;
  transforms: Transform[];
  /** Masking levels the derivation must declare. */
  masking: Exclude<Masking, "NONE">[];
  categories: string[];
  /** `drop` removes the label; otherwise the label's category becomes `reclassifyTo`. */
  action: { drop: true } | { reclassifyTo: string };
}

export interface PurposeLimitation {
  enabled: boolean;
  id: string;
  severity: Severity;
  mode: RuleMode;
}

export interface Policy {
  /** Where the policy came from, for messages. */
  source: string;
  purposeLimitation: PurposeLimitation;
  compatible: Compatibility[];
  rules: Rule[];
  declassify: Declassification[];
  /** Severity of the finding made when a dataset of unknown provenance is used. */
  unknownProvenance: { severity: Severity };
  /** Where each rule, compatibility and declassification (by id) starts in the file, for messages about it. */
  locations?: Readonly<Record<string, { line: number; column: number }>>;
}
