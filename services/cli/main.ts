// lineage-audit command line. The only place that reads process.env and argv.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ConfigError, LineageAuditError, StoreError } from "../errors/index.ts";
import { createEventBuilder, createPseudonymizer } from "../emitter/index.ts";
import { defaultScenarioOptions, runDemo, SCENARIO_RULE, expectedEvents } from "../demo/index.ts";
import { affectedAnswer, defaultStoreOptions, fastAffectedCount, openStore, subjectHistory, subjectViolations } from "../store/index.ts";
import { ingestFiles } from "../ingest/index.ts";
import { startAnalystServer, startIngestServer } from "../api/index.ts";
import { startKafkaProcessor, topicsOf } from "../kafka/index.ts";
import { loadFideslangTaxonomy, TaxonomyKind } from "../taxonomy/index.ts";
import { PSEUDONYM_PATTERN, TIME_FORMATS, isWholeDay, parseTime } from "../codec/index.ts";
import {
  checkExposure,
  DEFAULT_BIND_HOST,
  hmacKeyOrEphemeral,
  openAuditor,
  parseConfig,
  requireHmacKey,
  type AppConfig,
} from "./context.ts";
import { createProgress } from "./progress.ts";
import { startTelemetry } from "./telemetry.ts";
import { createLineLogger } from "../telemetry/index.ts";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import { compilePolicy, loadPolicy } from "../rules/index.ts";
import { replayRules, replayRulesSql } from "../replay/index.ts";
import { buildReport, renderHtml, renderJson, renderMarkdown } from "../report/index.ts";
import { createAlertPlanner, createDeliverer, loadAlertingConfig, parseSecret, signWebhook, PAYLOAD_VERSION } from "../alerting/index.ts";
import { formatDryRun, formatSummary, storedTime } from "./format.ts";
import { boundHeapGrowth } from "./heap.ts";

const USAGE = `lineage-audit: an event-streaming data lineage auditor

Usage:
  lineage-audit demo [--users N] [--events-per-user N] [--json] [--quiet]
      Generate the 2019 two-factor-contact misuse, stream it through the auditor into the
      embedded store, and answer: how many users, which data, since when, through which
      systems, shared outside? (uses database "demo", recreated each run)
  lineage-audit ingest FILE... [--json]
      Read Avro object container files or NDJSON (one emit() input per line) into the store.
  lineage-audit affected --rule ID [--from DATE] [--to DATE] [--category KEY] [--json] [--fast]
      Who and what a rule's violations concern, from the store.
  lineage-audit sql "SELECT ..." [--json]
      Run a read-only query against the store: only reads of its database, under fixed limits
      (docs/sql.md, "What analysts may run"); anything else is refused with one line.
  lineage-audit replay --rules FILE [--from DATE] [--to DATE] [--dry-run] [--engine sql|stream] [--json]
      Evaluate new or changed rules over the stored history (retroactive findings; resumable).
      In ClickHouse by default; --dry-run prints the compiled SQL and what it would write.
  lineage-audit report --rule ID [--from DATE] [--to DATE] [--format md|json|html] [-o FILE]
      An incident report shaped like a GDPR Art. 33 notification, with the lineage path and a chart.
  lineage-audit subject ID [--json] [--pseudonymous]
      Everything stored that touched one person's data (ID is pseudonymised with the key first).
  lineage-audit webhooks test URL [--secret whsec_…]
      Send a signed sample alert, so an operator can check a receiver.
  lineage-audit serve [--port N] [--host H]
      Take events over HTTP (POST /v1/events) and, with KAFKA_BROKERS set, from Kafka as a
      member of a consumer group, into the store until stopped.

Environment:
  LINEAGE_AUDIT_DATA       embedded store directory (default .lineage-audit/store)
  LINEAGE_AUDIT_DATABASE   database (default lineage)
  CLICKHOUSE_URL, CLICKHOUSE_USER, CLICKHOUSE_PASSWORD   use a ClickHouse server instead
  LINEAGE_AUDIT_RULES      rules file (default rules/default.yaml)
  LINEAGE_AUDIT_HMAC_KEY   pseudonymisation key, >= 32 bytes (hex/base64/text)
  LINEAGE_AUDIT_PORT, LINEAGE_AUDIT_INGEST_TOKEN   for serve
  LINEAGE_AUDIT_WEBHOOKS   alert subscriptions file for serve (see README)
  LINEAGE_AUDIT_ANALYST_PASSWORD [_USER, _PORT]   serve's read-only ClickHouse HTTP interface
  KAFKA_BROKERS, KAFKA_GROUP_ID, LINEAGE_AUDIT_INSTANCE_ID, KAFKA_TOPIC_EVENTS, KAFKA_TOPIC_DLQ,
  KAFKA_TOPIC_LINEAGE, KAFKA_PARTITIONS, KAFKA_SASL_MECHANISM/USERNAME/PASSWORD, KAFKA_SSL,
  KAFKA_SSL_CA_FILE/CERT_FILE/KEY_FILE   Kafka for serve (see README)
`;

