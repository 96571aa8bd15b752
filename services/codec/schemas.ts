import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { WriterSchema } from "./codec.ts";

/** Folder holding `data_access_event.vN.avsc`, versioned event schemas. */
export const AVRO_SCHEMA_DIR = fileURLToPath(new URL("../../schemas/avro/", import.meta.url));

/** Reads every shipped event schema version. Confluent registry ids are the versions. */
export function loadEventSchemas(dir: string = AVRO_SCHEMA_DIR): WriterSchema[] {
  return readdirSync(dir)
    .map((file) => /^data_access_event\.v(\d+)\.avsc$/.exec(file))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => {
      const version = Number(m[1]);
      const schema = JSON.parse(readFileSync(join(dir, m[0]), "utf8")) as object;
      return { version, schema, registryId: version };
    })
    .sort((a, b) => a.version - b.version);
}
