// Validation of OpenLineage RunEvents (spec 2-0-2) for the OpenLineage intake. Pure: the schemas
// under schemas/openlineage/ are read once when this module loads, compiled by ajv on first use,
// and validating does no I/O. Failures are InputErrors whose message names a JSON path and the
// rule broken, never a value from the event (values may be personal data).

import { isAscii, isUtf8 } from "node:buffer";
import { readFileSync } from "node:fs";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { defaultDecodeLimits } from "../codec/limits.ts";
import { InputError } from "../errors/index.ts";
import { eachDatasetFacet, facetKey, isObject, type DatasetSpan, type FacetMemo, type FoundFacets } from "./facet-memo.ts";

// ---------------------------------------------------------------------------------------------
// Limits

/** How much one OpenLineage event may make the intake allocate or validate. */
export interface RunEventLimits {
  /** Largest event, in bytes of UTF-8 JSON. @default 1048576 (1 MiB, the message limit `defaultDecodeLimits.maxMessageBytes`) */
  maxBytes: number;
  /** Deepest nesting of JSON arrays and objects (the event object itself is level 1); also of nested schema fields. @default 32 */
  maxDepth: number;
  /** Inputs and outputs of one event together. @default 10000 */
  maxDatasets: number;
  /** Fields of one dataset's `schema` facet, nested fields included. @default 10000 */
  maxSchemaFields: number;
  /** Column-lineage input fields of one event (`inputFields` of every output field, plus `dataset` entries). @default 100000 */
  maxColumnLineageInputFields: number;
}

export const MAX_RUN_EVENT_BYTES = defaultDecodeLimits.maxMessageBytes;
export const MAX_RUN_EVENT_DEPTH = 32;
export const MAX_RUN_EVENT_DATASETS = 10_000;
export const MAX_SCHEMA_FIELDS_PER_DATASET = 10_000;
export const MAX_COLUMN_LINEAGE_INPUT_FIELDS = 100_000;

export const defaultRunEventLimits: Readonly<RunEventLimits> = Object.freeze({
  maxBytes: MAX_RUN_EVENT_BYTES,
  maxDepth: MAX_RUN_EVENT_DEPTH,
  maxDatasets: MAX_RUN_EVENT_DATASETS,
  maxSchemaFields: MAX_SCHEMA_FIELDS_PER_DATASET,
  maxColumnLineageInputFields: MAX_COLUMN_LINEAGE_INPUT_FIELDS,
});

const withDefaults = (limits: Partial<RunEventLimits> | undefined): Readonly<RunEventLimits> =>
  limits === undefined ? defaultRunEventLimits : { ...defaultRunEventLimits, ...limits };

// ---------------------------------------------------------------------------------------------
// What we read of a RunEvent

/** Fields every facet has (OpenLineage BaseFacet); facets may carry anything else. */
export interface OpenLineageFacet {
  _producer: string;
  _schemaURL: string;
  _deleted?: boolean;
  [key: string]: unknown;
}

export interface ColumnLineageTransformation {
  /** The spec's ColumnLineageDatasetFacet 1-2-0 documents DIRECT and INDIRECT; the intake accepts only those. */
  type: "DIRECT" | "INDIRECT";
  /** e.g. IDENTITY, TRANSFORMATION, AGGREGATION, JOIN, FILTER, GROUP_BY, SORT, WINDOW, CONDITIONAL. */
  subtype?: string;
  description?: string;
  masking?: boolean;
}

export interface ColumnLineageInputField {
  namespace: string;
  name: string;
  field: string;
  transformations?: ColumnLineageTransformation[];
}

/** ColumnLineageDatasetFacet 1-2-0 (`facets.columnLineage`). */
export interface ColumnLineageDatasetFacet extends OpenLineageFacet {
  fields: Record<string, { inputFields: ColumnLineageInputField[]; transformationDescription?: string; transformationType?: string }>;
  dataset?: ColumnLineageInputField[];
}

export interface SchemaDatasetFacetField {
  name: string;
  type?: string;
  description?: string;
  ordinal_position?: number;
  fields?: SchemaDatasetFacetField[];
}

/** SchemaDatasetFacet 1-2-0 (`facets.schema`). */
export interface SchemaDatasetFacet extends OpenLineageFacet {
  fields?: SchemaDatasetFacetField[];
}

