// Per-subject, time-valid holdings (issue 9, docs/rules.md "Exact affected users"): which
// subject's data, with which labels, is in which field, over which interval of time; and, per
// USE/SHARE, the fields it read and, per rule, the labels it must not have seen. The store keeps
// these rows and answers the exact count as a join (docs/tables.md, "The issue-9 model").
//
// Pure: no I/O. The processor sees events in arrival order, not time order, so the rows are a
// function of the whole history, computed in time order here whatever order the events came in.
// It recomputes everything from the history it is given (an incremental refresh is a later step);
// subjects with alike timelines share one computed template.

import { EventKind, Masking, mappingMasking, type DataAccessEvent, type Transform } from "../codec/index.ts";
import { datasetId, fieldKey, labelKey, WHOLE_DATASET } from "../lineage/index.ts";
import { createEvaluator, type Policy, type UseContext } from "../rules/index.ts";
import { coveredByAny } from "../taxonomy/index.ts";

/** Open end of a holding's validity (milliseconds); safe as a JavaScript number and an Int64. */
export const OPEN_END = Number.MAX_SAFE_INTEGER;

/** One subject's data in one field, with one label (or none: `label_key` ''), over [valid_from, valid_to). */
/**
 * Which history a holding row belongs to: the real one, or one relaxed to find why a subject named
 * by a flagged use is not exactly affected (docs/rules.md, reasons 1 and 2, then 3 from the end).
 */
export const Variant = { real: 0, noDeletions: 1, noDeletionsEveryRun: 2 } as const;
export type Variant = (typeof Variant)[keyof typeof Variant];

export interface HoldingRow {
  variant: Variant;
  subject: string;
  /** `namespace/name#field` (`#*` for the whole dataset). */
  field: string;
  /** The label (lineage labelKey); '' for the row that says the subject's data is there at all. */
  label_key: string;
  category: string;
  /** 1 when the label rests only on collections naming nobody (declarations). */
  declaration: 0 | 1;
  /** 1 when the subject's presence in the field rests on per-subject evidence. */
  evidence: 0 | 1;
  valid_from: number;
  valid_to: number;
}

/** One field a USE or SHARE read. */
export interface UseReadRow {
  event_id: string;
  occurred_at: number;
  kind: string;
  external: 0 | 1;
  /** The use names no subjects: every subject held there (by evidence) is a candidate. */
  whole_table: 0 | 1;
  subjects: string[];
  field: string;
}

/** A label that, in a read field, breaks a rule for this use (asked per label with the use's context). */
export interface ForbiddenRow {
  event_id: string;
  rule_id: string;
  label_key: string;
  category: string;
}

/** A DELETE or DERIVE naming fields the lineage never described: nothing held there is ended or carried. */
export interface UnknownTarget {
  eventId: string;
  kind: "DELETE" | "DERIVE";
  occurredAt: number;
  /** `namespace/name#field` (`#*` for a whole dataset), sorted. */
  fields: string[];
}

/** Art. 17: right after a DELETE naming a subject, that subject's erased data still held elsewhere by derivation. */
export interface ErasureFinding {
  deleteEventId: string;
  occurredAt: number;
  subject: string;
  /** `namespace/name#field` keys, sorted, still holding data of an erased origin (not the origin itself). */
  fields: string[];
}

export interface ProvenanceRows {
  holdings: HoldingRow[];
  reads: UseReadRow[];
  forbidden: ForbiddenRow[];
  /** Filled as holdings are computed (complete once every subject's holdings have been taken). */
  erasures: ErasureFinding[];
}

// ---------------------------------------------------------------------------------------------
// The timeless shape of the lineage: the fields named and the edges each DERIVE runs, resolved as
// services/lineage resolves them for the field-level check.

interface Edge {
  id: string;
  /** Field key for a column-level edge; undefined when every field of the input dataset flows. */
  from: string | undefined;
  fromDataset: string;
  to: string;
  toDataset: string;
  transform: Transform;
  masking: Masking;
}

