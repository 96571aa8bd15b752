// The one place that imports kafkajs. It is CommonJS: under ESM on Node 20 only the default
// import works at run time.
import kafkajs from "kafkajs";
import type { Admin, Consumer, ConsumerConfig, Kafka, Producer, SASLOptions } from "kafkajs";
import { silentLogger, type Logger } from "../telemetry/index.ts";
import { defaults } from "../config/index.ts";
import { registerCompressionCodecs } from "./codecs.ts";
import { TransportError } from "../errors/index.ts";

const { Kafka: KafkaClient, logLevel, CompressionTypes } = kafkajs;

export type { Admin, Consumer, Producer, Kafka };
export { CompressionTypes };

/** How to reach a Kafka cluster and which topics the auditor uses. */
export interface KafkaConfig {
  /** `host:port` of at least one broker. */
  brokers: string[];
  /** @default "lineage-audit" */
  clientId?: string;
  /** TLS: `true` for the system CAs, or PEM material. */
  ssl?: boolean | { ca?: string[]; cert?: string; key?: string; rejectUnauthorized?: boolean };
  sasl?: { mechanism: "plain" | "scram-sha-256" | "scram-sha-512"; username: string; password: string };
  topics?: Partial<KafkaTopics>;
  /** Partitions of the events topic when the auditor creates it. @default 6 */
  partitions?: number;
  /** Replication factor of topics the auditor creates. @default 1 */
  replicationFactor?: number;
}

export interface KafkaTopics {
  /** Data-access events. @default "lineage-audit.events" */
  events: string;
  /** Messages that could not be decoded or validated. @default "lineage-audit.events.dlq" */
  deadLetters: string;
  /** Compacted log of lineage facts (COLLECT, DERIVE), read in full by every instance. @default "lineage-audit.lineage" */
  lineage: string;
  /** OpenLineage RunEvents (JSON, as the OpenLineage Kafka transport writes them); consumed only when set. */
  openLineage?: string;
}

export const defaultTopics: KafkaTopics = { ...defaults.kafkaTopics };

export function topicsOf(config: KafkaConfig): KafkaTopics {
  return { ...defaultTopics, ...config.topics };
}

/**
 * A kafkajs client whose own log lines go to `logger` at WARN and above, one line each, without
 * message contents.
 */
export function createKafka(config: KafkaConfig, logger: Logger = silentLogger): Kafka {
  // Batches compressed with snappy, lz4 or zstd (Java producers' compression.type), bounded.
  registerCompressionCodecs();
  return new KafkaClient({
    clientId: config.clientId ?? defaults.kafkaClientId,
    brokers: config.brokers,
    ...(config.ssl !== undefined ? { ssl: config.ssl } : {}),
    ...(config.sasl ? { sasl: config.sasl as SASLOptions } : {}),
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ namespace, level, log }) => {
        if (level > logLevel.WARN) return;
        // Heartbeats during a batch meet every rebalance; kafkajs rejoins by itself.
        if (log.message.startsWith("Response Heartbeat") && /rebalanc/i.test(String((log as { error?: unknown }).error))) return;
        if (level === logLevel.ERROR) logger.error(`kafka error (${namespace}): ${log.message}`);
        else logger.warn(`kafka warning (${namespace}): ${log.message}`);
      },
    retry: { initialRetryTime: 100 },
  });
}

/** Creates the auditor's topics when missing (the lineage topic compacted). */
export async function ensureTopics(kafka: Kafka, config: KafkaConfig): Promise<void> {
  const topics = topicsOf(config);
  const admin: Admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const replicationFactor = config.replicationFactor ?? defaults.kafkaReplicationFactor;
    const wanted = [
      { topic: topics.events, numPartitions: config.partitions ?? defaults.kafkaPartitions, replicationFactor },
      { topic: topics.deadLetters, numPartitions: 1, replicationFactor },
      { topic: topics.lineage, numPartitions: 1, replicationFactor, configEntries: [{ name: "cleanup.policy", value: "compact" }] },
      ...(topics.openLineage
        ? [{ topic: topics.openLineage, numPartitions: config.partitions ?? defaults.kafkaPartitions, replicationFactor }]
        : []),
    ].filter((t) => !existing.has(t.topic));
    if (wanted.length > 0) {
      // KafkaJS's own wait for leaders gives up at the first "does not host this topic-partition",
      // which a KRaft broker answers until the new topic's metadata has reached it: wait here.
      await admin.createTopics({ topics: wanted, waitForLeaders: false });
      await waitForLeaders(
        admin,
        wanted.map((t) => t.topic),
      );
    }
  } finally {
    await admin.disconnect();
  }
}

/** How long ensureTopics waits for new topics to have a leader for every partition. */
const TOPIC_LEADERS_TIMEOUT_MS = 30_000;

async function waitForLeaders(admin: Admin, topics: readonly string[]): Promise<void> {
  const deadline = Date.now() + TOPIC_LEADERS_TIMEOUT_MS;
  let last = "";
  for (let delay = 50; ; delay = Math.min(1_000, delay * 2)) {
    try {
      const { topics: found } = await admin.fetchTopicMetadata({ topics: [...topics] });
      if (found.length === topics.length && found.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
      last = "some partitions have no leader yet";
    } catch (error) {
      const type = (error as { type?: string }).type;
      if (type !== "UNKNOWN_TOPIC_OR_PARTITION" && type !== "LEADER_NOT_AVAILABLE") throw error;
      last = (error as Error).message;
    }
    if (Date.now() > deadline) {
      throw new TransportError(
        `the Kafka topics ${topics.join(", ")} were created but have no leader after ${TOPIC_LEADERS_TIMEOUT_MS / 1000} s (${last}); check the brokers`,
        { retriable: true, context: { topics: topics.join(",") } },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** An idempotent producer: acks from all in-sync replicas, one request in flight per broker so order holds. */
export function createIdempotentProducer(kafka: Kafka): Producer {
  return kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
}

export function createConsumer(kafka: Kafka, config: ConsumerConfig): Consumer {
  return kafka.consumer(config);
}
