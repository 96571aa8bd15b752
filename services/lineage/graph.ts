import { hash } from "node:crypto";
import { coveredByAny } from "../taxonomy/index.ts";
import {
  EventKind,
  Masking,
  mappingMasking,
  ownMasking,
  type DataAccessEvent,
  type Dataset,
  type DatasetField,
  type FieldMapping,
  type FieldRef,
  type Transform,
} from "../codec/index.ts";
import type { Declassification } from "../rules/index.ts";
import type { ApplyResult, FieldSelector, Hop, Label, LabelLookup } from "./types.ts";

export const WHOLE_DATASET = "*";

export function datasetId(d: { namespace: string; name: string }): string {
  return `${d.namespace}/${d.name}`;
}

/** Key of a field node: `namespace/name#field`. */
export function fieldKey(dataset: string, field: string): string {
  return `${dataset}#${field}`;
}

interface Edge {
  to: string; // field key
  toDataset: string;
  toField: string;
  hop: Omit<Hop, "dataset" | "field">;
}

export interface LineageGraph {
  /** Applies a COLLECT or DERIVE fact; other kinds are ignored. Labels only ever grow. */
  apply(event: DataAccessEvent): ApplyResult;
  /** Every label that reaches the selected fields through any number of hops. */
  labelsOf(selectors: readonly FieldSelector[]): LabelLookup;
  /** Whether a COLLECT or DERIVE has described the dataset. */
  knows(dataset: string): boolean;
  /**
   * Forgets every fact (a bounded caller refills what it needs from the store). Bumps `version`,
   * so lookups cached against the old contents are not reused.
   */
  clear(): void;
  /** Incremented whenever any label changes; lets callers cache lookups. */
  readonly version: number;
  readonly stats: { datasets: number; fields: number; labels: number; edges: number; facts: number };
}

/**
 * The lineage graph: fields are nodes, derivations are edges, purpose labels flow along edges
 * (union of the inputs' labels). Late facts are handled: a COLLECT that arrives after the
 * DERIVE reading from it still reaches everything downstream, because propagation follows the
 * stored edges to a fixpoint. Pure: no I/O, no clock.
 */
/**
 * Told of every change to what the graph holds, as it happens: a time-valid replay records when
 * each label reached each field (docs/tables.md, "Replay in SQL").
 */
export interface LineageObserver {
  /** A COLLECT or DERIVE wrote the dataset for the first time. */
  described?(dataset: string): void;
  /** The lineage named the field for the first time. */
  field?(dataset: string, field: string): void;
  /** A label reached the field for the first time (by `label.path`). */
  label?(dataset: string, field: string, label: Label): void;
}

