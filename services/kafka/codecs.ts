// Compressed record batches: Kafka producers compress a batch with gzip, snappy, lz4 or zstd
// (Java producers often do: `compression.type`), and KafkaJS decodes only gzip by itself. A
// batch it cannot decode stops its partition, so the other three are registered here, in pure
// JavaScript (snappyjs, lz4js, fzstd: nothing to build). Every codec, gzip included, decompresses
// at most MAX_DECOMPRESSED_BATCH_BYTES: sizes a batch declares are checked before anything is
// allocated, and a batch over the limit is refused with one line naming the codec.
//
// A refusal must not stop the partition: KafkaJS decodes a whole fetch before the consumer sees any
// of it, so a codec that throws fails every fetch from that broker, again and again. A refused
// batch is therefore handed back as stand-in records, one per record the batch holds, each empty
// but for a header with the reason; the consumer dead-letters them (refusedBatchReason) and the
// partition moves past the batch.

import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { gunzip, gzip } from "node:zlib";
import kafkajs from "kafkajs";
import snappy from "snappyjs";
import lz4 from "lz4js";
import { decompress as zstdDecompress } from "fzstd";

const { CompressionTypes, CompressionCodecs } = kafkajs;

/** Largest record batch taken once decompressed (a fetch brings at most 4 MiB a partition, compressed). */
export const MAX_DECOMPRESSED_BATCH_BYTES = 128 * 1024 * 1024;

/** A compressed batch that cannot be decoded within the limit. */
export class CompressedBatchError extends Error {
  constructor(codec: string, why: string) {
    super(`a ${codec} record batch ${why}`);
    this.name = "CompressedBatchError";
  }
}

interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

const mib = (n: number) => `${Math.round(n / 1024 / 1024)} MiB`;
const tooLarge = (codec: string, limit: number) =>
  new CompressedBatchError(codec, `would decompress past ${mib(limit)}; batches are taken up to ${mib(limit)}`);
function within(codec: string, size: number, limit: number): void {
  if (size > limit) throw tooLarge(codec, limit);
}

// gzip: as KafkaJS's own, with the output bounded.
const gunzipAsync = promisify(gunzip);
const gzipAsync = promisify(gzip);
export function gzipCodec(limit = MAX_DECOMPRESSED_BATCH_BYTES): Codec {
  return {
    compress: (encoder) => gzipAsync(encoder.buffer),
    async decompress(buffer) {
      try {
        return await gunzipAsync(buffer, { maxOutputLength: limit });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge("gzip", limit);
        throw new CompressedBatchError("gzip", `is not valid gzip (${(error as Error).message})`);
      }
    },
  };
}

// snappy: raw, or in the xerial framing Java's snappy-java writes (a 16-byte header, then
// chunks each a 4-byte big-endian length and a raw snappy block). A raw block starts with its
// uncompressed length as a varint, read here before the block is decoded.
const XERIAL = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
function snappyLength(block: Uint8Array): number {
  let length = 0;
  for (let i = 0, shift = 1; i < 5 && i < block.length; i++, shift *= 128) {
    const b = block[i] as number;
    length += (b & 0x7f) * shift;
    if (b < 0x80) return length;
  }
  throw new CompressedBatchError("snappy", "has a broken length");
}
export function snappyCodec(limit = MAX_DECOMPRESSED_BATCH_BYTES): Codec {
  return {
    compress: async (encoder) => snappy.compress(encoder.buffer),
    async decompress(buffer) {
      const blocks: Buffer[] = [];
      if (buffer.length >= 16 && buffer.subarray(0, 8).equals(XERIAL)) {
        for (let at = 16; at < buffer.length;) {
          if (at + 4 > buffer.length) throw new CompressedBatchError("snappy", "is cut short");
          const size = buffer.readUInt32BE(at);
          if (at + 4 + size > buffer.length) throw new CompressedBatchError("snappy", "is cut short");
          blocks.push(buffer.subarray(at + 4, at + 4 + size));
          at += 4 + size;
        }
      } else blocks.push(buffer);
      let total = 0;
      for (const block of blocks) within("snappy", (total += snappyLength(block)), limit);
      try {
        return Buffer.concat(blocks.map((block) => snappy.uncompress(block)));
      } catch (error) {
        throw new CompressedBatchError("snappy", `is not valid snappy (${(error as Error).message})`);
      }
    },
  };
}

