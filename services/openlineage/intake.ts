// The OpenLineage intake shared by HTTP (POST /api/v1/lineage), Kafka and files: each RunEvent
// is bounded, validated against the official schema, mapped (map.ts) and handed to the same
// processor as our own events; every RunEvent that validates is logged in openlineage_events_v1
// with what it became. One that cannot be taken is dead-lettered with a reason naming its JSON path.
import { LineageAuditError, TransportError } from "../errors/index.ts";
import { validateEvent, type InboundEvent, type Processor, type ProcessResult, type Rejection } from "../processor/index.ts";
import type { Taxonomy } from "../taxonomy/index.ts";
import { Table } from "../store/index.ts";
import type { Classification } from "./classification.ts";
import { mapRunEvent, type RunEventInput } from "./map.ts";
import { checkRunEventBytes, validateRunEvent } from "./validate.ts";

export interface OpenLineageItem {
  bytes: Uint8Array;
  /** Where it came from (http peer #n, topic/partition/offset, file:line). */
  source: string;
}

/** What became of one RunEvent. */
export type OpenLineageOutcome =
  | { source: string; stored: true; events: number; explanation: string }
  | {
      source: string;
      stored: false;
      /** `schema` when it broke the OpenLineage schema or our limits (HTTP 422/413), else `event` (a mapped event was refused). */
      stage: "parse" | "schema" | "event";
      code: string;
      reason: string;
    };

export interface OpenLineageResult {
  outcomes: OpenLineageOutcome[];
  accepted: number;
  rejected: Rejection[];
  violations: number;
  /** As the processor's `processEvents` gives them (events that arrive decoded leave their facts to the lineage outbox). */
  facts: ProcessResult["facts"];
}

export interface OpenLineageIntake {
  /** Takes a batch of RunEvents (JSON bytes each); resolves once what they became is stored. */
  ingest(items: readonly OpenLineageItem[]): Promise<OpenLineageResult>;
  /**
   * One RunEvent, batched with others arriving within `lingerMs` (an HTTP request each): one
   * store write per batch instead of per request. Resolves with its own outcome once stored.
   */
  submit(item: OpenLineageItem): Promise<OpenLineageOutcome>;
  /** Writes what is waiting. */
  close(): Promise<void>;
}

export interface OpenLineageIntakeOptions {
  processor: Pick<Processor, "processEvents">;
  store: { insert(table: string, rows: readonly object[]): Promise<void> };
  taxonomy: Taxonomy;
  classification?: Classification | undefined;
  /** RunEvents per batch of `submit`. @default 1000 */
  maxBatch?: number;
  /** How long `submit` waits for more before writing. @default 5 */
  lingerMs?: number;
  /** Batches of `submit` written at once. @default 2 */
  maxInFlight?: number;
  /** RunEvents `submit` holds waiting beyond those; more are refused as busy (HTTP 503: clients retry). @default 10000 */
  maxWaiting?: number;
}

export const defaultOpenLineageIntakeOptions = { maxBatch: 1000, lingerMs: 5, maxInFlight: 2, maxWaiting: 10_000 } as const;

