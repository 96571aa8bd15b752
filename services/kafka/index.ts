export { createKafka, ensureTopics, topicsOf, defaultTopics } from "./client.ts";
export type { KafkaConfig, KafkaTopics } from "./client.ts";
export { createKafkaTransport, TRACEPARENT_HEADER, EVENT_ID_HEADER } from "./transport.ts";
export { startKafkaProcessor, DeadLetterHeader, defaultKafkaProcessorOptions } from "./consumer.ts";
export type { KafkaProcessor, KafkaProcessorOptions, FactOutbox } from "./consumer.ts";
