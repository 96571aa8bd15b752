import { randomUUID } from "node:crypto";
import { ClickHouseLogLevel, createClient, type ClickHouseClient, type ClickHouseSettings, type DataFormat } from "@clickhouse/client";
import { createChdbConnection } from "chdb/connection";
import { StoreError } from "../errors/index.ts";
import {
  ALLOWED_FORMATS,
  AnalystRefusal,
  analystPolicy,
  checkStatement,
  ClickHouseErrorCode,
  parseExplainAst,
  type AnalystPolicy,
  type FunctionEntry,
} from "./analyst-policy.ts";

/** What one analyst query may use, so that it cannot starve the intake in the same process. */
export interface AnalystLimits {
  /** Seconds. @default 30 */
  maxExecutionTime: number;
  /** Bytes of memory for one query. @default 1 GiB */
  maxMemoryUsage: number;
  /** @default 1_000_000 */
  maxResultRows: number;
  /** Bytes of result. @default 128 MiB */
  maxResultBytes: number;
  /** Threads for one query; the intake keeps the other core. @default 1 */
  maxThreads: number;
}

export const defaultAnalystLimits: AnalystLimits = {
  maxExecutionTime: 30,
  maxMemoryUsage: 1024 ** 3,
  maxResultRows: 1_000_000,
  maxResultBytes: 128 * 1024 ** 2,
  maxThreads: 1,
};

/** The format of an answer when neither the statement nor the request names one, as ClickHouse. */
export const DEFAULT_ANALYST_FORMAT = "TabSeparated";

export interface AnalystQuery {
  sql: string;
  /** Values for `{name:Type}` placeholders, as text (HTTP `param_name`). */
  params?: Record<string, string>;
  /** The format when the statement names none. @default "TabSeparated" */
  defaultFormat?: string;
  queryId?: string;
}

export interface AnalystResult {
  body: Buffer;
  /** The format the body is in. */
  format: string;
  queryId: string;
  /** The engine's time zone (X-ClickHouse-Timezone). */
  timezone: string;
  summary: Record<string, string>;
}

export interface AnalystSession {
  /** Checks the statement (see analyst-policy.ts) and runs ClickHouse's own formatting of it. */
  run(query: AnalystQuery): Promise<AnalystResult>;
  close(): Promise<void>;
}

export type AnalystTarget = { kind: "embedded"; path: string } | { kind: "server"; url: string; username: string; password: string };

/**
 * The analysts' own session. Embedded: a second chDB session on the store's path, given the
 * limits and the database, then `readonly=1` last, so the engine itself refuses every write and
 * every change of a setting for the rest of its life. On a server: the same settings on every
 * request, with `readonly=1`.
 */
