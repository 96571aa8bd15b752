export { ingestFiles } from "./ingest.ts";
export type { IngestOptions, IngestResult } from "./ingest.ts";
export { openIntakeJournal, defaultIntakeJournalOptions } from "./journal.ts";
export type { IntakeJournal, IntakeJournalOptions, JournalEntry, JournalRecord, JournalRecovery } from "./journal.ts";
