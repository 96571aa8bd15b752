// Reads Avro object container files (specification, "Object Container Files") block by block,
// so that a corrupt or truncated file is an error naming where it broke, and every record is
// bounds-checked like a message before avsc decodes it. (avsc's own file decoder ends quietly on
// a cut file and trusts the lengths inside.)

import { open, type FileHandle } from "node:fs/promises";
import { inflateRawSync } from "node:zlib";
import { InputError, SchemaError } from "../errors/index.ts";
import { typeForSchema, type AvroResolver } from "./avro.ts";
import { compileSchema, scanBounds, type SchemaNode } from "./bounds.ts";
import { parsingCanonicalForm } from "./canonical.ts";
import type { EventCodec } from "./codec.ts";
import { fingerprintHex, schemaFingerprint } from "./fingerprint.ts";

const MAGIC = Buffer.from([0x4f, 0x62, 0x6a, 0x01]); // "Obj" 1
const SYNC_BYTES = 16;
/** A block starts with two longs (record count, byte size): at most 10 bytes each. */
const BLOCK_HEADER_MAX = 20;
const METADATA: SchemaNode = { t: "map", values: { t: "bytes" } };

export interface ContainerRecord {
  /** The record resolved into the codec's reader schema (not yet validated). */
  record: unknown;
  /** Position of the record in the file, from 0. */
  index: number;
  writer: { writerFingerprint: string; writerVersion: number };
}

/**
 * Yields the records of an Avro container file. Throws an InputError naming the file, the block
 * and the byte offset where the file is corrupt or cut short; the records before it have been
 * yielded by then.
 */
