// Names of spans, attributes and metrics in one place, and the small helpers the adapters use.
// Library code uses @opentelemetry/api only: without a registered SDK every call is a no-op.
import { context, metrics, trace, TraceFlags, type Context, type Meter, type SpanContext, type Tracer } from "@opentelemetry/api";

export const INSTRUMENTATION = "lineage-audit";

export const SpanName = {
  send: (topic: string) => `send ${topic}`,
  process: (topic: string) => `process ${topic}`,
  store: "store",
} as const;

/** OpenTelemetry semantic conventions for messaging (Kafka), and the auditor's own. */
export const Attr = {
  messagingSystem: "messaging.system",
  operationType: "messaging.operation.type",
  operationName: "messaging.operation.name",
  destination: "messaging.destination.name",
  partition: "messaging.destination.partition.id",
  consumerGroup: "messaging.consumer.group.name",
  messageKey: "messaging.kafka.message.key",
  offset: "messaging.kafka.offset",
  messageId: "messaging.message.id",
  batchCount: "messaging.batch.message_count",
  eventKind: "lineage_audit.event.kind",
  violations: "lineage_audit.violations",
  rejected: "lineage_audit.rejected",
} as const;

export const MetricName = {
  eventsProcessed: "lineage_audit.events.processed",
  violations: "lineage_audit.violations",
  deadLetters: "lineage_audit.dead_letters",
  batchDuration: "lineage_audit.batch.duration",
  consumerLag: "lineage_audit.consumer.lag",
  openLineageNotYetStored: "lineage_audit.openlineage.not_yet_stored",
} as const;

export function tracer(): Tracer {
  return trace.getTracer(INSTRUMENTATION);
}

export function meter(): Meter {
  return metrics.getMeter(INSTRUMENTATION);
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** The parts of a W3C traceparent, or undefined when absent or malformed (all-zero ids, version ff). */
export function parseTraceparent(value: string | null | undefined): { traceId: string; spanId: string; flags: number } | undefined {
  const m = value ? TRACEPARENT.exec(value) : null;
  if (!m || m[1] === "ff" || m[2] === "0".repeat(32) || m[3] === "0".repeat(16)) return undefined;
  return { traceId: m[2] as string, spanId: m[3] as string, flags: parseInt(m[4] as string, 16) };
}

/** A context whose parent is the remote span named by a W3C traceparent (or `base` if none). */
export function contextFromTraceparent(traceparent: string | null | undefined, base: Context = context.active()): Context {
  const parsed = parseTraceparent(traceparent);
  if (!parsed) return base;
  const spanContext: SpanContext = { traceId: parsed.traceId, spanId: parsed.spanId, traceFlags: parsed.flags, isRemote: true };
  return trace.setSpanContext(base, spanContext);
}

/** The W3C traceparent of a span context, or null when it is not valid (no SDK registered). */
export function traceparentOf(sc: SpanContext | undefined): string | null {
  if (!sc || !trace.isSpanContextValid(sc)) return null;
  return `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}

/** Whether a traceparent asks for its trace to be recorded (the sampled flag). */
export function isSampled(traceparent: string | null | undefined): boolean {
  const parsed = parseTraceparent(traceparent);
  return parsed !== undefined && (parsed.flags & 0x01) === 0x01; // the sampled flag
}
