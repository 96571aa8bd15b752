// Registers the OpenTelemetry Node SDK for `serve` when an OTLP endpoint is configured
// (OTEL_EXPORTER_OTLP_ENDPOINT, or the traces/metrics specific variables). Library code only
// uses @opentelemetry/api; without this, every span and metric is a no-op.
import type { AppConfig } from "../config/index.ts";

/** Starts the SDK if configured; returns how to flush and stop it. */
export async function startTelemetry(telemetry: AppConfig["telemetry"]): Promise<(() => Promise<void>) | undefined> {
  if (!telemetry) return undefined;
  const [{ NodeSDK }, { OTLPTraceExporter }, { OTLPMetricExporter }, { PeriodicExportingMetricReader }] = await Promise.all([
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/exporter-metrics-otlp-http"),
    import("@opentelemetry/sdk-metrics"),
  ]);
  const sdk = new NodeSDK({
    serviceName: telemetry.serviceName,
    traceExporter: new OTLPTraceExporter(),
    metricReader: new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter(),
      exportIntervalMillis: telemetry.metricExportIntervalMs,
    }),
    instrumentations: [],
  });
  sdk.start();
  return () => sdk.shutdown();
}
