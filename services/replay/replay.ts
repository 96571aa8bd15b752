import { createHash } from "node:crypto";
import { LineageAuditError } from "../errors/index.ts";
import type { Policy } from "../rules/index.ts";
import type { Taxonomy } from "../taxonomy/index.ts";
import { createAuditor, emptyBatch, type AuditBatch } from "../processor/index.ts";
import type { Store } from "../store/index.ts";
import { createLineageTimeline } from "./timeline.ts";

export interface ReplayOptions {
  /** The rules to evaluate, and the text they came from (it names the replay). */
  policy: Policy;
  rulesText: string;
  taxonomy: Taxonomy;
  /** Inclusive lower bound, ms since 1970. @default 0 */
  from?: number;
  /** Exclusive upper bound, ms since 1970. @default far future */
  to?: number;
  /** Stored events read at a time. @default 20000 */
  pageSize?: number;
  onProgress?: (done: number, total: number) => void;
  /** Checked between pages: stop there (the progress is saved; the same command resumes). */
  shouldStop?: () => boolean;
}

export interface ReplayResult {
  replayId: string;
  /** Uses and shares evaluated in this run. */
  events: number;
  /** Violations written in this run (already stored ones are written again, not added: ids are stable). */
  violations: number;
  /** Whether it went on from an interrupted run. */
  resumed: boolean;
  /** Whether the whole window has been evaluated. */
  done: boolean;
  /** Whether a previous run had already finished it (nothing was done). */
  alreadyDone: boolean;
}

/** A replay's name in replay_progress_v1: the rules text, the window and (for the SQL replay) its engine. */
export function replayIdOf(rulesText: string, from: number, to: number, engine: "stream" | "sql" = "stream"): string {
  return createHash("sha256")
    .update(rulesText)
    .update(`|${from}|${to}${engine === "sql" ? "|sql" : ""}`)
    .digest("hex")
    .slice(0, 16);
}

/**
 * Evaluates rules over the stored history with the stored lineage, without re-reading Kafka:
 * "had this rule existed since January, whom would it have flagged". Time-valid: each use is
 * judged by the lineage that had occurred (not arrived) by its time, facts of the same
 * millisecond included. Violations are written marked `retroactive = 1` with the same ids a live
 * evaluation would give, so running it twice, or alongside the live rule, adds nothing. Progress
 * is saved after every page; a resumed run first applies the lineage up to its cursor.
 */
export async function replayRules(store: Store, options: ReplayOptions): Promise<ReplayResult> {
  const db = store.database;
  const from = options.from ?? 0;
  const to = options.to ?? Date.UTC(2299, 11, 31);
  const pageSize = options.pageSize ?? 20_000;
  const replayId = replayIdOf(options.rulesText, from, to);
  const [saved] = await store.query<{ at: string; id: string; events: string; violations: string; done: number }>(
    `SELECT toString(toUnixTimestamp64Milli(cursor_at)) AS at, cursor_event_id AS id, events, violations, done
     FROM ${db}.replay_progress_v1 FINAL WHERE replay_id = {id:String}`,
    { id: replayId },
  );
  if (saved?.done === 1) return { replayId, events: 0, violations: 0, resumed: false, done: true, alreadyDone: true };
  const [count] = await store.query<{ n: string }>(
    `SELECT count() AS n FROM ${db}.events_v1 FINAL WHERE kind IN ('USE', 'SHARE')
       AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`,
    { from, to },
  );
  const total = Number(count?.n ?? 0);

  const auditor = createAuditor(options.policy, options.taxonomy, { recheckWindow: 0, maxPending: 0 });
  // Time-valid: each use is judged by the lineage that had occurred by its time (occurred, not
  // arrived), so the facts are applied in occurred order as the uses advance, never all at once.
  const lineage = createLineageTimeline(store.lineageFactsInTimeOrder(), (fact) => auditor.restore(fact));

  let cursor = saved ? { at: Number(saved.at), eventId: saved.id } : { at: from, eventId: "" };
  // A resumed run starts from the lineage as it was at its cursor.
  if (saved) await lineage.advanceTo(cursor.at);
  let doneEvents = saved ? Number(saved.events) : 0;
  let doneViolations = saved ? Number(saved.violations) : 0;
  let events = 0;
  let violations = 0;
  const meta = { writerFingerprint: "replay", writerVersion: 0 };
  options.onProgress?.(doneEvents, total);
  for (;;) {
    if (options.shouldStop?.()) return { replayId, events, violations, resumed: saved !== undefined, done: false, alreadyDone: false };
    const page = await store.usesAfter(cursor, { from, to }, pageSize);
    const out: AuditBatch = emptyBatch();
    const scratch = emptyBatch();
    for (const e of page) {
      await lineage.advanceTo(e.occurredAt);
      try {
        auditor.handle(e, meta, scratch);
      } catch (error) {
        if (!(error instanceof LineageAuditError)) throw error;
      }
    }
    for (const v of scratch.violations) out.violations.push({ ...v, retroactive: 1 });
    out.paths.push(...scratch.paths);
    out.labels.push(...scratch.labels);
    await store.write(out);
    events += page.length;
    violations += out.violations.length;
    doneEvents += page.length;
    doneViolations += out.violations.length;
    const last = page[page.length - 1];
    if (last) cursor = { at: last.occurredAt, eventId: last.eventId };
    const finished = page.length < pageSize;
    await store.insert("replay_progress_v1", [
      {
        replay_id: replayId,
        rules_file: options.policy.source,
        cursor_at: cursor.at,
        cursor_event_id: cursor.eventId,
        events: doneEvents,
        violations: doneViolations,
        done: finished ? 1 : 0,
      },
    ]);
    options.onProgress?.(doneEvents, total);
    if (finished) return { replayId, events, violations, resumed: saved !== undefined, done: true, alreadyDone: false };
  }
}
