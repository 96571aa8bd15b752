import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { KafkaMessage } from "kafkajs";
import { context, SpanKind, SpanStatusCode, trace, type Span } from "@opentelemetry/api";
import { LineageAuditError } from "../errors/index.ts";
import { Attr, contextFromTraceparent, isSampled, meter, MetricName, SpanName, tracer } from "../telemetry/index.ts";
import { TRACEPARENT_HEADER } from "./transport.ts";
import type { EventCodec, DataAccessEvent } from "../codec/index.ts";
import type { Processor } from "../processor/index.ts";
import {
  createConsumer,
  createIdempotentProducer,
  createKafka,
  ensureTopics,
  topicsOf,
  type Consumer,
  type KafkaConfig,
  type Producer,
} from "./client.ts";

/** Headers of a dead letter: where the message came from and why it was refused. */
export const DeadLetterHeader = {
  topic: "lineage-audit-source-topic",
  partition: "lineage-audit-source-partition",
  offset: "lineage-audit-source-offset",
  reason: "lineage-audit-reason",
  code: "lineage-audit-error-code",
  redacted: "lineage-audit-redacted",
} as const;

export interface KafkaProcessorOptions {
  /** Consumer group of the processor instances. @default "lineage-audit" */
  groupId?: string;
  /** This instance's name, unique in the group (its private lineage reader uses it). */
  instanceId: string;
  /** Wait before retrying a batch the store refused. @default 500, doubling to 10000 */
  retryBackoffMs?: number;
  /**
   * How long the group waits for a silent member before giving its partitions to others (a
   * killed instance's partitions move after this). @default 10000
   */
  sessionTimeoutMs?: number;
  /** Called after each batch is stored and committed (for progress and tests). */
  onBatch?: (info: { partition: number; messages: number; rejected: number; lastOffset: string; timestamps: number[] }) => void;
}

export interface KafkaProcessor {
  /** Lineage facts read from the shared topic so far. */
  readonly factsLearned: number;
  close(): Promise<void>;
}

/**
 * Runs a processor as a member of a Kafka consumer group:
 * - it first reads the compacted lineage topic to its end (every instance knows every COLLECT
 *   and DERIVE, whichever partition they came from), then keeps following it;
 * - each batch of events is processed and stored, its new lineage facts and dead letters are
 *   produced, and only then are its offsets resolved and committed (at-least-once; the store's
 *   idempotent writes make a replay change nothing);
 * - when the store fails, the partition is paused and the same batch retried with backoff, so
 *   nothing is dropped and nothing more is fetched meanwhile.
 */