export function createLineageGraph(declassify: readonly Declassification[], observer: LineageObserver = {}): LineageGraph {
  let labels = new Map<string, Map<string, Label>>(); // field key -> label key -> label
  let datasetFields = new Map<string, Set<string>>();
  let fieldEdges = new Map<string, Edge[]>(); // field key -> edges
  let datasetEdges = new Map<string, Edge[]>(); // dataset id -> edges from the whole dataset
  let edgeKeys = new Set<string>();
  let facts = new Map<string, string>(); // fact key -> its id (factDigest)
  // The last fact applied or seen per job, with its id: a job that runs again with the same
  // lineage (most runs of a scheduled job) is told apart without building its key (sameFact).
  let lastOfJob = new Map<string, { event: DataAccessEvent; fact: string }>();
  let described = new Set<string>();
  let version = 0;
  let edgeCount = 0;
  let labelCount = 0;

  function touchField(dataset: string, field: string): string {
    let fields = datasetFields.get(dataset);
    if (!fields) {
      fields = new Set();
      datasetFields.set(dataset, fields);
    }
    if (!fields.has(field)) {
      fields.add(field);
      observer.field?.(dataset, field);
    }
    return fieldKey(dataset, field);
  }

  /** Adds a label to a field and pushes it downstream; returns the datasets that changed. */
  function addLabel(start: string, startDataset: string, label: Label, changed: Set<string>): void {
    const queue: [string, string, Label][] = [[start, startDataset, label]];
    while (queue.length > 0) {
      const [key, dataset, l] = queue.pop() as [string, string, Label];
      let onField = labels.get(key);
      if (!onField) {
        onField = new Map();
        labels.set(key, onField);
      }
      if (onField.has(l.key)) continue;
      onField.set(l.key, l);
      labelCount++;
      observer.label?.(dataset, key.slice(dataset.length + 1), l);
      changed.add(dataset);
      const outgoing = [...(fieldEdges.get(key) ?? []), ...(datasetEdges.get(dataset) ?? [])];
      // A whole-dataset label is on every field of the dataset: it leaves by their edges too.
      if (key === fieldKey(dataset, WHOLE_DATASET)) {
        for (const f of datasetFields.get(dataset) ?? []) {
          if (f !== WHOLE_DATASET) outgoing.push(...(fieldEdges.get(fieldKey(dataset, f)) ?? []));
        }
      }
      for (const edge of outgoing) {
        const carried = carry(l, edge);
        if (carried) queue.push([edge.to, edge.toDataset, carried]);
      }
    }
  }

  /** The label as it arrives over an edge: passed on, reclassified, or dropped by a declassification rule. */
  function carry(label: Label, edge: Edge): Label | undefined {
    const hop: Hop = { ...edge.hop, dataset: edge.toDataset, field: edge.toField };
    if (edge.hop.masking && edge.hop.masking !== Masking.none && edge.hop.transform) {
      const rule = declassify.find(
        (d) =>
          d.transforms.includes(edge.hop.transform as Transform) &&
          d.masking.includes(edge.hop.masking as Exclude<Masking, "NONE">) &&
          coveredByAny(d.categories, label.category),
      );
      if (rule) {
        if ("drop" in rule.action) return undefined;
        const category = rule.action.reclassifyTo;
        hop.declassifiedBy = rule.id;
        const key = labelKey(label.origin, category, label.collectedFor, label.dataSubject);
        return { ...label, category, key, id: labelId(key), path: [...label.path, hop] };
      }
    }
    return { ...label, path: [...label.path, hop] };
  }

  function addEdge(fromKey: string | undefined, fromDataset: string, edge: Edge, changed: Set<string>): void {
    const id = `${fromKey ?? fromDataset + "#**"}>${edge.to}|${edge.hop.transform}|${edge.hop.masking}`;
    if (edgeKeys.has(id)) return;
    edgeKeys.add(id);
    edgeCount++;
    const list = fromKey ? fieldEdges : datasetEdges;
    const k = fromKey ?? fromDataset;
    const existing = list.get(k);
    if (existing) existing.push(edge);
    else list.set(k, [edge]);
    // Carry what the source already holds.
    const sources = fromKey
      ? [fromKey, fieldKey(fromDataset, WHOLE_DATASET)]
      : [...(datasetFields.get(fromDataset) ?? [])].map((f) => fieldKey(fromDataset, f));
    for (const source of sources) {
      for (const l of [...(labels.get(source)?.values() ?? [])]) {
        const carried = carry(l, edge);
        if (carried) addLabel(edge.to, edge.toDataset, carried, changed);
      }
    }
  }

  function applyCollect(event: DataAccessEvent, changed: Set<string>): void {
    const collectedFor = [...new Set(event.purposes)].sort();
    for (const out of event.outputs) {
      const dataset = datasetId(out);
      const fields = out.fields.length > 0 ? out.fields : [{ name: WHOLE_DATASET, categories: [] }];
      for (const f of fields) {
        const key = touchField(dataset, f.name);
        for (const category of new Set(f.categories)) {
          const origin = fieldKey(dataset, f.name);
          const hop: Hop = {
            kind: "COLLECT",
            dataset,
            field: f.name,
            service: event.service,
            job: `${event.job.namespace}/${event.job.name}`,
            runId: event.runId,
            eventId: event.eventId,
            occurredAt: event.occurredAt,
          };
          const lk = labelKey(origin, category, collectedFor, event.dataSubject);
          addLabel(
            key,
            dataset,
            { key: lk, id: labelId(lk), category, collectedFor, dataSubject: event.dataSubject, origin, path: [hop] },
            changed,
          );
        }
      }
    }
  }

  function applyDerive(event: DataAccessEvent, changed: Set<string>): void {
    const base = {
      kind: "DERIVE" as const,
      service: event.service,
      job: `${event.job.namespace}/${event.job.name}`,
      runId: event.runId,
      eventId: event.eventId,
      occurredAt: event.occurredAt,
      masking: event.masking,
    };
    const mapped = new Set<string>();
    for (const m of event.fieldLineage) {
      const toDataset = datasetId(m.output);
      const to = touchField(toDataset, m.output.field);
      mapped.add(to);
      for (const input of m.inputs) {
        const fromDataset = datasetId(input);
        const from = touchField(fromDataset, input.field);
        addEdge(
          from,
          fromDataset,
          { to, toDataset, toField: m.output.field, hop: { ...base, transform: m.transform, masking: mappingMasking(event, m) } },
          changed,
        );
      }
    }
    // Outputs without column-level lineage take every input's labels (dataset level).
    const mappedDatasets = new Set(event.fieldLineage.map((m) => datasetId(m.output)));
    for (const out of event.outputs) {
      const toDataset = datasetId(out);
      if (out.fields.length === 0 && mappedDatasets.has(toDataset)) continue;
      const outFields = out.fields.length > 0 ? out.fields.map((f) => f.name) : [WHOLE_DATASET];
      for (const field of outFields) {
        const to = touchField(toDataset, field);
        if (mapped.has(to)) continue;
        for (const input of event.inputs) {
          const fromDataset = datasetId(input);
          if (!datasetFields.has(fromDataset)) datasetFields.set(fromDataset, new Set());
          addEdge(undefined, fromDataset, { to, toDataset, toField: field, hop: { ...base, transform: event.transform } }, changed);
        }
      }
    }
  }

  function datasetLabels(dataset: string, fields: readonly string[], into: Map<string, Label>): void {
    const known = datasetFields.get(dataset) as Set<string>;
    const whole = fields.length === 0 || fields.includes(WHOLE_DATASET);
    const selected = whole ? [...known] : fields.filter((f) => known.has(f));
    // A field the lineage never named is read conservatively as the whole dataset.
    const names = !whole && selected.length < fields.length ? [...known] : [...selected, WHOLE_DATASET];
    for (const f of new Set(names)) {
      for (const l of labels.get(fieldKey(dataset, f))?.values() ?? []) if (!into.has(l.key)) into.set(l.key, l);
    }
  }

  return {
    apply(event) {
      if (event.kind !== EventKind.collect && event.kind !== EventKind.derive) return { applied: false, changedDatasets: [] };
      // The job's last fact again (a scheduled job's next run): known without building its key,
      // which hashing a DERIVE of 20 columns' key (1.5 KB) made a tenth of the processor's time.
      const job = jobOf(event);
      const last = lastOfJob.get(job);
      if (last !== undefined && sameFact(last.event, event)) return { applied: false, changedDatasets: [], fact: last.fact };
      // Known by its whole key: a fact seen before (most of a stream's COLLECTs) costs no hashing.
      const key = factKey(event);
      const known = facts.get(key);
      const fact = known ?? digestOf(key);
      // Kept only without subjects (a DERIVE's usual case), so what is held stays small: at most
      // LAST_OF_JOB_LIMIT events of a few KB, never a COLLECT's list of people.
      if (event.subjects.length === 0) {
        if (lastOfJob.size >= LAST_OF_JOB_LIMIT) lastOfJob.clear();
        lastOfJob.set(job, { event, fact });
      }
      if (known !== undefined) return { applied: false, changedDatasets: [], fact };
      facts.set(key, fact);
      const changed = new Set<string>();
      const describedBefore = described.size;
      if (event.kind === EventKind.collect) applyCollect(event, changed);
      else applyDerive(event, changed);
      // Outputs are now described, even when they hold no personal data (no labels).
      // Only this fact's outputs: a scan of every described dataset per fact grows with the graph.
      for (const d of [...event.outputs.map(datasetId), ...event.fieldLineage.map((m) => datasetId(m.output))]) {
        if (!described.has(d)) observer.described?.(d);
        described.add(d);
        if (!datasetFields.has(d)) datasetFields.set(d, new Set());
      }
      // Lookups depend on labels and on which datasets are described: either change invalidates them.
      if (changed.size > 0 || described.size > describedBefore) version++;
      return { applied: true, changedDatasets: [...changed], fact };
    },
    labelsOf(selectors) {
      const found = new Map<string, Label>();
      const unknown: string[] = [];
      for (const s of selectors) {
        if (!described.has(s.dataset)) {
          unknown.push(s.dataset);
          continue;
        }
        datasetLabels(s.dataset, s.fields, found);
      }
      return { labels: [...found.values()], unknownDatasets: unknown };
    },
    knows(dataset) {
      return described.has(dataset);
    },
    clear() {
      labels = new Map();
      datasetFields = new Map();
      fieldEdges = new Map();
      datasetEdges = new Map();
      edgeKeys = new Set();
      facts = new Map();
      lastOfJob = new Map();
      described = new Set();
      edgeCount = 0;
      labelCount = 0;
      version++;
    },
    get version() {
      return version;
    },
    get stats() {
      return { datasets: datasetFields.size, fields: labels.size, labels: labelCount, edges: edgeCount, facts: facts.size };
    },
  };
}

