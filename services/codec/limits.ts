/** How much one message may make the auditor allocate. Checked before anything is decoded. */
export interface DecodeLimits {
  /** Largest single message, framing header included; also the largest record of a container file. @default 1048576 (1 MiB) */
  maxMessageBytes: number;
  /** Largest HTTP request body (a framed batch); the SDK splits batches under it. @default 33554432 (32 MiB) */
  maxBatchBytes: number;
  /** Entries of all arrays and maps of one message together. @default 100000 */
  maxItems: number;
  /** Estimated memory one decoded message may take (strings, objects, arrays). @default 33554432 (32 MiB) */
  maxDecodedBytes: number;
  /** Nesting depth of records, arrays, maps and unions. @default 32 */
  maxDepth: number;
  /** Largest block of an Avro container file, after decompression. @default 67108864 (64 MiB) */
  maxBlockBytes: number;
}

export const defaultDecodeLimits: Readonly<DecodeLimits> = Object.freeze({
  maxMessageBytes: 1 << 20,
  maxBatchBytes: 32 << 20,
  maxItems: 100_000,
  maxDecodedBytes: 32 << 20,
  maxDepth: 32,
  maxBlockBytes: 64 << 20,
});
