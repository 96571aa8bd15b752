import { hash } from "node:crypto";
import { EventKind, mappingMasking, type DataAccessEvent } from "../codec/index.ts";
import { createEvaluator, type Policy, type Verdict } from "../rules/index.ts";
import type { Taxonomy } from "../taxonomy/index.ts";
import {
  createLineageGraph,
  datasetId,
  factDigest,
  fieldKey,
  WHOLE_DATASET,
  type FieldSelector,
  type Label,
  type LineageGraph,
} from "../lineage/index.ts";
import { parseTraceparent, validateEvent } from "./validate.ts";
import type { AuditBatch, EdgesRow, EventRow } from "./rows.ts";
import { defaults } from "../config/index.ts";

/** What a USE or SHARE row says about itself (events_v1.verdict). */
export const EventVerdict = {
  ok: "ok",
  violation: "violation",
  shadow: "shadow",
  unknownProvenance: "unknown_provenance",
  none: "",
} as const;
export const FindingKind = {
  unknownProvenance: "UNKNOWN_PROVENANCE",
  provenanceResolved: "PROVENANCE_RESOLVED",
  /** Art. 17: an erasure request left copies of the erased data in derived fields (found by the exact model). */
  erasureIncomplete: "ERASURE_INCOMPLETE",
  /** A DELETE or DERIVE names fields no COLLECT or DERIVE wrote (found by the exact model). */
  unknownTarget: "UNKNOWN_TARGET",
} as const;

export interface AuditorOptions {
  /** Uses of unknown datasets kept in memory, waiting for late lineage. @default 10000 */
  maxPending?: number;
  /** Distinct lineage paths recorded per violation. @default 8 */
  maxPathsPerViolation?: number;
  /**
   * Recent uses and shares kept to be checked again when lineage that arrives late adds labels
   * to what they read (events from many services do not arrive in order). @default 20000
   */
  recheckWindow?: number;
  /**
   * Label and path ids remembered as written, so they are not sent again; an id forgotten is
   * written again, which changes nothing (rows are keyed by id). @default 100000
   */
  maxSeenIds?: number;
  /**
   * With `onDemand`: lineage facts the in-memory graph holds before it is emptied and refilled
   * from the store with what the recent uses need. @default 20000
   */
  lineageCapacity?: number;
  /**
   * With `onDemand`: the last lineage facts this process applied, kept to refill the graph after
   * it is emptied (their write may still be in flight, so the store may not have them). @default 5000
   */
  retainFacts?: number;
  /**
   * The graph is a bounded cache of the store: before each batch the caller asks
   * `missingLineage` what to fetch and hands it to `loadLineage`. Off, the graph holds every fact
   * it was given for the life of the process. @default false
   */
  onDemand?: boolean;
}

export const defaultAuditorOptions = {
  maxPending: 10_000,
  maxPathsPerViolation: 8,
  recheckWindow: defaults.recheckWindow,
  maxSeenIds: 100_000,
  lineageCapacity: 20_000,
  retainFacts: 5_000,
  onDemand: false,
} satisfies Required<AuditorOptions>;

/**
 * Lineage a batch needs that the bounded graph does not hold. Labels at a dataset depend only on
 * the facts upstream of it, and the fields a use may read are named by any fact mentioning the
 * dataset: both are fetched, the first for `upstream`, both for `datasets`.
 */
export interface LineageNeed {
  /** Datasets read by uses: every fact naming them (as input or output). */
  datasets: string[];
  /** Datasets upstream of something needed: every fact producing them (as output). */
  upstream: string[];
}

/** What was written for a stored use: its labels, and per rule the labels of its violation. */
export interface StoredWrite {
  labelIds: readonly string[];
  ruleLabels: Readonly<Record<string, readonly string[]>>;
}

export interface EventMeta {
  writerFingerprint: string;
  writerVersion: number;
}

