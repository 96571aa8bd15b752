import { createPseudonymizer } from "../../emitter/index.ts";
import { subjectHistory, subjectViolations } from "../../store/index.ts";
import { PSEUDONYM_PATTERN } from "../../codec/index.ts";
import type { AppConfig } from "../../config/index.ts";
import { args, out, UsageError } from "../args.ts";
import { openAuditor, requireHmacKey } from "../context.ts";
import { storedTime } from "../format.ts";

export async function run(argv: string[], config: AppConfig): Promise<number> {
  const { values, positionals } = args(argv, { json: { type: "boolean" }, pseudonymous: { type: "boolean" } }, true);
  if (positionals.length !== 1) throw new UsageError("subject takes one identifier, e.g. lineage-audit subject alice@example.com");
  const raw = positionals[0] as string;
  // The raw identifier is pseudonymised exactly as the emitters do; it is never stored or printed.
  const id = values.pseudonymous ? raw : createPseudonymizer(requireHmacKey(config))(raw);
  if (values.pseudonymous && !PSEUDONYM_PATTERN.test(id)) throw new UsageError("--pseudonymous takes a 32-hex-digit pseudonym");
  const ctx = await openAuditor(config);
  try {
    const history = await subjectHistory(ctx.store, id);
    const violations = history.length === 0 ? [] : await subjectViolations(ctx.store, ctx.policy, id);
    if (values.json) {
      out(JSON.stringify({ subject: id, events: history, violations }, null, 2));
      return 0;
    }
    if (history.length === 0) {
      out(`nothing stored concerns subject ${id}`);
      return 0;
    }
    out(`subject ${id}: ${history.length} events`);
    for (const h of history) {
      const what =
        h.kind === "COLLECT"
          ? `collected ${h.categories.join(", ")} for ${h.purposes.join(", ")}`
          : `${h.kind.toLowerCase()} for ${h.purposes.join(", ") || "-"}`;
      const flag = h.violations.length > 0 ? `   VIOLATION: ${h.violations.join(", ")}` : "";
      out(
        `  ${h.occurredAt}  ${h.kind.padEnd(7)} ${h.service} (${h.job})  ${h.fields.join(", ") || h.datasets.join(", ")}  ${what}${h.recipient ? ` to ${h.recipient}` : ""}${flag}`,
      );
    }
    if (violations.length > 0) out("\nViolations, and the evidence for this person:");
    for (const v of violations) {
      const verdict = v.exact ? "EXACTLY AFFECTED" : `possibly affected only (${v.reason ?? "?"})`;
      out(
        `  ${storedTime(v.occurredAt)}  ${v.kind} ${v.eventId}${v.wholeTable ? " (names nobody: whole table)" : ""}  rule ${v.ruleId}: ${verdict}`,
      );
      for (const e of v.evidence) {
        out(
          e.collected
            ? `      collected ${storedTime(Date.parse(e.collected.occurredAt))}  ${e.origin} [${e.category}; for ${e.collectedFor.join(", ")}] by ${e.collected.service} (${e.collected.job}), event ${e.collected.eventId}`
            : `      declared at ${e.origin} [${e.category}; for ${e.collectedFor.join(", ")}] by a collection naming nobody (no per-person evidence)`,
        );
        for (const h of e.hops)
          out(`      ⇒ ${h.transform ?? h.kind} → ${h.dataset}#${h.field} by ${h.service} (${h.job}), from ${storedTime(h.occurredAt)}`);
      }
    }
    return 0;
  } finally {
    await ctx.close();
  }
}
