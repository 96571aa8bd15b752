export {
  openStore,
  defaultStoreOptions,
  splitStatements,
  storedTimeToIso,
  Table,
  MIGRATIONS_DIR,
  DATA_ERROR_CODES,
  insertError,
  eventFromRow,
} from "./store.ts";
export type { Store, StoreOptions, StoredUse } from "./store.ts";
export { refillViews, REFILL_INSERTS } from "./refill.ts";
export type { RefillReport } from "./refill.ts";
export { affectedSummary } from "./queries.ts";
export type { AffectedQuery, AffectedSummary } from "./queries.ts";
export { subjectHistory } from "./subject.ts";
export type { SubjectAccess } from "./subject.ts";
export { fastAffectedCount } from "./fast.ts";
export type { FastCount } from "./fast.ts";
export { defaultAnalystLimits, DEFAULT_ANALYST_FORMAT } from "./analyst-session.ts";
export type { AnalystLimits, AnalystQuery, AnalystResult } from "./analyst-session.ts";
export { ALLOWED_FORMATS, ALLOWED_SYSTEM_TABLES, ALLOWED_TABLE_FUNCTIONS } from "./analyst-policy.ts";
export { eventContentDigest, guardEventIds, EventIdConflict } from "./identity.ts";
export type { GuardedBatch } from "./identity.ts";
export { createModelRefresher } from "./refresher.ts";
export type { ModelRefresher } from "./refresher.ts";
export { affectedAnswer, exactAffected, exactWeekly, refreshProvenance, subjectViolations } from "./provenance.ts";
export { exactCount, exactCounts, materializeExactCounts, ROLLUP_HOURS, rollUpExactCounts, windowPieces } from "./exact-counts.ts";
export type { ExactCount, WindowPieces } from "./exact-counts.ts";
export type {
  AffectedAnswer,
  EvidenceLink,
  SubjectViolation,
  ExactAnswer,
  ExactCounts,
  ExactWindow,
  RefreshOptions,
  RefreshResult,
} from "./provenance.ts";