export interface Auditor {
  /**
   * Validates, applies and evaluates one event, appending what it produced to `out`. Throws an
   * InputError (nothing appended) when the event is not meaningful.
   */
  handle(event: DataAccessEvent, meta: EventMeta, out: AuditBatch): void;
  readonly graph: LineageGraph;
  /** Applies a stored lineage fact (on start-up), producing no rows. */
  restore(event: DataAccessEvent): void;
  /**
   * Applies a lineage fact another processor instance stored already: no rows of its own, but
   * recent uses it affects are checked again (rows for those go to `out`).
   */
  learn(event: DataAccessEvent, out: AuditBatch): void;
  /**
   * Puts a stored use back in the recheck window after a restart, with the rules already written
   * for it (and, when known, the labels written: without them its violations are written again
   * the first time its lineage changes, which is idempotent).
   */
  rememberStored(event: DataAccessEvent, meta: EventMeta, rules: readonly string[], written?: StoredWrite): void;
  /**
   * Parks again, after a restart, a stored use of unknown provenance (what it read had no lineage
   * when it arrived): lineage that arrives later, or is stored already, still resolves it.
   */
  parkStored(event: DataAccessEvent, meta: EventMeta): void;
  /**
   * With `onDemand`: the facts to fetch before `events` can be handled exactly as with an
   * unbounded graph, or undefined when the graph holds them. Call again after each
   * `loadLineage` until undefined (the upstream closure is fetched a level at a time).
   */
  missingLineage(events: readonly DataAccessEvent[]): LineageNeed | undefined;
  /** Applies stored facts fetched for `need`; rows they imply (late lineage) come with the next handle or learn. */
  loadLineage(facts: Iterable<DataAccessEvent>, need: LineageNeed): void;
  readonly pending: number;
}

interface RecentUse {
  /** Order of arrival in the window: rechecks write in this order. */
  seq: number;
  event: DataAccessEvent;
  meta: EventMeta;
  datasets: string[];
  /** Label ids on its event row as written. */
  labels: string;
  /** Per rule whose violation was written: the label ids that violation was written with. */
  written: Map<string, string>;
}

interface Evaluation {
  labels: Label[];
  unknown: string[];
  verdicts: Verdict<Label>[];
  categories: string[];
  collectedFor: string[];
  labelIds: string[];
  datasets: string[];
  /** Whether its labels have been written to labels_v1 by this process. */
  recorded: boolean;
  /** Per verdict: the path JSON and text, computed once per cache entry. */
  paths: { id: string; json: string; text: string; categories: string[]; collectedFor: string[]; origins: string[]; labelIds: string[] }[];
}

/**
 * The processor's pure core: lineage graph + rule evaluation + row building. No I/O; the
 * processor adapter feeds it decoded events and hands its rows to the store.
 */
