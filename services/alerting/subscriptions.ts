import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { ConfigError } from "../errors/index.ts";
import { SEVERITIES, type Severity } from "../rules/index.ts";
import { parseSecret } from "./signing.ts";

/** Where alerts go, and which. */
export interface Subscription {
  id: string;
  url: string;
  /** Signing keys; more than one while a secret is rotated (each delivery carries every signature). */
  keys: Buffer[];
  enabled: boolean;
  /** Only these rules (all when absent). */
  rules?: string[];
  /** Only these severities (all when absent). */
  severities?: Severity[];
  /** Only violations by these services (all when absent). */
  services?: string[];
  /** Whether shadow-mode violations alert too. @default false */
  shadow: boolean;
  /** At most this many deliveries a minute to this endpoint. @default 60 */
  ratePerMinute: number;
  /** Per-request timeout. @default 5000 */
  timeoutMs: number;
}

export interface AlertingConfig {
  subscriptions: Subscription[];
  /** One alert per (rule, job run, window): the window's length. @default 3600000 (an hour) */
  windowMs: number;
}

/** Reads and checks a webhooks file (YAML or JSON); a problem is a ConfigError naming the file and entry. */
export function loadAlertingConfig(path: string): AlertingConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new ConfigError(`${path}: cannot read webhooks file (${(cause as NodeJS.ErrnoException).code ?? "unreadable"})`, { cause });
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (cause) {
    throw new ConfigError(`${path}: not valid YAML/JSON: ${(cause as Error).message.split("\n")[0]}`, { cause });
  }
  return parseAlertingConfig(doc, path);
}

export function parseAlertingConfig(doc: unknown, file: string): AlertingConfig {
  const fail = (where: string, problem: string): never => {
    throw new ConfigError(`${file}: ${where}: ${problem}`, { context: { file, where } });
  };
  if (!doc || typeof doc !== "object") fail("(file)", "must be a mapping with 'subscriptions'");
  const root = doc as Record<string, unknown>;
  const windowMinutes = root["windowMinutes"] ?? 60;
  if (typeof windowMinutes !== "number" || windowMinutes <= 0) fail("windowMinutes", "must be a positive number of minutes");
  const list = root["subscriptions"];
  if (!Array.isArray(list)) fail("subscriptions", "must be a list");
  const ids = new Set<string>();
  const subscriptions = (list as unknown[]).map((raw, i): Subscription => {
    const at = `subscriptions[${i}]`;
    if (!raw || typeof raw !== "object") fail(at, "must be a mapping");
    const s = raw as Record<string, unknown>;
    const known = ["id", "url", "secret", "secrets", "enabled", "rules", "severities", "services", "shadow", "ratePerMinute", "timeoutMs"];
    for (const k of Object.keys(s)) if (!known.includes(k)) fail(`${at}.${k}`, `unknown key (expected one of: ${known.join(", ")})`);
    const id = s["id"];
    if (typeof id !== "string" || !/^[A-Za-z0-9._-]+$/.test(id)) fail(`${at}.id`, "must be letters, digits, '.', '_' or '-'");
    if (ids.has(id as string)) fail(`${at}.id`, `duplicate id '${id as string}'`);
    ids.add(id as string);
    let url: URL | undefined;
    try {
      url = new URL(String(s["url"]));
    } catch {
      fail(`${at}.url`, "must be an http(s) URL");
    }
    if (url && url.protocol !== "https:" && url.protocol !== "http:") fail(`${at}.url`, "must be an http(s) URL");
    const secrets = s["secrets"] ?? (s["secret"] === undefined ? undefined : [s["secret"]]);
    if (!Array.isArray(secrets) || secrets.length === 0 || secrets.some((x) => typeof x !== "string"))
      fail(`${at}.secret`, "is required: 'secret: whsec_…' (or 'secrets: [...]' while rotating)");
    const keys = (secrets as string[]).map((secret, j) =>
      parseSecret(secret, `${file}: ${at}.secret${(secrets as string[]).length > 1 ? `s[${j}]` : ""}`),
    );
    const strings = (k: string): string[] | undefined => {
      const v = s[k];
      if (v === undefined) return undefined;
      if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) fail(`${at}.${k}`, "must be a list of strings");
      return v as string[];
    };
    const severities = strings("severities");
    severities?.forEach((sev) => {
      if (!SEVERITIES.includes(sev as Severity)) fail(`${at}.severities`, `'${sev}' is not one of ${SEVERITIES.join(", ")}`);
    });
    const number = (k: string, fallback: number): number => {
      const v = s[k] ?? fallback;
      if (typeof v !== "number" || !(v > 0)) fail(`${at}.${k}`, "must be a positive number");
      return v as number;
    };
    const sub: Subscription = {
      id: id as string,
      url: (url as URL).toString(),
      keys,
      enabled: s["enabled"] === undefined ? true : s["enabled"] === true,
      shadow: s["shadow"] === true,
      ratePerMinute: number("ratePerMinute", 60),
      timeoutMs: number("timeoutMs", 5000),
    };
    const rules = strings("rules");
    const services = strings("services");
    if (rules) sub.rules = rules;
    if (severities) sub.severities = severities as Severity[];
    if (services) sub.services = services;
    return sub;
  });
  return { subscriptions, windowMs: (windowMinutes as number) * 60_000 };
}
