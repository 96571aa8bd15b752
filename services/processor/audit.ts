import { createHash } from "node:crypto";
import { EventKind, type DataAccessEvent } from "../codec/index.ts";
import { createEvaluator, type Policy, type Verdict } from "../rules/index.ts";
import type { Taxonomy } from "../taxonomy/index.ts";
import {
  createLineageGraph,
  datasetId,
  factKey,
  fieldKey,
  WHOLE_DATASET,
  type FieldSelector,
  type Label,
  type LineageGraph,
} from "../lineage/index.ts";
import { parseTraceparent, validateEvent } from "./validate.ts";
import type { AuditBatch, EventRow } from "./rows.ts";

/** What a USE or SHARE row says about itself (events_v1.verdict). */
export const EventVerdict = {
  ok: "ok",
  violation: "violation",
  shadow: "shadow",
  unknownProvenance: "unknown_provenance",
  none: "",
} as const;
export const FindingKind = { unknownProvenance: "UNKNOWN_PROVENANCE", provenanceResolved: "PROVENANCE_RESOLVED" } as const;

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
  /** Puts a stored use back in the recheck window after a restart, with the rules already written for it. */
  rememberStored(event: DataAccessEvent, meta: EventMeta, rules: readonly string[]): void;
  readonly pending: number;
}

interface RecentUse {
  event: DataAccessEvent;
  meta: EventMeta;
  datasets: string[];
  /** Rules whose violations were written for it already. */
  rules: Set<string>;
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
  const maxPending = options.maxPending ?? 10_000;
  const maxPaths = options.maxPathsPerViolation ?? 8;
  const pending = new Map<string, { event: DataAccessEvent; meta: EventMeta }[]>();
  const recheckWindow = options.recheckWindow ?? 20_000;
  const recent: (RecentUse | undefined)[] = [];
  let recentPos = 0;
  let pendingCount = 0;
  let cache = new Map<string, Evaluation>();
  let cacheVersion = -1;
  const labelsSeen = new Set<string>();
  const pathsSeen = new Set<string>();

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
      if (labelsSeen.has(l.id)) continue;
      labelsSeen.add(l.id);
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
  function checkUse(e: DataAccessEvent, row: EventRow, out: AuditBatch, late: boolean, skip?: ReadonlySet<string>): Evaluation {
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
      if (skip?.has(v.ruleId)) return;
      const p = ev.paths[i] as Evaluation["paths"][number];
      if (!pathsSeen.has(p.id)) {
        pathsSeen.add(p.id);
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
    if (recheckWindow <= 0) return;
    recent[recentPos] = { event: e, meta, datasets: ev.datasets, rules: new Set(ev.verdicts.map((v) => v.ruleId)) };
    recentPos = (recentPos + 1) % recheckWindow;
  }

  /** Lineage changed what some datasets carry: check the recent uses of them again. */
  function recheck(changed: readonly string[], out: AuditBatch): void {
    const touched = new Set(changed);
    for (const r of recent) {
      if (!r || !r.datasets.some((d) => touched.has(d))) continue;
      const ev = evaluate(r.event);
      if (ev.unknown.length > 0 || ev.verdicts.every((v) => r.rules.has(v.ruleId))) continue;
      const row = baseRow(r.event, r.meta);
      checkUse(r.event, row, out, true, r.rules);
      out.events.push(row); // replaces the earlier row (same key) with the new verdict and labels
      for (const v of ev.verdicts) r.rules.add(v.ruleId);
    }
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
    if (row && out) {
      if (e.kind === EventKind.collect) {
        row.categories = uniqueSorted(e.outputs.flatMap((d) => d.fields.flatMap((f) => f.categories)));
        row.collected_for = uniqueSorted(e.purposes);
      } else {
        for (const m of e.fieldLineage) {
          for (const input of m.inputs) {
            out.edges.push(edgeRow(e, datasetId(input), input.field, datasetId(m.output), m.output.field, m.transform));
          }
        }
        const mapped = new Set(e.fieldLineage.map((m) => fieldKey(datasetId(m.output), m.output.field)));
        const mappedDatasets = new Set(e.fieldLineage.map((m) => datasetId(m.output)));
        for (const o of e.outputs) {
          if (o.fields.length === 0 && mappedDatasets.has(datasetId(o))) continue;
          const outFields = o.fields.length > 0 ? o.fields.map((f) => f.name) : [WHOLE_DATASET];
          for (const f of outFields) {
            if (mapped.has(fieldKey(datasetId(o), f))) continue;
            for (const i of e.inputs) out.edges.push(edgeRow(e, datasetId(i), WHOLE_DATASET, datasetId(o), f, e.transform));
          }
        }
      }
      if (result.applied) {
        const { subjects: _omitted, ...fact } = e;
        out.facts.push({
          fact_key: createHash("sha256").update(factKey(e)).digest("hex").slice(0, 32),
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
      applyLineage(e, undefined, out);
    },
    rememberStored(e, meta, rules) {
      if (recheckWindow <= 0) return;
      const ev = evaluate(e);
      recent[recentPos] = { event: e, meta, datasets: ev.datasets, rules: new Set(rules) };
      recentPos = (recentPos + 1) % recheckWindow;
    },
    handle(e, meta, out) {
      validateEvent(e, taxonomy);
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

function edgeRow(e: DataAccessEvent, fromDataset: string, fromField: string, toDataset: string, toField: string, transform: string) {
  return {
    event_id: e.eventId,
    occurred_at: e.occurredAt,
    service: e.service,
    job_namespace: e.job.namespace,
    job_name: e.job.name,
    run_id: e.runId,
    from_dataset: fromDataset,
    from_field: fromField,
    to_dataset: toDataset,
    to_field: toField,
    transform,
    masking: e.masking,
  };
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

function uniqueSorted(values: readonly string[]): string[] {
  return [...new Set(values)].sort();
}

/** The lineage paths of a verdict's labels (collection, each derivation, then the use), as JSON and as one line of text. */
function describePaths(v: Verdict<Label>, e: DataAccessEvent, maxPaths: number) {
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
    id: createHash("sha256").update(json).digest("hex").slice(0, 16),
    json,
    text,
    categories: uniqueSorted(v.labels.map((l) => l.category)),
    collectedFor: uniqueSorted(v.labels.flatMap((l) => l.collectedFor)),
    origins: uniqueSorted(v.labels.map((l) => l.origin)),
    labelIds: uniqueSorted(v.labels.map((l) => l.id)),
  };
}
