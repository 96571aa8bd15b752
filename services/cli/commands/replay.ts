import { readFileSync } from "node:fs";
import { loadFideslangTaxonomy } from "../../taxonomy/index.ts";
import { compilePolicy, loadPolicy } from "../../rules/index.ts";
import { replayRules, replayRulesSql } from "../../replay/index.ts";
import { openStore } from "../../store/index.ts";
import type { AppConfig } from "../../config/index.ts";
import { args, dateFlag, out, text, UsageError } from "../args.ts";
import { formatDryRun } from "../format.ts";
import { createProgress, type Progress } from "../progress.ts";

export async function run(argv: string[], config: AppConfig): Promise<number> {
  const { values } = args(
    argv,
    {
      rules: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      json: { type: "boolean" },
      engine: { type: "string" },
      "dry-run": { type: "boolean" },
    },
    false,
  );
  const rulesFile = text(values, "rules");
  if (!rulesFile) throw new UsageError("replay needs --rules FILE (the new or changed rules to evaluate over the stored history)");
  const engine = text(values, "engine") ?? "sql";
  if (engine !== "sql" && engine !== "stream") throw new UsageError(`--engine must be sql or stream, not '${engine}'`);
  const dryRun = values["dry-run"] === true;
  if (dryRun && engine !== "sql") throw new UsageError("--dry-run prints the compiled SQL: it needs --engine sql");
  const from = dateFlag(text(values, "from"), "--from");
  const to = dateFlag(text(values, "to"), "--to");
  // The rules are read and compiled before the store is opened: a file the compiler cannot
  // express fails here, with its line, and nothing is written.
  const taxonomy = loadFideslangTaxonomy();
  const policy = loadPolicy(rulesFile, taxonomy);
  if (engine === "sql") compilePolicy(policy);
  const rulesText = readFileSync(rulesFile, "utf8");
  const store = await openStore(config.store);
  let stop = false;
  const onSignal = () => {
    stop = true;
  };
  process.once("SIGINT", onSignal);
  try {
    await store.migrate();
    let progress: Progress | undefined;
    const common = {
      policy,
      rulesText,
      ...(from ? { from: Date.parse(from) } : {}),
      ...(to ? { to: Date.parse(to) } : {}),
      onProgress: (done: number, all: number) => {
        progress ??= createProgress(dryRun ? "dry run" : "replay", all, process.stderr, values.json === true);
        progress.update(done);
      },
      shouldStop: () => stop,
    };
    const sqlResult = engine === "sql" ? await replayRulesSql(store, { ...common, dryRun }) : undefined;
    const result = sqlResult ?? (await replayRules(store, { ...common, taxonomy }));
    progress?.finish();
    const n = (v: number) => v.toLocaleString("en-US");
    if (values.json) out(JSON.stringify(result));
    else if (dryRun && sqlResult) out(formatDryRun(rulesFile, sqlResult));
    else if (result.alreadyDone) out(`replay ${result.replayId} of ${rulesFile} already finished for this window; nothing to do`);
    else if (!result.done)
      out(`replay ${result.replayId} interrupted after ${n(result.events)} events; run the same command again to resume`);
    else
      out(
        `replayed ${rulesFile} over ${n(result.events)} stored uses and shares${result.resumed ? " (resumed)" : ""}: ${n(result.violations)} violations written, marked retroactive`,
      );
    return result.done || dryRun ? 0 : 130;
  } finally {
    process.off("SIGINT", onSignal);
    await store.close();
  }
}
