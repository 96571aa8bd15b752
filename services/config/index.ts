// The one configuration module: every setting the environment gives, its default and its
// documentation, parsed once (by the CLI's dispatcher). The README's configuration tables are
// generated from `settings` (`npm run docs:config`), and a test fails when they disagree.
// A leaf: it imports no other module of the project at run time, so `--help` stays fast.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../errors/errors.ts";
import type { KafkaConfig } from "../kafka/client.ts";
import type { StoreOptions } from "../store/store.ts";

/** Every default, once. Modules take theirs from here; `settings` documents them. */
export const defaults = {
  /** The embedded store's directory (chDB). */
  storePath: ".lineage-audit/store",
  /** The database holding the tables. */
  database: "lineage",
  /** The rules file shipped with the package. */
  rulesPath: fileURLToPath(new URL("../../rules/default.yaml", import.meta.url)),
  /** The address `serve` listens on unless --host says otherwise. */
  host: "127.0.0.1",
  /** `serve`'s event intake. */
  port: 8787,
  /** `serve`'s read-only ClickHouse HTTP interface. */
  analystPort: 8124,
  analystUser: "analyst",
  kafkaClientId: "lineage-audit",
  kafkaGroupId: "lineage-audit",
  /** How soon a dead instance's partitions move to the others. */
  kafkaSessionTimeoutMs: 10_000,
  /** Partitions of the events topic the auditor creates. */
  kafkaPartitions: 6,
  kafkaReplicationFactor: 1,
  kafkaTopics: { events: "lineage-audit.events", deadLetters: "lineage-audit.events.dlq", lineage: "lineage-audit.lineage" },
  /** Recent uses a restarted processor checks again when late lineage arrives. */
  recheckWindow: 20_000,
  /** How often at most `serve`'s console starts bringing the exact model up to date (in the background). */
  modelRefreshMs: 30_000,
  /** How `serve` reports what adapters see. */
  log: "text",
  /** OpenTelemetry's service name for `serve`'s spans and metrics. */
  otelServiceName: "lineage-audit",
  /** How often `serve` exports metrics over OTLP. */
  otelMetricExportIntervalMs: 60_000,
} as const;

export type LogFormat = "text" | "json";

/** Everything the commands read from the environment, parsed once. */
export interface AppConfig {
  store: StoreOptions;
  rulesPath: string;
  /** Pseudonymisation key, when configured. */
  hmacKey?: string;
  port: number;
  /** Bearer token `serve` requires on /v1/events, when set. */
  ingestToken?: string;
  /** Set when KAFKA_BROKERS is: `serve` consumes the events topic as a member of `kafkaGroupId`. */
  kafka?: KafkaConfig;
  kafkaGroupId: string;
  /** This instance's name in the group: `<hostname>-<pid>` unless set. */
  instanceId: string;
  kafkaSessionTimeoutMs: number;
  /** How often at most the console starts a refresh of the exact model. */
  modelRefreshMs: number;
  /** The read-only ClickHouse HTTP interface of `serve`, when its password is set. */
  analyst?: { user: string; password: string; port: number };
  /** The alert subscriptions file, when alerts are wanted. */
  webhooksPath?: string;
  /** Data categories for OpenLineage datasets whose producers send no tags (docs/openlineage.md). */
  classificationPath?: string;
  /** Where `serve` journals OpenLineage RunEvents it has answered and not yet stored; unset: `openlineage-journal` in the store's directory. */
  openLineageJournalPath?: string;
  /** The receiver's signing secret for `webhooks test`, when set. */
  webhookSecret?: string;
  log: LogFormat;
  /** Set when an OTLP endpoint is: `serve` registers the OpenTelemetry SDK (which reads the other OTEL_* variables itself). */
  telemetry?: { serviceName: string; metricExportIntervalMs: number };
  /** Stacks with errors. */
  debug: boolean;
}

/** One row of the README's configuration tables. */
export interface SettingDoc {
  env: readonly string[];
  /** The defaults, as the table shows them (one per variable, or one for all). */
  shown: string;
  doc: string;
  section: "general" | "kafka";
}

const code = (...values: (string | number)[]) => values.map((v) => `\`${v}\``).join(", ");

