import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { defaultKafkaProcessorOptions, type KafkaConfig } from "../kafka/index.ts";
import { defaultAnalystServerOptions, defaultIngestServerOptions } from "../api/index.ts";
import { ConfigError } from "../errors/index.ts";
import { createEventCodec, loadEventSchemas, type EventCodec } from "../codec/index.ts";
import { loadFideslangTaxonomy, type Taxonomy } from "../taxonomy/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy, type Policy } from "../rules/index.ts";
import { openStore, type Store, type StoreOptions } from "../store/index.ts";
import { createProcessor, defaultAuditorOptions, type Processor, type ProcessorConfig } from "../processor/index.ts";

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
  /** Set when KAFKA_BROKERS is: `serve` consumes the events topic as a member of `kafkaGroupId`. */
  kafka?: KafkaConfig;
  /** @default "lineage-audit" */
  kafkaGroupId: string;
  /** This instance's name in the group. @default "<hostname>-<pid>" */
  instanceId: string;
  /** LINEAGE_AUDIT_ANALYST_USER/_PASSWORD/_PORT: the read-only ClickHouse HTTP interface of `serve`. */
  analyst?: { user: string; password: string; port: number };
  /** LINEAGE_AUDIT_WEBHOOKS: the alert subscriptions file, when alerts are wanted. */
  webhooksPath?: string;
  /** KAFKA_SESSION_TIMEOUT_MS: how soon a dead instance's partitions move. @default 10000 */
  kafkaSessionTimeoutMs: number;
}

export function parseConfig(env: NodeJS.ProcessEnv): AppConfig {
  const port = env["LINEAGE_AUDIT_PORT"] ? Number(env["LINEAGE_AUDIT_PORT"]) : defaultIngestServerOptions.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError("LINEAGE_AUDIT_PORT must be a port number (0-65535)");
  }
  const store: StoreOptions = {};
  if (env["CLICKHOUSE_URL"]) store.url = env["CLICKHOUSE_URL"];
  if (env["CLICKHOUSE_USER"]) store.username = env["CLICKHOUSE_USER"];
  if (env["CLICKHOUSE_PASSWORD"] !== undefined) store.password = env["CLICKHOUSE_PASSWORD"];
  if (env["LINEAGE_AUDIT_DATA"]) store.path = env["LINEAGE_AUDIT_DATA"];
  if (env["LINEAGE_AUDIT_DATABASE"]) store.database = env["LINEAGE_AUDIT_DATABASE"];
  const config: AppConfig = {
    store,
    rulesPath: env["LINEAGE_AUDIT_RULES"] ?? DEFAULT_POLICY_PATH,
    port,
    kafkaGroupId: env["KAFKA_GROUP_ID"] ?? defaultKafkaProcessorOptions.groupId,
    instanceId: env["LINEAGE_AUDIT_INSTANCE_ID"] ?? `${hostname()}-${process.pid}`,
    kafkaSessionTimeoutMs: env["KAFKA_SESSION_TIMEOUT_MS"]
      ? Number(env["KAFKA_SESSION_TIMEOUT_MS"])
      : defaultKafkaProcessorOptions.sessionTimeoutMs,
  };
  if (!Number.isInteger(config.kafkaSessionTimeoutMs) || config.kafkaSessionTimeoutMs < 6000) {
    throw new ConfigError("KAFKA_SESSION_TIMEOUT_MS must be a whole number of milliseconds, at least 6000 (the broker's minimum)");
  }
  const kafka = parseKafka(env);
  if (kafka) config.kafka = kafka;
  if (env["LINEAGE_AUDIT_HMAC_KEY"]) config.hmacKey = env["LINEAGE_AUDIT_HMAC_KEY"];
  if (env["LINEAGE_AUDIT_INGEST_TOKEN"]) config.ingestToken = env["LINEAGE_AUDIT_INGEST_TOKEN"];
  if (env["LINEAGE_AUDIT_WEBHOOKS"]) config.webhooksPath = env["LINEAGE_AUDIT_WEBHOOKS"];
  if (env["LINEAGE_AUDIT_ANALYST_PASSWORD"]) {
    const analystPort = Number(env["LINEAGE_AUDIT_ANALYST_PORT"] ?? defaultAnalystServerOptions.port);
    if (!Number.isInteger(analystPort) || analystPort < 0 || analystPort > 65535)
      throw new ConfigError("LINEAGE_AUDIT_ANALYST_PORT must be a port number (0-65535)");
    config.analyst = {
      user: env["LINEAGE_AUDIT_ANALYST_USER"] ?? "analyst",
      password: env["LINEAGE_AUDIT_ANALYST_PASSWORD"],
      port: analystPort,
    };
  }
  return config;
}