/** TagsDatasetFacet 1-0-0 (`facets.tags`). */
export interface TagsDatasetFacet extends OpenLineageFacet {
  tags?: { key: string; value: string; source?: string; field?: string }[];
}

/** lineage-audit's own run facet (`run.facets.lineageAudit_purpose`), schemas/openlineage/LineageAuditPurposeRunFacet.json. */
export interface LineageAuditPurposeRunFacet extends OpenLineageFacet {
  kind: "USE" | "SHARE";
  /** fideslang data use keys, 1 to 64. */
  purposes: string[];
  /** fideslang data subject key, e.g. customer. */
  dataSubject: string;
  /** The emitting service; default: the job namespace. */
  service?: string;
  /** Pseudonyms (32 lowercase hex digits), never raw identifiers. */
  subjects?: string[];
  /** Present when kind is SHARE. */
  recipient?: { name: string; external: boolean };
}

export interface DatasetFacets {
  columnLineage?: ColumnLineageDatasetFacet;
  schema?: SchemaDatasetFacet;
  tags?: TagsDatasetFacet;
  [name: string]: OpenLineageFacet | undefined;
}

export interface RunFacets {
  lineageAudit_purpose?: LineageAuditPurposeRunFacet;
  [name: string]: OpenLineageFacet | undefined;
}

export interface OpenLineageDataset {
  namespace: string;
  name: string;
  facets?: DatasetFacets;
}

export interface InputDataset extends OpenLineageDataset {
  inputFacets?: Record<string, OpenLineageFacet>;
}

export interface OutputDataset extends OpenLineageDataset {
  outputFacets?: Record<string, OpenLineageFacet>;
}

/** An OpenLineage 2-0-2 RunEvent, as far as the intake reads it. */
export interface RunEvent {
  /** Optional in the spec. */
  eventType?: "START" | "RUNNING" | "COMPLETE" | "ABORT" | "FAIL" | "OTHER";
  /** RFC 3339 date-time with an offset. */
  eventTime: string;
  run: { runId: string; facets?: RunFacets };
  job: { namespace: string; name: string; facets?: Record<string, OpenLineageFacet> };
  inputs?: InputDataset[];
  outputs?: OutputDataset[];
  /** URI of the producer. */
  producer: string;
  /** URI of the spec version the event follows. */
  schemaURL: string;
}

/** An OpenLineage 2-0-2 JobEvent: a job's static metadata, no run (as far as the intake reads it). */
export interface JobEvent {
  eventTime: string;
  job: { namespace: string; name: string; facets?: Record<string, OpenLineageFacet> };
  inputs?: InputDataset[];
  outputs?: OutputDataset[];
  producer: string;
  schemaURL: string;
}

/** An OpenLineage 2-0-2 DatasetEvent: a dataset's static metadata, no job, no run. */
export interface DatasetEvent {
  eventTime: string;
  dataset: OpenLineageDataset;
  producer: string;
  schemaURL: string;
}

/** The three kinds of OpenLineage 2-0-2 event: a RunEvent may carry lineage, the other two are static metadata. */
export type OpenLineageEventKind = "RunEvent" | "JobEvent" | "DatasetEvent";

/** An event the intake validated, with its kind. */
export type OpenLineageEvent =
  { kind: "RunEvent"; event: RunEvent } | { kind: "JobEvent"; event: JobEvent } | { kind: "DatasetEvent"; event: DatasetEvent };

/** The run facet name and `_schemaURL` of lineage-audit's purpose facet. */
export const LINEAGE_AUDIT_PURPOSE_FACET = "lineageAudit_purpose";
export const LINEAGE_AUDIT_PURPOSE_FACET_SCHEMA_URL =
  "https://github.com/lineage-audit/lineage-audit/blob/main/schemas/openlineage/LineageAuditPurposeRunFacet.json#/$defs/LineageAuditPurposeRunFacet";

// ---------------------------------------------------------------------------------------------
// Bytes to a parsed document

const n = (v: number) => v.toLocaleString("en-US");