export const settings: readonly SettingDoc[] = [
  { section: "general", env: ["LINEAGE_AUDIT_DATA"], shown: code(defaults.storePath), doc: "embedded store directory" },
  { section: "general", env: ["LINEAGE_AUDIT_DATABASE"], shown: code(defaults.database), doc: "database holding the tables" },
  {
    section: "general",
    env: ["CLICKHOUSE_URL"],
    shown: "(embedded)",
    doc: "a ClickHouse server, e.g. `http://localhost:8123`; same code, no other change",
  },
  { section: "general", env: ["CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"], shown: "`default`, empty", doc: "its credentials" },
  { section: "general", env: ["LINEAGE_AUDIT_RULES"], shown: code("rules/default.yaml"), doc: "the rules file" },
  {
    section: "general",
    env: ["LINEAGE_AUDIT_HMAC_KEY"],
    shown: "(none; the demo makes a random one)",
    doc: "pseudonymisation key, ≥ 32 bytes (hex, base64 or text): `openssl rand -hex 32`",
  },
  {
    section: "general",
    env: ["LINEAGE_AUDIT_PORT"],
    shown: code(defaults.port),
    doc: `\`serve\` port (binds ${defaults.host} unless \`--host\`)`,
  },
  {
    section: "general",
    env: ["LINEAGE_AUDIT_INGEST_TOKEN"],
    shown: "(none)",
    doc: "bearer token `serve` requires on `/v1/events`; required (16+ characters) when `--host` is not loopback, and so is a 16+ character analyst password when that interface is on: `serve` refuses to start otherwise",
  },
  {
    section: "general",
    env: ["LINEAGE_AUDIT_WEBHOOKS"],
    shown: "(none: no alerts)",
    doc: 'alert subscriptions file for `serve` (see "Alert webhooks")',
  },
  {
    section: "general",
    env: ["LINEAGE_AUDIT_WEBHOOK_SECRET"],
    shown: "(none)",
    doc: "the receiver's signing secret for `lineage-audit webhooks test` when `--secret` is not given",
  },
  {
    section: "general",
    env: ["LINEAGE_AUDIT_ANALYST_PASSWORD", "LINEAGE_AUDIT_ANALYST_USER", "LINEAGE_AUDIT_ANALYST_PORT"],
    shown: `(off), ${code(defaults.analystUser, defaults.analystPort)}`,
    doc: "`serve` speaks ClickHouse's HTTP protocol, read-only, over the embedded store for analysts' tools (clickhouse-connect and pandas, the JDBC driver, `@clickhouse/client`, curl, Grafana): `curl -u analyst:… 'http://127.0.0.1:8124/?query=SELECT+count()+FROM+events_v1'`; the same guard and limits as `sql` ([docs/sql.md](docs/sql.md#the-http-interface))",
  },
  {
    section: "general",
    env: ["LINEAGE_AUDIT_MODEL_REFRESH_MS"],
    shown: code(defaults.modelRefreshMs),
    doc: "how often at most the investigation console starts bringing the exact model up to date, in the background (no page waits for it; each says when its exact counts were computed); the console and the alert deliverer share one refresh at a time",
  },
  {
    section: "general",
    env: ["LINEAGE_AUDIT_CLASSIFICATION"],
    shown: "(none)",
    doc: "data categories (dataset glob → field → categories) for OpenLineage datasets whose producers send no tags ([docs/openlineage.md](docs/openlineage.md)); checked at start-up",
  },
  {
    section: "general",
    env: ["LINEAGE_AUDIT_OPENLINEAGE_JOURNAL"],
    shown: `\`<LINEAGE_AUDIT_DATA>/openlineage-journal\``,
    doc: "where `serve` writes each OpenLineage RunEvent before it answers 201, and keeps it until it is stored; after a crash it stores what the journal still holds ([docs/openlineage.md](docs/openlineage.md#http))",
  },
  { section: "general", env: ["LINEAGE_AUDIT_DEBUG"], shown: "", doc: "print stacks with errors (`1`)" },
  {
    section: "general",
    env: ["LINEAGE_AUDIT_LOG"],
    shown: code(defaults.log),
    doc: 'how `serve` reports what adapters see (Kafka client warnings, retries, failed webhook rounds): `text`, one `lineage-audit: …` line each, or `json`, one `{"time","level","message"}` object a line for log collectors',
  },
  { section: "kafka", env: ["KAFKA_BROKERS"], shown: "(none: no Kafka)", doc: "`host:port,…`" },
  { section: "kafka", env: ["KAFKA_CLIENT_ID"], shown: code(defaults.kafkaClientId), doc: "client id" },
  { section: "kafka", env: ["KAFKA_GROUP_ID"], shown: code(defaults.kafkaGroupId), doc: "the processors' consumer group" },
  { section: "kafka", env: ["LINEAGE_AUDIT_INSTANCE_ID"], shown: "`<hostname>-<pid>`", doc: "this instance's name" },
  {
    section: "kafka",
    env: ["KAFKA_TOPIC_EVENTS", "KAFKA_TOPIC_DLQ", "KAFKA_TOPIC_LINEAGE"],
    shown: code(defaults.kafkaTopics.events, defaults.kafkaTopics.deadLetters, defaults.kafkaTopics.lineage),
    doc: "topics (created if missing; the lineage topic compacted)",
  },
  {
    section: "kafka",
    env: ["KAFKA_TOPIC_OPENLINEAGE"],
    shown: "(none: not consumed)",
    doc: "OpenLineage RunEvents as the OpenLineage Kafka transport writes them (JSON), consumed by the same group ([docs/openlineage.md](docs/openlineage.md))",
  },
  {
    section: "kafka",
    env: ["KAFKA_PARTITIONS", "KAFKA_REPLICATION_FACTOR"],
    shown: code(defaults.kafkaPartitions, defaults.kafkaReplicationFactor),
    doc: "for topics the auditor creates",
  },
  {
    section: "kafka",
    env: ["KAFKA_SESSION_TIMEOUT_MS"],
    shown: code(defaults.kafkaSessionTimeoutMs),
    doc: "how soon a dead instance's partitions move (at least 6000)",
  },
  {
    section: "kafka",
    env: ["KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"],
    shown: "",
    doc: "`plain`, `scram-sha-256` or `scram-sha-512`",
  },
  {
    section: "kafka",
    env: ["KAFKA_SSL", "KAFKA_SSL_CA_FILE", "KAFKA_SSL_CERT_FILE", "KAFKA_SSL_KEY_FILE"],
    shown: "",
    doc: "TLS (`true` for system CAs, or PEM files)",
  },
  {
    section: "kafka",
    env: ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"],
    shown: "(none: no export)",
    doc: "OpenTelemetry traces and metrics from `serve` over OTLP/HTTP (the SDK reads the other `OTEL_EXPORTER_OTLP_*` variables itself)",
  },
  { section: "kafka", env: ["OTEL_SERVICE_NAME"], shown: code(defaults.otelServiceName), doc: "the service name on spans and metrics" },
  {
    section: "kafka",
    env: ["OTEL_METRIC_EXPORT_INTERVAL"],
    shown: code(defaults.otelMetricExportIntervalMs),
    doc: "milliseconds between metric exports",
  },
];

