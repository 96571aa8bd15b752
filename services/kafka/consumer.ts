import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { KafkaMessage } from "kafkajs";
import { context, SpanKind, SpanStatusCode, trace, type Span } from "@opentelemetry/api";
import { ConfigError, InputError, InternalError, LineageAuditError, TransportError } from "../errors/index.ts";
import {
  Attr,
  contextFromTraceparent,
  isSampled,
  meter,
  MetricName,
  silentLogger,
  SpanName,
  tracer,
  type Logger,
} from "../telemetry/index.ts";
import { TRACEPARENT_HEADER } from "./transport.ts";
import { refusedBatchReason } from "./codecs.ts";
import type { EventCodec, DataAccessEvent } from "../codec/index.ts";
import type { Processor, ProcessResult } from "../processor/index.ts";
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
import { defaults } from "../config/index.ts";
import type { OpenLineageIntake } from "../openlineage/intake.ts";

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
  /**
   * How often the lineage outbox (stored facts not yet on the lineage topic: after a failed send,
   * a crash, or facts from other intakes) is published. @default 5000
   */
  outboxIntervalMs?: number;
  /** Messages of a fetched batch processed and written together; heartbeats go out between them. @default 1000 */
  maxMessagesPerWrite?: number;
  /** Called after each batch is stored and committed (for progress and tests). */
  onBatch?: (info: { partition: number; messages: number; rejected: number; lastOffset: string; timestamps: number[] }) => void;
}

/** Defaults of the options above, in one place. */
export const defaultKafkaProcessorOptions = {
  groupId: defaults.kafkaGroupId,
  retryBackoffMs: 500,
  maxRetryBackoffMs: 10_000,
  sessionTimeoutMs: defaults.kafkaSessionTimeoutMs,
  outboxIntervalMs: 5000,
  maxMessagesPerWrite: 1000,
  outboxPageSize: 500,
} as const;

/**
 * The lineage outbox: stored facts not yet marked published (the store implements it; the facts
 * are written with their batch, so they outlive a crash or a failed send).
 */
export interface FactOutbox {
  unpublishedFacts(topic: string, limit: number): Promise<{ key: string; fact: DataAccessEvent }[]>;
  markPublished(topic: string, keys: readonly string[]): Promise<void>;
}

