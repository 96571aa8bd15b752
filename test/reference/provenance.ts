// Reference evaluator for issue 9: who was *exactly* affected by each violating use, by
// per-subject, time-valid provenance (docs/rules.md, "Exact affected users"). Brute force over a
// small in-memory history, written to be read and believed, not to be fast: for every subject it
// replays the whole history in time order and keeps that one person's holdings field by field.
// It shares nothing with the store's queries. It does share what defines the rules: the policy's
// rule matching (services/rules) decides per label, and the field-level ("possibly affected")
// side is the live lineage graph itself (services/lineage), as the processor asks it.

import { EventKind, Masking, type DataAccessEvent, type Transform } from "../../services/codec/index.ts";
import { createLineageGraph, datasetId, fieldKey, labelKey, WHOLE_DATASET, type FieldSelector } from "../../services/lineage/index.ts";
import { createEvaluator, type Evaluator, type Policy, type UseContext } from "../../services/rules/index.ts";
import { coveredByAny } from "../../services/taxonomy/index.ts";

/** Why a subject the field-level check names is not exactly affected (first that applies, in this order). */
export const Reason = {
  deletedBefore: "deleted before the use",
  notCarried: "not carried by a subject-named derivation",
  collectedAfter: "collected after the use",
  noProvenance: "no provenance for that subject",
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];
/** Precedence of the reasons: a subject with different reasons in different uses is counted under the first. */
export const REASONS: readonly Reason[] = [Reason.deletedBefore, Reason.notCarried, Reason.collectedAfter, Reason.noProvenance];

/** One (USE or SHARE, rule) that the field-level check flags. */
export interface UseVerdict {
  eventId: string;
  kind: "USE" | "SHARE";
  occurredAt: number;
  ruleId: string;
  mode: string;
  /** The use names no subjects: a whole-table use or export. */
  wholeTable: boolean;
  /** A SHARE to an external recipient. */
  external: boolean;
  /** Subjects whose data was held in a read field at the use's time with a label the rule forbids. Sorted. */
  exact: string[];
  /** The field-level reading: every subject the use names (none for a whole-table use). Sorted. */
  fieldLevel: string[];
  /** For each subject of `fieldLevel` not in `exact`: why. */
  reasons: Record<string, Reason>;
  /** Exact records: `subject|category` for each category of a forbidden label the subject held there. Sorted. */
  exactRecords: string[];
  /** Field-level records: each subject of `fieldLevel` × each category of the field-level violation. Sorted. */
  fieldLevelRecords: string[];
  /** Exact subjects whose forbidden labels all rest on collections naming nobody (declarations). Sorted. */
  onDeclarationOnly: string[];
}

/** Art. 17: right after a DELETE naming a subject, that subject's deleted data still held elsewhere by derivation. */
export interface Art17Finding {
  deleteEventId: string;
  occurredAt: number;
  subject: string;
  /** `dataset#field` keys, sorted, where a label of the same origin as deleted data is still held (not its origin). */
  fields: string[];
}

export interface ProvenanceResult {
  /** One per (USE or SHARE, rule) flagged at field level, in the order of the history sorted by time. */
  verdicts: UseVerdict[];
  art17: Art17Finding[];
}

/** Half-open window of use times: `from` inclusive, `to` exclusive (milliseconds). */
export interface TimeWindow {
  from?: number;
  to?: number;
}

export interface Counts {
  users: number;
  records: number;
  /** Uses and shares with at least one affected subject (field level: every flagged use, whole-table ones included). */
  violatingEvents: number;
  first: number | null;
  last: number | null;
}

export interface RuleSummary {
  ruleId: string;
  exact: Counts;
  fieldLevel: Counts;
  /** Subjects counted at field level but not exactly, by reason (each subject once). */
  possiblyNotExactly: { users: number; reasons: Record<Reason, number> };
  /** Exactly affected subjects whose every exact violation rests only on declarations. */
  onDeclarationOnly: number;
  sharedOutside: {
    exact: { shared: boolean; subjects: number; events: number };
    fieldLevel: { shared: boolean; subjects: number; events: number };
  };
}

