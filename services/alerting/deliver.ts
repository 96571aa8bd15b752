import { setTimeout as sleep } from "node:timers/promises";
import { createModelRefresher, exactAffected, storedTimeToIso, Table, type ModelRefresher, type Store } from "../store/index.ts";
import type { Policy } from "../rules/index.ts";
import type { OutboxRow } from "../processor/index.ts";
import type { Subscription } from "./subscriptions.ts";
import { signWebhook } from "./signing.ts";
import { silentLogger, type Logger } from "../telemetry/index.ts";
import { PAYLOAD_VERSION, serializePayload, type AlertPayload, type SoFar } from "./payload.ts";

/** What an alert's stored violations say, as ClickHouse gives it. */
interface AlertViolations {
  events: string;
  first: string;
  last: string;
  purposes: string[];
  collected_for: string[];
  categories: string[];
  trace_id: string;
  path_id: string;
}

/** An outbox row as read back: times as ClickHouse text, plus the delivery progress. */
type OutboxEntry = Omit<OutboxRow, "window_start" | "window_end" | "version"> & {
  window_start: string;
  window_end: string;
  attempts: number;
  created_at: string;
};

export interface DelivererOptions {
  /** Where a failed delivery round is reported. @default silentLogger */
  logger?: Logger;
  /** How often the outbox is polled. @default 250 */
  pollMs?: number;
  /** First retry delay, doubled per attempt, with jitter, up to `maxBackoffMs`. @default 1000 */
  backoffMs?: number;
  /** @default 300000 */
  maxBackoffMs?: number;
  /** Attempts before an alert is given up (recorded as failed). @default 20 */
  maxAttempts?: number;
  /** Rule descriptions for the payload. */
  ruleDescriptions?: Record<string, string>;
  /**
   * The policy the exact model is computed with. Given, `soFar` is exact per person (the model is
   * brought up to date from the stored events once per round of deliveries: docs/tables.md);
   * without it, `soFar` is the field-level count and says so (`exact: false`).
   */
  policy?: Policy;
  /**
   * How much of a receiver's answer is read (within the request's timeout); the rest is dropped
   * with the connection, so a receiver cannot fill memory. @default 65536
   */
  maxResponseBytes?: number;
  /**
   * How long an alert whose violations are not stored yet is held back (from when it was decided).
   * The store writes an alert before its violations; after a crash between the two, a redelivery
   * or a recheck writes them. Should they never come, the alert is sent with what is stored rather
   * than lost. @default 600000
   */
  violationWaitMs?: number;
  /**
   * With a policy: how long a round of deliveries waits for the exact model to be brought up to
   * date with what is stored (it rebuilds from the whole history: minutes at a million users).
   * Past it, the round's alerts go out without waiting: `exact: false`, `exactPending: true`, no
   * exact counts yet and the field-level ones under `possiblyAffected`; the refresh goes on, for
   * later alerts. @default 10000
   */
  exactWaitMs?: number;
  /** The process's one refresher of the exact model, shared with the console. @default one of its own, given a policy */
  refresher?: ModelRefresher;
}

export const defaultDelivererOptions = {
  maxResponseBytes: 64 * 1024,
  violationWaitMs: 600_000,
  exactWaitMs: 10_000,
} satisfies Partial<DelivererOptions>;

export interface Deliverer {
  /** Delivers what is due now; returns how many attempts were made. */
  runOnce(): Promise<number>;
  /** Polls until `close()`. */
  start(): void;
  close(): Promise<void>;
}

/** Alerts taken per round of the deliverer, shared among the endpoints that can take one. */
const ROUND = 100;

/**
 * Sends the outbox's alerts, signed per Standard Webhooks, with the same webhook-id on every
 * attempt: retries with exponential backoff and jitter on failures, timeouts and 5xx; honours
 * Retry-After on 429 and 503 (for the whole endpoint); 410 disables the endpoint; at most `ratePerMinute` a minute per
 * endpoint. Every attempt is recorded in webhook_deliveries_v1.
 */
