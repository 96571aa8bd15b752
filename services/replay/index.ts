export { replayRules } from "./replay.ts";
export type { ReplayOptions, ReplayResult } from "./replay.ts";
export { replayRulesSql, ReplayTable } from "./sql.ts";
export type { SqlReplayOptions, SqlReplayResult, SqlReplayStage } from "./sql.ts";
export { createLabelTimeline } from "./labels.ts";
export type { LabelTimeline, TimelineRow } from "./labels.ts";