const PHASE: Record<string, number> = { COLLECT: 0, DERIVE: 0, USE: 1, SHARE: 1, DELETE: 2 };
/** Equal times and phases in event id order (as the store reads them), not in the order given. */
const byId = (a: DataAccessEvent, b: DataAccessEvent): number => (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0);

/**
 * The history in the order its effects apply: by time; at equal times lineage (collections and
 * derivations) first, then uses and shares, then deletions (a deletion at t takes effect after the
 * uses at t); then by event id (so never by the order given).
 */
export function timeOrder(history: readonly DataAccessEvent[]): DataAccessEvent[] {
  return history
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.occurredAt - b.e.occurredAt || (PHASE[a.e.kind] ?? 0) - (PHASE[b.e.kind] ?? 0) || byId(a.e, b.e) || a.i - b.i)
    .map((x) => x.e);
}

// ---------------------------------------------------------------------------------------------
// The shape of the lineage, timeless: which fields exist and which edges each DERIVE runs. This
// mirrors services/lineage/graph.ts so both readings resolve fields and edges alike.

interface Edge {
  id: string;
  /** Field key for a column-level edge; undefined for an edge from the whole input dataset. */
  from: string | undefined;
  fromDataset: string;
  to: string;
  toDataset: string;
  transform: Transform;
  masking: Masking;
}

interface Shape {
  /** dataset -> fields the lineage has named (`*` for a dataset collected or derived without fields). */
  fields: Map<string, Set<string>>;
  /** Datasets some COLLECT or DERIVE wrote: others are of unknown provenance and carry nothing. */
  described: Set<string>;
  edgesOf: Map<DataAccessEvent, Edge[]>;
}

function edgeId(from: string | undefined, fromDataset: string, to: string, transform: string, masking: string): string {
  return `${from ?? fromDataset + "#**"}>${to}|${transform}|${masking}`;
}

function shapeOf(history: readonly DataAccessEvent[]): Shape {
  const fields = new Map<string, Set<string>>();
  const touch = (dataset: string, field?: string) => {
    let set = fields.get(dataset);
    if (!set) fields.set(dataset, (set = new Set()));
    if (field !== undefined) set.add(field);
  };
  const described = new Set<string>();
  const edgesOf = new Map<DataAccessEvent, Edge[]>();
  for (const e of history) {
    if (e.kind === EventKind.collect) {
      for (const o of e.outputs) {
        if (o.fields.length === 0) touch(datasetId(o), WHOLE_DATASET);
        for (const f of o.fields) touch(datasetId(o), f.name);
      }
    } else if (e.kind === EventKind.derive) {
      const edges: Edge[] = [];
      const mapped = new Set<string>();
      for (const m of e.fieldLineage) {
        const toDataset = datasetId(m.output);
        const to = fieldKey(toDataset, m.output.field);
        touch(toDataset, m.output.field);
        mapped.add(to);
        // A mapping's own masking, when it has one, else the event's (written out here, not shared).
        const masking = m.masking && m.masking !== Masking.none ? m.masking : e.masking;
        for (const i of m.inputs) {
          const fromDataset = datasetId(i);
          const from = fieldKey(fromDataset, i.field);
          touch(fromDataset, i.field);
          edges.push({
            id: edgeId(from, fromDataset, to, m.transform, masking),
            from,
            fromDataset,
            to,
            toDataset,
            transform: m.transform,
            masking,
          });
        }
      }
      // Outputs without column-level lineage take every field of every input (dataset level).
      const mappedDatasets = new Set(e.fieldLineage.map((m) => datasetId(m.output)));
      for (const o of e.outputs) {
        const toDataset = datasetId(o);
        if (o.fields.length === 0 && mappedDatasets.has(toDataset)) continue;
        for (const field of o.fields.length > 0 ? o.fields.map((f) => f.name) : [WHOLE_DATASET]) {
          const to = fieldKey(toDataset, field);
          touch(toDataset, field);
          if (mapped.has(to)) continue;
          for (const i of e.inputs) {
            const fromDataset = datasetId(i);
            touch(fromDataset);
            edges.push({
              id: edgeId(undefined, fromDataset, to, e.transform, e.masking),
              from: undefined,
              fromDataset,
              to,
              toDataset,
              transform: e.transform,
              masking: e.masking,
            });
          }
        }
      }
      edgesOf.set(e, edges);
    } else continue;
    for (const d of [...e.outputs.map(datasetId), ...e.fieldLineage.map((m) => datasetId(m.output))]) {
      described.add(d);
      touch(d);
    }
  }
  return { fields, described, edgesOf };
}

