import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { LineageAuditError } from "../errors/index.ts";
import { EVENT_BATCH_MEDIA_TYPE, defaultDecodeLimits, unframeBatch } from "../codec/index.ts";
import type { Processor } from "../processor/index.ts";
import { defaults } from "../config/index.ts";
import type { OpenLineageIntake, OpenLineageOutcome } from "../openlineage/intake.ts";
import type { ConsoleHandler } from "../console/server.ts";

export interface IngestServerOptions {
  /** @default "127.0.0.1" */
  host?: string;
  /** 0 picks a free port. @default 8787 */
  port?: number;
  /** When set, POST /v1/events needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Largest request body accepted; a message over the message limit inside it is dead-lettered alone. @default 33554432 (32 MiB) */
  maxBodyBytes?: number;
  /** When set, POST /api/v1/lineage takes OpenLineage RunEvents (docs/openlineage.md), with the same token. */
  openLineage?: Pick<OpenLineageIntake, "submit"> & Partial<Pick<OpenLineageIntake, "backlog">>;
  /** When set, the investigation console answers its own paths (`/`, `/login`, `/api/console/…`), behind its own sign-in. */
  console?: ConsoleHandler;
}

export const defaultIngestServerOptions = { host: defaults.host, port: defaults.port } satisfies Partial<IngestServerOptions>;

export interface IngestServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The embedded auditor's HTTP intake: `POST /v1/events` takes a framed batch of single-object
 * encoded events (see codec/framing.ts), runs it through the processor and answers once it is
 * stored, so a 200 means durable. Bad messages are dead-lettered and listed in the answer.
 */
export async function startIngestServer(
  processor: Pick<Processor, "processMessages">,
  options: IngestServerOptions = {},
): Promise<IngestServer> {
  const maxBody = options.maxBodyBytes ?? defaultDecodeLimits.maxBatchBytes;
  const expected = options.token ? Buffer.from(`Bearer ${options.token}`) : undefined;

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const known = error instanceof LineageAuditError;
      send(res, known && !error.retriable ? 400 : 503, { error: known ? error.message : "the auditor failed to store the batch; retry" });
    });
  });

  let received = 0;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/healthz") {
      // RunEvents answered and not yet stored (journaled behind the answer): 0 once all are queryable.
      const backlog = options.openLineage?.backlog?.();
      return send(res, 200, { status: "ok", ...(backlog === undefined ? {} : { openLineage: { notYetStored: backlog } }) });
    }
    if (options.console && (await options.console(req, res))) return;
    const lineage = path === LINEAGE_PATH && options.openLineage !== undefined;
    if (path !== "/v1/events" && !lineage)
      return send(res, 404, { error: `not found: POST /v1/events${options.openLineage ? `, POST ${LINEAGE_PATH}` : ""} or GET /healthz` });
    if (req.method !== "POST") return send(res, 405, { error: "use POST" });
    if (expected) {
      const given = Buffer.from(req.headers.authorization ?? "");
      if (given.length !== expected.length || !timingSafeEqual(given, expected))
        return send(res, 401, { error: "missing or wrong bearer token" });
    }
    if (lineage) return openLineage(req, res, options.openLineage as Pick<OpenLineageIntake, "submit">);
    const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim();
    if (type !== EVENT_BATCH_MEDIA_TYPE) return send(res, 415, { error: `content-type must be ${EVENT_BATCH_MEDIA_TYPE}` });
    const body = await readBounded(req, res, maxBody);
    if (!body) return send(res, 413, { error: `batch over ${maxBody} bytes; send smaller batches` });
    const messages = unframeBatch(body);
    const peer = `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? "?"}`;
    const result = await processor.processMessages(messages.map((bytes, i) => ({ bytes, source: `http ${peer} #${i}` })));
    send(res, 200, {
      accepted: result.accepted,
      rejected: result.rejected.map((r) => ({
        index: Number(r.source.slice(r.source.lastIndexOf("#") + 1)),
        code: r.code,
        reason: r.reason,
      })),
    });
  }

  /**
   * One OpenLineage RunEvent, answered as Marquez answers: 201 once stored (through a journal: once
   * on disk there, stored behind); 400 for a body that is
   * not JSON; 422 for one that breaks the schema or a mapped event the auditor refuses (both
   * dead-lettered with the reason); 413 over the message limit; 415 for another content type.
   */
  async function openLineage(req: IncomingMessage, res: ServerResponse, intake: Pick<OpenLineageIntake, "submit">): Promise<void> {
    const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json") return send(res, 415, { error: "content-type must be application/json (an OpenLineage RunEvent)" });
    // OpenLineage clients gzip their bodies when compression is on (openlineage-python's `compression: gzip`).
    const encoding = (req.headers["content-encoding"] ?? "identity").trim().toLowerCase();
    if (encoding !== "identity" && encoding !== "gzip") return send(res, 415, { error: "content-encoding must be gzip or identity" });
    const limit = defaultDecodeLimits.maxMessageBytes;
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limit) return send(res, 413, { error: `a RunEvent over ${limit} bytes is not taken` });
    let body = await readBounded(req, res, limit);
    if (!body) return send(res, 413, { error: `a RunEvent over ${limit} bytes is not taken` });
    if (encoding === "gzip") {
      try {
        // Decompressed only up to the limit: a small body that would inflate past it is refused there.
        body = await gunzipAsync(body, { maxOutputLength: limit });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
          return send(res, 413, { error: `a RunEvent over ${limit} bytes (decompressed) is not taken` });
        return send(res, 400, { error: "the body is not valid gzip (Content-Encoding: gzip)" });
      }
    }
    const peer = `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? "?"}`;
    let outcome: OpenLineageOutcome;
    try {
      outcome = await intake.submit({ bytes: body, source: `openlineage http ${peer} #${received++}` });
    } catch (error) {
      // The RunEvent was fine; the auditor could not take it (journal full or failing): the client retries a 503.
      const reason = error instanceof LineageAuditError ? error.message : "the auditor could not take the RunEvent";
      return send(res, 503, { error: `${(reason.split("\n")[0] ?? "").replace(/; retry$/, "")}; retry` });
    }
    if (outcome.stored) {
      res.writeHead(201, { "content-length": 0 });
      return void res.end();
    }
    send(res, outcome.stage === "parse" ? 400 : 422, { error: outcome.reason, code: outcome.code, deadLettered: true });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? defaultIngestServerOptions.port, options.host ?? defaultIngestServerOptions.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.address.includes(":") ? `[${address.address}]` : address.address}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

const gunzipAsync = promisify(gunzip);

/**
 * A request's body, read until it passes `limit` bytes: then undefined, and the rest is never
 * held. The answer to such a request closes the connection; what the client still sends is read and
 * discarded for at most 2 s after it, so the client reads the answer instead of a reset.
 */
function readBounded(req: IncomingMessage, res: ServerResponse, limit: number): Promise<Buffer | undefined> {
  // By events rather than an async iterator, whose machinery cost about a tenth of a RunEvent's
  // HTTP handling here.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      finish();
      req.resume();
      res.setHeader("connection", "close");
      res.once("finish", () => setTimeout(() => req.socket.destroy(), 2_000).unref());
      resolve(undefined);
    };
    const onEnd = () => {
      finish();
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      finish();
      reject(error);
    };
    const finish = () => {
      req.off("data", onData).off("end", onEnd).off("error", onError);
    };
    req.on("data", onData).on("end", onEnd).on("error", onError);
  });
}

/** Where OpenLineage clients' HTTP transport posts by default (Marquez's path). */
export const LINEAGE_PATH = "/api/v1/lineage";

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