// lz4: the LZ4 frame format (magic 0x184D2204). The frame's blocks are walked first: each must
// lie within the buffer, and their largest output (content size when declared, else a full block
// each) within the limit.
const LZ4_MAGIC = 0x184d2204;
const LZ4_BLOCK_SIZES: Record<number, number> = { 4: 64 * 1024, 5: 256 * 1024, 6: 1024 * 1024, 7: 4 * 1024 * 1024 };
function lz4Bound(frame: Buffer): number {
  if (frame.length < 7 || frame.readUInt32LE(0) !== LZ4_MAGIC) throw new CompressedBatchError("lz4", "is not an LZ4 frame");
  const flags = frame[4] as number;
  const blockSize = LZ4_BLOCK_SIZES[((frame[5] as number) >> 4) & 7];
  if ((flags & 0xc0) !== 0x40 || blockSize === undefined) throw new CompressedBatchError("lz4", "has an LZ4 frame header it cannot read");
  const blockChecksums = (flags & 0x10) !== 0;
  const contentSize = (flags & 0x08) !== 0;
  let at = 6;
  let declared: number | undefined;
  if (contentSize) {
    if (frame.length < 14) throw new CompressedBatchError("lz4", "is cut short");
    declared = Number(frame.readBigUInt64LE(6));
    at += 8;
  }
  at += 1; // header checksum
  let bound = 0;
  for (;;) {
    if (at + 4 > frame.length) throw new CompressedBatchError("lz4", "is cut short");
    const word = frame.readUInt32LE(at);
    at += 4;
    if (word === 0) break; // end mark
    const size = word & 0x7fffffff;
    if (size > blockSize || at + size + (blockChecksums ? 4 : 0) > frame.length) throw new CompressedBatchError("lz4", "is cut short");
    bound += word & 0x80000000 ? size : blockSize;
    at += size + (blockChecksums ? 4 : 0);
  }
  return declared ?? bound;
}
export function lz4Codec(limit = MAX_DECOMPRESSED_BATCH_BYTES): Codec {
  return {
    compress: async (encoder) => Buffer.from(lz4.compress(encoder.buffer)),
    async decompress(buffer) {
      const bound = lz4Bound(buffer);
      within("lz4", bound, limit);
      try {
        return Buffer.from(lz4.decompress(buffer, bound));
      } catch (error) {
        throw new CompressedBatchError("lz4", `is not valid LZ4 (${(error as Error).message})`);
      }
    },
  };
}

// zstd: every frame's header is read first (the decoder allocates the window or the content size
// it declares), walking blocks by their sizes, without decoding them.
const ZSTD_MAGIC = 0xfd2fb528;
function zstdFrames(data: Buffer, limit: number): void {
  let at = 0;
  let total = 0;
  while (at < data.length) {
    if (at + 8 > data.length) throw new CompressedBatchError("zstd", "is cut short");
    const magic = data.readUInt32LE(at);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      // A skippable frame: its length, then that many bytes.
      at += 8 + data.readUInt32LE(at + 4);
      continue;
    }
    if (magic !== ZSTD_MAGIC) throw new CompressedBatchError("zstd", "is not a zstd frame");
    const descriptor = data[at + 4] as number;
    const singleSegment = (descriptor >> 5) & 1;
    const contentFlag = descriptor >> 6;
    const dictBytes = [0, 1, 2, 4][descriptor & 3] as number;
    const checksum = (descriptor >> 2) & 1;
    let p = at + 5;
    let window = 0;
    if (!singleSegment) {
      const w = data[p++] as number;
      const base = 2 ** (10 + (w >> 3));
      window = base + (base / 8) * (w & 7);
    }
    p += dictBytes;
    const sizeBytes = contentFlag === 0 ? singleSegment : 2 ** contentFlag;
    if (p + sizeBytes > data.length) throw new CompressedBatchError("zstd", "is cut short");
    let content = 0;
    for (let i = sizeBytes - 1; i >= 0; i--) content = content * 256 + (data[p + i] as number);
    if (sizeBytes === 2) content += 256;
    p += sizeBytes;
    within("zstd", Math.max(window, content), limit);
    // The most its blocks can make: a raw or RLE block its size, a compressed one at most 128 KiB.
    let bound = 0;
    for (;;) {
      if (p + 3 > data.length) throw new CompressedBatchError("zstd", "is cut short");
      const header = (data[p] as number) | ((data[p + 1] as number) << 8) | ((data[p + 2] as number) << 16);
      const type = (header >> 1) & 3;
      const size = header >>> 3;
      if (type === 3) throw new CompressedBatchError("zstd", "has a reserved block type");
      bound += type === 2 ? 128 * 1024 : size;
      within("zstd", total + bound, limit);
      p += 3 + (type === 1 ? 1 : size); // an RLE block is one byte on the wire
      if (header & 1) break;
    }
    p += checksum * 4;
    if (p > data.length) throw new CompressedBatchError("zstd", "is cut short");
    total += contentFlag === 0 && !singleSegment ? bound : Math.min(bound, content);
    at = p;
  }
}
export function zstdCodec(limit = MAX_DECOMPRESSED_BATCH_BYTES): Codec {
  return {
    compress() {
      return Promise.reject(new CompressedBatchError("zstd", "cannot be written here: the auditor's producers use gzip or none"));
    },
    async decompress(buffer) {
      zstdFrames(buffer, limit);
      let out: Uint8Array;
      try {
        out = zstdDecompress(buffer);
      } catch (error) {
        throw new CompressedBatchError("zstd", `is not valid zstd (${(error as Error).message})`);
      }
      within("zstd", out.length, limit);
      return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
    },
  };
}

