import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  AVRO_SCHEMA_DIR,
  EventKind,
  Masking,
  Transform,
  createEventCodec,
  fingerprintBytes,
  fingerprintHex,
  frameBatch,
  loadEventSchemas,
  parsingCanonicalForm,
  schemaFingerprint,
  unframeBatch,
  type DataAccessEvent,
  type EventCodec,
} from "../../../services/codec/index.ts";
import { SchemaError } from "../../../services/errors/index.ts";

const v1Schema = JSON.parse(readFileSync(join(AVRO_SCHEMA_DIR, "data_access_event.v1.avsc"), "utf8")) as object;
const v2Schema = JSON.parse(readFileSync(join(AVRO_SCHEMA_DIR, "data_access_event.v2.avsc"), "utf8")) as object;
const V1_FINGERPRINT = "aa6e5da2d92c23a9";
const v3Schema = JSON.parse(readFileSync(join(AVRO_SCHEMA_DIR, "data_access_event.v3.avsc"), "utf8")) as object;
const V2_FINGERPRINT = "1a40b161c7197c49";
const V3_FINGERPRINT = "c9df0802215f7e98";

const codec: EventCodec = createEventCodec(loadEventSchemas());

function fullEvent(): DataAccessEvent {
  return {
    eventId: "5f0c6e1e-8a43-4f0b-9d0e-2f1c3a4b5c6d",
    kind: "SHARE",
    occurredAt: 1_700_000_123_456,
    service: "ads-sync",
    job: { namespace: "batch", name: "audiences.export" },
    runId: "run-42",
    inputs: [
      {
        namespace: "postgres://accounts",
        name: "security.two_factor",
        fields: [
          { name: "phone_number", categories: ["user.contact.phone_number"] },
          { name: "email", categories: ["user.contact.email", "user.contact"] },
        ],
      },
      { namespace: "kafka://prod", name: "whole.dataset", fields: [] },
    ],
    outputs: [{ namespace: "s3://exports", name: "audiences", fields: [{ name: "hash", categories: [] }] }],
    transform: "HASH",
    fieldLineage: [
      {
        output: { namespace: "s3://exports", name: "audiences", field: "hash" },
        inputs: [
          { namespace: "postgres://accounts", name: "security.two_factor", field: "phone_number" },
          { namespace: "postgres://accounts", name: "security.two_factor", field: "email" },
        ],
        transform: "HASH",
        masking: "ANONYMISED",
      },
    ],
    masking: "MASKED",
    purposes: ["marketing.advertising.third_party.targeted"],
    dataSubject: "customer",
    subjects: ["a1b2c3", "d4e5f6"],
    recipient: { name: "ad-partner", external: true },
    traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    pseudonymKeyId: "key-2024-01",
    attributes: { team: "growth", env: "prod", "unicode-ключ": "значение ✓" },
  };
}

/** The event as a reader of a version-1 or -2 body sees it: no mapping carries a masking of its own (null). */
function withoutMappingMasking(event: DataAccessEvent): DataAccessEvent {
  return { ...event, fieldLineage: event.fieldLineage.map((m) => ({ ...m, masking: null })) };
}

