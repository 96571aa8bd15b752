import type { DataAccessEvent } from "../codec/index.ts";
import type { Declassification } from "../rules/index.ts";
import { createLineageGraph, fieldKey, type Label } from "../lineage/index.ts";

/** One change to what the lineage says, at the time of the fact that made it (replay_timeline_v1). */
export interface TimelineRow {
  dataset: string;
  /** Empty for `described`. */
  field: string;
  /** ms since 1970: when the fact occurred. */
  at: number;
  what: "described" | "field" | "label";
  label_id: string;
  category: string;
  collected_for: string[];
  data_subject: string;
  origin: string;
}

export interface LabelTimeline {
  /** Applies the next fact; facts must come oldest first. Returns the rows it produced. */
  apply(fact: DataAccessEvent): TimelineRow[];
  /** The label with this id as it first reached `dataset#field`, with the path it came by. */
  labelAt(field: string, labelId: string): Label | undefined;
  /** Every distinct label seen. */
  labels(): IterableIterator<Label>;
}

/**
 * The lineage as a timeline: lineage facts are applied to the lineage core in the order they
 * occurred, and every change is recorded with the fact's time: a dataset described, a field named,
 * a label (declassification applied) reaching a field. A use at time t reads what the rows with
 * `at <= t` say, which is what the stream replay's graph holds when it judges that use. Pure.
 */
export function createLabelTimeline(declassify: readonly Declassification[]): LabelTimeline {
  let now = 0;
  let rows: TimelineRow[] = [];
  const versions = new Map<string, Label>();
  const distinct = new Map<string, Label>();
  const blank = { label_id: "", category: "", collected_for: [] as string[], data_subject: "", origin: "" };
  const graph = createLineageGraph(declassify, {
    described(dataset) {
      rows.push({ dataset, field: "", at: now, what: "described", ...blank });
    },
    field(dataset, field) {
      rows.push({ dataset, field, at: now, what: "field", ...blank });
    },
    label(dataset, field, label) {
      versions.set(`${fieldKey(dataset, field)}|${label.id}`, label);
      if (!distinct.has(label.id)) distinct.set(label.id, label);
      rows.push({
        dataset,
        field,
        at: now,
        what: "label",
        label_id: label.id,
        category: label.category,
        collected_for: label.collectedFor,
        data_subject: label.dataSubject,
        origin: label.origin,
      });
    },
  });
  let previous = -Infinity;
  return {
    apply(fact) {
      if (fact.occurredAt < previous)
        throw new Error(`lineage facts out of time order: ${fact.eventId} at ${fact.occurredAt} after ${previous}`);
      previous = now = fact.occurredAt;
      rows = [];
      graph.apply(fact);
      return rows;
    },
    labelAt(field, labelId) {
      return versions.get(`${field}|${labelId}`);
    },
    labels() {
      return distinct.values();
    },
  };
}
