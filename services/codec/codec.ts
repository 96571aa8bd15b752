import { SchemaError } from "../errors/index.ts";
import { typeForSchema, type AvroResolver, type AvroType } from "./avro.ts";
import { parsingCanonicalForm } from "./canonical.ts";
import { fingerprintBytes, fingerprintHex, schemaFingerprint } from "./fingerprint.ts";
import { PSEUDONYM_PATTERN, type DataAccessEvent } from "./types.ts";
import { compileSchema, scanBounds, DecodeLimitError, type SchemaNode } from "./bounds.ts";
import { defaultDecodeLimits, type DecodeLimits } from "./limits.ts";
import { EVENT_TIME_RANGE } from "./time.ts";

/** Avro single-object encoding marker (specification, "Single-object encoding"). */
const MARKER_0 = 0xc3;
const MARKER_1 = 0x01;
const HEADER_BYTES = 10;
/** Confluent Schema Registry wire format: magic byte 0 + 4-byte big-endian schema id. */
const CONFLUENT_MAGIC = 0x00;
const CONFLUENT_HEADER_BYTES = 5;

export interface WriterSchema {
  /** Schema version, as in the file name `data_access_event.vN.avsc`. */
  version: number;
  schema: object;
  /** Id of this schema in a Confluent-compatible registry, when one is used. */
  registryId?: number;
}

interface Writer {
  version: number;
  type: AvroType;
  fingerprint: bigint;
  fingerprintHex: string;
  header: Uint8Array;
  resolver: AvroResolver;
  bounds: SchemaNode;
}

export interface DecodedMessage {
  event: DataAccessEvent;
  /** Fingerprint (hex) of the schema the producer wrote with. */
  writerFingerprint: string;
  writerVersion: number;
}

export interface EventCodec {
  /** Fingerprint (hex) of the schema `encode` writes with. */
  readonly writerFingerprint: string;
  /** Version of that schema (what `schema_version` stores for events built in this process). */
  readonly writerVersion: number;
  /** The limits `decode` enforces before decoding anything. */
  readonly limits: Readonly<DecodeLimits>;
  /** Validates `event` against the writer schema; throws a SchemaError naming the first bad field. */
  validate(event: unknown): asserts event is DataAccessEvent;
  /**
   * Whether a rejected event's payload may be kept in a dead letter: it is a DataAccessEvent by
   * the schema and every subject id is a pseudonym. Anything else may hold raw identifiers.
   */
  holdsOnlyPseudonyms(event: unknown): boolean;
  /** Single-object encoding, refused (SchemaError) when over `limits.maxMessageBytes`. */
  encodeWithinLimits(event: DataAccessEvent): Uint8Array;
  /** Single-object encoding: `C3 01` + CRC-64-AVRO fingerprint (LE) + Avro binary body. */
  encode(event: DataAccessEvent): Uint8Array;
  /** Encodes the body only, framed by `C3 01 + fingerprint` of an older registered schema version. */
  encodeWithVersion(event: object, version: number): Uint8Array;
  /** Confluent wire format: `00` + 4-byte schema id + body. */
  encodeConfluent(event: DataAccessEvent, registryId: number): Uint8Array;
  /** Decodes either framing into the current reader schema, resolving schema evolution. */
  decode(bytes: Uint8Array): DecodedMessage;
  /** The current (reader) schema as an avsc type, for container files. */
  readonly readerType: AvroType;
  /** Registered version of the schema with this fingerprint (hex), if any. */
  versionOf(fingerprintHex: string): number | undefined;
}

/**
 * Builds the codec over the known writer schemas. The newest version is both the schema new
 * events are written with and the reader schema every message is resolved into.
 */
