import { hash } from "node:crypto";
import { LineageAuditError, StoreDataError } from "../errors/index.ts";
import type { DataAccessEvent, EventCodec } from "../codec/index.ts";
import type { Policy } from "../rules/index.ts";
import type { Taxonomy } from "../taxonomy/index.ts";
import { createAuditor, type Auditor, type AuditorOptions, type EventMeta, type LineageNeed, type StoredWrite } from "./audit.ts";
import { RawIdentifierError } from "./validate.ts";
import { emptyBatch, type AuditBatch, type DeadLetterRow, type OutboxRow, type ViolationRow } from "./rows.ts";

/** Where the processor puts what it found. Implemented by the ClickHouse store. */
export interface AuditSink {
  /** Writes a batch; must be idempotent (the same event ids again change nothing). */
  write(batch: AuditBatch): Promise<void>;
}

/**
 * Where a bounded lineage graph fetches the stored facts a batch needs (implemented by the
 * ClickHouse store). Given, the graph is a cache of the store; absent, it holds every fact.
 */
export interface LineageSource {
  lineageFactsOf(need: LineageNeed): Promise<DataAccessEvent[]>;
}

/** One message as it arrived: its bytes and where from (topic/partition/offset, file:line, http). */
export interface InboundMessage {
  bytes: Uint8Array;
  source: string;
}

/** An event that arrived already decoded (NDJSON, Avro container files). */
export interface InboundEvent {
  event: unknown;
  source: string;
  meta?: EventMeta;
  /** Bytes kept in the dead-letter record if the event is rejected; absent = withheld (may hold raw identifiers). */
  raw?: Uint8Array | undefined;
  /** Set when the event already failed upstream (unparseable line): it is dead-lettered with this reason. */
  failure?: LineageAuditError;
}

export interface Rejection {
  source: string;
  code: string;
  reason: string;
  /** The message may hold raw identifiers: its bytes must not be kept or forwarded. */
  redacted: boolean;
}

/** A lineage fact this batch added to the graph, to share with other instances. */
export interface NewFact {
  /** Stable id of the fact (same as lineage_facts_v1.fact_key). */
  key: string;
  /** The event without its subjects, single-object encoded. */
  value: Uint8Array;
}

export interface ProcessResult {
  /** Messages (events) taken in; a late re-evaluation adds rows, not accepted events. */
  accepted: number;
  rejected: Rejection[];
  violations: number;
  findings: number;
  /** New lineage facts (COLLECT, DERIVE) of this batch, stored with it (the store refused none of them). */
  facts: NewFact[];
}

export interface ProcessorStats {
  events: number;
  violations: number;
  deadLetters: number;
  findings: number;
}

export interface Processor {
  /** Decodes, evaluates and stores a batch of single-object encoded (or Confluent framed) messages. */
  processMessages(messages: readonly InboundMessage[]): Promise<ProcessResult>;
  /** Same for events that arrived decoded; each is validated against the schema first. */
  processEvents(events: readonly InboundEvent[]): Promise<ProcessResult>;
  /** Applies lineage facts other instances have stored (shared through Kafka); writes any late violations they reveal. */
  learn(facts: readonly DataAccessEvent[]): Promise<void>;
  /**
   * Rebuilds the lineage graph from stored lineage facts before processing (restart), and puts
   * the most recent stored uses back in the recheck window.
   */
  restore(
    facts: AsyncIterable<DataAccessEvent> | Iterable<DataAccessEvent>,
    recentUses?: readonly { event: DataAccessEvent; rules: string[]; written?: StoredWrite; pending?: boolean }[],
  ): Promise<number>;
  readonly auditor: Auditor;
  readonly stats: Readonly<ProcessorStats>;
}

export interface ProcessorConfig extends AuditorOptions {
  policy: Policy;
  taxonomy: Taxonomy;
  codec: EventCodec;
  /** Decides the alerts each batch's violations raise; they are stored with the batch. */
  alerts?: { plan(violations: readonly ViolationRow[]): OutboxRow[] };
}

