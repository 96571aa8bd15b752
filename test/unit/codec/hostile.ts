// Hostile messages built byte by byte, shared by the codec, HTTP and Kafka tests.

import type { EventCodec } from "../../../services/codec/index.ts";

/** Avro zig-zag varint of a long. */
export function avroLong(n: number): Buffer {
  let z = n >= 0 ? n * 2 : -n * 2 - 1;
  const out: number[] = [];
  while (z >= 0x80) {
    out.push((z % 0x80) | 0x80);
    z = Math.floor(z / 0x80);
  }
  out.push(z);
  return Buffer.from(out);
}

export function avroString(s: string): Buffer {
  const b = Buffer.from(s, "utf8");
  return Buffer.concat([avroLong(b.length), b]);
}

/** The single-object header (C3 01 + fingerprint) of the codec's current schema. */
export function headerOf(codec: EventCodec): Buffer {
  const h = Buffer.from(codec.writerFingerprint, "hex").reverse(); // hex is big-endian, the header little-endian
  return Buffer.concat([Buffer.from([0xc3, 0x01]), h]);
}

/**
 * A DataAccessEvent v2 whose `inputs` array claims 2^28 items: avsc would allocate
 * `new Array(2^28)` (and more for each record) before finding that the bytes end.
 */
export function arrayLengthBomb(codec: EventCodec): Buffer {
  const prefix = Buffer.concat([
    headerOf(codec),
    avroString("5f0c6e1e-8a43-4f0b-9d0e-2f1c3a4b5c6d"), // eventId
    avroLong(2), // kind USE
    avroLong(1_700_000_000_000), // occurredAt
    avroString("ads-sync"), // service
    avroString("batch"), // job.namespace
    avroString("audiences.export"), // job.name
    avroString("run-42"), // runId
    avroLong(2 ** 28), // inputs: a block of 2^28 items…
  ]);
  // …of which a few bytes follow, to the size observed in the issue.
  return Buffer.concat([prefix, Buffer.alloc(Math.max(0, 166 - prefix.length), 0x02)]);
}