export function createAuditor(policy: Policy, taxonomy: Taxonomy, options: AuditorOptions = {}): Auditor {
  const graph = createLineageGraph(policy.declassify);
  const evaluator = createEvaluator(policy);
  const o = { ...defaultAuditorOptions, ...options };
  const maxPending = o.maxPending;
  const maxPaths = o.maxPathsPerViolation;
  const pending = new Map<string, { event: DataAccessEvent; meta: EventMeta }[]>();
  const recheckWindow = o.recheckWindow;
  const recent: (RecentUse | undefined)[] = [];
  /** The recheck window indexed by the datasets each use read. */
  const recentByDataset = new Map<string, Set<RecentUse>>();
  let recentPos = 0;
  let recentSeq = 0;
  let pendingCount = 0;
  let cache = new Map<string, Evaluation>();
  let cacheVersion = -1;
  const labelsSeen = createSeenSet(o.maxSeenIds);
  const pathsSeen = createSeenSet(o.maxSeenIds);

  // The bounded graph (onDemand). `upstreamDone`: every fact producing the dataset is in the
  // graph, and so (transitively) is its upstream; `resident`: also every fact reading it.
  const resident = new Map<string, number>(); // dataset -> the round it became resident in
  const upstreamDone = new Set<string>();
  /** Incremented at the start of each batch's loading. */
  let round = 0;
  /** Datasets to load: the pinned ones (recheck window, pending uses) after the graph was emptied. */
  const toLoad = new Set<string>();
  /** Inputs of loaded facts whose producers are not loaded yet. */
  const frontier = new Set<string>();
  /**
   * Datasets resident before this round whose labels changed while loading: a fact another
   * instance stored that this one had not learnt yet. Their recent uses are checked again.
   * (Datasets that became resident this round only caught up with what was applied before.)
   */
  const dirty = new Set<string>();
  /**
   * Datasets read by uses in the recheck window whose lineage is not resident (restored after a
   * restart, or the graph emptied): what is stored may have changed since their rows were written
   * (a fact stored by another instance, or by this one killed before writing the recheck it gave),
   * so they are checked again when it is loaded. A recheck that finds the same labels writes nothing.
   */
  const recheckOnLoad = new Set<string>();
  /** Of those, the ones loaded this round: their uses are checked again at the next handle. */
  const reloaded = new Set<string>();
  let loadedNew = false;
  const retained: (DataAccessEvent | undefined)[] = [];
  let retainedPos = 0;
  let factsAfterClear = 0;
  let measureAfterLoad = false;

  function selectors(e: DataAccessEvent): FieldSelector[] {
    return e.inputs.map((d) => ({ dataset: datasetId(d), fields: d.fields.length > 0 ? d.fields.map((f) => f.name) : [WHOLE_DATASET] }));
  }

  function evaluate(e: DataAccessEvent): Evaluation {
    if (cacheVersion !== graph.version || cache.size > 50_000) {
      cache = new Map();
      cacheVersion = graph.version;
    }
    let key = `${e.kind}|${e.service}|${e.job.namespace}|${e.job.name}|${e.dataSubject}|${e.purposes.join(",")}|${e.recipient ? `${e.recipient.name}:${e.recipient.external}` : ""}`;
    for (const d of e.inputs) {
      key += `|${d.namespace}/${d.name}`;
      for (const f of d.fields) key += `#${f.name}`;
    }
    const hit = cache.get(key);
    if (hit) return hit;
    const lookup = graph.labelsOf(selectors(e));
    const verdicts = evaluator.evaluate(lookup.labels, {
      kind: e.kind as "USE" | "SHARE",
      purposes: e.purposes,
      dataSubject: e.dataSubject,
      service: e.service,
      recipient: e.recipient,
    });
    const evaluation: Evaluation = {
      labels: lookup.labels,
      unknown: lookup.unknownDatasets,
      verdicts,
      categories: uniqueSorted(lookup.labels.map((l) => l.category)),
      collectedFor: uniqueSorted(lookup.labels.flatMap((l) => l.collectedFor)),
      labelIds: uniqueSorted(lookup.labels.map((l) => l.id)),
      datasets: [...new Set(e.inputs.map(datasetId))],
      recorded: false,
      paths: verdicts.map((v) => describePaths(v, e, maxPaths)),
    };
    cache.set(key, evaluation);
    return evaluation;
  }

  function baseRow(e: DataAccessEvent, meta: EventMeta): EventRow {
    // Only non-default columns are sent: ClickHouse parses per value, so less is faster.
    const row: EventRow = {
      event_id: e.eventId,
      kind: e.kind,
      occurred_at: e.occurredAt,
      service: e.service,
      job_namespace: e.job.namespace,
      job_name: e.job.name,
      run_id: e.runId,
      data_subject: e.dataSubject,
      schema_fingerprint: meta.writerFingerprint,
      schema_version: meta.writerVersion,
    };
    if (e.inputs.length > 0) row.input_fields = fieldsOf(e.inputs);
    if (e.outputs.length > 0) row.output_fields = fieldsOf(e.outputs);
    if (e.purposes.length > 0) row.purposes = e.purposes;
    if (e.subjects.length > 0) row.subjects = e.subjects;
    if (e.kind === EventKind.derive) {
      row.transform = e.transform;
      row.masking = e.masking;
    }
    if (e.recipient) {
      row.recipient = e.recipient.name;
      row.recipient_external = e.recipient.external ? 1 : 0;
    }
    if (e.traceparent !== null && parseTraceparent(e.traceparent).traceId !== "") row.traceparent = e.traceparent;
    if (e.pseudonymKeyId !== "default") row.pseudonym_key_id = e.pseudonymKeyId;
    for (const _ in e.attributes) {
      row.attributes = e.attributes;
      break;
    }
    return row;
  }

  function recordLabels(labels: readonly Label[], out: AuditBatch): void {
    for (const l of labels) {
      if (!labelsSeen.add(l.id)) continue;
      out.labels.push({
        label_id: l.id,
        origin: l.origin,
        category: l.category,
        collected_for: l.collectedFor,
        data_subject: l.dataSubject,
      });
    }
  }

  /** Evaluates a use; writes violations for the rules not in `skip` (already written). Returns the evaluation. */
  function checkUse(e: DataAccessEvent, row: EventRow, out: AuditBatch, late: boolean, written?: ReadonlyMap<string, string>): Evaluation {
    const ev = evaluate(e);
    if (ev.labels.length > 0) {
      row.categories = ev.categories;
      row.collected_for = ev.collectedFor;
      row.label_ids = ev.labelIds;
      if (!ev.recorded) {
        recordLabels(ev.labels, out);
        ev.recorded = true;
      }
    }
    if (ev.unknown.length > 0) {
      row.verdict = EventVerdict.unknownProvenance;
      out.findings.push({
        finding_id: `${e.eventId}:${FindingKind.unknownProvenance}`,
        kind: FindingKind.unknownProvenance,
        event_id: e.eventId,
        occurred_at: e.occurredAt,
        service: e.service,
        job_name: e.job.name,
        datasets: ev.unknown,
        severity: policy.unknownProvenance.severity,
        detail: `${e.kind} of ${ev.unknown.join(", ")} for ${e.purposes.join(", ")}: no COLLECT or DERIVE has described ${ev.unknown.length === 1 ? "this dataset" : "these datasets"}, so its purposes are unknown`,
        subject_count: e.subjects.length,
      });
    } else {
      row.verdict = ev.verdicts.some((v) => v.mode === "enforce")
        ? EventVerdict.violation
        : ev.verdicts.length > 0
          ? EventVerdict.shadow
          : EventVerdict.ok;
    }
    ev.verdicts.forEach((v, i) => {
      const p = ev.paths[i] as Evaluation["paths"][number];
      // Written already with these labels: nothing new. With fewer: rewritten (same id, newer row).
      if (written?.get(v.ruleId) === p.labelIds.join(",")) return;
      if (pathsSeen.add(p.id)) {
        out.paths.push({ path_id: p.id, lineage_path: p.json, path_text: p.text });
      }
      const violationId = `${e.eventId}:${v.ruleId}`;
      out.violations.push({
        violation_id: violationId,
        event_id: e.eventId,
        rule_id: v.ruleId,
        basis: v.basis,
        severity: v.severity,
        mode: v.mode,
        kind: e.kind,
        occurred_at: e.occurredAt,
        service: e.service,
        job_namespace: e.job.namespace,
        job_name: e.job.name,
        run_id: e.runId,
        datasets: ev.datasets,
        purposes: v.purposes,
        categories: p.categories,
        collected_for: p.collectedFor,
        origins: p.origins,
        label_ids: p.labelIds,
        path_id: p.id,
        subjects: e.subjects,
        data_subject: e.dataSubject,
        recipient: e.recipient?.name ?? "",
        recipient_external: e.recipient?.external ? 1 : 0,
        trace_id: parseTraceparent(e.traceparent).traceId,
        late_lineage: late ? 1 : 0,
        reason: v.reason,
      });
    });
    return ev;
  }

  function remember(e: DataAccessEvent, meta: EventMeta, ev: Evaluation): void {
    const written = new Map(ev.verdicts.map((v, i) => [v.ruleId, (ev.paths[i] as Evaluation["paths"][number]).labelIds.join(",")]));
    addRecent({ seq: 0, event: e, meta, datasets: ev.datasets, labels: ev.labelIds.join(","), written });
  }

  function addRecent(r: RecentUse): void {
    if (recheckWindow <= 0) return;
    const old = recent[recentPos];
    if (old) {
      for (const d of old.datasets) {
        const uses = recentByDataset.get(d);
        uses?.delete(old);
        if (uses?.size === 0) recentByDataset.delete(d);
      }
    }
    r.seq = recentSeq++;
    recent[recentPos] = r;
    for (const d of r.datasets) {
      const uses = recentByDataset.get(d);
      if (uses) uses.add(r);
      else recentByDataset.set(d, new Set([r]));
    }
    recentPos = (recentPos + 1) % recheckWindow;
  }

  /**
   * Lineage changed what some datasets carry: check the recent uses of them again. A use whose
   * labels grew is written again, event row and violations, even when it violated the same rules
   * already: the violation keeps its id and gets the complete categories, labels and path.
   * `onlyGrown`: only uses that now carry a label their rows lack, or violate a rule with no
   * violation stored (after their lineage was loaded again, the graph may know more fields than
   * when they were written, which narrows a whole-dataset reading; that alone is no reason to
   * rewrite them). A violation can be missing where the row has its labels: the store writes a
   * batch's event rows before its violations, and a kill between the two leaves exactly that.
   */
  function recheck(changed: readonly string[], out: AuditBatch, onlyGrown = false): void {
    const hits = new Set<RecentUse>();
    for (const d of changed) for (const r of recentByDataset.get(d) ?? []) hits.add(r);
    for (const r of [...hits].sort((a, b) => a.seq - b.seq)) {
      const ev = evaluate(r.event);
      if (ev.unknown.length > 0) continue;
      if (onlyGrown) {
        const had = new Set(r.labels.split(","));
        if (ev.labelIds.every((id) => had.has(id)) && ev.verdicts.every((v) => r.written.has(v.ruleId))) continue;
      }
      const labels = ev.labelIds.join(",");
      const same = ev.verdicts.every((v, i) => r.written.get(v.ruleId) === (ev.paths[i] as Evaluation["paths"][number]).labelIds.join(","));
      if (same && labels === r.labels) continue;
      const row = baseRow(r.event, r.meta);
      checkUse(r.event, row, out, true, r.written);
      out.events.push(row); // replaces the earlier row (same key) with the new verdict and labels
      r.labels = labels;
      ev.verdicts.forEach((v, i) => r.written.set(v.ruleId, (ev.paths[i] as Evaluation["paths"][number]).labelIds.join(",")));
    }
  }

  function retain(e: DataAccessEvent): void {
    if (!o.onDemand || o.retainFacts <= 0) return;
    retained[retainedPos] = e.subjects.length > 0 ? { ...e, subjects: [] } : e;
    retainedPos = (retainedPos + 1) % o.retainFacts;
  }

  /** Rows owed by facts loaded from the store (late lineage another instance stored). */
  function flush(out: AuditBatch): void {
    if (loadedNew && pendingCount > 0) resolvePending(out);
    loadedNew = false;
    if (dirty.size > 0) {
      const changed = [...dirty];
      dirty.clear();
      recheck(changed, out);
    }
    if (reloaded.size > 0) {
      const loaded = [...reloaded];
      reloaded.clear();
      recheck(loaded, out, true);
    }
  }

  /** Over capacity: empty the graph; what the pinned uses read is loaded again on demand. */
  function compact(): void {
    const size = graph.stats.facts;
    if (size <= o.lineageCapacity || size < 2 * factsAfterClear) return;
    graph.clear();
    resident.clear();
    upstreamDone.clear();
    frontier.clear();
    dirty.clear();
    reloaded.clear();
    for (const f of retained) if (f) graph.apply(f);
    for (const d of recentByDataset.keys()) {
      toLoad.add(d);
      recheckOnLoad.add(d);
    }
    for (const list of pending.values()) for (const { event } of list) for (const s of selectors(event)) toLoad.add(s.dataset);
    measureAfterLoad = true;
  }

  function park(e: DataAccessEvent, meta: EventMeta): void {
    if (pendingCount >= maxPending) return; // the finding stays; a replay over the store resolves it
    for (const d of selectors(e)) {
      if (graph.knows(d.dataset)) continue;
      const list = pending.get(d.dataset);
      if (list) list.push({ event: e, meta });
      else pending.set(d.dataset, [{ event: e, meta }]);
    }
    pendingCount++;
  }

  /** Re-evaluates parked uses whose datasets are all described now. */
  function resolvePending(out: AuditBatch): void {
    const ready = new Set<DataAccessEvent>();
    const readyMeta = new Map<DataAccessEvent, EventMeta>();
    for (const [dataset, list] of pending) {
      if (!graph.knows(dataset)) continue;
      pending.delete(dataset);
      for (const { event, meta } of list) {
        if (selectors(event).every((s) => graph.knows(s.dataset))) {
          ready.add(event);
          readyMeta.set(event, meta);
        }
      }
    }
    for (const e of ready) {
      pendingCount--;
      const row = baseRow(e, readyMeta.get(e) as EventMeta);
      const ev = checkUse(e, row, out, true);
      remember(e, readyMeta.get(e) as EventMeta, ev); // more lineage may still be on its way
      out.events.push(row); // replaces the earlier row (same key) with the resolved verdict
      out.findings.push({
        finding_id: `${e.eventId}:${FindingKind.provenanceResolved}`,
        kind: FindingKind.provenanceResolved,
        event_id: e.eventId,
        occurred_at: e.occurredAt,
        service: e.service,
        job_name: e.job.name,
        datasets: evaluate(e).datasets,
        severity: "info",
        detail: `lineage for ${evaluate(e).datasets.join(", ")} arrived after the ${e.kind}; re-evaluated: ${row.verdict}`,
        subject_count: e.subjects.length,
      });
    }
  }

  function applyLineage(e: DataAccessEvent, row: EventRow | undefined, out: AuditBatch | undefined): void {
    const result = graph.apply(e);
    if (result.applied && out) retain(e);
    if (row && out) {
      if (e.kind === EventKind.collect) {
        row.categories = uniqueSorted(e.outputs.flatMap((d) => d.fields.flatMap((f) => f.categories)));
        row.collected_for = uniqueSorted(e.purposes);
        // Per output field (aligned with output_fields): the exact model rebuilds collections from these.
        row.output_categories = e.outputs.flatMap((d) => (d.fields.length === 0 ? [[]] : d.fields.map((f) => f.categories)));
      }
      // The fact the event is an instance of (the graph names it for every COLLECT and DERIVE): a
      // run that repeats a known fact points at it here, and its edges (the same but for the
      // event's id, time and run) are not written again.
      const factId = result.fact ?? factDigest(e);
      row.fact_key = factId;
      if (e.kind === EventKind.derive && result.applied) {
        const fromIds = new LastDatasetId();
        const toIds = new LastDatasetId();
        const mappedDatasets = new Set<string>();
        // The event's edges in one row of parallel arrays, made on its first edge.
        let edges: EdgesRow | undefined;
        for (const m of e.fieldLineage) {
          const to = toIds.of(m.output);
          mappedDatasets.add(to);
          for (const input of m.inputs)
            addEdge((edges ??= edgesRow(e, factId)), fromIds.of(input), input.field, to, m.output.field, m.transform, mappingMasking(e, m));
        }
        // The mapped fields, made only for an output that is not just a mapped dataset listed without fields.
        let mapped: Set<string> | undefined;
        for (const o of e.outputs) {
          if (o.fields.length === 0 && mappedDatasets.has(datasetId(o))) continue;
          mapped ??= new Set(e.fieldLineage.map((m) => fieldKey(datasetId(m.output), m.output.field)));
          const outFields = o.fields.length > 0 ? o.fields.map((f) => f.name) : [WHOLE_DATASET];
          for (const f of outFields) {
            if (mapped.has(fieldKey(datasetId(o), f))) continue;
            for (const i of e.inputs)
              addEdge((edges ??= edgesRow(e, factId)), datasetId(i), WHOLE_DATASET, datasetId(o), f, e.transform, e.masking);
          }
        }
        if (edges) out.edges.push(edges);
      }
      if (result.applied) {
        const { subjects: _omitted, ...fact } = e;
        out.facts.push({
          fact_key: factId,
          kind: e.kind,
          occurred_at: e.occurredAt,
          event_id: e.eventId,
          fact: JSON.stringify({ ...fact, subjects: [] }),
        });
      }
    }
    if (result.applied && pendingCount > 0 && out) resolvePending(out);
    if (result.changedDatasets.length > 0 && out) recheck(result.changedDatasets, out);
  }

  return {
    graph,
    get pending() {
      return pendingCount;
    },
    restore(e) {
      applyLineage(e, undefined, undefined);
    },
    learn(e, out) {
      flush(out);
      applyLineage(e, undefined, out);
    },
    parkStored(e, meta) {
      park(e, meta);
      // What it reads is fetched with the next batch: lineage stored before the restart resolves it then.
      if (o.onDemand) for (const s of selectors(e)) if (!resident.has(s.dataset)) toLoad.add(s.dataset);
    },
    rememberStored(e, meta, rules, written) {
      if (recheckWindow <= 0) return;
      const datasets = [...new Set(e.inputs.map(datasetId))];
      const byRule = new Map(rules.map((r) => [r, (written?.ruleLabels[r] ?? []).join(",")]));
      addRecent({ seq: 0, event: e, meta, datasets, labels: (written?.labelIds ?? []).join(","), written: byRule });
      if (o.onDemand)
        for (const d of datasets)
          if (!resident.has(d)) {
            toLoad.add(d);
            recheckOnLoad.add(d);
          }
    },
    missingLineage(events) {
      if (!o.onDemand) return undefined;
      // Only at the start of a batch (the later calls of its round pass no events): emptying the
      // graph halfway would drop what the round has loaded for it.
      if (events.length > 0) {
        compact();
        round++;
      }
      const datasets = new Set<string>();
      for (const d of toLoad) if (!resident.has(d)) datasets.add(d);
      for (const e of events) {
        if (e.kind === EventKind.use || e.kind === EventKind.share) {
          for (const d of e.inputs) if (!resident.has(datasetId(d))) datasets.add(datasetId(d));
        } else if (e.kind === EventKind.derive) {
          for (const d of inputsOf(e)) if (!upstreamDone.has(d)) frontier.add(d);
        }
      }
      const upstream = [...frontier].filter((d) => !upstreamDone.has(d) && !datasets.has(d));
      if (datasets.size === 0 && upstream.length === 0) {
        toLoad.clear();
        frontier.clear();
        if (measureAfterLoad) factsAfterClear = graph.stats.facts;
        measureAfterLoad = false;
        return undefined;
      }
      return { datasets: [...datasets], upstream };
    },
    loadLineage(facts, need) {
      const derives: DataAccessEvent[] = [];
      for (const f of facts) {
        const result = graph.apply(f);
        if (result.applied) loadedNew = true;
        for (const d of result.changedDatasets) if ((resident.get(d) ?? round) < round) dirty.add(d);
        if (f.kind === EventKind.derive) derives.push(f);
      }
      for (const d of need.datasets) {
        if (recheckOnLoad.delete(d)) reloaded.add(d);
        resident.set(d, round);
        upstreamDone.add(d);
        toLoad.delete(d);
      }
      for (const d of need.upstream) upstreamDone.add(d);
      for (const d of [...frontier]) if (upstreamDone.has(d)) frontier.delete(d);
      // What produces a closed dataset must have its own inputs closed, fetched or in flight.
      for (const f of [...derives, ...retained]) {
        if (!f || f.kind !== EventKind.derive || !outputsOf(f).some((d) => upstreamDone.has(d))) continue;
        for (const d of inputsOf(f)) if (!upstreamDone.has(d)) frontier.add(d);
      }
    },
    handle(e, meta, out) {
      validateEvent(e, taxonomy);
      flush(out);
      const row = baseRow(e, meta);
      switch (e.kind) {
        case EventKind.collect:
        case EventKind.derive:
          applyLineage(e, row, out);
          break;
        case EventKind.use:
        case EventKind.share:
          {
            const ev = checkUse(e, row, out, false);
            if (row.verdict === EventVerdict.unknownProvenance) park(e, meta);
            else remember(e, meta, ev);
          }
          break;
        case EventKind.delete:
          break;
      }
      out.events.push(row);
    },
  };
}

