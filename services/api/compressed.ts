/**
 * ClickHouse's own compressed block format, which an HTTP client asks for with `compress=1` (the
 * JDBC driver does by default): blocks of [CityHash128 v1.0.2 checksum, 16 bytes][method 0x82 =
 * LZ4][compressed size incl. this 9-byte header, UInt32 LE][uncompressed size, UInt32 LE][LZ4 block].
 * The LZ4 blocks written here hold literals only: valid LZ4 that any decoder reads, a little larger
 * than the input. The point is to speak the protocol, not to save bytes (answers are bounded).
 */

const LZ4_METHOD = 0x82;
const HEADER = 9;
/** As ClickHouse's max_compress_block_size. */
const BLOCK = 1024 * 1024;

/** The body in ClickHouse's compressed block format. */
export function compressBlocks(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += BLOCK) parts.push(block(data.subarray(at, Math.min(at + BLOCK, data.length))));
  return Buffer.concat(parts);
}

/**
 * The same, giving the event loop back between blocks: the checksum costs ~0.1 s a MiB here, and
 * the intake shares the process.
 */
export async function compressBlocksYielding(data: Buffer): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += BLOCK) {
    parts.push(block(data.subarray(at, Math.min(at + BLOCK, data.length))));
    await new Promise((resolve) => setImmediate(resolve));
  }
  return Buffer.concat(parts);
}

function block(raw: Buffer): Buffer {
  const lz4 = literalsOnly(raw);
  const framed = Buffer.alloc(HEADER + lz4.length);
  framed[0] = LZ4_METHOD;
  framed.writeUInt32LE(HEADER + lz4.length, 1);
  framed.writeUInt32LE(raw.length, 5);
  lz4.copy(framed, HEADER);
  const [low, high] = cityHash128(framed);
  const checksum = Buffer.alloc(16);
  checksum.writeBigUInt64LE(low, 0);
  checksum.writeBigUInt64LE(high, 8);
  return Buffer.concat([checksum, framed]);
}

/** One LZ4 sequence of literals and no match: the last sequence of a block may be just that. */
function literalsOnly(raw: Buffer): Buffer {
  const n = raw.length;
  const lengthBytes: number[] = [];
  if (n >= 15) {
    let rest = n - 15;
    while (rest >= 255) {
      lengthBytes.push(255);
      rest -= 255;
    }
    lengthBytes.push(rest);
  }
  return Buffer.concat([Buffer.from([Math.min(n, 15) << 4, ...lengthBytes]), raw]);
}

// CityHash v1.0.2 (the version ClickHouse checksums with), 64-bit arithmetic on BigInt.
const M = (1n << 64n) - 1n;
const k0 = 0xc3a5c85c97cb3127n;
const k1 = 0xb492b66fbe98f273n;
const k2 = 0x9ae16a3b2f90404fn;
const k3 = 0xc949d7c7509e6557n;
const kMul = 0x9ddfea08eb382d69n;

const add = (...xs: bigint[]) => xs.reduce((a, b) => (a + b) & M, 0n);
const mul = (a: bigint, b: bigint) => (a * b) & M;
const rotate = (v: bigint, s: number) => (s === 0 ? v : ((v >> BigInt(s)) | (v << BigInt(64 - s))) & M);
const shiftMix = (v: bigint) => v ^ (v >> 47n);

function hashLen16(u: bigint, v: bigint): bigint {
  let a = mul(u ^ v, kMul);
  a ^= a >> 47n;
  let b = mul(v ^ a, kMul);
  b ^= b >> 47n;
  return mul(b, kMul);
}

function hashLen0to16(s: Buffer, at: number, len: number): bigint {
  if (len > 8) {
    const a = s.readBigUInt64LE(at);
    const b = s.readBigUInt64LE(at + len - 8);
    return hashLen16(a, rotate(add(b, BigInt(len)), len)) ^ b;
  }
  if (len >= 4) {
    const a = BigInt(s.readUInt32LE(at));
    return hashLen16(add(BigInt(len), a << 3n), BigInt(s.readUInt32LE(at + len - 4)));
  }
  if (len > 0) {
    const a = BigInt(s[at] as number);
    const b = BigInt(s[at + (len >> 1)] as number);
    const c = BigInt(s[at + len - 1] as number);
    const y = (a + (b << 8n)) & 0xffffffffn;
    const z = (BigInt(len) + (c << 2n)) & 0xffffffffn;
    return mul(shiftMix(mul(y, k2) ^ mul(z, k3)), k2);
  }
  return k2;
}