export async function openAnalystSession(target: AnalystTarget, database: string, limits: AnalystLimits): Promise<AnalystSession> {
  const fixed: [string, number | string][] = [
    ["max_execution_time", limits.maxExecutionTime],
    ["max_memory_usage", limits.maxMemoryUsage],
    ["max_result_rows", limits.maxResultRows],
    ["max_result_bytes", limits.maxResultBytes],
    ["result_overflow_mode", "throw"],
    ["max_threads", limits.maxThreads],
  ];
  for (const [name, value] of fixed) {
    if (typeof value === "number" && !(Number.isInteger(value) && value > 0))
      throw new StoreError(`analyst limit ${name} must be a positive integer`);
  }
  let client: ClickHouseClient;
  let perRequest: ClickHouseSettings = {};
  // The functions the engine has, read before the limits apply (they are not the analyst's query).
  let policy: AnalystPolicy;
  let timezone = "UTC";
  if (target.kind === "embedded") {
    try {
      const connection = createChdbConnection({ path: target.path }) as unknown as NonNullable<
        Parameters<typeof createClient>[0]
      >["connection"];
      client = createClient({ connection, log: { level: ClickHouseLogLevel.OFF } });
    } catch (cause) {
      throw new StoreError(`cannot open the analyst session: ${(cause as Error).message}`, { cause });
    }
    try {
      policy = await loadPolicy();
      for (const [name, value] of fixed)
        await client.command({ query: `SET ${name} = ${typeof value === "number" ? value : `'${value}'`}` });
      await client.command({ query: `USE ${database}` });
      await client.command({ query: "SET readonly = 1" });
    } catch (cause) {
      await client.close();
      throw new StoreError(`cannot set up the analyst session: ${(cause as Error).message.trim()}`, { cause });
    }
  } else {
    client = createClient({
      url: target.url,
      username: target.username,
      password: target.password,
      database,
      log: { level: ClickHouseLogLevel.OFF },
    });
    perRequest = { readonly: "1" };
    policy = await loadPolicy();
    perRequest = { ...(Object.fromEntries(fixed.map(([k, v]) => [k, String(v)])) as ClickHouseSettings), readonly: "1" };
  }

  async function text(query: string, format: string, params?: Record<string, string>): Promise<string> {
    const result = await client.exec({
      query,
      ...(params && Object.keys(params).length > 0 ? { query_params: params } : {}),
      clickhouse_settings: { ...perRequest, default_format: format as DataFormat },
    });
    return (await bytes(result.stream)).toString("utf8");
  }

  async function loadPolicy(): Promise<AnalystPolicy> {
    timezone = (await text("SELECT timezone()", "TSVRaw")).trim() || timezone;
    const rows = (await text("SELECT name, categories, alias_to, case_insensitive, is_aggregate FROM system.functions", "TSVRaw"))
      .split("\n")
      .filter((l) => l !== "")
      .map((line): FunctionEntry => {
        const [name = "", categories = "", aliasTo = "", ci = "0", agg = "0"] = line.split("\t");
        return { name, categories, aliasTo, caseInsensitive: ci === "1", isAggregate: agg === "1" };
      });
    return analystPolicy(database, rows);
  }

  // One analyst query at a time: a second waits rather than competing with the first and the intake.
  let queue: Promise<unknown> = Promise.resolve();
  function serially<T>(work: () => Promise<T>): Promise<T> {
    const next = queue.then(work, work);
    queue = next.catch(() => undefined);
    return next;
  }

  async function canonical(sql: string): Promise<string> {
    // ClickHouse's parser, on the text as a bound parameter: it never runs what it formats, and
    // refuses more than one statement.
    try {
      return await text("SELECT formatQuerySingleLine({q:String})", "RawBLOB", { q: sql });
    } catch (cause) {
      throw engineError(cause, "syntax");
    }
  }

  async function run(query: AnalystQuery): Promise<AnalystResult> {
    const defaultFormat = query.defaultFormat ?? DEFAULT_ANALYST_FORMAT;
    if (!ALLOWED_FORMATS.includes(defaultFormat))
      throw refusal(new AnalystRefusal(`read-only: FORMAT ${defaultFormat} is not allowed`, ClickHouseErrorCode.unknownFormat));
    const statement = await canonical(query.sql);
    // The formatting is a fixed point: what is checked below is what runs.
    if ((await canonical(statement)) !== statement)
      throw new StoreError("read-only: the statement does not format stably", {
        context: { refused: true, clickhouseCode: 62, clickhouseName: "SYNTAX_ERROR" },
      });
    let format: string;
    try {
      const ast = parseExplainAst(await text(`EXPLAIN AST ${statement}`, "TSVRaw", query.params));
      format = checkStatement(ast, policy, statement).format ?? defaultFormat;
    } catch (error) {
      if (error instanceof AnalystRefusal) throw refusal(error);
      throw engineError(error, "query");
    }
    const queryId = query.queryId ?? randomUUID();
    try {
      const result = await client.exec({
        query: statement,
        query_id: queryId,
        ...(query.params && Object.keys(query.params).length > 0 ? { query_params: query.params } : {}),
        clickhouse_settings: { ...perRequest, default_format: defaultFormat as DataFormat },
      });
      const body = await bytes(result.stream);
      const summary = { ...(result.summary as Record<string, string> | undefined), result_bytes: String(body.length) };
      return { body, format, queryId, timezone, summary };
    } catch (cause) {
      throw engineError(cause, "query");
    }
  }

  return {
    run: (query) => serially(() => run(query)),
    close: () => client.close(),
  };
}

async function bytes(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

function refusal(error: AnalystRefusal): StoreError {
  return new StoreError(error.message, { context: { refused: true, clickhouseCode: error.kind.code, clickhouseName: error.kind.name } });
}

/** An engine error as one line with ClickHouse's code and name (`Code: 159 … (TIMEOUT_EXCEEDED)`). */
function engineError(cause: unknown, stage: "syntax" | "query"): StoreError {
  const raw = cause instanceof Error ? cause.message : String(cause);
  const given = cause as { code?: unknown; type?: unknown };
  const code = Number(typeof given.code === "string" && /^\d+$/.test(given.code) ? given.code : (/Code: (\d+)/.exec(raw)?.[1] ?? 1002));
  const name = typeof given.type === "string" ? given.type : (/\(([A-Z_]+)\)\s*$/.exec(raw)?.[1] ?? "UNKNOWN_EXCEPTION");
  let message = (raw.split("\n")[0] ?? raw)
    .replace(/^Code: \d+\. DB::Exception: /, "")
    .replace(/: In scope SELECT formatQuerySingleLine\(.*$/, "")
    .replace(/ \(version [^)]*\)/, "")
    .replace(/\. \([A-Z_]+\)\s*$/, "")
    .trim()
    .replace(/\.+$/, "");
  if (/Multi-statements are not allowed/.test(message)) message = "read-only: one statement at a time (multi-statements are not allowed)";
  else if (/Cannot modify '([^']+)' setting in readonly mode/.test(message))
    message = `read-only: SETTINGS is not allowed (the limits are fixed; ${/'([^']+)'/.exec(message)?.[1] ?? "a setting"} cannot be changed)`;
  else if (code === 164) message = `read-only: ${message}`;
  else if (stage === "syntax") message = `syntax error: ${message.replace(/^Syntax error: /, "")}`;
  else message = `query failed: ${message}`;
  return new StoreError(message, { cause, context: { refused: code === 164, clickhouseCode: code, clickhouseName: name } });
}
