import { createEmitter, createInProcessTransport } from "../emitter/index.ts";
import { affectedSummary, storedTimeToIso, type AffectedSummary } from "../store/index.ts";
import type { Processor } from "../processor/index.ts";
import type { Store } from "../store/index.ts";
import type { EventCodec } from "../codec/index.ts";
import { emptyGroundTruth, expectedEvents, generateScenario, SCENARIO_RULE, type GroundTruth, type ScenarioOptions } from "./scenario.ts";

export interface DemoResult {
  summary: AffectedSummary;
  groundTruth: GroundTruth;
  /** Whether every planted number equals what the auditor found in the store. */
  agrees: {
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
  deps: { processor: Processor; store: Store; codec: EventCodec; hmacKey: string },
  options: ScenarioOptions,
  onProgress: (done: number, total: number) => void = () => {},
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
  const summary = await affectedSummary(deps.store, { ruleId: SCENARIO_RULE });
  const iso = (s: string | null) => (s === null ? null : new Date(storedTimeToIso(s)).toISOString());
  return {
    summary,
    groundTruth: truth,
    agrees: {
      affectedUsers: summary.subjects === truth.affectedUsers,
      affectedRecords: summary.records === truth.affectedRecords,
      violatingEvents: summary.violationEvents === truth.violatingEvents,
      externalShares: summary.externalShares.carryingViolatedData === truth.externalSharesOfViolatedData,
      firstViolation: iso(summary.firstViolation) === truth.firstViolation,
      lastViolation: iso(summary.lastViolation) === truth.lastViolation,
    },
    events: n,
    elapsedMs,
    eventsPerSecond: Math.round(n / (elapsedMs / 1000)),
  };
}
