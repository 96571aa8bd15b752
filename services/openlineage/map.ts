// OpenLineage RunEvents (spec 2-0-2) mapped onto our data-access events: pure, no I/O.
// docs/openlineage.md states every rule with an example; test/unit/openlineage/map.test.ts has a
// test per rule.
import { hash } from "node:crypto";
import { InputError } from "../errors/index.ts";
import { EVENT_TIME_RANGE, EventKind, Masking, Transform, type DataAccessEvent, type Dataset, type FieldMapping } from "../codec/index.ts";
import { TaxonomyKind, type Taxonomy } from "../taxonomy/index.ts";
// As our own events' errors: a value is quoted only when shaped like a taxonomy key.
import { quoted } from "../processor/validate.ts";
import type { Classification } from "./classification.ts";
import { deepFreeze } from "./facet-memo.ts";
import {
  LINEAGE_AUDIT_PURPOSE_FACET as PURPOSE_FACET,
  type LineageAuditPurposeRunFacet as PurposeFacet,
  type OpenLineageEvent,
} from "./validate.ts";

/** The tag key whose values are fideslang data categories (TagsDatasetFacet: key, value, field). */
export const CATEGORY_TAG_KEY = "data_category";
/** The subject type of a DERIVE mapped from OpenLineage (it names nobody; labels keep their collection's). */
export const DERIVE_DATA_SUBJECT = "customer";

/** What the mapping reads of a RunEvent (validated against the spec first: validate.ts). */
export interface RunEventInput {
  eventType?: string;
  eventTime: string;
  producer: string;
  run: { runId: string; facets?: Record<string, unknown> };
  job: { namespace: string; name: string };
  inputs?: DatasetInputOL[];
  outputs?: DatasetInputOL[];
}

interface DatasetInputOL {
  namespace: string;
  name: string;
  facets?: Record<string, unknown>;
}

interface ColumnTransformation {
  type?: string;
  subtype?: string;
  masking?: boolean;
}

interface ColumnInputField {
  namespace: string;
  name: string;
  field: string;
  transformations?: ColumnTransformation[];
}

interface ColumnLineageFacet {
  fields?: Record<string, { inputFields?: ColumnInputField[]; transformationType?: string }>;
}

/** What one RunEvent became. */
export interface Mapped {
  /** Our events, in order (none for START, RUNNING, FAIL, ABORT, OTHER). */
  events: DataAccessEvent[];
  /** One sentence on what it became, or why it is no lineage. */
  explanation: string;
}

export interface MapOptions {
  taxonomy: Taxonomy;
  /** Categories for datasets whose producers send no tags. */
  classification?: Classification;
}

/**
 * What a JobEvent or DatasetEvent (static metadata: no run, so nothing happened to any data) is
 * logged as: stored and explained, never lineage. A job's lineage is taken from its runs' COMPLETE
 * events; a dataset's categories from tags on the datasets of those events, or the classification file.
 */
export function explainStaticEvent(checked: Exclude<OpenLineageEvent, { kind: "RunEvent" }>): string {
  if (checked.kind === "DatasetEvent") {
    const { namespace, name } = checked.event.dataset;
    return `a DatasetEvent for ${namespace}/${name}: static dataset metadata, no run; stored, no lineage`;
  }
  const { job, inputs = [], outputs = [] } = checked.event;
  return `a JobEvent for ${job.namespace}/${job.name} (${inputs.length} input(s), ${outputs.length} output(s)): static job metadata, no run; stored, no lineage (lineage is taken from a run's COMPLETE event)`;
}

/**
 * Maps a validated RunEvent. A COMPLETE event with inputs and outputs becomes one DERIVE (a masked
 * column's mapping carries its masking); one with the purpose facet
 * also becomes its USE or SHARE; every other event type is explained, never lineage. Throws an
 * InputError naming the JSON path of what cannot be mapped (an unknown category, a time the store
 * cannot keep); values are quoted only when shaped like taxonomy keys.
 */
