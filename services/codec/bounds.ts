// A pre-scan of Avro binary data against its writer schema that allocates nothing. avsc sizes
// arrays and strings by the lengths a message claims (`new Array(n)` for an array block), so a
// 166-byte message claiming 2^28 items costs gigabytes before a byte of it is read. Every length
// is checked here, against the limits and against the bytes that remain, before avsc sees them.

import { SchemaError, type LineageAuditErrorOptions } from "../errors/index.ts";
import type { DecodeLimits } from "./limits.ts";

/** A message (or container record) is over one of the decode limits; it is never decoded. */
export class DecodeLimitError extends SchemaError {
  constructor(message: string, options?: LineageAuditErrorOptions) {
    super(message, options);
  }
}

type Primitive = "null" | "boolean" | "int" | "long" | "float" | "double" | "bytes" | "string";
/** The writer schema reduced to what the wire format needs. */
export type SchemaNode =
  | { t: Primitive }
  | { t: "fixed"; size: number }
  | { t: "enum"; symbols: number }
  | { t: "array"; items: SchemaNode }
  | { t: "map"; values: SchemaNode }
  | { t: "union"; branches: SchemaNode[] }
  | { t: "record"; fields: { name: string; type: SchemaNode }[] };

const PRIMITIVES = new Set<string>(["null", "boolean", "int", "long", "float", "double", "bytes", "string"]);

/** Compiles a writer schema (parsed JSON) for `scanBounds`. Throws a SchemaError on what it cannot read. */
export function compileSchema(schema: unknown): SchemaNode {
  const named = new Map<string, SchemaNode>();
  const fullName = (name: string, ns: string) => (name.includes(".") || ns === "" ? name : `${ns}.${name}`);
  const compile = (s: unknown, ns: string): SchemaNode => {
    if (typeof s === "string") {
      if (PRIMITIVES.has(s)) return { t: s as Primitive };
      const ref = named.get(fullName(s, ns)) ?? named.get(s);
      if (!ref) throw new SchemaError(`writer schema refers to unknown type '${s}'`);
      return ref;
    }
    if (Array.isArray(s)) return { t: "union", branches: s.map((b) => compile(b, ns)) };
    if (s === null || typeof s !== "object") throw new SchemaError("writer schema is not a valid Avro schema");
    const o = s as Record<string, unknown>;
    const type = o["type"];
    if (typeof type !== "string") return compile(type, ns);
    if (PRIMITIVES.has(type)) return { t: type as Primitive };
    const name = typeof o["name"] === "string" ? fullName(o["name"], typeof o["namespace"] === "string" ? o["namespace"] : ns) : "";
    const inner = name.includes(".") ? name.slice(0, name.lastIndexOf(".")) : ns;
    switch (type) {
      case "fixed": {
        const node: SchemaNode = { t: "fixed", size: Number(o["size"]) };
        if (!Number.isInteger(node.size) || node.size < 0) throw new SchemaError("writer schema has a fixed type without a valid size");
        named.set(name, node);
        return node;
      }
      case "enum": {
        const node: SchemaNode = { t: "enum", symbols: Array.isArray(o["symbols"]) ? o["symbols"].length : 0 };
        named.set(name, node);
        return node;
      }
      case "array":
        return { t: "array", items: compile(o["items"], ns) };
      case "map":
        return { t: "map", values: compile(o["values"], ns) };
      case "record":
      case "error": {
        const node: { t: "record"; fields: { name: string; type: SchemaNode }[] } = { t: "record", fields: [] };
        named.set(name, node); // before the fields: a record may refer to itself
        const fields = Array.isArray(o["fields"]) ? (o["fields"] as Record<string, unknown>[]) : [];
        for (const f of fields) node.fields.push({ name: String(f?.["name"]), type: compile(f?.["type"], inner) });
        return node;
      }
      default:
        throw new SchemaError(`writer schema has an unknown type '${type}'`);
    }
  };
  return compile(schema, "");
}

/**
 * Walks one Avro binary value of type `node` in `buf[start, end)` and returns where it ends.
 * Throws a DecodeLimitError when a length is over a limit or claims more than any message may
 * hold, and a SchemaError when the bytes cannot be a value of the schema (truncated, bad varint,
 * union branch or enum index).
 */
export function scanBounds(node: SchemaNode, buf: Uint8Array, start: number, end: number, limits: DecodeLimits): number {
  const scanner = new Scanner(buf, start, end, limits, false);
  try {
    scanner.walk(node, 0);
    return scanner.pos;
  } catch (error) {
    if (!(error instanceof SchemaError)) throw error;
    // Keeping the field path costs a third of the scan: it is walked again, with it, to name the field.
    const named = new Scanner(buf, start, end, limits, true);
    named.walk(node, 0);
    throw error; // not reached: the same bytes fail the same way
  }
}

class Scanner {
  pos: number;
  private items = 0;
  private decoded = 0;
  /** Field names and item indexes down to the current value; turned into text only for an error. */
  private readonly path: (string | number)[] = [];

  constructor(
    private readonly buf: Uint8Array,
    private readonly start: number,
    private readonly end: number,
    private readonly limits: DecodeLimits,
    private readonly track: boolean,
  ) {
    this.pos = start;
  }

