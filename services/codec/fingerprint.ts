// CRC-64-AVRO (Rabin) fingerprint as defined by the Avro specification, section
// "Schema Fingerprints". avsc only offers MD5/SHA-256 fingerprints, and single-object
// encoding needs this one.

const EMPTY = 0xc15d213aa4d7a795n;
const MASK64 = 0xffffffffffffffffn;

const TABLE: readonly bigint[] = (() => {
  const table: bigint[] = [];
  for (let i = 0; i < 256; i++) {
    let fp = BigInt(i);
    for (let j = 0; j < 8; j++) {
      fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n));
    }
    table.push(fp & MASK64);
  }
  return table;
})();

/** The CRC-64-AVRO fingerprint of `bytes`, as an unsigned 64-bit integer. */
export function crc64Avro(bytes: Uint8Array): bigint {
  let fp = EMPTY;
  for (const b of bytes) {
    fp = (fp >> 8n) ^ (TABLE[Number((fp ^ BigInt(b)) & 0xffn)] as bigint);
  }
  return fp;
}

/** The fingerprint of a schema's Parsing Canonical Form, as the spec defines it. */
export function schemaFingerprint(canonicalForm: string): bigint {
  return crc64Avro(new TextEncoder().encode(canonicalForm));
}

/** The 8 bytes single-object encoding puts after the `C3 01` marker: little-endian. */
export function fingerprintBytes(fingerprint: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, fingerprint, true);
  return out;
}

/** Fingerprint as 16 lowercase hex digits (big-endian reading of the number), for logs and tables. */
export function fingerprintHex(fingerprint: bigint): string {
  return fingerprint.toString(16).padStart(16, "0");
}
