// Issue 9, speed: the exact per-subject count from bitmaps of dense subject ordinals
// (schemas/clickhouse/015_exact_bitmaps.sql). materializeExactCounts turns a snapshot's exactly
// affected (use, subject) pairs into one bitmap per (rule, use, category) and rolls them up over
// aligned blocks of 128, 32 and 8 days, days and hours; exactCount answers a window by OR-ing the blocks it
// covers whole and the uses of its partial hours. It equals exactAffected's users, records, first and last.
import { exactPairsOf, type ExactWindow } from "./provenance.ts";
import { Table, type Store } from "./store.ts";

export const HOUR_MS = 3_600_000;
/**
 * Rollup levels in hours (128 days, 32 days, 8 days, a day, an hour), largest first; each divides
 * the one before it. At 100M pairs over 20M subjects a bitmap of 8 days or more is dense (2.5 MB
 * per category), a day's a third of that: the 8-day level halves what a 3-month window merges (28
 * daily bitmaps cost more to OR than three 8-day ones), the 128-day one what 300 days do.
 */
export const ROLLUP_HOURS = [3072, 768, 192, 24, 1] as const;

const IN_CATEGORY = `({category:String} = '' OR category = {category:String} OR startsWith(category, concat({category:String}, '.')))`;

export interface ExactCount {
  /** Distinct subjects exactly affected: the cardinality of the OR of every bitmap in the window. */
  users: number;
  /** Distinct (subject, data category) pairs: per category the cardinality of its OR, summed. */
  records: number;
  first: number | null;
  last: number | null;
}

/**
 * Fills the bitmap tables for snapshot `version` from its holdings, reads and forbidden labels,
 * inside ClickHouse: dense ordinals of the subjects with holdings, then per rule the exact pairs
 * (the same SQL as exactAffected) as one bitmap per (use, category), then the rollups, then the
 * row saying they are complete. Called by refreshProvenance before the snapshot is committed.
 * Running it twice for a version is harmless: ordinals are deterministic and OR-ing a bitmap
 * twice changes nothing.
 */
export async function materializeExactCounts(
  store: Store,
  version: number,
): Promise<{ subjects: number; uses: number; elapsedMs: number }> {
  const started = performance.now();
  const db = store.database;
  await store.command(
    `INSERT INTO ${db}.${Table.subjectOrdinals} (version, subject, ordinal)
     SELECT {version:UInt64}, subject, toUInt32(row_number() OVER (ORDER BY subject))
     FROM (SELECT DISTINCT subject FROM ${db}.${Table.holdings} WHERE version = {version:UInt64} AND variant = 0)`,
    { version },
  );
  const rules = await store.query<{ rule_id: string }>(
    `SELECT DISTINCT rule_id FROM ${db}.${Table.useForbidden} WHERE version = {version:UInt64} ORDER BY rule_id`,
    { version },
  );
  for (const { rule_id: rule } of rules) {
    const { exactPairs, params } = exactPairsOf(db, version, rule, {});
    await store.command(
      `INSERT INTO ${db}.${Table.exactUses} (version, rule_id, occurred_at, category, event_id, external, subjects)
       SELECT {version:UInt64}, {rule:String}, any(p.at), p.category, p.event_id, any(p.external), groupBitmapState(o.ordinal)
       FROM (SELECT event_id, at, external, subject, category FROM (${exactPairs}) ARRAY JOIN categories AS category) AS p
       INNER JOIN (SELECT subject, ordinal FROM ${db}.${Table.subjectOrdinals} WHERE version = {version:UInt64}) AS o
               ON o.subject = p.subject
       GROUP BY p.event_id, p.category`,
      params,
    );
  }
  await rollUpExactCounts(store, version);
  const [row] = await store.query<{ subjects: string; uses: string }>(
    `SELECT (SELECT count() FROM ${db}.${Table.subjectOrdinals} WHERE version = {version:UInt64}) AS subjects,
            (SELECT count() FROM ${db}.${Table.exactUses} WHERE version = {version:UInt64}) AS uses`,
    { version },
  );
  const elapsedMs = performance.now() - started;
  const done = { subjects: Number(row?.subjects ?? 0), uses: Number(row?.uses ?? 0), elapsedMs };
  await store.command(
    `INSERT INTO ${db}.${Table.exactVersions} (version, subjects, uses, elapsed_ms)
     VALUES ({version:UInt64}, {subjects:UInt64}, {uses:UInt64}, {elapsed:UInt64})`,
    { version, subjects: done.subjects, uses: done.uses, elapsed: Math.round(elapsedMs) },
  );
  return done;
}

/**
 * The rollups of snapshot `version` from its per-use bitmaps: the smallest blocks from the uses,
 * each larger one from the level below it.
 */
export async function rollUpExactCounts(store: Store, version: number): Promise<void> {
  const db = store.database;
  const levels = [...ROLLUP_HOURS].reverse();
  for (const [i, hours] of levels.entries()) {
    const below = levels[i - 1];
    const source =
      below === undefined
        ? `SELECT rule_id, occurred_at AS at, occurred_at AS first, occurred_at AS last, category, subjects
           FROM ${db}.${Table.exactUses} WHERE version = {version:UInt64}`
        : `SELECT rule_id, start AS at, first, last, category, subjects
           FROM ${db}.${Table.exactRollups} WHERE version = {version:UInt64} AND hours = {below:UInt16}`;
    await store.command(
      `INSERT INTO ${db}.${Table.exactRollups} (version, rule_id, hours, start, category, first, last, subjects)
       SELECT {version:UInt64}, rule_id, {hours:UInt16}, at - positiveModulo(at, {span:Int64}) AS block, category,
              min(first), max(last), groupBitmapMergeState(subjects)
       FROM (${source})
       GROUP BY rule_id, block, category`,
      { version, hours, below: below ?? 0, span: hours * HOUR_MS },
    );
  }
}

