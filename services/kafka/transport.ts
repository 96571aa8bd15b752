import { TransportError } from "../errors/index.ts";
import type { OutboundMessage, SendResult, Transport } from "../emitter/index.ts";
import { createIdempotentProducer, createKafka, ensureTopics, topicsOf, type KafkaConfig, type Producer } from "./client.ts";

/** Header carrying the W3C trace context (OpenTelemetry's Kafka propagation uses the same name). */
export const TRACEPARENT_HEADER = "traceparent";
export const EVENT_ID_HEADER = "lineage-audit-event-id";

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
      try {
        await producer.send({
          topic,
          acks: -1,
          messages: messages.map((m) => ({
            key: m.key,
            value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength),
            headers: m.traceparent
              ? { [TRACEPARENT_HEADER]: m.traceparent, [EVENT_ID_HEADER]: m.eventId }
              : { [EVENT_ID_HEADER]: m.eventId },
          })),
        });
      } catch (cause) {
        throw new TransportError(`producing ${messages.length} events to ${topic} failed: ${(cause as Error).message}`, {
          cause,
          retriable: true,
        });
      }
      return { accepted: messages.length, rejected: [] };
    },
    async close() {
      if (ready) await producer.disconnect();
    },
  };
}