export function createEventCodec(writers: readonly WriterSchema[], limits: Partial<DecodeLimits> = {}): EventCodec {
  const bounds: DecodeLimits = { ...defaultDecodeLimits, ...limits };
  if (writers.length === 0) throw new SchemaError("no event schema registered");
  const sorted = [...writers].sort((a, b) => a.version - b.version);
  const current = sorted[sorted.length - 1] as WriterSchema;
  const readerType = typeForSchema(current.schema);
  const byFingerprint = new Map<bigint, Writer>();
  const byVersion = new Map<number, Writer>();
  const byRegistryId = new Map<number, Writer>();
  for (const w of sorted) {
    const type = typeForSchema(w.schema);
    const fingerprint = schemaFingerprint(parsingCanonicalForm(w.schema as never));
    const header = new Uint8Array(HEADER_BYTES);
    header[0] = MARKER_0;
    header[1] = MARKER_1;
    header.set(fingerprintBytes(fingerprint), 2);
    const writer: Writer = {
      version: w.version,
      type,
      fingerprint,
      fingerprintHex: fingerprintHex(fingerprint),
      header,
      resolver: readerType.createResolver(type),
      bounds: compileSchema(w.schema),
    };
    byFingerprint.set(fingerprint, writer);
    byVersion.set(w.version, writer);
    if (w.registryId !== undefined) byRegistryId.set(w.registryId, writer);
  }
  const currentWriter = byVersion.get(current.version) as Writer;

  function validateWith(type: AvroType, event: unknown): void {
    // The fast check first; the path-tracking one only to explain a failure.
    if (type.isValid(event)) return;
    let firstPath: string | undefined;
    let expected: string | undefined;
    const ok = type.isValid(event, {
      errorHook(path: string[], _value: unknown, fieldType: AvroType) {
        if (firstPath !== undefined) return;
        firstPath = path.length === 0 ? "(event)" : path.join(".").replace(/\.(\d+)(?=\.|$)/g, "[$1]");
        expected = describeType(fieldType);
      },
    });
    if (!ok) {
      throw new SchemaError(`event field '${firstPath}' is not a valid ${expected}`, {
        context: { path: firstPath, expected },
      });
    }
  }

  function frame(header: Uint8Array, body: Uint8Array): Uint8Array {
    const out = Buffer.allocUnsafe(header.length + body.length);
    out.set(header, 0);
    out.set(body, header.length);
    return out;
  }

  return {
    writerFingerprint: currentWriter.fingerprintHex,
    writerVersion: currentWriter.version,
    limits: bounds,
    readerType,
    versionOf(hex) {
      for (const w of byVersion.values()) if (w.fingerprintHex === hex) return w.version;
      return undefined;
    },
    validate(event: unknown): asserts event is DataAccessEvent {
      validateWith(currentWriter.type, event);
      // avsc's long encoding is exact only within ±2^52; times are milliseconds since 1970.
      // The store's DateTime64(3) column holds no time after 2299 (it would clamp it).
      const at = (event as DataAccessEvent).occurredAt;
      if (!Number.isInteger(at) || at < EVENT_TIME_RANGE.min || at > EVENT_TIME_RANGE.max) {
        throw new SchemaError(`event field 'occurredAt' must be milliseconds since 1970, from ${EVENT_TIME_RANGE.text}`, {
          context: { path: "occurredAt" },
        });
      }
    },
    holdsOnlyPseudonyms(event) {
      if (!currentWriter.type.isValid(event)) return false;
      return (event as DataAccessEvent).subjects.every((s) => PSEUDONYM_PATTERN.test(s));
    },
    encodeWithinLimits(event) {
      const bytes = frame(currentWriter.header, currentWriter.type.toBuffer(event));
      if (bytes.byteLength > bounds.maxMessageBytes)
        throw new DecodeLimitError(
          `event is ${bytes.byteLength} bytes encoded, over the ${bounds.maxMessageBytes}-byte message limit; split it into smaller events`,
          { context: { bytes: bytes.byteLength, limit: "maxMessageBytes" } },
        );
      return bytes;
    },
    encode(event) {
      return frame(currentWriter.header, currentWriter.type.toBuffer(event));
    },
    encodeWithVersion(event, version) {
      const writer = byVersion.get(version);
      if (!writer) throw new SchemaError(`no event schema version ${version} is registered`, { context: { version } });
      validateWith(writer.type, event);
      return frame(writer.header, writer.type.toBuffer(event));
    },
    encodeConfluent(event, registryId) {
      const writer = byRegistryId.get(registryId);
      if (!writer) throw new SchemaError(`no event schema has registry id ${registryId}`, { context: { registryId } });
      const header = new Uint8Array(CONFLUENT_HEADER_BYTES);
      header[0] = CONFLUENT_MAGIC;
      new DataView(header.buffer).setUint32(1, registryId, false);
      return frame(header, writer.type.toBuffer(event));
    },
    decode(bytes) {
      const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (buf.length > bounds.maxMessageBytes)
        throw new DecodeLimitError(`message is ${buf.length} bytes, over the ${bounds.maxMessageBytes}-byte message limit`, {
          context: { length: buf.length, limit: "maxMessageBytes" },
        });
      let writer: Writer | undefined;
      let offset: number;
      if (buf.length >= HEADER_BYTES && buf[0] === MARKER_0 && buf[1] === MARKER_1) {
        const fingerprint = buf.readBigUInt64LE(2);
        writer = byFingerprint.get(fingerprint);
        if (!writer) {
          throw new SchemaError(`message was written with an unknown schema (fingerprint ${fingerprintHex(fingerprint)})`, {
            context: { fingerprint: fingerprintHex(fingerprint) },
          });
        }
        offset = HEADER_BYTES;
      } else if (buf.length >= CONFLUENT_HEADER_BYTES && buf[0] === CONFLUENT_MAGIC) {
        const id = buf.readUInt32BE(1);
        writer = byRegistryId.get(id);
        if (!writer) throw new SchemaError(`message names unknown registry schema id ${id}`, { context: { registryId: id } });
        offset = CONFLUENT_HEADER_BYTES;
      } else {
        throw new SchemaError("message is not Avro single-object encoded (no C3 01 marker) nor Confluent framed", {
          context: { length: buf.length },
        });
      }
      // Every length is checked before avsc allocates by it.
      let end: number;
      try {
        end = scanBounds(writer.bounds, buf, offset, buf.length, bounds);
      } catch (error) {
        if (error instanceof DecodeLimitError || !(error instanceof SchemaError)) throw error;
        throw malformed(writer, buf.length, error.message);
      }
      if (end !== buf.length) throw malformed(writer, buf.length, "trailing bytes after body");
      let event: DataAccessEvent;
      try {
        const decoded: { value: DataAccessEvent; offset: number } = readerType.decode(buf, offset, writer.resolver);
        const { value, offset: end } = decoded;
        if (end !== buf.length) throw new Error(end < 0 ? "truncated body" : "trailing bytes after body");
        event = value;
      } catch (cause) {
        throw new SchemaError(`message body does not decode with schema version ${writer.version}`, {
          cause: cause instanceof Error ? new Error(cause.message) : undefined,
          context: { fingerprint: writer.fingerprintHex, length: buf.length },
        });
      }
      return { event, writerFingerprint: writer.fingerprintHex, writerVersion: writer.version };
    },
  };
}

/** Made outside decode(): a closure per message costs more than the message. */
function malformed(writer: { version: number; fingerprintHex: string }, length: number, detail: string): SchemaError {
  return new SchemaError(`message body does not decode with schema version ${writer.version}`, {
    cause: new Error(detail),
    context: { fingerprint: writer.fingerprintHex, length },
  });
}

function describeType(type: AvroType): string {
  const name = type.typeName;
  if (name === "enum") return `enum (${(type as unknown as { symbols: string[] }).symbols.join(", ")})`;
  if (name === "record") {
    const fields = (type as unknown as { fields: { name: string }[] }).fields.map((f) => f.name);
    return `${(type.name ?? "").split(".").pop()} record (an object with ${fields.join(", ")})`;
  }
  if (name === "array") return "array";
  if (name === "union:unwrapped" || name === "union:wrapped") return "value of one of the union's branches";
  return name;
}
