import { coveredByAny } from "../taxonomy/index.ts";
import type { Recipient } from "../codec/index.ts";
import { RecipientScope, type Policy, type Rule, type RuleMode, type Severity } from "./types.ts";

/** What the evaluator needs to know of a label: the data's category, its collection purposes and subject type. */
export interface LabelLike {
  id?: string;
  category: string;
  collectedFor: readonly string[];
  dataSubject: string;
}

export interface UseContext {
  kind: "USE" | "SHARE";
  purposes: readonly string[];
  dataSubject: string;
  service: string;
  recipient: Recipient | null;
}

export interface Verdict<L extends LabelLike> {
  ruleId: string;
  severity: Severity;
  mode: RuleMode;
  /** `deny` for an explicit rule, `purpose-limitation` for the default principle. */
  basis: "deny" | "purpose-limitation";
  /** The labels that broke the rule. */
  labels: L[];
  /** The purposes of the use that broke it. */
  purposes: string[];
  /** One sentence, naming categories and purposes only. */
  reason: string;
}

export interface Evaluator {
  evaluate<L extends LabelLike>(labels: readonly L[], use: UseContext): Verdict<L>[];
}

/**
 * Checks a use or share against the policy, label by label:
 * 1. every matching `deny` rule is a violation, whatever else allows it;
 * 2. a matching `allow` rule exempts the label from purpose limitation;
 * 3. otherwise the use's purpose must lie under a purpose the data was collected for, or
 *    under a purpose declared compatible with one of them.
 */
export function createEvaluator(policy: Policy): Evaluator {
  const deny = policy.rules.filter((r) => r.effect === "deny");
  // A shadow allow rule is only being tried out: it must not exempt anything yet.
  const allow = policy.rules.filter((r) => r.effect === "allow" && r.mode === "enforce");
  const pl = policy.purposeLimitation;

  function matches(rule: Rule, label: LabelLike, purpose: string, use: UseContext): boolean {
    const m = rule.match;
    if (m.kinds ? !m.kinds.includes(use.kind) : false) return false;
    if (m.categories && !coveredByAny(m.categories, label.category)) return false;
    if (m.collectedFor && !label.collectedFor.some((c) => coveredByAny(m.collectedFor as string[], c))) return false;
    if (m.usedFor && !coveredByAny(m.usedFor, purpose)) return false;
    if (m.subjects && !coveredByAny(m.subjects, label.dataSubject) && !coveredByAny(m.subjects, use.dataSubject)) return false;
    if (m.services && !m.services.includes(use.service)) return false;
    if (m.recipients && m.recipients !== RecipientScope.any) {
      if (use.kind !== "SHARE" || !use.recipient) return false;
      if (use.recipient.external !== (m.recipients === RecipientScope.external)) return false;
    }
    return true;
  }

  function permitted(label: LabelLike, purpose: string): boolean {
    for (const collected of label.collectedFor) {
      if (coveredByAny([collected], purpose)) return true;
      for (const c of policy.compatible) {
        if (coveredByAny(c.collectedFor, collected) && coveredByAny(c.usedFor, purpose)) return true;
      }
    }
    return false;
  }

  return {
    evaluate<L extends LabelLike>(labels: readonly L[], use: UseContext): Verdict<L>[] {
      const found = new Map<string, Verdict<L>>();
      const add = (rule: { id: string; severity: Severity; mode: RuleMode }, basis: Verdict<L>["basis"], label: L, purpose: string) => {
        let v = found.get(rule.id);
        if (!v) {
          v = { ruleId: rule.id, severity: rule.severity, mode: rule.mode, basis, labels: [], purposes: [], reason: "" };
          found.set(rule.id, v);
        }
        if (!v.labels.includes(label)) v.labels.push(label);
        if (!v.purposes.includes(purpose)) v.purposes.push(purpose);
      };
      for (const label of labels) {
        for (const purpose of use.purposes) {
          for (const rule of deny) if (matches(rule, label, purpose, use)) add(rule, "deny", label, purpose);
          if (!pl.enabled) continue;
          if (allow.some((rule) => matches(rule, label, purpose, use))) continue;
          if (!permitted(label, purpose)) add(pl, "purpose-limitation", label, purpose);
        }
      }
      for (const v of found.values()) {
        inStableOrder(v, use.purposes);
        v.reason = describeVerdict(v, use);
      }
      return [...found.values()];
    },
  };
}

/**
 * Puts a verdict's labels and purposes in a stable order, whatever order the lineage handed the
 * labels over in: labels by id, purposes as the use declared them. The SQL replay orders its
 * verdicts with this too, so both evaluators write the same rows.
 */
export function inStableOrder(v: Pick<Verdict<LabelLike>, "labels" | "purposes">, declared: readonly string[]): void {
  v.labels.sort((a, b) => ((a.id ?? "") < (b.id ?? "") ? -1 : (a.id ?? "") > (b.id ?? "") ? 1 : 0));
  const found = new Set(v.purposes);
  v.purposes = [...new Set(declared)].filter((p) => found.has(p));
}

/** The verdict's reason: one sentence naming categories and purposes only. */
export function describeVerdict(v: Pick<Verdict<LabelLike>, "labels" | "purposes">, use: Pick<UseContext, "kind" | "recipient">): string {
  const categories = [...new Set(v.labels.map((l) => l.category))].sort().join(", ");
  const collected = [...new Set(v.labels.flatMap((l) => l.collectedFor))].sort().join(", ");
  const verb = use.kind === "SHARE" ? `shared${use.recipient?.external ? " externally" : ""} for` : "used for";
  return `${categories} collected for ${collected} ${verb} ${v.purposes.join(", ")}`;
}