class UsageError extends ConfigError {}

function args(
  argv: string[],
  options: ParseArgsConfig["options"],
  allowPositionals: boolean,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals,
      strict: true,
    });
    return { values: parsed.values, positionals: parsed.positionals };
  } catch (cause) {
    throw new UsageError(`${(cause as Error).message.split("\n")[0]} (see lineage-audit --help)`, { cause });
  }
}

function positiveInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value.replaceAll("_", ""));
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag} must be a positive whole number, not '${value}'`);
  return n;
}

/** A --from/--to flag as an ISO-8601 UTC instant, read by the one time parser (no offset = UTC). */
function dateFlag(value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  const ms = parseTime(value);
  if (ms === undefined) throw new UsageError(`${flag} must be a date or date-time: ${TIME_FORMATS}; not '${value}'`);
  return new Date(ms).toISOString();
}

const out = (text: string) => process.stdout.write(`${text}\n`);

async function demo(argv: string[], config: AppConfig): Promise<number> {
  const { values } = args(
    argv,
    { users: { type: "string" }, "events-per-user": { type: "string" }, json: { type: "boolean" }, quiet: { type: "boolean" } },
    false,
  );
  if (values.help) return (out(USAGE), 0);
  const users = positiveInt(values.users as string | undefined, "--users", defaultScenarioOptions.users);
  const eventsPerUser = positiveInt(
    values["events-per-user"] as string | undefined,
    "--events-per-user",
    defaultScenarioOptions.eventsPerUser,
  );
  if (eventsPerUser < 2) throw new UsageError("--events-per-user must be at least 2 (sign-up, enrolment and matching need them)");
  const database = "demo";
  const quiet = values.quiet === true || values.json === true;
  // A fresh demo database each run, so the answers are this run's alone.
  {
    const store = await openStore({ ...config.store, database });
    try {
      await store.client.command({ query: `DROP DATABASE IF EXISTS ${database} SYNC` });
    } finally {
      await store.close();
    }
  }
  const ctx = await openAuditor(config, { database });
  try {
    const total = expectedEvents({ users, eventsPerUser });
    if (!quiet) {
      process.stderr.write(
        `lineage-audit demo: the 2019 two-factor contact misuse, ${users.toLocaleString("en-US")} users, ~${total.toLocaleString("en-US")} events, January to October 2019\n`,
      );
      process.stderr.write(`store: ${ctx.store.location} (database ${database}); rules: ${ctx.policy.source}\n`);
    }
    const progress = createProgress("events", total, process.stderr, values.json === true);
    const model = refreshProgress(values.json === true);
    let streamed = false;
    const result = await runDemo(
      { ...ctx, hmacKey: hmacKeyOrEphemeral(config) },
      { users, eventsPerUser },
      (done) => progress.update(done),
      (phase, done, all) => {
        if (!streamed) progress.finish(); // the events are all in: the model's own progress follows
        streamed = true;
        model.onProgress(phase, done, all);
      },
    );
    if (!streamed) progress.finish();
    model.finish();
    progress.finish();
    const agrees = Object.values(result.agrees).every(Boolean);
    if (values.json) {
      out(
        JSON.stringify(
          {
            rule: SCENARIO_RULE,
            answers: result.summary,
            groundTruth: result.groundTruth,
            agrees: result.agrees,
            events: result.events,
            elapsedMs: Math.round(result.elapsedMs),
            eventsPerSecond: result.eventsPerSecond,
          },
          null,
          2,
        ),
      );
    } else {
      const rule = ctx.policy.rules.find((r) => r.id === SCENARIO_RULE);
      out("");
      if (rule) out(`${rule.description}`);
      out(
        formatSummary(result.summary, {
          exact: {
            users: result.groundTruth.exact.users,
            records: result.groundTruth.exact.records,
            events: result.groundTruth.exact.violatingEvents,
          },
          fieldLevel: {
            users: result.groundTruth.affectedUsers,
            records: result.groundTruth.affectedRecords,
            events: result.groundTruth.violatingEvents,
          },
        }),
      );
      const x = result.summary.exact;
      const both = x.fieldLevel.users - x.possiblyNotExactly.users;
      const n = (v: number) => v.toLocaleString("en-US");
      out(
        `Exactly affected: ${n(x.exact.users)} users. The field-level reading names ${n(x.fieldLevel.users)}: ${n(x.possiblyNotExactly.users)} of them were not exactly affected, and ${n(x.exact.users - both)} exactly affected users were named by no use (whole-table exports).`,
      );
      out("");
      out(
        `The misuse stopped after the fix of ${defaultScenarioOptions.fixDate}: last exact violation ${storedTime(x.exact.last) ?? "none"} UTC.`,
      );
      out(
        `Processed ${result.events.toLocaleString("en-US")} events in ${(result.elapsedMs / 1000).toFixed(1)} s (${result.eventsPerSecond.toLocaleString("en-US")} events/s); the exact per-person model took ${(result.summary.provenance.refreshedMs / 1000).toFixed(1)} s more.`,
      );
      out(
        `Ask more: lineage-audit affected --rule ${SCENARIO_RULE} --category user.contact.phone_number   (with LINEAGE_AUDIT_DATABASE=demo)`,
      );
      out(
        `          LINEAGE_AUDIT_DATABASE=demo lineage-audit sql "SELECT service, uniqExact(subject_id) FROM violation_subjects_v1 GROUP BY service"`,
      );
    }
    if (!agrees) {
      process.stderr.write(
        `lineage-audit: the store's answers differ from the planted ground truth: ${Object.entries(result.agrees)
          .filter(([, ok]) => !ok)
          .map(([k]) => k)
          .join(", ")}\n`,
      );
      return 1;
    }
    return 0;
  } finally {
    await ctx.close();
  }
}

async function ingest(argv: string[], config: AppConfig): Promise<number> {
  const { values, positionals } = args(argv, { json: { type: "boolean" } }, true);
  if (values.help) return (out(USAGE), 0);
  if (positionals.length === 0) throw new UsageError("ingest needs at least one file (Avro container or NDJSON)");
  const ctx = await openAuditor(config);
  try {
    let builder: ReturnType<typeof createEventBuilder> | undefined;
    const progress = createProgress("records", 0, process.stderr, true);
    const result = await ingestFiles(positionals, {
      processor: ctx.processor,
      codec: ctx.codec,
      buildEvent: () => {
        builder ??= createEventBuilder({ pseudonymize: lazyPseudonymizer(config), pseudonymKeyId: "default" });
        return builder;
      },
      onProgress: (_file, records) => progress.update(records),
      onRejected: (r) => process.stderr.write(`lineage-audit: ${r.source}: ${r.reason} (dead-lettered)\n`),
    });
    if (values.json) out(JSON.stringify(result));
    else
      out(
        `ingested ${result.accepted.toLocaleString("en-US")} of ${result.records.toLocaleString("en-US")} records from ${result.files} file(s): ${result.violations} violations, ${result.rejected} rejected`,
      );
    return result.rejected > 0 ? 1 : 0;
  } finally {
    await ctx.close();
  }
}

/** The key is only needed when a line carries raw identifiers. */
function lazyPseudonymizer(config: AppConfig): (raw: string) => string {
  let p: ((raw: string) => string) | undefined;
  return (raw) => {
    p ??= createPseudonymizer(requireHmacKey(config));
    return p(raw);
  };
}

/**
 * Progress of bringing the exact model up to date (docs/tables.md): on stderr, a bar per phase
 * once it takes a while; nothing when it is already fresh.
 */
function refreshProgress(quiet: boolean): { onProgress: (phase: "read" | "compute", done: number, total: number) => void; finish(): void } {
  const bars = new Map<string, ReturnType<typeof createProgress>>();
  const started = Date.now();
  return {
    onProgress(phase, done, total) {
      if (Date.now() - started < 1000) return; // a quick refresh shows nothing
      let bar = bars.get(phase);
      if (!bar) {
        for (const other of bars.values()) other.finish();
        bar = createProgress(phase === "read" ? "exact model: reading events" : "exact model: subjects", total, process.stderr, quiet);
        bars.set(phase, bar);
      }
      bar.update(done);
    },
    finish() {
      for (const bar of bars.values()) bar.finish();
    },
  };
}

async function affected(argv: string[], config: AppConfig): Promise<number> {
  const { values } = args(
    argv,
    {
      rule: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      category: { type: "string" },
      json: { type: "boolean" },
      fast: { type: "boolean" },
    },
    false,
  );
  if (values.help) return (out(USAGE), 0);
  const rule = values.rule as string | undefined;
  if (!rule) throw new UsageError("affected needs --rule ID (e.g. --rule security-contact-not-for-marketing)");
  const from = dateFlag(values.from as string | undefined, "--from");
  const to = dateFlag(values.to as string | undefined, "--to");
  const category = values.category as string | undefined;
  const ctx = await openAuditor(config);
  try {
    const known = [ctx.policy.purposeLimitation.id, ...ctx.policy.rules.map((r) => r.id)];
    if (!known.includes(rule)) throw new UsageError(`no rule '${rule}' in ${ctx.policy.source} (rules: ${known.join(", ")})`);
    if (category !== undefined && !ctx.taxonomy.has(TaxonomyKind.dataCategory, category)) {
      const hint = ctx.taxonomy.suggest(TaxonomyKind.dataCategory, category)[0];
      throw new UsageError(`--category '${category}' is not a fideslang data category${hint ? ` (did you mean '${hint}'?)` : ""}`);
    }
    if (values.fast) {
      // Whole days, from the daily aggregate views: the quick answer, exact and approximate.
      for (const [flag, at] of [
        ["--from", from],
        ["--to", to],
      ] as const)
        if (at !== undefined && !isWholeDay(Date.parse(at)))
          throw new UsageError(`--fast counts whole UTC days: ${flag} must be a date (e.g. 2019-01-31) or midnight UTC, not ${at}`);
      const fast = await fastAffectedCount(ctx.store, {
        ruleId: rule,
        ...(from ? { from } : {}),
        ...(to ? { to } : {}),
        ...(category ? { category } : {}),
      });
      out(
        values.json
          ? JSON.stringify(fast, null, 2)
          : `rule ${rule}, ${fast.window.from} to ${fast.window.to} (whole days, UTC): ${fast.exact.toLocaleString("en-US")} subjects (exact), ${fast.approximate.toLocaleString("en-US")} (approximate), ${fast.records.toLocaleString("en-US")} records (exact)`,
      );
      return 0;
    }
    const progress = refreshProgress(values.json === true);
    const answer = await affectedAnswer(
      ctx.store,
      ctx.policy,
      { ruleId: rule, ...(from ? { from } : {}), ...(to ? { to } : {}), ...(category ? { category } : {}) },
      progress,
    );
    progress.finish();
    out(values.json ? JSON.stringify(answer, null, 2) : formatSummary(answer));
    return 0;
  } finally {
    await ctx.close();
  }
}

async function sql(argv: string[], config: AppConfig): Promise<number> {
  const { values, positionals } = args(argv, { json: { type: "boolean" } }, true);
  if (values.help) return (out(USAGE), 0);
  if (positionals.length !== 1)
    throw new UsageError('sql takes one quoted statement, e.g. lineage-audit sql "SELECT count() FROM events_v1"');
  const statement = positionals[0] as string;
  const answer = (await queryThroughServe(config, statement)) ?? (await queryOwnStore(config, statement));
  if (answer.format !== "JSONEachRow") {
    // The statement named its own FORMAT: its output as it is.
    process.stdout.write(answer.body);
    return 0;
  }
  const rows = answer.body
    .toString("utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  out(values.json ? JSON.stringify(rows) : formatTable(rows));
  return 0;
}

/** The statement on the store's analyst session (read-only, limited): this process holds the store. */
async function queryOwnStore(config: AppConfig, statement: string): Promise<{ format: string; body: Buffer }> {
  const store = await openStore(config.store);
  try {
    await store.migrate();
    return await store.analystQuery({ sql: statement, defaultFormat: "JSONEachRow" });
  } finally {
    await store.close();
  }
}

/** Where a running `serve` says analysts can reach the embedded store it holds. */
function serveFile(config: AppConfig): string | undefined {
  return config.store.url ? undefined : join(resolve(config.store.path ?? defaultStoreOptions.path), "serve.json");
}

/**
 * An embedded store belongs to one process: when `serve` holds it, `sql` asks that process over
 * its read-only HTTP interface instead (undefined when no live serve holds the store).
 */
async function queryThroughServe(config: AppConfig, sql: string): Promise<{ format: string; body: Buffer } | undefined> {
  const file = serveFile(config);
  if (!file || !existsSync(file)) return undefined;
  const held = JSON.parse(readFileSync(file, "utf8")) as { pid: number; analystUrl?: string; user?: string };
  try {
    process.kill(held.pid, 0);
  } catch {
    return undefined; // a stale file: that serve is gone
  }
  if (!held.analystUrl)
    throw new ConfigError(
      `the store is held by a running serve (pid ${held.pid}) without its analyst interface: start it with LINEAGE_AUDIT_ANALYST_PASSWORD to query while it runs`,
    );
  if (!config.analyst)
    throw new ConfigError(
      `the store is held by a running serve (pid ${held.pid}): set LINEAGE_AUDIT_ANALYST_PASSWORD (and _USER) to query through ${held.analystUrl}`,
    );
  // The client would log the failure itself; the CLI says it once, in its own line.
  const client = createClient({
    url: held.analystUrl,
    username: config.analyst.user,
    password: config.analyst.password,
    log: { level: ClickHouseLogLevel.OFF },
  });
  try {
    const result = await client.exec({ query: sql, clickhouse_settings: { default_format: "JSONEachRow" } });
    const chunks: Buffer[] = [];
    for await (const chunk of result.stream) chunks.push(Buffer.from(chunk as Uint8Array));
    const format = result.response_headers["x-clickhouse-format"];
    return { format: typeof format === "string" ? format : "JSONEachRow", body: Buffer.concat(chunks) };
  } catch (cause) {
    // The client keeps the sentence's full stop from "… DB::Exception: <line>. (NAME)".
    throw new StoreError((cause as Error).message.split("\n")[0]?.trim().replace(/\.$/, "") || "query failed", { cause });
  } finally {
    await client.close();
  }
}

function formatTable(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return "(no rows)";
  const cols = Object.keys(rows[0] as object);
  const cell = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  const widths = cols.map((c) => Math.min(60, Math.max(c.length, ...rows.map((r) => cell(r[c]).length))));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (v.length > (widths[i] as number) ? `${v.slice(0, (widths[i] as number) - 1)}…` : v.padEnd(widths[i] as number)))
      .join("  ")
      .trimEnd();
  return [line(cols), line(widths.map((w) => "-".repeat(w))), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join("\n");
}

async function serve(argv: string[], config: AppConfig): Promise<number> {
  const { values } = args(argv, { port: { type: "string" }, host: { type: "string" } }, false);
  if (values.help) return (out(USAGE), 0);
  const port = values.port === undefined ? config.port : portFlag(values.port as string);
  const host = (values.host as string | undefined) ?? DEFAULT_BIND_HOST;
  checkExposure(host, config);
  // A long-running process: keep V8's heap near its live size (docs/performance.md, bench:soak).
  boundHeapGrowth();
  // Adapters report through this; LINEAGE_AUDIT_LOG=json gives one JSON object a line for log collectors.
  const logFormat = process.env["LINEAGE_AUDIT_LOG"] ?? "text";
  if (logFormat !== "text" && logFormat !== "json") throw new ConfigError(`LINEAGE_AUDIT_LOG must be text or json, not '${logFormat}'`);
  const logger = createLineLogger((line) => void process.stderr.write(`${line}\n`), logFormat);
  const stopTelemetry = await startTelemetry(process.env);
  // Bad alert configuration is found before anything starts.
  const alerting = config.webhooksPath ? loadAlertingConfig(config.webhooksPath) : undefined;
  const ctx = await openAuditor(config, alerting ? { alerts: createAlertPlanner(alerting.subscriptions, alerting.windowMs) } : {});
  const closers: (() => Promise<void>)[] = [() => ctx.close()];
  if (stopTelemetry) closers.push(stopTelemetry);
  if (alerting) {
    const deliverer = createDeliverer(ctx.store, alerting.subscriptions, {
      logger,
      ruleDescriptions: Object.fromEntries(ctx.policy.rules.map((r) => [r.id, r.description])),
      policy: ctx.policy,
    });
    deliverer.start();
    closers.unshift(() => deliverer.close());
    process.stderr.write(
      `lineage-audit serve: alerts to ${alerting.subscriptions.filter((s) => s.enabled).length} webhook subscription(s) from ${config.webhooksPath}\n`,
    );
  }
  try {
    const server = await startIngestServer(ctx.processor, {
      port,
      host,
      ...(config.ingestToken ? { token: config.ingestToken } : {}),
    });
    closers.unshift(() => server.close());
    process.stderr.write(
      `lineage-audit serve: POST ${server.url}/v1/events (store ${ctx.store.location}, database ${ctx.store.database})\n`,
    );
    // Tells `sql` that this process holds the store, and where to ask instead.
    let analystUrl: string | undefined;
    if (config.analyst) {
      const analyst = await startAnalystServer(ctx.store, { ...config.analyst, host });
      closers.unshift(() => analyst.close());
      process.stderr.write(`lineage-audit serve: read-only ClickHouse HTTP interface at ${analyst.url} (user ${config.analyst.user})\n`);
      analystUrl = analyst.url;
    }
    const file = serveFile(config);
    if (file) {
      writeFileSync(file, JSON.stringify({ pid: process.pid, ...(analystUrl ? { analystUrl } : {}) }));
      closers.unshift(async () => rmSync(file, { force: true }));
    }
    if (config.kafka) {
      const kafka = await startKafkaProcessor(
        config.kafka,
        { groupId: config.kafkaGroupId, instanceId: config.instanceId, sessionTimeoutMs: config.kafkaSessionTimeoutMs },
        { processor: ctx.processor, codec: ctx.codec, store: ctx.store, logger },
      );
      closers.unshift(() => kafka.close());
      process.stderr.write(
        `lineage-audit serve: consuming ${topicsOf(config.kafka).events} from ${config.kafka.brokers.join(",")} as ${config.instanceId} in group ${config.kafkaGroupId} (lineage facts learned: ${kafka.factsLearned})\n`,
      );
    }
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    process.stderr.write("lineage-audit serve: stopping\n");
  } finally {
    // Reverse order of start: stop taking events, let the last batch commit, then close the store.
    for (const close of closers) await close();
  }
  return 0;
}

function portFlag(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port must be a port number (0 picks a free one), not '${value}'`);
  return n;
}

