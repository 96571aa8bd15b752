export { startIngestServer, defaultIngestServerOptions, LINEAGE_PATH } from "./server.ts";
export type { IngestServer, IngestServerOptions } from "./server.ts";
export { startAnalystServer, defaultAnalystServerOptions } from "./analyst.ts";
export type { AnalystServer, AnalystServerOptions } from "./analyst.ts";
