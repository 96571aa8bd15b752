// The bounded codecs for compressed Kafka record batches (services/kafka/codecs.ts): what they
// decode, and what they refuse before allocating it. The real producers' batches (Kafka's Java
// console producer, each codec) are taken in test/integration/openlineage-kafka-files.test.ts.
import { createRequire } from "node:module";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import snappy from "snappyjs";
import lz4 from "lz4js";
import {
  CompressedBatchError,
  gzipCodec,
  lz4Codec,
  REFUSED_BATCH_HEADER,
  refusedBatchReason,
  registerCompressionCodecs,
  snappyCodec,
  standIns,
  zstdCodec,
} from "../../../services/kafka/codecs.ts";

const text = Buffer.from(JSON.stringify({ eventType: "COMPLETE", fields: Array.from({ length: 200 }, (_, i) => `field_${i}`) }));

/** snappy-java's framing: the 8-byte magic, two 4-byte versions, then length-prefixed raw blocks. */
function xerial(...blocks: Buffer[]): Buffer {
  const header = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1]);
  return Buffer.concat([
    header,
    ...blocks.flatMap((b) => [Buffer.from([(b.length >>> 24) & 255, (b.length >>> 16) & 255, (b.length >>> 8) & 255, b.length & 255]), b]),
  ]);
}

/** A zstd frame of raw blocks (valid zstd a decoder reads), single segment with its content size when `size` fits a byte. */
function zstdRaw(parts: Buffer[], descriptor?: number): Buffer {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const head =
    descriptor === undefined
      ? Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, total]) // single segment, 1-byte content size
      : Buffer.from([0x28, 0xb5, 0x2f, 0xfd, descriptor, 0x00]); // window descriptor 0: 1 KiB
  const blocks = parts.map((p, i) => {
    const header = (i === parts.length - 1 ? 1 : 0) | (0 << 1) | (p.length << 3);
    return Buffer.concat([Buffer.from([header & 255, (header >> 8) & 255, (header >> 16) & 255]), p]);
  });
  return Buffer.concat([head, ...blocks]);
}

describe("compressed record batches", () => {
  it("decode what each codec wrote: gzip, raw and framed snappy, an LZ4 frame, zstd frames", async () => {
    expect(await gzipCodec().decompress(gzipSync(text))).toEqual(text);
    expect(await snappyCodec().decompress(snappy.compress(text))).toEqual(text);
    const half = text.length >> 1;
    expect(await snappyCodec().decompress(xerial(snappy.compress(text.subarray(0, half)), snappy.compress(text.subarray(half))))).toEqual(
      text,
    );
    expect(await lz4Codec().decompress(Buffer.from(lz4.compress(text)))).toEqual(text);
    const small = Buffer.from("a RunEvent");
    expect(await zstdCodec().decompress(zstdRaw([small]))).toEqual(small);
    expect(await zstdCodec().decompress(zstdRaw([small.subarray(0, 4), small.subarray(4)], 0x00))).toEqual(small);
    // What they write, they read.
    for (const codec of [gzipCodec(), snappyCodec(), lz4Codec()])
      expect(await codec.decompress(await codec.compress({ buffer: text }))).toEqual(text);
  });

  it("refuse a batch that would decompress past the limit, from the sizes it declares, before decoding it", async () => {
    const limit = 1024;
    await expect(gzipCodec(limit).decompress(gzipSync(Buffer.alloc(4096)))).rejects.toThrow("a gzip record batch would decompress past");
    // snappy: a block declaring 2 GiB (its varint length) and holding nothing.
    await expect(snappyCodec(limit).decompress(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x08]))).rejects.toThrow(CompressedBatchError);
    await expect(snappyCodec(limit).decompress(snappy.compress(Buffer.alloc(4096)))).rejects.toThrow(
      "a snappy record batch would decompress past",
    );
    // lz4: a frame declaring 1 TiB of content.
    const lz4Bomb = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x48, 0x40, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    await expect(lz4Codec(limit).decompress(lz4Bomb)).rejects.toThrow("a lz4 record batch would decompress past");
    await expect(lz4Codec(limit).decompress(Buffer.from(lz4.compress(Buffer.alloc(4096))))).rejects.toThrow("would decompress past");
    // zstd: a window of 2 GiB; and RLE blocks (4 bytes each on the wire) of 100 KiB each.
    await expect(zstdCodec(limit).decompress(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa8, 0x01, 0, 0]))).rejects.toThrow(
      "would decompress past",
    );
    const rle = (last: number) => {
      const header = last | (1 << 1) | ((100 * 1024) << 3);
      return Buffer.from([header & 255, (header >> 8) & 255, (header >> 16) & 255, 0x61]);
    };
    const rleBomb = Buffer.concat([
      Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]),
      ...Array.from({ length: 1000 }, (_, i) => rle(i === 999 ? 1 : 0)),
    ]);
    await expect(zstdCodec(64 * 1024 * 1024).decompress(rleBomb)).rejects.toThrow("a zstd record batch would decompress past 64 MiB");
  });

  it("refuse a batch cut short or not in its format with one line, never a crash", async () => {
    const cases: [ReturnType<typeof gzipCodec>, Buffer][] = [
      [gzipCodec(), Buffer.from("not gzip")],
      [snappyCodec(), xerial(Buffer.from([0x05])).subarray(0, 19)],
      [lz4Codec(), Buffer.from(lz4.compress(text)).subarray(0, 20)],
      [lz4Codec(), Buffer.from("not an lz4 frame at all")],
      [zstdCodec(), zstdRaw([Buffer.from("a RunEvent")]).subarray(0, 12)],
      [zstdCodec(), Buffer.from("not a zstd frame")],
    ];
    for (const [codec, bytes] of cases) {
      const error = await codec.decompress(bytes).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(CompressedBatchError);
      expect((error as Error).message).toMatch(/^a (gzip|snappy|lz4|zstd) record batch /);
      expect((error as Error).message).not.toContain("\n");
    }
  });
});