/**
 * Checks an event's bytes before JSON.parse allocates anything for them: at most `maxBytes`,
 * nested at most `maxDepth` levels (one linear scan that counts `[` and `{` outside strings), and
 * valid UTF-8. Returns the parsed JSON (not yet validated: see `validateRunEvent`).
 * Throws an InputError otherwise.
 *
 * Given a facet memo (facet-memo.ts), the same scan notes where each dataset facet's value lies,
 * and a facet sent before byte for byte is taken from the memo instead of parsed again: the
 * document is the same either way.
 */
export function checkRunEventBytes(bytes: Uint8Array, limits?: Partial<RunEventLimits>, memo?: FacetMemo): unknown {
  const { maxBytes, maxDepth } = withDefaults(limits);
  const size = bytes.length;
  if (size > maxBytes)
    throw new InputError(`OpenLineage event is ${n(size)} bytes; the limit is ${n(maxBytes)}`, { context: { bytes: size } });
  // In UTF-8 every byte of a multi-byte sequence is >= 0x80, so the ASCII bytes below are never
  // parts of other characters, valid UTF-8 or not.
  let depth = 0;
  let inString = false;
  // Whether a string holds an escape \uD800-\uDFFF (a surrogate, perhaps unpaired): seen here,
  // so the text needs no second pass to find one.
  let surrogateEscape = false;
  const shape = memo === undefined ? undefined : newShape(bytes, memo, maxDepth);
  for (let i = 0; i < size; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === 0x5c /* \ */) {
        if (bytes[i + 1] === 0x75 /* u */ && (bytes[i + 2] === 0x64 || bytes[i + 2] === 0x44) /* d D */) {
          const c = bytes[i + 3] as number;
          // 8, 9, a-f, A-F
          if (c === 0x38 || c === 0x39 || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)) surrogateEscape = true;
        }
        i++;
      } else if (b === 0x22 /* " */) {
        inString = false;
        if (shape && depth < FACET_DEPTH) shape.stringEnd(i, depth);
      }
    } else if (b === 0x22) {
      inString = true;
      if (shape && depth < FACET_DEPTH) shape.stringStart = i + 1;
    } else if (b === 0x5b /* [ */ || b === 0x7b /* { */) {
      if (++depth > maxDepth) {
        throw new InputError(`OpenLineage event nests deeper than ${n(maxDepth)} levels at byte ${i}`, { context: { byte: i } });
      }
      if (shape && depth <= FACET_DEPTH) {
        // A remembered facet's bytes again: skipped, as scanned before (balanced, nesting within limits).
        const skip = shape.open(b === 0x7b, i, depth);
        if (skip > 0) {
          i += skip - 1;
          depth--;
        }
      }
    } else if (b === 0x5d /* ] */ || b === 0x7d /* } */) {
      if (shape && depth <= FACET_DEPTH) shape.close(i, depth);
      depth--;
    } else if (shape && depth < FACET_DEPTH && (b === 0x3a /* : */ || b === 0x2c) /* , */) {
      if (b === 0x3a) shape.colon(bytes, depth);
      else shape.afterColon = false;
    }
  }
  // Checked natively, then decoded without a second check.
  if (!isUtf8(bytes)) throw new InputError("OpenLineage event is not valid UTF-8");
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  let doc: unknown;
  try {
    // The memo's offsets are bytes: they are the text's only when every character is one byte.
    doc =
      memo && shape && shape.found.facets.length > 0 && !surrogateEscape && isAscii(bytes)
        ? memo.parse(text, bytes, shape.found)
        : JSON.parse(text);
  } catch (error) {
    // V8's message quotes the text around the error: keep only the position.
    const at = /at position (\d+)/.exec(error instanceof Error ? error.message : "")?.[1];
    throw new InputError(`OpenLineage event is not valid JSON${at === undefined ? "" : ` (at character ${at})`}`);
  }
  // A \uD800 escape is ASCII in the bytes but an unpaired surrogate once parsed: no store takes it
  // (ClickHouse refuses the row), so it is refused here, before it reaches a write.
  // Raw UTF-8 cannot hold a surrogate: only an escape can, so only a text with one is walked.
  if (surrogateEscape && !wellFormed(doc))
    throw new InputError("OpenLineage event holds a string with an unpaired UTF-16 surrogate (a lone \\uD800-\\uDFFF escape)");
  return doc;
}

