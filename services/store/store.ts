import { readdirSync, readFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join, resolve } from "node:path";
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from "@clickhouse/client";
import { createChdbConnection } from "chdb/connection";
import { StoreError, ConfigError } from "../errors/index.ts";
import type { DataAccessEvent } from "../codec/index.ts";
import type { AuditBatch, AuditSink } from "../processor/index.ts";
import { isReadOnlyRoot, READ_ONLY_HINT, singleStatement } from "./readonly.ts";

export const MIGRATIONS_DIR = fileURLToPath(new URL("../../schemas/clickhouse/", import.meta.url));

export const Table = {
  events: "events_v1",
  subjects: "event_subjects_v1",
  edges: "lineage_edges_v1",
  facts: "lineage_facts_v1",
  factDatasets: "lineage_fact_datasets_v1",
  labels: "labels_v1",
  paths: "violation_paths_v1",
  violations: "violations_v1",
  violationSubjects: "violation_subjects_v1",
  findings: "findings_v1",
  deadLetters: "dead_letters_v1",
  outbox: "webhook_outbox_v1",
  deliveries: "webhook_deliveries_v1",
  endpoints: "webhook_endpoints_v1",
} as const;

export interface StoreOptions {
  /** A ClickHouse server's HTTP URL. When absent, the embedded engine (chDB) is used. */
  url?: string;
  /** @default "default" */
  username?: string;
  password?: string;
  /** chDB data directory for the embedded engine. @default ".lineage-audit/store" */
  path?: string;
  /** Database holding the tables. @default "lineage" */
  database?: string;
}

export const defaultStoreOptions = { path: ".lineage-audit/store", database: "lineage" } satisfies Partial<StoreOptions>;

export interface Store extends AuditSink {
  readonly client: ClickHouseClient;
  readonly database: string;
  /** "chdb:<path>" or the server URL without credentials. */
  readonly location: string;
  /** Runs the numbered migrations not applied yet; returns their names. */
  migrate(): Promise<string[]>;
  /** Runs a query and returns its rows. */
  query<T>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
  /**
   * An analyst's statement: refused unless ClickHouse's own parser says it only reads (and, on a
   * server, run with `readonly=1` as well).
   */
  queryReadOnly<T>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
  /** The same check, then the statement's own output as text (in the FORMAT it names). */
  queryTextReadOnly(sql: string, params?: Record<string, unknown>): Promise<string>;
  /**
   * Stored lineage facts in time order, to rebuild the lineage graph after a restart; fetched a
   * page at a time, so memory holds one page, not every fact.
   */
  lineageFacts(): AsyncIterable<DataAccessEvent>;
  /**
   * The stored facts naming any of `datasets` (as input or output) or producing any of
   * `upstream`: what a bounded lineage graph fetches before a batch (one level; the caller
   * walks the closure).
   */
  lineageFactsOf(need: { datasets: readonly string[]; upstream: readonly string[] }): Promise<DataAccessEvent[]>;
  /**
   * The most recently stored uses and shares (oldest first), rebuilt as events, with the rules
   * whose violations are stored for them and the labels written: a restarted processor checks
   * them again when late lineage arrives, as the one before it would have.
   */
  recentUses(limit: number): Promise<StoredUse[]>;
  /** Stored uses and shares after a cursor, in (occurred_at, event_id) order, rebuilt as events. */
  usesAfter(cursor: { at: number; eventId: string }, window: { from: number; to: number }, limit: number): Promise<DataAccessEvent[]>;
  close(): Promise<void>;
}

export interface StoredUse {
  event: DataAccessEvent;
  rules: string[];
  written: { labelIds: string[]; ruleLabels: Record<string, string[]> };
}

/** Facts per page when streaming every stored fact. */
const FACT_PAGE = 10_000;
/** Datasets per lookup query (they travel as one array parameter). */
const DATASETS_PER_LOOKUP = 2_000;

