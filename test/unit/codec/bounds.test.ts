import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  DecodeLimitError,
  createEventCodec,
  loadEventSchemas,
  type DataAccessEvent,
  type EventCodec,
} from "../../../services/codec/index.ts";
import { LineageAuditError, SchemaError } from "../../../services/errors/index.ts";
import { arrayLengthBomb, avroLong, avroString, headerOf } from "./hostile.ts";

const codec: EventCodec = createEventCodec(loadEventSchemas());
const MB = 1024 * 1024;

function event(overrides: Partial<DataAccessEvent> = {}): DataAccessEvent {
  return {
    eventId: "5f0c6e1e-8a43-4f0b-9d0e-2f1c3a4b5c6d",
    kind: "USE",
    occurredAt: 1_700_000_000_000,
    service: "ads-sync",
    job: { namespace: "batch", name: "audiences.export" },
    runId: "run-42",
    inputs: [{ namespace: "wh", name: "ads.keys", fields: [{ name: "email", categories: ["user.contact.email"] }] }],
    outputs: [],
    transform: "OTHER",
    fieldLineage: [
      {
        output: { namespace: "wh", name: "a", field: "x" },
        inputs: [{ namespace: "wh", name: "b", field: "y" }],
        transform: "COPY",
        masking: null,
      },
    ],
    masking: "NONE",
    purposes: ["marketing.advertising"],
    dataSubject: "customer",
    subjects: ["0123456789abcdef0123456789abcdef"],
    recipient: { name: "partner", external: true },
    traceparent: null,
    pseudonymKeyId: "default",
    attributes: { team: "ads" },
    ...overrides,
  };
}

