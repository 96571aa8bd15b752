import type { DataAccessEvent } from "../codec/index.ts";
import { describePaths, type PathRow } from "../processor/index.ts";
import {
  compilePolicy,
  CompiledColumns,
  describeVerdict,
  inStableOrder,
  sqlLiteral,
  type CompiledPolicy,
  type Policy,
} from "../rules/index.ts";
import type { Label } from "../lineage/index.ts";
import { eventFromRow, Table, type Store } from "../store/index.ts";
import { createLabelTimeline, type LabelTimeline, type TimelineRow } from "./labels.ts";
import { replayIdOf, type ReplayResult } from "./replay.ts";

/** Working tables of a replay in SQL (migration 016). */
export const ReplayTable = {
  shapes: "replay_shapes_v1",
  timeline: "replay_timeline_v1",
  epochs: "replay_epochs_v1",
  progress: "replay_progress_v1",
} as const;

export interface SqlReplayOptions {
  /** The rules to evaluate, and the text they came from (it names the replay). */
  policy: Policy;
  rulesText: string;
  /** Inclusive lower bound, ms since 1970. @default 0 */
  from?: number;
  /** Exclusive upper bound, ms since 1970. @default far future */
  to?: number;
  /** Stored uses a chunk of whole days holds at least (the last chunk may hold fewer). @default 5000000 */
  chunkRows?: number;
  /** Prints nothing and writes no violations: returns the compiled SQL and what it would write. */
  dryRun?: boolean;
  onProgress?: (done: number, total: number) => void;
  /** Leaves the working rows (shapes, timeline, epochs) in place after the run, to inspect them. @default false */
  keepWorkingData?: boolean;
  /** Called as each stage starts (`lineage`, `shapes`, `verdicts`, `violations`). */
  onStage?: (stage: SqlReplayStage) => void;
  /** Checked between chunks: stop there (the days done are saved; the same command resumes). */
  shouldStop?: () => boolean;
}

export type SqlReplayStage = "lineage" | "shapes" | "verdicts" | "violations";

export interface SqlReplayResult extends ReplayResult {
  engine: "sql";
  /** The statements that decide the verdicts and write the violations, as run (dry run: as they would run). */
  sql: { verdicts: string; violations: string };
  /** Violations per rule this run wrote (dry run: would write), for the window not done before. */
  byRule: Record<string, number>;
  /** Distinct use shapes and (shape, lineage epoch) pairs evaluated. */
  shapes: number;
  epochs: number;
}

const FAR_FUTURE = Date.UTC(2299, 11, 31);

/**
 * Replays rules over the stored history in ClickHouse (docs/rules.md, "Replay"): the same
 * time-valid answer as the stream replay, from the engine that holds the data.
 *
 * 1. The lineage core applies the stored lineage facts in the order they occurred and records
 *    when each dataset, field and label (declassification applied) appeared: replay_timeline_v1.
 * 2. The stored uses and shares are grouped by shape (`use_shape`: what decides a verdict).
 * 3. The compiled rules evaluate each shape at each lineage epoch of the datasets it reads
 *    (one SQL statement; the core only formats each verdict's path and reason): replay_epochs_v1.
 * 4. Per chunk of whole days, the verdicts are joined back onto the uses by shape and time
 *    (ASOF JOIN) and written as violations with the ids a live evaluation gives, marked
 *    `retroactive`. The day reached is saved after each chunk: a second run adds nothing, and an
 *    interrupted one goes on from the first day not done (a chunk cut short is written again,
 *    which replaces rows by their ids).
 *
 * The policy is compiled before anything is read or written: what it cannot express is a
 * RuleError naming the file and line.
 */
