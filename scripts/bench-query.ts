// npm run bench:query: the affected-count question at scale, through the daily aggregate views
// (exact and approximate) next to the same question over the raw (violation, subject) rows; the
// exact per-subject count from bitmaps of subject ordinals (issue 9) next to the raw scan of the
// same pairs; and the replay throughput, in one run. The rows are generated inside ClickHouse.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { exactCount, fastAffectedCount, openStore, rollUpExactCounts, ROLLUP_HOURS, Table, windowPieces } from "../services/store/index.ts";
import { benchReplay } from "./bench-replay.ts";
import { createProgress } from "../services/cli/progress.ts";

const { values } = parseArgs({
  options: {
    rows: { type: "string", default: "100000000" },
    // Replay (issue 10): the largest number of stored uses replayed in SQL, and the number both replays run over.
    replay: { type: "string", default: "100000000" },
    "replay-stream": { type: "string", default: "10000000" },
    // The exact per-subject count (issue 9): (use, subject) pairs, subjects, holdings rows, subjects per use, days.
    "exact-pairs": { type: "string", default: "100000000" },
    "exact-subjects": { type: "string", default: "20000000" },
    "exact-holdings": { type: "string", default: "20000000" },
    "exact-per-use": { type: "string", default: "500" },
    "exact-days": { type: "string", default: "300" },
  },
});
const rows = Number(values.rows);
const replayRows = Number(values.replay);
const replayStreamRows = Number(values["replay-stream"]);
const exactPairs = Number(values["exact-pairs"]);
const exactSubjects = Number(values["exact-subjects"]);
const exactHoldings = Number(values["exact-holdings"]);
const perUse = Number(values["exact-per-use"]);
const exactDays = Number(values["exact-days"]);
const dir = mkdtempSync(join(process.env["BENCH_DIR"] ?? tmpdir(), "lineage-bench-query-"));
const store = await openStore({ path: dir, database: "bq" });
await store.migrate();
const db = store.database;
const RULE = "security-contact-not-for-marketing";

// 1. N (violation, subject) rows: 5 rules, 20M distinct subjects, 300 days of 2019, 4 categories, 10 services.
const chunk = 10_000_000;
const progress = createProgress("rows", rows, process.stderr);
const fillStarted = performance.now();
for (let start = 0; start < rows; start += chunk) {
  const n = Math.min(chunk, rows - start);
  await store.command(
    `INSERT INTO ${db}.${Table.violationSubjects} (rule_id, subject_id, occurred_at, violation_id, event_id, categories, service, mode)
      SELECT ['${RULE}', 'purpose-limitation', 'r3', 'r4', 'r5'][1 + (number % 5)],
             lower(concat(hex(reinterpretAsFixedString(cityHash64(number % 20000000))), hex(reinterpretAsFixedString(cityHash64(number % 20000000, 1))))),
             toDateTime64('2019-01-01 00:00:00', 3, 'UTC') + toIntervalSecond((number * 7919) % (300 * 86400)),
             concat('v', toString(intDiv(number, 100))), concat('e', toString(intDiv(number, 100))),
             [['user.contact.email', 'user.contact.phone_number', 'user.account.username', 'user.unique_id'][1 + (number % 4)]],
             concat('service-', toString(number % 10)), 'enforce'
      FROM numbers(${start}, ${n})`,
  );
  progress.update(start + n);
}
progress.finish();
const fillSeconds = (performance.now() - fillStarted) / 1000;

async function time(fn: () => Promise<unknown>, runs = 5): Promise<{ ms: number; value: unknown }> {
  const samples: number[] = [];
  let value: unknown;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    value = await fn();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return { ms: samples[Math.floor(samples.length / 2)] as number, value };
}

const window = { from: "2019-03-01", to: "2019-06-01" };
const exact = await time(async () => (await fastAffectedCount(store, { ruleId: RULE, ...window })).exact);
const approx = await time(async () => (await fastAffectedCount(store, { ruleId: RULE, ...window })).approximate);
const viewsOnlyApprox = await time(async () =>
  Number(
    (
      await store.query<{ n: string }>(
        `SELECT uniqMerge(subjects) AS n FROM ${db}.affected_daily_v1 WHERE rule_id = {r:String} AND day >= '2019-03-01' AND day < '2019-06-01'`,
        { r: RULE },
      )
    )[0]?.n,
  ),
);
const raw = await time(
  async () =>
    Number(
      (
        await store.query<{ n: string }>(
          `SELECT uniqExact(subject_id) AS n FROM ${db}.${Table.violationSubjects}
           WHERE rule_id = {r:String} AND occurred_at >= '2019-03-01' AND occurred_at < '2019-06-01'`,
          { r: RULE },
        )
      )[0]?.n,
    ),
  3,
);