export function mapRunEvent(ol: RunEventInput, options: MapOptions): Mapped {
  const type = ol.eventType ?? "";
  if (type !== "COMPLETE") {
    const why =
      type === ""
        ? "carries no eventType"
        : type === "START" || type === "RUNNING"
          ? `is a ${type} event: lineage is taken when the run COMPLETEs`
          : type === "FAIL" || type === "ABORT"
            ? `is a ${type} event: the run did not complete, so it wrote nothing the auditor can rely on`
            : `is an ${type} event: only COMPLETE events carry lineage`;
    return { events: [], explanation: `run ${ol.run.runId} of ${ol.job.namespace}/${ol.job.name} ${why}; stored, no lineage` };
  }
  const occurredAt = Date.parse(ol.eventTime);
  if (!Number.isFinite(occurredAt) || occurredAt < EVENT_TIME_RANGE.min || occurredAt > EVENT_TIME_RANGE.max)
    throw new InputError(`OpenLineage event: /eventTime must be a time from ${EVENT_TIME_RANGE.text}`, { context: { path: "/eventTime" } });
  const inputs = (ol.inputs ?? []).map((d, i) => datasetOf(d, `/inputs/${i}`, options));
  const outputs = (ol.outputs ?? []).map((d, i) => datasetOf(d, `/outputs/${i}`, options));
  const purpose = ol.run.facets?.[PURPOSE_FACET] as PurposeFacet | undefined;
  const base = {
    occurredAt,
    service: purpose?.service ?? ol.job.namespace,
    job: { namespace: ol.job.namespace, name: ol.job.name },
    runId: ol.run.runId,
    traceparent: null,
    pseudonymKeyId: "default",
    attributes: {
      "openlineage.eventType": type,
      "openlineage.eventTime": ol.eventTime,
      "openlineage.producer": ol.producer,
    },
  };
  const events: DataAccessEvent[] = [];
  const said: string[] = [];

  // A derivation: outputs, and inputs or column lineage naming them (dbt names a seed only there).
  const groups = fieldLineageOf(ol.outputs ?? []);
  const mappings = groups.mappings;
  if (outputs.length > 0 && (inputs.length > 0 || mappings.length > 0)) {
    const key = (d: { namespace: string; name: string }) => `${d.namespace}\u0000${d.name}`;
    const columnMapped = new Set(groups.mappedOutputs);
    // Outputs without column lineage take every input's labels (dataset level).
    const datasetLevel = outputs.filter((d) => !columnMapped.has(key(d)));
    // Outputs with column lineage are listed without fields, and only when a mapping writes them:
    // their fields take labels only through the mappings.
    const written = new Set<string>();
    let last: FieldMapping["output"] | undefined;
    for (const m of mappings) {
      // Consecutive mappings mostly write the same output: its key is made once per run of them.
      if (last !== undefined && last.namespace === m.output.namespace && last.name === m.output.name) continue;
      last = m.output;
      written.add(key(m.output));
    }
    const mapped = outputs.filter((d) => columnMapped.has(key(d)) && written.has(key(d))).map((d) => ({ ...d, fields: [] }));
    if (mappings.length > 0 || datasetLevel.length > 0) {
      events.push(
        eventOf(base, {
          // The id of a RunEvent without masked columns is as it was when those with some became two DERIVEs.
          eventId: eventIdOf(ol, groups.masked > 0 ? "derive" : "derive:NONE"),
          kind: EventKind.derive,
          inputs,
          outputs: [...datasetLevel, ...mapped],
          // The event's transform is that of its dataset-level edges: OTHER when it has any.
          transform: datasetLevel.length > 0 ? Transform.other : transformOf(mappings),
          fieldLineage: mappings,
          // Masking is per column in OpenLineage: each masked column's mapping carries its own.
          masking: Masking.none,
          purposes: [],
          dataSubject: DERIVE_DATA_SUBJECT,
          subjects: [],
          recipient: null,
        }),
      );
      said.push(
        mappings.length > 0
          ? `a DERIVE with ${mappings.length} column mapping(s)${groups.masked > 0 ? `, ${groups.masked} of them masking` : ""}${datasetLevel.length > 0 ? ` and ${datasetLevel.length} dataset-level output(s)` : ""}`
          : "a dataset-level DERIVE (no column lineage)",
      );
    }
  }

  if (purpose) {
    events.push(
      eventOf(base, {
        eventId: eventIdOf(ol, `purpose:${purpose.kind}`),
        kind: purpose.kind === "SHARE" ? EventKind.share : EventKind.use,
        inputs,
        outputs: [],
        transform: Transform.other,
        fieldLineage: [],
        masking: Masking.none,
        purposes: [...purpose.purposes],
        dataSubject: purpose.dataSubject,
        subjects: [...(purpose.subjects ?? [])],
        recipient: purpose.kind === "SHARE" && purpose.recipient ? { ...purpose.recipient } : null,
      }),
    );
    said.push(`a ${purpose.kind} for ${purpose.purposes.join(", ")}`);
  }

  const job = `${ol.job.namespace}/${ol.job.name}`;
  if (events.length === 0) {
    const missing = inputs.length === 0 ? (outputs.length === 0 ? "inputs or outputs" : "inputs") : outputs.length === 0 ? "outputs" : "";
    const why = missing
      ? `completed without ${missing} and declares no purpose (${PURPOSE_FACET})`
      : "completed, but its column lineage moves no values (INDIRECT only)";
    return { events, explanation: `run ${ol.run.runId} of ${job} ${why}; stored, no lineage` };
  }
  return { events, explanation: `run ${ol.run.runId} of ${job} completed: ${said.join(" and ")}` };
}