interface Shape {
  fields: Map<string, Set<string>>;
  /** Datasets some COLLECT or DERIVE wrote; others are of unknown provenance. */
  described: Set<string>;
  edges: Map<string, Edge[]>;
}

function shapeOf(history: readonly DataAccessEvent[]): Shape {
  const fields = new Map<string, Set<string>>();
  const touch = (dataset: string, field?: string): void => {
    const set = fields.get(dataset) ?? new Set<string>();
    fields.set(dataset, set);
    if (field !== undefined) set.add(field);
  };
  const described = new Set<string>();
  const edges = new Map<string, Edge[]>();
  const edge = (
    from: string | undefined,
    fromDataset: string,
    to: string,
    toDataset: string,
    transform: Transform,
    masking: Masking,
  ): Edge => ({
    id: `${from ?? `${fromDataset}#**`}>${to}|${transform}|${masking}`,
    from,
    fromDataset,
    to,
    toDataset,
    transform,
    masking,
  });
  for (const e of history) {
    if (e.kind === EventKind.collect) {
      for (const o of e.outputs) {
        if (o.fields.length === 0) touch(datasetId(o), WHOLE_DATASET);
        for (const f of o.fields) touch(datasetId(o), f.name);
      }
    } else if (e.kind === EventKind.derive) {
      const out: Edge[] = [];
      const mapped = new Set<string>();
      for (const m of e.fieldLineage) {
        const toDataset = datasetId(m.output);
        const to = fieldKey(toDataset, m.output.field);
        touch(toDataset, m.output.field);
        mapped.add(to);
        for (const i of m.inputs) {
          touch(datasetId(i), i.field);
          out.push(edge(fieldKey(datasetId(i), i.field), datasetId(i), to, toDataset, m.transform, mappingMasking(e, m)));
        }
      }
      // An output without column-level lineage takes every field of every input.
      const mappedDatasets = new Set(e.fieldLineage.map((m) => datasetId(m.output)));
      for (const o of e.outputs) {
        const toDataset = datasetId(o);
        if (o.fields.length === 0 && mappedDatasets.has(toDataset)) continue;
        for (const name of o.fields.length > 0 ? o.fields.map((f) => f.name) : [WHOLE_DATASET]) {
          const to = fieldKey(toDataset, name);
          touch(toDataset, name);
          if (mapped.has(to)) continue;
          for (const i of e.inputs) {
            touch(datasetId(i));
            out.push(edge(undefined, datasetId(i), to, toDataset, e.transform, e.masking));
          }
        }
      }
      edges.set(e.eventId, out);
    } else continue;
    for (const d of [...e.outputs.map(datasetId), ...e.fieldLineage.map((m) => datasetId(m.output))]) {
      described.add(d);
      touch(d);
    }
  }
  return { fields, described, edges };
}

/** The field keys a use reads, as the field-level check resolves them. */
function readFields(e: DataAccessEvent, shape: Shape): string[] {
  const out = new Set<string>();
  for (const d of e.inputs) {
    const dataset = datasetId(d);
    if (!shape.described.has(dataset)) continue;
    const known = shape.fields.get(dataset) ?? new Set<string>();
    const named = d.fields.map((f) => f.name);
    const whole = named.length === 0 || named.includes(WHOLE_DATASET);
    const selected = whole ? [...known] : named.filter((f) => known.has(f));
    // A field the lineage never named: read the whole dataset, conservatively.
    const names = !whole && selected.length < named.length ? [...known] : [...selected, WHOLE_DATASET];
    for (const f of names) out.add(fieldKey(dataset, f));
  }
  return [...out];
}

// ---------------------------------------------------------------------------------------------
// One subject's holdings over time.

interface Label {
  key: string;
  category: string;
  collectedFor: string[];
  dataSubject: string;
  origin: string;
  declaration: boolean;
}

interface Held {
  labels: Map<string, Label>;
  evidence: boolean;
}

const PHASE: Record<string, number> = { COLLECT: 0, DERIVE: 0, USE: 1, SHARE: 1, DELETE: 2 };
/** Equal times and phases in event id order (as the store reads them), not in the order given. */
const byId = (a: DataAccessEvent, b: DataAccessEvent): number => (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0);

