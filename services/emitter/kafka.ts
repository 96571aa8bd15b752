// `lineage-audit/emitter/kafka`: the Kafka transport for the emitter SDK. A separate entry, so
// only services that emit onto Kafka load kafkajs.
export { createKafkaTransport, TRACEPARENT_HEADER, EVENT_ID_HEADER } from "../kafka/transport.ts";
export type { KafkaConfig, KafkaTopics } from "../kafka/client.ts";
