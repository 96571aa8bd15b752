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
} from "./processor.ts";
export { createAuditor, FindingKind } from "./audit.ts";
export type { Auditor, AuditorOptions, EventMeta } from "./audit.ts";
export { validateEvent, parseTraceparent, RawIdentifierError } from "./validate.ts";
export { emptyBatch } from "./rows.ts";
export type * from "./rows.ts";