export function createProcessor(config: ProcessorConfig, deps: { sink: AuditSink; lineage?: LineageSource }): Processor {
  const auditor = createAuditor(config.policy, config.taxonomy, { ...config, onDemand: deps.lineage !== undefined });
  const codec: EventCodec = config.codec;
  const stats: ProcessorStats = { events: 0, violations: 0, deadLetters: 0, findings: 0 };
  const currentMeta: EventMeta = { writerFingerprint: codec.writerFingerprint, writerVersion: codec.writerVersion };

  /**
   * Dead-letters a message. Its bytes are kept only when it decoded into an event that the schema
   * accepts and whose subjects are all pseudonyms (`event`); anything else may hold raw
   * identifiers, so only its length and SHA-256 are kept.
   */
  function reject(
    out: AuditBatch,
    rejected: Rejection[],
    source: string,
    bytes: Uint8Array | undefined,
    error: unknown,
    event: unknown,
  ): void {
    const known = error instanceof LineageAuditError;
    if (!known) {
      // A bug, not bad input: surface it rather than dead-letter it.
      throw error;
    }
    const redacted = error instanceof RawIdentifierError || bytes === undefined || !codec.holdsOnlyPseudonyms(event);
    const payload = bytes ?? new Uint8Array();
    const sha = hash("sha256", payload, "hex");
    const row: DeadLetterRow = {
      dead_letter_id: hash("sha256", `${source}${sha}`, "hex").slice(0, 32),
      source,
      reason: error.message,
      error_code: error.code,
      payload_base64: redacted ? "" : Buffer.from(payload).toString("base64"),
      payload_sha256: sha,
      payload_bytes: payload.byteLength,
      redacted: redacted ? 1 : 0,
    };
    out.deadLetters.push(row);
    rejected.push({ source, code: error.code, reason: error.message, redacted });
  }

  /** The source of the unit holding the alerts a write's violations raise. */
  const ALERT_PLANNING = "alert planning";

  // Rows that exist only once (the first time a fact, label or path is seen) must reach the store
  // even when their write fails: a failed write's units are carried and written with the next
  // write, whichever intake (HTTP, Kafka, files) makes it. A write takes what is carried when it
  // starts and gives it back only if it fails itself, so writes in flight side by side never drop
  // each other's carried rows.
  const carry: Unit[] = [];
  // Units of a batch whose processing threw, written with the next write.
  const stray: Unit[] = [];
  let sequence = 0;

  function unit(source: string, bytes: Uint8Array | undefined, rows: AuditBatch, key?: string, span?: Span): Unit {
    const firstDeadLetter = span
      ? span.end[DEAD_LETTERS]! > span.start[DEAD_LETTERS]!
        ? rows.deadLetters[span.start[DEAD_LETTERS]!]
        : undefined
      : rows.deadLetters[0];
    return {
      // A message's own event id where it came from (the same message retried makes the same unit), else its dead letter's id.
      key: key !== undefined ? `${key}@${source}` : (firstDeadLetter?.dead_letter_id ?? `${source}#${sequence++}`),
      source,
      bytes,
      rows,
      span,
    };
  }

  async function write(units: Unit[]): Promise<void> {
    if (config.alerts) {
      // The units' rows as the write will send them (the batch they share, uncopied, when they cover it).
      const violations = gather(units).violations;
      const outbox = violations.length > 0 ? config.alerts.plan(violations) : [];
      if (outbox.length > 0) {
        // Into the batch the units share, after their rows, when they end it: the write stays one batch.
        const shared = sharesOneBatch(units) ? units[0]?.rows : undefined;
        const last = units.at(-1)?.span;
        if (shared && last && TABLES.every((t, i) => last.end[i] === shared[t].length)) {
          const start = marks(shared);
          shared.outbox.push(...outbox);
          units.push(unit(ALERT_PLANNING, undefined, shared, `alerts#${sequence++}`, { start, end: marks(shared) }));
        } else {
          units.push(unit(ALERT_PLANNING, undefined, { ...emptyBatch(), outbox }, `alerts#${sequence++}`));
        }
      }
    }
    const taken = [...carry.splice(0), ...stray.splice(0)];
    const all = taken.length > 0 ? mergeUnits(taken, units) : units;
    try {
      await writeUnits(all);
    } catch (error) {
      for (const u of all) carry.push(u);
      throw error;
    }
  }

  // The store refused rows for what they hold: halve until the unit (message) behind them is
  // found, store a dead letter in its place and the rest as usual.
  async function writeUnits(units: Unit[]): Promise<void> {
    if (units.length === 0) return;
    try {
      // Concatenated, not merged: two messages may share an event id with different contents, and
      // the store keeps the first (one event id, one content); a re-check's newer row comes later.
      await deps.sink.write(gather(units));
    } catch (error) {
      if (!(error instanceof StoreDataError)) throw error;
      if (units.length > 1) {
        // Alerts go with the first half, so none is written after a violation it is raised by
        // (a write stores its alerts before its violations).
        const ordered = [...units.filter((u) => u.source === ALERT_PLANNING), ...units.filter((u) => u.source !== ALERT_PLANNING)];
        const half = Math.ceil(ordered.length / 2);
        await writeUnits(ordered.slice(0, half));
        await writeUnits(ordered.slice(half));
        return;
      }
      const poison = units[0] as Unit;
      const rows = emptyBatch();
      const refused: Rejection[] = [];
      reject(rows, refused, poison.source, poison.bytes, error, poison.event);
      poison.rows = rows;
      poison.span = undefined;
      poison.refused = refused[0];
      try {
        await deps.sink.write(rows);
      } catch (again) {
        if (!(again instanceof StoreDataError)) throw again;
        // The store refuses even the dead letter: the caller still hears of it (dead-letter
        // topic, HTTP answer), and nothing is left to stall every later write.
        poison.rows = emptyBatch();
        poison.span = undefined;
      }
    }
  }

  /** Processes each input into a unit of its own (so the store can refuse one without the others). */
  // The inputs' rows go into one batch; each unit knows its span there (no batch per message).
  function collectUnits<T>(
    inputs: readonly T[],
    each: (input: T, out: AuditBatch, rejected: Rejection[]) => Omit<Unit, "key" | "rows" | "span"> & { eventId: string | undefined },
  ): { units: Unit[]; rejected: Rejection[] } {
    const units: Unit[] = [];
    const rejected: Rejection[] = [];
    const out = emptyBatch();
    let start = marks(out);
    try {
      for (const input of inputs) {
        const made = each(input, out, rejected);
        const end = marks(out);
        const u = unit(made.source, made.bytes, out, made.eventId, { start, end });
        u.fact = made.fact;
        u.event = made.event;
        units.push(u);
        start = end;
      }
    } catch (error) {
      // A bug stopped the batch: what the inputs before it did to the lineage graph is kept in
      // memory, so their rows must still reach the store.
      stray.push(...units);
      throw error;
    }
    return { units, rejected };
  }

  async function finish(units: Unit[], rejected: Rejection[], received: number): Promise<ProcessResult> {
    await write(units);
    const facts: NewFact[] = [];
    let violations = 0;
    let findings = 0;
    let deadLetters = 0;
    for (const u of units) {
      if (u.refused) rejected.push(u.refused);
      else if (u.fact) facts.push(u.fact);
      violations += countOf(u, VIOLATIONS);
      findings += countOf(u, FINDINGS);
      deadLetters += countOf(u, DEAD_LETTERS);
    }
    const accepted = received - rejected.length;
    stats.events += accepted;
    stats.violations += violations;
    stats.deadLetters += deadLetters;
    stats.findings += findings;
    return { accepted, rejected, violations, findings, facts };
  }

  // Bounded graph: the stored lineage a batch needs is loaded before it is handled. One batch at
  // a time, so that loading for one (which may empty the graph) never runs between another's
  // loading and its handling. The turn ends at setImmediate: the caller's handling loop is
  // synchronous and resumes in a microtask, so it has finished by then.
  let lineageTurn: Promise<void> = Promise.resolve();
  async function prepare(events: readonly DataAccessEvent[]): Promise<void> {
    const source = deps.lineage;
    if (!source) return;
    const previous = lineageTurn;
    let release = () => {};
    lineageTurn = new Promise((resolve) => (release = resolve));
    await previous;
    try {
      for (let need = auditor.missingLineage(events); need; need = auditor.missingLineage([])) {
        auditor.loadLineage(await source.lineageFactsOf(need), need);
      }
    } finally {
      setImmediate(release);
    }
  }

  return {
    auditor,
    stats,
    async processMessages(messages) {
      // Decoded once: the lineage a batch needs is loaded (bounded graph) before any of it is handled.
      const decoded = messages.map((m): ReturnType<EventCodec["decode"]> | { error: unknown } => {
        try {
          return codec.decode(m.bytes);
        } catch (error) {
          return { error };
        }
      });
      if (deps.lineage) await prepare(decoded.flatMap((d) => ("error" in d ? [] : [d.event])));
      let index = 0;
      const { units, rejected } = collectUnits(messages, (m, out, rejected) => {
        const d = decoded[index++];
        let fact: NewFact | undefined;
        let key: string | undefined;
        try {
          if (d === undefined) throw new Error("decoded messages out of step");
          if ("error" in d) throw d.error;
          auditor.handle(d.event, d, out);
          key = d.event.eventId;
          // The message's own fact (COLLECT, DERIVE new to the graph); late re-checks add none.
          const row = out.facts[0];
          if (row) fact = { key: row.fact_key, value: codec.encode({ ...d.event, subjects: [] }) };
        } catch (error) {
          reject(out, rejected, m.source, m.bytes, error, d !== undefined && !("error" in d) ? d.event : undefined);
        }
        return {
          source: m.source,
          bytes: m.bytes,
          eventId: key,
          fact,
          event: key !== undefined && d && !("error" in d) ? d.event : undefined,
        };
      });
      return finish(units, rejected, messages.length);
    },
    async processEvents(events) {
      // Validated once: the lineage a batch needs is loaded (bounded graph) before any of it is handled.
      const checked = events.map((e): { event: DataAccessEvent } | { error: unknown } => {
        if (e.failure) return { error: e.failure };
        try {
          codec.validate(e.event);
          return { event: e.event };
        } catch (error) {
          return { error };
        }
      });
      if (deps.lineage) await prepare(checked.flatMap((c) => ("error" in c ? [] : [c.event])));
      let index = 0;
      const { units, rejected } = collectUnits(events, (e, out, rejected) => {
        let key: string | undefined;
        try {
          const c = checked[index++];
          if (c === undefined) throw new Error("validated events out of step");
          if ("error" in c) throw c.error;
          auditor.handle(c.event, e.meta ?? currentMeta, out);
          key = c.event.eventId;
        } catch (error) {
          reject(out, rejected, e.source, e.raw, error, e.failure ? undefined : e.event);
        }
        return { source: e.source, bytes: e.raw, eventId: key, event: key !== undefined ? e.event : undefined };
      });
      return finish(units, rejected, events.length);
    },
    async learn(facts) {
      if (deps.lineage) await prepare(facts);
      const out = emptyBatch();
      for (const fact of facts) auditor.learn(fact, out);
      if (out.events.length > 0 || out.violations.length > 0 || out.findings.length > 0 || carry.length > 0 || stray.length > 0) {
        await write([unit("lineage learned from other instances", undefined, out, `learned#${sequence++}`)]);
      }
      stats.violations += out.violations.length;
    },
    async restore(facts, recentUses = []) {
      let n = 0;
      // A bounded graph loads what it needs on demand: streaming every fact here would fill it.
      for await (const fact of deps.lineage ? [] : facts) {
        auditor.restore(fact);
        n++;
      }
      for (const u of recentUses) {
        if (u.pending) auditor.parkStored(u.event, currentMeta);
        else auditor.rememberStored(u.event, currentMeta, u.rules, u.written);
      }
      return n;
    },
  };
}

