export { ingestFiles } from "./ingest.ts";
export type { IngestOptions, IngestResult } from "./ingest.ts";
