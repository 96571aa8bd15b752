// The replay part of `npm run bench:query` (issue 10): a rule replayed over M stored uses in
// ClickHouse (replayRulesSql) at 10M and 100M, beside the stream replay (replayRules) over the
// same 10M in the same run. The store is a small warehouse: sign-up and two-factor contact data,
// the profile sync and hashed matching keys (from April, when the two-factor numbers start to
// flow into them), aggregates, orders; uses by 97 services in 13 jobs each, about 1 in 64 reading
// the matching keys for targeted advertising. The uses are generated inside ClickHouse.
import { createEventCodec, loadEventSchemas, type DataAccessEvent } from "../services/codec/index.ts";
import { createEventBuilder, createPseudonymizer, type EmitInput } from "../services/emitter/index.ts";
import { loadFideslangTaxonomy } from "../services/taxonomy/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy } from "../services/rules/index.ts";
import { readFileSync } from "node:fs";
import { createProcessor } from "../services/processor/index.ts";
import { openStore, Table, type Store } from "../services/store/index.ts";
import { replayRules, replayRulesSql, type SqlReplayResult } from "../services/replay/index.ts";
import { createProgress } from "../services/cli/progress.ts";

export interface ReplayBenchResult {
  sql: { uses: number; seconds: number; result: SqlReplayResult; stages: Record<string, number> }[];
  stream?: { uses: number; seconds: number; violations: number; agrees: boolean };
  generatedSeconds: number[];
  /** Seconds waited after generating for the engine's background merges of the new rows to finish. */
  mergeSeconds: number[];
}

/**
 * Waits until the engine merges no parts of the database: a warehouse's history was not all
 * written a second ago, and merging 90M fresh rows beside the replay would time the merges.
 */
