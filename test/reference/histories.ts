// fast-check arbitraries of small random histories for the exact-affected-users property tests
// (issue 9): collections, derivations, deletions, uses and shares over a handful of datasets,
// fields and subjects, with and without named subjects, on a few days so that equal timestamps
// are common. Every event is valid for the codec and for validateEvent.

import { createHash } from "node:crypto";
import fc from "fast-check";
import { EventKind, Masking, Transform, type DataAccessEvent, type Dataset, type FieldRef } from "../../services/codec/index.ts";

export const HISTORY_NAMESPACE = "wh";
export const HISTORY_START = Date.UTC(2019, 0, 1);
export const HISTORY_DAY = 86_400_000;

/** Pseudonymous ids (32 lowercase hex digits) of the subjects histories name. */
export const HISTORY_SUBJECTS: readonly string[] = ["s0", "s1", "s2", "s3"].map((s) =>
  createHash("sha256").update(s).digest("hex").slice(0, 32),
);
export const HISTORY_DATASETS = ["a", "b", "c"] as const;
/** Fields lineage may name. */
export const HISTORY_FIELDS = ["x", "y"] as const;
/** Fields uses may read: `z` is never named by lineage, so reading it reads the whole dataset. */
const READ_FIELDS = ["x", "y", "z"] as const;
export const HISTORY_CATEGORIES = ["user.contact.phone_number", "user.contact.email", "user.health"] as const;
const COLLECTED_FOR = ["essential.service.security", "essential.service.authentication", "essential.service", "marketing.advertising"];
const USED_FOR = [
  "marketing.advertising.third_party.targeted",
  "essential.service.security",
  "analytics",
  "essential.service.operations.support",
];

export interface HistoryOptions {
  /** Most events in a history. @default 20 */
  maxEvents?: number;
  /** Days the events fall on (several per day). @default 5 */
  days?: number;
}

function shell(kind: EventKind, occurredAt: number): DataAccessEvent {
  return {
    eventId: "",
    kind,
    occurredAt,
    service: `${kind.toLowerCase()}-service`,
    job: { namespace: "random", name: `${kind.toLowerCase()}-job` },
    runId: "run",
    inputs: [],
    outputs: [],
    transform: Transform.other,
    fieldLineage: [],
    masking: Masking.none,
    purposes: [],
    dataSubject: "customer",
    subjects: [],
    recipient: null,
    traceparent: null,
    pseudonymKeyId: "default",
    attributes: {},
  };
}

const dataset = (name: string, fields: { name: string; categories: string[] }[] = []): Dataset => ({
  namespace: HISTORY_NAMESPACE,
  name,
  fields,
});
const fieldRef = (name: string, field: string): FieldRef => ({ namespace: HISTORY_NAMESPACE, name, field });

/** An arbitrary event time: one of `days` days, a few instants each (so equal times happen often). */
export function timeArb(days = 5): fc.Arbitrary<number> {
  return fc
    .tuple(fc.integer({ min: 0, max: days - 1 }), fc.integer({ min: 0, max: 2 }))
    .map(([d, h]) => HISTORY_START + d * HISTORY_DAY + h * 3_600_000);
}

/** No subject (a batch job, a declaration, a whole-table use) about half the time, otherwise one to three. */
export const subjectsArb: fc.Arbitrary<string[]> = fc.oneof(
  fc.constant<string[]>([]),
  fc.subarray([...HISTORY_SUBJECTS], { minLength: 1, maxLength: 3 }),
);

const datasetName = fc.constantFrom(...HISTORY_DATASETS);
const fieldName = fc.constantFrom(...HISTORY_FIELDS);
const ref = fc.tuple(datasetName, fieldName).map(([d, f]) => fieldRef(d, f));

export function collectArb(days = 5): fc.Arbitrary<DataAccessEvent> {
  return fc
    .record({
      at: timeArb(days),
      name: datasetName,
      fields: fc.subarray([...HISTORY_FIELDS], { minLength: 1 }),
      categories: fc.array(fc.subarray([...HISTORY_CATEGORIES], { minLength: 1, maxLength: 2 }), { minLength: 2, maxLength: 2 }),
      purposes: fc.subarray(COLLECTED_FOR, { minLength: 1, maxLength: 2 }),
      dataSubject: fc.constantFrom("customer", "customer", "employee"),
      subjects: subjectsArb,
    })
    .map((r) => ({
      ...shell(EventKind.collect, r.at),
      outputs: [
        dataset(
          r.name,
          r.fields.map((f, i) => ({ name: f, categories: r.categories[i] ?? [] })),
        ),
      ],
      purposes: r.purposes,
      dataSubject: r.dataSubject,
      subjects: r.subjects,
    }));
}

