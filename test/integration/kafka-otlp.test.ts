// `serve` registers the OpenTelemetry Node SDK when an OTLP endpoint is configured: a real OTLP
// receiver on 127.0.0.1 gets the processor's spans (continuing the producer's trace) and metrics.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { rmSync } from "node:fs";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createKafka, ensureTopics } from "../../services/kafka/index.ts";
import { core, kafkaForTest, kafkaServeEnv, tempDir, waitFor } from "./helpers.ts";

const BIN = new URL("../../bin/lineage-audit.mjs", import.meta.url).pathname;
const dir = tempDir("lineage-otlp-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("serve with an OTLP endpoint", () => {
  it("exports the processing spans of a traced message and the processor's metrics", async () => {
    const received: { path: string; body: string }[] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received.push({ path: req.url ?? "", body: Buffer.concat(chunks).toString("utf8") });
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    receiver.listen(0, "127.0.0.1");
    await once(receiver, "listening");
    const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

    const config = kafkaForTest(inject, 1);
    const kafka = createKafka(config);
    await ensureTopics(kafka, config);
    const child = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
      env: {
        PATH: process.env["PATH"] ?? "",
        LINEAGE_AUDIT_DATA: join(dir, "store"),
        ...kafkaServeEnv(config),
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_METRIC_EXPORT_INTERVAL: "500",
        OTEL_SERVICE_NAME: "lineage-audit-test",
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    child.stderr?.on("data", (c: Buffer) => (log += c.toString()));
    try {
      await waitFor(async () => log.includes("lineage-audit serve: consuming"), 60_000, "serve to start consuming");
      const { codec } = core();
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({
        topic: config.topics.events,
        messages: [
          {
            key: "warehouse/security.two_factor",
            value: Buffer.from(
              codec.encode({
                eventId: "otlp-1",
                kind: "COLLECT",
                occurredAt: Date.parse("2019-03-01T00:00:00Z"),
                service: "auth-service",
                job: { namespace: "web", name: "2fa-enrolment" },
                runId: "r",
                inputs: [],
                outputs: [
                  {
                    namespace: "warehouse",
                    name: "security.two_factor",
                    fields: [{ name: "phone_number", categories: ["user.contact.phone_number"] }],
                  },
                ],
                transform: "OTHER",
                fieldLineage: [],
                masking: "NONE",
                purposes: ["essential.service.security"],
                dataSubject: "customer",
                subjects: [],
                recipient: null,
                traceparent: null,
                pseudonymKeyId: "default",
                attributes: {},
              }),
            ),
            headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
          },
        ],
      });
      await producer.disconnect();
      await waitFor(
        async () => received.some((r) => r.path === "/v1/metrics" && r.body.includes("lineage_audit.events.processed")),
        60_000,
        "metrics export",
      );
      // serve's own gauge beside the consumer's: the OpenLineage RunEvents answered and not yet stored.
      expect(received.some((r) => r.path === "/v1/metrics" && r.body.includes("lineage_audit.openlineage.not_yet_stored"))).toBe(true);
      child.kill("SIGTERM");
      const [code] = (await once(child, "exit")) as [number];
      expect(code, log).toBe(0);
      const traces = received
        .filter((r) => r.path === "/v1/traces")
        .map((r) => r.body)
        .join("\n");
      expect(traces).toContain(`process ${config.topics.events}`);
      expect(traces).toContain(traceId);
      expect(traces).toContain("lineage-audit-test");
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      receiver.close();
    }
  });
});
