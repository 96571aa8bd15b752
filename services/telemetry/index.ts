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
  parseTraceparent,
} from "./telemetry.ts";