function inTimeOrder(history: readonly DataAccessEvent[]): DataAccessEvent[] {
  return history
    .map((e, i) => ({ e, i }))
    .sort((a, b) => a.e.occurredAt - b.e.occurredAt || (PHASE[a.e.kind] ?? 0) - (PHASE[b.e.kind] ?? 0) || byId(a.e, b.e) || a.i - b.i)
    .map((x) => x.e);
}

const datasetOfField = (key: string): string => key.slice(0, key.lastIndexOf("#"));

function passes(label: Label, edge: Edge, policy: Policy): Label | undefined {
  if (edge.masking === Masking.none) return label;
  const entry = policy.declassify.find(
    (d) =>
      d.transforms.includes(edge.transform) &&
      d.masking.includes(edge.masking as Exclude<Masking, "NONE">) &&
      coveredByAny(d.categories, label.category),
  );
  if (!entry) return label;
  if ("drop" in entry.action) return undefined;
  const category = entry.action.reclassifyTo;
  return { ...label, category, key: labelKey(label.origin, category, label.collectedFor, label.dataSubject) };
}

/** Adds labels (and evidence) to a field's holding; true when anything changed. */
function add(held: Map<string, Held>, field: string, labels: Iterable<Label>, evidence: boolean): boolean {
  let h = held.get(field);
  let changed = false;
  if (!h) {
    held.set(field, (h = { labels: new Map(), evidence: false }));
    changed = true;
  }
  if (evidence && !h.evidence) {
    h.evidence = true;
    changed = true;
  }
  for (const l of labels) {
    const old = h.labels.get(l.key);
    if (!old || (old.declaration && !l.declaration)) {
      h.labels.set(l.key, old ? { ...old, declaration: false } : l);
      changed = true;
    }
  }
  return changed;
}

/** The rows describing one state of a subject's holdings, keyed so that equal states compare equal. */
function snapshot(held: Map<string, Held>): Map<string, Omit<HoldingRow, "variant" | "subject" | "valid_from" | "valid_to">> {
  const rows = new Map<string, Omit<HoldingRow, "variant" | "subject" | "valid_from" | "valid_to">>();
  for (const [field, h] of held) {
    const evidence = h.evidence ? 1 : 0;
    rows.set(`${field}\u0000\u0000${evidence}`, { field, label_key: "", category: "", declaration: 0, evidence });
    for (const l of h.labels.values()) {
      const declaration = l.declaration ? 1 : 0;
      rows.set(`${field}\u0000${l.key}\u0000${evidence}${declaration}`, {
        field,
        label_key: l.key,
        category: l.category,
        declaration,
        evidence,
      });
    }
  }
  return rows;
}