const rowKeys: { [K in keyof AuditBatch]: (row: AuditBatch[K][number]) => string } = {
  events: (r) => r.event_id,
  labels: (r) => r.label_id,
  // An event's edges come whole from its content: one row per event id and what the id guard tells contents apart by.
  edges: (r) => `${r.event_id}|${r.occurred_at}|${r.service}|${r.job_namespace}|${r.job_name}|${r.run_id}`,
  facts: (r) => r.fact_key,
  violations: (r) => r.violation_id,
  paths: (r) => r.path_id,
  outbox: (r) => r.webhook_id + "|" + r.subscription_id,
  findings: (r) => r.finding_id,
  deadLetters: (r) => r.dead_letter_id,
};

/** The batches in order, one row per key, the later batch's row where several have one (it is the newer). */
export function mergeBatches(...batches: AuditBatch[]): AuditBatch {
  const out = emptyBatch();
  for (const table of Object.keys(rowKeys) as (keyof AuditBatch)[]) {
    const key = rowKeys[table] as (row: unknown) => string;
    const rows = new Map<string, unknown>();
    for (const batch of batches) {
      for (const row of batch[table]) {
        const k = key(row);
        rows.delete(k);
        rows.set(k, row);
      }
    }
    (out[table] as unknown[]) = [...rows.values()];
  }
  return out;
}

