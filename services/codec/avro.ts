// The one place that imports avsc. It is CommonJS: under ESM on Node 20 only the default
// import works at run time.
import avro from "avsc";

export type AvroType = avro.Type;
export type AvroResolver = avro.Resolver;

export function typeForSchema(schema: object): AvroType {
  return avro.Type.forSchema(schema as avro.Schema);
}

/**
 * Decodes an Avro object container file; records are resolved from the file's writer schema
 * into `readerType`. Emits `metadata` (the writer type) first.
 */
export function createContainerDecoder(path: string, readerType: AvroType): NodeJS.ReadableStream {
  return avro.createFileDecoder(path, { readerSchema: readerType } as never);
}

/** Writes records to an Avro object container file with `schema`. */
export function createContainerEncoder(path: string, schema: object): NodeJS.WritableStream {
  return avro.createFileEncoder(path, schema as avro.Schema) as unknown as NodeJS.WritableStream;
}
