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
 * Throws a DecodeLimitError when a length is over a limit or claims more bytes than remain, and
 * a SchemaError when the bytes cannot be a value of the schema (bad varint, union branch, enum).
 */
export function scanBounds(node: SchemaNode, buf: Uint8Array, start: number, end: number, limits: DecodeLimits): number {
  let pos = start;
  let items = 0;
  let decoded = 0;
  const path: string[] = [];
  const where = () => (path.length === 0 ? "(event)" : path.join("").replace(/^\./, ""));

  const over = (problem: string, limit: string): never => {
    throw new DecodeLimitError(`message field '${where()}' ${problem}`, { context: { path: where(), limit, at: pos - start } });
  };
  const malformed = (problem: string): never => {
    throw new SchemaError(`message field '${where()}' ${problem}`, { context: { path: where(), at: pos - start } });
  };

  // Zig-zag varint as a JS number: exact to 2^53, and larger values only ever fail a limit.
  const readLong = (): number => {
    let raw = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) malformed("is truncated");
      const b = buf[pos++] as number;
      raw += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
      scale *= 128;
    }
    return malformed("has a variable-length integer longer than 10 bytes");
  };
  // More than remains: a length no message may have is an attack, a smaller one a truncation.
  const beyond = (n: number, what: string): never =>
    n > limits.maxMessageBytes
      ? over(`claims ${n} ${what}, over the ${limits.maxMessageBytes}-byte message limit`, "maxMessageBytes")
      : malformed(`is truncated: claims ${n} ${what} but only ${end - pos} bytes remain`);
  const skip = (n: number, what: string): void => {
    if (n > end - pos) beyond(n, `bytes of ${what}`);
    pos += n;
  };
  const account = (bytes: number): void => {
    decoded += bytes;
    if (decoded > limits.maxDecodedBytes) over(`would take more than ${limits.maxDecodedBytes} bytes decoded`, "maxDecodedBytes");
  };
  const length = (what: string): number => {
    const n = readLong();
    if (n < 0) malformed(`has a negative ${what} length`);
    if (n > end - pos) beyond(n, `bytes of ${what}`);
    return n;
  };
  // Array and map blocks: a count (negative: followed by the block's byte size), until 0.
  const blocks = (each: () => void, entryCost: number): void => {
    for (;;) {
      let count = readLong();
      if (count === 0) return;
      if (count < 0) {
        count = -count;
        const size = readLong();
        if (size < 0) malformed("has a negative block size");
        if (size > end - pos) beyond(size, "bytes in a block");
      }
      items += count;
      if (items > limits.maxItems) over(`claims ${count} items, over the limit of ${limits.maxItems} per message`, "maxItems");
      // Every entry of a non-empty type takes at least one byte.
      if (count > end - pos && entryCost > 0) malformed(`is truncated: claims ${count} items but only ${end - pos} bytes remain`);
      account(count * 16);
      for (let i = 0; i < count; i++) each();
    }
  };

  const walk = (n: SchemaNode, depth: number): void => {
    if (depth > limits.maxDepth) over(`is nested deeper than ${limits.maxDepth} levels`, "maxDepth");
    switch (n.t) {
      case "null":
        return;
      case "boolean":
        return skip(1, "boolean");
      case "int":
      case "long":
        readLong();
        return;
      case "float":
        return skip(4, "float");
      case "double":
        return skip(8, "double");
      case "bytes":
      case "string": {
        const len = length(n.t);
        account(16 + 2 * len);
        pos += len;
        return;
      }
      case "fixed":
        return skip(n.size, "fixed");
      case "enum": {
        const i = readLong();
        if (i < 0 || i >= n.symbols) malformed(`has enum index ${i} outside its ${n.symbols} symbols`);
        return;
      }
      case "union": {
        const i = readLong();
        const branch = n.branches[i];
        if (!branch) return malformed(`has union branch ${i} outside its ${n.branches.length} branches`);
        return walk(branch, depth + 1);
      }
      case "record":
        account(16 + 8 * n.fields.length);
        for (const f of n.fields) {
          path.push(`.${f.name}`);
          walk(f.type, depth + 1);
          path.pop();
        }
        return;
      case "array": {
        let i = 0;
        let minimal = minimalBytes.get(n.items);
        if (minimal === undefined) minimalBytes.set(n.items, (minimal = minBytes(n.items)));
        blocks(() => {
          path.push(`[${i++}]`);
          walk(n.items, depth + 1);
          path.pop();
        }, minimal);
        return;
      }
      case "map":
        blocks(() => {
          const len = length("map key");
          account(16 + 2 * len);
          pos += len;
          walk(n.values, depth + 1);
        }, 1);
        return;
    }
  };
  walk(node, 0);
  return pos;
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
