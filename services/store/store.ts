import { readdirSync, readFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join, resolve } from "node:path";
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from "@clickhouse/client";
import { createChdbConnection } from "chdb/connection";
import { StoreError, StoreDataError, ConfigError } from "../errors/index.ts";
import type { DataAccessEvent } from "../codec/index.ts";
import type { AuditBatch, AuditSink } from "../processor/index.ts";
import type { ProvenanceRows } from "../provenance/index.ts";

/** What a provenance snapshot was computed from (provenance_versions_v1). */
export interface ProvenanceVersionInfo {
  holdings: number;
  reads: number;
  subjects: number;
  source_events: number;
  source_ingested: string;
  policy: string;
  elapsed_ms: number;
}
import {
  defaultAnalystLimits,
  openAnalystSession,
  type AnalystLimits,
  type AnalystQuery,
  type AnalystResult,
  type AnalystSession,
} from "./analyst-session.ts";
import { guardEventIds } from "./identity.ts";
import { defaults } from "../config/index.ts";

export const MIGRATIONS_DIR = fileURLToPath(new URL("../../schemas/clickhouse/", import.meta.url));

export const Table = {
  events: "events_v1",
  eventIds: "event_ids_v2",
  subjects: "event_subjects_v1",
  edges: "lineage_edges_v1",
  /** Where the processor writes edges: an event's edges in one row, unrolled into `edges` by ClickHouse. */
  edgesIn: "lineage_edges_in_v1",
  facts: "lineage_facts_v1",
  published: "lineage_published_v1",
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
  holdings: "holdings_v1",
  useReads: "use_reads_v1",
  useForbidden: "use_forbidden_v1",
  provenanceVersions: "provenance_versions_v1",
  subjectOrdinals: "subject_ordinals_v1",
  exactUses: "exact_uses_v1",
  exactRollups: "exact_rollups_v1",
  exactVersions: "exact_versions_v1",
  openLineage: "openlineage_events_v1",
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
  /** Limits of every analyst query (`sql`, the analyst HTTP interface). @default defaultAnalystLimits */
  analystLimits?: Partial<AnalystLimits>;
}

export const defaultStoreOptions = { path: defaults.storePath, database: defaults.database } satisfies Partial<StoreOptions>;

export interface Store extends AuditSink {
  readonly database: string;
  /** "chdb:<path>" or the server URL without credentials. */
  readonly location: string;
  /** Runs the numbered migrations not applied yet; returns their names. */
  migrate(): Promise<string[]>;
  /** Runs a query and returns its rows. */
  query<T>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
  /**
   * Runs a statement that returns no rows (DDL, INSERT … SELECT, TRUNCATE, OPTIMIZE, SYSTEM …),
   * with `params` as its query parameters. Failures are retriable StoreErrors with ClickHouse's
   * first line.
   */
  command(sql: string, params?: Record<string, unknown>): Promise<void>;
  /**
   * Writes rows (JSONEachRow) to `table`, named unqualified, in the store's database. Failures are
   * StoreErrors classified as insertError does (StoreDataError for rows that can never be written).
   */
  insert(table: string, rows: readonly object[]): Promise<void>;
  /**
   * An analyst's statement, on a session of its own that is read-only and limited: refused unless
   * it only reads the audit database and the documented system tables, decided on ClickHouse's
   * own parse of it (docs/sql.md, "What analysts may run"). Refusals are StoreErrors with
   * `context.refused`; every error carries ClickHouse's `clickhouseCode` and `clickhouseName`.
   */
  analystQuery(query: AnalystQuery): Promise<AnalystResult>;
  /** The same, answered as rows (JSONEachRow). */
  queryReadOnly<T>(sql: string, params?: Record<string, string>): Promise<T[]>;
  /**
   * The lineage outbox: stored facts not yet marked published to `topic` (oldest first), at most
   * `limit` of them. Facts are stored with their batch, so a crash or a failed send before
   * publishing leaves them here for the next publisher.
   */
  unpublishedFacts(topic: string, limit: number): Promise<{ key: string; fact: DataAccessEvent }[]>;
  /** Marks facts published to `topic` (after the broker acknowledged them). */
  markPublished(topic: string, keys: readonly string[]): Promise<void>;
  /**
   * Stored lineage facts in time order, to rebuild the lineage graph after a restart; fetched a
   * page at a time, so memory holds one page, not every fact.
   */
  lineageFacts(): AsyncIterable<DataAccessEvent>;
  /**
   * Each stored lineage fact once, at the earliest time it occurred (a fact stored again by
   * another processor or after a restart keeps its first occurrence), in that order: what a
   * time-valid replay applies as its uses advance. Fetched a page at a time.
   */
  lineageFactsInTimeOrder(): AsyncIterable<DataAccessEvent>;
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
  /**
   * Writes rows of a snapshot of the issue-9 model (holdings, reads, forbidden labels) tagged with
   * `version`, higher than any before; readers see none of them until `commitProvenance(version)`.
   */
  writeProvenance(version: number, rows: Partial<ProvenanceRows>): Promise<void>;
  /** Makes snapshot `version` the one readers take (its row is written last) and drops those older than the one it replaces. */
  commitProvenance(version: number, info: ProvenanceVersionInfo): Promise<void>;
  close(): Promise<void>;
}