function selectorsOf(e: DataAccessEvent): FieldSelector[] {
  return e.inputs.map((d) => ({ dataset: datasetId(d), fields: d.fields.length > 0 ? d.fields.map((f) => f.name) : [WHOLE_DATASET] }));
}

/**
 * The field keys a use reads, as the live graph resolves them: the named fields and the whole
 * dataset (`*`); the whole dataset when it names none; every known field when it names a field
 * the lineage never named (read conservatively). Undescribed datasets read nothing.
 */
function readFields(e: DataAccessEvent, shape: Shape): string[] {
  const out = new Set<string>();
  for (const s of selectorsOf(e)) {
    if (!shape.described.has(s.dataset)) continue;
    const known = shape.fields.get(s.dataset) ?? new Set<string>();
    const whole = s.fields.includes(WHOLE_DATASET);
    const selected = whole ? [...known] : s.fields.filter((f) => known.has(f));
    const names = !whole && selected.length < s.fields.length ? [...known] : [...selected, WHOLE_DATASET];
    for (const f of names) out.add(fieldKey(s.dataset, f));
  }
  return [...out];
}

/** What deletion a DELETE names: the named fields of each dataset, or the whole dataset. */
function deletedTargets(e: DataAccessEvent): { dataset: string; fields: string[] | undefined }[] {
  return e.inputs.map((d) => ({
    dataset: datasetId(d),
    fields: d.fields.length > 0 ? d.fields.map((f) => fieldKey(datasetId(d), f.name)) : undefined,
  }));
}

// ---------------------------------------------------------------------------------------------
// One subject's timeline.

interface HeldLabel {
  key: string;
  category: string;
  collectedFor: string[];
  dataSubject: string;
  /** `dataset#field` where it was collected. */
  origin: string;
  /** Rests only on collections naming nobody (dataset-level declarations). */
  declaration: boolean;
}

/** The subject's data in one field: present (perhaps with no labels left) and its labels. */
interface Holding {
  labels: Map<string, HeldLabel>;
  /** Present by per-subject evidence: a COLLECT or DERIVE naming the subject, or carried from such. */
  evidence: boolean;
}

type Holdings = Map<string, Holding>;

/** How the simulation is relaxed, to find why a subject is not exactly affected. */
interface Relax {
  deletes: boolean;
  naming: boolean;
}

/** What the subject had in a use's read fields when the use happened. */
interface Seen {
  labels: HeldLabel[];
  evidence: boolean;
}

interface Timeline {
  /** Per USE/SHARE event. */
  atUse: Map<DataAccessEvent, Seen>;
  final: Holdings;
  art17: Art17Finding[];
}

function datasetOfKey(key: string): string {
  return key.slice(0, key.lastIndexOf("#"));
}