async function replay(argv: string[], config: AppConfig): Promise<number> {
  const { values } = args(
    argv,
    {
      rules: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      json: { type: "boolean" },
      engine: { type: "string" },
      "dry-run": { type: "boolean" },
    },
    false,
  );
  if (values.help) return (out(USAGE), 0);
  const rulesFile = values.rules as string | undefined;
  if (!rulesFile) throw new UsageError("replay needs --rules FILE (the new or changed rules to evaluate over the stored history)");
  const engine = (values.engine as string | undefined) ?? "sql";
  if (engine !== "sql" && engine !== "stream") throw new UsageError(`--engine must be sql or stream, not '${engine}'`);
  const dryRun = values["dry-run"] === true;
  if (dryRun && engine !== "sql") throw new UsageError("--dry-run prints the compiled SQL: it needs --engine sql");
  const from = dateFlag(values.from as string | undefined, "--from");
  const to = dateFlag(values.to as string | undefined, "--to");
  // The rules are read and compiled before the store is opened: a file the compiler cannot
  // express fails here, with its line, and nothing is written.
  const taxonomy = loadFideslangTaxonomy();
  const policy = loadPolicy(rulesFile, taxonomy);
  if (engine === "sql") compilePolicy(policy);
  const rulesText = readFileSync(rulesFile, "utf8");
  const store = await openStore(config.store);
  let stop = false;
  const onSignal = () => {
    stop = true;
  };
  process.once("SIGINT", onSignal);
  try {
    await store.migrate();
    let progress: ReturnType<typeof createProgress> | undefined;
    const common = {
      policy,
      rulesText,
      ...(from ? { from: Date.parse(from) } : {}),
      ...(to ? { to: Date.parse(to) } : {}),
      onProgress: (done: number, all: number) => {
        progress ??= createProgress(dryRun ? "dry run" : "replay", all, process.stderr, values.json === true);
        progress.update(done);
      },
      shouldStop: () => stop,
    };
    const sqlResult = engine === "sql" ? await replayRulesSql(store, { ...common, dryRun }) : undefined;
    const result = sqlResult ?? (await replayRules(store, { ...common, taxonomy }));
    progress?.finish();
    if (values.json) out(JSON.stringify(result));
    else if (dryRun && sqlResult) out(formatDryRun(rulesFile, sqlResult));
    else if (result.alreadyDone) out(`replay ${result.replayId} of ${rulesFile} already finished for this window; nothing to do`);
    else if (!result.done)
      out(
        `replay ${result.replayId} interrupted after ${result.events.toLocaleString("en-US")} events; run the same command again to resume`,
      );
    else
      out(
        `replayed ${rulesFile} over ${result.events.toLocaleString("en-US")} stored uses and shares${result.resumed ? " (resumed)" : ""}: ${result.violations.toLocaleString("en-US")} violations written, marked retroactive`,
      );
    return result.done || dryRun ? 0 : 130;
  } finally {
    process.off("SIGINT", onSignal);
    await store.close();
  }
}

