import { SchemaError } from "../errors/index.ts";

/** Media type of a batch of single-object encoded events, each prefixed by its length. */
export const EVENT_BATCH_MEDIA_TYPE = "application/vnd.lineage-audit.events+avro";

/** Frames messages as `uint32 big-endian length` + bytes, one after another. */
export function frameBatch(messages: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const m of messages) total += 4 + m.byteLength;
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const m of messages) {
    out.writeUInt32BE(m.byteLength, pos);
    out.set(m, pos + 4);
    pos += 4 + m.byteLength;
  }
  return out;
}

/**
 * Splits a framed batch; a truncated frame is a SchemaError naming its position. A frame over
 * the message limit is returned like any other: the decoder refuses it alone (a dead letter),
 * so the rest of its batch is still stored.
 */
export function unframeBatch(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < body.length) {
    if (pos + 4 > body.length)
      throw new SchemaError(`batch is truncated: frame ${out.length} has no complete length prefix`, { context: { frame: out.length } });
    const len = body.readUInt32BE(pos);
    if (pos + 4 + len > body.length)
      throw new SchemaError(`batch is truncated: frame ${out.length} needs ${len} bytes`, { context: { frame: out.length } });
    out.push(body.subarray(pos + 4, pos + 4 + len));
    pos += 4 + len;
  }
  return out;
}