export async function replayRulesSql(store: Store, options: SqlReplayOptions): Promise<SqlReplayResult> {
  const compiled = compilePolicy(options.policy);
  const db = `\`${store.database.replace(/`/g, "``")}\``;
  const from = options.from ?? 0;
  const to = options.to ?? FAR_FUTURE;
  const chunkRows = options.chunkRows ?? 5_000_000;
  const replayId = replayIdOf(options.rulesText, from, to, "sql");
  const rid = sqlLiteral(replayId);
  const sql = { verdicts: verdictSql(db, rid, compiled), violations: violationSql(db, rid, "{from}", "{to}") };
  const base = { replayId, engine: "sql" as const, sql, byRule: {} as Record<string, number>, shapes: 0, epochs: 0 };

  const [saved] = await store.query<{ at: string; events: string; violations: string; done: number }>(
    `SELECT toString(toUnixTimestamp64Milli(cursor_at)) AS at, events, violations, done
     FROM ${db}.${ReplayTable.progress} FINAL WHERE replay_id = {id:String}`,
    { id: replayId },
  );
  if (saved?.done === 1 && !options.dryRun) {
    return { ...base, events: 0, violations: 0, resumed: false, done: true, alreadyDone: true };
  }
  // Where this run starts: after the days a run before it finished.
  const begin = saved && !options.dryRun ? Math.max(Number(saved.at), from) : from;

  await dropWorkingData(store, db, rid);
  try {
    // 1. The lineage as a timeline.
    options.onStage?.("lineage");
    const timeline = createLabelTimeline(options.policy.declassify);
    let rows: TimelineRow[] = [];
    for await (const fact of store.lineageFactsInTimeOrder()) {
      rows.push(...timeline.apply(fact));
      if (rows.length >= 50_000) {
        await insertRows(store, ReplayTable.timeline, rows, replayId);
        rows = [];
      }
    }
    await insertRows(store, ReplayTable.timeline, rows, replayId);

    // 2. The shapes of the uses in the window.
    options.onStage?.("shapes");
    for (const statement of shapesSql(db, rid, from, to)) await store.command(statement);

    // 3. The verdict of each shape at each epoch.
    options.onStage?.("verdicts");
    const epochs = await store.query<EpochVerdictRow>(sql.verdicts);
    const shapes = await shapeDescriptions(store, db, rid);
    const paths = new Map<string, PathRow>();
    const out = epochs.map((e) => epochRow(e, shapes, timeline, compiled, paths, replayId));
    await insertRows(store, ReplayTable.epochs, out);
    base.shapes = shapes.size;
    base.epochs = epochs.length;

    // 4. The violations, per chunk of days.
    options.onStage?.("violations");
    const days = await store.query<{ day: string; uses: string }>(
      `SELECT toString(toUnixTimestamp64Milli(toDateTime64(toDate(occurred_at), 3, 'UTC'))) AS day, count() AS uses
       FROM ${db}.${Table.events}
       WHERE kind IN ('USE', 'SHARE') AND occurred_at >= ${time(begin)} AND occurred_at < ${time(to)}
       GROUP BY day ORDER BY day`,
    );
    const chunks = chunk(days, chunkRows, begin, to);
    const total = days.reduce((n, d) => n + Number(d.uses), 0);
    options.onProgress?.(0, total);

    if (options.dryRun) {
      const counts = await store.query<{ rule_id: string; n: string }>(
        `SELECT x.rule_id AS rule_id, count() AS n FROM (${violationSelect(db, rid, time(begin), time(to))}) AS x GROUP BY rule_id ORDER BY rule_id`,
      );
      for (const c of counts) base.byRule[c.rule_id] = Number(c.n);
      const violations = counts.reduce((n, c) => n + Number(c.n), 0);
      options.onProgress?.(total, total);
      return { ...base, events: total, violations, resumed: false, done: false, alreadyDone: false };
    }

    await insertRows(store, Table.paths, [...paths.values()]);
    await insertRows(store, Table.labels, [...timeline.labels()].map(labelRow));
    let events = 0;
    let violations = 0;
    /** The cursor: every use before `at` is done; the counts are those of every run of this replay. */
    const saveProgress = (at: number, last: boolean) =>
      insertRows(store, ReplayTable.progress, [
        {
          replay_id: replayId,
          rules_file: options.policy.source,
          cursor_at: at,
          cursor_event_id: "",
          events: Number(saved?.events ?? 0) + events,
          violations: Number(saved?.violations ?? 0) + violations,
          done: last ? 1 : 0,
        },
      ]);
    // What this run writes has detected_at from here on (the engine's clock, not this process's).
    const [clock] = await store.query<{ now: string }>(`SELECT toString(now64(3)) AS now`);
    for (const c of chunks) {
      if (options.shouldStop?.()) {
        return { ...base, events, violations, resumed: saved !== undefined, done: false, alreadyDone: false };
      }
      await store.command(violationSql(db, rid, time(c.from), time(c.to)));
      for (const [rule, n] of await writtenSince(store, db, c.from, c.to, clock?.now ?? "1970-01-01 00:00:00.000")) {
        base.byRule[rule] = (base.byRule[rule] ?? 0) + n;
        violations += n;
      }
      events += c.uses;
      await saveProgress(c.to, c.last);
      options.onProgress?.(events, total);
    }
    if (chunks.length === 0) await saveProgress(to, true);
    return { ...base, events, violations, resumed: saved !== undefined, done: true, alreadyDone: false };
  } finally {
    if (!options.keepWorkingData) await dropWorkingData(store, db, rid);
  }
}

