export { openStore, defaultStoreOptions, splitStatements, storedTimeToIso, Table, MIGRATIONS_DIR } from "./store.ts";
export type { Store, StoreOptions, StoredUse } from "./store.ts";
export { affectedSummary } from "./queries.ts";
export type { AffectedQuery, AffectedSummary } from "./queries.ts";
export { subjectHistory } from "./subject.ts";
export type { SubjectAccess } from "./subject.ts";
export { fastAffectedCount } from "./fast.ts";
export type { FastCount } from "./fast.ts";
