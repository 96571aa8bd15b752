import { context, SpanKind, SpanStatusCode, type Span } from "@opentelemetry/api";
import { TransportError } from "../errors/index.ts";
import { Attr, contextFromTraceparent, SpanName, tracer, traceparentOf } from "../telemetry/index.ts";
import type { OutboundMessage, SendResult, Transport } from "../emitter/index.ts";
import { createIdempotentProducer, createKafka, ensureTopics, topicsOf, type KafkaConfig, type Producer } from "./client.ts";

/** Header carrying the W3C trace context (OpenTelemetry's Kafka propagation uses the same name). */
export const TRACEPARENT_HEADER = "traceparent";
export const EVENT_ID_HEADER = "lineage-audit-event-id";
const MAX_REQUEST_BYTES = 512 * 1024;

/**
 * The emitter's transport onto Kafka: each batch is one produce request with acks from all
 * in-sync replicas, through an idempotent producer; the key is the dataset, so each dataset's
 * events stay in order on one partition.
 */
export function createKafkaTransport(config: KafkaConfig, deps: { producer?: Producer } = {}): Transport {
  const kafka = createKafka(config);
  const topic = topicsOf(config).events;
  const producer = deps.producer ?? createIdempotentProducer(kafka);
  let ready: Promise<void> | undefined;
  const connect = () =>
    (ready ??= (async () => {
      await ensureTopics(kafka, config);
      await producer.connect();
    })().catch((cause: unknown) => {
      ready = undefined;
      throw new TransportError(`cannot connect to Kafka at ${config.brokers.join(",")}: ${(cause as Error).message}`, {
        cause,
        retriable: true,
      });
    }));
  return {
    async send(messages: OutboundMessage[]): Promise<SendResult> {
      await connect();
      // One "send" span per message (messaging conventions), child of the event's own trace; its
      // context travels in the headers, so the processor continues the same trace.
      const spans: Span[] = [];
      const records = messages.map((m) => {
        const span = tracer().startSpan(
          SpanName.send(topic),
          {
            kind: SpanKind.PRODUCER,
            attributes: {
              [Attr.messagingSystem]: "kafka",
              [Attr.operationType]: "send",
              [Attr.operationName]: "send",
              [Attr.destination]: topic,
              [Attr.messageKey]: m.key,
              [Attr.messageId]: m.eventId,
            },
          },
          contextFromTraceparent(m.traceparent, context.active()),
        );
        spans.push(span);
        const traceparent = traceparentOf(span.spanContext()) ?? m.traceparent;
        return {
          key: m.key,
          value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength),
          headers: traceparent ? { [TRACEPARENT_HEADER]: traceparent, [EVENT_ID_HEADER]: m.eventId } : { [EVENT_ID_HEADER]: m.eventId },
        };
      });
      try {
        // One request per ~512 KiB, under the broker's default 1 MiB limit for a partition's batch.
        for (let start = 0, bytes = 0, i = 0; i < records.length; i++) {
          bytes += records[i]!.value.length + records[i]!.key.length + 64;
          if (bytes >= MAX_REQUEST_BYTES || i === records.length - 1) {
            await producer.send({ topic, acks: -1, messages: records.slice(start, i + 1) });
            start = i + 1;
            bytes = 0;
          }
        }
      } catch (cause) {
        for (const span of spans) span.setStatus({ code: SpanStatusCode.ERROR, message: "produce failed" });
        throw new TransportError(`producing ${messages.length} events to ${topic} failed: ${(cause as Error).message}`, {
          cause,
          retriable: true,
        });
      } finally {
        for (const span of spans) span.end();
      }
      return { accepted: messages.length, rejected: [] };
    },
    async close() {
      if (ready) await producer.disconnect();
    },
  };
}