export async function* readContainerFile(path: string, codec: EventCodec): AsyncGenerator<ContainerRecord> {
  const limits = codec.limits;
  let file: FileHandle;
  try {
    file = await open(path, "r");
  } catch (cause) {
    throw new InputError(`${path}: cannot open (${(cause as NodeJS.ErrnoException).code ?? "unreadable"})`, {
      cause,
      context: { file: path },
    });
  }
  let index = 0;
  let block = 0;
  const broken = (problem: string, byte: number, cause?: unknown): never => {
    throw new InputError(`${path}: ${problem} (block ${block}, byte ${byte}, after ${index} records)`, {
      cause,
      context: { file: path, block, byte, records: index },
    });
  };
  try {
    const size = (await file.stat()).size;
    const readAt = async (position: number, length: number): Promise<Buffer> => {
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await file.read(buf, 0, length, position);
      return buf.subarray(0, bytesRead);
    };

    // Header: magic, metadata map (bounded like any message), sync marker.
    const head = await readAt(0, Math.min(size, limits.maxMessageBytes));
    if (head.length < MAGIC.length || !head.subarray(0, MAGIC.length).equals(MAGIC))
      broken("not an Avro container file (no Obj 1 magic)", 0);
    let metaEnd: number;
    try {
      metaEnd = scanBounds(METADATA, head, MAGIC.length, head.length, limits);
    } catch (cause) {
      return broken(`header metadata is corrupt or truncated: ${(cause as Error).message}`, MAGIC.length, cause);
    }
    if (metaEnd + SYNC_BYTES > head.length) broken("header is truncated before its sync marker", metaEnd);
    const meta = readMetadata(head, MAGIC.length);
    const sync = Buffer.from(head.subarray(metaEnd, metaEnd + SYNC_BYTES));
    const compression = meta.get("avro.codec")?.toString("utf8") ?? "null";
    if (compression !== "null" && compression !== "deflate")
      broken(`compression codec '${compression.slice(0, 40)}' is not supported (use null or deflate)`, MAGIC.length);

    let schema: unknown;
    let node: SchemaNode;
    let resolver: AvroResolver;
    let fingerprint: string;
    try {
      schema = JSON.parse(meta.get("avro.schema")?.toString("utf8") ?? "null");
      node = compileSchema(schema);
      resolver = codec.readerType.createResolver(typeForSchema(schema as object));
      fingerprint = fingerprintHex(schemaFingerprint(parsingCanonicalForm(schema as never)));
    } catch (cause) {
      return broken("the header's writer schema is not an Avro schema that reads as a DataAccessEvent", MAGIC.length, cause);
    }
    const writer = { writerFingerprint: fingerprint, writerVersion: codec.versionOf(fingerprint) ?? 0 };

    let pos = metaEnd + SYNC_BYTES;
    while (pos < size) {
      const blockStart = pos;
      const prefix = await readAt(pos, Math.min(BLOCK_HEADER_MAX, size - pos));
      let count: number;
      let length: number;
      let at: number;
      try {
        [count, at] = readLong(prefix, 0);
        [length, at] = readLong(prefix, at);
      } catch (cause) {
        return broken(`block header is corrupt or truncated`, blockStart, cause);
      }
      if (count < 0 || length < 0) broken("block header claims a negative count or size", blockStart);
      if (length > limits.maxBlockBytes)
        broken(`block claims ${length} bytes, over the ${limits.maxBlockBytes}-byte block limit`, blockStart);
      const dataStart = blockStart + at;
      if (dataStart + length + SYNC_BYTES > size)
        broken(
          `file is truncated: the block needs ${length + SYNC_BYTES} bytes from byte ${dataStart}, the file ends at ${size}`,
          blockStart,
        );
      const raw = await readAt(dataStart, length + SYNC_BYTES);
      if (!raw.subarray(length).equals(sync)) broken("sync marker does not match the header's (corrupt block)", dataStart + length);
      let data: Buffer = raw.subarray(0, length);
      if (compression === "deflate") {
        try {
          data = inflateRawSync(data, { maxOutputLength: limits.maxBlockBytes });
        } catch (cause) {
          return broken(`deflate block does not inflate within the ${limits.maxBlockBytes}-byte block limit`, dataStart, cause);
        }
      }
      if (count > data.length) broken(`block claims ${count} records in ${data.length} bytes`, blockStart);
      let p = 0;
      for (let i = 0; i < count; i++) {
        // Offsets inside a compressed block are offsets in the inflated data.
        const where = compression === "null" ? dataStart + p : dataStart;
        let end: number;
        try {
          end = scanBounds(node, data, p, data.length, limits);
        } catch (cause) {
          return broken(`record ${index} cannot be read: ${(cause as Error).message}`, where, cause);
        }
        let decoded: { value: unknown; offset: number };
        try {
          decoded = codec.readerType.decode(data, p, resolver);
        } catch (cause) {
          return broken(`record ${index} does not decode with the header's schema`, where, cause);
        }
        if (decoded.offset !== end) broken(`record ${index} does not decode with the header's schema`, where);
        p = end;
        yield { record: decoded.value, index: index++, writer };
      }
      if (p !== data.length) broken(`block has ${data.length - p} bytes after its ${count} records`, dataStart + p);
      pos = dataStart + length + SYNC_BYTES;
      block++;
    }
  } finally {
    await file.close();
  }
}

/** Avro long at `pos` (zig-zag varint, exact to 2^53) and the position after it. */
function readLong(buf: Uint8Array, pos: number): [number, number] {
  let raw = 0;
  let scale = 1;
  for (let i = 0; i < 10 && pos < buf.length; i++) {
    const b = buf[pos++] as number;
    raw += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return [raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2, pos];
    scale *= 128;
  }
  throw new SchemaError("variable-length integer is truncated or longer than 10 bytes");
}

/** The header's metadata map, already bounds-checked by scanBounds. */
function readMetadata(buf: Buffer, start: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = start;
  for (;;) {
    let count: number;
    [count, pos] = readLong(buf, pos);
    if (count === 0) return out;
    if (count < 0) {
      count = -count;
      [, pos] = readLong(buf, pos);
    }
    for (let i = 0; i < count; i++) {
      let len: number;
      [len, pos] = readLong(buf, pos);
      const key = buf.toString("utf8", pos, pos + len);
      pos += len;
      [len, pos] = readLong(buf, pos);
      out.set(key, buf.subarray(pos, pos + len));
      pos += len;
    }
  }
}