async function report(argv: string[], config: AppConfig): Promise<number> {
  const { values } = args(
    argv,
    {
      rule: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      format: { type: "string" },
      output: { type: "string", short: "o" },
    },
    false,
  );
  if (values.help) return (out(USAGE), 0);
  const rule = values.rule as string | undefined;
  if (!rule) throw new UsageError("report needs --rule ID");
  const format = (values.format as string | undefined) ?? "md";
  if (format !== "md" && format !== "json" && format !== "html") throw new UsageError(`--format must be md, json or html, not '${format}'`);
  const from = dateFlag(values.from as string | undefined, "--from");
  const to = dateFlag(values.to as string | undefined, "--to");
  const ctx = await openAuditor(config);
  try {
    const known = [ctx.policy.purposeLimitation, ...ctx.policy.rules];
    const found = known.find((r) => r.id === rule);
    if (!found) throw new UsageError(`no rule '${rule}' in ${ctx.policy.source} (rules: ${known.map((r) => r.id).join(", ")})`);
    const description =
      "description" in found ? found.description : "Data used outside the purposes it was collected for (purpose limitation).";
    const progress = refreshProgress(false);
    const data = await buildReport(
      ctx.store,
      ctx.policy,
      { ruleId: rule, ...(from ? { from } : {}), ...(to ? { to } : {}) },
      { ...found, description },
      progress,
    );
    progress.finish();
    const text = format === "json" ? renderJson(data) : format === "html" ? renderHtml(data) : renderMarkdown(data);
    const file = values.output as string | undefined;
    if (file) {
      writeFileSync(file, text);
      out(`wrote ${file}`);
    } else {
      process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
    }
    return 0;
  } finally {
    await ctx.close();
  }
}