/** Short stable id of a label key (16 hex digits of its SHA-256), as stored in the tables. */
export function labelId(key: string): string {
  return hash("sha256", key, "hex").slice(0, 16);
}

export function labelKey(origin: string, category: string, collectedFor: readonly string[], dataSubject: string): string {
  return `${origin}|${category}|${collectedFor.join(",")}|${dataSubject}`;
}

/** A lineage fact's id, as stored (lineage_facts_v1.fact_key): 32 hex digits of the SHA-256 of its factKey. */
export function factDigest(e: DataAccessEvent): string {
  return digestOf(factKey(e));
}

const digestOf = (key: string): string => hash("sha256", key, "hex").slice(0, 32);

/** Jobs whose last fact the graph keeps for `sameFact` (then it starts over): at most this many events held. */
const LAST_OF_JOB_LIMIT = 4096;

const jobOf = (e: DataAccessEvent): string => `${e.kind}\u0000${e.service}\u0000${e.job.namespace}\u0000${e.job.name}`;

/**
 * Whether two events are the same lineage fact, compared part by part: true exactly when their
 * `factKey`s are equal and neither key is ambiguous (a value holding the key's separators). Read
 * what factKey reads, in the same order: keep the two in step (graph.test.ts checks them).
 */
export function sameFact(a: DataAccessEvent, b: DataAccessEvent): boolean {
  if (
    a.kind !== b.kind ||
    a.service !== b.service ||
    a.job.namespace !== b.job.namespace ||
    a.job.name !== b.job.name ||
    a.transform !== b.transform ||
    a.masking !== b.masking ||
    a.dataSubject !== b.dataSubject ||
    !sameStrings(a.purposes, b.purposes) ||
    !sameDatasets(a.inputs, b.inputs) ||
    !sameDatasets(a.outputs, b.outputs) ||
    a.fieldLineage.length !== b.fieldLineage.length
  )
    return false;
  for (let i = 0; i < a.fieldLineage.length; i++) {
    const m = a.fieldLineage[i] as FieldMapping;
    const n = b.fieldLineage[i] as FieldMapping;
    if (!sameRef(m.output, n.output) || m.output.field !== n.output.field || m.transform !== n.transform) return false;
    if (ownMasking(m) !== ownMasking(n) || m.inputs.length !== n.inputs.length) return false;
    for (let j = 0; j < m.inputs.length; j++) {
      const x = m.inputs[j] as FieldRef;
      const y = n.inputs[j] as FieldRef;
      if (!sameRef(x, y) || x.field !== y.field) return false;
    }
  }
  return true;
}

