import { affectedAnswer, fastAffectedCount } from "../../store/index.ts";
import { isWholeDay } from "../../codec/index.ts";
import { TaxonomyKind } from "../../taxonomy/index.ts";
import type { AppConfig } from "../../config/index.ts";
import { args, dateFlag, out, RULE_WINDOW_FLAGS, text, UsageError } from "../args.ts";
import { openAuditor } from "../context.ts";
import { formatSummary } from "../format.ts";
import { refreshProgress } from "../progress.ts";

export async function run(argv: string[], config: AppConfig): Promise<number> {
  const { values } = args(
    argv,
    { ...RULE_WINDOW_FLAGS, category: { type: "string" }, json: { type: "boolean" }, fast: { type: "boolean" } },
    false,
  );
  const rule = text(values, "rule");
  if (!rule) throw new UsageError("affected needs --rule ID (e.g. --rule security-contact-not-for-marketing)");
  const from = dateFlag(text(values, "from"), "--from");
  const to = dateFlag(text(values, "to"), "--to");
  const category = text(values, "category");
  const ctx = await openAuditor(config);
  try {
    const known = [ctx.policy.purposeLimitation.id, ...ctx.policy.rules.map((r) => r.id)];
    if (!known.includes(rule)) throw new UsageError(`no rule '${rule}' in ${ctx.policy.source} (rules: ${known.join(", ")})`);
    if (category !== undefined && !ctx.taxonomy.has(TaxonomyKind.dataCategory, category)) {
      const hint = ctx.taxonomy.suggest(TaxonomyKind.dataCategory, category)[0];
      throw new UsageError(`--category '${category}' is not a fideslang data category${hint ? ` (did you mean '${hint}'?)` : ""}`);
    }
    const query = { ruleId: rule, ...(from ? { from } : {}), ...(to ? { to } : {}), ...(category ? { category } : {}) };
    if (values.fast) {
      // Whole days, from the daily aggregate views: the quick answer, exact and approximate.
      for (const [flag, at] of [
        ["--from", from],
        ["--to", to],
      ] as const)
        if (at !== undefined && !isWholeDay(Date.parse(at)))
          throw new UsageError(`--fast counts whole UTC days: ${flag} must be a date (e.g. 2019-01-31) or midnight UTC, not ${at}`);
      const fast = await fastAffectedCount(ctx.store, query);
      const n = (v: number) => v.toLocaleString("en-US");
      out(
        values.json
          ? JSON.stringify(fast, null, 2)
          : `rule ${rule}, ${fast.window.from} to ${fast.window.to} (whole days, UTC): ${n(fast.exact)} subjects (exact), ${n(fast.approximate)} (approximate), ${n(fast.records)} records (exact)`,
      );
      return 0;
    }
    const progress = refreshProgress(values.json === true);
    const answer = await affectedAnswer(ctx.store, ctx.policy, query, progress);
    progress.finish();
    out(values.json ? JSON.stringify(answer, null, 2) : formatSummary(answer));
    return 0;
  } finally {
    await ctx.close();
  }
}