function holdingsOf(
  subject: string,
  variant: Variant,
  groups: readonly DataAccessEvent[][],
  shape: Shape,
  policy: Policy,
  seen: Map<string, Label>,
  /** Every event concerns this timeline: the field-level reading (every collection, every run). */
  everyone = false,
  /** Where Art. 17 findings go (real history only): erasures whose copies survive. */
  erasures?: ErasureFinding[],
  /** The time of each group, when not its events' own (a template run: see `templated`). */
  times?: readonly number[],
): HoldingRow[] {
  const held = new Map<string, Held>();
  const active = new Map<string, { edge: Edge; named: boolean }>();
  const rows: HoldingRow[] = [];
  let open = new Map<string, { row: Omit<HoldingRow, "variant" | "subject" | "valid_from" | "valid_to">; from: number }>();

  // What changed since the last propagation and the last mark: steps that change nothing are skipped.
  let stale = false;
  let dirty = false;
  // Standing pipelines carry whatever their inputs hold, until nothing changes.
  const propagate = (): void => {
    if (!stale) return;
    stale = false;
    for (let changed = true; changed;) {
      changed = false;
      for (const { edge, named } of active.values()) {
        const sources = edge.from
          ? [edge.from, fieldKey(edge.fromDataset, WHOLE_DATASET)]
          : [...held.keys()].filter((k) => datasetOfField(k) === edge.fromDataset);
        for (const s of sources) {
          const h = held.get(s);
          if (!h) continue;
          const labels = [...h.labels.values()].flatMap((l) => passes(l, edge, policy) ?? []);
          if (add(held, edge.to, labels, named || h.evidence)) changed = dirty = true;
        }
      }
    }
  };
  // The state from `at` on: close what ended, open what began (empty intervals are dropped).
  const mark = (at: number): void => {
    if (!dirty) return;
    dirty = false;
    const now = snapshot(held);
    for (const h of held.values()) for (const l of h.labels.values()) seen.set(l.key, l);
    const next = new Map<string, { row: Omit<HoldingRow, "variant" | "subject" | "valid_from" | "valid_to">; from: number }>();
    for (const [key, o] of open) {
      if (now.has(key)) next.set(key, o);
      else if (o.from < at) rows.push({ variant, subject, ...o.row, valid_from: o.from, valid_to: at });
    }
    for (const [key, row] of now) if (!next.has(key)) next.set(key, { row, from: at });
    open = next;
  };
  const concerns = (e: DataAccessEvent): boolean => everyone || e.subjects.length === 0 || e.subjects.includes(subject);

  for (const [index, group] of groups.entries()) {
    const at = times ? (times[index] as number) : (group[0] as DataAccessEvent).occurredAt;
    for (const e of group) {
      if (e.kind === EventKind.collect && concerns(e)) {
        const declaration = e.subjects.length === 0;
        const collectedFor = [...new Set(e.purposes)].sort();
        for (const o of e.outputs) {
          for (const f of o.fields.length > 0 ? o.fields : [{ name: WHOLE_DATASET, categories: [] as string[] }]) {
            const origin = fieldKey(datasetId(o), f.name);
            const labels = [...new Set(f.categories)].map((category) => ({
              key: labelKey(origin, category, collectedFor, e.dataSubject),
              category,
              collectedFor,
              dataSubject: e.dataSubject,
              origin,
              declaration,
            }));
            if (add(held, origin, labels, !declaration)) stale = dirty = true;
          }
        }
      } else if (e.kind === EventKind.derive && (concerns(e) || variant === Variant.noDeletionsEveryRun)) {
        const named = e.subjects.includes(subject);
        for (const edge of shape.edges.get(e.eventId) ?? []) {
          const was = active.get(edge.id);
          if (was && (was.named || !named)) continue;
          active.set(edge.id, { edge, named });
          stale = true;
        }
      }
    }
    propagate();
    // Uses at `at` see this state; deletions at `at` take effect after them.
    mark(at);
    const deletions = variant === Variant.real ? group.filter((e) => e.kind === EventKind.delete && concerns(e)) : [];
    if (deletions.length === 0) continue;
    const erased: { e: DataAccessEvent; origins: Set<string>; deleted: Set<string> }[] = [];
    for (const e of deletions) {
      const deleted = new Set<string>();
      for (const d of e.inputs) {
        const dataset = datasetId(d);
        const targets = d.fields.length > 0 ? new Set(d.fields.map((f) => fieldKey(dataset, f.name))) : undefined;
        const hit = (field: string, ofDataset: string): boolean => (targets ? targets.has(field) : ofDataset === dataset);
        for (const k of held.keys()) if (hit(k, datasetOfField(k))) deleted.add(k);
        for (const k of targets ?? []) deleted.add(k);
        // The pipelines into a deleted field stop carrying the subject until a run carries them again.
        for (const [id, a] of [...active]) {
          if (hit(a.edge.to, a.edge.toDataset) && active.delete(id)) stale = true;
        }
      }
      // An erasure request (a DELETE naming the subject, not a purge naming nobody): which origins it erased.
      if (erasures && e.subjects.includes(subject)) {
        const origins = new Set<string>();
        for (const k of deleted) for (const l of held.get(k)?.labels.values() ?? []) origins.add(l.origin);
        if (origins.size > 0) erased.push({ e, origins, deleted });
      }
      for (const k of deleted) if (held.delete(k)) stale = dirty = true;
    }
    propagate();
    mark(at + 1);
    // Art. 17, judged once everything at the deletion's time has happened: the erased data's copies still held elsewhere.
    for (const x of erased) {
      const fields = [...held]
        .filter(([field, h]) => !x.deleted.has(field) && [...h.labels.values()].some((l) => x.origins.has(l.origin) && l.origin !== field))
        .map(([field]) => field)
        .sort();
      if (fields.length > 0) erasures?.push({ deleteEventId: x.e.eventId, occurredAt: x.e.occurredAt, subject, fields });
    }
  }
  for (const o of open.values()) rows.push({ variant, subject, ...o.row, valid_from: o.from, valid_to: OPEN_END });
  return rows;
}