export function createDeliverer(store: Store, subscriptions: readonly Subscription[], options: DelivererOptions = {}): Deliverer {
  const db = store.database;
  const byId = new Map(subscriptions.map((s) => [s.id, s]));
  const backoff = options.backoffMs ?? 1000;
  const maxBackoff = options.maxBackoffMs ?? 300_000;
  const maxAttempts = options.maxAttempts ?? 20;
  const maxResponseBytes = options.maxResponseBytes ?? defaultDelivererOptions.maxResponseBytes;
  const violationWaitMs = options.violationWaitMs ?? defaultDelivererOptions.violationWaitMs;
  const exactWaitMs = options.exactWaitMs ?? defaultDelivererOptions.exactWaitMs;
  const logger = options.logger ?? silentLogger;
  const refresher = options.policy ? (options.refresher ?? createModelRefresher(store, options.policy)) : undefined;
  const sentAt = new Map<string, number[]>(); // subscription -> recent send times
  const pausedUntil = new Map<string, number>(); // subscription -> Retry-After deadline
  let running = false;
  let loop: Promise<void> | undefined;

  async function disabledEndpoints(): Promise<Set<string>> {
    const rows = await store.query<{ subscription_id: string }>(
      `SELECT subscription_id FROM ${db}.${Table.endpoints} FINAL WHERE disabled = 1`,
    );
    return new Set(rows.map((r) => r.subscription_id));
  }

  async function update(e: OutboxEntry, state: string, attempts: number, status: number, nextAt: number): Promise<void> {
    await store.insert(Table.outbox, [
      {
        ...e,
        window_start: Date.parse(storedTimeToIso(e.window_start)),
        window_end: Date.parse(storedTimeToIso(e.window_end)),
        created_at: Date.parse(storedTimeToIso(e.created_at)),
        state,
        attempts,
        last_status: status,
        next_attempt_at: Math.round(nextAt),
        version: Date.now() * 1000 + attempts,
      },
    ]);
  }

  /** Whether the exact model is up to date with what was stored at `since`, waiting at most exactWaitMs. */
  async function exactReady(model: ModelRefresher, since: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), exactWaitMs)));
    try {
      return await Promise.race([
        model.upToDate(since).then(
          () => true,
          (error: unknown) => {
            logger.error(`webhook delivery: bringing the exact model up to date failed: ${(error as Error).message.split("\n")[0]}`);
            return false;
          },
        ),
        late,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The alert's counts so far: exact per person from the model when there is a policy, with the
   * field-level ones beside them as "possibly affected"; else the field-level ones, marked as such.
   */
  async function soFar(
    e: OutboxEntry,
    fieldLevel: { subjects: number; records: number; violatingEvents: number },
    exact: boolean,
  ): Promise<SoFar> {
    if (!options.policy) return { ...fieldLevel, exact: false };
    // The model is still being brought up to date: no exact counts yet, the field-level ones beside
    // where they will be, rather than a late alert.
    if (!exact)
      return { subjects: null, records: null, violatingEvents: null, exact: false, exactPending: true, possiblyAffected: fieldLevel };
    const x = await exactAffected(store, e.rule_id, {
      from: Date.parse(storedTimeToIso(e.window_start)),
      to: Date.parse(storedTimeToIso(e.window_end)),
      scope: { jobNamespace: e.job_namespace, jobName: e.job_name, runId: e.run_id },
    });
    return {
      subjects: x.exact.users,
      records: x.exact.records,
      violatingEvents: x.exact.violatingEvents,
      exact: true,
      possiblyAffected: fieldLevel,
      sharedOutside: x.sharedOutside,
    };
  }

  /** Where an alert's violations are: its rule, job run and window. */
  function scopeOf(e: OutboxEntry) {
    return {
      where: `rule_id = {rule:String} AND job_namespace = {ns:String} AND job_name = {job:String} AND run_id = {run:String}
      AND occurred_at >= parseDateTime64BestEffort({from:String}, 3, 'UTC') AND occurred_at < parseDateTime64BestEffort({to:String}, 3, 'UTC')`,
      params: { rule: e.rule_id, ns: e.job_namespace, job: e.job_name, run: e.run_id, from: e.window_start, to: e.window_end },
    };
  }

  /** What the alert's stored violations say (`events` 0 while none is stored). */
  async function violationsOf(e: OutboxEntry): Promise<AlertViolations | undefined> {
    const scope = scopeOf(e);
    const [v] = await store.query<AlertViolations>(
      `SELECT uniqExact(violation_id) AS events, toString(min(occurred_at)) AS first, toString(max(occurred_at)) AS last,
              groupUniqArrayArray(purposes) AS purposes, groupUniqArrayArray(collected_for) AS collected_for,
              groupUniqArrayArray(categories) AS categories, anyIf(trace_id, trace_id != '') AS trace_id, any(path_id) AS path_id
       FROM ${db}.${Table.violations} WHERE ${scope.where}`,
      scope.params,
    );
    return v;
  }

  /**
   * Holds the alert back while none of its violations is stored and it has waited less than
   * violationWaitMs: not an attempt (its attempts unchanged), looked at again after about as long
   * as it has waited. Whether it did.
   */
  async function heldBack(e: OutboxEntry, v: AlertViolations | undefined): Promise<boolean> {
    const waited = Date.now() - Date.parse(storedTimeToIso(e.created_at));
    if (Number(v?.events ?? 0) > 0 || waited >= violationWaitMs) return false;
    await update(e, "pending", e.attempts, 0, Date.now() + Math.min(maxBackoff, Math.max(backoff, waited)));
    return true;
  }

  async function payloadFor(e: OutboxEntry, v: AlertViolations | undefined, exact: boolean): Promise<string> {
    const { where: scope, params } = scopeOf(e);
    const [counts] = await store.query<{ subjects: string; records: string }>(
      `SELECT uniqExact(subject_id) AS subjects, uniqExact(subject_id, c) AS records
       FROM ${db}.${Table.violationSubjects} ARRAY JOIN categories AS c
       WHERE rule_id = {rule:String} AND violation_id IN (SELECT violation_id FROM ${db}.${Table.violations} WHERE ${scope})`,
      params,
    );
    const [path] = await store.query<{ lineage_path: string }>(
      `SELECT lineage_path FROM ${db}.violation_paths_v1 WHERE path_id = {id:String} LIMIT 1`,
      { id: v?.path_id ?? "" },
    );
    const lineage = path ? (JSON.parse(path.lineage_path) as { paths: unknown[]; use: unknown }) : { paths: [], use: null };
    const day = (s: string) => s.slice(0, 10);
    const body: AlertPayload = {
      type: "lineage_audit.violation",
      version: PAYLOAD_VERSION,
      webhookId: e.webhook_id,
      rule: { id: e.rule_id, severity: e.severity, mode: e.mode, description: options.ruleDescriptions?.[e.rule_id] ?? "" },
      service: e.service,
      job: { namespace: e.job_namespace, name: e.job_name },
      runId: e.run_id,
      purposeUsed: v?.purposes ?? [],
      collectedFor: v?.collected_for ?? [],
      dataCategories: v?.categories ?? [],
      lineagePath: { ...lineage, paths: lineage.paths.slice(0, 2) },
      soFar: await soFar(
        e,
        {
          subjects: Number(counts?.subjects ?? 0),
          records: Number(counts?.records ?? 0),
          violatingEvents: Number(v?.events ?? 0),
        },
        exact,
      ),
      window: { start: storedTimeToIso(e.window_start), end: storedTimeToIso(e.window_end) },
      firstViolation: v?.first ? storedTimeToIso(v.first) : null,
      lastViolation: v?.last ? storedTimeToIso(v.last) : null,
      traceId: v?.trace_id || null,
      investigate: `lineage-audit affected --rule ${e.rule_id} --from ${day(e.window_start)} --to ${day(e.window_end)}T23:59:59Z`,
    };
    return serializePayload(body);
  }

  function rateLimited(s: Subscription, now: number): boolean {
    const recent = (sentAt.get(s.id) ?? []).filter((t) => now - t < 60_000);
    sentAt.set(s.id, recent);
    return recent.length >= s.ratePerMinute;
  }

  async function attempt(e: OutboxEntry, s: Subscription, v: AlertViolations | undefined, exact: boolean): Promise<string> {
    const body = await payloadFor(e, v, exact);
    const attemptNo = e.attempts + 1;
    const started = Date.now();
    const times = sentAt.get(s.id) ?? [];
    times.push(started);
    sentAt.set(s.id, times);
    let status = 0;
    let error = "";
    let retryAfterMs: number | undefined;
    try {
      const res = await fetch(s.url, {
        method: "POST",
        headers: { "content-type": "application/json", ...signWebhook(s.keys, e.webhook_id, Math.floor(started / 1000), body) },
        body,
        signal: AbortSignal.timeout(s.timeoutMs),
      });
      status = res.status;
      await drainCapped(res, maxResponseBytes);
      const ra = res.headers.get("retry-after");
      if (ra && (status === 429 || status === 503)) {
        const seconds = Number(ra);
        retryAfterMs = Number.isFinite(seconds) ? seconds * 1000 : Math.max(0, Date.parse(ra) - Date.now());
      }
    } catch (cause) {
      error =
        (cause as Error).name === "TimeoutError"
          ? `no answer within ${s.timeoutMs} ms`
          : `cannot reach the endpoint (${(cause as Error).message})`;
    }
    const duration = Date.now() - started;
    let outcome: string;
    if (status >= 200 && status < 300) {
      outcome = "delivered";
      await update(e, "delivered", attemptNo, status, started);
    } else if (status === 410) {
      outcome = "disabled";
      await store.insert(Table.endpoints, [{ subscription_id: s.id, disabled: 1, reason: "410 Gone" }]);
      await update(e, "disabled", attemptNo, status, started);
    } else if (attemptNo >= maxAttempts || (status >= 400 && status < 500 && status !== 408 && status !== 429)) {
      outcome = "gave_up";
      await update(e, "failed", attemptNo, status, started);
    } else {
      outcome = "retry";
      // Retry-After speaks for the endpoint: nothing more goes to it before then.
      if (retryAfterMs !== undefined) pausedUntil.set(s.id, Date.now() + retryAfterMs);
      const delay = retryAfterMs ?? Math.min(maxBackoff, backoff * 2 ** (attemptNo - 1)) * (0.5 + Math.random());
      await update(e, "pending", attemptNo, status, Date.now() + delay);
    }
    await store.insert(Table.deliveries, [
      {
        webhook_id: e.webhook_id,
        subscription_id: s.id,
        attempt: attemptNo,
        status_code: status,
        outcome,
        duration_ms: duration,
        error,
        payload_bytes: Buffer.byteLength(body),
      },
    ]);
    return outcome;
  }

  async function runOnce(): Promise<number> {
    const now = Date.now();
    const disabled = await disabledEndpoints();
    // Only endpoints that can take an alert now (configured, enabled, not paused by Retry-After,
    // under their rate), and disabled ones (their alerts are marked so), each with a share of the
    // round: one endpoint's queue never holds back another's alerts.
    const ready = subscriptions
      .filter((s) => disabled.has(s.id) || (s.enabled && (pausedUntil.get(s.id) ?? 0) <= now && !rateLimited(s, now)))
      .map((s) => s.id);
    if (ready.length === 0) return 0;
    const due = await store.query<OutboxEntry>(
      `SELECT webhook_id, subscription_id, rule_id, severity, mode, service, job_namespace, job_name, run_id,
              toString(window_start) AS window_start, toString(window_end) AS window_end, first_violation_id, attempts, toString(created_at) AS created_at
       FROM ${db}.${Table.outbox} FINAL
       WHERE state = 'pending' AND next_attempt_at <= now64(3) AND subscription_id IN {ready:Array(String)}
       ORDER BY created_at, webhook_id LIMIT ${Math.max(1, Math.ceil(ROUND / ready.length))} BY subscription_id
       LIMIT ${ROUND}`,
      { ready },
    );
    if (due.length === 0) return 0;
    // Alerts whose violations are stored (the others are held back), then the exact model up to
    // date with what was stored by then (nothing done when it is), waited for at most exactWaitMs.
    const sendable: { e: OutboxEntry; s: Subscription; v: AlertViolations | undefined }[] = [];
    for (const e of due) {
      const s = byId.get(e.subscription_id);
      if (!s || !s.enabled || disabled.has(e.subscription_id)) {
        if (s && disabled.has(e.subscription_id)) await update(e, "disabled", e.attempts, 410, now);
        continue;
      }
      const v = await violationsOf(e);
      if (!(await heldBack(e, v))) sendable.push({ e, s, v });
    }
    if (sendable.length === 0) return 0;
    const exact = refresher ? await exactReady(refresher, Date.now()) : false;
    let attempts = 0;
    for (const { e, s, v } of sendable) {
      if (disabled.has(s.id) || (pausedUntil.get(s.id) ?? 0) > Date.now() || rateLimited(s, now)) continue;
      if ((await attempt(e, s, v, exact)) === "disabled") disabled.add(s.id);
      attempts++;
    }
    return attempts;
  }

  return {
    runOnce,
    start() {
      if (running) return;
      running = true;
      loop = (async () => {
        while (running) {
          try {
            await runOnce();
          } catch (error) {
            logger.error(`webhook delivery: ${(error as Error).message.split("\n")[0]}`);
          }
          await sleep(options.pollMs ?? 250);
        }
      })();
    },
    async close() {
      running = false;
      await loop;
      // A refresh still running writes to the store: the caller closes it after this.
      await refresher?.idle();
    },
  };
}

/**
 * Reads at most about `cap` bytes of an answer's body (only the status decides the outcome), then
 * cancels the rest: undici then closes the connection instead of reading the body to its end.
 */
async function drainCapped(res: Response, cap: number): Promise<void> {
  const reader = (res.body as ReadableStream<Uint8Array> | null)?.getReader();
  if (!reader) return;
  let read = 0;
  try {
    while (read <= cap) {
      const { done, value } = await reader.read();
      if (done) return;
      read += value.byteLength;
    }
  } catch {
    // A body cut short or timed out says nothing more than the status already did.
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
