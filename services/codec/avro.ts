// The one place that imports avsc. It is CommonJS: under ESM on Node 20 only the default
// import works at run time.
import avro from "avsc";

export type AvroType = avro.Type;
export type AvroResolver = avro.Resolver;

export function typeForSchema(schema: object): AvroType {
  return avro.Type.forSchema(schema as avro.Schema);
}

/** Decodes an Avro object container file, handing each record (as written) to `onRecord`. */
export function createContainerDecoder(path: string): NodeJS.ReadableStream {
  return avro.createFileDecoder(path);
}

export function createContainerEncoder(path: string, schema: object): NodeJS.WritableStream & { end(cb?: () => void): void } {
  return avro.createFileEncoder(path, schema as avro.Schema) as unknown as NodeJS.WritableStream & { end(cb?: () => void): void };
}