/** Violations per rule the replay wrote for uses in [from, to) since `since` (the engine's clock before the insert). */
async function writtenSince(store: Store, db: string, from: number, to: number, since: string): Promise<Map<string, number>> {
  const rows = await store.query<{ rule_id: string; n: string }>(
    `SELECT rule_id, uniqExact(violation_id) AS n FROM ${db}.${Table.violations}
     WHERE occurred_at >= ${time(from)} AND occurred_at < ${time(to)} AND retroactive = 1 AND detected_at >= toDateTime64({since:String}, 3, 'UTC')
     GROUP BY rule_id`,
    { since },
  );
  return new Map(rows.map((r) => [r.rule_id, Number(r.n)]));
}

interface EpochVerdictRow {
  shape: string;
  valid_from: string;
  /** (rule id, purposes, [(label id, the field it was read on)]) */
  violations: [string, string[], [string, string][]][];
}

interface ShapeRow {
  shape: string;
  kind: string;
  service: string;
  job_namespace: string;
  job_name: string;
  data_subject: string;
  purposes: string[];
  recipient: string;
  recipient_external: number;
  input_fields: string[];
}

async function shapeDescriptions(store: Store, db: string, rid: string): Promise<Map<string, DataAccessEvent>> {
  const rows = await store.query<ShapeRow>(
    `SELECT toString(shape_id) AS shape, kind, service, job_namespace, job_name, data_subject, purposes, recipient, recipient_external, input_fields
     FROM ${db}.${ReplayTable.shapes} WHERE replay_id = ${rid} AND kind != ''`,
  );
  return new Map(
    rows.map((r) => [
      r.shape,
      eventFromRow({ ...r, event_id: "", at: "0", run_id: "", subjects: [], traceparent: "", pseudonym_key_id: "default" }),
    ]),
  );
}

/** A (shape, epoch) verdict as stored in replay_epochs_v1, with its paths added to `paths`. */
function epochRow(
  e: EpochVerdictRow,
  shapes: ReadonlyMap<string, DataAccessEvent>,
  timeline: LabelTimeline,
  compiled: CompiledPolicy,
  paths: Map<string, PathRow>,
  replayId: string,
) {
  const use = shapes.get(e.shape);
  const violations = [];
  for (const [ruleId, purposes, read] of e.violations) {
    const rule = compiled.rules.get(ruleId);
    if (!rule || !use) throw new Error(`replay verdict names ${rule ? `an unknown shape ${e.shape}` : `an unknown rule ${ruleId}`}`);
    const labels: Label[] = [];
    for (const [id, field] of read) {
      const label = timeline.labelAt(field, id);
      if (!label) throw new Error(`replay verdict names label ${id} on ${field}, which the lineage never put there`);
      labels.push(label);
    }
    const verdict = { labels, purposes };
    inStableOrder(verdict, use.purposes);
    const p = describePaths(verdict, use, 8);
    if (!paths.has(p.id)) paths.set(p.id, { path_id: p.id, lineage_path: p.json, path_text: p.text });
    violations.push({
      rule_id: rule.id,
      basis: rule.basis,
      severity: rule.severity,
      mode: rule.mode,
      purposes: verdict.purposes,
      categories: p.categories,
      collected_for: p.collectedFor,
      origins: p.origins,
      label_ids: p.labelIds,
      path_id: p.id,
      reason: describeVerdict(verdict, { kind: use.kind as "USE" | "SHARE", recipient: use.recipient }),
    });
  }
  return { replay_id: replayId, shape_id: e.shape, valid_from: Number(e.valid_from), violations };
}

function labelRow(l: Label) {
  return { label_id: l.id, origin: l.origin, category: l.category, collected_for: l.collectedFor, data_subject: l.dataSubject };
}

async function insertRows(store: Store, table: string, rows: readonly object[], replayId?: string): Promise<void> {
  for (let i = 0; i < rows.length; i += 50_000) {
    const values = rows.slice(i, i + 50_000).map((r) => (replayId ? { replay_id: replayId, ...r } : r));
    await store.insert(table, values);
  }
}

async function dropWorkingData(store: Store, db: string, rid: string): Promise<void> {
  for (const table of [ReplayTable.shapes, ReplayTable.timeline, ReplayTable.epochs]) {
    await store.command(`ALTER TABLE ${db}.${table} DROP PARTITION ${rid}`);
  }
}

function time(ms: number): string {
  return `fromUnixTimestamp64Milli(toInt64(${Math.trunc(ms)}), 'UTC')`;
}