/** A DERIVE's edges row, without edges yet. */
function edgesRow(e: DataAccessEvent, fact: string): EdgesRow {
  return {
    event_id: e.eventId,
    fact_key: fact,
    occurred_at: e.occurredAt,
    service: e.service,
    job_namespace: e.job.namespace,
    job_name: e.job.name,
    run_id: e.runId,
    from_datasets: [],
    from_fields: [],
    to_datasets: [],
    to_fields: [],
    transforms: [],
    maskings: [],
  };
}

function addEdge(
  row: EdgesRow,
  fromDataset: string,
  fromField: string,
  toDataset: string,
  toField: string,
  transform: string,
  masking: string,
): void {
  row.from_datasets.push(fromDataset);
  row.from_fields.push(fromField);
  row.to_datasets.push(toDataset);
  row.to_fields.push(toField);
  row.transforms.push(transform);
  row.maskings.push(masking);
}

function fieldsOf(datasets: readonly { namespace: string; name: string; fields: { name: string }[] }[]): string[] {
  const out: string[] = [];
  for (const d of datasets) {
    const id = datasetId(d);
    if (d.fields.length === 0) out.push(fieldKey(id, WHOLE_DATASET));
    else for (const f of d.fields) out.push(fieldKey(id, f.name));
  }
  return out;
}

