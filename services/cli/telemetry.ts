// Registers the OpenTelemetry Node SDK for `serve` when an OTLP endpoint is configured
// (OTEL_EXPORTER_OTLP_ENDPOINT, or the traces/metrics specific variables). Library code only
// uses @opentelemetry/api; without this, every span and metric is a no-op.

/** Starts the SDK if configured; returns how to flush and stop it. */
export async function startTelemetry(env: NodeJS.ProcessEnv): Promise<(() => Promise<void>) | undefined> {
  if (!env["OTEL_EXPORTER_OTLP_ENDPOINT"] && !env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] && !env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]) {
    return undefined;
  }
  const [{ NodeSDK }, { OTLPTraceExporter }, { OTLPMetricExporter }, { PeriodicExportingMetricReader }] = await Promise.all([
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/exporter-metrics-otlp-http"),
    import("@opentelemetry/sdk-metrics"),
  ]);
  const sdk = new NodeSDK({
    serviceName: env["OTEL_SERVICE_NAME"] ?? "lineage-audit",
    traceExporter: new OTLPTraceExporter(),
    metricReader: new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter(),
      exportIntervalMillis: Number(env["OTEL_METRIC_EXPORT_INTERVAL"] ?? 60_000),
    }),
    instrumentations: [],
  });
  sdk.start();
  return () => sdk.shutdown();
}
