import { createHash } from "node:crypto";
import { LineageAuditError } from "../errors/index.ts";
import type { DataAccessEvent, EventCodec } from "../codec/index.ts";
import type { Policy } from "../rules/index.ts";
import type { Taxonomy } from "../taxonomy/index.ts";
import { createAuditor, type Auditor, type AuditorOptions, type EventMeta } from "./audit.ts";
import { RawIdentifierError } from "./validate.ts";
import { emptyBatch, type AuditBatch, type DeadLetterRow, type OutboxRow, type ViolationRow } from "./rows.ts";

/** Where the processor puts what it found. Implemented by the ClickHouse store. */
export interface AuditSink {
  /** Writes a batch; must be idempotent (the same event ids again change nothing). */
  write(batch: AuditBatch): Promise<void>;
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
  /** New lineage facts (COLLECT, DERIVE) of this batch. */
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
    recentUses?: readonly { event: DataAccessEvent; rules: string[] }[],
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

export function createProcessor(config: ProcessorConfig, deps: { sink: AuditSink }): Processor {
  const auditor = createAuditor(config.policy, config.taxonomy, config);
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
    const sha = createHash("sha256").update(payload).digest("hex");
    const row: DeadLetterRow = {
      dead_letter_id: createHash("sha256").update(source).update(sha).digest("hex").slice(0, 32),
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

  // Rows of a write that failed. Some exist only once (the first time a fact, label or path is
  // seen), so a retry of the same messages would not make them again: they ride along with the
  // next write, deduplicated by key, until one succeeds.
  let carry: AuditBatch | undefined;
  async function write(out: AuditBatch): Promise<void> {
    if (config.alerts && out.violations.length > 0) out.outbox.push(...config.alerts.plan(out.violations));
    const batch = carry ? mergeBatches(carry, out) : out;
    try {
      await deps.sink.write(batch);
      carry = undefined;
    } catch (error) {
      carry = batch;
      throw error;
    }
  }

  async function finish(out: AuditBatch, rejected: Rejection[], received: number, facts: NewFact[] = []): Promise<ProcessResult> {
    await write(out);
    const accepted = received - rejected.length;
    stats.events += accepted;
    stats.violations += out.violations.length;
    stats.deadLetters += out.deadLetters.length;
    stats.findings += out.findings.length;
    return { accepted, rejected, violations: out.violations.length, findings: out.findings.length, facts };
  }

  return {
    auditor,
    stats,
    async processMessages(messages) {
      const out = emptyBatch();
      const rejected: Rejection[] = [];
      const facts: NewFact[] = [];
      for (const m of messages) {
        let decoded: ReturnType<EventCodec["decode"]> | undefined;
        try {
          decoded = codec.decode(m.bytes);
          const before = out.facts.length;
          auditor.handle(decoded.event, decoded, out);
          const fact = out.facts[before];
          if (fact) facts.push({ key: fact.fact_key, value: codec.encode({ ...decoded.event, subjects: [] }) });
        } catch (error) {
          reject(out, rejected, m.source, m.bytes, error, decoded?.event);
        }
      }
      return finish(out, rejected, messages.length, facts);
    },
    async processEvents(events) {
      const out = emptyBatch();
      const rejected: Rejection[] = [];
      for (const e of events) {
        try {
          if (e.failure) throw e.failure;
          const event = e.event;
          codec.validate(event);
          auditor.handle(event, e.meta ?? currentMeta, out);
        } catch (error) {
          reject(out, rejected, e.source, e.raw, error, e.failure ? undefined : e.event);
        }
      }
      return finish(out, rejected, events.length);
    },
    async learn(facts) {
      const out = emptyBatch();
      for (const fact of facts) auditor.learn(fact, out);
      if (out.events.length > 0 || out.violations.length > 0 || out.findings.length > 0 || carry) await write(out);
      stats.violations += out.violations.length;
    },
    async restore(facts, recentUses = []) {
      let n = 0;
      for await (const fact of facts) {
        auditor.restore(fact);
        n++;
      }
      for (const u of recentUses) auditor.rememberStored(u.event, currentMeta, u.rules);
      return n;
    },
  };
}

const rowKeys: { [K in keyof AuditBatch]: (row: AuditBatch[K][number]) => string } = {
  events: (r) => r.event_id,
  labels: (r) => r.label_id,
  edges: (r) => `${r.event_id}|${r.from_dataset}#${r.from_field}>${r.to_dataset}#${r.to_field}`,
  facts: (r) => r.fact_key,
  violations: (r) => r.violation_id,
  paths: (r) => r.path_id,
  outbox: (r) => r.webhook_id + "|" + r.subscription_id,
  findings: (r) => r.finding_id,
  deadLetters: (r) => r.dead_letter_id,
};

/** `a` then `b`, one row per key, `b`'s row where both have one (it is the newer). */
export function mergeBatches(a: AuditBatch, b: AuditBatch): AuditBatch {
  const out = emptyBatch();
  for (const table of Object.keys(rowKeys) as (keyof AuditBatch)[]) {
    const key = rowKeys[table] as (row: unknown) => string;
    const rows = new Map<string, unknown>();
    for (const row of a[table]) rows.set(key(row), row);
    for (const row of b[table]) {
      const k = key(row);
      rows.delete(k);
      rows.set(k, row);
    }
    (out[table] as unknown[]) = [...rows.values()];
  }
  return out;
}
