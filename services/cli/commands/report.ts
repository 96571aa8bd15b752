import { writeFileSync } from "node:fs";
import { buildReport, renderHtml, renderJson, renderMarkdown } from "../../report/index.ts";
import type { AppConfig } from "../../config/index.ts";
import { args, dateFlag, out, RULE_WINDOW_FLAGS, text, UsageError } from "../args.ts";
import { openAuditor } from "../context.ts";
import { refreshProgress } from "../progress.ts";

const FORMATS = { md: renderMarkdown, json: renderJson, html: renderHtml } as const;

export async function run(argv: string[], config: AppConfig): Promise<number> {
  const { values } = args(argv, { ...RULE_WINDOW_FLAGS, format: { type: "string" }, output: { type: "string", short: "o" } }, false);
  const rule = text(values, "rule");
  if (!rule) throw new UsageError("report needs --rule ID");
  const format = text(values, "format") ?? "md";
  if (!Object.hasOwn(FORMATS, format)) throw new UsageError(`--format must be md, json or html, not '${format}'`);
  const from = dateFlag(text(values, "from"), "--from");
  const to = dateFlag(text(values, "to"), "--to");
  const ctx = await openAuditor(config);
  try {
    const known = [ctx.policy.purposeLimitation, ...ctx.policy.rules];
    const found = known.find((r) => r.id === rule);
    if (!found) throw new UsageError(`no rule '${rule}' in ${ctx.policy.source} (rules: ${known.map((r) => r.id).join(", ")})`);
    const description =
      "description" in found ? found.description : "Data used outside the purposes it was collected for (purpose limitation).";
    const progress = refreshProgress(false);
    const data = await buildReport(
      ctx.store,
      ctx.policy,
      { ruleId: rule, ...(from ? { from } : {}), ...(to ? { to } : {}) },
      { ...found, description },
      progress,
    );
    progress.finish();
    const rendered = FORMATS[format as keyof typeof FORMATS](data);
    const file = text(values, "output");
    if (file) {
      writeFileSync(file, rendered);
      out(`wrote ${file}`);
    } else {
      process.stdout.write(rendered.endsWith("\n") ? rendered : `${rendered}\n`);
    }
    return 0;
  } finally {
    await ctx.close();
  }
}