// KafkaJS's own record batch decoder, as the consumer's fetch runs it (the registry is global).
const require = createRequire(import.meta.url);
const KafkaDecoder = require("kafkajs/src/protocol/decoder") as new (buffer: Buffer) => unknown;
const decodeRecordBatch = require("kafkajs/src/protocol/recordBatch/v0/decoder") as (decoder: unknown) => Promise<{
  records: { offset: string; key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer> }[];
}>;

/** A record batch (magic 2) as it lies in a fetch response, behind `before` bytes of others, with `records` as its (compressed) body. */
function fetchedBatch(options: {
  baseOffset: bigint;
  count: number;
  lastOffsetDelta: number;
  codec: number;
  body: Buffer;
  before?: number;
}): Buffer {
  const head = Buffer.alloc(61);
  head.writeBigInt64BE(options.baseOffset, 0);
  head.writeInt32BE(49 + options.body.length, 8);
  head.writeInt8(2, 16);
  head.writeInt16BE(options.codec, 21);
  head.writeInt32BE(options.lastOffsetDelta, 23);
  head.writeBigInt64BE(1_559_347_200_000n, 27);
  head.writeBigInt64BE(1_559_347_200_000n, 35);
  head.writeBigInt64BE(-1n, 43);
  head.writeInt16BE(-1, 51);
  head.writeInt32BE(-1, 53);
  head.writeInt32BE(options.count, 57);
  return Buffer.concat([Buffer.alloc(options.before ?? 0, 7), head, options.body]);
}

async function decodeFetched(bytes: Buffer, before: number) {
  const decoder = new KafkaDecoder(bytes) as { forward(n: number): void };
  decoder.forward(before);
  return decodeRecordBatch(decoder);
}

describe("a batch the codecs refuse, as KafkaJS's consumer decodes it", () => {
  registerCompressionCodecs();

  it("becomes one empty stand-in per record, at the batch's offsets, each with the reason; the last at its last offset", async () => {
    // Not gzip at all (a bomb refused for its size takes the same path: tested on a real broker in kafka-hostile.test.ts).
    const bytes = fetchedBatch({
      baseOffset: 1000n,
      count: 5,
      lastOffsetDelta: 6,
      codec: 1,
      body: Buffer.from("not gzip at all"),
      before: 33,
    });
    const { records } = await decodeFetched(bytes, 33);
    expect(records.map((r) => [r.offset, r.key, r.value, refusedBatchReason(r.headers)])).toEqual(
      ["1000", "1001", "1002", "1003", "1006"].map((offset) => [
        offset,
        null,
        null,
        "a gzip record batch is not valid gzip (incorrect header check)",
      ]),
    );
  });

  it("is refused as before when the bytes in front are not that batch's header (its length, magic, codec or offsets disagree)", async () => {
    const body = Buffer.from("not gzip at all");
    const bad = fetchedBatch({ baseOffset: 0n, count: 3, lastOffsetDelta: 1, codec: 1, body }); // more records than offsets
    await expect(decodeFetched(bad, 0)).rejects.toThrow(CompressedBatchError);
    const good = () => fetchedBatch({ baseOffset: 0n, count: 2, lastOffsetDelta: 1, codec: 1, body });
    const made = (bytes: Buffer) => standIns(bytes.subarray(61), 1, "a reason");
    expect(made(good())).toBeDefined();
    const length = good();
    length.writeInt32BE(49 + body.length + 1, 8);
    const magic = good();
    magic.writeInt8(1, 16);
    const codec = good();
    codec.writeInt16BE(2, 21);
    for (const bytes of [length, magic, codec]) expect(made(bytes)).toBeUndefined();
    // Nothing in front of it at all.
    expect(standIns(Buffer.from(new Uint8Array(body)), 1, "a reason")).toBeUndefined();
  });

  it("is told from a producer's record carrying the same header: only this process's stand-ins are believed", () => {
    expect(
      refusedBatchReason({ [REFUSED_BATCH_HEADER]: Buffer.from("a gzip record batch would decompress past 128 MiB") }),
    ).toBeUndefined();
    expect(refusedBatchReason({ [REFUSED_BATCH_HEADER]: Buffer.from(`${"0".repeat(32)} forged`) })).toBeUndefined();
    expect(refusedBatchReason(undefined)).toBeUndefined();
  });

  it("stays within the limit: no stand-ins when they would pass it (the refusal stands)", () => {
    const body = Buffer.from("x");
    const bytes = fetchedBatch({ baseOffset: 0n, count: 1000, lastOffsetDelta: 999, codec: 1, body });
    const compressed = bytes.subarray(61);
    expect(standIns(compressed, 1, "a reason", 1000)).toBeUndefined();
    expect(standIns(compressed, 1, "a reason")?.length).toBeGreaterThan(1000);
  });
});
