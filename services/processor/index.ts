export { createProcessor, mergeBatches } from "./processor.ts";
export type {
  Processor,
  ProcessorConfig,
  AuditSink,
  InboundMessage,
  InboundEvent,
  ProcessResult,
  Rejection,
  ProcessorStats,
  LineageSource,
} from "./processor.ts";
export { createAuditor, defaultAuditorOptions, describePaths, FindingKind } from "./audit.ts";
export type { Auditor, AuditorOptions, EventMeta, LineageNeed, PathUse, StoredWrite } from "./audit.ts";
export { validateEvent, parseTraceparent, RawIdentifierError } from "./validate.ts";
export { emptyBatch, edgeRowsOf } from "./rows.ts";
export type * from "./rows.ts";
