import { setTimeout as sleep } from "node:timers/promises";
import { TransportError } from "../errors/index.ts";
import { EVENT_BATCH_MEDIA_TYPE, defaultDecodeLimits, frameBatch } from "../codec/index.ts";
import type { OutboundMessage, SendResult, Transport } from "./types.ts";

/** The part of the processor the in-process transport needs. */
export interface MessageProcessor {
  processMessages(
    messages: { bytes: Uint8Array; source: string }[],
  ): Promise<{ accepted: number; rejected: { source: string; code: string; reason: string }[] }>;
}

/** Hands batches straight to a processor in the same process (the embedded default). */
export function createInProcessTransport(processor: MessageProcessor, source = "in-process"): Transport {
  return {
    async send(messages) {
      const result = await processor.processMessages(messages.map((m, i) => ({ bytes: m.value, source: `${source}#${i}` })));
      return {
        accepted: result.accepted,
        rejected: result.rejected.map((r) => ({
          index: Number(r.source.slice(r.source.lastIndexOf("#") + 1)),
          code: r.code,
          reason: r.reason,
        })),
      };
    },
    async close() {},
  };
}

/** Keeps every message in memory, in order: for exporting, tests and benchmarks. */
export function createMemoryTransport(): Transport & { readonly messages: Uint8Array[]; readonly sent: OutboundMessage[] } {
  const messages: Uint8Array[] = [];
  const sent: OutboundMessage[] = [];
  return {
    messages,
    sent,
    async send(batch) {
      for (const m of batch) {
        messages.push(m.value);
        sent.push(m);
      }
      return { accepted: batch.length, rejected: [] };
    },
    async close() {},
  };
}

export interface HttpTransportOptions {
  /** The auditor's base URL, e.g. http://127.0.0.1:8787 */
  url: string;
  /** Bearer token the auditor expects, if it requires one. */
  token?: string;
  /** Per-request timeout. @default 10000 */
  timeoutMs?: number;
  /** Attempts per batch on network errors, timeouts and 5xx (events are idempotent by id). @default 5 */
  maxAttempts?: number;
  /** First retry delay, doubled each time, with jitter. @default 100 */
  backoffMs?: number;
  /** Largest request body: a batch over it goes as several requests. @default 33554432 (32 MiB, the intake's limit) */
  maxBodyBytes?: number;
}

/** POSTs framed batches to the auditor's `/v1/events`, retrying what can be retried. */
export function createHttpTransport(options: HttpTransportOptions): Transport {
  const endpoint = new URL("/v1/events", options.url).toString();
  const maxAttempts = options.maxAttempts ?? 5;
  const backoff = options.backoffMs ?? 100;
  const maxBody = options.maxBodyBytes ?? defaultDecodeLimits.maxBatchBytes;
  // One request at a time, so batches arrive in the order they were emitted (lineage before
  // the uses that depend on it); the emitter keeps the next batches queued meanwhile.
  let previous: Promise<unknown> = Promise.resolve();
  return {
    send(messages) {
      const next = previous.then(() => postInParts(messages));
      previous = next.catch(() => undefined);
      return next;
    },
    async close() {
      await previous;
    },
  };

  /** One request per part of the batch that fits the intake's body limit, in order. */
  async function postInParts(messages: OutboundMessage[]): Promise<SendResult> {
    const result: SendResult = { accepted: 0, rejected: [] };
    let start = 0;
    while (start < messages.length) {
      let end = start;
      let bytes = 0;
      // A single message is never over the limit: emit() refuses one over the message limit.
      while (end < messages.length && (end === start || bytes + 4 + (messages[end] as OutboundMessage).value.byteLength <= maxBody)) {
        bytes += 4 + (messages[end] as OutboundMessage).value.byteLength;
        end++;
      }
      const part = await post(messages.slice(start, end));
      result.accepted += part.accepted;
      for (const r of part.rejected) result.rejected.push({ ...r, index: r.index + start });
      start = end;
    }
    return result;
  }

  async function post(messages: OutboundMessage[]): Promise<SendResult> {
    const body = frameBatch(messages.map((m) => m.value));
    let lastError: TransportError | undefined;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      try {
        const res = await fetch(endpoint, {
          method: "POST",
          headers: {
            "content-type": EVENT_BATCH_MEDIA_TYPE,
            ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          },
          body,
          signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
        });
        const text = await res.text();
        if (res.ok) return JSON.parse(text) as SendResult;
        const detail = safeError(text);
        lastError = new TransportError(`auditor answered ${res.status} to ${endpoint}: ${detail}`, {
          retriable: res.status >= 500 || res.status === 429,
          context: { status: res.status, attempt },
        });
        if (!lastError.retriable) throw lastError;
      } catch (cause) {
        if (cause instanceof TransportError && !cause.retriable) throw cause;
        lastError =
          cause instanceof TransportError
            ? cause
            : new TransportError(`cannot reach the auditor at ${endpoint}: ${(cause as Error).message}`, {
                cause,
                retriable: true,
                context: { attempt },
              });
      }
      if (attempt < maxAttempts) await sleep(backoff * 2 ** (attempt - 1) * (0.5 + Math.random()));
    }
    throw lastError as TransportError;
  }
}

function safeError(text: string): string {
  try {
    const parsed = JSON.parse(text) as { error?: string };
    return parsed.error ?? text.slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}