// The datasets a fact reads and writes, asked of every retained fact before each batch: computed
// once per event object (events are never changed once handled), each side when first asked (a
// batch's new DERIVEs are asked only for their inputs).
const inputsMemo = new WeakMap<DataAccessEvent, readonly string[]>();
const outputsMemo = new WeakMap<DataAccessEvent, readonly string[]>();

/** A dataset's id, the last one's kept: field mappings name the same dataset over and over. */
class LastDatasetId {
  private last: { namespace: string; name: string } | undefined;
  private id = "";

  of(d: { namespace: string; name: string }): string {
    if (this.last === undefined || this.last.namespace !== d.namespace || this.last.name !== d.name) {
      this.last = d;
      this.id = datasetId(d);
    }
    return this.id;
  }
}

/**
 * Distinct dataset ids in order of first appearance. Field mappings name the same dataset over and
 * over (20 columns of one table): a reference equal to the one before reuses its id.
 */
class DatasetIds {
  readonly ids: string[] = [];
  private readonly seen = new Set<string>();
  private readonly last = new LastDatasetId();

  add(d: { namespace: string; name: string }): void {
    const id = this.last.of(d);
    if (this.seen.has(id)) return;
    this.seen.add(id);
    this.ids.push(id);
  }
}

function inputsOf(e: DataAccessEvent): readonly string[] {
  let ids = inputsMemo.get(e);
  if (ids === undefined) {
    const inputs = new DatasetIds();
    for (const d of e.inputs) inputs.add(d);
    for (const m of e.fieldLineage) for (const i of m.inputs) inputs.add(i);
    ids = inputs.ids;
    inputsMemo.set(e, ids);
  }
  return ids;
}