export function deriveArb(days = 5): fc.Arbitrary<DataAccessEvent> {
  const transform = fc.constantFrom(Transform.copy, Transform.hash, Transform.aggregate, Transform.join);
  const masking = fc.constantFrom(Masking.none, Masking.none, Masking.masked, Masking.anonymised);
  // Column-level lineage: the event's inputs and outputs name the datasets only.
  const fieldLevel = fc
    .record({
      at: timeArb(days),
      // A mapping may mask on its own (schema version 3), besides the event's masking.
      mappings: fc.array(
        fc.record({
          output: ref,
          inputs: fc.array(ref, { minLength: 1, maxLength: 2 }),
          transform,
          masking: fc.option(masking, { nil: null }),
        }),
        { minLength: 1, maxLength: 2 },
      ),
      masking,
      subjects: subjectsArb,
    })
    .map((r) => ({
      ...shell(EventKind.derive, r.at),
      inputs: [...new Set(r.mappings.flatMap((m) => m.inputs.map((i) => i.name)))].map((n) => dataset(n)),
      outputs: [...new Set(r.mappings.map((m) => m.output.name))].map((n) => dataset(n)),
      fieldLineage: r.mappings,
      transform: r.mappings[0]?.transform ?? Transform.other,
      masking: r.masking,
      subjects: r.subjects,
    }));
  // No column-level lineage: every input field reaches every output field (or the whole output).
  const datasetLevel = fc
    .record({
      at: timeArb(days),
      inputs: fc.subarray([...HISTORY_DATASETS], { minLength: 1, maxLength: 2 }),
      output: datasetName,
      outFields: fc.subarray([...HISTORY_FIELDS]),
      transform,
      masking,
      subjects: subjectsArb,
    })
    .map((r) => ({
      ...shell(EventKind.derive, r.at),
      inputs: r.inputs.map((n) => dataset(n)),
      outputs: [
        dataset(
          r.output,
          r.outFields.map((f) => ({ name: f, categories: [] })),
        ),
      ],
      transform: r.transform,
      masking: r.masking,
      subjects: r.subjects,
    }));
  return fc.oneof(fieldLevel, datasetLevel);
}

const readArb = fc.tuple(datasetName, fc.subarray([...READ_FIELDS], { maxLength: 2 })).map(([n, fields]) =>
  dataset(
    n,
    fields.map((f) => ({ name: f, categories: [] })),
  ),
);

export function deleteArb(days = 5): fc.Arbitrary<DataAccessEvent> {
  return fc
    .record({
      at: timeArb(days),
      inputs: fc.tuple(datasetName, fc.subarray([...HISTORY_FIELDS])),
      subjects: subjectsArb,
    })
    .map((r) => ({
      ...shell(EventKind.delete, r.at),
      inputs: [
        dataset(
          r.inputs[0],
          r.inputs[1].map((f) => ({ name: f, categories: [] })),
        ),
      ],
      subjects: r.subjects,
    }));
}

export function useArb(days = 5): fc.Arbitrary<DataAccessEvent> {
  return fc
    .record({ at: timeArb(days), input: readArb, purpose: fc.constantFrom(...USED_FOR), subjects: subjectsArb })
    .map((r) => ({ ...shell(EventKind.use, r.at), inputs: [r.input], purposes: [r.purpose], subjects: r.subjects }));
}

export function shareArb(days = 5): fc.Arbitrary<DataAccessEvent> {
  return fc
    .record({ at: timeArb(days), input: readArb, purpose: fc.constantFrom(...USED_FOR), subjects: subjectsArb, external: fc.boolean() })
    .map((r) => ({
      ...shell(EventKind.share, r.at),
      inputs: [r.input],
      purposes: [r.purpose],
      subjects: r.subjects,
      recipient: { name: r.external ? "partner" : "internal-bi", external: r.external },
    }));
}

/** Gives the events of a history distinct, UUID-shaped ids in order. */
export function withIds(events: readonly DataAccessEvent[], prefix = 0): DataAccessEvent[] {
  return events.map((e, i) => ({
    ...e,
    eventId: `00000000-0000-4000-9${prefix.toString(16).padStart(3, "0")}-${i.toString(16).padStart(12, "0")}`,
  }));
}

/** A random small history: mostly lineage and uses, some deletions and shares. */
export function historyArb(options: HistoryOptions = {}): fc.Arbitrary<DataAccessEvent[]> {
  const days = options.days ?? 5;
  const event = fc.oneof(
    { arbitrary: collectArb(days), weight: 4 },
    { arbitrary: deriveArb(days), weight: 3 },
    { arbitrary: deleteArb(days), weight: 3 },
    { arbitrary: useArb(days), weight: 3 },
    { arbitrary: shareArb(days), weight: 2 },
  );
  return fc.array(event, { minLength: 1, maxLength: options.maxEvents ?? 20 }).map((events) => withIds(events));
}