/** What every event a RunEvent becomes shares. */
type EventBase = Pick<DataAccessEvent, "occurredAt" | "service" | "job" | "runId" | "traceparent" | "pseudonymKeyId" | "attributes">;

/**
 * An event of the RunEvent: written out, not spread from the base, so it is one object with every
 * property in place (a spread grows the object's property store step by step).
 */
function eventOf(base: EventBase, e: Omit<DataAccessEvent, keyof EventBase>): DataAccessEvent {
  return {
    occurredAt: base.occurredAt,
    service: base.service,
    job: base.job,
    runId: base.runId,
    traceparent: base.traceparent,
    pseudonymKeyId: base.pseudonymKeyId,
    attributes: base.attributes,
    eventId: e.eventId,
    kind: e.kind,
    inputs: e.inputs,
    outputs: e.outputs,
    transform: e.transform,
    fieldLineage: e.fieldLineage,
    masking: e.masking,
    purposes: e.purposes,
    dataSubject: e.dataSubject,
    subjects: e.subjects,
    recipient: e.recipient,
  };
}

/** A dataset's fields as mapped from a remembered (frozen) schema facet, for the dataset and options they were mapped with. */
interface FieldsMemo {
  namespace: string;
  name: string;
  tags: unknown;
  options: MapOptions;
  fields: Dataset["fields"];
}

/**
 * Fields mapped from facets the facet memo gave (frozen, shared by each event that sent them
 * again, facet-memo.ts): mapped once, and the list shared too (frozen). Keyed by the schema facet,
 * so each is forgotten with it.
 */
const fieldsMemo = new WeakMap<object, FieldsMemo>();

/** A dataset with its fields (schema facet) and their categories (tags, else the classification file). */
function datasetOf(d: DatasetInputOL, path: string, options: MapOptions): Dataset {
  const schema = d.facets?.["schema"] as { fields?: { name: string }[] } | undefined;
  const tags = d.facets?.["tags"];
  if (schema === undefined || !Object.isFrozen(schema) || (tags !== undefined && !Object.isFrozen(tags)))
    return mapDataset(d, path, options);
  const memo = fieldsMemo.get(schema);
  if (memo && memo.namespace === d.namespace && memo.name === d.name && memo.tags === tags && memo.options === options)
    return { namespace: d.namespace, name: d.name, fields: memo.fields };
  const dataset = mapDataset(d, path, options);
  const fields = dataset.fields;
  deepFreeze(fields);
  fieldsMemo.set(schema, { namespace: d.namespace, name: d.name, tags, options, fields });
  return { namespace: d.namespace, name: d.name, fields };
}

function mapDataset(d: DatasetInputOL, path: string, options: MapOptions): Dataset {
  const schema = d.facets?.["schema"] as { fields?: { name: string }[] } | undefined;
  const schemaFields = schema?.fields ?? [];
  const tags = (d.facets?.["tags"] as { tags?: { key: string; value: string; field?: string }[] } | undefined)?.tags ?? [];
  // Field name -> its categories, made on the first category (by a tag, else by the classification file).
  let fields: Map<string, Set<string> | undefined> | undefined;
  for (let i = 0; i < tags.length; i++) {
    const tag = tags[i] as (typeof tags)[number];
    if (tag.key !== CATEGORY_TAG_KEY) continue;
    if (!options.taxonomy.has(TaxonomyKind.dataCategory, tag.value))
      throw new InputError(`OpenLineage event: ${path}/facets/tags/tags/${i}/value is not a fideslang data category${quoted(tag.value)}`, {
        context: { path: `${path}/facets/tags/tags/${i}/value` },
      });
    if (tag.field === undefined || tag.field === "")
      throw new InputError(`OpenLineage event: ${path}/facets/tags/tags/${i}/field must name the field that holds the category`, {
        context: { path: `${path}/facets/tags/tags/${i}/field` },
      });
    // Categories annotate the fields the schema lists; they never add one (a field list narrows
    // what a use of the dataset reads, and no schema means the whole dataset).
    addCategory((fields ??= fieldsOfSchema(schemaFields)), tag.field, tag.value);
  }
  if (fields === undefined && options.classification) {
    for (const [field, categories] of options.classification.categoriesOf(d.namespace, d.name))
      for (const c of categories) addCategory((fields ??= fieldsOfSchema(schemaFields)), field, c);
  }
  const list: Dataset["fields"] = [];
  // Most datasets have no category: their schema's fields, each once in schema order.
  for (const [name, categories] of fields ?? fieldsOfSchema(schemaFields))
    list.push({ name, categories: categories ? [...categories].sort() : NO_CATEGORIES });
  return { namespace: d.namespace, name: d.name, fields: list };
}