function useContext(e: DataAccessEvent): UseContext {
  return { kind: e.kind as "USE" | "SHARE", purposes: e.purposes, dataSubject: e.dataSubject, service: e.service, recipient: e.recipient };
}

/** The model of a history: reads and forbidden labels at once, holdings subject by subject (they can be many). */
export interface ProvenanceModel {
  reads: UseReadRow[];
  forbidden: ForbiddenRow[];
  /** Subjects whose holdings `holdings()` computes. */
  subjects: number;
  /** Art. 17 findings, filled as `holdings()` goes (complete when it is done). */
  erasures: ErasureFinding[];
  /** DELETEs and DERIVEs naming fields that no COLLECT or DERIVE wrote: stored, and said. */
  unknownTargets: UnknownTarget[];
  /** Each subject's holding rows in turn (empty for a subject holding nothing where uses read). */
  holdings(): Generator<HoldingRow[]>;
}

/** `provenanceModel` with every holding in one array: for tests and small histories. */
export function computeProvenance(history: readonly DataAccessEvent[], policy: Policy): ProvenanceRows {
  const model = provenanceModel(history, policy);
  const holdings: HoldingRow[] = [];
  for (const rows of model.holdings()) for (const r of rows) holdings.push(r);
  return { holdings, reads: model.reads, forbidden: model.forbidden, erasures: model.erasures };
}

/**
 * The rows of the issue-9 model for a whole history, in any order: every subject's holdings with
 * their validity, every use's read fields, and the labels each use must not see per rule. Events
 * are assumed valid (validateEvent) and distinct by event id (a repeated id is taken once).
 */
/**
 * Computes only what the exact answer and its reasons read: holdings in fields some use read, of
 * the subjects uses name (every subject when a use names nobody) and those erasure requests name,
 * the relaxed variants only for named ones.
 */