const sameRef = (a: { namespace: string; name: string }, b: { namespace: string; name: string }): boolean =>
  a.namespace === b.namespace && a.name === b.name;

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameDatasets(a: readonly Dataset[], b: readonly Dataset[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] as Dataset;
    const e = b[i] as Dataset;
    if (!sameRef(d, e) || d.fields.length !== e.fields.length) return false;
    for (let j = 0; j < d.fields.length; j++) {
      const f = d.fields[j] as DatasetField;
      const g = e.fields[j] as DatasetField;
      if (f.name !== g.name || !sameStrings(f.categories, g.categories)) return false;
    }
  }
  return true;
}

/**
 * What makes two lineage facts the same fact: everything but the event's identity, time, run
 * and subjects. A nightly job that copies the same columns again adds nothing to the graph.
 */
export function factKey(e: DataAccessEvent): string {
  let key = `${e.kind}\u0000${e.service}\u0000${e.job.namespace}\u0000${e.job.name}\u0000${e.transform}\u0000${e.masking}\u0000${e.dataSubject}\u0000${e.purposes.join(",")}`;
  for (const [side, list] of [
    ["<", e.inputs],
    [">", e.outputs],
  ] as const) {
    for (const d of list) {
      key += `\u0000${side}${d.namespace}/${d.name}`;
      for (const f of d.fields) key += `#${f.name}:${f.categories.join(",")}`;
    }
  }
  for (const m of e.fieldLineage) {
    key += `\u0000=${m.output.namespace}/${m.output.name}#${m.output.field}:${m.transform}`;
    // A mapping's own masking (schema version 3); keys of mappings without one are as before.
    const own = ownMasking(m);
    if (own) key += `/${own}`;
    for (const i of m.inputs) key += `<${i.namespace}/${i.name}#${i.field}`;
  }
  return key;
}
