// Rows a materialized view never received. ClickHouse fills a view's table in an insert of its own
// after its source table's part is committed, not atomically with it: a process killed between
// the two (SIGKILL, OOM, power) leaves source rows whose view rows are missing for good, since
// everything that reads "is it stored?" reads the source. A violation in violations_v1 without
// its rows in violation_subjects_v1 would make every affected count short by its people.
//
// At open, before anything is written, the rows of each source table's newest inserts (a write cut
// short is among them) are checked against the views' tables, and the source rows whose view rows
// are missing are inserted into their own table again: ClickHouse's own views then fill what was
// missing, with the views' own SQL. The repeat is harmless (ReplacingMergeTree keys). Sets of
// people per day (affected_daily_v1) are given the newest rows' sets again (a union: harmless too).
import type { Store } from "./store.ts";
import { quoteIdentifier, Table } from "./store.ts";

/** What was refilled: source rows inserted again so that their views fill the rows they lacked. */
export interface RefillReport {
  /** The source table. */
  table: string;
  /** The tables its views fill. */
  views: string[];
  /** Source rows inserted again. */
  rows: number;
}

/**
 * Inserts back from a table's newest that are checked. A process has at most a few writes in
 * flight when it dies; the rest is margin for other instances writing to the same server until
 * this one restarts. An insert takes one block number for each partition (month) it writes, so
 * the window is this many times the partitions the newest inserts wrote.
 */
export const REFILL_INSERTS = 32;

/** Rows of the parts holding the newest blocks: a part is named partition_minblock_maxblock_level[_mutation]. */
const NEWEST = "toUInt64(splitByChar('_', _part)[3]) > {after:UInt64}";

interface Chain {
  table: string;
  views: string[];
  /** The key of a source row that `missing` lists. */
  key: string;
  /** Keys of the newest rows (`NEWEST_ROWS`) whose view rows are missing ({db} is the quoted database). */
  missing: string;
  /**
   * How the missing rows are given to the views: `reinsert` inserts them into their own table again
   * (the views run on them), else this statement's SELECT over them (a view's own query) goes
   * straight into its table, where a repeat of a row would be visible.
   */
  refill: "reinsert" | ((rows: string) => string);
}

