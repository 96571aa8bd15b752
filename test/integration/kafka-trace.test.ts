// OpenTelemetry across a real broker: the producer's "send" span is the parent of the
// processor's "process" span, and the trace id is stored with the event and its violations.
import { rmSync } from "node:fs";
import { afterAll, describe, expect, inject, it } from "vitest";
import { SpanKind, trace } from "@opentelemetry/api";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { openStore, Table } from "../../services/store/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import { createEmitter } from "../../services/emitter/index.ts";
import { createKafkaTransport, startKafkaProcessor } from "../../services/kafka/index.ts";
import { core, HMAC_KEY, kafkaForTest, tempDir, waitFor } from "./helpers.ts";

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();
const dir = tempDir("lineage-trace-");
afterAll(async () => {
  await provider.shutdown();
  rmSync(dir, { recursive: true, force: true });
});

describe("tracing through Kafka", () => {
  it("continues the producer's trace in the processor and stores its trace id", async () => {
    const config = kafkaForTest(inject, 2);
    const { taxonomy, policy, codec } = core();
    const store = await openStore({ path: dir, database: "traces" });
    await store.migrate();
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
    const kafka = await startKafkaProcessor(config, { instanceId: "t", groupId: `g-${config.clientId}` }, { processor, codec, store });
    try {
      const emitter = createEmitter({ transport: createKafkaTransport(config), pseudonymKey: HMAC_KEY, lingerMs: 1 }, { codec });
      const at = Date.parse("2019-05-01T00:00:00Z");
      // A service's operation: it collects a phone number for 2FA, then (the bug) matches it for ads.
      const traceId = await trace.getTracer("test-service").startActiveSpan("partner-audiences nightly run", async (span) => {
        await emitter.emit({
          kind: "COLLECT",
          eventId: "trace-collect",
          occurredAt: at,
          service: "auth-service",
          job: { namespace: "web", name: "2fa-enrolment" },
          runId: "r",
          outputs: [
            {
              namespace: "warehouse",
              name: "security.two_factor",
              fields: [{ name: "phone_number", categories: ["user.contact.phone_number"] }],
            },
          ],
          purposes: ["essential.service.security"],
          dataSubject: "customer",
          subjects: ["+15555550100"],
        });
        await emitter.emit({
          kind: "USE",
          eventId: "trace-use",
          occurredAt: at + 1000,
          service: "partner-audiences",
          job: { namespace: "ads", name: "partner-audiences.match" },
          runId: "r",
          inputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "phone_number" }] }],
          purposes: ["marketing.advertising.third_party.targeted"],
          dataSubject: "customer",
          subjects: ["+15555550100"],
        });
        await emitter.flush();
        span.end();
        return span.spanContext().traceId;
      });
      await emitter.close();
      await waitFor(
        async () => Number((await store.query<{ n: string }>(`SELECT count() AS n FROM traces.${Table.violations}`))[0]?.n) === 2,
        60_000,
        "the violations stored",
      );
      await waitFor(async () => exporter.getFinishedSpans().some((s) => s.kind === SpanKind.CONSUMER), 10_000, "process spans ended");

      const spans = exporter.getFinishedSpans();
      const sends = spans.filter((s) => s.kind === SpanKind.PRODUCER && s.name === `send ${config.topics.events}`);
      const processes = spans.filter((s) => s.kind === SpanKind.CONSUMER && s.name === `process ${config.topics.events}`);
      expect(sends).toHaveLength(2);
      expect(processes).toHaveLength(2);
      for (const p of processes) {
        const parent = sends.find((s) => s.spanContext().spanId === p.parentSpanContext?.spanId);
        expect(parent, "the process span's parent is a send span").toBeDefined();
        expect(p.spanContext().traceId).toBe(traceId);
        expect(p.attributes["messaging.system"]).toBe("kafka");
        expect(p.attributes["messaging.destination.name"]).toBe(config.topics.events);
      }
      expect(sends.every((s) => s.spanContext().traceId === traceId && s.attributes["messaging.operation.type"] === "send")).toBe(true);
      const store_ = spans.filter((s) => s.name === "store");
      expect(store_.length).toBeGreaterThan(0);
      expect(store_.flatMap((s) => s.links.map((l) => l.context.spanId))).toEqual(
        expect.arrayContaining(processes.map((p) => p.spanContext().spanId)),
      );

      const stored = await store.query<{ event_id: string; trace_id: string }>(
        `SELECT event_id, trace_id FROM traces.${Table.events} FINAL ORDER BY event_id`,
      );
      expect(stored).toEqual([
        { event_id: "trace-collect", trace_id: traceId },
        { event_id: "trace-use", trace_id: traceId },
      ]);
      const violations = await store.query<{ trace_id: string }>(`SELECT DISTINCT trace_id FROM traces.${Table.violations}`);
      expect(violations).toEqual([{ trace_id: traceId }]);
    } finally {
      await kafka.close();
      await store.close();
    }
  });
});