function parseKafka(env: NodeJS.ProcessEnv): KafkaConfig | undefined {
  const brokers = env["KAFKA_BROKERS"];
  if (!brokers) return undefined;
  const list = brokers
    .split(",")
    .map((b) => b.trim())
    .filter(Boolean);
  if (list.length === 0 || list.some((b) => !/^[^\s:]+:\d+$/.test(b))) {
    throw new ConfigError("KAFKA_BROKERS must be a comma-separated list of host:port (e.g. 127.0.0.1:9092)");
  }
  const config: KafkaConfig = { brokers: list };
  if (env["KAFKA_CLIENT_ID"]) config.clientId = env["KAFKA_CLIENT_ID"];
  const topics: NonNullable<KafkaConfig["topics"]> = {};
  if (env["KAFKA_TOPIC_EVENTS"]) topics.events = env["KAFKA_TOPIC_EVENTS"];
  if (env["KAFKA_TOPIC_DLQ"]) topics.deadLetters = env["KAFKA_TOPIC_DLQ"];
  if (env["KAFKA_TOPIC_LINEAGE"]) topics.lineage = env["KAFKA_TOPIC_LINEAGE"];
  if (Object.keys(topics).length > 0) config.topics = topics;
  for (const [name, key] of [
    ["KAFKA_PARTITIONS", "partitions"],
    ["KAFKA_REPLICATION_FACTOR", "replicationFactor"],
  ] as const) {
    const v = env[name];
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${name} must be a whole number of at least 1`);
    config[key] = n;
  }
  const mechanism = env["KAFKA_SASL_MECHANISM"]?.toLowerCase();
  if (mechanism) {
    if (mechanism !== "plain" && mechanism !== "scram-sha-256" && mechanism !== "scram-sha-512") {
      throw new ConfigError("KAFKA_SASL_MECHANISM must be plain, scram-sha-256 or scram-sha-512");
    }
    const username = env["KAFKA_SASL_USERNAME"];
    const password = env["KAFKA_SASL_PASSWORD"];
    if (!username || password === undefined)
      throw new ConfigError("KAFKA_SASL_MECHANISM needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD");
    config.sasl = { mechanism, username, password };
  }
  const readPem = (name: string): string | undefined => {
    const path = env[name];
    if (!path) return undefined;
    try {
      return readFileSync(path, "utf8");
    } catch (cause) {
      throw new ConfigError(`${name}: cannot read ${path} (${(cause as NodeJS.ErrnoException).code ?? "unreadable"})`, { cause });
    }
  };
  const ca = readPem("KAFKA_SSL_CA_FILE");
  const cert = readPem("KAFKA_SSL_CERT_FILE");
  const key = readPem("KAFKA_SSL_KEY_FILE");
  if (env["KAFKA_SSL"] === "true" || ca || cert) {
    config.ssl = ca || cert ? { ...(ca ? { ca: [ca] } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) } : true;
  } else if (env["KAFKA_SSL"] !== undefined && env["KAFKA_SSL"] !== "false") {
    throw new ConfigError("KAFKA_SSL must be true or false");
  }
  return config;
}

/** The address `serve` listens on unless --host says otherwise. */
export const DEFAULT_BIND_HOST = "127.0.0.1";

/** The shortest ingest token or analyst password `serve` accepts when it listens beyond loopback. */
export const MIN_EXPOSED_SECRET_LENGTH = 16;

/** Whether `host` is an address only this machine can reach. */
export function isLoopback(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

/**
 * `serve` beyond loopback (e.g. 0.0.0.0 in a container) is reachable by anyone on the network: it
 * must not start without an ingest token, nor with the analyst interface on without a password.
 */
export function checkExposure(host: string, config: Pick<AppConfig, "ingestToken" | "analyst">): void {
  if (isLoopback(host)) return;
  const min = MIN_EXPOSED_SECRET_LENGTH;
  if (!config.ingestToken)
    throw new ConfigError(
      `refusing to listen on ${host} without LINEAGE_AUDIT_INGEST_TOKEN: anyone who reaches it could write events (set a token of at least ${min} characters, or listen on 127.0.0.1)`,
    );
  if (config.ingestToken.length < min)
    throw new ConfigError(`LINEAGE_AUDIT_INGEST_TOKEN must be at least ${min} characters when serve listens on ${host}`);
  if (config.analyst && config.analyst.password.length < min)
    throw new ConfigError(
      `refusing to open the analyst interface on ${host}: LINEAGE_AUDIT_ANALYST_PASSWORD must be at least ${min} characters there`,
    );
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
export async function openAuditor(
  config: AppConfig,
  overrides: { database?: string; alerts?: ProcessorConfig["alerts"] } = {},
): Promise<AuditorContext> {
  const taxonomy = loadFideslangTaxonomy();
  const policy = loadPolicy(config.rulesPath, taxonomy);
  const codec = createEventCodec(loadEventSchemas());
  const store = await openStore({ ...config.store, ...(overrides.database ? { database: overrides.database } : {}) });
  try {
    await store.migrate();
    const processor = createProcessor(
      { policy, taxonomy, codec, ...(overrides.alerts ? { alerts: overrides.alerts } : {}) },
      // The lineage graph is a bounded cache of the store: memory stays flat however long it runs.
      { sink: store, lineage: store },
    );
    await processor.restore(store.lineageFacts(), await store.recentUses(defaultAuditorOptions.recheckWindow));
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
