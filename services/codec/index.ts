export { crc64Avro, schemaFingerprint, fingerprintBytes, fingerprintHex } from "./fingerprint.ts";
export { parsingCanonicalForm } from "./canonical.ts";
export { createEventCodec } from "./codec.ts";
export type { EventCodec, WriterSchema, DecodedMessage } from "./codec.ts";
export { loadEventSchemas, AVRO_SCHEMA_DIR } from "./schemas.ts";
export { createContainerDecoder, writeContainerFile } from "./avro.ts";
export { EventKind, Transform, Masking, PSEUDONYM_PATTERN } from "./types.ts";
export type { DataAccessEvent, Dataset, DatasetField, FieldRef, FieldMapping, Recipient } from "./types.ts";
export { frameBatch, unframeBatch, EVENT_BATCH_MEDIA_TYPE } from "./framing.ts";
