import { randomBytes } from "node:crypto";
import { ConfigError, SchemaError, TransportError } from "../errors/index.ts";
import {
  createEventCodec,
  loadEventSchemas,
  Masking,
  PSEUDONYM_PATTERN,
  TIME_FORMATS,
  Transform,
  parseTime,
  type DataAccessEvent,
  type EventCodec,
} from "../codec/index.ts";
import { createPseudonymizer } from "./pseudonymize.ts";
import { trace } from "@opentelemetry/api";
import { traceparentOf } from "../telemetry/index.ts";
import type { EmitInput, Emitter, EmitterOptions, EmitterStats, OutboundMessage } from "./types.ts";

export const defaultEmitterOptions = {
  maxBatch: 1000,
  lingerMs: 20,
  maxInFlight: 2,
  pseudonymKeyId: "default",
  pseudonymCacheSize: 10_000,
} satisfies Partial<EmitterOptions>;

const OPTION_NAMES = [
  "transport",
  "pseudonymKey",
  "pseudonymKeyId",
  "service",
  "maxBatch",
  "lingerMs",
  "maxInFlight",
  "pseudonymCacheSize",
  "onRejected",
] as const;

/** Whole-number options and their allowed ranges. */
const NUMBER_OPTIONS = {
  maxBatch: [1, 100_000],
  lingerMs: [0, 60_000],
  maxInFlight: [1, 64],
  pseudonymCacheSize: [0, 10_000_000],
} as const;

/**
 * Checks `createEmitter`'s options as plain JavaScript callers may pass them: each problem is one
 * ConfigError naming the option and what it must be (never its value: the key is a secret).
 */
export function checkEmitterOptions(options: unknown): asserts options is EmitterOptions {
  const fail = (option: string, problem: string): never => {
    throw new ConfigError(`createEmitter: option '${option}' ${problem}`, { context: { option } });
  };
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ConfigError("createEmitter: options must be an object ({ transport, pseudonymKey, ... })");
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if ((OPTION_NAMES as readonly string[]).includes(key)) continue;
    const near = OPTION_NAMES.find((n) => n.toLowerCase() === key.toLowerCase());
    fail(key, `is not an emitter option${near ? ` (did you mean '${near}'?)` : ` (options: ${OPTION_NAMES.join(", ")})`}`);
  }
  const transport = o["transport"] as { send?: unknown; close?: unknown } | undefined;
  if (transport === undefined || transport === null) {
    fail("transport", "is required: createHttpTransport(...), createInProcessTransport(...), or the Kafka transport");
  } else if (typeof transport !== "object" || typeof transport.send !== "function" || typeof transport.close !== "function") {
    fail("transport", "must be a transport: an object with send(messages) and close()");
  }
  const key = o["pseudonymKey"];
  if (key === undefined || key === null || key === "") {
    fail("pseudonymKey", "is required: an HMAC key of at least 32 bytes (hex, base64 or text); generate one with: openssl rand -hex 32");
  } else if (typeof key !== "string" && !(key instanceof Uint8Array)) {
    fail("pseudonymKey", "must be a string (hex, base64 or text) or a Uint8Array");
  }
  const keyId = o["pseudonymKeyId"];
  if (keyId !== undefined && (typeof keyId !== "string" || !/^[A-Za-z0-9._-]{1,64}$/.test(keyId))) {
    fail("pseudonymKeyId", "must be 1 to 64 letters, digits, '.', '_' or '-'");
  }
  const service = o["service"];
  if (service !== undefined && (typeof service !== "string" || service.trim() === "")) fail("service", "must be a non-empty string");
  for (const [name, [min, max]] of Object.entries(NUMBER_OPTIONS)) {
    const v = o[name];
    if (v !== undefined && (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)) {
      fail(name, `must be a whole number from ${min} to ${max}`);
    }
  }
  if (o["onRejected"] !== undefined && typeof o["onRejected"] !== "function") fail("onRejected", "must be a function");
}

