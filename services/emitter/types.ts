import type { EventKind, FieldMapping, Masking, Recipient, Transform } from "../codec/index.ts";

/** A dataset as a service names it; fields and categories may be left out. */
export interface DatasetInput {
  namespace: string;
  name: string;
  fields?: { name: string; categories?: string[] }[];
}

/** What a service passes to `emit()`; the emitter fills in ids, time and defaults. */
export interface EmitInput {
  kind: EventKind;
  /** Stable id for retries; generated (UUID v4) when absent. */
  eventId?: string;
  /** When it happened: `Date`, epoch milliseconds or ISO-8601 text (without an offset: UTC). @default now */
  occurredAt?: number | Date | string;
  /** @default the emitter's `service` option */
  service?: string;
  job: { namespace: string; name: string };
  runId: string;
  inputs?: DatasetInput[];
  outputs?: DatasetInput[];
  transform?: Transform;
  fieldLineage?: FieldMapping[];
  masking?: Masking;
  purposes?: string[];
  dataSubject: string;
  /** Raw subject identifiers (email, phone, user id): pseudonymised here, never sent. */
  subjects?: string[];
  /** Subject ids already pseudonymised with the same key (32 hex digits). */
  pseudonymousSubjects?: string[];
  recipient?: Recipient | null;
  /** W3C traceparent of the operation. */
  traceparent?: string | null;
  attributes?: Record<string, string>;
}

/** One encoded event on its way, with what a transport may route by. */
export interface OutboundMessage {
  /** Single-object encoded event. */
  value: Uint8Array;
  /** The dataset the event is about (`namespace/name`): keeps each dataset's events in order. */
  key: string;
  eventId: string;
  traceparent: string | null;
}

/** Carries encoded events to the auditor. */
export interface Transport {
  /** Sends one batch; resolves when the auditor (or the log in front of it) has it durably. */
  send(messages: OutboundMessage[]): Promise<SendResult>;
  close(): Promise<void>;
}

export interface SendResult {
  accepted: number;
  rejected: { index: number; code: string; reason: string }[];
}

export interface EmitterOptions {
  transport: Transport;
  /** HMAC key for subject pseudonyms (hex, base64 or text; at least 32 bytes). */
  pseudonymKey: string | Uint8Array;
  /** Name of that key, stored with each event for rotation. @default "default" */
  pseudonymKeyId?: string;
  /** Default `service` of events. */
  service?: string;
  /** Events per batch. @default 1000 */
  maxBatch?: number;
  /** How long a partial batch waits before it is sent. @default 20 */
  lingerMs?: number;
  /** Batches being sent at once; `emit()` waits when this many are in flight. @default 2 */
  maxInFlight?: number;
  /** Raw identifiers whose pseudonyms are kept in memory (never written anywhere). @default 10000 */
  pseudonymCacheSize?: number;
  /** Called with events the auditor rejected (already validated here, so rare: e.g. unknown taxonomy keys). */
  onRejected?: (rejected: SendResult["rejected"]) => void;
}

export interface EmitterStats {
  emitted: number;
  sent: number;
  rejected: number;
  batches: number;
}

export interface Emitter {
  /**
   * Validates, pseudonymises, encodes and queues one event. Throws a SchemaError naming a bad
   * field, or a DecodeLimitError when the encoded event is over the auditor's message limit.
   */
  emit(input: EmitInput): Promise<void>;
  /** Sends everything queued and waits until it is stored. */
  flush(): Promise<void>;
  /** Flushes, then closes the transport. */
  close(): Promise<void>;
  readonly stats: Readonly<EmitterStats>;
}
