import { createEmitter, createInProcessTransport } from "../emitter/index.ts";
import { affectedAnswer, storedTimeToIso, type AffectedAnswer } from "../store/index.ts";
import type { Processor } from "../processor/index.ts";
import type { Store } from "../store/index.ts";
import type { EventCodec } from "../codec/index.ts";
import type { Policy } from "../rules/index.ts";
import { emptyGroundTruth, expectedEvents, generateScenario, SCENARIO_RULE, type GroundTruth, type ScenarioOptions } from "./scenario.ts";

export interface DemoResult {
  summary: AffectedAnswer;
  groundTruth: GroundTruth;
  /** Whether every planted number, exact and field-level, equals what the auditor found in the store. */
  agrees: {
    exactUsers: boolean;
    exactRecords: boolean;
    exactViolatingEvents: boolean;
    exactFirstViolation: boolean;
    exactLastViolation: boolean;
    exactSharedOutside: boolean;
    affectedUsers: boolean;
    affectedRecords: boolean;
    violatingEvents: boolean;
    externalShares: boolean;
    firstViolation: boolean;
    lastViolation: boolean;
  };
  events: number;
  elapsedMs: number;
  eventsPerSecond: number;
}

/** Streams the 2019 scenario through the emitter and processor into the store, then asks the store. */
export async function runDemo(
  deps: { processor: Processor; store: Store; codec: EventCodec; hmacKey: string; policy: Policy },
  options: ScenarioOptions,
  onProgress: (done: number, total: number) => void = () => {},
  onModelProgress?: (phase: "read" | "compute", done: number, total: number) => void,
): Promise<DemoResult> {
  const truth = emptyGroundTruth();
  const total = expectedEvents(options);
  const emitter = createEmitter(
    {
      transport: createInProcessTransport(deps.processor),
      pseudonymKey: deps.hmacKey,
      maxBatch: 20_000,
      maxInFlight: 2,
      pseudonymCacheSize: 2_000_000,
    },
    { codec: deps.codec },
  );
  const started = performance.now();
  let n = 0;
  for (const input of generateScenario(options, truth)) {
    await emitter.emit(input);
    if (++n % 10_000 === 0) onProgress(n, total);
  }
  await emitter.close();
  onProgress(n, n);
  const elapsedMs = performance.now() - started;
  const summary = await affectedAnswer(
    deps.store,
    deps.policy,
    { ruleId: SCENARIO_RULE },
    onModelProgress ? { onProgress: onModelProgress } : {},
  );
  const iso = (s: string | null) => (s === null ? null : new Date(storedTimeToIso(s)).toISOString());
  const isoMs = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  const x = summary.exact;
  const planted = truth.exact;
  return {
    summary,
    groundTruth: truth,
    agrees: {
      exactUsers: x.exact.users === planted.users,
      exactRecords: x.exact.records === planted.records,
      exactViolatingEvents: x.exact.violatingEvents === planted.violatingEvents,
      exactFirstViolation: isoMs(x.exact.first) === planted.firstViolation,
      exactLastViolation: isoMs(x.exact.last) === planted.lastViolation,
      exactSharedOutside:
        x.sharedOutside.shared === planted.sharedOutside.shared &&
        x.sharedOutside.subjects === planted.sharedOutside.subjects &&
        x.sharedOutside.events === planted.sharedOutside.events,
      affectedUsers: summary.subjects === truth.affectedUsers && x.fieldLevel.users === truth.affectedUsers,
      affectedRecords: summary.records === truth.affectedRecords && x.fieldLevel.records === truth.affectedRecords,
      violatingEvents: summary.violationEvents === truth.violatingEvents && x.fieldLevel.violatingEvents === truth.violatingEvents,
      externalShares: summary.externalShares.carryingViolatedData === truth.externalSharesOfViolatedData,
      firstViolation: iso(summary.firstViolation) === truth.firstViolation && isoMs(x.fieldLevel.first) === truth.firstViolation,
      lastViolation: iso(summary.lastViolation) === truth.lastViolation && isoMs(x.fieldLevel.last) === truth.lastViolation,
    },
    events: n,
    elapsedMs,
    eventsPerSecond: Math.round(n / (elapsedMs / 1000)),
  };
}
