// lineage-audit command line: the dispatcher. The only place that reads process.env and argv;
// each command lives in commands/<name>.ts and is loaded only when it runs.
import { readFileSync } from "node:fs";
import { LineageAuditError } from "../errors/errors.ts";
import { debugEnabled, parseConfig } from "../config/index.ts";
import { UsageError } from "./args.ts";
import { COMMANDS, usage } from "./commands/index.ts";

const HELP = new Set(["--help", "-h", "help"]);

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || HELP.has(name)) {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) throw new UsageError(`unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(", ")}; see lineage-audit --help)`);
  if (rest.some((a) => a === "--help" || a === "-h")) {
    process.stdout.write(usage(name));
    return 0;
  }
  const config = parseConfig(env);
  const { run } = await command.load();
  return run(rest, config);
}

/** The package's version, from its package.json (two levels up, from services/cli or dist/cli). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

/** One clear line on stderr; the stack only with LINEAGE_AUDIT_DEBUG=1. */
export function reportError(error: unknown, env: NodeJS.ProcessEnv): number {
  const debug = debugEnabled(env);
  if (error instanceof LineageAuditError) {
    process.stderr.write(`lineage-audit: ${error.message.split("\n")[0]}\n`);
    if (debug) process.stderr.write(`${String(error.stack)}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
  const message = (error as Error | undefined)?.message?.split("\n")[0] ?? String(error);
  process.stderr.write(`lineage-audit: internal error: ${message} (run with LINEAGE_AUDIT_DEBUG=1 for details and report it)\n`);
  if (debug) process.stderr.write(`${String((error as Error | undefined)?.stack)}\n`);
  return 1;
}