/** What a producing service imports: typed, validated, batched, pseudonymised emission of data-access events. */
export function createEmitter(options: EmitterOptions, deps: { codec?: EventCodec } = {}): Emitter {
  checkEmitterOptions(options);
  const codec: EventCodec = deps.codec ?? createEventCodec(loadEventSchemas());
  const hmac = createPseudonymizer(options.pseudonymKey);
  const cacheSize = options.pseudonymCacheSize ?? defaultEmitterOptions.pseudonymCacheSize;
  let cache = new Map<string, string>();
  // Services see the same people again and again; an HMAC costs more than a map lookup.
  const pseudonymize = (raw: string): string => {
    let p = cache.get(raw);
    if (p === undefined) {
      p = hmac(raw);
      if (cache.size >= cacheSize) cache = new Map();
      cache.set(raw, p);
    }
    return p;
  };
  const maxBatch = options.maxBatch ?? defaultEmitterOptions.maxBatch;
  const lingerMs = options.lingerMs ?? defaultEmitterOptions.lingerMs;
  const maxInFlight = options.maxInFlight ?? defaultEmitterOptions.maxInFlight;
  const keyId = options.pseudonymKeyId ?? defaultEmitterOptions.pseudonymKeyId;
  const stats: EmitterStats = { emitted: 0, sent: 0, rejected: 0, batches: 0 };
  const buffer: OutboundMessage[] = [];
  let timer: NodeJS.Timeout | undefined;
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let closed = false;

  const toEvent = createEventBuilder({ pseudonymize, pseudonymKeyId: keyId, service: options.service });

  function send(batch: OutboundMessage[]): Promise<void> {
    stats.batches++;
    const p = options.transport
      .send(batch)
      .then((result) => {
        stats.sent += result.accepted;
        stats.rejected += result.rejected.length;
        if (result.rejected.length > 0) options.onRejected?.(result.rejected);
      })
      .catch((error: unknown) => {
        failure ??= error;
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    return p;
  }

  function throwFailure(): void {
    if (failure !== undefined) {
      const f = failure;
      failure = undefined;
      throw f instanceof Error ? f : new TransportError("sending a batch failed with a non-Error value");
    }
  }

  async function drainTo(limit: number): Promise<void> {
    while (inFlight.size > limit) await Promise.race(inFlight);
  }

  /** Sends up to `maxBatch` queued events once fewer than `maxInFlight` batches are in flight. */
  async function sendNext(): Promise<void> {
    await drainTo(maxInFlight - 1);
    if (buffer.length === 0) return;
    void send(buffer.splice(0, maxBatch));
  }

  function clearTimer(): void {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
  }

  return {
    stats,
    async emit(input) {
      if (closed) throw new SchemaError("the emitter is closed");
      throwFailure();
      const event = toEvent(input);
      codec.validate(event);
      buffer.push({
        value: codec.encodeWithinLimits(event),
        key: routingKey(event),
        eventId: event.eventId,
        traceparent: event.traceparent,
      });
      stats.emitted++;
      if (buffer.length >= maxBatch) {
        clearTimer();
        // Concurrent emits may have queued more than one batch: send them all, each bounded.
        while (buffer.length >= maxBatch) await sendNext();
        throwFailure();
      } else if (!timer) {
        timer = setTimeout(() => {
          timer = undefined;
          sendNext().catch((error: unknown) => {
            failure ??= error;
          });
        }, lingerMs);
        timer.unref();
      }
    },
    async flush() {
      clearTimer();
      while (buffer.length > 0) await sendNext();
      await drainTo(0);
      throwFailure();
    },
    async close() {
      if (closed) return;
      try {
        await this.flush();
      } finally {
        closed = true;
        await options.transport.close();
      }
    },
  };
}

/**
 * Turns what a service passes to `emit()` into a complete event: id, time and defaults filled
 * in, raw subject identifiers replaced by their pseudonyms. Throws a SchemaError naming a bad
 * subject entry; the schema itself is checked by the codec.
 */
export function createEventBuilder(options: {
  pseudonymize: (raw: string) => string;
  pseudonymKeyId: string;
  service?: string | undefined;
}): (input: EmitInput) => DataAccessEvent {
  const { pseudonymize } = options;
  const keyId = options.pseudonymKeyId;
  return (input: EmitInput): DataAccessEvent => {
    const at = toMillis(input.occurredAt);
    const subjects = (input.subjects ?? []).map((raw, i) => {
      if (typeof raw !== "string" || raw.trim() === "") {
        throw new SchemaError(`event field 'subjects[${i}]' must be a non-empty string`, { context: { path: `subjects[${i}]` } });
      }
      return pseudonymize(raw);
    });
    (input.pseudonymousSubjects ?? []).forEach((p, i) => {
      if (typeof p !== "string" || !PSEUDONYM_PATTERN.test(p)) {
        throw new SchemaError(`event field 'pseudonymousSubjects[${i}]' must be 32 hex digits from the same keyed HMAC`, {
          context: { path: `pseudonymousSubjects[${i}]` },
        });
      }
      subjects.push(p);
    });
    return {
      eventId: input.eventId ?? uuidv7(),
      kind: input.kind,
      occurredAt: at,
      service: input.service ?? options.service ?? "",
      job: input.job,
      runId: input.runId,
      inputs: (input.inputs ?? []).map(normaliseDataset),
      outputs: (input.outputs ?? []).map(normaliseDataset),
      transform: input.transform ?? Transform.other,
      fieldLineage: input.fieldLineage ?? [],
      masking: input.masking ?? Masking.none,
      purposes: input.purposes ?? [],
      dataSubject: input.dataSubject,
      subjects,
      recipient: input.recipient ?? null,
      // The emitting operation's trace, when the service runs inside one.
      traceparent: input.traceparent ?? traceparentOf(trace.getActiveSpan()?.spanContext()),
      pseudonymKeyId: keyId,
      attributes: input.attributes ?? {},
    };
  };
}

/** The dataset an event is about: what it writes (COLLECT, DERIVE) or reads (the others). */
export function routingKey(e: DataAccessEvent): string {
  const d = (e.kind === "COLLECT" || e.kind === "DERIVE" ? e.outputs[0] : e.inputs[0]) ?? e.inputs[0] ?? e.outputs[0];
  return d ? `${d.namespace}/${d.name}` : `${e.service}/${e.job.name}`;
}

/** `Date`, epoch milliseconds, or an ISO-8601 string (as NDJSON files carry it; no offset = UTC). */
function toMillis(value: EmitInput["occurredAt"] | string): number {
  if (value === undefined) return Date.now();
  if (value instanceof Date) return value.getTime();
  if (typeof value === "string") {
    const ms = parseTime(value);
    if (ms === undefined)
      throw new SchemaError(`event field 'occurredAt' must be epoch milliseconds or an ISO-8601 date-time: ${TIME_FORMATS}`, {
        context: { path: "occurredAt" },
      });
    return ms;
  }
  return value;
}

function normaliseDataset(d: { namespace: string; name: string; fields?: { name: string; categories?: string[] }[] }) {
  if (d.fields && d.fields.every((f) => f.categories !== undefined))
    return d as { namespace: string; name: string; fields: { name: string; categories: string[] }[] };
  return { namespace: d.namespace, name: d.name, fields: (d.fields ?? []).map((f) => ({ name: f.name, categories: f.categories ?? [] })) };
}

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Ids made one after another
 * sort together, so the store finds a batch's ids in a few granules of its id table.
 */
export function uuidv7(now: number = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = ((b[6] as number) & 0x0f) | 0x70;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
