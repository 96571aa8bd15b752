import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { crc64Avro, fingerprintBytes, fingerprintHex, parsingCanonicalForm, schemaFingerprint } from "../../../services/codec/index.ts";
import { SchemaError } from "../../../services/errors/index.ts";

interface Vector {
  id: string;
  schema: string;
  canonical: string;
  fingerprint: string;
  fingerprintFrom?: string;
}

const fixture = JSON.parse(readFileSync(new URL("../../fixtures/avro-fingerprint-vectors.json", import.meta.url), "utf8")) as {
  vectors: Vector[];
};
const vectors = fixture.vectors;

const EMPTY = 0xc15d213aa4d7a795n;

/** Bit-at-a-time CRC-64-AVRO, written from the specification independently of the table-driven code under test. */
function referenceRabin(bytes: Uint8Array): bigint {
  let fp = EMPTY;
  for (const b of bytes) {
    fp ^= BigInt(b);
    for (let i = 0; i < 8; i++) fp = (fp >> 1n) ^ ((fp & 1n) === 1n ? EMPTY : 0n);
  }
  return fp;
}

describe("Apache Avro schema-tests vectors", () => {
  it("loads all 34 vectors from the fixture (000 to 033)", () => {
    expect(vectors).toHaveLength(34);
    expect(vectors[0]?.id).toBe("000");
    expect(vectors[33]?.id).toBe("033");
  });

  describe.each(vectors.map((v) => [v.id, v] as const))("vector %s", (_id, v) => {
    it(`turns ${JSON.stringify(v.schema.slice(0, 60))} into the Parsing Canonical Form ${JSON.stringify(v.canonical.slice(0, 60))}`, () => {
      expect(parsingCanonicalForm(v.schema)).toBe(v.canonical);
    });

    it(`fingerprints the canonical form as the signed 64-bit value ${v.fingerprint}`, () => {
      const fp = schemaFingerprint(v.canonical);
      expect(BigInt.asIntN(64, fp).toString()).toBe(v.fingerprint);
      // The fingerprint is an unsigned 64-bit number.
      expect(fp >= 0n && fp < 1n << 64n).toBe(true);
    });

    it("gives the same fingerprint when computed from the raw schema text via its canonical form", () => {
      expect(BigInt.asIntN(64, schemaFingerprint(parsingCanonicalForm(v.schema))).toString()).toBe(v.fingerprint);
    });
  });

  it("gives the same canonical form for a parsed object or array schema as for its text", () => {
    // A parsed string (e.g. "int") is indistinguishable from schema text, so only objects and arrays here.
    const structured = vectors.filter((v) => typeof JSON.parse(v.schema) === "object");
    expect(structured.length).toBe(26);
    for (const v of structured) {
      expect(parsingCanonicalForm(JSON.parse(v.schema) as never)).toBe(v.canonical);
    }
  });
});

describe("crc64Avro", () => {
  it("returns the EMPTY constant 0xc15d213aa4d7a795 for no bytes", () => {
    expect(crc64Avro(new Uint8Array(0))).toBe(0xc15d213aa4d7a795n);
  });

  it("hashes the UTF-8 bytes of a string (schemaFingerprint of non-ASCII text equals crc64Avro of its UTF-8 encoding)", () => {
    const text = '{"name":"café","type":"enum","symbols":["Ä"]}';
    expect(schemaFingerprint(text)).toBe(crc64Avro(Buffer.from(text, "utf8")));
    expect(schemaFingerprint(text)).toBe(referenceRabin(Buffer.from(text, "utf8")));
  });

  it("agrees with a bit-at-a-time reference implementation on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        expect(crc64Avro(bytes)).toBe(referenceRabin(bytes));
      }),
    );
  });
});