/** What a window reads: whole blocks per rollup level, and the partial hours' uses. */
export interface WindowPieces {
  blocks: { hours: number; from: number; to: number }[];
  uses: { from: number; to: number }[];
}

/**
 * Splits [from, to) into aligned blocks, largest first: per level, the blocks lying wholly in
 * what is left; what is left at the end (at most the two partial hours) is read use by use.
 */
export function windowPieces(from: number, to: number): WindowPieces {
  const blocks: WindowPieces["blocks"] = [];
  let left: { from: number; to: number }[] = from < to ? [{ from, to }] : [];
  for (const hours of ROLLUP_HOURS) {
    const span = hours * HOUR_MS;
    const next: typeof left = [];
    for (const r of left) {
      const lo = Math.ceil(r.from / span) * span;
      const hi = Math.floor(r.to / span) * span;
      if (lo >= hi) {
        next.push(r);
        continue;
      }
      blocks.push({ hours, from: lo, to: hi });
      if (r.from < lo) next.push({ from: r.from, to: lo });
      if (hi < r.to) next.push({ from: hi, to: r.to });
    }
    left = next;
  }
  return { blocks, uses: left };
}

/**
 * The exact count of a rule over a window of use times, from the bitmaps of the latest snapshot:
 * users, records, first and last, equal to exactAffected's. Reads no holdings: at most one
 * bitmap per category and block the window covers whole, plus the uses of its partial hours. A
 * snapshot committed before the bitmap tables existed gets them filled first.
 */
export async function exactCount(store: Store, ruleId: string, window: ExactWindow = {}): Promise<ExactCount> {
  return (await exactCounts(store, [ruleId], window)).get(ruleId) as ExactCount;
}

/**
 * exactCount for several rules in one statement (a page listing every rule): the same bitmaps,
 * merged per rule. Every rule asked for is in the map, with zeros when nothing is counted.
 */
export async function exactCounts(store: Store, ruleIds: readonly string[], window: ExactWindow = {}): Promise<Map<string, ExactCount>> {
  const db = store.database;
  const out = new Map<string, ExactCount>(ruleIds.map((id) => [id, { users: 0, records: 0, first: null, last: null }]));
  if (ruleIds.length === 0) return out;
  const pieces = windowPieces(window.from ?? Number.MIN_SAFE_INTEGER, window.to ?? Number.MAX_SAFE_INTEGER);
  const params: Record<string, unknown> = { rules: [...ruleIds], category: window.category ?? "" };
  const range = (column: string, from: number, to: number) => {
    const n = Object.keys(params).length;
    params[`p${n}`] = from;
    params[`p${n + 1}`] = to;
    return `(${column} >= {p${n}:Int64} AND ${column} < {p${n + 1}:Int64})`;
  };
  const blocks = pieces.blocks.map((b) => `(hours = ${b.hours} AND ${range("start", b.from, b.to)})`).join(" OR ") || "0";
  const uses = pieces.uses.map((u) => range("occurred_at", u.from, u.to)).join(" OR ") || "0";
  // One round trip: the latest snapshot, whether its bitmaps are there, and the counts.
  const sql = `WITH (SELECT max(version) FROM ${db}.${Table.provenanceVersions}) AS v
     SELECT toString(v) AS version, (SELECT count() FROM ${db}.${Table.exactVersions} WHERE version = v) AS ready, rule_id,
            groupBitmapMerge(s) AS users, sum(bitmapCardinality(s)) AS records,
            if(count() = 0, NULL, toString(min(f))) AS first, if(count() = 0, NULL, toString(max(l))) AS last
     FROM (SELECT rule_id, category, groupBitmapMergeState(subjects) AS s, min(first) AS f, max(last) AS l
           FROM (SELECT rule_id, category, first, last, subjects FROM ${db}.${Table.exactRollups}
                 WHERE version = v AND rule_id IN {rules:Array(String)} AND ${IN_CATEGORY} AND (${blocks})
                 UNION ALL
                 SELECT rule_id, category, occurred_at AS first, occurred_at AS last, subjects FROM ${db}.${Table.exactUses}
                 WHERE version = v AND rule_id IN {rules:Array(String)} AND ${IN_CATEGORY} AND (${uses}))
           GROUP BY rule_id, category)
     GROUP BY rule_id`;
  type Row = { version: string; ready: string; rule_id: string; users: string; records: string; first: string | null; last: string | null };
  let rows = await store.query<Row>(sql, params);
  // Nothing counted: whether that is because the snapshot's bitmaps are missing.
  const snapshot =
    rows[0] ??
    (
      await store.query<{ version: string; ready: string }>(
        `WITH (SELECT max(version) FROM ${db}.${Table.provenanceVersions}) AS v
         SELECT toString(v) AS version, (SELECT count() FROM ${db}.${Table.exactVersions} WHERE version = v) AS ready`,
      )
    )[0];
  const version = Number(snapshot?.version ?? 0);
  if (version > 0 && Number(snapshot?.ready ?? 0) === 0) {
    await materializeExactCounts(store, version);
    rows = await store.query<Row>(sql, params);
  }
  const time = (t: string | null | undefined) => (t === null || t === undefined ? null : Number(t));
  for (const row of rows) {
    out.set(row.rule_id, { users: Number(row.users), records: Number(row.records), first: time(row.first), last: time(row.last) });
  }
  return out;
}