/** The schema's fields, each once in schema order, without categories yet. */
function fieldsOfSchema(schemaFields: readonly { name: string }[]): Map<string, Set<string> | undefined> {
  const fields = new Map<string, Set<string> | undefined>();
  for (const f of schemaFields) if (!fields.has(f.name)) fields.set(f.name, undefined);
  return fields;
}

/**
 * The categories of a field that has none, one frozen list for all: kept with its event until the
 * batch is stored, 20 fields of a dataset would otherwise keep 20 empty lists. Never changed.
 */
const NO_CATEGORIES = Object.freeze([]) as unknown as string[];

/** A category for a field the schema lists (others are not added). */
function addCategory(fields: Map<string, Set<string> | undefined>, field: string, category: string): void {
  if (!fields.has(field)) return;
  const set = fields.get(field);
  if (set) set.add(category);
  else fields.set(field, new Set([category]));
}

/** An output field's inputs that reach it the same way. */
interface InputGroup {
  transform: Transform;
  masking: boolean;
  inputs: FieldMapping["inputs"];
}

/** How strongly an input field's value reaches the output field: the strongest DIRECT transformation. */
const STRENGTH: Record<string, number> = { IDENTITY: 1, TRANSFORMATION: 2, AGGREGATION: 3 };

/** Column lineage as field mappings: DIRECT transformations carry values; INDIRECT ones (filters, joins' keys, sorts) do not. */
function fieldLineageOf(outputs: readonly DatasetInputOL[]): { mappings: FieldMapping[]; masked: number; mappedOutputs: string[] } {
  let mappings: FieldMapping[] = [];
  let masked = 0;
  const mappedOutputs: string[] = [];
  for (const out of outputs) {
    const facet = out.facets?.["columnLineage"] as ColumnLineageFacet | undefined;
    if (!facet?.fields) continue;
    mappedOutputs.push(`${out.namespace}\u0000${out.name}`);
    const lineage = outputLineage(out, facet);
    masked += lineage.masked;
    // One output's list as it is (perhaps remembered and shared): the usual case of one output.
    if (mappings.length === 0) mappings = lineage.mappings;
    else if (lineage.mappings.length > 0) mappings = [...mappings, ...lineage.mappings];
  }
  return { mappings, masked, mappedOutputs };
}

/** One output's column lineage as mapped from a remembered (frozen) facet, for the dataset it was mapped for. */
interface LineageMemo {
  namespace: string;
  name: string;
  mappings: FieldMapping[];
  masked: number;
}

/**
 * Column lineage mapped from facets the facet memo gave (frozen, shared by each event that sent
 * them again, facet-memo.ts): mapped once, the mappings shared too (frozen). Keyed by the facet,
 * so each is forgotten with it.
 */
const lineageMemo = new WeakMap<object, LineageMemo>();

function outputLineage(out: DatasetInputOL, facet: ColumnLineageFacet): { mappings: FieldMapping[]; masked: number } {
  if (!Object.isFrozen(facet)) return mapOutputLineage(out, facet);
  const memo = lineageMemo.get(facet);
  if (memo && memo.namespace === out.namespace && memo.name === out.name) return memo;
  const mapped = mapOutputLineage(out, facet);
  deepFreeze(mapped.mappings);
  const kept = {
    namespace: out.namespace,
    name: out.name,
    mappings: mapped.mappings,
    masked: mapped.masked,
  };
  lineageMemo.set(facet, kept);
  return kept;
}

