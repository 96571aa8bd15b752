export {
  SpanName,
  Attr,
  MetricName,
  INSTRUMENTATION,
  tracer,
  meter,
  contextFromTraceparent,
  traceparentOf,
  isSampled,
} from "./telemetry.ts";