async function subject(argv: string[], config: AppConfig): Promise<number> {
  const { values, positionals } = args(argv, { json: { type: "boolean" }, pseudonymous: { type: "boolean" } }, true);
  if (values.help) return (out(USAGE), 0);
  if (positionals.length !== 1) throw new UsageError("subject takes one identifier, e.g. lineage-audit subject alice@example.com");
  const raw = positionals[0] as string;
  // The raw identifier is pseudonymised exactly as the emitters do; it is never stored or printed.
  const id = values.pseudonymous ? raw : createPseudonymizer(requireHmacKey(config))(raw);
  if (values.pseudonymous && !PSEUDONYM_PATTERN.test(id)) throw new UsageError("--pseudonymous takes a 32-hex-digit pseudonym");
  const ctx = await openAuditor(config);
  try {
    const store = ctx.store;
    const history = await subjectHistory(store, id);
    const violations = history.length === 0 ? [] : await subjectViolations(store, ctx.policy, id);
    if (values.json) {
      out(JSON.stringify({ subject: id, events: history, violations }, null, 2));
    } else if (history.length === 0) {
      out(`nothing stored concerns subject ${id}`);
    } else {
      out(`subject ${id}: ${history.length} events`);
      for (const h of history) {
        const what =
          h.kind === "COLLECT"
            ? `collected ${h.categories.join(", ")} for ${h.purposes.join(", ")}`
            : `${h.kind.toLowerCase()} for ${h.purposes.join(", ") || "-"}`;
        const flag = h.violations.length > 0 ? `   VIOLATION: ${h.violations.join(", ")}` : "";
        out(
          `  ${h.occurredAt}  ${h.kind.padEnd(7)} ${h.service} (${h.job})  ${h.fields.join(", ") || h.datasets.join(", ")}  ${what}${h.recipient ? ` to ${h.recipient}` : ""}${flag}`,
        );
      }
      if (violations.length > 0) out("\nViolations, and the evidence for this person:");
      for (const v of violations) {
        const verdict = v.exact ? "EXACTLY AFFECTED" : `possibly affected only (${v.reason ?? "?"})`;
        out(
          `  ${storedTime(v.occurredAt)}  ${v.kind} ${v.eventId}${v.wholeTable ? " (names nobody: whole table)" : ""}  rule ${v.ruleId}: ${verdict}`,
        );
        for (const e of v.evidence) {
          out(
            e.collected
              ? `      collected ${storedTime(Date.parse(e.collected.occurredAt))}  ${e.origin} [${e.category}; for ${e.collectedFor.join(", ")}] by ${e.collected.service} (${e.collected.job}), event ${e.collected.eventId}`
              : `      declared at ${e.origin} [${e.category}; for ${e.collectedFor.join(", ")}] by a collection naming nobody (no per-person evidence)`,
          );
          for (const h of e.hops)
            out(`      ⇒ ${h.transform ?? h.kind} → ${h.dataset}#${h.field} by ${h.service} (${h.job}), from ${storedTime(h.occurredAt)}`);
        }
      }
    }
    return 0;
  } finally {
    await ctx.close();
  }
}

