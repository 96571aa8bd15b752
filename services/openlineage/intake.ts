// The OpenLineage intake shared by HTTP (POST /api/v1/lineage), Kafka and files: each RunEvent
// is bounded, validated against the official schema, mapped (map.ts) and handed to the same
// processor as our own events; every RunEvent that validates is logged in openlineage_events_v1
// with what it became. One that cannot be taken is dead-lettered with a reason naming its JSON path.
import { LineageAuditError, TransportError } from "../errors/index.ts";
import { validateEvent, type InboundEvent, type Processor, type ProcessResult, type Rejection } from "../processor/index.ts";
import type { Taxonomy } from "../taxonomy/index.ts";
import { Table } from "../store/index.ts";
import type { IntakeJournal, JournalRecord } from "../ingest/journal.ts";
import type { Classification } from "./classification.ts";
import { explainStaticEvent, mapRunEvent, type Mapped, type RunEventInput } from "./map.ts";
import { createFacetMemo } from "./facet-memo.ts";
import { checkRunEventBytes, validateOpenLineageEvent, type OpenLineageEventKind } from "./validate.ts";

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
  /** RunEvents submitted and not yet stored (queryable). */
  backlog(): number;
  /** Resolves once every RunEvent submitted before the call is stored. */
  settled(): Promise<void>;
  /** Writes what is waiting (and what the journal holds), then closes the journal. */
  close(): Promise<void>;
}

export interface OpenLineageIntakeOptions {
  processor: Pick<Processor, "processEvents">;
  store: { insert(table: string, rows: readonly object[]): Promise<void> };
  taxonomy: Taxonomy;
  classification?: Classification | undefined;
  /**
   * RunEvents per batch of `submit` (under load; when idle a batch is what has arrived). Each batch
   * is one write per table, so larger ones write fewer, larger parts for ClickHouse to merge:
   * 4,000 took 4-15% less CPU a RunEvent than 1,000 (docs/performance.md). @default 4000
   */
  maxBatch?: number;
  /** How long `submit` waits for more before writing. @default 5 */
  lingerMs?: number;
  /** Batches of `submit` written at once. @default 2 */
  maxInFlight?: number;
  /** RunEvents `submit` holds waiting beyond those; more are refused as busy (HTTP 503: clients retry). @default 10000 */
  maxWaiting?: number;
  /**
   * When given, `submit` answers once a RunEvent is in this journal (on disk), and stores
   * journaled RunEvents behind it in batches of up to `maxBatch` (services/ingest/journal.ts).
   */
  journal?: IntakeJournal;
  /** Told of a batch that could not be stored (it is tried again). */
  onError?: (error: unknown) => void;
}

/** Journaled RunEvents waiting beyond which no mapped copy is kept beside their bytes. */
const MEMO_LIMIT = 10_000;

/** What the openlineage_events_v1 row keeps of an event (a JobEvent has no run, a DatasetEvent no job either). */
interface RunEventHead {
  kind: OpenLineageEventKind;
  jobNamespace: string;
  jobName: string;
  runId: string;
  /** A DatasetEvent's dataset, namespace/name. */
  dataset: string;
  eventType: string;
  eventTime: string;
  producer: string;
}

/**
 * A RunEvent checked and mapped (or refused, with its outcome), kept until its batch is stored
 * (under load, hundreds of milliseconds): its head and what it became, not the parsed document,
 * which is left to the young generation instead of being copied into the old one.
 */
type Prepared = { head: RunEventHead; mapped: Mapped } | { failure: LineageAuditError; outcome: OpenLineageOutcome & { stored: false } };

export const defaultOpenLineageIntakeOptions = { maxBatch: 4000, lingerMs: 5, maxInFlight: 2, maxWaiting: 10_000 } as const;

