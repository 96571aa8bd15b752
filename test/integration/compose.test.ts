// docker-compose.yml cannot run here (no Docker engine); at least it parses and wires the
// services the README describes.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

type Service = {
  image?: string;
  build?: string;
  environment?: Record<string, string | number>;
  command?: string[];
  depends_on?: Record<string, { condition: string }>;
};

const compose = parse(readFileSync(new URL("../../docker-compose.yml", import.meta.url), "utf8")) as { services: Record<string, Service> };

describe("docker-compose.yml", () => {
  it("runs Kafka as a single-node KRaft broker and controller", () => {
    const kafka = compose.services["kafka"];
    expect(kafka?.image).toMatch(/^apache\/kafka:4\./);
    expect(kafka?.environment?.["KAFKA_PROCESS_ROLES"]).toBe("broker,controller");
    expect(kafka?.environment?.["KAFKA_CONTROLLER_QUORUM_VOTERS"]).toBe("1@kafka:9093");
  });

  it("points the auditor at the ClickHouse server and Kafka, after both are healthy", () => {
    const auditor = compose.services["auditor"];
    const clickhouse = compose.services["clickhouse"];
    expect(clickhouse?.image).toMatch(/^clickhouse\/clickhouse-server:/);
    expect(auditor?.build).toBe(".");
    expect(auditor?.environment?.["CLICKHOUSE_URL"]).toBe("http://clickhouse:8123");
    expect(auditor?.environment?.["CLICKHOUSE_USER"]).toBe(clickhouse?.environment?.["CLICKHOUSE_USER"]);
    expect(auditor?.environment?.["KAFKA_BROKERS"]).toBe("kafka:19092");
    expect(auditor?.depends_on).toEqual({ kafka: { condition: "service_healthy" }, clickhouse: { condition: "service_healthy" } });
    expect(auditor?.command?.[0]).toBe("serve");
  });

  it("gives the auditor, which listens on 0.0.0.0, an ingest token the operator must set", () => {
    const auditor = compose.services["auditor"];
    expect(auditor?.command).toEqual(["serve", "--host", "0.0.0.0"]);
    // ${VAR:?message}: compose refuses to start while the variable is unset or empty.
    expect(auditor?.environment?.["LINEAGE_AUDIT_INGEST_TOKEN"]).toMatch(/^\$\{LINEAGE_AUDIT_INGEST_TOKEN:\?.+\}$/);
    const password = auditor?.environment?.["LINEAGE_AUDIT_ANALYST_PASSWORD"];
    if (password !== undefined) expect(password).toMatch(/^\$\{LINEAGE_AUDIT_ANALYST_PASSWORD:\?.+\}$/);
  });
});