function weak32(s: Buffer, at: number, a: bigint, b: bigint): [bigint, bigint] {
  const w = s.readBigUInt64LE(at);
  const x = s.readBigUInt64LE(at + 8);
  const y = s.readBigUInt64LE(at + 16);
  const z = s.readBigUInt64LE(at + 24);
  a = add(a, w);
  b = rotate(add(b, a, z), 21);
  const c = a;
  a = add(a, x, y);
  b = add(b, rotate(a, 44));
  return [add(a, z), add(b, c)];
}

function cityMurmur(s: Buffer, at: number, len: number, seedLow: bigint, seedHigh: bigint): [bigint, bigint] {
  let a = seedLow;
  let b = seedHigh;
  let c: bigint;
  let d: bigint;
  let l = len - 16;
  if (l <= 0) {
    a = mul(shiftMix(mul(a, k1)), k1);
    c = add(mul(b, k1), hashLen0to16(s, at, len));
    d = shiftMix(add(a, len >= 8 ? s.readBigUInt64LE(at) : c));
  } else {
    c = hashLen16(add(s.readBigUInt64LE(at + len - 8), k1), a);
    d = hashLen16(add(b, BigInt(len)), add(c, s.readBigUInt64LE(at + len - 16)));
    a = add(a, d);
    do {
      a ^= mul(shiftMix(mul(s.readBigUInt64LE(at), k1)), k1);
      a = mul(a, k1);
      b ^= a;
      c ^= mul(shiftMix(mul(s.readBigUInt64LE(at + 8), k1)), k1);
      c = mul(c, k1);
      d ^= c;
      at += 16;
      l -= 16;
    } while (l > 0);
  }
  a = hashLen16(a, c);
  b = hashLen16(d, b);
  return [a ^ b, hashLen16(b, a)];
}

function cityHash128WithSeed(s: Buffer, at: number, len: number, seedLow: bigint, seedHigh: bigint): [bigint, bigint] {
  if (len < 128) return cityMurmur(s, at, len, seedLow, seedHigh);
  let x = seedLow;
  let y = seedHigh;
  let z = mul(BigInt(len), k1);
  const v: [bigint, bigint] = [0n, 0n];
  const w: [bigint, bigint] = [0n, 0n];
  v[0] = add(mul(rotate(y ^ k1, 49), k1), s.readBigUInt64LE(at));
  v[1] = add(mul(rotate(v[0], 42), k1), s.readBigUInt64LE(at + 8));
  w[0] = add(mul(rotate(add(y, z), 35), k1), x);
  w[1] = mul(rotate(add(x, s.readBigUInt64LE(at + 88)), 53), k1);
  const round = () => {
    x = mul(rotate(add(x, y, v[0], s.readBigUInt64LE(at + 16)), 37), k1);
    y = mul(rotate(add(y, v[1], s.readBigUInt64LE(at + 48)), 42), k1);
    x ^= w[1];
    y ^= v[0];
    z = rotate(z ^ w[0], 33);
    [v[0], v[1]] = weak32(s, at, mul(v[1], k1), add(x, w[0]));
    [w[0], w[1]] = weak32(s, at + 32, add(z, w[1]), y);
    [z, x] = [x, z];
    at += 64;
  };
  do {
    round();
    round();
    len -= 128;
  } while (len >= 128);
  y = add(y, mul(rotate(w[0], 37), k0), z);
  x = add(x, mul(rotate(add(v[0], z), 49), k0));
  for (let done = 0; done < len;) {
    done += 32;
    y = add(mul(rotate((y - x) & M, 42), k0), v[1]);
    w[0] = add(w[0], s.readBigUInt64LE(at + len - done + 16));
    x = add(mul(rotate(x, 49), k0), w[0]);
    w[0] = add(w[0], v[0]);
    [v[0], v[1]] = weak32(s, at + len - done, v[0], v[1]);
  }
  x = hashLen16(x, v[0]);
  y = hashLen16(y, w[0]);
  return [add(hashLen16(add(x, v[1]), w[1]), y), hashLen16(add(x, w[1]), add(y, v[1]))];
}

/** CityHash128 v1.0.2 of the whole buffer, as [low64, high64]. */
export function cityHash128(s: Buffer): [bigint, bigint] {
  const len = s.length;
  if (len >= 16) return cityHash128WithSeed(s, 16, len - 16, s.readBigUInt64LE(0) ^ k3, s.readBigUInt64LE(8));
  if (len >= 8) return cityHash128WithSeed(s, 0, 0, s.readBigUInt64LE(0) ^ mul(BigInt(len), k0), s.readBigUInt64LE(len - 8) ^ k1);
  return cityHash128WithSeed(s, 0, len, k0, k1);
}
