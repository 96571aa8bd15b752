// The one place that imports avsc. It is CommonJS: under ESM on Node 20 only the default
// import works at run time.
import { createWriteStream } from "node:fs";
import { finished } from "node:stream/promises";
import avro from "avsc";

export type AvroType = avro.Type;
export type AvroResolver = avro.Resolver;

export function typeForSchema(schema: object): AvroType {
  return avro.Type.forSchema(schema as avro.Schema);
}

/**
 * Writes records to an Avro object container file with `schema`; resolves once the file is closed.
 * `blockSize` (bytes) and `codec` are avsc's.
 */
export async function writeContainerFile(
  path: string,
  schema: object,
  records: Iterable<object>,
  options: { codec?: "null" | "deflate"; blockSize?: number } = {},
): Promise<void> {
  const encoder = new avro.streams.BlockEncoder(typeForSchema(schema), options);
  const file = createWriteStream(path);
  encoder.pipe(file);
  for (const record of records) encoder.write(record);
  encoder.end();
  await finished(file);
}
