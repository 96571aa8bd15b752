import { rmSync, writeFileSync } from "node:fs";
import { LINEAGE_PATH, startAnalystServer, startIngestServer } from "../../api/index.ts";
import { createConsoleAuth, createConsoleData, createConsoleHandler } from "../../console/index.ts";
import { createPseudonymizer } from "../../emitter/index.ts";
import { startKafkaProcessor, topicsOf } from "../../kafka/index.ts";
import { createAlertPlanner, createDeliverer, loadAlertingConfig } from "../../alerting/index.ts";
import { createLineLogger, meter, MetricName } from "../../telemetry/index.ts";
import { createModelRefresher } from "../../store/index.ts";
import { defaults, type AppConfig } from "../../config/index.ts";
import { args, portFlag, text } from "../args.ts";
import { checkExposure, openAuditor, serveFile } from "../context.ts";
import { boundHeapGrowth } from "../heap.ts";
import { startTelemetry } from "../telemetry.ts";

/** How long serve waits for the console's first read of the overview before saying it is ready. */
const CONSOLE_WARM_MS = 5_000;

/** Takes events until SIGINT or SIGTERM; then stops each part in the reverse order of its start. */
export async function run(argv: string[], config: AppConfig): Promise<number> {
  const { values } = args(argv, { port: { type: "string" }, host: { type: "string" } }, false);
  const port = values.port === undefined ? config.port : portFlag(values.port as string);
  const host = text(values, "host") ?? defaults.host;
  checkExposure(host, config);
  // A long-running process: keep V8's heap near its live size (docs/performance.md, bench:soak).
  boundHeapGrowth();
  const say = (line: string) => void process.stderr.write(`lineage-audit serve: ${line}\n`);
  // Adapters report through this; LINEAGE_AUDIT_LOG=json gives one JSON object a line for log collectors.
  const logger = createLineLogger((line) => void process.stderr.write(`${line}\n`), config.log);
  const stopTelemetry = await startTelemetry(config.telemetry);
  // Bad alert configuration is found before anything starts.
  const alerting = config.webhooksPath ? loadAlertingConfig(config.webhooksPath) : undefined;
  const ctx = await openAuditor(config, {
    ...(alerting ? { alerts: createAlertPlanner(alerting.subscriptions, alerting.windowMs) } : {}),
    openLineageJournal: true,
    onError: (error) =>
      logger.error(`OpenLineage: a journaled batch is not stored yet, retrying: ${(error as Error).message.split("\n")[0]}`),
  });
  for (const r of ctx.refilled)
    say(`${r.rows} row(s) of ${r.table} given to ${r.views.join(" and ")} again: a write before was cut short between them`);
  const closers: (() => Promise<void>)[] = [() => ctx.close()];
  // How far the store is behind the answers given over HTTP (the journal's backlog).
  meter()
    .createObservableGauge(MetricName.openLineageNotYetStored, {
      description: "OpenLineage RunEvents answered 201 and not yet stored",
      unit: "{runevent}",
    })
    .addCallback((result) => result.observe(ctx.openLineage.backlog()));
  if (stopTelemetry) closers.push(stopTelemetry);
  // One refresher of the exact model for the deliverer and the console: never two rebuilds at once.
  const refresher = createModelRefresher(ctx.store, ctx.policy);
  try {
    if (alerting) {
      const deliverer = createDeliverer(ctx.store, alerting.subscriptions, {
        logger,
        ruleDescriptions: Object.fromEntries(ctx.policy.rules.map((r) => [r.id, r.description])),
        policy: ctx.policy,
        refresher,
      });
      deliverer.start();
      closers.unshift(() => deliverer.close());
      say(`alerts to ${alerting.subscriptions.filter((s) => s.enabled).length} webhook subscription(s) from ${config.webhooksPath}`);
    }
    // The investigation console, behind the analyst credentials, when they are set.
    let kafkaLag: (() => { topic: string; partition: number; lag: number }[]) | undefined;
    const consoleData = config.analyst
      ? createConsoleData(ctx.store, ctx.policy, {
          ...(config.hmacKey ? { pseudonymize: createPseudonymizer(config.hmacKey) } : {}),
          lag: () => kafkaLag?.(),
          openLineageBacklog: () => ctx.openLineage.backlog(),
          onError: (line) => logger.error(line),
          modelRefreshMs: config.modelRefreshMs,
          refresher,
          ...(alerting ? { subscriptions: alerting.subscriptions } : {}),
        })
      : undefined;
    const consoleHandler =
      config.analyst && consoleData ? createConsoleHandler({ auth: createConsoleAuth(config.analyst), data: consoleData }) : undefined;
    const server = await startIngestServer(ctx.processor, {
      port,
      host,
      openLineage: ctx.openLineage,
      ...(consoleHandler ? { console: consoleHandler } : {}),
      ...(config.ingestToken ? { token: config.ingestToken } : {}),
    });
    closers.unshift(() => server.close());
    say(
      `POST ${server.url}/v1/events (store ${ctx.store.location}, database ${ctx.store.database}); OpenLineage: POST ${server.url}${LINEAGE_PATH}`,
    );
    if (consoleHandler && consoleData) {
      // Ready once its overview has been read: its scans are kept until the data changes, and the
      // store's caches hold what the first person to open it reads (waited for at most 5 s; a
      // failure here is only logged, the page says it again).
      const warm = consoleData.overview().catch((error: unknown) => logger.error(`console: ${(error as Error).message.split("\n")[0]}`));
      await Promise.race([warm, new Promise((resolve) => setTimeout(resolve, CONSOLE_WARM_MS).unref())]);
      say(`investigation console at ${server.url}/ (user ${config.analyst?.user})`);
    }
    let analystUrl: string | undefined;
    if (config.analyst) {
      const analyst = await startAnalystServer(ctx.store, { ...config.analyst, host });
      closers.unshift(() => analyst.close());
      say(`read-only ClickHouse HTTP interface at ${analyst.url} (user ${config.analyst.user})`);
      analystUrl = analyst.url;
    }
    // Tells `sql` that this process holds the store, and where to ask instead.
    const file = serveFile(config);
    if (file) {
      writeFileSync(file, JSON.stringify({ pid: process.pid, ...(analystUrl ? { analystUrl } : {}) }));
      closers.unshift(async () => rmSync(file, { force: true }));
    }
    if (config.kafka) {
      // Consuming from now on: no batch yet until the consumer reports its first.
      kafkaLag = () => [];
      const kafka = await startKafkaProcessor(
        config.kafka,
        { groupId: config.kafkaGroupId, instanceId: config.instanceId, sessionTimeoutMs: config.kafkaSessionTimeoutMs },
        {
          processor: ctx.processor,
          codec: ctx.codec,
          store: ctx.store,
          logger,
          openLineage: ctx.openLineage,
          lagReader: (read) => (kafkaLag = read),
        },
      );
      closers.unshift(() => kafka.close());
      say(
        `consuming ${topicsOf(config.kafka).events} from ${config.kafka.brokers.join(",")} as ${config.instanceId} in group ${config.kafkaGroupId} (lineage facts learned: ${kafka.factsLearned})`,
      );
    }
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    say("stopping");
  } finally {
    // Reverse order of start: stop taking events, let the last batch commit, then close the store.
    for (const close of closers) await close();
  }
  return 0;
}
