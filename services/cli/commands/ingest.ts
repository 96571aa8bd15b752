import { createEventBuilder, createPseudonymizer } from "../../emitter/index.ts";
import { ingestFiles } from "../../ingest/index.ts";
import type { AppConfig } from "../../config/index.ts";
import { args, out, UsageError } from "../args.ts";
import { openAuditor, requireHmacKey } from "../context.ts";
import { createProgress } from "../progress.ts";

export async function run(argv: string[], config: AppConfig): Promise<number> {
  const { values, positionals } = args(argv, { json: { type: "boolean" } }, true);
  if (positionals.length === 0) throw new UsageError("ingest needs at least one file (Avro container or NDJSON)");
  const ctx = await openAuditor(config);
  try {
    let builder: ReturnType<typeof createEventBuilder> | undefined;
    const progress = createProgress("records", 0, process.stderr, true);
    const result = await ingestFiles(positionals, {
      processor: ctx.processor,
      codec: ctx.codec,
      openLineage: ctx.openLineage,
      buildEvent: () => {
        builder ??= createEventBuilder({ pseudonymize: lazyPseudonymizer(config), pseudonymKeyId: "default" });
        return builder;
      },
      onProgress: (_file, records) => progress.update(records),
      onRejected: (r) => process.stderr.write(`lineage-audit: ${r.source}: ${r.reason} (dead-lettered)\n`),
    });
    const n = (v: number) => v.toLocaleString("en-US");
    if (values.json) out(JSON.stringify(result));
    else
      out(
        `ingested ${n(result.accepted)} of ${n(result.records)} records from ${result.files} file(s): ${result.violations} violations, ${result.rejected} rejected`,
      );
    return result.rejected > 0 ? 1 : 0;
  } finally {
    await ctx.close();
  }
}

/** The key is only needed when a line carries raw identifiers. */
function lazyPseudonymizer(config: AppConfig): (raw: string) => string {
  let p: ((raw: string) => string) | undefined;
  return (raw) => {
    p ??= createPseudonymizer(requireHmacKey(config));
    return p(raw);
  };
}