// 2. The exact per-subject count (issue 9) at P (use, subject) pairs of one rule: K subjects per
// use, S subjects, D days from 2019-01-01, 2 categories (by use), 1 use in 50 an external share.
// Written as refreshProvenance would leave a snapshot: dense ordinals, a bitmap per (use,
// category), the rollups (by the store's own rollUpExactCounts), H holdings rows (not read by
// the count: there for the size); and the same pairs as raw (violation, subject) rows.
const EXACT_RULE = "bench-exact";
const VERSION = 1;
const uses = Math.ceil(exactPairs / perUse);
const subjectHex = (k: string) =>
  `lower(concat(hex(reinterpretAsFixedString(cityHash64(${k}))), hex(reinterpretAsFixedString(cityHash64(${k}, 1)))))`;
// Pair n: use intDiv(n, K), subject cityHash64(n, 2) % S (ordinal + 1); use u at a second of the D days.
const pairColumns = `intDiv(number, ${perUse}) AS u, cityHash64(number, 2) % ${exactSubjects} AS k,
  toInt64(${Date.UTC(2019, 0, 1)}) + toInt64((u * 7919) % (${exactDays} * 86400)) * 1000 + toInt64(u % 1000) AS at,
  ['user.contact.phone_number', 'user.contact.email'][1 + (u % 2)] AS category`;