export interface KafkaProcessor {
  /** Lineage facts read from the shared topic so far. */
  readonly factsLearned: number;
  /**
   * Per partition this instance consumes: the messages not stored yet, from the next one to store
   * to the end of the partition as its latest batch saw it.
   */
  lag(): { topic: string; partition: number; lag: number }[];
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
  deps: {
    processor: Processor;
    codec: EventCodec;
    /** Where the stored, not yet published lineage facts are (the store). */
    store: FactOutbox;
    /** A producer the caller owns (connected, closed by it); by default an idempotent one of our own. */
    producer?: Producer;
    /** One line per retry or failed publish; by default to `logger.warn`. */
    log?: (line: string) => void;
    /** Where the Kafka client's warnings and this consumer's lines go. @default silentLogger */
    logger?: Logger;
    /** Takes the OpenLineage topic's RunEvents, when `topics.openLineage` is set. */
    openLineage?: Pick<OpenLineageIntake, "ingest">;
    /**
     * Given, before the first batch, a reader of the lag (what `lag()` returns): a caller can show
     * it while this function is still starting (reading the lineage topic, joining the group).
     */
    lagReader?: (read: () => { topic: string; partition: number; lag: number }[]) => void;
  },
): Promise<KafkaProcessor> {
  const logger = deps.logger ?? silentLogger;
  const kafka = createKafka(config, logger);
  const topics = topicsOf(config);
  const defaults = defaultKafkaProcessorOptions;
  const groupId = options.groupId ?? defaults.groupId;
  const log = deps.log ?? ((line: string) => logger.warn(line));
  await ensureTopics(kafka, config);

  const ownProducer = deps.producer === undefined;
  const producer: Producer = deps.producer ?? createIdempotentProducer(kafka);
  if (ownProducer) await producer.connect();
  const publisher = createFactPublisher({ store: deps.store, producer, codec: deps.codec, topic: topics.lineage, log });

  // 1. The lineage topic, in full, through a group of this process alone (new each start, so a
  //    killed predecessor never holds it).
  const lineageGroup = `${groupId}.lineage.${options.instanceId}.${randomUUID().slice(0, 8)}`;
  const lineage: Consumer = createConsumer(kafka, { groupId: lineageGroup, allowAutoTopicCreation: false });
  let factsLearned = 0;
  const admin = kafka.admin();
  await admin.connect();
  let ends: Awaited<ReturnType<typeof admin.fetchTopicOffsets>>;
  for (let attempt = 1; ; attempt++) {
    try {
      ends = await admin.fetchTopicOffsets(topics.lineage);
      break;
    } catch (error) {
      // A topic created a moment ago may not have its leader yet ("not the leader for that topic-partition").
      if (attempt >= 10 || !(error as { retriable?: boolean }).retriable) {
        await admin.disconnect();
        throw error;
      }
      await sleep(200 * attempt);
    }
  }
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

  // Facts a predecessor stored but did not get onto the topic (a crash, a failed send) go out
  // now; then on a timer, for later failures and for facts the other intakes stored.
  await publisher.publish();
  const outboxTimer = setInterval(() => void publisher.publish(), options.outboxIntervalMs ?? defaults.outboxIntervalMs);
  outboxTimer.unref();

  // 2. The events, as a member of the group.
  const sessionTimeout = options.sessionTimeoutMs ?? defaults.sessionTimeoutMs;
  const heartbeatInterval = Math.max(500, Math.floor(sessionTimeout / 5));
  const perWrite = Math.max(1, options.maxMessagesPerWrite ?? defaults.maxMessagesPerWrite);
  const events: Consumer = createConsumer(kafka, {
    groupId,
    allowAutoTopicCreation: false,
    maxBytesPerPartition: 4 * 1024 * 1024,
    sessionTimeout,
    heartbeatInterval,
  });
  await events.connect();
  await events.subscribe({ topic: topics.events, fromBeginning: true });
  const openLineageTopic = topics.openLineage;
  if (openLineageTopic) {
    if (!deps.openLineage)
      throw new ConfigError(`the OpenLineage topic ${openLineageTopic} is configured but no OpenLineage intake was given`);
    await events.subscribe({ topic: openLineageTopic, fromBeginning: true });
  }
  let stopping = false;
  const m = meter();
  const processed = m.createCounter(MetricName.eventsProcessed, { description: "Events stored by the processor", unit: "{event}" });
  const violationCount = m.createCounter(MetricName.violations, { description: "Rule violations found", unit: "{violation}" });
  const deadLetterCount = m.createCounter(MetricName.deadLetters, {
    description: "Messages sent to the dead-letter topic",
    unit: "{message}",
  });
  const batchDuration = m.createHistogram(MetricName.batchDuration, { description: "Time to process and store one batch", unit: "s" });
  /** Per `topic/partition`: the events topic's, and the OpenLineage topic's when consumed. */
  const lag = new Map<string, { topic: string; partition: number; lag: number }>();
  const readLag = () => [...lag.values()].map((l) => ({ ...l }));
  deps.lagReader?.(readLag);
  m.createObservableGauge(MetricName.consumerLag, {
    description: "Messages behind the end of the partition",
    unit: "{message}",
  }).addCallback((result) => {
    for (const l of lag.values()) result.observe(l.lag, { [Attr.destination]: l.topic, [Attr.partition]: String(l.partition) });
  });
  await events.run({
    eachBatchAutoResolve: false,
    autoCommit: false,
    // kafkajs hands plain closures, not methods bound to an object.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale, pause }) => {
      if (batch.messages.length === 0) return;
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
      // Processing and storing can outlast the session timeout (a slow store, a bisection): the
      // group must keep hearing from this member meanwhile.
      const beat = setInterval(() => void heartbeat().catch(() => undefined), heartbeatInterval);
      // Lag: the messages not stored yet, from the next one to store to the end of the partition
      // as this batch saw it (a batch being processed still counts whole until it is stored).
      const behind = (next: bigint) =>
        lag.set(`${batch.topic}/${batch.partition}`, {
          topic: batch.topic,
          partition: batch.partition,
          lag: Math.max(0, Number(BigInt(batch.highWatermark) - next)),
        });
      behind(BigInt((batch.messages[0] as KafkaMessage).offset));
      try {
        const total: Outcome = { accepted: 0, violations: 0, dead: [], facts: [] };
        for (let i = 0; i < batch.messages.length; i += perWrite) {
          const chunk = batch.messages.slice(i, i + perWrite);
          const outcome = await storeWithRetry(chunk);
          if (!outcome) {
            endSpans("not committed: the partition moved or this instance is stopping");
            return; // not committed: the next owner replays it
          }
          // Stored: the facts are in the outbox whatever happens to this send.
          await publisher.publish(outcome.facts);
          resolveOffset((chunk[chunk.length - 1] as KafkaMessage).offset);
          behind(BigInt((chunk[chunk.length - 1] as KafkaMessage).offset) + 1n);
          await heartbeat().catch(() => undefined);
          total.accepted += outcome.accepted;
          total.violations += outcome.violations;
          total.dead.push(...outcome.dead);
        }
        const last = batch.messages[batch.messages.length - 1] as KafkaMessage;
        // Stored, then committed: a crash before this line means a replay, never a loss.
        await events.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() }]);
        storeSpan.setAttributes({ [Attr.violations]: total.violations, [Attr.rejected]: total.dead.length });
        endSpans();
        const attrs = { [Attr.destination]: batch.topic, [Attr.partition]: String(batch.partition) };
        processed.add(total.accepted, attrs);
        violationCount.add(total.violations, attrs);
        deadLetterCount.add(total.dead.length, attrs);
        batchDuration.record((performance.now() - started) / 1000, attrs);
        options.onBatch?.({
          partition: batch.partition,
          messages: batch.messages.length,
          rejected: total.dead.length,
          lastOffset: last.offset,
          timestamps: batch.messages.map((msg) => Number(msg.timestamp)),
        });
      } catch (error) {
        endSpans((error as Error).message);
        throw error;
      } finally {
        clearInterval(beat);
      }

      /**
       * Stores a slice of the batch and sends its dead letters. Retriable failures (the store or
       * Kafka unreachable, overloaded) hold the partition and retry with backoff, for as long as
       * they last: nothing is dropped. Undefined when the partition moved or we are stopping.
       */
      async function storeWithRetry(chunk: KafkaMessage[]): Promise<Outcome | undefined> {
        let backoff = options.retryBackoffMs ?? defaults.retryBackoffMs;
        for (;;) {
          if (!isRunning() || isStale() || stopping) return undefined;
          try {
            const outcome = await context.with(trace.setSpan(context.active(), storeSpan), () => settle(chunk));
            if (outcome.dead.length > 0) {
              await producer.send({ topic: topics.deadLetters, acks: -1, messages: outcome.dead }).catch((cause: unknown) => {
                throw new TransportError(`sending dead letters to ${topics.deadLetters} failed: ${(cause as Error).message}`, {
                  cause,
                  retriable: true,
                });
              });
            }
            return outcome;
          } catch (error) {
            if (!retriable(error)) throw error;
            const reason = error.message.split("\n")[0] ?? "";
            storeSpan.addEvent("retry", { reason });
            // Hold this partition, keep the group membership, retry.
            const resume = pause();
            log(`${reason}; retrying partition ${batch.partition} in ${backoff} ms`);
            const until = Date.now() + backoff;
            while (Date.now() < until && isRunning() && !stopping) {
              await heartbeat().catch(() => undefined);
              await sleep(Math.min(1000, until - Date.now()));
            }
            resume();
            backoff = Math.min(backoff * 2, defaults.maxRetryBackoffMs);
          }
        }
      }

      /**
       * Processes messages; when that fails for good (not an outage: a bug, an error of no known
       * kind), halves them until the message that fails is alone, and sets it aside as a dead
       * letter so the partition moves on.
       */
      async function settle(messages: KafkaMessage[]): Promise<Outcome> {
        // Stand-ins for a compressed batch the codecs refused (codecs.ts): each offset is
        // dead-lettered with the reason, without bytes (there are none), and the partition moves on.
        if (messages.some((m) => refusedBatchReason(m.headers) !== undefined)) {
          const standIns = messages.filter((m) => refusedBatchReason(m.headers) !== undefined);
          const others = messages.filter((m) => refusedBatchReason(m.headers) === undefined);
          const failed = standIns.map((m) => ({
            event: undefined,
            source: inbound(m).source,
            failure: new InputError(`${refusedBatchReason(m.headers) ?? ""}; its records were dead-lettered unread`, {
              context: { topic: batch.topic, partition: batch.partition, offset: m.offset },
            }),
          }));
          const set = outcomeOf(await deps.processor.processEvents(failed), standIns);
          return others.length > 0 ? merge(set, await settle(others)) : set;
        }
        try {
          if (batch.topic === openLineageTopic && deps.openLineage) {
            // RunEvents (JSON) through the same intake as HTTP and files; same outcome, same dead letters.
            return outcomeOf(await deps.openLineage.ingest(messages.map(inbound)), messages);
          }
          return outcomeOf(await deps.processor.processMessages(messages.map(inbound)), messages);
        } catch (error) {
          if (retriable(error)) throw error;
          if (messages.length > 1) {
            const half = Math.ceil(messages.length / 2);
            await heartbeat().catch(() => undefined);
            const first = await settle(messages.slice(0, half));
            await heartbeat().catch(() => undefined);
            const second = await settle(messages.slice(half));
            return merge(first, second);
          }
          const message = messages[0] as KafkaMessage;
          const failure =
            error instanceof LineageAuditError
              ? error
              : new InternalError(`processing the message failed (${(error as Error)?.name ?? typeof error}); it was set aside`, {
                  cause: error,
                  context: { topic: batch.topic, partition: batch.partition, offset: message.offset },
                });
          // Without its bytes: what it holds is unknown.
          const result = await deps.processor.processEvents([{ event: undefined, source: inbound(message).source, failure }]);
          return outcomeOf(result, messages);
        }
      }

      function inbound(m: KafkaMessage) {
        return { bytes: m.value ?? Buffer.alloc(0), source: `${batch.topic}/${batch.partition}/${m.offset}` };
      }

      function outcomeOf(result: Pick<ProcessResult, "accepted" | "rejected" | "violations" | "facts">, messages: KafkaMessage[]): Outcome {
        const dead = result.rejected.map((r) => {
          const offset = r.source.slice(r.source.lastIndexOf("/") + 1);
          const original = messages.find((m) => m.offset === offset);
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
        return { accepted: result.accepted, violations: result.violations, dead, facts: result.facts };
      }
    },
  });

  return {
    lag: readLag,
    get factsLearned() {
      return factsLearned;
    },
    async close() {
      stopping = true;
      clearInterval(outboxTimer);
      await events.disconnect();
      await lineage.disconnect();
      await publisher.publish();
      if (ownProducer) await producer.disconnect();
      const cleanup = kafka.admin();
      await cleanup.connect();
      await cleanup.deleteGroups([lineageGroup]).catch(() => undefined);
      await cleanup.disconnect();
    },
  };
}