/** Opens the store: a ClickHouse server when `url` is given, else ClickHouse in-process (chDB). */
export async function openStore(options: StoreOptions = {}): Promise<Store> {
  const database = options.database ?? defaultStoreOptions.database;
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(database)) {
    throw new ConfigError(`database name '${database}' must be letters, digits and underscores`, { context: { database } });
  }
  let client: ClickHouseClient;
  let location: string;
  /** Unqualified table names in analysts' queries resolve in `database`. */
  let readClient: (() => ClickHouseClient) | undefined;
  if (options.url) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch (cause) {
      throw new ConfigError("CLICKHOUSE_URL is not a valid URL (expected e.g. http://localhost:8123)", { cause });
    }
    location = `${url.protocol}//${url.host}`;
    const serverConfig = {
      url: `${url.protocol}//${url.host}${url.pathname}`,
      username: options.username ?? (decodeURIComponent(url.username) || "default"),
      password: options.password ?? decodeURIComponent(url.password),
      // Failures become StoreErrors with one clear message; the client need not log them too.
      log: { level: ClickHouseLogLevel.OFF },
    };
    client = createClient(serverConfig);
    let scoped: ClickHouseClient | undefined;
    readClient = () => (scoped ??= createClient({ ...serverConfig, database }));
  } else {
    const path = resolve(options.path ?? defaultStoreOptions.path);
    mkdirSync(path, { recursive: true });
    location = `chdb:${path}`;
    try {
      // chdb types its connection against its own copy of @clickhouse/client-common; the
      // runtime contract is the client's `connection` hook.
      const connection = createChdbConnection({ path }) as unknown as NonNullable<Parameters<typeof createClient>[0]>["connection"];
      client = createClient({ connection, log: { level: ClickHouseLogLevel.OFF } });
    } catch (cause) {
      throw new StoreError(`cannot open the embedded store at ${path}: ${(cause as Error).message}`, { cause, context: { path } });
    }
  }

  // In-process, ClickHouse shares two cores with the processor: parsing one insert on several
  // threads only makes them compete.
  const insertSettings = options.url ? {} : { input_format_parallel_parsing: 0 as const };

  async function run(sql: string): Promise<void> {
    try {
      await client.command({ query: sql });
    } catch (cause) {
      throw new StoreError(`store command failed: ${(cause as Error).message.trim()}`, { cause, retriable: true });
    }
  }

  async function query<T>(sql: string, params?: Record<string, unknown>, readonly = false): Promise<T[]> {
    try {
      const rs = await (readonly && readClient ? readClient() : client).query({
        query: sql,
        format: "JSONEachRow",
        ...(params ? { query_params: params } : {}),
        // Per request on a server. Not on chDB: there settings become session state, and a
        // read-only session could never write again; the AST check below guards it instead.
        ...(readonly && options.url ? { clickhouse_settings: { readonly: "1" } } : {}),
      });
      return await rs.json<T>();
    } catch (cause) {
      const message = (cause as Error).message.trim();
      if (readonly && /readonly mode|READONLY/i.test(message)) {
        throw new StoreError(`the query would write to the store; ${READ_ONLY_HINT}`, { cause, context: { refused: true } });
      }
      throw new StoreError(`query failed: ${message}`, { cause });
    }
  }

  async function checkReadOnly(sql: string, params?: Record<string, unknown>): Promise<string> {
    const statement = singleStatement(sql);
    const [row] = await query<{ explain: string } | string>(`EXPLAIN AST ${statement}`, params);
    // A server answers {"explain": "..."} rows; chDB's connection may hand back the bare line.
    const root = typeof row === "string" ? row : (row?.explain ?? "");
    if (!isReadOnlyRoot(root)) {
      const kind = root.trim().split(/\s/)[0] || "statement";
      throw new StoreError(`the query would write to the store (${kind}); ${READ_ONLY_HINT}`, { context: { refused: true, kind } });
    }
    return statement;
  }

  async function queryReadOnly<T>(sql: string, params?: Record<string, unknown>): Promise<T[]> {
    return query<T>(await checkReadOnly(sql, params), params, true);
  }

  async function queryTextReadOnly(sql: string, params?: Record<string, unknown>): Promise<string> {
    const statement = await checkReadOnly(sql, params);
    try {
      const result = await (readClient ? readClient() : client).exec({
        query: statement,
        ...(params ? { query_params: params } : {}),
        ...(options.url ? { clickhouse_settings: { readonly: "1" } } : {}),
      });
      let text = "";
      for await (const chunk of result.stream) text += Buffer.from(chunk as Uint8Array).toString("utf8");
      return text;
    } catch (cause) {
      throw new StoreError(`query failed: ${(cause as Error).message.trim()}`, { cause });
    }
  }

  async function insert(table: string, rows: readonly object[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      await client.insert({
        table: `${database}.${table}`,
        values: rows as object[],
        format: "JSONEachRow",
        clickhouse_settings: insertSettings,
      });
    } catch (cause) {
      throw new StoreError(`writing ${rows.length} rows to ${database}.${table} failed: ${(cause as Error).message.trim()}`, {
        cause,
        retriable: true,
        context: { table, rows: rows.length },
      });
    }
  }

  return {
    client,
    database,
    location,
    async migrate() {
      await run(`CREATE DATABASE IF NOT EXISTS ${database}`);
      await run(
        `CREATE TABLE IF NOT EXISTS ${database}.schema_migrations (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version`,
      );
      const done = new Set(
        (await query<{ version: number }>(`SELECT version FROM ${database}.schema_migrations FINAL`)).map((r) => Number(r.version)),
      );
      const applied: string[] = [];
      for (const file of readdirSync(MIGRATIONS_DIR)
        .filter((f) => /^\d+_.+\.sql$/.test(f))
        .sort()) {
        const version = Number(file.split("_")[0]);
        if (done.has(version)) continue;
        const text = readFileSync(join(MIGRATIONS_DIR, file), "utf8").replaceAll("{db}", database);
        for (const statement of splitStatements(text)) await run(statement);
        await insert("schema_migrations", [{ version, name: file }]);
        applied.push(file);
      }
      // The embedded session keeps its current database between queries.
      if (!options.url) await run(`USE ${database}`);
      return applied;
    },
    query: (sql, params) => query(sql, params, false),
    queryReadOnly,
    queryTextReadOnly,
    async write(batch: AuditBatch) {
      // Facts and edges first: if a crash interrupts the batch, the lineage is never behind the uses.
      await insert(Table.facts, batch.facts);
      await insert(Table.edges, batch.edges);
      await insert(Table.labels, batch.labels);
      await insert(Table.events, batch.events);
      await insert(Table.paths, batch.paths);
      await insert(Table.violations, batch.violations);
      // The alerts these violations raise, stored before the batch counts as done (durable outbox).
      await insert(Table.outbox, batch.outbox);
      await insert(Table.findings, batch.findings);
      await insert(Table.deadLetters, batch.deadLetters);
    },
    async *lineageFacts() {
      // Keyset pages: the embedded engine hands back a whole result at once, so one query for
      // every fact would hold them all in memory.
      let cursor = { at: "0", eventId: "", key: "" };
      for (;;) {
        const rows = await query<{ fact: string; at: string; event_id: string; fact_key: string }>(
          `SELECT fact, toString(toUnixTimestamp64Milli(occurred_at)) AS at, event_id, fact_key FROM ${database}.${Table.facts} FINAL
           WHERE (occurred_at, event_id, fact_key) > (fromUnixTimestamp64Milli({at:Int64}, 'UTC'), {id:String}, {key:String})
           ORDER BY occurred_at, event_id, fact_key LIMIT {limit:UInt32}`,
          { at: cursor.at, id: cursor.eventId, key: cursor.key, limit: FACT_PAGE },
        );
        for (const r of rows) yield JSON.parse(r.fact) as DataAccessEvent;
        const last = rows.at(-1);
        if (!last || rows.length < FACT_PAGE) return;
        cursor = { at: last.at, eventId: last.event_id, key: last.fact_key };
      }
    },
    async lineageFactsOf(need) {
      const out: DataAccessEvent[] = [];
      const seen = new Set<string>();
      const chunks: { datasets: readonly string[]; upstream: readonly string[] }[] = [];
      for (let i = 0; i < need.datasets.length; i += DATASETS_PER_LOOKUP) {
        chunks.push({ datasets: need.datasets.slice(i, i + DATASETS_PER_LOOKUP), upstream: [] });
      }
      for (let i = 0; i < need.upstream.length; i += DATASETS_PER_LOOKUP) {
        chunks.push({ datasets: [], upstream: need.upstream.slice(i, i + DATASETS_PER_LOOKUP) });
      }
      for (const c of chunks) {
        const rows = await query<{ fact_key: string; fact: string }>(
          `SELECT fact_key, any(fact) AS fact, min(occurred_at) AS at FROM ${database}.${Table.facts}
           WHERE fact_key IN (SELECT fact_key FROM ${database}.${Table.factDatasets}
                              WHERE dataset IN {datasets:Array(String)} OR (role = 'output' AND dataset IN {upstream:Array(String)}))
           GROUP BY fact_key ORDER BY at, fact_key`,
          { datasets: c.datasets, upstream: c.upstream },
        );
        for (const r of rows) {
          if (seen.has(r.fact_key)) continue;
          seen.add(r.fact_key);
          out.push(JSON.parse(r.fact) as DataAccessEvent);
        }
      }
      return out;
    },
    async recentUses(limit) {
      if (limit <= 0) return [];
      const rows = await query<StoredUseRow>(
        `SELECT event_id, kind, toString(toUnixTimestamp64Milli(occurred_at)) AS at, service, job_namespace, job_name, run_id, input_fields,
                purposes, data_subject, subjects, recipient, recipient_external, traceparent, pseudonym_key_id, label_ids
         FROM (SELECT * FROM ${database}.${Table.events} FINAL WHERE kind IN ('USE', 'SHARE') AND verdict != 'unknown_provenance'
               ORDER BY ingested_at DESC LIMIT {limit:UInt32})
         ORDER BY ingested_at`,
        { limit },
      );
      if (rows.length === 0) return [];
      const rules = new Map<string, Record<string, string[]>>();
      // A violation rewritten with more labels has an older row until merges: take the newest.
      for (const r of await query<{ event_id: string; rule_id: string; label_ids: string[] }>(
        `SELECT event_id, rule_id, argMax(label_ids, detected_at) AS label_ids FROM ${database}.${Table.violations}
         WHERE event_id IN (SELECT event_id FROM ${database}.${Table.events} WHERE kind IN ('USE', 'SHARE') ORDER BY ingested_at DESC LIMIT {limit:UInt32})
         GROUP BY event_id, rule_id`,
        { limit },
      )) {
        const byRule = rules.get(r.event_id) ?? {};
        byRule[r.rule_id] = r.label_ids;
        rules.set(r.event_id, byRule);
      }
      return rows.map((r) => {
        const ruleLabels = rules.get(r.event_id) ?? {};
        return { event: eventFromRow(r), rules: Object.keys(ruleLabels), written: { labelIds: r.label_ids ?? [], ruleLabels } };
      });
    },
    async usesAfter(cursor, window, limit) {
      const rows = await query<StoredUseRow>(
        `SELECT event_id, kind, toString(toUnixTimestamp64Milli(occurred_at)) AS at, service, job_namespace, job_name, run_id, input_fields,
                purposes, data_subject, subjects, recipient, recipient_external, traceparent, pseudonym_key_id
         FROM ${database}.${Table.events} FINAL
         WHERE kind IN ('USE', 'SHARE')
           AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
           AND (occurred_at, event_id) > (fromUnixTimestamp64Milli({at:Int64}, 'UTC'), {id:String})
         ORDER BY occurred_at, event_id LIMIT {limit:UInt32}`,
        { from: window.from, to: window.to, at: cursor.at, id: cursor.eventId, limit },
      );
      return rows.map(eventFromRow);
    },
    async close() {
      await client.close();
    },
  };
}