/** The batches' rows in order, table by table. */
/** The tables of a batch, in a fixed order (spans index by it). */
const TABLES = [
  "events",
  "labels",
  "edges",
  "facts",
  "violations",
  "paths",
  "outbox",
  "findings",
  "deadLetters",
] as const satisfies readonly (keyof AuditBatch)[];
// Every table of AuditBatch is in TABLES (a table added to one and not the other fails to compile).
const everyTable: [Exclude<keyof AuditBatch, (typeof TABLES)[number]>] extends [never] ? true : false = true;
void everyTable;
const VIOLATIONS = TABLES.indexOf("violations");
const FINDINGS = TABLES.indexOf("findings");
const DEAD_LETTERS = TABLES.indexOf("deadLetters");

/** Where a unit's rows sit in a batch it shares with the other units of its input batch: [start, end) per table. */
interface Span {
  start: readonly number[];
  end: readonly number[];
}

function marks(b: AuditBatch): number[] {
  // In TABLES order (emptyBatch's), written out: this runs for every message.
  return [
    b.events.length,
    b.labels.length,
    b.edges.length,
    b.facts.length,
    b.violations.length,
    b.paths.length,
    b.outbox.length,
    b.findings.length,
    b.deadLetters.length,
  ];
}

function countOf(u: Unit, table: number): number {
  return u.span
    ? (u.span.end[table] as number) - (u.span.start[table] as number)
    : (u.rows[TABLES[table] as keyof AuditBatch] as unknown[]).length;
}

