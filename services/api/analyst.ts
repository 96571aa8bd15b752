import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import { brotliCompress, brotliDecompressSync, constants as zlib, deflate, gzip, inflateSync, gunzipSync } from "node:zlib";
import type { AddressInfo } from "node:net";
import { compressBlocks, compressBlocksYielding } from "./compressed.ts";
import { LineageAuditError } from "../errors/index.ts";
import type { Store } from "../store/index.ts";
import { defaults } from "../config/index.ts";

export interface AnalystServerOptions {
  /** @default "127.0.0.1" */
  host?: string;
  /** @default 8124 */
  port?: number;
  /** The one account analysts' tools log in with. */
  user: string;
  password: string;
  /** Largest query (URL `query` plus body, after decompression), as ClickHouse's max_query_size. @default 262144 */
  maxQueryBytes?: number;
  /** Queries waiting or running at once; more are answered 503 (TOO_MANY_SIMULTANEOUS_QUERIES). @default 8 */
  maxConcurrentQueries?: number;
}

export const defaultAnalystServerOptions = {
  host: defaults.host,
  port: defaults.analystPort,
  maxQueryBytes: 262_144,
  maxConcurrentQueries: 8,
} satisfies Partial<AnalystServerOptions>;

export interface AnalystServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Shown as X-ClickHouse-Server-Display-Name (ClickHouse shows its host name; this one hides it). */
const DISPLAY_NAME = "lineage-audit";

/** URL parameters of ClickHouse's HTTP protocol that are not settings, handled here. */
const PROTOCOL_PARAMETERS = new Set([
  "query",
  "database",
  "default_format",
  "query_id",
  "user",
  "password",
  "quota_key",
  "session_id",
  "session_timeout",
  "session_check",
  "compress",
  "decompress",
  "enable_http_compression",
  "http_zlib_compression_level",
  "wait_end_of_query",
  "send_progress_in_http_headers",
  "http_headers_progress_interval_ms",
  "cancel_http_readonly_queries_on_client_close",
  "buffer_size",
  "role",
]);

/**
 * Settings clients send that change neither what a query may read nor its limits: accepted and
 * not applied (the analyst session's settings are fixed). Any other setting is refused (READONLY).
 */
const IGNORED_SETTINGS = new Set([
  "readonly",
  "output_format_json_quote_64bit_integers",
  "output_format_json_quote_64bit_floats",
  "output_format_json_quote_decimals",
  "output_format_json_quote_denormals",
  "output_format_native_write_json_as_string",
  "output_format_arrow_string_as_string",
  "output_format_parquet_string_as_string",
  "date_time_input_format",
  "date_time_output_format",
  "input_format_null_as_default",
  "async_insert",
  "wait_for_async_insert",
  "insert_deduplication_token",
  "allow_experimental_object_type",
  "allow_experimental_json_type",
  "allow_experimental_dynamic_type",
  "allow_experimental_variant_type",
  "use_client_time_zone",
  "session_timezone",
  "client_protocol_version",
]);

/** Content-Type of an answer in a format, as ClickHouse sends it. */
function contentType(format: string): string {
  if (/^(TabSeparated|TSV)/.test(format)) return "text/tab-separated-values; charset=UTF-8";
  if (/^CSV/.test(format)) return "text/csv; charset=UTF-8; header=absent";
  if (/^JSON|^NDJSON/.test(format)) return "application/json; charset=UTF-8";
  if (/^(Native|RowBinary|Parquet|Arrow|ORC|Avro|RawBLOB)/.test(format)) return "application/octet-stream";
  if (format === "XML") return "application/xml; charset=UTF-8";
  return "text/plain; charset=UTF-8";
}

/** HTTP status for a ClickHouse error code, as ClickHouse's HTTP handler chooses it. */
function statusOf(code: number): number {
  if (code === 516 || code === 194 || code === 192) return 401;
  if (code === 164 || code === 497) return 403;
  if (code === 60 || code === 81 || code === 46) return 404;
  if (code === 62 || code === 73 || code === 27 || code === 36 || code === 456 || code === 457) return 400;
  if (code === 202) return 503;
  return 500;
}