/**
 * The depth of a dataset facet's value: the event 1, inputs 2, a dataset 3, its facets 4. Keys and
 * values are followed above it only; inside a facet's value only its end is looked for.
 */
const FACET_DEPTH = 5;

/** What a key at a depth the scan follows says, by its raw bytes. */
const enum Key {
  Other,
  Inputs,
  Outputs,
  Facets,
  Namespace,
  Name,
}

/**
 * The event's shape down to its datasets' facets, as the byte scan passes it (structural bytes
 * only): which dataset of /inputs or /outputs it is in, and where each of its facets' values,
 * namespace and name lie. Keys are matched by their raw bytes: one sent with escapes is another key
 * here (its facets are parsed as usual).
 */
function newShape(bytes: Uint8Array, memo: FacetMemo, maxDepth: number) {
  const found: FoundFacets = { datasets: [], facets: [] };
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let topIsObject = false;
  /** Depth 2: the inputs or outputs array the scan is in (Other: none). */
  let side = Key.Other;
  /** The key last read at depth 1, 3 and 4. */
  let key1 = Key.Other;
  let key3 = Key.Other;
  let key4Start = -1;
  let key4End = -1;
  /** The dataset object the scan is in (index into found.datasets), or -1. */
  let dataset = -1;
  let inFacets = false;
  let facetStart = -1;
  let lastStart = -1;
  let lastEnd = -1;
  return {
    found,
    /** Where the string being read starts (after its quote). */
    stringStart: -1,
    /** Whether a `:` came since the last value began: a string now is a value, not a key. */
    afterColon: false,
    stringEnd(end: number, depth: number): void {
      if (!this.afterColon) {
        lastStart = this.stringStart;
        lastEnd = end;
        return;
      }
      this.afterColon = false;
      if (depth !== 3 || dataset < 0) return;
      const d = found.datasets[dataset] as DatasetSpan;
      if (key3 === Key.Namespace) {
        d.namespaceStart = this.stringStart;
        d.namespaceEnd = end;
      } else if (key3 === Key.Name) {
        d.nameStart = this.stringStart;
        d.nameEnd = end;
      }
    },
    colon(bytes: Uint8Array, depth: number): void {
      this.afterColon = true;
      if (depth === 1) key1 = keyOf(bytes, lastStart, lastEnd);
      else if (depth === 3) key3 = keyOf(bytes, lastStart, lastEnd);
      else if (depth === 4) {
        key4Start = lastStart;
        key4End = lastEnd;
      }
    },
    /** Returns how many bytes from `at` the scan may skip (a remembered facet's), else 0. */
    open(object: boolean, at: number, depth: number): number {
      this.afterColon = false;
      if (depth === 1) topIsObject = object;
      else if (depth === 2) side = topIsObject && !object && (key1 === Key.Inputs || key1 === Key.Outputs) ? key1 : Key.Other;
      else if (depth === 3) {
        dataset = -1;
        if (side !== Key.Other && object) {
          dataset = found.datasets.length;
          found.datasets.push({
            side: side === Key.Inputs ? "inputs" : "outputs",
            namespaceStart: -1,
            namespaceEnd: -1,
            nameStart: -1,
            nameEnd: -1,
          });
          key3 = Key.Other;
        }
      } else if (depth === 4) inFacets = dataset >= 0 && object && key3 === Key.Facets;
      else if (inFacets && object) {
        const d = found.datasets[dataset] as DatasetSpan;
        // Known when the dataset's namespace and name came before its facets (as clients write them).
        const known =
          d.namespaceStart >= 0 && d.nameStart >= 0 ? memo.known(facetKey(view, d, key4Start, key4End), bytes, at, maxDepth) : undefined;
        if (known === undefined) facetStart = at;
        else {
          found.facets.push({ start: at, end: at + known.length, keyStart: key4Start, keyEnd: key4End, dataset, value: known.value });
          return known.length;
        }
      }
      return 0;
    },
    close(at: number, depth: number): void {
      this.afterColon = false;
      if (depth === 5 && facetStart >= 0) {
        found.facets.push({ start: facetStart, end: at + 1, keyStart: key4Start, keyEnd: key4End, dataset });
        facetStart = -1;
      } else if (depth === 4) inFacets = false;
      else if (depth === 3) dataset = -1;
      else if (depth === 2) side = Key.Other;
    },
  };
}