function outputsOf(e: DataAccessEvent): readonly string[] {
  let ids = outputsMemo.get(e);
  if (ids === undefined) {
    const outputs = new DatasetIds();
    for (const d of e.outputs) outputs.add(d);
    for (const m of e.fieldLineage) outputs.add(m.output);
    ids = outputs.ids;
    outputsMemo.set(e, ids);
  }
  return ids;
}

/** A set of ids that forgets the least recently seen past `max`. `add` says whether the id was new. */
function createSeenSet(max: number): { add(id: string): boolean } {
  const ids = new Map<string, true>();
  return {
    add(id) {
      if (ids.delete(id)) {
        ids.set(id, true);
        return false;
      }
      ids.set(id, true);
      if (ids.size > max) ids.delete(ids.keys().next().value as string);
      return true;
    },
  };
}

function uniqueSorted(values: readonly string[]): string[] {
  return [...new Set(values)].sort();
}

/** What a violation's path says of the use or share. */
export type PathUse = Pick<DataAccessEvent, "kind" | "inputs" | "service" | "job" | "recipient">;

/** The lineage paths of a verdict's labels (collection, each derivation, then the use), as JSON and as one line of text. */
export function describePaths(v: Pick<Verdict<Label>, "labels" | "purposes">, e: PathUse, maxPaths: number) {
  const use = {
    kind: e.kind,
    datasets: e.inputs.map((d) => (d.fields.length > 0 ? d.fields.map((f) => fieldKey(datasetId(d), f.name)) : [datasetId(d)])).flat(),
    service: e.service,
    job: `${e.job.namespace}/${e.job.name}`,
    purposes: v.purposes,
    recipient: e.recipient,
  };
  const paths = v.labels.slice(0, maxPaths).map((l) => ({
    category: l.category,
    collectedFor: l.collectedFor,
    origin: l.origin,
    hops: l.path,
  }));
  const first = v.labels[0];
  const text = first
    ? [
        ...first.path.map((h) =>
          h.kind === "COLLECT"
            ? `COLLECT ${h.dataset}#${h.field} [${first.category}; for ${first.collectedFor.join(", ")}] by ${h.service}`
            : `${h.transform ?? "DERIVE"}${h.masking && h.masking !== "NONE" ? `/${h.masking}` : ""} → ${h.dataset}#${h.field} by ${h.service}`,
        ),
        `${e.kind} ${use.datasets.join(", ")} for ${v.purposes.join(", ")} by ${e.service}${e.recipient ? ` to ${e.recipient.name}${e.recipient.external ? " (external)" : ""}` : ""}`,
      ].join(" ⇒ ")
    : "";
  const json = JSON.stringify({ paths, use, totalPaths: v.labels.length });
  return {
    id: hash("sha256", json, "hex").slice(0, 16),
    json,
    text,
    categories: uniqueSorted(v.labels.map((l) => l.category)),
    collectedFor: uniqueSorted(v.labels.flatMap((l) => l.collectedFor)),
    origins: uniqueSorted(v.labels.map((l) => l.origin)),
    labelIds: uniqueSorted(v.labels.map((l) => l.id)),
  };
}
