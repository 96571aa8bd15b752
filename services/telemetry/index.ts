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
export { createLineLogger, silentLogger } from "./logger.ts";
export type { Logger } from "./logger.ts";