/** Days grouped into chunks of at least `rows` uses; each chunk runs from its first day to the next chunk's (the last to `to`). */
function chunk(days: readonly { day: string; uses: string }[], rows: number, from: number, to: number) {
  const out: { from: number; to: number; uses: number; last: boolean }[] = [];
  let current: { from: number; uses: number } | undefined;
  for (const d of days) {
    const day = Math.max(Number(d.day), from);
    if (current && current.uses >= rows) {
      out.push({ from: current.from, to: day, uses: current.uses, last: false });
      current = undefined;
    }
    current ??= { from: day, uses: 0 };
    current.uses += Number(d.uses);
  }
  if (current) out.push({ from: current.from, to, uses: current.uses, last: true });
  return out;
}

/**
 * The shape of every stored use and share in the window, in two statements: first how many uses
 * each shape has and when (rows with an empty `kind`), then what each shape is, read from its
 * first use (found by the primary key), with those numbers.
 */
function shapesSql(db: string, rid: string, from: number, to: number): [string, string] {
  const window = `kind IN ('USE', 'SHARE') AND occurred_at >= ${time(from)} AND occurred_at < ${time(to)}`;
  const stats = `SELECT shape_id, uses, first_at, last_at FROM ${db}.${ReplayTable.shapes} WHERE replay_id = ${rid} AND kind = ''`;
  return [
    `INSERT INTO ${db}.${ReplayTable.shapes} (replay_id, shape_id, uses, first_at, last_at)
SELECT ${rid}, use_shape, count(), min(occurred_at), max(occurred_at) FROM ${db}.${Table.events} WHERE ${window} GROUP BY use_shape`,
    `INSERT INTO ${db}.${ReplayTable.shapes}
SELECT ${rid}, e.use_shape, e.kind, e.service, e.job_namespace, e.job_name, e.data_subject, e.purposes, e.recipient, e.recipient_external,
       e.input_fields, s.uses, s.first_at, s.last_at
FROM
(
    SELECT use_shape, kind, service, job_namespace, job_name, data_subject, purposes, recipient, recipient_external, input_fields
    FROM ${db}.${Table.events}
    WHERE ${window} AND occurred_at IN (SELECT first_at FROM (${stats})) AND (use_shape, occurred_at) IN (SELECT shape_id, first_at FROM (${stats}))
    LIMIT 1 BY use_shape
) AS e
INNER JOIN (${stats}) AS s ON s.shape_id = e.use_shape`,
  ];
}

/**
 * The compiled policy over the shapes and the timeline: per shape and per epoch (each time the
 * lineage of a dataset it reads changed), the rules broken, by which purposes, with which labels.
 * A use reads, of each dataset a COLLECT or DERIVE has described by then: the fields it names and
 * the whole-dataset labels; all of it when it names no field or a field the lineage never named.
 */