async function settle(store: Store, limitSeconds = 900): Promise<number> {
  const t = performance.now();
  let quiet = 0;
  while (quiet < 3 && performance.now() - t < limitSeconds * 1000) {
    const [m] = await store.query<{ n: string }>(`SELECT count() AS n FROM system.merges WHERE database = {db:String}`, {
      db: store.database,
    });
    quiet = Number(m?.n) === 0 ? quiet + 1 : 0;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return (performance.now() - t) / 1000;
}

const W = "warehouse";
const at = (iso: string) => Date.parse(`${iso}T00:00:00Z`);

// The SDK's own builder fills in what a lineage fact leaves out.
const build = createEventBuilder({
  pseudonymize: createPseudonymizer("bench-replay-".repeat(3)),
  pseudonymKeyId: "default",
  service: "bench",
});
const fact = (over: Omit<EmitInput, "job" | "runId" | "dataSubject"> & { eventId: string }): DataAccessEvent =>
  build({ job: { namespace: "bench", name: over.eventId }, runId: "r", dataSubject: "customer", ...over });
const out = (name: string, fields: Record<string, string[]>) => ({
  namespace: W,
  name,
  fields: Object.entries(fields).map(([n, categories]) => ({ name: n, categories })),
});
const f = (name: string, field: string) => ({ namespace: W, name, field });

/** The warehouse's lineage: collections, copies, hashes and aggregates, some of it starting later in the year. */
export function lineage(): DataAccessEvent[] {
  return [
    fact({
      eventId: "signup",
      kind: "COLLECT",
      occurredAt: at("2019-01-01"),
      outputs: [out("accounts.users", { email: ["user.contact.email"], phone_number: ["user.contact.phone_number"], name: ["user.name"] })],
      purposes: ["essential.service"],
    }),
    fact({
      eventId: "two-factor",
      kind: "COLLECT",
      occurredAt: at("2019-01-01"),
      outputs: [out("security.two_factor", { phone_number: ["user.contact.phone_number"], email: ["user.contact.email"] })],
      purposes: ["essential.service.security", "essential.service.authentication"],
    }),
    fact({
      eventId: "orders",
      kind: "COLLECT",
      occurredAt: at("2019-01-01"),
      outputs: [out("sales.orders", { amount: ["user.financial"], sku: ["system.operations"] })],
      purposes: ["essential.service", "analytics.reporting"],
    }),
    fact({
      eventId: "profile-sync",
      kind: "DERIVE",
      occurredAt: at("2019-01-02"),
      inputs: [out("accounts.users", {})],
      fieldLineage: [{ output: f("profile.contact_points", "phone"), inputs: [f("accounts.users", "phone_number")], transform: "COPY" }],
      transform: "COPY",
    }),
    // From April the two-factor numbers flow into the profile as well: the 2019 misuse begins.
    fact({
      eventId: "profile-sync-2fa",
      kind: "DERIVE",
      occurredAt: at("2019-04-15"),
      inputs: [out("security.two_factor", {})],
      fieldLineage: [
        { output: f("profile.contact_points", "phone"), inputs: [f("security.two_factor", "phone_number")], transform: "COPY" },
      ],
      transform: "COPY",
    }),
    fact({
      eventId: "matching-keys",
      kind: "DERIVE",
      occurredAt: at("2019-01-03"),
      inputs: [out("profile.contact_points", {})],
      fieldLineage: [{ output: f("ads.matching_keys", "phone_sha256"), inputs: [f("profile.contact_points", "phone")], transform: "HASH" }],
      transform: "HASH",
    }),
    fact({
      eventId: "daily-revenue",
      kind: "DERIVE",
      occurredAt: at("2019-01-02"),
      inputs: [out("sales.orders", {})],
      outputs: [out("analytics.daily_revenue", { total: [] })],
      transform: "AGGREGATE",
      masking: "ANONYMISED",
    }),
  ];
}

/** What the generated uses read and for what: index 0 is the advertising match. */
const READS = [
  ["warehouse/ads.matching_keys#phone_sha256", "marketing.advertising.third_party.targeted"],
  ["warehouse/accounts.users#email", "essential.service"],
  ["warehouse/sales.orders#amount", "essential.service.payment_processing"],
  ["warehouse/analytics.daily_revenue#total", "analytics.reporting"],
  ["warehouse/security.two_factor#phone_number", "essential.service.security"],
  ["warehouse/profile.contact_points#phone", "essential.service.authentication"],
  ["warehouse/accounts.users#name", "essential.service"],
  ["warehouse/sales.orders#sku", "essential.service.operations"],
] as const;

export async function generate(store: Store, start: number, n: number, onProgress: (done: number) => void): Promise<void> {
  const db = store.database;
  const chunk = 10_000_000;
  const inputs = `[${READS.map(([r]) => `'${r}'`).join(", ")}]`;
  const purposes = `[${READS.map(([, p]) => `'${p}'`).join(", ")}]`;
  // 1 in 64 uses reads READS[0]; the others spread over the rest.
  const pick = `if(number % 64 = 0, 1, 2 + (intDiv(number, 64) % ${READS.length - 1}))`;
  for (let s = start; s < start + n; s += chunk) {
    const m = Math.min(chunk, start + n - s);
    await store.command(
      `INSERT INTO ${db}.${Table.events} (event_id, kind, occurred_at, service, job_namespace, job_name, run_id, input_fields, purposes, data_subject, subjects, recipient, recipient_external, verdict, schema_fingerprint, schema_version)
        SELECT concat('u', toString(number)), if(number % 10 = 7, 'SHARE', 'USE'),
               toDateTime64('2019-01-02 00:00:00', 3, 'UTC') + toIntervalMillisecond((number * 7919) % (290 * 86400000)),
               concat('service-', toString(number % 97)), 'bench', concat('job-', toString(number % 13)), 'r',
               [${inputs}[${pick}]], [${purposes}[${pick}]], 'customer',
               [lower(concat(hex(reinterpretAsFixedString(cityHash64(number % 20000000))), hex(reinterpretAsFixedString(cityHash64(number % 20000000, 1)))))],
               if(number % 10 = 7, if(number % 20 = 7, 'partner', 'internal-bi'), ''), if(number % 20 = 7, 1, 0), 'ok', 'bench', 2
        FROM numbers(${s}, ${m})`,
    );
    onProgress(s + m - start);
  }
}

async function violationsByRule(store: Store): Promise<Map<string, number>> {
  const rows = await store.query<{ rule_id: string; n: string }>(
    `SELECT rule_id, uniqExact(violation_id) AS n FROM ${store.database}.${Table.violations} GROUP BY rule_id`,
  );
  return new Map(rows.map((r) => [r.rule_id, Number(r.n)]));
}

export async function benchReplay(path: string, sizes: { stream: number; sql: number[] }): Promise<ReplayBenchResult> {
  const store = await openStore({ path, database: "bench_replay" });
  await store.migrate();
  const taxonomy = loadFideslangTaxonomy();
  const policy = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);
  const rulesText = readFileSync(DEFAULT_POLICY_PATH, "utf8");
  // The live processor checks nothing: every violation is a replay's.
  const quiet = { ...policy, rules: [], purposeLimitation: { ...policy.purposeLimitation, enabled: false } };
  const processor = createProcessor({ policy: quiet, taxonomy, codec: createEventCodec(loadEventSchemas()) }, { sink: store });
  const processed = await processor.processEvents(lineage().map((event) => ({ event, source: "bench" })));
  if (processed.rejected.length > 0) throw new Error(`bench lineage rejected: ${JSON.stringify(processed.rejected)}`);

  const result: ReplayBenchResult = { sql: [], generatedSeconds: [], mergeSeconds: [] };
  let stored = 0;
  const targets = [...new Set([...sizes.sql, sizes.stream].filter((n) => n > 0))].sort((a, b) => a - b);
  for (const target of targets) {
    const progress = createProgress(`uses to ${target.toLocaleString("en-US")}`, target - stored, process.stderr);
    const g = performance.now();
    await generate(store, stored, target - stored, (d) => progress.update(d));
    progress.finish();
    result.generatedSeconds.push((performance.now() - g) / 1000);
    result.mergeSeconds.push(await settle(store));
    stored = target;

    if (sizes.sql.includes(target)) {
      await store.command(`TRUNCATE TABLE ${store.database}.${Table.violations}`);
      const stages: Record<string, number> = {};
      let stage = "";
      let stageStart = performance.now();
      const bar = createProgress(`sql replay ${target.toLocaleString("en-US")}`, target, process.stderr);
      const t = performance.now();
      const r = await replayRulesSql(store, {
        policy,
        rulesText: `${rulesText}\n# bench ${target} ${Date.now()}`,
        onStage: (s) => {
          if (stage) stages[stage] = (performance.now() - stageStart) / 1000;
          stage = s;
          stageStart = performance.now();
        },
        onProgress: (done) => bar.update(done),
      });
      stages[stage] = (performance.now() - stageStart) / 1000;
      bar.finish();
      result.sql.push({ uses: target, seconds: (performance.now() - t) / 1000, result: r, stages });
    }
    if (target === sizes.stream) {
      const bySql = await violationsByRule(store);
      await store.command(`TRUNCATE TABLE ${store.database}.${Table.violations}`);
      const bar = createProgress(`stream replay ${target.toLocaleString("en-US")}`, target, process.stderr);
      const t = performance.now();
      const r = await replayRules(store, {
        policy,
        taxonomy,
        rulesText: `${rulesText}\n# stream ${Date.now()}`,
        pageSize: 50_000,
        onProgress: (done) => bar.update(done),
      });
      bar.finish();
      const seconds = (performance.now() - t) / 1000;
      const byStream = await violationsByRule(store);
      const agrees = bySql.size > 0 && [...byStream].every(([k, v]) => bySql.get(k) === v) && byStream.size === bySql.size;
      result.stream = { uses: r.events, seconds, violations: [...byStream.values()].reduce((a, b) => a + b, 0), agrees };
    }
  }
  await store.close();
  return result;
}