export async function startKafkaProcessor(
  config: KafkaConfig,
  options: KafkaProcessorOptions,
  deps: { processor: Processor; codec: EventCodec },
): Promise<KafkaProcessor> {
  const kafka = createKafka(config);
  const topics = topicsOf(config);
  const groupId = options.groupId ?? "lineage-audit";
  await ensureTopics(kafka, config);

  const producer: Producer = createIdempotentProducer(kafka);
  await producer.connect();

  // 1. The lineage topic, in full, through a group of this process alone (new each start, so a
  //    killed predecessor never holds it).
  const lineageGroup = `${groupId}.lineage.${options.instanceId}.${randomUUID().slice(0, 8)}`;
  const lineage: Consumer = createConsumer(kafka, { groupId: lineageGroup, allowAutoTopicCreation: false });
  let factsLearned = 0;
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topics.lineage);
  await admin.disconnect();
  const target = new Map(ends.map((e) => [e.partition, BigInt(e.high)]));
  let caughtUp!: () => void;
  const caughtUpPromise = new Promise<void>((resolve) => (caughtUp = resolve));
  const reached = new Map<number, bigint>();
  const checkCaughtUp = () => {
    for (const [partition, high] of target) if ((reached.get(partition) ?? 0n) < high) return;
    caughtUp();
  };
  await lineage.connect();
  await lineage.subscribe({ topic: topics.lineage, fromBeginning: true });
  await lineage.run({
    eachBatchAutoResolve: true,
    eachBatch: async ({ batch }) => {
      const facts: DataAccessEvent[] = [];
      for (const m of batch.messages) {
        if (!m.value) continue;
        try {
          facts.push(deps.codec.decode(m.value).event);
        } catch {
          // A fact this version cannot read: the instance that wrote it stored it already.
        }
      }
      await deps.processor.learn(facts);
      factsLearned += facts.length;
      reached.set(batch.partition, BigInt(batch.lastOffset()) + 1n);
      checkCaughtUp();
    },
  });
  checkCaughtUp();
  await caughtUpPromise;

  // 2. The events, as a member of the group.
  const sessionTimeout = options.sessionTimeoutMs ?? 10_000;
  const events: Consumer = createConsumer(kafka, {
    groupId,
    allowAutoTopicCreation: false,
    maxBytesPerPartition: 4 * 1024 * 1024,
    sessionTimeout,
    heartbeatInterval: Math.max(500, Math.floor(sessionTimeout / 5)),
  });
  await events.connect();
  await events.subscribe({ topic: topics.events, fromBeginning: true });
  let stopping = false;
  const m = meter();
  const processed = m.createCounter(MetricName.eventsProcessed, { description: "Events stored by the processor", unit: "{event}" });
  const violationCount = m.createCounter(MetricName.violations, { description: "Rule violations found", unit: "{violation}" });
  const deadLetterCount = m.createCounter(MetricName.deadLetters, {
    description: "Messages sent to the dead-letter topic",
    unit: "{message}",
  });
  const batchDuration = m.createHistogram(MetricName.batchDuration, { description: "Time to process and store one batch", unit: "s" });
  const lag = new Map<number, number>();
  m.createObservableGauge(MetricName.consumerLag, {
    description: "Messages behind the end of the partition",
    unit: "{message}",
  }).addCallback((result) => {
    for (const [partition, value] of lag) result.observe(value, { [Attr.destination]: topics.events, [Attr.partition]: String(partition) });
  });
  await events.run({
    eachBatchAutoResolve: false,
    autoCommit: false,
    // kafkajs hands plain closures, not methods bound to an object.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale, pause }) => {
      if (batch.messages.length === 0) return;
      const inbound = batch.messages.map((m: KafkaMessage) => ({
        bytes: m.value ?? Buffer.alloc(0),
        source: `${batch.topic}/${batch.partition}/${m.offset}`,
      }));
      // A "process" span per message whose producer asked for its trace to be recorded, child of
      // the producer's span (its context is in the headers); one "store" span for the batch.
      const common = {
        [Attr.messagingSystem]: "kafka",
        [Attr.destination]: batch.topic,
        [Attr.partition]: String(batch.partition),
        [Attr.consumerGroup]: groupId,
      };
      const processSpans: Span[] = [];
      for (const msg of batch.messages) {
        const traceparent = msg.headers?.[TRACEPARENT_HEADER]?.toString();
        if (!isSampled(traceparent)) continue;
        const attributes = {
          ...common,
          [Attr.operationType]: "process",
          [Attr.operationName]: "process",
          [Attr.offset]: Number(msg.offset),
        };
        processSpans.push(
          tracer().startSpan(SpanName.process(batch.topic), { kind: SpanKind.CONSUMER, attributes }, contextFromTraceparent(traceparent)),
        );
      }
      const storeSpan = tracer().startSpan(SpanName.store, {
        kind: SpanKind.INTERNAL,
        attributes: { ...common, [Attr.batchCount]: batch.messages.length },
        links: processSpans.slice(0, 128).map((span) => ({ context: span.spanContext() })),
      });
      const started = performance.now();
      const endSpans = (error?: string) => {
        for (const span of [storeSpan, ...processSpans]) {
          if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
          span.end();
        }
      };
      let backoff = options.retryBackoffMs ?? 500;
      for (;;) {
        if (!isRunning() || isStale() || stopping) {
          endSpans("not committed: the partition moved or this instance is stopping");
          return; // not committed: the next owner replays it
        }
        try {
          const result = await context.with(trace.setSpan(context.active(), storeSpan), () => deps.processor.processMessages(inbound));
          const dead = result.rejected.map((r) => {
            const offset = r.source.slice(r.source.lastIndexOf("/") + 1);
            const original = batch.messages.find((m) => m.offset === offset);
            const redacted = r.redacted;
            return {
              // A producer's key may carry an identifier as much as its value.
              key: redacted ? null : (original?.key ?? null),
              value: redacted ? null : (original?.value ?? null),
              headers: {
                [DeadLetterHeader.topic]: batch.topic,
                [DeadLetterHeader.partition]: String(batch.partition),
                [DeadLetterHeader.offset]: offset,
                [DeadLetterHeader.reason]: r.reason,
                [DeadLetterHeader.code]: r.code,
                ...(redacted ? { [DeadLetterHeader.redacted]: "true" } : {}),
              },
            };
          });
          if (dead.length > 0) await producer.send({ topic: topics.deadLetters, acks: -1, messages: dead });
          if (result.facts.length > 0) {
            await producer.send({
              topic: topics.lineage,
              acks: -1,
              messages: result.facts.map((f) => ({ key: f.key, value: Buffer.from(f.value) })),
            });
          }
          const last = batch.messages[batch.messages.length - 1] as KafkaMessage;
          resolveOffset(last.offset);
          // Stored, then committed: a crash before this line means a replay, never a loss.
          await events.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }]);
          storeSpan.setAttributes({ [Attr.violations]: result.violations, [Attr.rejected]: dead.length });
          endSpans();
          const attrs = { [Attr.destination]: batch.topic, [Attr.partition]: String(batch.partition) };
          processed.add(result.accepted, attrs);
          violationCount.add(result.violations, attrs);
          deadLetterCount.add(dead.length, attrs);
          batchDuration.record((performance.now() - started) / 1000, attrs);
          lag.set(batch.partition, Number(batch.offsetLag()));
          options.onBatch?.({
            partition: batch.partition,
            messages: batch.messages.length,
            rejected: dead.length,
            lastOffset: last.offset,
            timestamps: batch.messages.map((msg) => Number(msg.timestamp)),
          });
          return;
        } catch (error) {
          if (!(error instanceof LineageAuditError) || !error.retriable) {
            endSpans((error as Error).message);
            throw error;
          }
          storeSpan.addEvent("retry", { reason: error.message.split("\n")[0] ?? "" });
          // The store (or Kafka) is failing: hold this partition, keep the group membership, retry.
          const resume = pause();
          process.stderr.write(`lineage-audit: ${error.message.split("\n")[0]}; retrying partition ${batch.partition} in ${backoff} ms\n`);
          const until = Date.now() + backoff;
          while (Date.now() < until && isRunning() && !stopping) {
            await heartbeat().catch(() => undefined);
            await sleep(Math.min(1000, until - Date.now()));
          }
          resume();
          backoff = Math.min(backoff * 2, 10_000);
        }
      }
    },
  });

  return {
    get factsLearned() {
      return factsLearned;
    },
    async close() {
      stopping = true;
      await events.disconnect();
      await lineage.disconnect();
      await producer.disconnect();
      const cleanup = kafka.admin();
      await cleanup.connect();
      await cleanup.deleteGroups([lineageGroup]).catch(() => undefined);
      await cleanup.disconnect();
    },
  };
}