/** What a stored slice of a batch gave: counts, dead letters to send, facts to publish. */
function merge(a: Outcome, b: Outcome): Outcome {
  return {
    accepted: a.accepted + b.accepted,
    violations: a.violations + b.violations,
    dead: [...a.dead, ...b.dead],
    facts: [...a.facts, ...b.facts],
  };
}

interface Outcome {
  accepted: number;
  violations: number;
  dead: { key: Buffer | string | null; value: Buffer | null; headers: Record<string, string> }[];
  facts: { key: string; value: Uint8Array }[];
}

function retriable(error: unknown): error is LineageAuditError {
  return error instanceof LineageAuditError && error.retriable;
}

/**
 * Publishes stored lineage facts to the shared topic and marks them published. `publish(facts)`
 * sends a batch's new facts directly; `publish()` drains the outbox. A failed send or mark is
 * logged and left to the next drain: the facts stay in the outbox until marked. Publishing a fact
 * twice is harmless (the topic is compacted by fact key; learning a known fact changes nothing).
 */
function createFactPublisher(args: {
  store: FactOutbox;
  producer: Producer;
  codec: EventCodec;
  topic: string;
  log: (line: string) => void;
}): { publish(facts?: readonly { key: string; value: Uint8Array }[]): Promise<void> } {
  const { store, producer, codec, topic, log } = args;
  let draining: Promise<void> | undefined;
  let again = false;
  // A failure since the last full drain: the next publish drains rather than sending directly.
  let behind = true;

  async function send(messages: { key: string; value: Buffer }[]): Promise<void> {
    if (messages.length === 0) return;
    await producer.send({ topic, acks: -1, messages });
    await store.markPublished(
      topic,
      messages.map((m) => m.key),
    );
  }

  async function drain(): Promise<void> {
    for (;;) {
      const page = await store.unpublishedFacts(topic, defaultKafkaProcessorOptions.outboxPageSize);
      const messages: { key: string; value: Buffer }[] = [];
      const unreadable: string[] = [];
      for (const { key, fact } of page) {
        try {
          messages.push({ key, value: Buffer.from(codec.encode({ ...fact, subjects: [] })) });
        } catch {
          unreadable.push(key); // stored by a version whose facts this one cannot encode
        }
      }
      await send(messages);
      if (unreadable.length > 0) {
        log(`${unreadable.length} stored lineage fact(s) cannot be encoded with the current schema; not published`);
        await store.markPublished(topic, unreadable);
      }
      if (page.length < defaultKafkaProcessorOptions.outboxPageSize) return;
    }
  }

  function drainOnce(): Promise<void> {
    if (draining) {
      again = true;
      return draining;
    }
    draining = (async () => {
      try {
        do {
          again = false;
          await drain();
        } while (again);
        behind = false;
      } catch (error) {
        behind = true;
        log(
          `publishing lineage facts to ${topic} failed (${(error as Error).message.split("\n")[0]}); they stay in the outbox and are sent again`,
        );
      } finally {
        draining = undefined;
      }
    })();
    return draining;
  }

  return {
    async publish(facts) {
      if (facts === undefined || behind || draining) return drainOnce();
      try {
        await send(facts.map((f) => ({ key: f.key, value: Buffer.from(f.value) })));
      } catch (error) {
        behind = true;
        log(
          `publishing lineage facts to ${topic} failed (${(error as Error).message.split("\n")[0]}); they stay in the outbox and are sent again`,
        );
      }
    },
  };
}
