export { generateScenario, expectedEvents, emptyGroundTruth, rawUserId, defaultScenarioOptions, SCENARIO_RULE } from "./scenario.ts";
export type { ScenarioOptions, GroundTruth, ExactTruth, SharedOutside } from "./scenario.ts";
export { runDemo } from "./run.ts";
export type { DemoResult } from "./run.ts";