function merge(into: Holdings, field: string, labels: Iterable<HeldLabel>, evidence: boolean): boolean {
  let h = into.get(field);
  let changed = false;
  if (!h) {
    h = { labels: new Map(), evidence: false };
    into.set(field, h);
    changed = true;
  }
  if (evidence && !h.evidence) {
    h.evidence = true;
    changed = true;
  }
  for (const l of labels) {
    const old = h.labels.get(l.key);
    if (!old) {
      h.labels.set(l.key, l);
      changed = true;
    } else if (old.declaration && !l.declaration) {
      h.labels.set(l.key, { ...old, declaration: false });
      changed = true;
    }
  }
  return changed;
}

/** The label as it arrives over an edge: passed on, reclassified or dropped by a declassify entry (as services/lineage does). */
function carry(l: HeldLabel, edge: Edge, policy: Policy): HeldLabel | undefined {
  if (edge.masking === Masking.none) return l;
  const rule = policy.declassify.find(
    (d) =>
      d.transforms.includes(edge.transform) &&
      d.masking.includes(edge.masking as Exclude<Masking, "NONE">) &&
      coveredByAny(d.categories, l.category),
  );
  if (!rule) return l;
  if ("drop" in rule.action) return undefined;
  const category = rule.action.reclassifyTo;
  return { ...l, category, key: labelKey(l.origin, category, l.collectedFor, l.dataSubject) };
}

function simulate(subject: string, ordered: readonly DataAccessEvent[], shape: Shape, policy: Policy, relax: Relax): Timeline {
  const held: Holdings = new Map();
  /** Edges carrying this subject now: edge id -> (edge, whether a run named the subject). */
  const active = new Map<string, { edge: Edge; named: boolean }>();
  const atUse = new Map<DataAccessEvent, Seen>();
  const art17: Art17Finding[] = [];
  let pendingArt17: { e: DataAccessEvent; origins: Set<string>; deleted: Set<string> }[] = [];

  /** Every active edge carries what its input holds into its output, until nothing changes. */
  function close(): void {
    for (let changed = true; changed;) {
      changed = false;
      for (const { edge, named } of active.values()) {
        const sources = edge.from
          ? [edge.from, fieldKey(edge.fromDataset, WHOLE_DATASET)]
          : [...held.keys()].filter((k) => datasetOfKey(k) === edge.fromDataset);
        for (const s of sources) {
          const h = held.get(s);
          if (!h) continue;
          const labels = [...h.labels.values()].map((l) => carry(l, edge, policy)).filter((l) => l !== undefined);
          if (merge(held, edge.to, labels, named || h.evidence)) changed = true;
        }
      }
    }
  }

  function concerns(e: DataAccessEvent): boolean {
    return e.subjects.length === 0 || e.subjects.includes(subject);
  }

  function settleArt17(): void {
    for (const p of pendingArt17) {
      const fields: string[] = [];
      for (const [field, h] of held) {
        if (p.deleted.has(field)) continue;
        if ([...h.labels.values()].some((l) => p.origins.has(l.origin) && l.origin !== field)) fields.push(field);
      }
      if (fields.length > 0) art17.push({ deleteEventId: p.e.eventId, occurredAt: p.e.occurredAt, subject, fields: fields.sort() });
    }
    pendingArt17 = [];
  }

  for (let i = 0; i < ordered.length; i++) {
    const e = ordered[i] as DataAccessEvent;
    switch (e.kind) {
      case EventKind.collect: {
        if (!concerns(e)) break;
        const declaration = e.subjects.length === 0;
        const collectedFor = [...new Set(e.purposes)].sort();
        for (const o of e.outputs) {
          const dataset = datasetId(o);
          for (const f of o.fields.length > 0 ? o.fields : [{ name: WHOLE_DATASET, categories: [] }]) {
            const origin = fieldKey(dataset, f.name);
            const labels = [...new Set(f.categories)].map((category) => ({
              key: labelKey(origin, category, collectedFor, e.dataSubject),
              category,
              collectedFor,
              dataSubject: e.dataSubject,
              origin,
              declaration,
            }));
            merge(held, origin, labels, !declaration);
          }
        }
        close();
        break;
      }
      case EventKind.derive: {
        const named = e.subjects.includes(subject);
        if (!named && e.subjects.length > 0 && !relax.naming) break;
        for (const edge of shape.edgesOf.get(e) ?? []) {
          const was = active.get(edge.id);
          active.set(edge.id, { edge, named: named || (was?.named ?? false) });
        }
        close();
        break;
      }
      case EventKind.use:
      case EventKind.share: {
        const labels = new Map<string, HeldLabel>();
        let evidence = false;
        for (const f of readFields(e, shape)) {
          const h = held.get(f);
          if (!h) continue;
          evidence ||= h.evidence;
          for (const l of h.labels.values()) {
            const old = labels.get(l.key);
            if (!old || (old.declaration && !l.declaration)) labels.set(l.key, l);
          }
        }
        atUse.set(e, { labels: [...labels.values()], evidence });
        break;
      }
      case EventKind.delete: {
        if (relax.deletes || !concerns(e)) break;
        const deleted = new Set<string>();
        for (const t of deletedTargets(e)) {
          for (const k of held.keys()) if (t.fields ? t.fields.includes(k) : datasetOfKey(k) === t.dataset) deleted.add(k);
          for (const [id, a] of active) if (t.fields ? t.fields.includes(a.edge.to) : a.edge.toDataset === t.dataset) active.delete(id);
          for (const f of t.fields ?? []) deleted.add(f);
        }
        if (e.subjects.includes(subject)) {
          const origins = new Set<string>();
          for (const k of deleted) for (const l of held.get(k)?.labels.values() ?? []) origins.add(l.origin);
          if (origins.size > 0) pendingArt17.push({ e, origins, deleted });
        }
        for (const k of deleted) held.delete(k);
        close();
        break;
      }
    }
    // Art. 17 is judged once everything at the deletion's time has happened.
    const next = ordered[i + 1];
    if (pendingArt17.length > 0 && (!next || next.occurredAt !== e.occurredAt)) settleArt17();
  }
  return { atUse, final: held, art17 };
}