const exactTimes: Record<string, number> = {};
async function timed(label: string, total: number, step: number, fill: (start: number, n: number) => Promise<void>): Promise<void> {
  const started = performance.now();
  const bar = createProgress(label, total, process.stderr);
  for (let start = 0; start < total; start += step) {
    const n = Math.min(step, total - start);
    await fill(start, n);
    bar.update(start + n);
  }
  bar.finish();
  exactTimes[label] = (performance.now() - started) / 1000;
}
const command = (query: string): Promise<void> => store.command(query);
if (exactPairs > 0) {
  await timed("ordinals", exactSubjects, chunk, (start, n) =>
    command(`INSERT INTO ${db}.${Table.subjectOrdinals} (version, subject, ordinal)
             SELECT ${VERSION}, ${subjectHex("number")}, toUInt32(number + 1) FROM numbers(${start}, ${n})`),
  );
  await timed("holdings", exactHoldings, chunk, (start, n) =>
    command(`INSERT INTO ${db}.${Table.holdings} (version, variant, subject, field, label_key, category, declaration, evidence, valid_from, valid_to)
             SELECT ${VERSION}, 0, ${subjectHex(`number % ${exactSubjects}`)},
                    ['warehouse/security.two_factor#phone_number', 'warehouse/profile.contact#email'][1 + intDiv(number, ${exactSubjects}) % 2],
                    'warehouse/security.two_factor#phone_number|user.contact.phone_number|essential.service.security|customer',
                    'user.contact.phone_number', 0, 1, ${Date.UTC(2019, 0, 1)} - toInt64(number % 86400000), 9007199254740991
             FROM numbers(${start}, ${n})`),
  );
  // Whole uses per insert.
  const pairStep = Math.max(perUse, Math.floor(chunk / perUse) * perUse);
  await timed("use bitmaps", exactPairs, pairStep, (start, n) =>
    command(`INSERT INTO ${db}.${Table.exactUses} (version, rule_id, occurred_at, category, event_id, external, subjects)
             SELECT ${VERSION}, '${EXACT_RULE}', any(at), any(category), concat('x', toString(u)), toUInt8(u % 50 = 0), groupBitmapState(toUInt32(k + 1))
             FROM (SELECT ${pairColumns} FROM numbers(${start}, ${n})) GROUP BY u`),
  );
  await timed("rollups", 1, 1, () => rollUpExactCounts(store, VERSION));
  await command(
    `INSERT INTO ${db}.${Table.exactVersions} (version, subjects, uses, elapsed_ms) VALUES (${VERSION}, ${exactSubjects}, ${uses}, 0)`,
  );
  await store.commitProvenance(VERSION, {
    holdings: exactHoldings,
    reads: uses,
    subjects: exactSubjects,
    source_events: 0,
    source_ingested: "",
    policy: "bench",
    elapsed_ms: 0,
  });
  await timed("raw rows", exactPairs, chunk, (start, n) =>
    command(`INSERT INTO ${db}.${Table.violationSubjects} (rule_id, subject_id, occurred_at, violation_id, event_id, categories, service, mode)
             SELECT '${EXACT_RULE}', ${subjectHex("k")}, fromUnixTimestamp64Milli(at, 'UTC'), concat('x', toString(u)), concat('x', toString(u)),
                    [category], 'partner-audiences', 'enforce'
             FROM (SELECT ${pairColumns} FROM numbers(${start}, ${n}))`),
  );
  // Background merges of the inserts done before the queries are timed.
  await command(`OPTIMIZE TABLE ${db}.${Table.exactUses} FINAL`);
  await command(`OPTIMIZE TABLE ${db}.${Table.exactRollups} FINAL`);
}
const day2019 = (m: number, d: number, h = 0, min = 0) => Date.UTC(2019, m - 1, d, h, min);
const exactWindows = [
  { label: `all ${exactDays} days`, from: undefined, to: undefined },
  { label: "2019-03-01 to 2019-06-01", from: day2019(3, 1), to: day2019(6, 1) },
  { label: "2019-03-01 12:30 to 2019-06-01 06:30", from: day2019(3, 1, 12, 30), to: day2019(6, 1, 6, 30) },
];
const exactResults: { label: string; exact: { ms: number; value: unknown }; raw: { ms: number; value: unknown }; bitmaps: string }[] = [];
if (exactPairs > 0) {
  for (const w of exactWindows) {
    const window = { ...(w.from !== undefined ? { from: w.from } : {}), ...(w.to !== undefined ? { to: w.to } : {}) };
    await exactCount(store, EXACT_RULE, window); // warm
    const exactRun = await time(() => exactCount(store, EXACT_RULE, window), 9);
    const rawRun = await time(
      async () =>
        Number(
          (
            await store.query<{ n: string }>(
              `SELECT uniqExact(subject_id) AS n FROM ${db}.${Table.violationSubjects}
               WHERE rule_id = {r:String} AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`,
              { r: EXACT_RULE, from: w.from ?? 0, to: w.to ?? Date.UTC(2100, 0, 1) },
            )
          )[0]?.n,
        ),
      3,
    );
    // What the count merged: bitmaps per rollup level and of the partial hours' uses.
    const pieces = windowPieces(w.from ?? Number.MIN_SAFE_INTEGER, w.to ?? Number.MAX_SAFE_INTEGER);
    const merged: string[] = [];
    for (const hours of ROLLUP_HOURS) {
      const ranges = pieces.blocks.filter((b) => b.hours === hours);
      if (ranges.length === 0) continue;
      const [c] = await store.query<{ n: string }>(
        `SELECT count() AS n FROM ${db}.${Table.exactRollups} WHERE version = ${VERSION} AND rule_id = '${EXACT_RULE}' AND hours = ${hours}
           AND (${ranges.map((r) => `(start >= ${r.from} AND start < ${r.to})`).join(" OR ")})`,
      );
      merged.push(`${c?.n ?? 0} of ${hours === 1 ? "1 h" : `${hours / 24} d`}`);
    }
    if (pieces.uses.length > 0) {
      const [c] = await store.query<{ n: string }>(
        `SELECT count() AS n FROM ${db}.${Table.exactUses} WHERE version = ${VERSION} AND rule_id = '${EXACT_RULE}'
           AND (${pieces.uses.map((r) => `(occurred_at >= ${r.from} AND occurred_at < ${r.to})`).join(" OR ")})`,
      );
      merged.push(`${c?.n ?? 0} uses`);
    }
    exactResults.push({ label: w.label, exact: exactRun, raw: rawRun, bitmaps: merged.join(" + ") });
  }
}
const [exactSizes] =
  exactPairs > 0
    ? await store.query<{ raw: string; holdings: string; ordinals: string; uses: string; rollups: string; bitmap_bytes: string }>(
        `SELECT (SELECT count() FROM ${db}.${Table.violationSubjects} WHERE rule_id = '${EXACT_RULE}') AS raw,
                (SELECT count() FROM ${db}.${Table.holdings} WHERE version = ${VERSION}) AS holdings,
                (SELECT count() FROM ${db}.${Table.subjectOrdinals} WHERE version = ${VERSION}) AS ordinals,
                (SELECT count() FROM ${db}.${Table.exactUses} WHERE version = ${VERSION}) AS uses,
                (SELECT count() FROM ${db}.${Table.exactRollups} WHERE version = ${VERSION}) AS rollups,
                (SELECT sum(data_compressed_bytes) FROM system.parts WHERE database = '${db}' AND active
                   AND table IN ('${Table.exactUses}', '${Table.exactRollups}')) AS bitmap_bytes`,
      )
    : [];

// 3. Replay (issue 10): the rules replayed in ClickHouse over 10M and 100M stored uses, and the
// stream replay over the same 10M, in a database of their own (scripts/bench-replay.ts).
const replayBench =
  replayRows > 0
    ? await benchReplay(dir, { stream: replayStreamRows, sql: [replayStreamRows, replayRows].filter((n) => n > 0) })
    : undefined;