// In order: a view's table that is itself a source (violation_subjects_v1) is checked after what fills it.
const CHAINS: readonly Chain[] = [
  {
    table: Table.facts,
    views: [Table.factDatasets],
    key: "fact_key",
    refill: "reinsert",
    // A fact that names no dataset has no rows there (nothing to miss).
    missing: `SELECT fact_key FROM {db}.${Table.facts}
      WHERE NEWEST_ROWS
        AND (notEmpty(JSONExtractArrayRaw(fact, 'outputs')) OR notEmpty(JSONExtractArrayRaw(fact, 'inputs')) OR notEmpty(JSONExtractArrayRaw(fact, 'fieldLineage')))
        AND fact_key NOT IN (SELECT fact_key FROM {db}.${Table.factDatasets}
          WHERE fact_key IN (SELECT fact_key FROM {db}.${Table.facts} WHERE NEWEST_ROWS))`,
  },
  {
    table: Table.events,
    views: [Table.subjects, Table.eventIds],
    key: "event_id",
    refill: "reinsert",
    missing: `SELECT event_id FROM {db}.${Table.events} ARRAY JOIN subjects AS subject_id
      WHERE NEWEST_ROWS
        AND (event_id, subject_id) NOT IN (SELECT event_id, subject_id FROM {db}.${Table.subjects}
          WHERE subject_id IN (SELECT arrayJoin(subjects) FROM {db}.${Table.events} WHERE NEWEST_ROWS)
            AND event_id IN (SELECT event_id FROM {db}.${Table.events} WHERE NEWEST_ROWS))
      UNION DISTINCT
      SELECT event_id FROM {db}.${Table.events}
      WHERE NEWEST_ROWS
        AND event_id NOT IN (SELECT event_id FROM {db}.${Table.eventIds}
          WHERE event_id IN (SELECT event_id FROM {db}.${Table.events} WHERE NEWEST_ROWS))`,
  },
  {
    table: Table.violations,
    views: [Table.violationSubjects, "affected_daily_v1"],
    key: "violation_id",
    refill: "reinsert",
    missing: `SELECT violation_id FROM {db}.${Table.violations} ARRAY JOIN subjects AS subject_id
      WHERE NEWEST_ROWS
        AND (violation_id, subject_id) NOT IN (SELECT violation_id, subject_id FROM {db}.${Table.violationSubjects}
          WHERE rule_id IN (SELECT rule_id FROM {db}.${Table.violations} WHERE NEWEST_ROWS)
            AND subject_id IN (SELECT arrayJoin(subjects) FROM {db}.${Table.violations} WHERE NEWEST_ROWS)
            AND violation_id IN (SELECT violation_id FROM {db}.${Table.violations} WHERE NEWEST_ROWS))`,
  },
  {
    // affected_daily_v1 holds sets, not rows: a (rule, day, service, mode) whose distinct people
    // per category differ from the set there is given its newest rows' sets again, by the view's
    // query (migration 008), rather than repeating those rows in violation_subjects_v1.
    table: Table.violationSubjects,
    views: ["affected_daily_v1"],
    key: "(rule_id, toDate(occurred_at), service, mode)",
    refill: (rows) => `INSERT INTO {db}.affected_daily_v1
      SELECT rule_id, toDate(occurred_at) AS day, category, service, mode,
             uniqState(subject_id), uniqExactState(subject_id), uniqExactState(subject_id, category)
      FROM (SELECT * ${rows})
      ARRAY JOIN categories AS category
      GROUP BY rule_id, day, category, service, mode`,
    // Per group: people in its set with the newest rows' people added, against without them.
    missing: `SELECT rule_id, day, service, mode FROM (
        SELECT rule_id, day, category, service, mode, uniqExactMerge(s) AS with_newest, uniqExactMergeIf(s, stored = 1) AS stored_only
        FROM (
          SELECT rule_id, day, toString(category) AS category, toString(service) AS service, toString(mode) AS mode, subjects_exact AS s, 1 AS stored
          FROM {db}.affected_daily_v1
          WHERE (rule_id, day) IN (SELECT rule_id, toDate(occurred_at) FROM {db}.${Table.violationSubjects} WHERE NEWEST_ROWS)
          UNION ALL
          SELECT rule_id, toDate(occurred_at) AS day, category, toString(service) AS service, toString(mode) AS mode, uniqExactState(subject_id) AS s, 0 AS stored
          FROM {db}.${Table.violationSubjects} ARRAY JOIN categories AS category
          WHERE NEWEST_ROWS
          GROUP BY rule_id, day, category, service, mode)
        GROUP BY rule_id, day, category, service, mode)
      WHERE with_newest != stored_only`,
  },
];

/**
 * Finds rows of each source table's newest inserts that its materialized views did not receive
 * (a write cut short between the two inserts) and gives them to the views again, so that their
 * tables hold what they would have. Run at open, before the first write.
 */
export async function refillViews(store: Pick<Store, "query" | "command" | "database">): Promise<RefillReport[]> {
  const db = quoteIdentifier(store.database);
  const reports: RefillReport[] = [];
  for (const chain of CHAINS) {
    // The newest block number, and the partitions the newest inserts wrote (one block each).
    const [newest] = await store.query<{ n: string; max: string; partitions: string }>(
      `WITH (SELECT max(max_block_number) FROM system.parts
             WHERE database = {database:String} AND table = {table:String} AND active) AS top
       SELECT toString(count()) AS n, toString(top) AS max,
              toString(uniqExactIf(partition_id, toInt64(max_block_number) > toInt64(top) - {inserts:Int64})) AS partitions
       FROM system.parts WHERE database = {database:String} AND table = {table:String} AND active`,
      { database: store.database, table: chain.table, inserts: REFILL_INSERTS },
    );
    if (Number(newest?.n ?? 0) === 0) continue;
    const params = { after: Math.max(0, Number(newest?.max ?? 0) - REFILL_INSERTS * Math.max(1, Number(newest?.partitions ?? 1))) };
    const sql = (text: string) => text.replaceAll("NEWEST_ROWS", NEWEST).replaceAll("{db}", db);
    const rowsOf = sql(`FROM {db}.${chain.table} WHERE NEWEST_ROWS AND ${chain.key} IN (${chain.missing})`);
    const [count] = await store.query<{ n: string }>(`SELECT toString(count()) AS n ${rowsOf}`, params);
    const rows = Number(count?.n ?? 0);
    if (rows === 0) continue;
    await store.command(
      chain.refill === "reinsert" ? `INSERT INTO ${db}.${chain.table} SELECT * ${rowsOf}` : sql(chain.refill(rowsOf)),
      params,
    );
    reports.push({ table: chain.table, views: chain.views, rows });
  }
  return reports;
}