function seenIn(holdings: Holdings, e: DataAccessEvent, shape: Shape): HeldLabel[] {
  const labels = new Map<string, HeldLabel>();
  for (const f of readFields(e, shape)) for (const l of holdings.get(f)?.labels.values() ?? []) labels.set(l.key, l);
  return [...labels.values()];
}

// ---------------------------------------------------------------------------------------------

function useContext(e: DataAccessEvent): UseContext {
  return { kind: e.kind as "USE" | "SHARE", purposes: e.purposes, dataSubject: e.dataSubject, service: e.service, recipient: e.recipient };
}

/** rule id -> the labels (of those given) that break it. */
function violated(evaluator: Evaluator, labels: readonly HeldLabel[], e: DataAccessEvent): Map<string, HeldLabel[]> {
  return new Map(evaluator.evaluate(labels, useContext(e)).map((v) => [v.ruleId, v.labels]));
}

/**
 * Judges every USE and SHARE of `history` under `policy`: per rule the field-level check flags,
 * the exactly affected subjects, the possibly affected ones with a reason each, and records; plus
 * the Art. 17 findings. Events are assumed valid (validateEvent).
 */
export function evaluateProvenance(history: readonly DataAccessEvent[], policy: Policy): ProvenanceResult {
  const ordered = timeOrder(history);
  const shape = shapeOf(ordered);
  const evaluator = createEvaluator(policy);

  // Field level: the live graph, given every collection and derivation, whatever their time.
  const graph = createLineageGraph(policy.declassify);
  for (const e of ordered) graph.apply(e);

  const universe = [...new Set(ordered.flatMap((e) => e.subjects))].sort();
  const real = new Map<string, Timeline>();
  const noDeletes = new Map<string, Timeline>();
  const noDeletesAnyRun = new Map<string, Timeline>();
  for (const s of universe) {
    real.set(s, simulate(s, ordered, shape, policy, { deletes: false, naming: false }));
    noDeletes.set(s, simulate(s, ordered, shape, policy, { deletes: true, naming: false }));
    noDeletesAnyRun.set(s, simulate(s, ordered, shape, policy, { deletes: true, naming: true }));
  }

  const verdicts: UseVerdict[] = [];
  for (const e of ordered) {
    if (e.kind !== EventKind.use && e.kind !== EventKind.share) continue;
    const lookup = graph.labelsOf(selectorsOf(e));
    const fieldVerdicts = evaluator.evaluate(lookup.labels, useContext(e));
    if (fieldVerdicts.length === 0) continue;
    const wholeTable = e.subjects.length === 0;
    const named = [...new Set(e.subjects)].sort();
    const candidates = wholeTable ? universe : named;
    const perSubject = new Map<string, { seen: Seen; byRule: Map<string, HeldLabel[]> }>();
    for (const s of candidates) {
      const seen = real.get(s)?.atUse.get(e) ?? { labels: [], evidence: false };
      perSubject.set(s, { seen, byRule: violated(evaluator, seen.labels, e) });
    }
    for (const fv of fieldVerdicts) {
      const exact: string[] = [];
      const exactRecords = new Set<string>();
      const onDeclarationOnly: string[] = [];
      for (const s of candidates) {
        const p = perSubject.get(s);
        const labels = p?.byRule.get(fv.ruleId);
        if (!p || !labels) continue;
        // A whole-table use reaches those whose data is there by per-subject evidence.
        if (wholeTable && !p.seen.evidence) continue;
        exact.push(s);
        for (const l of labels) exactRecords.add(`${s}|${l.category}`);
        if (labels.every((l) => l.declaration)) onDeclarationOnly.push(s);
      }
      const reasons: Record<string, Reason> = {};
      for (const s of named) {
        if (exact.includes(s)) continue;
        const breaks = (labels: HeldLabel[]) => violated(evaluator, labels, e).has(fv.ruleId);
        if (breaks(noDeletes.get(s)?.atUse.get(e)?.labels ?? [])) reasons[s] = Reason.deletedBefore;
        else if (breaks(noDeletesAnyRun.get(s)?.atUse.get(e)?.labels ?? [])) reasons[s] = Reason.notCarried;
        else if (breaks(seenIn(noDeletesAnyRun.get(s)?.final ?? new Map<string, Holding>(), e, shape))) reasons[s] = Reason.collectedAfter;
        else reasons[s] = Reason.noProvenance;
      }
      const categories = [...new Set(fv.labels.map((l) => l.category))];
      verdicts.push({
        eventId: e.eventId,
        kind: e.kind,
        occurredAt: e.occurredAt,
        ruleId: fv.ruleId,
        mode: fv.mode,
        wholeTable,
        external: e.kind === EventKind.share && e.recipient?.external === true,
        exact,
        fieldLevel: named,
        reasons,
        exactRecords: [...exactRecords].sort(),
        fieldLevelRecords: named.flatMap((s) => categories.map((c) => `${s}|${c}`)).sort(),
        onDeclarationOnly,
      });
    }
  }
  const art17 = universe
    .flatMap((s) => real.get(s)?.art17 ?? [])
    .sort((a, b) => a.occurredAt - b.occurredAt || a.subject.localeCompare(b.subject));
  return { verdicts, art17 };
}

