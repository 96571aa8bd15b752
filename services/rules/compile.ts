import { createHash } from "node:crypto";
import { RuleError } from "../errors/index.ts";
import { RecipientScope, type Policy, type Rule, type RuleMatch, type RuleMode, type Severity } from "./types.ts";

/**
 * The columns a compiled policy reads, one row per (label reaching a use, purpose of the use):
 * the use's kind, service, data subject and recipient, the label's category, collection
 * purposes and data subject, and the purpose.
 */
export const CompiledColumns = {
  kind: "u_kind",
  service: "u_service",
  useSubject: "u_data_subject",
  recipient: "u_recipient",
  recipientExternal: "u_recipient_external",
  category: "l_category",
  collectedFor: "l_collected_for",
  labelSubject: "l_data_subject",
  purpose: "u_purpose",
} as const;

export interface CompiledRule {
  id: string;
  basis: "deny" | "purpose-limitation";
  severity: Severity;
  mode: RuleMode;
}

export interface CompiledPolicy {
  /**
   * A ClickHouse expression of type Array(String): the ids of the rules that one (label, purpose)
   * pair of a use breaks, deny rules first, in the policy's order, then purpose limitation.
   * It reads only `CompiledColumns`.
   */
  ruleIds: string;
  /** What each rule id the expression can yield stands for. */
  rules: ReadonlyMap<string, CompiledRule>;
  /** SHA-256 of the expression (names the replay's working data). */
  digest: string;
}

/** The match keys the compiler knows how to express; a rule naming any other is refused. */
const COMPILED_MATCH_KEYS: readonly (keyof RuleMatch)[] = [
  "categories",
  "collectedFor",
  "usedFor",
  "subjects",
  "kinds",
  "recipients",
  "services",
];

/**
 * The longest expression a policy may compile to. ClickHouse refuses a query over its
 * `max_query_size` (256 KiB by default), and the expression sits in a query with room to spare.
 */
export const MAX_COMPILED_BYTES = 192 * 1024;

const C = CompiledColumns;

/**
 * Compiles a policy's rule evaluation to one ClickHouse expression, the same decision
 * `createEvaluator` makes label by label and purpose by purpose:
 * 1. every matching `deny` rule is broken, whatever else allows it;
 * 2. a matching enforced `allow` rule exempts the pair from purpose limitation;
 * 3. otherwise the purpose must lie under a purpose the data was collected for, or under one
 *    declared compatible with it.
 * Declassification is not in the expression: it changes labels as they travel, and the lineage
 * core applies it before the labels reach the table the expression reads.
 * What it cannot express is refused with a RuleError naming the file, line and rule.
 */
export function compilePolicy(policy: Policy): CompiledPolicy {
  const rules = new Map<string, CompiledRule>();
  const parts: string[] = [];
  let largest = { id: policy.purposeLimitation.id, bytes: 0 };
  for (const rule of policy.rules) {
    checkExpressible(policy, rule);
    const bytes = Buffer.byteLength(matchExpression(rule.match));
    if (bytes > largest.bytes) largest = { id: rule.id, bytes };
    if (rule.effect !== "deny") continue;
    rules.set(rule.id, { id: rule.id, basis: "deny", severity: rule.severity, mode: rule.mode });
    parts.push(`if(${matchExpression(rule.match)}, ${literal(rule.id)}, '')`);
  }
  const pl = policy.purposeLimitation;
  if (pl.enabled) {
    checkId(policy, pl.id, pl.id);
    rules.set(pl.id, { id: pl.id, basis: "purpose-limitation", severity: pl.severity, mode: pl.mode });
    // A shadow allow rule is only being tried out: it must not exempt anything yet.
    const allows = policy.rules.filter((r) => r.effect === "allow" && r.mode === "enforce").map((r) => matchExpression(r.match));
    const exempt = allows.length > 0 ? `(${allows.join(" OR ")})` : "0";
    parts.push(`if(NOT ${exempt} AND NOT ${permittedExpression(policy)}, ${literal(pl.id)}, '')`);
  }
  const ruleIds = parts.length === 0 ? "CAST([], 'Array(String)')" : `arrayFilter(r -> r != '', [${parts.join(",\n  ")}])`;
  const size = Buffer.byteLength(ruleIds);
  if (size > MAX_COMPILED_BYTES) {
    refuse(
      policy,
      largest.id,
      `the rules compile to ${Math.ceil(size / 1024)} KiB of SQL, over the ${MAX_COMPILED_BYTES / 1024} KiB one query may hold (this rule is the largest part, ${Math.ceil(largest.bytes / 1024)} KiB); split the rules file and replay the parts one after another`,
    );
  }
  return { ruleIds, rules, digest: createHash("sha256").update(ruleIds).digest("hex") };
}