/** The columns of a stored use or share that evaluating it again needs. */
interface StoredUseRow {
  event_id: string;
  kind: string;
  at: string;
  service: string;
  job_namespace: string;
  job_name: string;
  run_id: string;
  input_fields: string[];
  purposes: string[];
  data_subject: string;
  subjects: string[];
  recipient: string;
  recipient_external: number;
  traceparent: string;
  pseudonym_key_id: string;
  label_ids?: string[];
}

/** A use or share as stored, rebuilt enough to be evaluated again (dataset ids are what matter). */
function eventFromRow(r: StoredUseRow): DataAccessEvent {
  const inputs = new Map<string, { namespace: string; name: string; fields: { name: string; categories: string[] }[] }>();
  for (const f of r.input_fields) {
    const hash = f.lastIndexOf("#");
    const id = f.slice(0, hash);
    const field = f.slice(hash + 1);
    let d = inputs.get(id);
    if (!d) {
      const slash = id.indexOf("/");
      d = { namespace: id.slice(0, slash), name: id.slice(slash + 1), fields: [] };
      inputs.set(id, d);
    }
    if (field !== "*") d.fields.push({ name: field, categories: [] });
  }
  return {
    eventId: r.event_id,
    kind: r.kind as DataAccessEvent["kind"],
    occurredAt: Number(r.at),
    service: r.service,
    job: { namespace: r.job_namespace, name: r.job_name },
    runId: r.run_id,
    inputs: [...inputs.values()],
    outputs: [],
    transform: "OTHER",
    fieldLineage: [],
    masking: "NONE",
    purposes: r.purposes,
    dataSubject: r.data_subject,
    subjects: r.subjects,
    recipient: r.recipient ? { name: r.recipient, external: r.recipient_external === 1 } : null,
    traceparent: r.traceparent || null,
    pseudonymKeyId: r.pseudonym_key_id,
    attributes: {},
  };
}

/** A DateTime64 as ClickHouse prints it (`2019-01-01 14:00:00.000`, UTC) as ISO-8601 text. */
export function storedTimeToIso(text: string): string {
  return `${text.replace(" ", "T")}Z`;
}

/** Splits a migration file on semicolons that end a line, dropping comment-only chunks. */
export function splitStatements(text: string): string[] {
  return text
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.replace(/^\s*--.*$/gm, "").trim())
    .filter((s) => s.length > 0);
}