const KEYS: readonly [Key, string][] = [
  [Key.Inputs, "inputs"],
  [Key.Outputs, "outputs"],
  [Key.Facets, "facets"],
  [Key.Namespace, "namespace"],
  [Key.Name, "name"],
];

/** The key bytes[start, end) is, by its raw bytes. */
function keyOf(bytes: Uint8Array, start: number, end: number): Key {
  const length = end - start;
  next: for (const [key, text] of KEYS) {
    if (text.length !== length) continue;
    for (let i = 0; i < length; i++) if (bytes[start + i] !== text.charCodeAt(i)) continue next;
    return key;
  }
  return Key.Other;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Whether every key and string in a parsed document is well-formed UTF-16 (nesting already bounded). */
function wellFormed(value: unknown): boolean {
  if (typeof value === "string") return !LONE_SURROGATE.test(value);
  if (typeof value !== "object" || value === null) return true;
  if (Array.isArray(value)) return value.every(wellFormed);
  for (const [key, v] of Object.entries(value)) if (LONE_SURROGATE.test(key) || !wellFormed(v)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Shape

/**
 * Whether a parsed JSON value is shaped like an OpenLineage event rather than an `emit()` input
 * (kind, service, occurredAt at the top): eventTime and producer, and a run with a runId, a job
 * or a dataset with a namespace and a name. Tells the two apart in NDJSON files; says nothing
 * about validity.
 */
export function isOpenLineageShape(doc: unknown): boolean {
  if (!isObject(doc) || doc["eventTime"] === undefined || doc["producer"] === undefined) return false;
  const named = (v: unknown) => isObject(v) && v["namespace"] !== undefined && v["name"] !== undefined;
  const { run } = doc;
  if (run !== undefined) return isObject(run) && run["runId"] !== undefined && named(doc["job"]);
  return named(doc["job"]) || named(doc["dataset"]);
}

/**
 * The kind a parsed document is by its shape, as the spec tells them apart: one with a `run` is a
 * RunEvent, one with a `dataset` and no run a DatasetEvent, one with a `job` and no run a
 * JobEvent; anything else is checked as a RunEvent, so its refusal names what a RunEvent lacks.
 */
export function eventKindOf(doc: unknown): OpenLineageEventKind {
  if (!isObject(doc) || doc["run"] !== undefined) return "RunEvent";
  if (doc["dataset"] !== undefined) return "DatasetEvent";
  if (doc["job"] !== undefined) return "JobEvent";
  return "RunEvent";
}

// ---------------------------------------------------------------------------------------------
// Schemas

const schemaFile = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(new URL(`../../schemas/openlineage/${name}`, import.meta.url), "utf8")) as Record<string, unknown>;

const SPEC = schemaFile("OpenLineage.json");
const FACETS = [
  schemaFile("ColumnLineageDatasetFacet.json"),
  schemaFile("SchemaDatasetFacet.json"),
  schemaFile("TagsDatasetFacet.json"),
  schemaFile("LineageAuditPurposeRunFacet.json"),
];
const idOf = (schema: Record<string, unknown>) => schema["$id"] as string;
const [COLUMN_LINEAGE_ID, SCHEMA_ID, TAGS_ID, PURPOSE_ID] = FACETS.map(idOf) as [string, string, string, string];

/**
 * One schema per kind of event, so ajv checks an event in one pass: the spec's RunEvent, JobEvent
 * or DatasetEvent, each dataset's `facets` against the ColumnLineage, Schema and Tags facet
 * schemas, and a run's `facets` against our purpose facet schema. Each facet schema is a `facets`
 * object schema that applies to its facet only when present; other facets are held to the spec's
 * base facet only.
 */
const datasetList = { items: { properties: { facets: { $ref: "#/$defs/datasetFacets" } } } };
const INTAKE_PROPERTIES: Record<OpenLineageEventKind, Record<string, unknown>> = {
  RunEvent: { run: { properties: { facets: { $ref: PURPOSE_ID } } }, inputs: datasetList, outputs: datasetList },
  JobEvent: { inputs: datasetList, outputs: datasetList },
  DatasetEvent: { dataset: { properties: { facets: { $ref: "#/$defs/datasetFacets" } } } },
};
const intakeSchema = (kind: OpenLineageEventKind) => ({
  $id: `urn:lineage-audit:openlineage:${kind === "RunEvent" ? "run-event" : kind === "JobEvent" ? "job-event" : "dataset-event"}-intake`,
  $ref: `${idOf(SPEC)}#/$defs/${kind}`,
  properties: INTAKE_PROPERTIES[kind],
  $defs: {
    datasetFacets: {
      allOf: [{ $ref: COLUMN_LINEAGE_ID }, { $ref: SCHEMA_ID }, { $ref: TAGS_ID }],
      // ColumnLineageDatasetFacet 1-2-0 types a transformation's `type` as a string whose
      // description says "Allowed values are: DIRECT, INDIRECT"; the intake holds it to that.
      properties: {
        columnLineage: {
          properties: {
            fields: { additionalProperties: { properties: { inputFields: { items: { $ref: "#/$defs/inputField" } } } } },
            dataset: { items: { $ref: "#/$defs/inputField" } },
          },
        },
      },
    },
    inputField: { properties: { transformations: { items: { properties: { type: { enum: ["DIRECT", "INDIRECT"] } } } } } },
  },
});

let ajv: Ajv2020 | undefined;
const compiled = new Map<OpenLineageEventKind, ValidateFunction>();

function intakeValidator(kind: OpenLineageEventKind): ValidateFunction {
  let validate = compiled.get(kind);
  if (validate === undefined) {
    validate = schemas().compile(intakeSchema(kind));
    compiled.set(kind, validate);
  }
  return validate;
}

function schemas(): Ajv2020 {
  if (ajv === undefined) {
    // ajv's CommonJS modules: the named export `Ajv2020` is typed and loads from ESM; the default
    // import is typed as the module object under NodeNext, whose `.default` is the plugin itself.
    // Unknown keywords are errors (strictSchema); the strict checks that the official schemas do
    // not pass (`not: { required: [...] }` in DatasetEvent/JobEvent, applicators without `type`)
    // are off rather than logged.
    ajv = new Ajv2020({
      strictSchema: true,
      strictTypes: false,
      strictTuples: false,
      strictRequired: false,
      allErrors: false, // the first error is all the message names
      logger: false, // modules under services/ never write to stderr
    });
    addFormats.default(ajv, ["date-time", "uri", "uuid"]);
    // The same few URIs (the producer, each facet's _producer and _schemaURL) come in every event:
    // each is checked by ajv-formats' full RFC 3986 pattern once, then remembered.
    const uri = ajv.formats["uri"];
    if (typeof uri !== "function") throw new Error("ajv-formats gave no uri check");
    ajv.addFormat("uri", { type: "string", validate: (s: string) => knownUri(s, uri) });
    ajv.addKeyword("example"); // an annotation the OpenLineage schemas use
    ajv.addSchema(SPEC);
    for (const facet of FACETS) ajv.addSchema(facet);
  }
  return ajv;
}

/** URIs that passed the full check (bounded: at most this many, each at most URI_MEMO_CHARS long). */
const validUris = new Set<string>();
const URI_MEMO_SIZE = 1024;
const URI_MEMO_CHARS = 512;

function knownUri(s: string, check: (s: string) => boolean): boolean {
  if (validUris.has(s)) return true;
  if (!check(s)) return false;
  if (s.length <= URI_MEMO_CHARS) {
    if (validUris.size >= URI_MEMO_SIZE) validUris.clear();
    validUris.add(s);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Validation

const MAX_PATH_CHARS = 300;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * A JSON path with every key that could be data (a column or facet name a producer chose, which
 * may be anything) shown as `<key>`: names of the spec and identifiers stay readable.
 */
function safePath(instancePath: string): string {
  if (instancePath === "") return "/";
  const path = instancePath
    .split("/")
    .map((segment) => (segment === "" || /^\d+$/.test(segment) || IDENTIFIER.test(segment) ? segment : "<key>"))
    .join("/");
  return path.length > MAX_PATH_CHARS ? `${path.slice(0, MAX_PATH_CHARS)}…` : path;
}

function describe(error: ErrorObject): string {
  const path = safePath(error.instancePath);
  let message = error.message ?? `must pass "${error.keyword}"`;
  // The name of an unexpected property helps the producer; print it only when it cannot be data.
  const extra = (error.params as { additionalProperty?: unknown }).additionalProperty;
  if (error.keyword === "additionalProperties" && typeof extra === "string" && IDENTIFIER.test(extra)) message += ` ('${extra}')`;
  return `${path} ${message}`;
}

function fail(path: string, message: string): never {
  throw new InputError(`OpenLineage event: ${path} ${message}`, { context: { path } });
}

/** The counts ajv does not bound, checked before it runs. Tolerates any shape: ajv reports those. */
function checkCounts(doc: unknown, limits: Readonly<RunEventLimits>): void {
  if (!isObject(doc)) return;
  const inputs = Array.isArray(doc["inputs"]) ? (doc["inputs"] as unknown[]) : [];
  const outputs = Array.isArray(doc["outputs"]) ? (doc["outputs"] as unknown[]) : [];
  const datasets = inputs.length + outputs.length;
  if (datasets > limits.maxDatasets) fail("/", `has ${n(datasets)} inputs and outputs; the limit is ${n(limits.maxDatasets)}`);
  // A DatasetEvent's one dataset, then a RunEvent's or JobEvent's inputs and outputs.
  let inputFields = checkFacets(isObject(doc["dataset"]) ? doc["dataset"]["facets"] : undefined, "/dataset", limits);
  for (const [side, list] of [
    ["inputs", inputs],
    ["outputs", outputs],
  ] as const) {
    for (let i = 0; i < list.length; i++)
      inputFields += checkFacets((list[i] as { facets?: unknown } | null)?.facets, `/${side}/${i}`, limits);
  }
  if (inputFields > limits.maxColumnLineageInputFields) {
    fail("/", `has ${n(inputFields)} column-lineage input fields; the limit is ${n(limits.maxColumnLineageInputFields)}`);
  }
}

/** Remembered (frozen) schema facets whose fields are within the default limits, and column-lineage facets' input field counts. */
const countedSchemas = new WeakSet<object>();
const lineageCounts = new WeakMap<object, number>();

/** Checks a dataset's schema facet fields; returns its column-lineage input fields. */
function checkFacets(facets: unknown, path: string, limits: Readonly<RunEventLimits>): number {
  if (!isObject(facets)) return 0;
  // A facet the facet memo gave is counted once (under the default limits, as the intake checks).
  const remembered = (v: object) => limits === defaultRunEventLimits && Object.isFrozen(v);
  const schema = facets["schema"];
  if (isObject(schema) && Array.isArray(schema["fields"]) && !(remembered(schema) && countedSchemas.has(schema))) {
    checkSchemaFields(schema["fields"], `${path}/facets/schema`, limits);
    if (remembered(schema)) countedSchemas.add(schema);
  }
  const lineage = facets["columnLineage"];
  if (!isObject(lineage)) return 0;
  const counted = lineageCounts.get(lineage);
  if (counted !== undefined) return counted;
  const inputFields = countInputFields(lineage);
  if (remembered(lineage)) lineageCounts.set(lineage, inputFields);
  return inputFields;
}

function countInputFields(lineage: Record<string, unknown>): number {
  let inputFields = 0;
  const fields = lineage["fields"];
  if (isObject(fields)) {
    for (const name in fields) {
      const mapping = fields[name];
      if (isObject(mapping) && Array.isArray(mapping["inputFields"])) inputFields += mapping["inputFields"].length;
    }
  }
  if (Array.isArray(lineage["dataset"])) inputFields += lineage["dataset"].length;
  return inputFields;
}

/** Counts a schema facet's fields, nested ones included, without recursion (ajv's check of them recurses). */
function checkSchemaFields(top: unknown[], path: string, limits: Readonly<RunEventLimits>): void {
  let count = 0;
  const stack: { fields: unknown[]; depth: number }[] = [{ fields: top, depth: 1 }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    count += next.fields.length;
    if (count > limits.maxSchemaFields) fail(path, `has more than ${n(limits.maxSchemaFields)} fields`);
    for (const field of next.fields) {
      const nested = isObject(field) ? field["fields"] : undefined;
      if (!Array.isArray(nested)) continue;
      if (next.depth >= limits.maxDepth) fail(`${path}/fields`, `nests deeper than ${n(limits.maxDepth)} levels`);
      stack.push({ fields: nested, depth: next.depth + 1 });
    }
  }
}

/**
 * Validates a parsed document as an OpenLineage 2-0-2 RunEvent: the spec's RunEvent schema, the
 * columnLineage, schema and tags dataset facets and the lineageAudit_purpose run facet against
 * their schemas when present (other facets only against the spec's base facet), and the count
 * limits. Throws one InputError naming the first failure's JSON path, e.g.
 * `OpenLineage event: /run/runId must match format "uuid"`. Safe on any JSON.parse result.
 */
export function validateRunEvent(doc: unknown, limits?: Partial<RunEventLimits>): RunEvent {
  return check(doc, "RunEvent", limits) as RunEvent;
}

/**
 * Validates a parsed document as the OpenLineage 2-0-2 event its shape says it is (`eventKindOf`):
 * a RunEvent as `validateRunEvent` does, a JobEvent or DatasetEvent against the spec's schema
 * for it, with the same facet schemas and limits. Throws as `validateRunEvent` does.
 */
export function validateOpenLineageEvent(doc: unknown, limits?: Partial<RunEventLimits>): OpenLineageEvent {
  const kind = eventKindOf(doc);
  return { kind, event: check(doc, kind, limits) } as OpenLineageEvent;
}

function check(doc: unknown, kind: OpenLineageEventKind, limits: Partial<RunEventLimits> | undefined): unknown {
  checkCounts(doc, withDefaults(limits));
  const validate = intakeValidator(kind);
  const known = knownValid[kind];
  const { view, fresh } = withoutKnownFacets(doc, known);
  if (!validate(view)) {
    const first = validate.errors?.[0];
    const path = first === undefined ? "/" : safePath(first.instancePath);
    throw new InputError(`OpenLineage event: ${first === undefined ? `/ is not a valid ${kind}` : describe(first)}`, {
      context: { path: path.slice(0, MAX_PATH_CHARS), keyword: first?.keyword },
    });
  }
  // Its remembered facets are known valid from now on.
  for (const facet of fresh) known.add(facet);
  return doc;
}

/**
 * Dataset facets the facet memo gave (frozen, shared by each event that sent them again:
 * facet-memo.ts) that were valid in an event of this kind. A facet's validity is its own (no
 * schema relates a facet to its siblings, and none is required), so an event with such a facet is
 * valid exactly when it is without it: it is checked without them.
 */
const knownValid: Record<OpenLineageEventKind, WeakSet<object>> = {
  RunEvent: new WeakSet(),
  JobEvent: new WeakSet(),
  DatasetEvent: new WeakSet(),
};

/**
 * The event as ajv is to see it, without the remembered (frozen) facets known valid: a copy of
 * what holds them, the event itself unchanged. With it, the remembered facets not yet known valid.
 */
function withoutKnownFacets(doc: unknown, known: WeakSet<object>): { view: unknown; fresh: object[] } {
  const fresh: object[] = [];
  let trimmed: Map<Record<string, unknown>, Record<string, unknown>> | undefined;
  eachDatasetFacet(doc, (facets, key, value) => {
    if (typeof value !== "object" || value === null || !Object.isFrozen(value)) return;
    if (!known.has(value)) return void fresh.push(value);
    trimmed ??= new Map();
    let copy = trimmed.get(facets);
    if (copy === undefined) {
      copy = { ...facets };
      trimmed.set(facets, copy);
    }
    delete copy[key];
  });
  if (trimmed === undefined || !isObject(doc)) return { view: doc, fresh };
  const replaced = trimmed;
  const datasets = (list: unknown) =>
    Array.isArray(list)
      ? list.map((d: unknown) => {
          const facets = isObject(d) ? d["facets"] : undefined;
          const copy = isObject(facets) ? replaced.get(facets) : undefined;
          return copy === undefined || !isObject(d) ? d : { ...d, facets: copy };
        })
      : list;
  const view = { ...doc };
  for (const side of ["inputs", "outputs"]) if (Object.hasOwn(doc, side)) view[side] = datasets(doc[side]);
  return { view, fresh };
}