export interface StoredUse {
  event: DataAccessEvent;
  rules: string[];
  written: { labelIds: string[]; ruleLabels: Record<string, string[]> };
  /** Stored as of unknown provenance (what it read had no lineage yet): to be parked again, not rechecked. */
  pending?: boolean;
}

/** Facts per page when streaming every stored fact. */
const FACT_PAGE = 10_000;
/** How often, at most, the embedded engine's freed memory is returned to the OS (after a write or a large read). */
const PURGE_INTERVAL_MS = 500;
/** Datasets per lookup query (they travel as one array parameter). */
const DATASETS_PER_LOOKUP = 2_000;

/** Opens the store: a ClickHouse server when `url` is given, else ClickHouse in-process (chDB). */
export async function openStore(options: StoreOptions = {}): Promise<Store> {
  const database = options.database ?? defaultStoreOptions.database;
  if (!DATABASE_NAME.test(database)) {
    // The name is not echoed: it is operator input that failed validation.
    throw new ConfigError("the database name must start with a letter or underscore, then letters, digits or underscores (at most 64)");
  }
  const quotedDatabase = quoteIdentifier(database);
  let client: ClickHouseClient;
  let location: string;
  let serverTarget: { url: string; username: string; password: string } | undefined;
  /** A client whose unqualified table names resolve in `database` (created once the database exists). */
  let scopedClient: () => ClickHouseClient = () => client;
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
    serverTarget = { url: serverConfig.url, username: serverConfig.username, password: serverConfig.password };
    let scoped: ClickHouseClient | undefined;
    scopedClient = () => (scoped ??= createClient({ ...serverConfig, database }));
  } else {
    const path = resolve(options.path ?? defaultStoreOptions.path);
    mkdirSync(path, { recursive: true });
    location = `chdb:${path}`;
    // chDB would print its own lock error on stderr before failing; say it once, ourselves.
    const holder = storeHolder(path);
    if (holder !== undefined) {
      throw new StoreError(`store ${path} is in use by another lineage-audit process (pid ${holder})`, { context: { path, pid: holder } });
    }
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

  async function run(sql: string, params?: Record<string, unknown>, on: ClickHouseClient = client): Promise<void> {
    try {
      await on.command({ query: sql, ...(params ? { query_params: params } : {}) });
    } catch (cause) {
      throw new StoreError(`store command failed: ${(cause as Error).message.trim().split("\n")[0]}`, { cause, retriable: true });
    }
  }

  async function query<T>(sql: string, params?: Record<string, unknown>): Promise<T[]> {
    try {
      const rs = await client.query({ query: sql, format: "JSONEachRow", ...(params ? { query_params: params } : {}) });
      return await rs.json<T>();
    } catch (cause) {
      throw new StoreError(`query failed: ${(cause as Error).message.trim()}`, { cause });
    }
  }

  const limits = { ...defaultAnalystLimits, ...options.analystLimits };
  let analyst: Promise<AnalystSession> | undefined;
  function analystSession(): Promise<AnalystSession> {
    analyst ??= openAnalystSession(
      serverTarget ? { kind: "server", ...serverTarget } : { kind: "embedded", path: location.slice("chdb:".length) },
      database,
      limits,
    ).catch((error: unknown) => {
      analyst = undefined;
      throw error;
    });
    return analyst;
  }

  async function analystQuery(q: AnalystQuery): Promise<AnalystResult> {
    return (await analystSession()).run(q);
  }

  async function queryReadOnly<T>(sql: string, params?: Record<string, string>): Promise<T[]> {
    const result = await analystQuery({ sql, ...(params ? { params } : {}), defaultFormat: "JSONEachRow" });
    const text = result.body.toString("utf8");
    if (result.format !== "JSONEachRow") throw new StoreError(`the statement names FORMAT ${result.format}; rows are read as JSONEachRow`);
    return text
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as T);
  }

  async function insert(table: string, rows: readonly object[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      await client.insert({
        table: `${quotedDatabase}.${table}`,
        values: rows,
        format: "JSONEachRow",
        clickhouse_settings: insertSettings,
      });
    } catch (cause) {
      throw insertError(cause, `writing ${rows.length} rows to ${database}.${table} failed`, { table, rows: rows.length });
    }
  }

  /** The stored content digest of each of the batch's event ids that the store already holds. */
  async function storedDigests(batch: AuditBatch): Promise<Map<string, string>> {
    const ids = [...new Set(batch.events.map((e) => e.event_id))];
    try {
      // One text parameter split by ClickHouse parses faster than an Array(String) literal.
      const joined = !ids.some((id) => id.includes("\n"));
      const list = joined ? "splitByChar('\\n', {ids:String})" : "{ids:Array(String)}";
      const rs = await client.query({
        query: `SELECT event_id, content_sha256 FROM ${quotedDatabase}.${Table.eventIds}
                WHERE event_id IN (SELECT arrayJoin(${list}))`,
        query_params: { ids: joined ? ids.join("\n") : ids },
        format: "JSONEachRow",
      });
      const rows = await rs.json<{ event_id: string; content_sha256: string }>();
      return new Map(rows.map((r) => [r.event_id, r.content_sha256]));
    } catch (cause) {
      throw new StoreError(`checking ${ids.length} event ids failed: ${(cause as Error).message.trim()}`, { cause, retriable: true });
    }
  }

  // Event ids being written by a batch still in flight (HTTP and Kafka feed one process): a batch
  // that holds one of them waits for that batch's event rows, so it sees the content stored. Batches
  // with no id in common (the usual case) write side by side.
  const idsInFlight = new Map<string, Promise<void>>();
  /**
   * The embedded engine's allocator keeps freed pages for seconds (jemalloc's dirty decay), which
   * under a steady stream of inserts is hundreds of MB of RSS the engine no longer uses: hand them
   * back to the OS at most every PURGE_INTERVAL_MS, after a write or a large read.
   */
  let lastPurge = performance.now();
  let purging: Promise<void> | undefined;
  function returnFreedMemory(): void {
    if (options.url || purging || performance.now() - lastPurge < PURGE_INTERVAL_MS) return;
    lastPurge = performance.now();
    purging = run("SYSTEM JEMALLOC PURGE")
      .catch(() => {}) // only memory is at stake; the next write tries again
      .finally(() => (purging = undefined));
  }

  return {
    database,
    location,
    async migrate() {
      await run(`CREATE DATABASE IF NOT EXISTS ${quotedDatabase}`);
      // Migrations name their tables unqualified and run with `database` as the current one: the
      // name is never spliced into their text, so it cannot collide with an alias or a string.
      // chDB's session keeps its current database between queries; a server's client is scoped.
      if (!options.url) await run(`USE ${quotedDatabase}`);
      const scoped = scopedClient();
      await run(
        `CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version`,
        undefined,
        scoped,
      );
      const done = new Set(
        (await query<{ version: number }>(`SELECT version FROM ${quotedDatabase}.schema_migrations FINAL`)).map((r) => Number(r.version)),
      );
      const applied: string[] = [];
      for (const file of readdirSync(MIGRATIONS_DIR)
        .filter((f) => /^\d+_.+\.sql$/.test(f))
        .sort()) {
        const version = Number(file.split("_")[0]);
        if (done.has(version)) continue;
        const text = readFileSync(join(MIGRATIONS_DIR, file), "utf8");
        if (text.includes("{db}")) {
          throw new StoreError(`migration ${file} uses the retired {db} placeholder: name tables unqualified`, { context: { file } });
        }
        for (const statement of splitStatements(text)) await run(statement, undefined, scoped);
        await insert("schema_migrations", [{ version, name: file }]);
        applied.push(file);
      }
      return applied;
    },
    query: (sql, params) => query(sql, params),
    command: (sql, params) => run(sql, params),
    insert,
    analystQuery,
    queryReadOnly,
    async write(input: AuditBatch) {
      const ids = new Set(input.events.map((e) => e.event_id));
      const earlier = new Set<Promise<void>>();
      for (const id of ids) {
        const other = idsInFlight.get(id);
        if (other) earlier.add(other);
      }
      let release = () => {};
      const mine = new Promise<void>((resolve) => (release = resolve));
      for (const id of ids) idsInFlight.set(id, mine);
      let batch = input;
      try {
        await Promise.all(earlier);
        // One content per event id: another content under a known id is a finding, not a second event.
        if (input.events.length > 0) batch = guardEventIds(input, await storedDigests(input)).batch;
        // Edges, then facts, then events: if a crash interrupts the batch, the lineage is never behind
        // the uses, and a stored fact always has its edges (a later run of it only points at them).
        await Promise.all([insert(Table.edgesIn, batch.edges), insert(Table.labels, batch.labels)]);
        await insert(Table.facts, batch.facts);
        await insert(Table.events, batch.events);
      } finally {
        for (const id of ids) if (idsInFlight.get(id) === mine) idsInFlight.delete(id);
        release();
      }
      // The alerts these violations raise (the durable outbox), before the violations: a violation is
      // never stored without its alert, so a write cut short leaves the violation missing, which a
      // redelivery or a recheck writes again with its alert. The deliverer holds back an alert
      // whose violations are not stored yet.
      await insert(Table.outbox, batch.outbox);
      await Promise.all([
        insert(Table.paths, batch.paths),
        insert(Table.violations, batch.violations),
        insert(Table.findings, batch.findings),
        insert(Table.deadLetters, batch.deadLetters),
      ]);
      returnFreedMemory();
    },
    async writeProvenance(version, rows) {
      const tag = <T extends object>(list: readonly T[] | undefined) => (list ?? []).map((r) => ({ version, ...r }));
      await Promise.all([
        insert(Table.holdings, tag(rows.holdings)),
        insert(Table.useReads, tag(rows.reads)),
        insert(Table.useForbidden, tag(rows.forbidden)),
      ]);
      returnFreedMemory();
    },
    async commitProvenance(version, info) {
      await insert(Table.provenanceVersions, [{ version, ...info }]);
      // Keep the snapshot just replaced (a reader may be in it); drop the older ones whole.
      const old = await query<{ v: string }>(
        `SELECT toString(version) AS v FROM ${quotedDatabase}.${Table.provenanceVersions} WHERE version < {version:UInt64} ORDER BY version DESC`,
        { version },
      );
      for (const { v } of old.slice(1)) {
        if (!/^\d+$/.test(v)) continue; // a version is a number; never text into a statement
        for (const table of [
          Table.holdings,
          Table.useReads,
          Table.useForbidden,
          Table.subjectOrdinals,
          Table.exactUses,
          Table.exactRollups,
          Table.exactVersions,
        ]) {
          await run(`ALTER TABLE ${quotedDatabase}.${table} DROP PARTITION ID '${v}'`);
        }
        await run(`ALTER TABLE ${quotedDatabase}.${Table.provenanceVersions} DELETE WHERE version = ${v}`);
      }
    },
    async unpublishedFacts(topic, limit) {
      const rows = await query<{ fact_key: string; fact: string }>(
        `SELECT fact_key, any(fact) AS fact FROM ${quotedDatabase}.${Table.facts}
         WHERE fact_key NOT IN (SELECT fact_key FROM ${quotedDatabase}.${Table.published} WHERE topic = {topic:String})
         GROUP BY fact_key ORDER BY min(occurred_at), fact_key LIMIT {limit:UInt32}`,
        { topic, limit },
      );
      return rows.map((r) => ({ key: r.fact_key, fact: JSON.parse(r.fact) as DataAccessEvent }));
    },
    async markPublished(topic, keys) {
      await insert(
        Table.published,
        keys.map((fact_key) => ({ fact_key, topic })),
      );
    },
    async *lineageFacts() {
      // Keyset pages: the embedded engine hands back a whole result at once, so one query for
      // every fact would hold them all in memory.
      let cursor = { at: "0", eventId: "", key: "" };
      for (;;) {
        const rows = await query<{ fact: string; at: string; event_id: string; fact_key: string }>(
          `SELECT fact, toString(toUnixTimestamp64Milli(occurred_at)) AS at, event_id, fact_key FROM ${quotedDatabase}.${Table.facts} FINAL
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
    async *lineageFactsInTimeOrder() {
      let cursor = { at: "0", key: "" };
      for (;;) {
        const rows = await query<{ fact: string; at: string; fact_key: string }>(
          `SELECT fact_key, fact, toString(toUnixTimestamp64Milli(first)) AS at
           FROM (SELECT fact_key, min(occurred_at) AS first, argMin(fact, occurred_at) AS fact
                 FROM ${quotedDatabase}.${Table.facts} GROUP BY fact_key)
           WHERE (first, fact_key) > (fromUnixTimestamp64Milli({at:Int64}, 'UTC'), {key:String})
           ORDER BY first, fact_key LIMIT {limit:UInt32}`,
          { at: cursor.at, key: cursor.key, limit: FACT_PAGE },
        );
        for (const r of rows) yield { ...(JSON.parse(r.fact) as DataAccessEvent), occurredAt: Number(r.at) };
        const last = rows.at(-1);
        if (!last || rows.length < FACT_PAGE) return;
        cursor = { at: last.at, key: last.fact_key };
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
          `SELECT fact_key, any(fact) AS fact, min(occurred_at) AS at FROM ${quotedDatabase}.${Table.facts}
           WHERE fact_key IN (SELECT fact_key FROM ${quotedDatabase}.${Table.factDatasets}
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
      returnFreedMemory(); // a refill reads many facts at once
      return out;
    },
    async recentUses(limit) {
      if (limit <= 0) return [];
      // The most recent `limit` checked uses, and as many still of unknown provenance (their
      // datasets' lineage had not arrived): those are parked again after a restart, so the
      // lineage arriving later still resolves them.
      const all = await query<StoredUseRow & { parked: number }>(
        `SELECT event_id, kind, toString(toUnixTimestamp64Milli(occurred_at)) AS at, service, job_namespace, job_name, run_id, input_fields,
                purposes, data_subject, subjects, recipient, recipient_external, traceparent, pseudonym_key_id, label_ids, parked
         FROM (SELECT *, verdict = 'unknown_provenance' AS parked FROM ${quotedDatabase}.${Table.events} FINAL WHERE kind IN ('USE', 'SHARE')
               ORDER BY ingested_at DESC LIMIT {limit:UInt32} BY parked)
         ORDER BY ingested_at`,
        { limit },
      );
      const rows = all.filter((r) => Number(r.parked) === 0);
      const pending: StoredUse[] = all
        .filter((r) => Number(r.parked) === 1)
        .map((r) => ({ event: eventFromRow(r), rules: [], written: { labelIds: [], ruleLabels: {} }, pending: true }));
      if (rows.length === 0) return pending;
      const rules = new Map<string, Record<string, string[]>>();
      // A violation rewritten with more labels has an older row until merges: take the newest.
      for (const r of await query<{ event_id: string; rule_id: string; label_ids: string[] }>(
        `SELECT event_id, rule_id, argMax(label_ids, detected_at) AS label_ids FROM ${quotedDatabase}.${Table.violations}
         WHERE event_id IN (SELECT event_id FROM ${quotedDatabase}.${Table.events} WHERE kind IN ('USE', 'SHARE') ORDER BY ingested_at DESC LIMIT {limit:UInt32})
         GROUP BY event_id, rule_id`,
        { limit },
      )) {
        const byRule = rules.get(r.event_id) ?? {};
        byRule[r.rule_id] = r.label_ids;
        rules.set(r.event_id, byRule);
      }
      return [
        ...rows.map((r) => {
          const ruleLabels = rules.get(r.event_id) ?? {};
          return { event: eventFromRow(r), rules: Object.keys(ruleLabels), written: { labelIds: r.label_ids ?? [], ruleLabels } };
        }),
        ...pending,
      ];
    },
    async usesAfter(cursor, window, limit) {
      const rows = await query<StoredUseRow>(
        `SELECT event_id, kind, toString(toUnixTimestamp64Milli(occurred_at)) AS at, service, job_namespace, job_name, run_id, input_fields,
                purposes, data_subject, subjects, recipient, recipient_external, traceparent, pseudonym_key_id
         FROM ${quotedDatabase}.${Table.events} FINAL
         WHERE kind IN ('USE', 'SHARE')
           AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
           AND (occurred_at, event_id) > (fromUnixTimestamp64Milli({at:Int64}, 'UTC'), {id:String})
         ORDER BY occurred_at, event_id LIMIT {limit:UInt32}`,
        { from: window.from, to: window.to, at: cursor.at, id: cursor.eventId, limit },
      );
      return rows.map(eventFromRow);
    },
    async close() {
      await purging;
      if (analyst) await (await analyst.catch(() => undefined))?.close();
      await client.close();
    },
  };
}

/**
 * ClickHouse error codes of rows that can never be written as they are: parse, type, range, size
 * and constraint errors. Every other failure (network, timeouts, too many parts, memory, a missing
 * table, codes not listed) is retriable: the writer waits and tries again, nothing is set aside.
 */
export const DATA_ERROR_CODES: ReadonlySet<number> = new Set([
  6, // CANNOT_PARSE_TEXT
  25, // CANNOT_PARSE_ESCAPE_SEQUENCE (e.g. a lone \uD800 in a JSON string)
  26, // CANNOT_PARSE_QUOTED_STRING
  27, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  38, // CANNOT_PARSE_DATE
  41, // CANNOT_PARSE_DATETIME
  53, // TYPE_MISMATCH
  69, // ARGUMENT_OUT_OF_BOUND
  70, // CANNOT_CONVERT_TYPE
  72, // CANNOT_PARSE_NUMBER
  117, // INCORRECT_DATA
  128, // TOO_LARGE_ARRAY_SIZE
  131, // TOO_LARGE_STRING_SIZE
  321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
  349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
  407, // DECIMAL_OVERFLOW
  469, // VIOLATED_CONSTRAINT
]);

/**
 * A failed insert as a StoreError classified by ClickHouse's error code. The message names the
 * code and its type only: ClickHouse's own text may quote the rows (personal data).
 */
export function insertError(cause: unknown, what: string, context: Record<string, string | number>): StoreError {
  const { code, type } = cause as { code?: unknown; type?: unknown };
  if (typeof code === "string" && /^\d+$/.test(code)) {
    const message = `${what}: ClickHouse error ${code}${typeof type === "string" && type ? ` (${type})` : ""}`;
    const options = { cause, context: { ...context, clickhouseCode: Number(code) } };
    return DATA_ERROR_CODES.has(Number(code))
      ? new StoreDataError(message, options)
      : new StoreError(message, { ...options, retriable: true });
  }
  // Not an answer from ClickHouse (connection refused, reset, timed out): an outage.
  const reason =
    cause instanceof Error ? `${cause.name === "Error" ? "" : `${cause.name}: `}${cause.message.split("\n")[0]?.trim()}` : "unknown";
  return new StoreError(`${what}: ${reason}`, { cause, retriable: true, context });
}

/** The columns of a stored use or share that evaluating it again needs. */
export interface StoredUseRow {
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
export function eventFromRow(r: StoredUseRow): DataAccessEvent {
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

/**
 * The live process other than this one holding an embedded store, if any: ClickHouse keeps a
 * `status` file with its PID, locked, while a data directory is open, and removes it on close.
 */
function storeHolder(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(join(path, "status"), "utf8");
  } catch {
    return undefined;
  }
  const pid = Number(/^PID:\s*(\d+)/m.exec(text)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    // EPERM: alive, but another user's. ESRCH: a stale file left by a killed process.
    return (error as NodeJS.ErrnoException).code === "EPERM" ? pid : undefined;
  }
}

/** ClickHouse's own limit on a database name is larger; 64 keeps paths and messages readable. */
const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** An identifier already checked against DATABASE_NAME, quoted so that keywords stay names. */
export function quoteIdentifier(name: string): string {
  return `\`${name}\``;
}

/** Splits a migration file on semicolons that end a line, dropping comment-only chunks. */
export function splitStatements(text: string): string[] {
  return text
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.replace(/^\s*--.*$/gm, "").trim())
    .filter((s) => s.length > 0);
}