/** One output's column lineage as field mappings. */
function mapOutputLineage(out: DatasetInputOL, facet: ColumnLineageFacet): { mappings: FieldMapping[]; masked: number } {
  const mappings: FieldMapping[] = [];
  let masked = 0;
  let last: { namespace: string; name: string } | undefined;
  const fields = facet.fields ?? {};
  for (const field in fields) {
    if (!Object.hasOwn(fields, field)) continue;
    const spec = fields[field] as { inputFields?: ColumnInputField[]; transformationType?: string };
    // Per input field: its subtype and whether it is masked; grouped by (transform, masking), in
    // the order each group first appears. Most fields have one group, often of one input: the
    // first group is kept in locals and a list is made only for a second.
    let first: InputGroup | undefined;
    let more: InputGroup[] | undefined;
    for (const input of spec.inputFields ?? []) {
      // No transformations (older facets, or an empty list as dbt sends): how the value moves is not said.
      const given = input.transformations;
      // The older facet's transformationType: IDENTITY, or MASKED ("no original data available, like a hash").
      let subtype = spec.transformationType === "IDENTITY" ? "IDENTITY" : "TRANSFORMATION";
      let masking = spec.transformationType === "MASKED";
      if (given !== undefined && given.length > 0) {
        let direct = 0;
        subtype = "IDENTITY";
        for (const t of given) {
          if (t.type !== "DIRECT") continue;
          direct++;
          const s = t.subtype ?? "TRANSFORMATION";
          if ((STRENGTH[s] ?? 2) > (STRENGTH[subtype] ?? 2)) subtype = s;
          if (t.masking === true) masking = true;
        }
        if (direct === 0) continue; // only INDIRECT: no value flows
      }
      const transform =
        subtype === "AGGREGATION"
          ? Transform.aggregate
          : subtype === "IDENTITY"
            ? Transform.copy
            : masking
              ? Transform.hash
              : Transform.other;
      // The dataset's strings of the input before when it names the same one (20 columns of one
      // table name it 20 times): kept until the batch is stored, one copy instead of 20.
      if (last === undefined || last.name !== input.name || last.namespace !== input.namespace)
        last = { namespace: input.namespace, name: input.name };
      const ref = { namespace: last.namespace, name: last.name, field: input.field };
      if (first === undefined) {
        first = { transform, masking, inputs: [ref] };
        continue;
      }
      if (first.transform === transform && first.masking === masking) {
        first.inputs.push(ref);
        continue;
      }
      let group: InputGroup | undefined;
      for (const g of (more ??= [])) if (g.transform === transform && g.masking === masking) group = g;
      if (group) group.inputs.push(ref);
      else more.push({ transform, masking, inputs: [ref] });
    }
    if (first === undefined) continue;
    for (const g of more === undefined ? [first] : [first, ...more]) {
      if (g.masking) masked++;
      mappings.push({
        output: { namespace: out.namespace, name: out.name, field },
        inputs: g.inputs,
        transform: g.transform,
        masking: g.masking ? Masking.masked : null,
      });
    }
  }
  return { mappings, masked };
}

/** The event's transform: the one its mappings share, else OTHER. */
function transformOf(mappings: readonly FieldMapping[]): Transform {
  const first = mappings[0]?.transform ?? Transform.other;
  for (const m of mappings) if (m.transform !== first) return Transform.other;
  return first;
}

/**
 * A stable event id for each event a RunEvent becomes, in UUID form (version 8): the event time's
 * milliseconds since 1970 in the first 48 bits, as a UUIDv7 has them, then 74 bits of the SHA-256
 * of the job, run, event type, time and part. A RunEvent delivered again (HTTP retry, Kafka
 * redelivery, a file ingested twice) gives the same ids, so it is stored once; and ids sort by
 * event time, so the store's check of a batch's ids (event_ids_v2, sorted by id) reads the few
 * granules of the batch's time, not nearly all of them as random ids would once the table is large.
 */
export function eventIdOf(ol: Pick<RunEventInput, "eventType" | "eventTime" | "run" | "job">, part: string): string {
  const hex = hash(
    "sha256",
    `openlineage\u0000${ol.job.namespace}\u0000${ol.job.name}\u0000${ol.run.runId}\u0000${ol.eventType ?? ""}\u0000${ol.eventTime}\u0000${part}`,
    "hex",
  );
  const at = Date.parse(ol.eventTime);
  // Mapped events have a time from 1970 on (EVENT_TIME_RANGE); 48 bits hold it to the year 10889.
  const time = (Number.isFinite(at) && at > 0 ? at : 0).toString(16).padStart(12, "0").slice(-12);
  // Version 8 in byte 6's high nibble; variant 10 in byte 8's top two bits.
  const variant = ((parseInt(hex.charAt(3), 16) & 0x3) | 0x8).toString(16);
  // Joined into one flat string (a template literal of these parts is a tree of seven): the id is
  // kept with its event until the batch is stored, and hashed as a key.
  return [time.slice(0, 8), time.slice(8, 12), `8${hex.slice(0, 3)}`, variant + hex.slice(4, 7), hex.slice(7, 19)].join("-");
}
