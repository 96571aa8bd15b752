import { randomBytes } from "node:crypto";
import { ConfigError } from "../errors/index.ts";
import { createEventCodec, loadEventSchemas, type EventCodec } from "../codec/index.ts";
import { loadFideslangTaxonomy, type Taxonomy } from "../taxonomy/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy, type Policy } from "../rules/index.ts";
import { openStore, type Store, type StoreOptions } from "../store/index.ts";
import { createProcessor, type Processor } from "../processor/index.ts";

/** Everything the commands read from the environment, parsed once (in main.ts). */
export interface AppConfig {
  store: StoreOptions;
  /** Rules file. @default rules/default.yaml */
  rulesPath: string;
  /** Pseudonymisation key, when configured. */
  hmacKey?: string;
  /** Port for `serve`. @default 8787 */
  port: number;
  /** Bearer token `serve` requires on /v1/events, when set. */
  ingestToken?: string;
}

export function parseConfig(env: NodeJS.ProcessEnv): AppConfig {
  const port = env["LINEAGE_AUDIT_PORT"] ? Number(env["LINEAGE_AUDIT_PORT"]) : 8787;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError("LINEAGE_AUDIT_PORT must be a port number (0-65535)");
  }
  const store: StoreOptions = {};
  if (env["CLICKHOUSE_URL"]) store.url = env["CLICKHOUSE_URL"];
  if (env["CLICKHOUSE_USER"]) store.username = env["CLICKHOUSE_USER"];
  if (env["CLICKHOUSE_PASSWORD"] !== undefined) store.password = env["CLICKHOUSE_PASSWORD"];
  if (env["LINEAGE_AUDIT_DATA"]) store.path = env["LINEAGE_AUDIT_DATA"];
  if (env["LINEAGE_AUDIT_DATABASE"]) store.database = env["LINEAGE_AUDIT_DATABASE"];
  const config: AppConfig = { store, rulesPath: env["LINEAGE_AUDIT_RULES"] ?? DEFAULT_POLICY_PATH, port };
  if (env["LINEAGE_AUDIT_HMAC_KEY"]) config.hmacKey = env["LINEAGE_AUDIT_HMAC_KEY"];
  if (env["LINEAGE_AUDIT_INGEST_TOKEN"]) config.ingestToken = env["LINEAGE_AUDIT_INGEST_TOKEN"];
  return config;
}

export interface AuditorContext {
  codec: EventCodec;
  taxonomy: Taxonomy;
  policy: Policy;
  store: Store;
  processor: Processor;
  close(): Promise<void>;
}

/** Opens the store (migrating it), loads taxonomy and rules, and rebuilds lineage from stored facts. */
export async function openAuditor(config: AppConfig, overrides: { database?: string } = {}): Promise<AuditorContext> {
  const taxonomy = loadFideslangTaxonomy();
  const policy = loadPolicy(config.rulesPath, taxonomy);
  const codec = createEventCodec(loadEventSchemas());
  const store = await openStore({ ...config.store, ...overrides });
  try {
    await store.migrate();
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
    await processor.restore(store.lineageFacts());
    return { codec, taxonomy, policy, store, processor, close: () => store.close() };
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** The configured key, or for the demo a fresh random one (pseudonyms then differ per run). */
export function hmacKeyOrEphemeral(config: AppConfig): string {
  return config.hmacKey ?? randomBytes(32).toString("hex");
}

export function requireHmacKey(config: AppConfig): string {
  if (!config.hmacKey) {
    throw new ConfigError(
      "LINEAGE_AUDIT_HMAC_KEY is not set: raw subject identifiers must be pseudonymised with your organisation's key (at least 32 bytes, e.g. openssl rand -hex 32)",
    );
  }
  return config.hmacKey;
}