  walk(n: SchemaNode, depth: number): void {
    if (depth > this.limits.maxDepth) this.over(`is nested deeper than ${this.limits.maxDepth} levels`, "maxDepth");
    switch (n.t) {
      case "null":
        return;
      case "boolean":
        return this.skip(1, "boolean");
      case "int":
      case "long":
        this.readLong();
        return;
      case "float":
        return this.skip(4, "float");
      case "double":
        return this.skip(8, "double");
      case "bytes":
      case "string": {
        const len = this.length(n.t);
        this.account(16 + 2 * len);
        this.pos += len;
        return;
      }
      case "fixed":
        return this.skip(n.size, "fixed");
      case "enum": {
        const i = this.readLong();
        if (i < 0 || i >= n.symbols) this.malformed(`has enum index ${i} outside its ${n.symbols} symbols`);
        return;
      }
      case "union": {
        const i = this.readLong();
        const branch = n.branches[i];
        if (!branch) return this.malformed(`has union branch ${i} outside its ${n.branches.length} branches`);
        return this.walk(branch, depth + 1);
      }
      case "record":
        this.account(16 + 8 * n.fields.length);
        for (const f of n.fields) {
          if (this.track) this.path.push(f.name);
          this.walk(f.type, depth + 1);
          if (this.track) this.path.pop();
        }
        return;
      case "array": {
        let minimal = minimalBytes.get(n.items);
        if (minimal === undefined) minimalBytes.set(n.items, (minimal = minBytes(n.items)));
        let index = 0;
        for (let count = this.blockCount(minimal); count > 0; count = this.blockCount(minimal)) {
          for (let i = 0; i < count; i++) {
            if (this.track) this.path.push(index++);
            this.walk(n.items, depth + 1);
            if (this.track) this.path.pop();
          }
        }
        return;
      }
      case "map":
        for (let count = this.blockCount(1); count > 0; count = this.blockCount(1)) {
          for (let i = 0; i < count; i++) {
            const len = this.length("map key");
            this.account(16 + 2 * len);
            this.pos += len;
            this.walk(n.values, depth + 1);
          }
        }
        return;
    }
  }

  /** The entry count of the next array or map block (0 at the end), checked against the limits. */
  private blockCount(entryBytes: number): number {
    let count = this.readLong();
    if (count === 0) return 0;
    if (count < 0) {
      count = -count;
      const size = this.readLong();
      if (size < 0) this.malformed("has a negative block size");
      if (size > this.end - this.pos) this.beyond(size, "bytes in a block");
    }
    this.items += count;
    if (this.items > this.limits.maxItems)
      this.over(`claims ${count} items, over the limit of ${this.limits.maxItems} per message`, "maxItems");
    // Every entry of a non-empty type takes at least one byte.
    if (entryBytes > 0 && count > this.end - this.pos)
      this.malformed(`is truncated: claims ${count} items but only ${this.end - this.pos} bytes remain`);
    this.account(count * 16);
    return count;
  }

  /** Zig-zag varint as a JS number: exact to 2^53, and larger values only ever fail a limit. */
  private readLong(): number {
    let raw = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.malformed("is truncated");
      const b = this.buf[this.pos++] as number;
      raw += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
      scale *= 128;
    }
    return this.malformed("has a variable-length integer longer than 10 bytes");
  }

  private length(what: string): number {
    const n = this.readLong();
    if (n < 0) this.malformed(`has a negative ${what} length`);
    if (n > this.end - this.pos) this.beyond(n, `bytes of ${what}`);
    return n;
  }

  private skip(n: number, what: string): void {
    if (n > this.end - this.pos) this.beyond(n, `bytes of ${what}`);
    this.pos += n;
  }

  private account(bytes: number): void {
    this.decoded += bytes;
    if (this.decoded > this.limits.maxDecodedBytes)
      this.over(`would take more than ${this.limits.maxDecodedBytes} bytes decoded`, "maxDecodedBytes");
  }

  /** More than remains: a length no message may have is an attack, a smaller one a truncation. */
  private beyond(n: number, what: string): never {
    return n > this.limits.maxMessageBytes
      ? this.over(`claims ${n} ${what}, over the ${this.limits.maxMessageBytes}-byte message limit`, "maxMessageBytes")
      : this.malformed(`is truncated: claims ${n} ${what} but only ${this.end - this.pos} bytes remain`);
  }

  private where(): string {
    if (this.path.length === 0) return "(event)";
    return this.path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
  }

  private over(problem: string, limit: string): never {
    const path = this.where();
    throw new DecodeLimitError(`message field '${path}' ${problem}`, { context: { path, limit, at: this.pos - this.start } });
  }

  private malformed(problem: string): never {
    const path = this.where();
    throw new SchemaError(`message field '${path}' ${problem}`, { context: { path, at: this.pos - this.start } });
  }
}

const minimalBytes = new WeakMap<SchemaNode, number>();

/** Fewest bytes a value of this type takes (0 for null and empty records). */
function minBytes(n: SchemaNode, seen = new Set<SchemaNode>()): number {
  switch (n.t) {
    case "null":
      return 0;
    case "fixed":
      return n.size;
    case "float":
      return 4;
    case "double":
      return 8;
    case "record": {
      if (seen.has(n)) return 1; // recursive: only reached through a union or array, which take a byte
      seen.add(n);
      let sum = 0;
      for (const f of n.fields) sum += minBytes(f.type, seen);
      return sum;
    }
    default:
      return 1;
  }
}
