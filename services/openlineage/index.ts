export { mapRunEvent, explainStaticEvent, eventIdOf, CATEGORY_TAG_KEY, DERIVE_DATA_SUBJECT } from "./map.ts";
export type { Mapped, MapOptions, RunEventInput } from "./map.ts";
export { loadClassification, parseClassification, MAX_CLASSIFICATION_BYTES } from "./classification.ts";
export type { Classification } from "./classification.ts";
export { createOpenLineageIntake, defaultOpenLineageIntakeOptions } from "./intake.ts";
export type { OpenLineageIntake, OpenLineageItem, OpenLineageOutcome, OpenLineageResult } from "./intake.ts";
export {
  checkRunEventBytes,
  validateRunEvent,
  isOpenLineageShape,
  eventKindOf,
  validateOpenLineageEvent,
  LINEAGE_AUDIT_PURPOSE_FACET,
  defaultRunEventLimits,
} from "./validate.ts";
export type { RunEvent, JobEvent, DatasetEvent, OpenLineageEvent, OpenLineageEventKind, RunEventLimits } from "./validate.ts";