export function createOpenLineageIntake(options: OpenLineageIntakeOptions): OpenLineageIntake {
  const mapOptions = { taxonomy: options.taxonomy, ...(options.classification ? { classification: options.classification } : {}) };
  const maxBatch = options.maxBatch ?? defaultOpenLineageIntakeOptions.maxBatch;
  const lingerMs = options.lingerMs ?? defaultOpenLineageIntakeOptions.lingerMs;
  const maxInFlight = Math.max(1, options.maxInFlight ?? defaultOpenLineageIntakeOptions.maxInFlight);
  const maxWaiting = options.maxWaiting ?? defaultOpenLineageIntakeOptions.maxWaiting;
  // The large facets a job's runs send again byte for byte (schema, column lineage), parsed and mapped once.
  const facets = createFacetMemo();

  /** Checks and maps one RunEvent (no I/O): what it becomes, or why it is refused. */
  function prepare(item: OpenLineageItem): Prepared {
    let stage: "parse" | "schema" | "event" = "parse";
    try {
      const doc = checkRunEventBytes(item.bytes, undefined, facets);
      stage = "schema";
      const checked = validateOpenLineageEvent(doc);
      if (checked.kind !== "RunEvent") {
        // Static metadata: logged and explained, never lineage.
        const { event } = checked;
        const job = "job" in event ? event.job : undefined;
        const head = {
          kind: checked.kind,
          jobNamespace: job?.namespace ?? "",
          jobName: job?.name ?? "",
          runId: "",
          dataset: "dataset" in event ? `${event.dataset.namespace}/${event.dataset.name}` : "",
          eventType: "",
          eventTime: event.eventTime,
          producer: event.producer,
        };
        return { head, mapped: { events: [], explanation: explainStaticEvent(checked) } };
      }
      const ol = checked.event as RunEventInput;
      const mapped = mapRunEvent(ol, mapOptions);
      // All or nothing: the events a RunEvent becomes are checked as the processor checks them
      // (taxonomy keys, what each kind needs) before any is stored, so none is stored alone.
      stage = "event";
      for (const event of mapped.events) validateEvent(event, options.taxonomy);
      const head = {
        kind: checked.kind,
        jobNamespace: ol.job.namespace,
        jobName: ol.job.name,
        runId: ol.run.runId,
        dataset: "",
        eventType: ol.eventType ?? "",
        eventTime: ol.eventTime,
        producer: ol.producer,
      };
      return { head, mapped };
    } catch (error) {
      if (!(error instanceof LineageAuditError)) throw error;
      return { failure: error, outcome: { source: item.source, stored: false, stage, code: error.code, reason: error.message } };
    }
  }

  /** Stores prepared RunEvents: their events through the processor, then each one's row in openlineage_events_v1. */
  async function store(items: readonly OpenLineageItem[], prepared: readonly Prepared[]): Promise<OpenLineageResult> {
    const inbound: InboundEvent[] = [];
    const outcomes: (OpenLineageOutcome | undefined)[] = [];
    const logged: { index: number; head: RunEventHead; explanation: string; eventIds: string[] }[] = [];
    items.forEach((item, index) => {
      const p = prepared[index] as Prepared;
      if ("failure" in p) {
        // Dead-lettered through the processor like any bad message: its length and SHA-256 kept,
        // its bytes withheld (unchecked input).
        inbound.push({ event: undefined, source: item.source, raw: item.bytes, failure: p.failure });
        outcomes[index] = p.outcome;
        return;
      }
      // A RunEvent carries no raw identifiers the schema lets through (subjects must be
      // pseudonyms): its events are kept as they are.
      for (const event of p.mapped.events) inbound.push({ event, source: item.source });
      logged.push({ index, head: p.head, explanation: p.mapped.explanation, eventIds: p.mapped.events.map((e) => e.eventId) });
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
        job_namespace: entry.head.jobNamespace,
        job_name: entry.head.jobName,
        run_id: entry.head.runId,
        event_kind: entry.head.kind,
        dataset: entry.head.dataset,
        event_type: entry.head.eventType,
        event_time: entry.head.eventTime,
        event_time_ms: Date.parse(entry.head.eventTime) || 0,
        producer: entry.head.producer,
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

  const ingest = (items: readonly OpenLineageItem[]) => store(items, items.map(prepare));

  // Group commit for submit(): up to `maxInFlight` batches are written at once (one is evaluated
  // while the other is stored); what arrives meanwhile is the next batch, taken as soon as a write
  // ends (or after lingerMs when idle).
  const waiting: { item: OpenLineageItem; resolve: (o: OpenLineageOutcome) => void; reject: (e: unknown) => void }[] = [];
  let timer: NodeJS.Timeout | undefined;
  let unsettled = 0;
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

  if (options.journal) return journaled(options.journal);

  return {
    ingest,
    backlog: () => unsettled,
    settled: async () => {
      while (inFlight.size > 0 || waiting.length > 0) {
        drain();
        await Promise.all(inFlight);
      }
    },
    submit(item) {
      if (waiting.length >= maxWaiting)
        return Promise.reject(
          new TransportError(`the OpenLineage intake holds ${maxWaiting} RunEvents waiting to be stored; retry`, { retriable: true }),
        );
      unsettled++;
      return new Promise<OpenLineageOutcome>((resolve, reject) => {
        waiting.push({
          item,
          resolve: (o) => {
            unsettled--;
            resolve(o);
          },
          reject: (e) => {
            unsettled--;
            reject(e instanceof Error ? e : new Error(String(e)));
          },
        });
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

  /**
   * submit() through the journal: a RunEvent is checked and mapped at once, appended to the
   * journal, and answered when the append is on disk; batches of journaled RunEvents are stored
   * behind it, in order, and marked done once stored. One that cannot be stored yet (the store is
   * down) is tried again, never dropped; after a crash the journal gives back what was not done.
   */
  function journaled(journal: IntakeJournal): OpenLineageIntake {
    let appended = journal.waiting; // recovered at open, then counted as appends resolve
    let stored = 0;
    let closing = false; // submit refuses; a batch that fails now stays journaled for the next start
    let halted = false;
    let closed = false;
    const running = new Set<Promise<void>>();
    let order: Promise<void> = Promise.resolve(); // done() in the order batches were taken
    const settledWaiters: { target: number; resolve: () => void }[] = [];
    let listening = false;

    function wake(): void {
      for (let i = settledWaiters.length - 1; i >= 0; i--) {
        const w = settledWaiters[i] as (typeof settledWaiters)[number];
        if (stored >= w.target) {
          settledWaiters.splice(i, 1);
          w.resolve();
        }
      }
    }

    // A batch starts when none runs, or when a whole batch waits: under load, batches grow to what
    // arrives while one is stored (few large writes); when idle, each RunEvent is stored at once.
    function pump(): void {
      if (closed) return;
      while (!halted && journal.waiting > 0 && (running.size === 0 || (running.size < maxInFlight && journal.waiting >= maxBatch))) {
        const records = journal.take(maxBatch);
        if (records.length === 0) break;
        const last = (records.at(-1) as JournalRecord).seq;
        const previous = order;
        const finished = storeRecords(records)
          .then(() => previous)
          .then(() => journal.done(last))
          .then(() => {
            stored += records.length;
            wake();
          });
        // A batch that fails keeps every later one from being marked done (each would mark it done too).
        order = finished;
        const tracked: Promise<void> = finished
          .catch((error: unknown) => options.onError?.(error))
          .finally(() => {
            running.delete(tracked);
            pump();
          });
        running.add(tracked);
      }
      if (journal.waiting === 0 && !listening && !closing) {
        listening = true;
        void journal.readable().then(() => {
          listening = false;
          pump();
        });
      }
    }

    async function storeRecords(records: readonly JournalRecord[]): Promise<void> {
      const items = records.map((r) => ({ bytes: r.bytes, source: r.source }));
      // Checked when it arrived; a RunEvent recovered after a restart is checked again.
      const prepared = records.map((r, i) => (r.memo as Prepared | undefined) ?? prepare(items[i] as OpenLineageItem));
      for (let attempt = 0; ; attempt++) {
        try {
          await store(items, prepared);
          return;
        } catch (error) {
          if (closing) {
            halted = true;
            throw error;
          }
          options.onError?.(error);
          await new Promise((r) => setTimeout(r, Math.min(5_000, 100 * 2 ** attempt)));
        }
      }
    }

    pump();
    return {
      ingest,
      backlog: () => appended - stored,
      settled: () => new Promise<void>((resolve) => (stored >= appended ? resolve() : settledWaiters.push({ target: appended, resolve }))),
      async submit(item) {
        if (closing) throw new TransportError("the OpenLineage intake is closing; retry", { retriable: true });
        const p = prepare(item);
        // Refused ones too: their dead letters are stored with the batch they fall in.
        // What it became is kept beside it for the batch that stores it, while few wait (a long
        // backlog keeps only the bytes, bounded by the journal, and maps them again when stored).
        await journal.append([{ source: item.source, bytes: item.bytes, ...(journal.waiting < MEMO_LIMIT ? { memo: p } : {}) }]);
        appended++;
        pump();
        if ("failure" in p) return p.outcome;
        return { source: item.source, stored: true, events: p.mapped.events.length, explanation: p.mapped.explanation };
      },
      async close() {
        // What is journaled is stored before the journal closes, unless the store fails meanwhile:
        // then it stays there for the next start (as after a crash).
        closing = true;
        for (pump(); running.size > 0; pump()) await Promise.allSettled([...running]);
        closed = true;
        await journal.close();
      },
    };
  }
}
