// Types of the pure-JavaScript codecs services/kafka/codecs.ts uses, which ship none.

declare module "snappyjs" {
  const snappy: {
    compress(input: Uint8Array): Buffer;
    uncompress(input: Uint8Array): Buffer;
  };
  export default snappy;
}

declare module "lz4js" {
  const lz4: {
    compress(input: Uint8Array, maxSize?: number): Uint8Array;
    decompress(input: Uint8Array, maxSize?: number): Uint8Array;
  };
  export default lz4;
}