/** The header of a stand-in record: this process's nonce, a space, the reason its batch was refused. */
export const REFUSED_BATCH_HEADER = "lineage-audit-refused-batch";
/** Proves a stand-in was made here: a producer cannot forge one (the header alone is not believed). */
const NONCE = randomBytes(16).toString("hex");

/** The reason a record stands for a batch a codec here refused, or undefined for any other record. */
export function refusedBatchReason(headers: Record<string, unknown> | undefined): string | undefined {
  const value = headers?.[REFUSED_BATCH_HEADER];
  if (!Buffer.isBuffer(value) || value.length <= NONCE.length + 1) return undefined;
  const text = value.toString("utf8");
  return text.startsWith(`${NONCE} `) ? text.slice(NONCE.length + 1) : undefined;
}

// A record batch (magic 2) ends its header with these fields just before its records, which is
// where the compressed bytes KafkaJS hands a codec begin (a view into the fetch response):
// baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8, crc int32,
// attributes int16, lastOffsetDelta int32, baseTimestamp int64, maxTimestamp int64, producerId
// int64, producerEpoch int16, baseSequence int32, records count int32.
const BATCH_HEADER_BYTES = 61;
const AT = { batchLength: 8, magic: 16, attributes: 21, lastOffsetDelta: 23, count: 57 } as const;
/** batchLength counts the bytes after baseOffset and itself: the rest of the header, then the records. */
const AFTER_BATCH_LENGTH = BATCH_HEADER_BYTES - 12;

/** A Kafka varint (zigzag, base 128) of a 32-bit signed value. */
function varint(n: number): number[] {
  let z = ((n << 1) ^ (n >> 31)) >>> 0;
  const out: number[] = [];
  while (z > 0x7f) {
    out.push((z & 0x7f) | 0x80);
    z >>>= 7;
  }
  out.push(z);
  return out;
}

/**
 * The stand-ins for a batch refused with `reason`: one record per record its header counts, at
 * its offsets (the last at its last offset, so the partition moves past the whole batch), empty
 * but for the header. Undefined when the bytes before `compressed` are not that batch's header
 * (its length, magic and codec must agree), or when the stand-ins would pass the limit: then the
 * refusal stands as an error.
 */
export function standIns(compressed: Buffer, codecType: number, reason: string, limit = MAX_DECOMPRESSED_BATCH_BYTES): Buffer | undefined {
  if (compressed.byteOffset < BATCH_HEADER_BYTES) return undefined;
  const header = Buffer.from(compressed.buffer, compressed.byteOffset - BATCH_HEADER_BYTES, BATCH_HEADER_BYTES);
  if (header.readInt8(AT.magic) !== 2) return undefined;
  if (header.readInt32BE(AT.batchLength) !== compressed.length + AFTER_BATCH_LENGTH) return undefined;
  if ((header.readInt16BE(AT.attributes) & 0x07) !== codecType) return undefined;
  const lastOffsetDelta = header.readInt32BE(AT.lastOffsetDelta);
  const count = header.readInt32BE(AT.count);
  if (count < 1 || lastOffsetDelta < count - 1) return undefined;
  const key = Buffer.from(REFUSED_BATCH_HEADER, "utf8");
  const value = Buffer.from(`${NONCE} ${reason}`, "utf8");
  // attributes 0, timestampDelta 0, offsetDelta, key and value null (-1), one header.
  const tail = Buffer.from([...varint(-1), ...varint(-1), ...varint(1), ...varint(key.length), ...key, ...varint(value.length), ...value]);
  const deltaOf = (i: number) => (i === count - 1 ? lastOffsetDelta : i);
  let size = 0;
  for (let i = 0; i < count; i++) {
    const length = 2 + varint(deltaOf(i)).length + tail.length;
    size += varint(length).length + length;
    if (size > limit) return undefined;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const delta = varint(deltaOf(i));
    for (const b of [...varint(2 + delta.length + tail.length), 0, 0, ...delta]) out[at++] = b;
    at += tail.copy(out, at);
  }
  return out;
}

/** A codec whose refusals become stand-in records when the batch's header can be read. */
function standingIn(codec: Codec, codecType: number): Codec {
  return {
    compress: (encoder) => codec.compress(encoder),
    async decompress(buffer) {
      try {
        return await codec.decompress(buffer);
      } catch (error) {
        if (!(error instanceof CompressedBatchError)) throw error;
        const records = standIns(buffer, codecType, error.message);
        if (!records) throw error;
        return records;
      }
    },
  };
}

let registered = false;
/** Registers the bounded codecs with KafkaJS (its registry is global): once, before the first fetch. */
export function registerCompressionCodecs(): void {
  if (registered) return;
  registered = true;
  CompressionCodecs[CompressionTypes.GZIP] = () => standingIn(gzipCodec(), CompressionTypes.GZIP);
  CompressionCodecs[CompressionTypes.Snappy] = () => standingIn(snappyCodec(), CompressionTypes.Snappy);
  CompressionCodecs[CompressionTypes.LZ4] = () => standingIn(lz4Codec(), CompressionTypes.LZ4);
  CompressionCodecs[CompressionTypes.ZSTD] = () => standingIn(zstdCodec(), CompressionTypes.ZSTD);
}