export function createOpenLineageIntake(options: OpenLineageIntakeOptions): OpenLineageIntake {
  const mapOptions = { taxonomy: options.taxonomy, ...(options.classification ? { classification: options.classification } : {}) };
  const maxBatch = options.maxBatch ?? defaultOpenLineageIntakeOptions.maxBatch;
  const lingerMs = options.lingerMs ?? defaultOpenLineageIntakeOptions.lingerMs;
  const maxInFlight = Math.max(1, options.maxInFlight ?? defaultOpenLineageIntakeOptions.maxInFlight);
  const maxWaiting = options.maxWaiting ?? defaultOpenLineageIntakeOptions.maxWaiting;

  async function ingest(items: readonly OpenLineageItem[]): Promise<OpenLineageResult> {
    const inbound: InboundEvent[] = [];
    const outcomes: (OpenLineageOutcome | undefined)[] = [];
    const logged: { index: number; ol: RunEventInput; explanation: string; eventIds: string[] }[] = [];
    items.forEach((item, index) => {
      let stage: "parse" | "schema" | "event" = "parse";
      try {
        const doc = checkRunEventBytes(item.bytes);
        stage = "schema";
        const ol = validateRunEvent(doc) as RunEventInput;
        const mapped = mapRunEvent(ol, mapOptions);
        // All or nothing: the events a RunEvent becomes are checked as the processor checks them
        // (taxonomy keys, what each kind needs) before any is stored, so none is stored alone.
        stage = "event";
        for (const event of mapped.events) validateEvent(event, options.taxonomy);
        // A RunEvent carries no raw identifiers the schema lets through (subjects must be
        // pseudonyms): its events are kept as they are.
        for (const event of mapped.events) inbound.push({ event, source: item.source });
        logged.push({ index, ol, explanation: mapped.explanation, eventIds: mapped.events.map((e) => e.eventId) });
      } catch (error) {
        if (!(error instanceof LineageAuditError)) throw error;
        // Dead-lettered through the processor like any bad message: its length and SHA-256 kept,
        // its bytes withheld (unchecked input).
        inbound.push({ event: undefined, source: item.source, raw: item.bytes, failure: error });
        outcomes[index] = { source: item.source, stored: false, stage, code: error.code, reason: error.message };
      }
    });
    const result: Pick<ProcessResult, "accepted" | "rejected" | "violations" | "facts"> =
      inbound.length > 0 ? await options.processor.processEvents(inbound) : { accepted: 0, rejected: [], violations: 0, facts: [] };
    const refused = new Map<string, Rejection>();
    for (const r of result.rejected) if (!refused.has(r.source)) refused.set(r.source, r);
    const rows: object[] = [];
    for (const entry of logged) {
      const item = items[entry.index] as OpenLineageItem;
      const rejection = refused.get(item.source);
      outcomes[entry.index] = rejection
        ? { source: item.source, stored: false, stage: "event", code: rejection.code, reason: rejection.reason }
        : { source: item.source, stored: true, events: entry.eventIds.length, explanation: entry.explanation };
      rows.push({
        job_namespace: entry.ol.job.namespace,
        job_name: entry.ol.job.name,
        run_id: entry.ol.run.runId,
        event_type: entry.ol.eventType ?? "",
        event_time: entry.ol.eventTime,
        event_time_ms: Date.parse(entry.ol.eventTime) || 0,
        producer: entry.ol.producer,
        explanation: rejection ? `dead-lettered: ${rejection.reason}` : entry.explanation,
        event_ids: rejection ? [] : entry.eventIds,
        source: item.source,
      });
    }
    await options.store.insert(Table.openLineage, rows);
    return {
      outcomes: outcomes as OpenLineageOutcome[],
      accepted: result.accepted,
      rejected: result.rejected,
      violations: result.violations,
      facts: result.facts,
    };
  }

  // Group commit for submit(): up to `maxInFlight` batches are written at once (one is evaluated
  // while the other is stored); what arrives meanwhile is the next batch, taken as soon as a write
  // ends (or after lingerMs when idle).
  const waiting: { item: OpenLineageItem; resolve: (o: OpenLineageOutcome) => void; reject: (e: unknown) => void }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const inFlight = new Set<Promise<void>>();

  function drain(): void {
    if (timer) clearTimeout(timer);
    timer = undefined;
    while (inFlight.size < maxInFlight && waiting.length > 0) {
      const batch = waiting.splice(0, maxBatch);
      const done: Promise<void> = ingest(batch.map((w) => w.item)).then(
        (result) => batch.forEach((w, i) => w.resolve(result.outcomes[i] as OpenLineageOutcome)),
        (error: unknown) => batch.forEach((w) => w.reject(error)),
      );
      const tracked = done.finally(() => {
        inFlight.delete(tracked);
        drain();
      });
      inFlight.add(tracked);
    }
  }

  return {
    ingest,
    submit(item) {
      if (waiting.length >= maxWaiting)
        return Promise.reject(
          new TransportError(`the OpenLineage intake holds ${maxWaiting} RunEvents waiting to be stored; retry`, { retriable: true }),
        );
      return new Promise<OpenLineageOutcome>((resolve, reject) => {
        waiting.push({ item, resolve, reject });
        if (inFlight.size >= maxInFlight) return; // taken when a write in flight ends
        if (waiting.length >= maxBatch) drain();
        else timer ??= setTimeout(drain, lingerMs);
      });
    },
    async close() {
      drain();
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
  };
}