export function provenanceModel(history: readonly DataAccessEvent[], policy: Policy): ProvenanceModel {
  const unique = [...new Map(history.map((e) => [e.eventId, e])).values()];
  const ordered = inTimeOrder(unique);
  const shape = shapeOf(ordered);
  const uses = ordered.filter((e) => e.kind === EventKind.use || e.kind === EventKind.share);
  const lineage = ordered.filter((e) => e.kind !== EventKind.use && e.kind !== EventKind.share);
  const rank = new Map(ordered.map((e, i) => [e, i]));

  // Whose holdings, where: a use reads fields; the answers need the subjects it names there (and
  // every subject's, for a use naming nobody), in the real history; relaxed ones for named subjects.
  const readsOf = new Map(uses.map((e) => [e, readFields(e, shape)]));
  const readSet = new Set([...readsOf.values()].flat());
  const named = new Set(uses.flatMap((e) => e.subjects));
  const wholeTable = uses.some((e) => e.subjects.length === 0);
  // Declarations (COLLECTs naming nobody) cover every subject any event names.
  const subjects = [...new Set(ordered.flatMap((e) => e.subjects))].sort();

  const byTime = (events: readonly DataAccessEvent[]): DataAccessEvent[][] => {
    const groups: DataAccessEvent[][] = [];
    // Runs before the subject's first collection, declaration or deletion start pipelines that
    // carry nothing yet: one step for them all gives the same intervals (none begin there).
    let lead = 0;
    while (lead < events.length && (events[lead] as DataAccessEvent).kind === EventKind.derive) lead++;
    if (lead > 1 && lead < events.length) groups.push(events.slice(0, lead));
    else lead = 0;
    for (const e of events.slice(lead)) {
      const last = groups.at(-1);
      if (last && (last[0] as DataAccessEvent).occurredAt === e.occurredAt) last.push(e);
      else groups.push([e]);
    }
    return groups;
  };
  // Each subject's timeline needs only the lineage naming them or nobody. Of the runs naming
  // nobody (a batch job runs every day), only some can change anything: an edge's first run (it
  // starts a standing pipeline) and, after a deletion concerning the subject, each edge's next run
  // (the only way a deleted field is fed again). A run of a pipeline already carrying the subject
  // changes nothing, so the others are left out: the same intervals, far fewer steps.
  const own = new Map<string, DataAccessEvent[]>();
  const everyone: DataAccessEvent[] = [];
  const runsOfEdge = new Map<string, DataAccessEvent[]>();
  const firstRuns = new Set<DataAccessEvent>();
  const everyoneDeletions: number[] = [];
  for (const e of lineage) {
    if (e.subjects.length > 0) {
      for (const s of new Set(e.subjects)) {
        const list = own.get(s);
        if (list) list.push(e);
        else own.set(s, [e]);
      }
    } else if (e.kind === EventKind.derive) {
      for (const edge of shape.edges.get(e.eventId) ?? []) {
        const runs = runsOfEdge.get(edge.id);
        if (runs) {
          if (runs.at(-1) !== e) runs.push(e);
        } else {
          runsOfEdge.set(edge.id, [e]);
          firstRuns.add(e);
        }
      }
    } else {
      everyone.push(e);
      if (e.kind === EventKind.delete) everyoneDeletions.push(e.occurredAt);
    }
  }
  const inOrder = (events: Iterable<DataAccessEvent>): DataAccessEvent[] =>
    [...new Set(events)].sort((a, b) => (rank.get(a) ?? 0) - (rank.get(b) ?? 0));
  /** The first run of each edge after time t (runs at t come before the deletion at t). */
  const runsAfter = (t: number, into: Set<DataAccessEvent>): void => {
    for (const runs of runsOfEdge.values()) {
      let lo = 0;
      let hi = runs.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((runs[mid] as DataAccessEvent).occurredAt <= t) lo = mid + 1;
        else hi = mid;
      }
      const next = runs[lo];
      if (next) into.add(next);
    }
  };
  const afterEveryoneDeletions = new Set<DataAccessEvent>();
  for (const t of everyoneDeletions) runsAfter(t, afterEveryoneDeletions);
  const common = inOrder([...firstRuns, ...afterEveryoneDeletions, ...everyone]);
  const timelineOf = (s: string): DataAccessEvent[] => {
    const mine = own.get(s) ?? [];
    if (mine.some((e) => e.kind === EventKind.delete)) {
      const runs = new Set([...firstRuns, ...afterEveryoneDeletions]);
      for (const e of mine) if (e.kind === EventKind.delete) runsAfter(e.occurredAt, runs);
      return inOrder([...mine, ...everyone, ...runs]);
    }
    // Both lists are in time order already: merge them.
    const out: DataAccessEvent[] = [];
    let i = 0;
    let j = 0;
    while (i < mine.length || j < common.length) {
      const a = mine[i];
      const b = common[j];
      if (b === undefined || (a !== undefined && (rank.get(a) ?? 0) <= (rank.get(b) ?? 0))) {
        if (a === b) j++;
        out.push(a as DataAccessEvent);
        i++;
      } else {
        out.push(b);
        j++;
      }
    }
    return out;
  };
  // Relaxed to every run carrying everyone: the runs naming others too (no deletions there).
  const otherRuns = lineage.filter((e) => e.kind === EventKind.derive && e.subjects.length > 0);

  const seen = new Map<string, Label>();
  // Labels that can ever be in a field (every collection through every run, as the field-level
  // check sees them): a use's rules are asked about these, per label. Without deletions nothing
  // is ever taken away, so the end state is the union over time: one step over all the lineage.
  const fieldLevel = lineage.length === 0 ? [] : holdingsOf("", Variant.noDeletionsEveryRun, [lineage], shape, policy, seen, true);
  const labelsIn = new Map<string, Map<string, Label>>();
  for (const h of fieldLevel) {
    const label = seen.get(h.label_key);
    if (!label) continue;
    const m = labelsIn.get(h.field) ?? new Map<string, Label>();
    labelsIn.set(h.field, m);
    m.set(label.key, label);
  }
  const evaluator = createEvaluator(policy);
  const reads: UseReadRow[] = [];
  const forbidden: ForbiddenRow[] = [];
  for (const e of uses) {
    const fields = readsOf.get(e) ?? [];
    const common = {
      event_id: e.eventId,
      occurred_at: e.occurredAt,
      kind: e.kind,
      external: e.kind === EventKind.share && e.recipient?.external === true ? 1 : 0,
      whole_table: e.subjects.length === 0 ? 1 : 0,
      subjects: [...new Set(e.subjects)].sort(),
    } as const;
    for (const field of fields) reads.push({ ...common, field });
    const candidates = new Map<string, Label>();
    for (const f of fields) for (const [k, l] of labelsIn.get(f) ?? []) candidates.set(k, l);
    for (const v of evaluator.evaluate([...candidates.values()], useContext(e))) {
      for (const l of v.labels) forbidden.push({ event_id: e.eventId, rule_id: v.ruleId, label_key: l.key, category: l.category });
    }
  }
  // Subjects an erasure request names are computed too, for the Art. 17 findings.
  const erasing = new Set(lineage.flatMap((e) => (e.kind === EventKind.delete ? e.subjects : [])));
  const computed = subjects.filter((s) => wholeTable || named.has(s) || erasing.has(s));
  const erasures: ErasureFinding[] = [];
  // Subjects whose timelines have the same steps in the same order (the same kinds of collection,
  // the same runs and deletions, grouped alike) hold the same rows between the same steps: only
  // the times differ. One run per distinct timeline, on step numbers instead of times, gives a
  // template; each subject's rows are the template with its own times put back.
  const tokens = [new Map<DataAccessEvent, string>(), new Map<DataAccessEvent, string>()];
  const tokenOf = (e: DataAccessEvent, subject: string): string => {
    const namedHere = e.subjects.includes(subject) ? 1 : 0;
    const cache = tokens[namedHere] as Map<DataAccessEvent, string>;
    let t = cache.get(e);
    if (t === undefined) {
      const what =
        e.kind === EventKind.derive
          ? (shape.edges.get(e.eventId) ?? []).map((x) => x.id).join(";")
          : `${[...e.inputs, ...e.outputs].map(objectId).join(";")}|${[...new Set(e.purposes)].sort().join(",")}|${e.dataSubject}`;
      const key = `${e.kind}|${e.subjects.length === 0 ? 0 : 1}|${namedHere}|${what}`;
      t = internedTokens.get(key);
      if (t === undefined) internedTokens.set(key, (t = String(internedTokens.size)));
      cache.set(e, t);
    }
    return t;
  };
  const internedTokens = new Map<string, string>();
  // Datasets by identity (a store's reader shares one value between events): equal content under
  // two identities only makes two templates, never a wrong one. Their content is in the key too.
  const objects = new Map<object, string>();
  function objectId(o: object): string {
    let id = objects.get(o);
    if (id === undefined) objects.set(o, (id = `${objects.size}=${JSON.stringify(o)}`));
    return id;
  }
  interface Template {
    rows: HoldingRow[];
    /** Art. 17 findings by the position of their DELETE in the groups. */
    erasures: { group: number; index: number; fields: string[] }[];
  }
  const templates = new Map<string, Template>();
  const templated = (subject: string, variant: Variant, groups: DataAccessEvent[][], erasing: boolean): HoldingRow[] => {
    const key = `${variant}${erasing ? "e" : ""}:${groups.map((g) => g.map((e) => tokenOf(e, subject)).join(",")).join("/")}`;
    let template = templates.get(key);
    if (!template) {
      const found: ErasureFinding[] = [];
      const steps = groups.map((_, i) => 2 * i);
      const rows = holdingsOf(subject, variant, groups, shape, policy, seen, false, erasing ? found : undefined, steps);
      const where = new Map<string, { group: number; index: number }>();
      groups.forEach((g, group) => g.forEach((e, index) => where.set(e.eventId, { group, index })));
      template = {
        rows,
        erasures: found.map((f) => ({ ...(where.get(f.deleteEventId) as { group: number; index: number }), fields: f.fields })),
      };
      templates.set(key, template);
    }
    const time = (step: number): number =>
      step === OPEN_END ? OPEN_END : (groups[step >> 1]?.[0] as DataAccessEvent).occurredAt + (step & 1);
    const out: HoldingRow[] = [];
    for (const r of template.rows) {
      const from = time(r.valid_from);
      const to = time(r.valid_to);
      if (from < to) out.push({ ...r, subject, valid_from: from, valid_to: to });
    }
    for (const x of template.erasures) {
      const e = groups[x.group]?.[x.index] as DataAccessEvent;
      erasures.push({ deleteEventId: e.eventId, occurredAt: e.occurredAt, subject, fields: x.fields });
    }
    return out;
  };

  function* holdings(): Generator<HoldingRow[]> {
    for (const s of computed) {
      const isNamed = named.has(s);
      const timeline = timelineOf(s);
      const groups = byTime(timeline);
      const rows = templated(s, Variant.real, groups, erasing.has(s));
      if (isNamed) {
        const relaxed = templated(s, Variant.noDeletions, groups, false);
        rows.push(...relaxed);
        // With no run naming anyone else, carrying everyone changes nothing: the same rows.
        if (otherRuns.length === 0) for (const r of relaxed) rows.push({ ...r, variant: Variant.noDeletionsEveryRun });
        else rows.push(...templated(s, Variant.noDeletionsEveryRun, byTime(inOrder([...timeline, ...otherRuns])), false));
      }
      const kept = rows.filter((r) => readSet.has(r.field));
      yield kept;
    }
  }
  // Bad input is stored and said, never an error: a DELETE of fields no COLLECT or DERIVE wrote
  // ends nothing; a DERIVE from datasets nothing wrote carries nothing.
  const known = (dataset: string, field: string): boolean =>
    shape.described.has(dataset) && (field === WHOLE_DATASET || (shape.fields.get(dataset)?.has(field) ?? false));
  const unknownTargets: UnknownTarget[] = [];
  for (const e of lineage) {
    if (e.kind === EventKind.delete) {
      const fields = e.inputs.flatMap((d) =>
        (d.fields.length > 0 ? d.fields.map((f) => f.name) : [WHOLE_DATASET])
          .filter((f) => !known(datasetId(d), f))
          .map((f) => fieldKey(datasetId(d), f)),
      );
      if (fields.length > 0)
        unknownTargets.push({ eventId: e.eventId, kind: "DELETE", occurredAt: e.occurredAt, fields: [...new Set(fields)].sort() });
    } else if (e.kind === EventKind.derive) {
      const inputs = [...e.inputs.map(datasetId), ...e.fieldLineage.flatMap((m) => m.inputs.map(datasetId))];
      const fields = inputs.filter((d) => !shape.described.has(d)).map((d) => fieldKey(d, WHOLE_DATASET));
      if (fields.length > 0)
        unknownTargets.push({ eventId: e.eventId, kind: "DERIVE", occurredAt: e.occurredAt, fields: [...new Set(fields)].sort() });
    }
  }
  return { reads, forbidden, subjects: computed.length, erasures, unknownTargets, holdings };
}