/**
 * A read-only ClickHouse HTTP interface over the store, for analysts' tools (clickhouse-connect,
 * the JDBC driver, @clickhouse/client, curl, Grafana): `GET /ping`, queries as the `query` URL
 * parameter and/or the request body, `param_<name>` values, `default_format` (TabSeparated when no
 * FORMAT is named), `database` (only the audit database), `query_id`, `session_id` (accepted;
 * every query stands alone), gzip/deflate/br answers with `enable_http_compression=1`, and
 * ClickHouse's answer headers and error shape with its error codes. Every statement goes through
 * the store's analyst guard (Store.analystQuery): the same one `lineage-audit sql` uses.
 */
export async function startAnalystServer(store: Store, options: AnalystServerOptions): Promise<AnalystServer> {
  const maxQueryBytes = options.maxQueryBytes ?? defaultAnalystServerOptions.maxQueryBytes;
  const maxConcurrent = options.maxConcurrentQueries ?? defaultAnalystServerOptions.maxConcurrentQueries;
  const expectedUser = Buffer.from(options.user);
  const expectedPassword = Buffer.from(options.password);
  const same = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);
  let running = 0;

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      if (!res.headersSent) fail(res, 1002, "UNKNOWN_EXCEPTION", message);
      else res.destroy();
    });
  });

  function credentials(req: IncomingMessage, url: URL): { user: string; password: string } {
    const auth = req.headers.authorization ?? "";
    if (auth.startsWith("Basic ")) {
      const decoded = Buffer.from(auth.slice(6), "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      return colon === -1 ? { user: decoded, password: "" } : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    const user = header(req, "x-clickhouse-user") ?? url.searchParams.get("user") ?? "default";
    const password = header(req, "x-clickhouse-key") ?? url.searchParams.get("password") ?? "";
    return { user, password };
  }

  async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > maxQueryBytes) return undefined;
      chunks.push(chunk as Buffer);
    }
    const raw = Buffer.concat(chunks);
    const encoding = (header(req, "content-encoding") ?? "").trim().toLowerCase();
    const bounded = { maxOutputLength: maxQueryBytes };
    try {
      if (encoding === "gzip") return gunzipSync(raw, bounded);
      if (encoding === "deflate") return inflateSync(raw, bounded);
      if (encoding === "br") return brotliDecompressSync(raw, bounded);
    } catch {
      return undefined; // over the bound, or not what it claims to be
    }
    if (encoding !== "" && encoding !== "identity") throw new Error(`Content-Encoding ${encoding} is not supported (gzip, deflate, br)`);
    return raw;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.searchParams.get("compress") === "1") compressedErrors.add(res);
    if (url.pathname === "/ping" || (url.pathname === "/" && req.method === "GET" && !url.searchParams.has("query"))) {
      res.writeHead(200, { "content-type": "text/plain; charset=UTF-8" }).end("Ok.\n");
      return;
    }
    if (url.pathname !== "/") return fail(res, 1002, "UNKNOWN_EXCEPTION", "only / (queries) and /ping are served here", 404);
    const { user, password } = credentials(req, url);
    if (!same(Buffer.from(user), expectedUser) || !same(Buffer.from(password), expectedPassword)) {
      // The same words as ClickHouse, so tools show their usual message.
      return fail(
        res,
        516,
        "AUTHENTICATION_FAILED",
        `${user}: Authentication failed: password is incorrect, or there is no user with such name`,
      );
    }
    if (url.searchParams.get("decompress") === "1")
      return fail(
        res,
        1002,
        "UNKNOWN_EXCEPTION",
        "read-only: compressed request bodies (decompress=1) are not supported; use Content-Encoding",
        501,
      );
    for (const [name] of url.searchParams) {
      if (PROTOCOL_PARAMETERS.has(name) || IGNORED_SETTINGS.has(name) || name.startsWith("param_")) continue;
      return fail(res, 164, "READONLY", `read-only: setting ${name} cannot be changed (the analyst session's settings are fixed)`);
    }
    // "default" is the analyst's default database, as a ClickHouse user's default_database would be.
    const database = url.searchParams.get("database") ?? header(req, "x-clickhouse-database");
    if (database && database !== store.database && database !== "default")
      return fail(res, 81, "UNKNOWN_DATABASE", `read-only: database ${database} is not available here (only ${store.database})`);

    const body = await readBody(req);
    const fromUrl = url.searchParams.get("query") ?? "";
    if (body === undefined || Buffer.byteLength(fromUrl) + body.length > maxQueryBytes)
      return fail(res, 62, "SYNTAX_ERROR", `read-only: the query is over ${maxQueryBytes} bytes`, 413);
    const sql = [fromUrl, body.toString("utf8")].filter((s) => s.trim() !== "").join("\n");
    if (sql.trim() === "") return fail(res, 62, "SYNTAX_ERROR", "Empty query");
    if (running >= maxConcurrent)
      return fail(res, 202, "TOO_MANY_SIMULTANEOUS_QUERIES", `Too many simultaneous queries. Maximum: ${maxConcurrent}`);

    const params = Object.fromEntries([...url.searchParams].filter(([k]) => k.startsWith("param_")).map(([k, v]) => [k.slice(6), v]));
    const defaultFormat = url.searchParams.get("default_format") ?? header(req, "x-clickhouse-format") ?? undefined;
    const queryId = url.searchParams.get("query_id") || undefined;
    running++;
    try {
      const result = await store.analystQuery({
        sql,
        ...(Object.keys(params).length > 0 ? { params } : {}),
        ...(defaultFormat ? { defaultFormat } : {}),
        ...(queryId ? { queryId } : {}),
      });
      const headers: Record<string, string> = {
        "content-type": contentType(result.format),
        "x-clickhouse-format": result.format,
        "x-clickhouse-timezone": result.timezone,
        "x-clickhouse-query-id": result.queryId,
        "x-clickhouse-server-display-name": DISPLAY_NAME,
        "x-clickhouse-summary": JSON.stringify(result.summary),
      };
      const sessionId = url.searchParams.get("session_id");
      if (sessionId) headers["x-clickhouse-session-id"] = sessionId;
      // compress=1: ClickHouse's own compressed blocks (the JDBC driver asks for them by default).
      let out = url.searchParams.get("compress") === "1" ? await compressBlocksYielding(result.body) : result.body;
      if (url.searchParams.get("enable_http_compression") === "1") {
        const encoding = chooseEncoding(header(req, "accept-encoding") ?? "");
        // On libuv's threads, off the event loop the intake shares; brotli at a quality that keeps up.
        if (encoding === "gzip") out = await promisify(gzip)(out);
        else if (encoding === "deflate") out = await promisify(deflate)(out);
        else if (encoding === "br") out = await promisify(brotliCompress)(out, { params: { [zlib.BROTLI_PARAM_QUALITY]: 4 } });
        if (encoding) headers["content-encoding"] = encoding;
      }
      headers["content-length"] = String(out.length);
      res.writeHead(200, headers).end(out);
    } catch (error) {
      if (error instanceof LineageAuditError) {
        const code = Number(error.context["clickhouseCode"] ?? 1002);
        return fail(res, code, String(error.context["clickhouseName"] ?? "UNKNOWN_EXCEPTION"), error.message);
      }
      throw error;
    } finally {
      running--;
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? defaultAnalystServerOptions.port, options.host ?? defaultAnalystServerOptions.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The first of gzip, deflate, br that the client accepts (q=0 excluded). */
function chooseEncoding(accept: string): "gzip" | "deflate" | "br" | undefined {
  const accepted = accept
    .split(",")
    .map((part) => part.trim().split(";"))
    .filter(([, q]) => !q || !/^\s*q\s*=\s*0(\.0*)?\s*$/.test(q))
    .map(([name]) => (name ?? "").trim().toLowerCase());
  return (["gzip", "deflate", "br"] as const).find((e) => accepted.includes(e) || accepted.includes("*"));
}

/** An error as ClickHouse's HTTP interface writes one (clients parse "Code: N. DB::Exception: …"). */
/** Answers whose errors go in compressed blocks too (compress=1), as ClickHouse writes them. */
const compressedErrors = new WeakSet<ServerResponse>();

function fail(res: ServerResponse, code: number, name: string, message: string, status = statusOf(code)): void {
  const line = message.replace(/\s*\n[\s\S]*$/, "").replace(/\.+$/, "");
  const text = Buffer.from(`Code: ${code}. DB::Exception: ${line}. (${name})\n`);
  res.writeHead(status, {
    "content-type": "text/plain; charset=UTF-8",
    "x-clickhouse-exception-code": String(code),
    "x-clickhouse-server-display-name": DISPLAY_NAME,
  });
  // With compress=1 the JDBC driver reads every error but 401 and 403 as compressed blocks.
  res.end(compressedErrors.has(res) && status !== 401 && status !== 403 ? compressBlocks(text) : text);
}