function refuse(policy: Policy, id: string, problem: string): never {
  const at = policy.locations?.[id];
  const where = at ? `${policy.source}:${at.line}:${at.column}` : policy.source;
  throw new RuleError(`${where}: rule '${id}' cannot be compiled to SQL: ${problem}`, {
    context: { file: policy.source, rule: id, ...(at ? { line: at.line, column: at.column } : {}) },
  });
}

function checkId(policy: Policy, id: string, what: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(id)) refuse(policy, what, "its id must be letters, digits, '.', '_' or '-'");
}

function checkExpressible(policy: Policy, rule: Rule): void {
  checkId(policy, rule.id, rule.id);
  if (rule.effect !== "deny" && rule.effect !== "allow") refuse(policy, rule.id, `effect '${String(rule.effect)}' is not deny or allow`);
  for (const key of Object.keys(rule.match)) {
    if (!COMPILED_MATCH_KEYS.includes(key as keyof RuleMatch)) {
      refuse(policy, rule.id, `match key '${key}' has no SQL form (the compiler knows ${COMPILED_MATCH_KEYS.join(", ")})`);
    }
  }
  const m = rule.match;
  for (const [key, list] of Object.entries({
    categories: m.categories,
    collectedFor: m.collectedFor,
    usedFor: m.usedFor,
    subjects: m.subjects,
    services: m.services,
  })) {
    if (list !== undefined && list.length === 0) refuse(policy, rule.id, `match.${key} is an empty list`);
  }
  if (m.kinds?.some((k) => k !== "USE" && k !== "SHARE")) refuse(policy, rule.id, "match.kinds must be USE or SHARE");
  if (m.recipients !== undefined && !Object.values(RecipientScope).includes(m.recipients)) {
    refuse(policy, rule.id, `match.recipients '${String(m.recipients)}' is not any, internal or external`);
  }
}

/** Whether the rule's match holds for the row's (label, purpose, use). */
function matchExpression(m: RuleMatch): string {
  const terms: string[] = [];
  if (m.kinds) terms.push(`${C.kind} IN (${m.kinds.map(literal).join(", ")})`);
  if (m.categories) terms.push(coveredByAny(m.categories, C.category));
  if (m.collectedFor) terms.push(`arrayExists(c -> ${coveredByAny(m.collectedFor, "c")}, ${C.collectedFor})`);
  if (m.usedFor) terms.push(coveredByAny(m.usedFor, C.purpose));
  if (m.subjects) terms.push(`(${coveredByAny(m.subjects, C.labelSubject)} OR ${coveredByAny(m.subjects, C.useSubject)})`);
  if (m.services) terms.push(`${C.service} IN (${m.services.map(literal).join(", ")})`);
  if (m.recipients && m.recipients !== RecipientScope.any) {
    terms.push(
      `(${C.kind} = 'SHARE' AND ${C.recipient} != '' AND ${C.recipientExternal} = ${m.recipients === RecipientScope.external ? 1 : 0})`,
    );
  }
  return terms.length === 0 ? "1" : `(${terms.join(" AND ")})`;
}

/** The purpose lies under a collection purpose, or under a purpose compatible with one. */
function permittedExpression(policy: Policy): string {
  const alternatives = [coversColumn("c", C.purpose)];
  for (const c of policy.compatible) alternatives.push(`(${coveredByAny(c.collectedFor, "c")} AND ${coveredByAny(c.usedFor, C.purpose)})`);
  return `arrayExists(c -> ${alternatives.join(" OR ")}, ${C.collectedFor})`;
}

/** `covers` (taxonomy.ts) of constant patterns over a column: equal, or under the pattern. */
export function coveredByAny(patterns: readonly string[], key: string): string {
  const terms: string[] = [];
  for (const pattern of patterns) {
    const p = pattern.endsWith(".*") ? pattern.slice(0, -2) : pattern;
    if (p === "*") return "1";
    terms.push(`${key} = ${literal(p)} OR startsWith(${key}, ${literal(`${p}.`)})`);
  }
  return `(${terms.join(" OR ")})`;
}

/** `covers` with the pattern a column too (a collection purpose covering the use's purpose). */
function coversColumn(pattern: string, key: string): string {
  const p = `if(endsWith(${pattern}, '.*'), substring(${pattern}, 1, length(${pattern}) - 2), ${pattern})`;
  return `(${p} = '*' OR ${key} = ${p} OR startsWith(${key}, concat(${p}, '.')))`;
}

/** A ClickHouse string literal. */
export function literal(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}
