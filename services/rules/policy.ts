import { readFileSync } from "node:fs";
import { RuleError } from "../errors/index.ts";
import type { Taxonomy } from "../taxonomy/index.ts";
import { parsePolicy } from "./parse.ts";
import type { Policy } from "./types.ts";
import { defaults } from "../config/index.ts";

/** The shipped default policy, which catches the 2019 misuse of security contact data for ads. */
export const DEFAULT_POLICY_PATH = defaults.rulesPath;

/** Reads and validates a rules file; a missing or unreadable file is a RuleError naming it. */
export function loadPolicy(path: string, taxonomy: Taxonomy): Policy {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? "unreadable";
    throw new RuleError(`${path}: cannot read rules file (${code})`, { cause, context: { file: path } });
  }
  return parsePolicy(text, path, taxonomy);
}
