// The bounded lineage graph (issue 8, item 13) against the unbounded one: a graph that holds a
// handful of facts and refills itself from a store must reach the same verdicts, categories,
// labels and late violations, whatever the events and their arrival order.
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Transform, type DataAccessEvent } from "../../../services/codec/index.ts";
import { datasetId } from "../../../services/lineage/index.ts";
import {
  createAuditor,
  emptyBatch,
  type AuditBatch,
  type Auditor,
  type AuditorOptions,
  type LineageNeed,
} from "../../../services/processor/index.ts";
import {
  ADS,
  AUTHENTICATION,
  collect,
  defaultPolicy,
  deriveDatasets,
  deriveFields,
  EMAIL,
  map,
  PHONE,
  pseudo,
  read,
  ref,
  SECURITY,
  use,
} from "../helpers.ts";

const META = { writerFingerprint: "0123456789abcdef", writerVersion: 2 };
const DATASETS = ["a", "b", "c", "d", "e", "f"];
const FIELDS = ["x", "y", "z"];
const CATEGORIES = [PHONE, EMAIL, "user.health.condition", "user.name"];
const PURPOSES = [SECURITY, AUTHENTICATION, ADS, "essential.service", "analytics.reporting"];

/** Stored lineage facts, looked up as the ClickHouse store does (lineage_fact_datasets_v1). */
function memoryFactStore() {
  const facts: DataAccessEvent[] = [];
  const names = (e: DataAccessEvent, side: "in" | "out") =>
    side === "out"
      ? [...e.outputs.map(datasetId), ...e.fieldLineage.map((m) => datasetId(m.output))]
      : [...e.inputs.map(datasetId), ...e.fieldLineage.flatMap((m) => m.inputs.map(datasetId))];
  return {
    lookups: 0,
    store(batch: readonly DataAccessEvent[]) {
      for (const e of batch) if (e.kind === "COLLECT" || e.kind === "DERIVE") facts.push({ ...e, subjects: [] });
    },
    factsOf(need: LineageNeed): DataAccessEvent[] {
      this.lookups++;
      const any = new Set(need.datasets);
      const up = new Set(need.upstream);
      return facts.filter((f) => [...names(f, "in"), ...names(f, "out")].some((d) => any.has(d)) || names(f, "out").some((d) => up.has(d)));
    },
  };
}

/** The final state of each row, as ReplacingMergeTree keeps it: the last written per key. */
function finalState(batches: AuditBatch[]) {
  const events = new Map<string, unknown>();
  const violations = new Map<string, unknown>();
  const findings = new Set<string>();
  for (const b of batches) {
    for (const r of b.events) events.set(r.event_id, [r.verdict ?? "", r.categories ?? [], r.label_ids ?? []]);
    for (const v of b.violations) violations.set(v.violation_id, [v.categories, v.label_ids, v.collected_for, v.origins, v.late_lineage]);
    for (const f of b.findings) findings.add(f.finding_id);
  }
  const sorted = (m: Map<string, unknown>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  return { events: sorted(events), violations: sorted(violations), findings: [...findings].sort() };
}

function run(batches: DataAccessEvent[][], options: AuditorOptions, bounded: boolean) {
  const { policy, taxonomy } = defaultPolicy();
  const auditor: Auditor = createAuditor(policy, taxonomy, { ...options, onDemand: bounded });
  const store = memoryFactStore();
  const outs: AuditBatch[] = [];
  for (const batch of batches) {
    const out = emptyBatch();
    // What the processor adapter does before a batch.
    let rounds = 0;
    for (let need = auditor.missingLineage(batch); need; need = auditor.missingLineage([])) {
      if (++rounds > 100) throw new Error(`loading does not converge: ${JSON.stringify(need)}`);
      auditor.loadLineage(store.factsOf(need), need);
    }
    for (const e of batch) auditor.handle(e, META, out);
    store.store(batch);
    outs.push(out);
  }
  return { state: finalState(outs), facts: auditor.graph.stats.facts, lookups: store.lookups };
}

const pick = <T>(xs: readonly T[]) => fc.constantFrom(...xs);
const fieldCats = fc.dictionary(pick(FIELDS), fc.subarray(CATEGORIES, { minLength: 1, maxLength: 2 }), { minKeys: 1, maxKeys: 2 });
const event: fc.Arbitrary<() => DataAccessEvent> = fc.oneof(
  fc.record({ d: pick(DATASETS), fields: fieldCats, purposes: fc.subarray(PURPOSES, { minLength: 1, maxLength: 2 }) }).map(
    ({ d, fields, purposes }) =>
      () =>
        collect(d, fields, purposes),
  ),
  fc
    .record({
      from: pick(DATASETS),
      f: pick(FIELDS),
      to: pick(DATASETS),
      g: pick(FIELDS),
      t: pick([Transform.copy, Transform.hash, Transform.join]),
    })
    .map(
      ({ from, f, to, g, t }) =>
        () =>
          deriveFields([map(ref(to, g), [ref(from, f)], t)]),
    ),
  fc.record({ from: fc.subarray(DATASETS, { minLength: 1, maxLength: 2 }), to: pick(DATASETS) }).map(
    ({ from, to }) =>
      () =>
        deriveDatasets(from, [to], Transform.copy),
  ),
  fc.record({ d: pick(DATASETS), fields: fc.subarray(FIELDS, { maxLength: 2 }), purpose: pick(PURPOSES), s: fc.nat(5) }).map(
    ({ d, fields, purpose, s }) =>
      () =>
        use([read(d, ...fields)], [purpose], { subjects: [pseudo(s)] }),
  ),
);
const history = fc.array(fc.array(event, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 12 });

/** Fresh events (ids) for each run of the property. */
function materialise(plan: (() => DataAccessEvent)[][]): DataAccessEvent[][] {
  return plan.map((batch) => batch.map((make) => make()));
}

describe("bounded lineage graph (issue 8, item 13)", () => {
  it("gives the same verdicts, categories, labels, late violations and findings as the unbounded graph with a capacity of two facts", () => {
    fc.assert(
      fc.property(history, fc.integer({ min: 1, max: 4 }), (plan, window) => {
        const batches = materialise(plan);
        const options = { lineageCapacity: 2, retainFacts: 2, recheckWindow: window };
        const unbounded = run(batches, options, false);
        const bounded = run(batches, options, true);
        expect(bounded.state).toEqual(unbounded.state);
      }),
      { numRuns: 300 },
    );
  });

  it("holds no more than about twice its capacity while an unbounded graph grows with every new dataset", () => {
    const batches: DataAccessEvent[][] = [];
    for (let i = 0; i < 200; i++) {
      batches.push([
        collect(`churn${i}`, { phone: [PHONE] }, [SECURITY]),
        deriveFields([map(ref(`copy${i}`, "phone"), [ref(`churn${i}`, "phone")])]),
        use([read(`copy${i}`, "phone")], [ADS], { subjects: [pseudo(i)] }),
      ]);
    }
    const options = { lineageCapacity: 20, retainFacts: 4, recheckWindow: 5 };
    const unbounded = run(batches, options, false);
    const bounded = run(batches, options, true);
    expect(bounded.state).toEqual(unbounded.state);
    expect(unbounded.facts).toBe(400);
    expect(bounded.facts).toBeLessThanOrEqual(40);
    expect(bounded.state.violations).toHaveLength(400);
  });
});