await store.close();
rmSync(dir, { recursive: true, force: true });

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
if (rows > 0) {
  console.log(
    `\naffected-count question over ${fmt(rows)} (violation, subject) rows (generated in ${fillSeconds.toFixed(0)} s), rule ${RULE}, ${window.from} to ${window.to}`,
  );
  console.log(`path                                  median ms   subjects`);
  console.log(`daily views, exact (uniqExactMerge)   ${exact.ms.toFixed(1).padStart(9)}   ${fmt(exact.value as number)}`);
  console.log(
    `daily views, approximate (uniqMerge)  ${viewsOnlyApprox.ms.toFixed(1).padStart(9)}   ${fmt(viewsOnlyApprox.value as number)}`,
  );
  console.log(`both from the views (one query)       ${approx.ms.toFixed(1).padStart(9)}`);
  console.log(
    `raw rows, exact (uniqExact)           ${raw.ms.toFixed(1).padStart(9)}   ${fmt(raw.value as number)}   (${(raw.ms / exact.ms).toFixed(1)}x the exact view)`,
  );
}
if (exactPairs > 0 && exactSizes) {
  console.log(
    `\nexact per-subject count (issue 9), rule ${EXACT_RULE}: ${fmt(exactPairs)} (use, subject) pairs, ${fmt(uses)} uses of ${fmt(perUse)} subjects, ${fmt(exactSubjects)} subjects, ${exactDays} days, 2 categories`,
  );
  console.log(
    `stored: ${fmt(Number(exactSizes.raw))} raw (violation, subject) rows, ${fmt(Number(exactSizes.holdings))} holdings, ${fmt(Number(exactSizes.ordinals))} ordinals, ${fmt(Number(exactSizes.uses))} use bitmaps, ${fmt(Number(exactSizes.rollups))} rollup bitmaps (${(Number(exactSizes.bitmap_bytes) / 2 ** 20).toFixed(0)} MiB compressed)`,
  );
  console.log(
    `generated in: ${Object.entries(exactTimes)
      .map(([k, v]) => `${k} ${v.toFixed(0)} s`)
      .join(", ")}`,
  );
  console.log(
    `window                                 bitmaps (exactCount) ms   raw scan (uniqExact) ms   users (bitmaps / raw)     bitmaps merged`,
  );
  for (const r of exactResults) {
    const e = r.exact.value as { users: number; records: number };
    console.log(
      `${r.label.padEnd(38)} ${r.exact.ms.toFixed(1).padStart(23)}   ${r.raw.ms.toFixed(1).padStart(23)}   ${`${fmt(e.users)} / ${fmt(r.raw.value as number)}`.padEnd(24)}  ${r.bitmaps}${e.users === r.raw.value ? "" : "   MISMATCH"}`,
    );
  }
}
if (replayBench) {
  console.log(
    `\nreplay of the default rules (issue 10), store generated in ${replayBench.generatedSeconds.map((x) => `${x.toFixed(0)} s`).join(" + ")}, background merges of the new rows waited for ${replayBench.mergeSeconds.map((x) => `${x.toFixed(0)} s`).join(" + ")}`,
  );
  console.log(`engine                        stored uses   seconds       uses/s   violations   shapes   epochs   stages (s)`);
  for (const r of replayBench.sql) {
    console.log(
      `${"SQL (replayRulesSql)".padEnd(28)} ${fmt(r.uses).padStart(12)} ${r.seconds.toFixed(1).padStart(9)} ${fmt(r.uses / r.seconds).padStart(12)} ${fmt(r.result.violations).padStart(12)} ${fmt(r.result.shapes).padStart(8)} ${fmt(r.result.epochs).padStart(8)}   ${Object.entries(
        r.stages,
      )
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(", ")}`,
    );
  }
  const s = replayBench.stream;
  if (s) {
    const same = replayBench.sql.find((r) => r.uses === s.uses);
    console.log(
      `${"stream (replayRules)".padEnd(28)} ${fmt(s.uses).padStart(12)} ${s.seconds.toFixed(1).padStart(9)} ${fmt(s.uses / s.seconds).padStart(12)} ${fmt(s.violations).padStart(12)}`,
    );
    if (same)
      console.log(
        `at ${fmt(s.uses)} uses: SQL ${(s.seconds / same.seconds).toFixed(1)}x the stream replay; violations per rule ${s.agrees ? "equal" : "DIFFER"}`,
      );
  }
}
console.log(`peak RSS of the process (Node and the embedded engine): ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(1)} GiB`);