/** A section's settings as the Markdown table the README holds. */
export function configurationTable(section: SettingDoc["section"]): string {
  const rows = settings
    .filter((s) => s.section === section)
    .map((s) => `| ${s.env.map((e) => `\`${e}\``).join(", ")} | ${s.shown} | ${s.doc} |`);
  return ["| variable | default | meaning |", "|---|---|---|", ...rows].join("\n");
}

function portOf(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  const port = value ? Number(value) : fallback;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`${name} must be a port number (0-65535)`);
  return port;
}

/** LINEAGE_AUDIT_DEBUG: also read on its own, to report an error in the configuration itself. */
export function debugEnabled(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env["LINEAGE_AUDIT_DEBUG"]);
}

/** Parses the environment once; a bad value is one ConfigError naming the variable (never echoing a secret). */
export function parseConfig(env: NodeJS.ProcessEnv): AppConfig {
  const store: StoreOptions = {};
  if (env["CLICKHOUSE_URL"]) store.url = env["CLICKHOUSE_URL"];
  if (env["CLICKHOUSE_USER"]) store.username = env["CLICKHOUSE_USER"];
  if (env["CLICKHOUSE_PASSWORD"] !== undefined) store.password = env["CLICKHOUSE_PASSWORD"];
  if (env["LINEAGE_AUDIT_DATA"]) store.path = env["LINEAGE_AUDIT_DATA"];
  if (env["LINEAGE_AUDIT_DATABASE"]) store.database = env["LINEAGE_AUDIT_DATABASE"];
  const log = env["LINEAGE_AUDIT_LOG"] ?? defaults.log;
  if (log !== "text" && log !== "json") throw new ConfigError(`LINEAGE_AUDIT_LOG must be text or json, not '${log}'`);
  const config: AppConfig = {
    store,
    rulesPath: env["LINEAGE_AUDIT_RULES"] ?? defaults.rulesPath,
    port: portOf(env, "LINEAGE_AUDIT_PORT", defaults.port),
    kafkaGroupId: env["KAFKA_GROUP_ID"] ?? defaults.kafkaGroupId,
    instanceId: env["LINEAGE_AUDIT_INSTANCE_ID"] ?? `${hostname()}-${process.pid}`,
    kafkaSessionTimeoutMs: env["KAFKA_SESSION_TIMEOUT_MS"] ? Number(env["KAFKA_SESSION_TIMEOUT_MS"]) : defaults.kafkaSessionTimeoutMs,
    modelRefreshMs: env["LINEAGE_AUDIT_MODEL_REFRESH_MS"] ? Number(env["LINEAGE_AUDIT_MODEL_REFRESH_MS"]) : defaults.modelRefreshMs,
    log,
    debug: debugEnabled(env),
  };
  if (!Number.isInteger(config.kafkaSessionTimeoutMs) || config.kafkaSessionTimeoutMs < 6000) {
    throw new ConfigError("KAFKA_SESSION_TIMEOUT_MS must be a whole number of milliseconds, at least 6000 (the broker's minimum)");
  }
  if (!Number.isInteger(config.modelRefreshMs) || config.modelRefreshMs < 1000) {
    throw new ConfigError("LINEAGE_AUDIT_MODEL_REFRESH_MS must be a whole number of milliseconds, at least 1000");
  }
  const kafka = parseKafka(env);
  if (kafka) config.kafka = kafka;
  if (env["LINEAGE_AUDIT_HMAC_KEY"]) config.hmacKey = env["LINEAGE_AUDIT_HMAC_KEY"];
  if (env["LINEAGE_AUDIT_INGEST_TOKEN"]) config.ingestToken = env["LINEAGE_AUDIT_INGEST_TOKEN"];
  if (env["LINEAGE_AUDIT_WEBHOOKS"]) config.webhooksPath = env["LINEAGE_AUDIT_WEBHOOKS"];
  if (env["LINEAGE_AUDIT_WEBHOOK_SECRET"]) config.webhookSecret = env["LINEAGE_AUDIT_WEBHOOK_SECRET"];
  if (env["LINEAGE_AUDIT_CLASSIFICATION"]) config.classificationPath = env["LINEAGE_AUDIT_CLASSIFICATION"];
  if (env["LINEAGE_AUDIT_OPENLINEAGE_JOURNAL"]) config.openLineageJournalPath = env["LINEAGE_AUDIT_OPENLINEAGE_JOURNAL"];
  if (env["OTEL_EXPORTER_OTLP_ENDPOINT"] || env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] || env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]) {
    const interval = env["OTEL_METRIC_EXPORT_INTERVAL"] ? Number(env["OTEL_METRIC_EXPORT_INTERVAL"]) : defaults.otelMetricExportIntervalMs;
    if (!Number.isInteger(interval) || interval < 100)
      throw new ConfigError("OTEL_METRIC_EXPORT_INTERVAL must be a whole number of milliseconds, at least 100");
    config.telemetry = { serviceName: env["OTEL_SERVICE_NAME"] ?? defaults.otelServiceName, metricExportIntervalMs: interval };
  }
  if (env["LINEAGE_AUDIT_ANALYST_PASSWORD"]) {
    config.analyst = {
      user: env["LINEAGE_AUDIT_ANALYST_USER"] ?? defaults.analystUser,
      password: env["LINEAGE_AUDIT_ANALYST_PASSWORD"],
      port: portOf(env, "LINEAGE_AUDIT_ANALYST_PORT", defaults.analystPort),
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
  if (env["KAFKA_TOPIC_OPENLINEAGE"]) topics.openLineage = env["KAFKA_TOPIC_OPENLINEAGE"];
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

/** The README's generated blocks: `<!-- configuration:SECTION -->` … `<!-- /configuration:SECTION -->`. */
export const README_SECTIONS: readonly SettingDoc["section"][] = ["general", "kafka"];

/** `readme` with each generated block replaced by the table `settings` give now. */
export function withConfigurationTables(readme: string): string {
  let text = readme;
  for (const section of README_SECTIONS) {
    const open = `<!-- configuration:${section} (generated from services/config by npm run docs:config) -->`;
    const close = `<!-- /configuration:${section} -->`;
    const from = text.indexOf(open);
    const to = text.indexOf(close);
    if (from < 0 || to < from) throw new ConfigError(`README: the block ${open} … ${close} is missing`);
    text = `${text.slice(0, from + open.length)}\n${configurationTable(section)}\n${text.slice(to)}`;
  }
  return text;
}