async function webhooks(argv: string[], _config: AppConfig): Promise<number> {
  const { values, positionals } = args(argv, { secret: { type: "string" } }, true);
  if (values.help) return (out(USAGE), 0);
  if (positionals[0] !== "test" || positionals.length !== 2)
    throw new UsageError("usage: lineage-audit webhooks test URL [--secret whsec_…]");
  let url: URL;
  try {
    url = new URL(positionals[1] as string);
  } catch {
    throw new UsageError(`'${positionals[1]}' is not a URL`);
  }
  const secret = (values.secret as string | undefined) ?? process.env["LINEAGE_AUDIT_WEBHOOK_SECRET"];
  if (!secret) throw new UsageError("webhooks test needs the receiver's signing secret: --secret whsec_… or LINEAGE_AUDIT_WEBHOOK_SECRET");
  const key = parseSecret(secret, "--secret");
  const id = `msg_test_${Date.now().toString(36)}`;
  const body = JSON.stringify({
    type: "lineage_audit.violation",
    version: PAYLOAD_VERSION,
    test: true,
    webhookId: id,
    rule: {
      id: "security-contact-not-for-marketing",
      severity: "critical",
      mode: "enforce",
      description: "A sample alert from lineage-audit webhooks test.",
    },
    service: "partner-audiences",
    job: { namespace: "ads", name: "partner-audiences.match" },
    runId: "sample-run",
    purposeUsed: ["marketing.advertising.third_party.targeted"],
    collectedFor: ["essential.service.security"],
    dataCategories: ["user.contact.phone_number"],
    lineagePath: null,
    soFar: {
      subjects: 0,
      records: 0,
      violatingEvents: 0,
      exact: true,
      possiblyAffected: { subjects: 0, records: 0, violatingEvents: 0 },
      sharedOutside: { shared: false, subjects: 0, events: 0 },
    },
    window: { start: new Date().toISOString(), end: new Date().toISOString() },
    firstViolation: null,
    lastViolation: null,
    traceId: null,
    investigate: "lineage-audit affected --rule security-contact-not-for-marketing",
  });
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...signWebhook([key], id, Math.floor(Date.now() / 1000), body) },
      body,
      signal: AbortSignal.timeout(10_000),
    });
  } catch (cause) {
    throw new ConfigError(`cannot reach ${url.origin}${url.pathname}: ${(cause as Error).message}`, { cause });
  }
  if (!res.ok)
    throw new ConfigError(`the receiver at ${url.origin}${url.pathname} answered ${res.status} to a signed sample (webhook-id ${id})`);
  out(`delivered a signed sample to ${url.origin}${url.pathname}: ${res.status} (webhook-id ${id})`);
  return 0;
}

const COMMANDS: Record<string, (argv: string[], config: AppConfig) => Promise<number>> = {
  demo,
  ingest,
  affected,
  sql,
  serve,
  webhooks,
  subject,
  report,
  replay,
};

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    out(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (!run) throw new UsageError(`unknown command '${command}' (commands: ${Object.keys(COMMANDS).join(", ")}; see lineage-audit --help)`);
  return run(rest, parseConfig(env));
}

/** One clear line on stderr; the stack only with LINEAGE_AUDIT_DEBUG=1. */
export function reportError(error: unknown, env: NodeJS.ProcessEnv): number {
  if (error instanceof LineageAuditError) {
    process.stderr.write(`lineage-audit: ${error.message.split("\n")[0]}\n`);
    if (env["LINEAGE_AUDIT_DEBUG"]) process.stderr.write(`${String(error.stack)}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
  process.stderr.write(
    `lineage-audit: internal error: ${(error as Error)?.message?.split("\n")[0] ?? String(error)} (run with LINEAGE_AUDIT_DEBUG=1 for details and report it)\n`,
  );
  if (env["LINEAGE_AUDIT_DEBUG"]) process.stderr.write(`${String((error as Error)?.stack)}\n`);
  return 1;
}
