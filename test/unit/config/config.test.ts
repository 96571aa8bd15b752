import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../services/errors/index.ts";
import { defaults, parseConfig, settings, withConfigurationTables } from "../../../services/config/index.ts";
import { defaultIngestServerOptions, defaultAnalystServerOptions } from "../../../services/api/index.ts";
import { defaultKafkaProcessorOptions, defaultTopics } from "../../../services/kafka/index.ts";
import { defaultStoreOptions } from "../../../services/store/index.ts";
import { defaultAuditorOptions } from "../../../services/processor/index.ts";
import { DEFAULT_POLICY_PATH } from "../../../services/rules/index.ts";
import { sourceFiles } from "../source-files.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const CONFIG_SOURCE = readFileSync(join(ROOT, "services/config/index.ts"), "utf8");

describe("the configuration module", () => {
  it("is what the README's configuration tables say (run npm run docs:config after changing it)", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    expect(withConfigurationTables(readme)).toBe(readme);
  });

  it("documents every variable it reads, and reads every variable it documents", () => {
    // The parsing code (after the documentation): every variable name it quotes, as env["X"] or handed to a reader.
    const parsing = CONFIG_SOURCE.slice(CONFIG_SOURCE.indexOf("export function debugEnabled"));
    const read = new Set([...parsing.matchAll(/"((?:LINEAGE_AUDIT|CLICKHOUSE|KAFKA|OTEL)_[A-Z0-9_]+)"/g)].map((m) => m[1]));
    const documented = new Set(settings.flatMap((s) => s.env));
    expect([...read].filter((v) => !documented.has(v!))).toEqual([]);
    expect([...documented].filter((v) => !read.has(v))).toEqual([]);
  });

  it("is the only module under services/ that reads the environment", () => {
    const readers = sourceFiles(join(ROOT, "services"))
      .filter((file) => /process\.env\b|\benv\[/.test(readFileSync(file, "utf8").replace(/^\s*(\/\/|\*).*$/gm, "")))
      .map((file) => relative(ROOT, file));
    // The dispatcher receives the environment as an argument and hands it to parseConfig.
    expect(readers).toEqual(["services/config/index.ts"]);
  });

  it("gives every default from one object, which the modules use", () => {
    const config = parseConfig({});
    expect(config.port).toBe(defaults.port);
    expect(config.kafkaGroupId).toBe(defaults.kafkaGroupId);
    expect(config.kafkaSessionTimeoutMs).toBe(defaults.kafkaSessionTimeoutMs);
    expect(config.rulesPath).toBe(defaults.rulesPath);
    expect(config.log).toBe("text");
    expect(config.store).toEqual({});
    expect(config.kafka).toBeUndefined();
    expect(config.analyst).toBeUndefined();
    expect(config.telemetry).toBeUndefined();
    expect(defaultIngestServerOptions).toMatchObject({ port: defaults.port, host: defaults.host });
    expect(defaultAnalystServerOptions).toMatchObject({ port: defaults.analystPort, host: defaults.host });
    expect(defaultKafkaProcessorOptions).toMatchObject({
      groupId: defaults.kafkaGroupId,
      sessionTimeoutMs: defaults.kafkaSessionTimeoutMs,
    });
    expect(defaultTopics).toEqual(defaults.kafkaTopics);
    expect(defaultStoreOptions).toEqual({ path: defaults.storePath, database: defaults.database });
    expect(defaultAuditorOptions.recheckWindow).toBe(defaults.recheckWindow);
    expect(DEFAULT_POLICY_PATH).toBe(defaults.rulesPath);
    expect(readFileSync(defaults.rulesPath, "utf8")).toContain("security-contact-not-for-marketing");
  });

  it("reads each variable into its place", () => {
    const config = parseConfig({
      CLICKHOUSE_URL: "http://ch:8123",
      CLICKHOUSE_USER: "auditor",
      CLICKHOUSE_PASSWORD: "",
      LINEAGE_AUDIT_DATA: "/var/lib/la",
      LINEAGE_AUDIT_DATABASE: "audit",
      LINEAGE_AUDIT_PORT: "0",
      LINEAGE_AUDIT_ANALYST_PASSWORD: "pw",
      LINEAGE_AUDIT_ANALYST_PORT: "9000",
      KAFKA_BROKERS: "a:9092, b:9093",
      KAFKA_TOPIC_DLQ: "dlq",
      KAFKA_PARTITIONS: "12",
      KAFKA_SASL_MECHANISM: "SCRAM-SHA-512",
      KAFKA_SASL_USERNAME: "u",
      KAFKA_SASL_PASSWORD: "p",
      KAFKA_SSL: "true",
      LINEAGE_AUDIT_LOG: "json",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318",
      OTEL_METRIC_EXPORT_INTERVAL: "500",
      LINEAGE_AUDIT_WEBHOOK_SECRET: "whsec_x",
      LINEAGE_AUDIT_MODEL_REFRESH_MS: "5000",
      LINEAGE_AUDIT_DEBUG: "1",
    });
    expect(config.store).toEqual({ url: "http://ch:8123", username: "auditor", password: "", path: "/var/lib/la", database: "audit" });
    expect(config.port).toBe(0);
    expect(config.analyst).toEqual({ user: defaults.analystUser, password: "pw", port: 9000 });
    expect(config.kafka).toEqual({
      brokers: ["a:9092", "b:9093"],
      topics: { deadLetters: "dlq" },
      partitions: 12,
      sasl: { mechanism: "scram-sha-512", username: "u", password: "p" },
      ssl: true,
    });
    expect(config.log).toBe("json");
    expect(config.telemetry).toEqual({ serviceName: defaults.otelServiceName, metricExportIntervalMs: 500 });
    expect(config.webhookSecret).toBe("whsec_x");
    expect(config.modelRefreshMs).toBe(5000);
    expect(parseConfig({}).modelRefreshMs).toBe(defaults.modelRefreshMs);
    expect(config.debug).toBe(true);
  });

  it.each([
    [{ LINEAGE_AUDIT_PORT: "70000" }, /^LINEAGE_AUDIT_PORT must be a port number/],
    [{ LINEAGE_AUDIT_ANALYST_PASSWORD: "x", LINEAGE_AUDIT_ANALYST_PORT: "http" }, /^LINEAGE_AUDIT_ANALYST_PORT must be a port number/],
    [{ KAFKA_SESSION_TIMEOUT_MS: "100" }, /^KAFKA_SESSION_TIMEOUT_MS must be .* at least 6000/],
    [{ LINEAGE_AUDIT_MODEL_REFRESH_MS: "500" }, /^LINEAGE_AUDIT_MODEL_REFRESH_MS must be a whole number of milliseconds, at least 1000$/],
    [{ LINEAGE_AUDIT_MODEL_REFRESH_MS: "often" }, /^LINEAGE_AUDIT_MODEL_REFRESH_MS must be/],
    [{ KAFKA_BROKERS: "nohost" }, /^KAFKA_BROKERS must be a comma-separated list of host:port/],
    [{ KAFKA_BROKERS: "a:1", KAFKA_PARTITIONS: "0" }, /^KAFKA_PARTITIONS must be a whole number of at least 1/],
    [{ KAFKA_BROKERS: "a:1", KAFKA_SASL_MECHANISM: "gssapi" }, /^KAFKA_SASL_MECHANISM must be plain/],
    [
      { KAFKA_BROKERS: "a:1", KAFKA_SASL_MECHANISM: "plain", KAFKA_SASL_USERNAME: "u" },
      /needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD/,
    ],
    [{ KAFKA_BROKERS: "a:1", KAFKA_SSL: "yes" }, /^KAFKA_SSL must be true or false/],
    [
      { KAFKA_BROKERS: "a:1", KAFKA_SSL_CA_FILE: "/nonexistent/ca.pem" },
      /^KAFKA_SSL_CA_FILE: cannot read \/nonexistent\/ca.pem \(ENOENT\)/,
    ],
    [{ LINEAGE_AUDIT_LOG: "xml" }, /^LINEAGE_AUDIT_LOG must be text or json, not 'xml'/],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: "http://o", OTEL_METRIC_EXPORT_INTERVAL: "soon" }, /^OTEL_METRIC_EXPORT_INTERVAL must be/],
  ])("refuses %o with one ConfigError naming the variable", (env, message) => {
    let thrown: unknown;
    try {
      parseConfig(env);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as Error).message).toMatch(message);
    expect((thrown as Error).message).not.toContain("\n");
  });

  it("never echoes a secret in its errors", () => {
    const secret = "s3cr3t-value-9f2c";
    for (const env of [
      { KAFKA_BROKERS: "a:1", KAFKA_SASL_MECHANISM: "oauth", KAFKA_SASL_PASSWORD: secret, KAFKA_SASL_USERNAME: "u" },
      { LINEAGE_AUDIT_ANALYST_PASSWORD: secret, LINEAGE_AUDIT_ANALYST_PORT: "-1" },
    ]) {
      expect(() => parseConfig(env)).toThrow(ConfigError);
      try {
        parseConfig(env);
      } catch (error) {
        expect((error as Error).message).not.toContain(secret);
      }
    }
  });
});