function verdictSql(db: string, rid: string, compiled: CompiledPolicy): string {
  const c = CompiledColumns;
  return `WITH
sel AS
(
    SELECT shape_id, dataset, arrayFilter(f -> f != '*', groupArray(field)) AS fields
    FROM
    (
        SELECT shape_id,
               substring(f, 1, length(f) - position(reverse(f), '#')) AS dataset,
               substring(f, length(f) - position(reverse(f), '#') + 2) AS field
        FROM ${db}.${ReplayTable.shapes} ARRAY JOIN input_fields AS f
        WHERE replay_id = ${rid} AND kind != ''
    )
    GROUP BY shape_id, dataset
),
timeline AS (SELECT * FROM ${db}.${ReplayTable.timeline} WHERE replay_id = ${rid}),
epochs AS
(
    SELECT sel.shape_id AS shape_id, arrayJoin(arrayDistinct(arrayPushFront(groupArray(t.at), toDateTime64(0, 3, 'UTC')))) AS valid_from
    FROM sel INNER JOIN timeline AS t ON t.dataset = sel.dataset
    GROUP BY sel.shape_id
),
reads AS
(
    SELECT e.shape_id AS shape_id, e.valid_from AS valid_from, s.dataset AS dataset, any(s.fields) AS fields,
           countIf(t.what = 'described') > 0 AS described,
           groupUniqArrayIf(t.field, t.what = 'field') AS known,
           groupArrayIf((t.label_id, t.field, t.category, t.collected_for, t.data_subject), t.what = 'label') AS labels
    FROM epochs AS e
    INNER JOIN sel AS s ON s.shape_id = e.shape_id
    INNER JOIN timeline AS t ON t.dataset = s.dataset
    WHERE t.at <= e.valid_from
    GROUP BY e.shape_id, e.valid_from, s.dataset
),
labelled AS
(
    SELECT shape_id, valid_from, l.1 AS label_id, min(concat(dataset, '#', l.2)) AS read_on,
           any(l.3) AS ${c.category}, any(l.4) AS ${c.collectedFor}, any(l.5) AS ${c.labelSubject}
    FROM reads
    ARRAY JOIN arrayFilter(l -> described AND (empty(fields) OR NOT hasAll(known, fields) OR has(fields, l.2) OR l.2 = '*'), labels) AS l
    GROUP BY shape_id, valid_from, label_id
),
broken AS
(
    SELECT shape_id, valid_from, rule_id, groupUniqArray(${c.purpose}) AS purposes, groupUniqArray((label_id, read_on)) AS labels
    FROM
    (
        SELECT l.shape_id AS shape_id, l.valid_from AS valid_from, l.label_id AS label_id, l.read_on AS read_on,
               l.${c.category} AS ${c.category}, l.${c.collectedFor} AS ${c.collectedFor}, l.${c.labelSubject} AS ${c.labelSubject},
               s.kind AS ${c.kind}, s.service AS ${c.service}, s.data_subject AS ${c.useSubject},
               s.recipient AS ${c.recipient}, s.recipient_external AS ${c.recipientExternal}, arrayJoin(s.purposes) AS ${c.purpose}
        FROM labelled AS l
        INNER JOIN (SELECT * FROM ${db}.${ReplayTable.shapes} WHERE replay_id = ${rid} AND kind != '') AS s ON s.shape_id = l.shape_id
    )
    ARRAY JOIN
  ${compiled.ruleIds}
    AS rule_id
    GROUP BY shape_id, valid_from, rule_id
)
SELECT toString(e.shape_id) AS shape, toString(toUnixTimestamp64Milli(e.valid_from)) AS valid_from,
       arraySort(x -> x.1, groupArrayIf((b.rule_id, b.purposes, b.labels), b.rule_id != '')) AS violations
FROM epochs AS e
LEFT JOIN broken AS b ON b.shape_id = e.shape_id AND b.valid_from = e.valid_from
GROUP BY e.shape_id, e.valid_from
ORDER BY shape, valid_from`;
}

/** The violations of the uses in [from, to): each use joined to its shape's verdict at its time. */
function violationSelect(db: string, rid: string, from: string, to: string): string {
  return `SELECT concat(e.event_id, ':', x.rule_id) AS violation_id, e.event_id AS event_id, x.rule_id AS rule_id, x.basis AS basis,
       x.severity AS severity, x.mode AS mode, e.kind AS kind, e.occurred_at AS occurred_at, e.service AS service,
       e.job_namespace AS job_namespace, e.job_name AS job_name, e.run_id AS run_id,
       arrayDistinct(arrayMap(f -> substring(f, 1, length(f) - position(reverse(f), '#')), e.input_fields)) AS datasets,
       x.purposes AS purposes, x.categories AS categories, x.collected_for AS collected_for, x.origins AS origins,
       x.label_ids AS label_ids, x.path_id AS path_id, e.subjects AS subjects, e.data_subject AS data_subject,
       e.recipient AS recipient, e.recipient_external AS recipient_external, substring(e.traceparent, 4, 32) AS trace_id,
       0 AS late_lineage, x.reason AS reason, 1 AS retroactive
FROM
(
    SELECT event_id, use_shape, kind, occurred_at, service, job_namespace, job_name, run_id, input_fields, subjects,
           data_subject, recipient, recipient_external, traceparent
    FROM ${db}.${Table.events}
    WHERE kind IN ('USE', 'SHARE') AND occurred_at >= ${from} AND occurred_at < ${to}
      AND use_shape IN (SELECT shape_id FROM ${db}.${ReplayTable.epochs} WHERE replay_id = ${rid} AND notEmpty(violations))
) AS e
ASOF INNER JOIN (SELECT shape_id, valid_from, violations FROM ${db}.${ReplayTable.epochs} WHERE replay_id = ${rid}) AS v
    ON e.use_shape = v.shape_id AND e.occurred_at >= v.valid_from
ARRAY JOIN v.violations AS x`;
}

function violationSql(db: string, rid: string, from: string, to: string): string {
  // The materialized views over violations_v1 (subjects, daily aggregates) run side by side.
  return `INSERT INTO ${db}.${Table.violations}
    (violation_id, event_id, rule_id, basis, severity, mode, kind, occurred_at, service, job_namespace, job_name, run_id, datasets,
     purposes, categories, collected_for, origins, label_ids, path_id, subjects, data_subject, recipient, recipient_external,
     trace_id, late_lineage, reason, retroactive)
${violationSelect(db, rid, from, to)}
SETTINGS parallel_view_processing = 1`;
}
