export { startIngestServer } from "./server.ts";
export type { IngestServer, IngestServerOptions } from "./server.ts";
