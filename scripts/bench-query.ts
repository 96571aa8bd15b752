// npm run bench:query: the affected-count question at scale, through the daily aggregate views
// (exact and approximate) next to the same question over the raw (violation, subject) rows, and
// the replay throughput, in one run. The rows are generated inside ClickHouse.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createEventCodec, loadEventSchemas } from "../services/codec/index.ts";
import { loadFideslangTaxonomy } from "../services/taxonomy/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy } from "../services/rules/index.ts";
import { createProcessor } from "../services/processor/index.ts";
import { fastAffectedCount, openStore, Table } from "../services/store/index.ts";
import { replayRules } from "../services/replay/index.ts";
import { createProgress } from "../services/cli/progress.ts";

const { values } = parseArgs({
  options: { rows: { type: "string", default: "100000000" }, replay: { type: "string", default: "1000000" } },
});
const rows = Number(values.rows);
const replayRows = Number(values.replay);
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
  await store.client.command({
    query: `INSERT INTO ${db}.${Table.violationSubjects} (rule_id, subject_id, occurred_at, violation_id, event_id, categories, service, mode)
      SELECT ['${RULE}', 'purpose-limitation', 'r3', 'r4', 'r5'][1 + (number % 5)],
             lower(concat(hex(reinterpretAsFixedString(cityHash64(number % 20000000))), hex(reinterpretAsFixedString(cityHash64(number % 20000000, 1))))),
             toDateTime64('2019-01-01 00:00:00', 3, 'UTC') + toIntervalSecond((number * 7919) % (300 * 86400)),
             concat('v', toString(intDiv(number, 100))), concat('e', toString(intDiv(number, 100))),
             [['user.contact.email', 'user.contact.phone_number', 'user.account.username', 'user.unique_id'][1 + (number % 4)]],
             concat('service-', toString(number % 10)), 'enforce'
      FROM numbers(${start}, ${n})`,
  });
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

// 2. Replay: M stored uses of 2FA phone numbers for advertising, one COLLECT as their lineage.
const taxonomy = loadFideslangTaxonomy();
const policy = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);
const codec = createEventCodec(loadEventSchemas());
const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
await processor.processEvents([
  {
    source: "bench",
    event: {
      eventId: "bench-collect",
      kind: "COLLECT",
      occurredAt: Date.parse("2019-01-01T00:00:00Z"),
      service: "auth-service",
      job: { namespace: "web", name: "2fa-enrolment" },
      runId: "r",
      inputs: [],
      outputs: [
        {
          namespace: "warehouse",
          name: "security.two_factor",
          fields: [{ name: "phone_number", categories: ["user.contact.phone_number"] }],
        },
      ],
      transform: "OTHER",
      fieldLineage: [],
      masking: "NONE",
      purposes: ["essential.service.security"],
      dataSubject: "customer",
      subjects: [],
      recipient: null,
      traceparent: null,
      pseudonymKeyId: "default",
      attributes: {},
    },
  },
]);
await store.client.command({
  query: `INSERT INTO ${db}.${Table.events} (event_id, kind, occurred_at, service, job_namespace, job_name, run_id, input_fields, purposes, data_subject, subjects, verdict, schema_fingerprint, schema_version)
    SELECT concat('u', toString(number)), 'USE', toDateTime64('2019-01-02 00:00:00', 3, 'UTC') + toIntervalSecond(number % (290 * 86400)),
           'partner-audiences', 'ads', 'partner-audiences.match', 'r', ['warehouse/security.two_factor#phone_number'],
           ['marketing.advertising.third_party.targeted'], 'customer', [lower(concat(hex(reinterpretAsFixedString(cityHash64(number))), hex(reinterpretAsFixedString(cityHash64(number, 1)))))], 'ok', 'bench', 2
    FROM numbers(${replayRows})`,
});
const replayStarted = performance.now();
const replayResult = await replayRules(store, { policy, rulesText: `bench ${Date.now()}`, taxonomy, pageSize: 50_000 });
const replaySeconds = (performance.now() - replayStarted) / 1000;

await store.close();
rmSync(dir, { recursive: true, force: true });

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
console.log(
  `\naffected-count question over ${fmt(rows)} (violation, subject) rows (generated in ${fillSeconds.toFixed(0)} s), rule ${RULE}, ${window.from} to ${window.to}`,
);
console.log(`path                                  median ms   subjects`);
console.log(`daily views, exact (uniqExactMerge)   ${exact.ms.toFixed(1).padStart(9)}   ${fmt(exact.value as number)}`);
console.log(`daily views, approximate (uniqMerge)  ${viewsOnlyApprox.ms.toFixed(1).padStart(9)}   ${fmt(viewsOnlyApprox.value as number)}`);
console.log(`both from the views (one query)       ${approx.ms.toFixed(1).padStart(9)}`);
console.log(
  `raw rows, exact (uniqExact)           ${raw.ms.toFixed(1).padStart(9)}   ${fmt(raw.value as number)}   (${(raw.ms / exact.ms).toFixed(1)}x the exact view)`,
);
console.log(
  `replay of the default rules over ${fmt(replayResult.events)} stored uses: ${replaySeconds.toFixed(1)} s, ${fmt(replayResult.events / replaySeconds)} rows/s, ${fmt(replayResult.violations)} violations written`,
);
