export { parsePolicy } from "./parse.ts";
export { loadPolicy, DEFAULT_POLICY_PATH } from "./policy.ts";
export { createEvaluator, describeVerdict, inStableOrder } from "./evaluate.ts";
export { compilePolicy, CompiledColumns, MAX_COMPILED_BYTES, literal as sqlLiteral } from "./compile.ts";
export type { CompiledPolicy, CompiledRule } from "./compile.ts";
export type { Evaluator, LabelLike, UseContext, Verdict } from "./evaluate.ts";
export { Severity, SEVERITIES, RuleMode, RecipientScope } from "./types.ts";
export type { Policy, Rule, RuleMatch, Compatibility, Declassification, PurposeLimitation } from "./types.ts";