function decodeError(bytes: Uint8Array): unknown {
  try {
    codec.decode(bytes);
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("bounded decoding", () => {
  it("refuses the 166-byte message whose inputs claim 2^28 items with a length-limit error, without growing the heap", () => {
    const bomb = arrayLengthBomb(codec);
    expect(bomb.length).toBe(166);
    global.gc?.();
    const before = process.memoryUsage().heapUsed;
    const error = decodeError(bomb);
    const grown = process.memoryUsage().heapUsed - before;
    expect(error).toBeInstanceOf(DecodeLimitError);
    expect((error as Error).message).toBe("message field 'inputs' claims 268435456 items, over the limit of 100000 per message");
    expect(grown).toBeLessThan(16 * MB);
  });

  it("refuses a string claiming 2^40 bytes when the message holds a few", () => {
    const bytes = Buffer.concat([headerOf(codec), avroLong(2 ** 40), Buffer.from("abc")]);
    const error = decodeError(bytes);
    expect(error).toBeInstanceOf(DecodeLimitError);
    expect((error as Error).message).toBe(
      "message field 'eventId' claims 1099511627776 bytes of string, over the 1048576-byte message limit",
    );
  });

  it("counts items across all arrays and maps of a message against one limit", () => {
    const small = createEventCodec(loadEventSchemas(), { maxItems: 10 });
    const many = event({
      purposes: Array.from({ length: 6 }, () => "marketing"),
      subjects: Array.from({ length: 6 }, () => "0".repeat(32)),
    });
    expect(() => small.decode(small.encode(many))).toThrow(DecodeLimitError);
    expect(() => small.decode(small.encode(many))).toThrow("message field 'purposes' claims 6 items, over the limit of 10 per message");
    expect(small.decode(small.encode(event())).event).toEqual(event());
  });

  it("refuses a map block whose byte size claims more than remains", () => {
    const full = Buffer.from(codec.encode(event({ attributes: {} })));
    // attributes is the last field: its terminating 0 becomes a negative-count block with a huge size.
    const bytes = Buffer.concat([
      full.subarray(0, full.length - 1),
      avroLong(-1),
      avroLong(2 ** 30),
      avroString("k"),
      avroString("v"),
      avroLong(0),
    ]);
    expect((decodeError(bytes) as Error).message).toBe(
      "message field 'attributes' claims 1073741824 bytes in a block, over the 1048576-byte message limit",
    );
  });

  it("refuses a message over the 1 MiB message limit before reading it", () => {
    const big = Buffer.concat([Buffer.from(codec.encode(event())), Buffer.alloc(MB)]);
    expect((decodeError(big) as Error).message).toBe(`message is ${big.length} bytes, over the ${MB}-byte message limit`);
  });

  it("names trailing bytes without decoding further (a raw e-mail as subject plus one byte)", () => {
    const bytes = Buffer.concat([Buffer.from(codec.encode(event({ subjects: ["alice@example.com"] }))), Buffer.from([0])]);
    const error = decodeError(bytes);
    expect(error).toBeInstanceOf(SchemaError);
    expect((error as Error).message).toBe("message body does not decode with schema version 3");
    expect(((error as Error).cause as Error).message).toBe("trailing bytes after body");
    expect(JSON.stringify({ ...(error as SchemaError), message: (error as Error).message })).not.toContain("alice");
  });

  it("refuses at emit an event over the message limit, with a clear error", () => {
    const huge = event({ attributes: { note: "x".repeat(MB) } });
    expect(() => codec.encodeWithinLimits(huge)).toThrow(
      /^event is \d+ bytes encoded, over the 1048576-byte message limit; split it into smaller events$/,
    );
  });
});

describe("fuzz: random and mutated messages through the codec", () => {
  const valid = [
    Buffer.from(codec.encode(event())),
    Buffer.from(codec.encode(event({ kind: "COLLECT", inputs: [], outputs: [{ namespace: "wh", name: "t", fields: [] }] }))),
    Buffer.from(codec.encodeWithVersion({ ...event(), pseudonymKeyId: undefined, attributes: undefined }, 1)),
    Buffer.from(codec.encodeConfluent(event(), 2)),
  ];
  type Mutation =
    | { op: "set"; at: number; byte: number }
    | { op: "insert"; at: number; value: number }
    | { op: "cut"; at: number }
    | { op: "repeat"; at: number; length: number };
  // A mutation: overwrite, insert a (possibly huge) varint, cut, or repeat a slice.
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ op: fc.constant("set" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({
      op: fc.constant("insert" as const),
      at: fc.nat(),
      value: fc.oneof(fc.integer(), fc.constantFrom(2 ** 28, 2 ** 31, 2 ** 40, -(2 ** 28))),
    }),
    fc.record({ op: fc.constant("cut" as const), at: fc.nat() }),
    fc.record({ op: fc.constant("repeat" as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  );
  function mutate(base: Buffer, steps: Mutation[]): Buffer {
    let b = base;
    for (const m of steps) {
      const at = b.length === 0 ? 0 : m.at % b.length;
      if (m.op === "set") (b = Buffer.from(b))[at] = m.byte;
      else if (m.op === "insert") b = Buffer.concat([b.subarray(0, at), avroLong(m.value), b.subarray(at)]);
      else if (m.op === "cut") b = b.subarray(0, at);
      else b = Buffer.concat([b.subarray(0, at + m.length), b.subarray(at)]);
    }
    return b;
  }
  function onlyOwnErrors(bytes: Uint8Array): void {
    try {
      codec.decode(bytes);
    } catch (error) {
      if (!(error instanceof LineageAuditError)) throw error;
    }
  }

  it("decodes or refuses with the project's own errors, with memory bounded", () => {
    const before = process.memoryUsage().rss;
    fc.assert(
      fc.property(fc.constantFrom(...valid), fc.array(mutation, { minLength: 1, maxLength: 4 }), (base, steps) =>
        onlyOwnErrors(mutate(base, steps)),
      ),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(...valid.map((v) => v.subarray(0, 10))), (body, header) => {
        onlyOwnErrors(body);
        onlyOwnErrors(Buffer.concat([header, body]));
      }),
      { numRuns: 3000 },
    );
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * MB);
  });
});
