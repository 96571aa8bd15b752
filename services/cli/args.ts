// Flag parsing shared by the commands. Light on purpose: the dispatcher loads it for every run.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ConfigError } from "../errors/errors.ts";
import { TIME_FORMATS, parseTime } from "../codec/time.ts";

/** A command line the user can fix: exit code 2. */
export class UsageError extends ConfigError {}

export type Flags = Record<string, string | boolean | undefined>;

/** A command's flags (strict: unknown flags are refused with one line). */
export function args(
  argv: string[],
  options: ParseArgsConfig["options"],
  allowPositionals: boolean,
): { values: Flags; positionals: string[] } {
  try {
    const parsed = parseArgs({ args: argv, options, allowPositionals, strict: true });
    return { values: parsed.values, positionals: parsed.positionals };
  } catch (cause) {
    throw new UsageError(`${(cause as Error).message.split("\n")[0]} (see lineage-audit --help)`, { cause });
  }
}

/** The flags of the commands that answer about one rule over a time window. */
export const RULE_WINDOW_FLAGS = {
  rule: { type: "string" },
  from: { type: "string" },
  to: { type: "string" },
} as const satisfies ParseArgsConfig["options"];

/** A string flag's value, or undefined. */
export const text = (values: Flags, flag: string): string | undefined => values[flag] as string | undefined;

export function positiveInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value.replaceAll("_", ""));
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag} must be a positive whole number, not '${value}'`);
  return n;
}

export function portFlag(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port must be a port number (0 picks a free one), not '${value}'`);
  return n;
}

/** A --from/--to flag as an ISO-8601 UTC instant, read by the one time parser (no offset = UTC). */
export function dateFlag(value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  const ms = parseTime(value);
  if (ms === undefined) throw new UsageError(`${flag} must be a date or date-time: ${TIME_FORMATS}; not '${value}'`);
  return new Date(ms).toISOString();
}

/** One line of a command's answer on stdout. */
export const out = (line: string): void => void process.stdout.write(`${line}\n`);