/** Copy of a decoded value with plain prototypes, so comparisons look at data only. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

describe("single-object encoding", () => {
  it("starts with the marker C3 01 followed by the little-endian CRC-64-AVRO fingerprint of the v3 canonical form", () => {
    const bytes = Buffer.from(codec.encode(fullEvent()));
    expect(bytes[0]).toBe(0xc3);
    expect(bytes[1]).toBe(0x01);
    const expected = fingerprintBytes(schemaFingerprint(parsingCanonicalForm(v3Schema as never)));
    expect([...bytes.subarray(2, 10)]).toEqual([...expected]);
    expect(bytes.readBigUInt64LE(2).toString(16).padStart(16, "0")).toBe(V3_FINGERPRINT);
  });

  it("puts exactly the Avro binary body of the v3 schema after the 10-byte header", () => {
    const event = fullEvent();
    const bytes = Buffer.from(codec.encode(event));
    expect(bytes.subarray(10).equals(codec.readerType.toBuffer(event))).toBe(true);
  });

  it("pins the fingerprints of the shipped schemas (v1 aa6e5da2d92c23a9, v2 1a40b161c7197c49, v3 c9df0802215f7e98)", () => {
    expect(codec.writerFingerprint).toBe(V3_FINGERPRINT);
    expect(fingerprintHex(schemaFingerprint(parsingCanonicalForm(v3Schema as never)))).toBe(V3_FINGERPRINT);
    expect(fingerprintHex(schemaFingerprint(parsingCanonicalForm(v1Schema as never)))).toBe(V1_FINGERPRINT);
    expect(fingerprintHex(schemaFingerprint(parsingCanonicalForm(v2Schema as never)))).toBe(V2_FINGERPRINT);
  });

  it("computes the same canonical form for the v3 schema as avsc does", () => {
    expect(parsingCanonicalForm(v3Schema as never)).toBe(JSON.stringify(codec.readerType.schema()));
  });

  it("maps fingerprints back to registered versions and unknown ones to undefined", () => {
    expect(codec.versionOf(V3_FINGERPRINT)).toBe(3);
    expect(codec.versionOf(V2_FINGERPRINT)).toBe(2);
    expect(codec.versionOf(V1_FINGERPRINT)).toBe(1);
    expect(codec.versionOf("0000000000000000")).toBeUndefined();
  });

  it("round-trips a full event with every field set", () => {
    const event = fullEvent();
    const decoded = codec.decode(codec.encode(event));
    expect(plain(decoded.event)).toEqual(event);
    expect(decoded.writerVersion).toBe(3);
    expect(decoded.writerFingerprint).toBe(V3_FINGERPRINT);
  });

  it("round-trips an event whose optional unions are null and arrays empty", () => {
    const event: DataAccessEvent = {
      ...fullEvent(),
      kind: "COLLECT",
      inputs: [],
      outputs: [],
      fieldLineage: [],
      purposes: [],
      subjects: [],
      recipient: null,
      traceparent: null,
      attributes: {},
    };
    expect(plain(codec.decode(codec.encode(event)).event)).toEqual(event);
  });

  it("decodes a Uint8Array view that starts at a non-zero offset of a larger buffer", () => {
    const encoded = codec.encode(fullEvent());
    const backing = new Uint8Array(encoded.length + 7);
    backing.set(encoded, 3);
    const view = new Uint8Array(backing.buffer, 3, encoded.length);
    expect(plain(codec.decode(view).event)).toEqual(fullEvent());
  });
});

describe("schema evolution", () => {
  it("decodes a v1-written message into the v3 reader with pseudonymKeyId 'default', attributes {}, no masking per mapping and writerVersion 1", () => {
    const event = fullEvent();
    const bytes = Buffer.from(codec.encodeWithVersion(event, 1));
    expect(bytes.readBigUInt64LE(2).toString(16).padStart(16, "0")).toBe(V1_FINGERPRINT);
    const decoded = codec.decode(bytes);
    expect(decoded.writerVersion).toBe(1);
    expect(decoded.writerFingerprint).toBe(V1_FINGERPRINT);
    expect(decoded.event.pseudonymKeyId).toBe("default");
    expect(decoded.event.attributes).toEqual({});
    expect(plain(decoded.event)).toEqual({ ...withoutMappingMasking(event), pseudonymKeyId: "default", attributes: {} });
  });

  it("writes a v1 body that a plain v1 reader reads (no v2 fields on the wire)", () => {
    const event = fullEvent();
    const bytes = Buffer.from(codec.encodeWithVersion(event, 1));
    const v1Only = createEventCodec([{ version: 1, schema: v1Schema }]);
    const decoded = v1Only.decode(bytes);
    expect(decoded.writerVersion).toBe(1);
    expect(decoded.event).not.toHaveProperty("pseudonymKeyId");
    expect(decoded.event).not.toHaveProperty("attributes");
    expect(decoded.event.purposes).toEqual(["marketing.advertising.third_party.targeted"]);
  });

  it("refuses to encode with a version that is not registered", () => {
    expect(() => codec.encodeWithVersion(fullEvent(), 4)).toThrow(SchemaError);
    expect(() => codec.encodeWithVersion(fullEvent(), 4)).toThrow("no event schema version 4 is registered");
  });

  it("validates the event against the older schema before encoding with it", () => {
    expect(() => codec.encodeWithVersion({ ...fullEvent(), service: 7 }, 1)).toThrow("event field 'service' is not a valid string");
  });

  it("refuses to build a codec without any schema", () => {
    expect(() => createEventCodec([])).toThrow("no event schema registered");
  });

  it("uses the highest version as writer whatever the order the schemas are given in", () => {
    const reversed = createEventCodec([
      { version: 2, schema: v2Schema },
      { version: 1, schema: v1Schema },
    ]);
    expect(reversed.writerFingerprint).toBe(V2_FINGERPRINT);
  });
});

describe("Confluent framing", () => {
  it("writes magic byte 00 and the registry id as 4 bytes big-endian, then the body, and decodes it back", () => {
    const event = fullEvent();
    const bytes = Buffer.from(codec.encodeConfluent(event, 3));
    expect(bytes[0]).toBe(0x00);
    expect([...bytes.subarray(1, 5)]).toEqual([0, 0, 0, 3]);
    expect(bytes.subarray(5).equals(codec.readerType.toBuffer(event))).toBe(true);
    const decoded = codec.decode(bytes);
    expect(plain(decoded.event)).toEqual(event);
    expect(decoded.writerVersion).toBe(3);
    expect(decoded.writerFingerprint).toBe(V3_FINGERPRINT);
  });

  it("writes a multi-byte registry id big-endian (0x01020304 as 01 02 03 04)", () => {
    const c = createEventCodec([{ version: 3, schema: v3Schema, registryId: 0x01020304 }]);
    const bytes = Buffer.from(c.encodeConfluent(fullEvent(), 0x01020304));
    expect([...bytes.subarray(0, 5)]).toEqual([0, 1, 2, 3, 4]);
    expect(plain(c.decode(bytes).event)).toEqual(fullEvent());
  });

  it("resolves a message framed with the v1 registry id into the v3 reader with defaults", () => {
    const decoded = codec.decode(codec.encodeConfluent(fullEvent(), 1));
    expect(decoded.writerVersion).toBe(1);
    expect(decoded.event.pseudonymKeyId).toBe("default");
    expect(decoded.event.attributes).toEqual({});
  });

  it("refuses to encode with an unknown registry id", () => {
    expect(() => codec.encodeConfluent(fullEvent(), 7)).toThrow(SchemaError);
    expect(() => codec.encodeConfluent(fullEvent(), 7)).toThrow("no event schema has registry id 7");
  });

  it("rejects a message naming an unknown registry id", () => {
    const body = codec.readerType.toBuffer(fullEvent());
    const bytes = Buffer.concat([Buffer.from([0x00, 0x00, 0x00, 0x00, 0x07]), body]);
    expect(() => codec.decode(bytes)).toThrow(SchemaError);
    expect(() => codec.decode(bytes)).toThrow("message names unknown registry schema id 7");
  });
});

describe("decode errors", () => {
  function errorOf(fn: () => unknown): SchemaError {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(SchemaError);
      return e as SchemaError;
    }
    throw new Error("expected a SchemaError, nothing was thrown");
  }

  it("rejects a message written with an unknown schema and names its fingerprint", () => {
    const foreign = schemaFingerprint('"string"');
    const bytes = Buffer.concat([Buffer.from([0xc3, 0x01]), fingerprintBytes(foreign), Buffer.from([0x02, 0x61])]);
    const err = errorOf(() => codec.decode(bytes));
    expect(err.message).toBe(`message was written with an unknown schema (fingerprint ${foreign.toString(16).padStart(16, "0")})`);
    expect(err.context["fingerprint"]).toBe(foreign.toString(16).padStart(16, "0"));
  });

  it("rejects a v1 message in a codec that only knows v2, naming the v1 fingerprint", () => {
    const v2Only = createEventCodec([{ version: 2, schema: v2Schema }]);
    const err = errorOf(() => v2Only.decode(codec.encodeWithVersion(fullEvent(), 1)));
    expect(err.message).toContain(`fingerprint ${V1_FINGERPRINT}`);
  });

  it("rejects a body cut one byte short as truncated", () => {
    const bytes = codec.encode(fullEvent());
    const err = errorOf(() => codec.decode(bytes.subarray(0, bytes.length - 1)));
    expect(err.message).toBe("message body does not decode with schema version 3");
    expect((err.cause as Error).message).toBe("message field 'attributes' is truncated");
  });

  it("rejects every truncation of the body, down to an empty body", () => {
    const bytes = codec.encode(fullEvent());
    for (let end = 10; end < bytes.length; end++) {
      const err = errorOf(() => codec.decode(bytes.subarray(0, end)));
      expect(err.message).toBe("message body does not decode with schema version 3");
    }
  });

  it("rejects trailing bytes after the body", () => {
    const bytes = Buffer.concat([codec.encode(fullEvent()), Buffer.from([0x00])]);
    const err = errorOf(() => codec.decode(bytes));
    expect(err.message).toBe("message body does not decode with schema version 3");
    expect((err.cause as Error).message).toBe("trailing bytes after body");
  });

  it("rejects trailing bytes after a v1 body and names version 1", () => {
    const bytes = Buffer.concat([codec.encodeWithVersion(fullEvent(), 1), Buffer.from([0x01, 0x02])]);
    expect(errorOf(() => codec.decode(bytes)).message).toBe("message body does not decode with schema version 1");
  });

  it.each([
    ["JSON text", Buffer.from('{"eventId":"e1","kind":"USE"}')],
    ["a wrong second marker byte (C3 02)", Buffer.concat([Buffer.from([0xc3, 0x02]), fingerprintBytes(0n), Buffer.from([0])])],
    ["an empty message", Buffer.alloc(0)],
    ["the marker with a fingerprint cut short", Buffer.from([0xc3, 0x01, 0x49, 0x7c])],
  ])("rejects bytes without the C3 01 marker or Confluent magic: %s", (_name, bytes) => {
    const err = errorOf(() => codec.decode(bytes));
    expect(err.message).toBe("message is not Avro single-object encoded (no C3 01 marker) nor Confluent framed");
    expect(err.context["length"]).toBe(bytes.length);
  });
});

describe("validate", () => {
  function messageFor(event: unknown): string {
    try {
      codec.validate(event);
    } catch (e) {
      expect(e).toBeInstanceOf(SchemaError);
      return (e as Error).message;
    }
    return "valid";
  }

  it("accepts a complete valid event", () => {
    expect(messageFor(fullEvent())).toBe("valid");
  });

  it("names a nested array path like inputs[0].fields[0].categories[0]", () => {
    const event = fullEvent() as unknown as { inputs: { fields: { categories: unknown[] }[] }[] };
    const field = event.inputs[0]?.fields[0];
    if (!field) throw new Error("fixture has no field");
    field.categories = [42];
    expect(messageFor(event)).toBe("event field 'inputs[0].fields[0].categories[0]' is not a valid string");
  });

  it("names the index of a later element, e.g. inputs[1].fields[0].name", () => {
    const event = {
      ...fullEvent(),
      inputs: [fullEvent().inputs[0], { namespace: "n", name: "d", fields: [{ name: null, categories: [] }] }],
    };
    expect(messageFor(event)).toBe("event field 'inputs[1].fields[0].name' is not a valid string");
  });

  it("names a missing nested record field as job.namespace", () => {
    expect(messageFor({ ...fullEvent(), job: { name: "j" } })).toBe("event field 'job.namespace' is not a valid string");
  });

  it("names kind and lists the enum symbols when the kind is unknown", () => {
    expect(messageFor({ ...fullEvent(), kind: "READ" })).toBe(
      "event field 'kind' is not a valid enum (COLLECT, DERIVE, USE, SHARE, DELETE)",
    );
  });

  it("names fieldLineage[0].inputs[1].field inside column-level lineage", () => {
    const event = fullEvent() as unknown as { fieldLineage: { inputs: Record<string, unknown>[] }[] };
    const ref = event.fieldLineage[0]?.inputs[1];
    if (!ref) throw new Error("fixture has no field ref");
    delete ref["field"];
    expect(messageFor(event)).toBe("event field 'fieldLineage[0].inputs[1].field' is not a valid string");
  });

  it("names a bad value inside the attributes map", () => {
    expect(messageFor({ ...fullEvent(), attributes: { team: 1 } })).toBe("event field 'attributes.team' is not a valid string");
  });

  it("names a fractional occurredAt as not a valid long", () => {
    expect(messageFor({ ...fullEvent(), occurredAt: 1.5 })).toBe("event field 'occurredAt' is not a valid long");
  });

  it("says '(event)' and lists the record's fields when the value is not a record at all", () => {
    expect(messageFor("not an event")).toBe(
      "event field '(event)' is not a valid DataAccessEvent record (an object with eventId, kind, occurredAt, service, job, runId, " +
        "inputs, outputs, transform, fieldLineage, masking, purposes, dataSubject, subjects, recipient, traceparent, pseudonymKeyId, attributes)",
    );
  });

  it("names a nested record given as a string as job, a Job record with namespace and name", () => {
    expect(messageFor({ ...fullEvent(), job: "batch/export" })).toBe(
      "event field 'job' is not a valid Job record (an object with namespace, name)",
    );
  });

  it("puts the path and expected type in the error context", () => {
    try {
      codec.validate({ ...fullEvent(), masking: "HIDDEN" });
      throw new Error("validate accepted a bad masking");
    } catch (e) {
      expect(e).toBeInstanceOf(SchemaError);
      expect((e as SchemaError).context).toEqual({ path: "masking", expected: "enum (NONE, MASKED, ANONYMISED)" });
      expect((e as SchemaError).code).toBe("SCHEMA");
    }
  });

  it("accepts an event that leaves out fields with schema defaults, and encodes the defaults", () => {
    const { pseudonymKeyId: _k, attributes: _a, traceparent: _t, ...rest } = fullEvent();
    expect(messageFor(rest)).toBe("valid");
    const decoded = codec.decode(codec.encode(rest as DataAccessEvent)).event;
    expect(decoded.pseudonymKeyId).toBe("default");
    expect(decoded.attributes).toEqual({});
    expect(decoded.traceparent).toBeNull();
  });

  it("rejects a missing field that has no default (dataSubject)", () => {
    const { dataSubject: _d, ...rest } = fullEvent();
    expect(messageFor(rest)).toBe("event field 'dataSubject' is not a valid string");
  });

  it.each([Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER])("rejects occurredAt %d, outside the longs avsc can write", (occurredAt) => {
    expect(messageFor({ ...fullEvent(), occurredAt })).toBe("event field 'occurredAt' is not a valid long");
  });

  it.each([-1, 0, 2 ** 52 - 1, 2 ** 52, -(2 ** 52) - 1, Date.UTC(2300, 0, 1)])(
    "rejects occurredAt %d, outside the times the store keeps exactly (1970 to 2299)",
    (occurredAt) => {
      expect(messageFor({ ...fullEvent(), occurredAt })).toBe(
        "event field 'occurredAt' must be milliseconds since 1970, from 1970-01-01T00:00:00.001Z to 2299-12-31T23:59:59.999Z",
      );
    },
  );

  it.each([0, 1, 2 ** 52 - 1, 1_700_000_123_456])("round-trips the valid occurredAt %d", (occurredAt) => {
    expect(codec.decode(codec.encode({ ...fullEvent(), occurredAt })).event.occurredAt).toBe(occurredAt);
  });

  it("never turns an occurredAt that validate accepts into a different number: -(2^52)-1 and -6e15 must come back unchanged or be refused", () => {
    for (const occurredAt of [-(2 ** 52) - 1, -6_000_000_000_000_000]) {
      const event = { ...fullEvent(), occurredAt };
      let accepted = true;
      try {
        codec.validate(event);
      } catch {
        accepted = false;
      }
      // Either validate refuses the value, or it must come back unchanged.
      if (accepted) expect(codec.decode(codec.encode(event)).event.occurredAt).toBe(occurredAt);
    }
  });
});

// ---- property: random valid events round-trip ----

const text = fc.string({ unit: "grapheme", maxLength: 12 });
const key = text.filter((k) => k !== "__proto__");
const dataset = fc.record({
  namespace: text,
  name: text,
  fields: fc.array(fc.record({ name: text, categories: fc.array(text, { maxLength: 3 }) }), { maxLength: 3 }),
});
const fieldRef = fc.record({ namespace: text, name: text, field: text });
const transform = fc.constantFrom(...Object.values(Transform));
const eventArb: fc.Arbitrary<DataAccessEvent> = fc.record({
  eventId: fc.uuid(),
  kind: fc.constantFrom(...Object.values(EventKind)),
  // validate() takes milliseconds from 1970 to the end of 2299 (what the store keeps exactly).
  occurredAt: fc.integer({ min: 1, max: Date.UTC(2299, 11, 31, 23, 59, 59, 999) }),
  service: text,
  job: fc.record({ namespace: text, name: text }),
  runId: text,
  inputs: fc.array(dataset, { maxLength: 3 }),
  outputs: fc.array(dataset, { maxLength: 3 }),
  transform,
  fieldLineage: fc.array(
    fc.record({
      output: fieldRef,
      inputs: fc.array(fieldRef, { maxLength: 3 }),
      transform,
      masking: fc.option(fc.constantFrom(...Object.values(Masking)), { nil: null }),
    }),
    { maxLength: 3 },
  ),
  masking: fc.constantFrom(...Object.values(Masking)),
  purposes: fc.array(text, { maxLength: 3 }),
  dataSubject: text,
  subjects: fc.array(fc.stringMatching(/^[0-9a-f]{8,64}$/), { maxLength: 4 }),
  recipient: fc.option(fc.record({ name: text, external: fc.boolean() }), { nil: null }),
  traceparent: fc.option(text, { nil: null }),
  pseudonymKeyId: text,
  attributes: fc.dictionary(key, text, { maxKeys: 4, noNullPrototype: true }),
});

describe("round-trip properties", () => {
  it("accepts and round-trips any random valid event through encode/decode unchanged", () => {
    fc.assert(
      fc.property(eventArb, (event) => {
        codec.validate(event);
        const decoded = codec.decode(codec.encode(event));
        expect(decoded.writerVersion).toBe(3);
        expect(plain(decoded.event)).toEqual(plain(event));
      }),
      { numRuns: 300 },
    );
  });

  it("round-trips any random valid event through Confluent framing unchanged", () => {
    fc.assert(
      fc.property(eventArb, (event) => {
        expect(plain(codec.decode(codec.encodeConfluent(event, 3)).event)).toEqual(plain(event));
        expect(plain(codec.decode(codec.encodeConfluent(event, 2)).event)).toEqual(plain(withoutMappingMasking(event)));
      }),
      { numRuns: 100 },
    );
  });

  it("reads any random event written as v1 with only the v2 and v3 fields replaced by their defaults", () => {
    fc.assert(
      fc.property(eventArb, (event) => {
        const decoded = codec.decode(codec.encodeWithVersion(event, 1));
        expect(decoded.writerVersion).toBe(1);
        expect(plain(decoded.event)).toEqual(plain({ ...withoutMappingMasking(event), pseudonymKeyId: "default", attributes: {} }));
      }),
      { numRuns: 100 },
    );
  });
});

describe("length-prefixed batches", () => {
  it("frames each message as a 4-byte big-endian length followed by its bytes", () => {
    const framed = frameBatch([Uint8Array.from([1, 2, 3]), Uint8Array.from([]), Uint8Array.from([9])]);
    expect([...framed]).toEqual([0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 1, 9]);
  });

  it("frames an empty batch as no bytes and unframes no bytes as an empty batch", () => {
    expect(frameBatch([]).length).toBe(0);
    expect(unframeBatch(Buffer.alloc(0))).toEqual([]);
  });

  it("round-trips encoded events through a batch", () => {
    const messages = [codec.encode(fullEvent()), codec.encodeWithVersion(fullEvent(), 1), codec.encodeConfluent(fullEvent(), 2)];
    const parts = unframeBatch(frameBatch(messages));
    expect(parts).toHaveLength(3);
    expect(parts.map((p) => codec.decode(p).writerVersion)).toEqual([3, 1, 2]);
    parts.forEach((p, i) => expect(p.equals(Buffer.from(messages[i] as Uint8Array))).toBe(true));
  });

  it("round-trips any list of byte arrays", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 8 }), (messages) => {
        const parts = unframeBatch(frameBatch(messages));
        expect(parts.map((p) => [...p])).toEqual(messages.map((m) => [...m]));
      }),
    );
  });

  it("reports a frame whose length prefix is cut off, naming the frame", () => {
    const framed = frameBatch([Uint8Array.from([1, 2, 3]), Uint8Array.from([4, 5])]);
    const cut = framed.subarray(0, 7 + 2);
    expect(() => unframeBatch(cut)).toThrow(SchemaError);
    expect(() => unframeBatch(cut)).toThrow("batch is truncated: frame 1 has no complete length prefix");
  });

  it("reports a frame whose body is cut off, naming the frame and its length", () => {
    const framed = frameBatch([Uint8Array.from([1, 2, 3]), Uint8Array.from([4, 5])]);
    const cut = framed.subarray(0, framed.length - 1);
    expect(() => unframeBatch(cut)).toThrow("batch is truncated: frame 1 needs 2 bytes");
    try {
      unframeBatch(cut);
    } catch (e) {
      expect((e as SchemaError).context).toEqual({ frame: 1 });
    }
  });

  it("rejects every strict prefix of a non-empty batch that does not end on a frame boundary", () => {
    const framed = frameBatch([Uint8Array.from([1, 2, 3]), Uint8Array.from([4, 5])]);
    const boundaries = new Set([0, 7, framed.length]);
    for (let end = 1; end < framed.length; end++) {
      if (boundaries.has(end)) continue;
      expect(() => unframeBatch(framed.subarray(0, end))).toThrow(/^batch is truncated: frame [01] /);
    }
  });

  it("passes a frame over the message limit through whole, for the decoder to dead-letter alone", () => {
    const big = Buffer.alloc((1 << 20) + 1, 7);
    const parts = unframeBatch(frameBatch([Uint8Array.from([1]), big, Uint8Array.from([2])]));
    expect(parts.map((p) => p.length)).toEqual([1, (1 << 20) + 1, 1]);
    expect(() => codec.decode(parts[1] as Buffer)).toThrow(`message is ${(1 << 20) + 1} bytes, over the ${1 << 20}-byte message limit`);
  });

  it("reads a frame claiming more bytes than the body holds as a truncated batch, before reading its body", () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE((1 << 20) + 1, 0);
    expect(() => unframeBatch(header)).toThrow(`batch is truncated: frame 0 needs ${(1 << 20) + 1} bytes`);
  });
});