function inWindow(t: number, w: TimeWindow): boolean {
  return (w.from === undefined || t >= w.from) && (w.to === undefined || t < w.to);
}

/**
 * The reference's answer for one rule and window in the store's shape (`exactAffected` without
 * its rule id): what the store's answer and the rows' in-memory answer are compared with.
 */
export function expectedAnswer(result: ProvenanceResult, ruleId: string, window: TimeWindow = {}) {
  const expected = summarize(result, ruleId, window);
  return {
    exact: expected.exact,
    fieldLevel: expected.fieldLevel,
    possiblyNotExactly: {
      users: expected.possiblyNotExactly.users,
      reasons: {
        deletedBefore: expected.possiblyNotExactly.reasons[Reason.deletedBefore],
        notCarried: expected.possiblyNotExactly.reasons[Reason.notCarried],
        collectedAfter: expected.possiblyNotExactly.reasons[Reason.collectedAfter],
        noProvenance: expected.possiblyNotExactly.reasons[Reason.noProvenance],
      },
    },
    sharedOutside: expected.sharedOutside.exact,
    onDeclarationOnly: expected.onDeclarationOnly,
  };
}

/** The per-rule answer over a window of use times: users, records, first and last, shared outside. */
export function summarize(result: ProvenanceResult, ruleId: string, window: TimeWindow = {}): RuleSummary {
  const vs = result.verdicts.filter((v) => v.ruleId === ruleId && inWindow(v.occurredAt, window));
  const counts = (pick: (v: UseVerdict) => { subjects: string[]; records: string[]; violating: boolean }): Counts => {
    const users = new Set<string>();
    const records = new Set<string>();
    const times: number[] = [];
    for (const v of vs) {
      const p = pick(v);
      for (const s of p.subjects) users.add(s);
      for (const r of p.records) records.add(r);
      if (p.violating) times.push(v.occurredAt);
    }
    return {
      users: users.size,
      records: records.size,
      violatingEvents: times.length,
      first: times.length > 0 ? Math.min(...times) : null,
      last: times.length > 0 ? Math.max(...times) : null,
    };
  };
  const exactUsers = new Set(vs.flatMap((v) => v.exact));
  const reasonOf = new Map<string, Reason>();
  for (const v of vs) {
    for (const [s, r] of Object.entries(v.reasons)) {
      if (exactUsers.has(s)) continue;
      const old = reasonOf.get(s);
      if (!old || REASONS.indexOf(r) < REASONS.indexOf(old)) reasonOf.set(s, r);
    }
  }
  const reasons = Object.fromEntries(REASONS.map((r) => [r, 0])) as Record<Reason, number>;
  for (const r of reasonOf.values()) reasons[r]++;
  const declaredOnly = new Set(vs.flatMap((v) => v.onDeclarationOnly));
  for (const v of vs) for (const s of v.exact) if (!v.onDeclarationOnly.includes(s)) declaredOnly.delete(s);
  const outside = vs.filter((v) => v.external);
  const exactOutside = outside.filter((v) => v.exact.length > 0);
  // Every verdict here is flagged at field level: an external share among them was shared outside
  // at field level, even a whole-table export that names nobody (and so counts no users there).
  const fieldOutside = outside;
  return {
    ruleId,
    exact: counts((v) => ({ subjects: v.exact, records: v.exactRecords, violating: v.exact.length > 0 })),
    fieldLevel: counts((v) => ({ subjects: v.fieldLevel, records: v.fieldLevelRecords, violating: true })),
    possiblyNotExactly: { users: reasonOf.size, reasons },
    onDeclarationOnly: declaredOnly.size,
    sharedOutside: {
      exact: { shared: exactOutside.length > 0, subjects: new Set(exactOutside.flatMap((v) => v.exact)).size, events: exactOutside.length },
      fieldLevel: {
        shared: fieldOutside.length > 0,
        subjects: new Set(fieldOutside.flatMap((v) => v.fieldLevel)).size,
        events: fieldOutside.length,
      },
    },
  };
}

/** Art. 17 findings of deletions in the window: the findings and how many distinct subjects they concern. */
export function art17In(result: ProvenanceResult, window: TimeWindow = {}): { findings: Art17Finding[]; subjects: number } {
  const findings = result.art17.filter((f) => inWindow(f.occurredAt, window));
  return { findings, subjects: new Set(findings.map((f) => f.subject)).size };
}