function tableOf<K extends keyof AuditBatch>(u: Unit, table: K): AuditBatch[K] {
  if (!u.span) return u.rows[table];
  const i = TABLES.indexOf(table);
  return u.rows[table].slice(u.span.start[i], u.span.end[i]) as AuditBatch[K];
}

/** A unit's own rows as a batch of their own. */
function rowsOf(u: Unit): AuditBatch {
  if (!u.span) return u.rows;
  const out = emptyBatch();
  for (const t of TABLES) (out[t] as unknown[]) = tableOf(u, t);
  return out;
}

function sharesOneBatch(units: readonly Unit[]): boolean {
  const first = units[0];
  return first !== undefined && units.every((u) => u.rows === first.rows && u.span !== undefined);
}

/**
 * The units' rows in order, table by table: concatenated, not merged (two messages may share an
 * event id with different contents, and the store keeps the first). Units that share one batch
 * and follow each other there are read as one range; a whole batch is passed as it is.
 */
function gather(units: readonly Unit[]): AuditBatch {
  const parts: { rows: AuditBatch; start: readonly number[] | undefined; end: readonly number[] | undefined }[] = [];
  for (const u of units) {
    const last = parts.at(-1);
    if (u.span && last?.end && last.rows === u.rows && last.end.every((n, i) => n === u.span?.start[i])) {
      last.end = u.span.end;
      continue;
    }
    parts.push({ rows: u.rows, start: u.span?.start, end: u.span?.end });
  }
  const only = parts[0];
  if (parts.length === 0) return emptyBatch();
  if (
    parts.length === 1 &&
    only &&
    (!only.start || (only.start.every((n) => n === 0) && TABLES.every((t, i) => only.end?.[i] === only.rows[t].length)))
  ) {
    return only.rows;
  }
  const out = emptyBatch();
  TABLES.forEach((t, i) => {
    const rows = out[t] as unknown[];
    for (const p of parts) {
      const from = p.rows[t] as unknown[];
      const end = p.end?.[i] ?? from.length;
      for (let k = p.start?.[i] ?? 0; k < end; k++) rows.push(from[k]);
    }
  });
  return out;
}

/** The rows one input (a message, an event, a learned batch) produced, and what a dead letter for it needs. */
interface Unit {
  key: string;
  source: string;
  bytes: Uint8Array | undefined;
  /** The batch holding the unit's rows: its own, or shared with the other units of its input batch (see span). */
  rows: AuditBatch;
  /** Where the unit's rows sit in `rows` when it is shared; absent, all of `rows` is the unit's. */
  span?: Span | undefined;
  /** Set when the store refused the unit's rows and a dead letter took their place. */
  refused?: Rejection | undefined;
  /** The message's own new lineage fact, shared only once stored. */
  fact?: NewFact | undefined;
  /** The event, when it decoded and was handled: a dead letter keeps its bytes only if it holds only pseudonyms. */
  event?: unknown;
}

/** Carried units then new ones; a unit made again (the same message retried) keeps the rows of both. */
function mergeUnits(carried: Unit[], fresh: Unit[]): Unit[] {
  const byKey = new Map<string, Unit>();
  for (const u of [...carried, ...fresh]) {
    const before = byKey.get(u.key);
    if (before) {
      u.rows = mergeBatches(rowsOf(before), rowsOf(u));
      u.span = undefined;
      u.fact ??= before.fact;
      byKey.delete(u.key);
    }
    byKey.set(u.key, u);
  }
  return [...byKey.values()];
}