describe("fingerprintBytes", () => {
  it("writes the fingerprint little-endian (least significant byte first)", () => {
    expect([...fingerprintBytes(0x0102030405060708n)]).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    expect([...fingerprintBytes(0xc15d213aa4d7a795n)]).toEqual([0x95, 0xa7, 0xd7, 0xa4, 0x3a, 0x21, 0x5d, 0xc1]);
  });

  it('writes the fingerprint of "null" (7195948357588979594) as its 8 little-endian bytes', () => {
    const fp = schemaFingerprint('"null"');
    expect(fp).toBe(7195948357588979594n);
    const bytes = fingerprintBytes(fp);
    expect(bytes).toHaveLength(8);
    expect(Buffer.from(bytes).readBigUInt64LE(0)).toBe(fp);
    expect(Buffer.from(bytes).toString("hex")).toBe(Buffer.from(fp.toString(16).padStart(16, "0"), "hex").reverse().toString("hex"));
  });

  it("round-trips any unsigned 64-bit value through a little-endian read", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (fp) => {
        const bytes = fingerprintBytes(fp);
        expect(bytes).toHaveLength(8);
        expect(Buffer.from(bytes).readBigUInt64LE(0)).toBe(fp);
        expect(bytes[0]).toBe(Number(fp & 0xffn));
        expect(bytes[7]).toBe(Number(fp >> 56n));
      }),
    );
  });
});

describe("fingerprintHex", () => {
  it("writes 16 lowercase hex digits, zero-padded, most significant first", () => {
    expect(fingerprintHex(0xc15d213aa4d7a795n)).toBe("c15d213aa4d7a795");
    expect(fingerprintHex(0xabn)).toBe("00000000000000ab");
  });
});

describe("parsingCanonicalForm beyond the vectors", () => {
  it.each(["boolean", "int", "long", "float", "double", "bytes", "string"])("accepts the bare primitive name %s as schema text", (name) => {
    expect(parsingCanonicalForm(name)).toBe(`"${name}"`);
  });

  it("accepts the bare primitive name null as schema text, like int (it is valid JSON, but JSON null is no schema)", () => {
    expect(parsingCanonicalForm("null")).toBe('"null"');
  });

  it("rejects schema text that is neither JSON nor a primitive name with a SchemaError", () => {
    expect(() => parsingCanonicalForm("{not json")).toThrow(SchemaError);
    expect(() => parsingCanonicalForm("{not json")).toThrow("schema text is not valid JSON");
  });

  it("rejects a schema object without a type", () => {
    expect(() => parsingCanonicalForm('{"name":"x"}')).toThrow("schema object has no type");
  });

  it("qualifies nested named types and references with the enclosing namespace", () => {
    const schema = {
      type: "record",
      name: "R",
      namespace: "a.b",
      doc: "dropped",
      fields: [
        { name: "e", type: { type: "enum", name: "E", symbols: ["X", "Y"], default: "X" } },
        { name: "again", type: "E" },
        { name: "f", type: { type: "fixed", name: "c.F", size: 4 } },
        { name: "m", type: { type: "map", values: { type: "array", items: "long" } } },
      ],
    };
    expect(parsingCanonicalForm(schema as never)).toBe(
      '{"name":"a.b.R","type":"record","fields":[' +
        '{"name":"e","type":{"name":"a.b.E","type":"enum","symbols":["X","Y"]}},' +
        '{"name":"again","type":"a.b.E"},' +
        '{"name":"f","type":{"name":"c.F","type":"fixed","size":4}},' +
        '{"name":"m","type":{"type":"map","values":{"type":"array","items":"long"}}}]}',
    );
  });

  it("writes a recursive record only once and refers to it by full name afterwards", () => {
    const schema =
      '{"type":"record","name":"Node","namespace":"t","fields":[{"name":"next","type":["null","Node"]},{"name":"kids","type":{"type":"array","items":"t.Node"}}]}';
    expect(parsingCanonicalForm(schema)).toBe(
      '{"name":"t.Node","type":"record","fields":[{"name":"next","type":["null","t.Node"]},{"name":"kids","type":{"type":"array","items":"t.Node"}}]}',
    );
  });

  it("drops logicalType and other attributes and converts annotated primitives to their simple form", () => {
    expect(parsingCanonicalForm('{"type":"long","logicalType":"timestamp-millis"}')).toBe('"long"');
    expect(parsingCanonicalForm('{"type":"string","logicalType":"uuid"}')).toBe('"string"');
  });

  it("writes non-ASCII characters literally rather than as \\u escapes", () => {
    expect(parsingCanonicalForm('{"type":"enum","name":"E","symbols":["\\u00e9"]}')).toBe('{"name":"E","type":"enum","symbols":["é"]}');
  });
});
