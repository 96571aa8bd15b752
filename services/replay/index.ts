export { replayRules } from "./replay.ts";
export type { ReplayOptions, ReplayResult } from "./replay.ts";
