import { describe, expect, it } from "vitest";
import { defaultDecodeLimits } from "../../../services/codec/limits.ts";
import { InputError } from "../../../services/errors/index.ts";
import {
  checkRunEventBytes,
  defaultRunEventLimits,
  eventKindOf,
  isOpenLineageShape,
  LINEAGE_AUDIT_PURPOSE_FACET_SCHEMA_URL,
  MAX_COLUMN_LINEAGE_INPUT_FIELDS,
  MAX_RUN_EVENT_DATASETS,
  MAX_SCHEMA_FIELDS_PER_DATASET,
  validateOpenLineageEvent,
  validateRunEvent,
} from "../../../services/openlineage/validate.ts";

/* eslint-disable @typescript-eslint/no-unsafe-call */
// The tests build and break events freely: they are plain JSON.
type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python";
const EMAIL = "jane.doe@example.com";
const facet = (schemaURL: string) => ({ _producer: PRODUCER, _schemaURL: schemaURL });

/** The least a RunEvent needs. */
function minimal(): Json {
  return {
    eventTime: "2024-05-01T12:34:56.789Z",
    producer: PRODUCER,
    schemaURL: "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    run: { runId: "0190d8a0-1c2b-7c3d-8e4f-5a6b7c8d9e0f" },
    job: { namespace: "warehouse-jobs", name: "ads.identity-graph" },
  };
}

/** A JobEvent (static metadata of a job, no run). */
function jobEvent(): Json {
  return {
    eventTime: "2024-05-01T12:34:56.789Z",
    producer: PRODUCER,
    schemaURL: "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
    job: { namespace: "warehouse-jobs", name: "ads.identity-graph" },
    inputs: [{ namespace: "warehouse", name: "security.two_factor" }],
    outputs: [{ namespace: "warehouse", name: "ads.identity_graph" }],
  };
}

/** A DatasetEvent (static metadata of a dataset) with a schema and tags. */
function datasetEvent(): Json {
  return {
    eventTime: "2024-05-01T12:34:56.789Z",
    producer: PRODUCER,
    schemaURL: "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
    dataset: {
      namespace: "warehouse",
      name: "security.two_factor",
      facets: {
        schema: { ...facet("https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json"), fields: [{ name: "phone_number" }] },
        tags: {
          ...facet("https://openlineage.io/spec/facets/1-0-0/TagsDatasetFacet.json"),
          tags: [{ key: "data_category", value: "user.contact.phone_number", source: "CATALOG", field: "phone_number" }],
        },
      },
    },
  };
}

/** A COMPLETE event with the facets we read: schema, tags and columnLineage on datasets, our purpose facet on the run. */
function full(): Json {
  return {
    ...minimal(),
    eventType: "COMPLETE",
    run: {
      runId: "01a22817-2518-7d07-b787-e72b98011d5d",
      facets: {
        lineageAudit_purpose: {
          ...facet(LINEAGE_AUDIT_PURPOSE_FACET_SCHEMA_URL),
          kind: "USE",
          purposes: ["marketing.advertising"],
          dataSubject: "customer",
          service: "ads-sync",
          subjects: ["0123456789abcdef0123456789abcdef"],
        },
        nominalTime: {
          ...facet("https://openlineage.io/spec/facets/1-0-1/NominalTimeRunFacet.json"),
          nominalStartTime: "2024-05-01T00:00:00Z",
        },
      },
    },
    job: { namespace: "warehouse-jobs", name: "ads.identity-graph", facets: {} },
    inputs: [
      {
        namespace: "warehouse",
        name: "profile.contact_points",
        facets: {
          schema: {
            ...facet("https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"),
            fields: [
              { name: "phone_number", type: "VARCHAR", ordinal_position: 1 },
              { name: "address", type: "STRUCT", fields: [{ name: "city", type: "VARCHAR" }] },
            ],
          },
          tags: {
            ...facet("https://openlineage.io/spec/facets/1-0-0/TagsDatasetFacet.json#/$defs/TagsDatasetFacet"),
            tags: [{ key: "data_category", value: "user.contact.phone_number", field: "phone_number", source: "USER" }],
          },
        },
        inputFacets: {},
      },
    ],
    outputs: [
      {
        namespace: "warehouse",
        name: "ads.matching_keys",
        facets: {
          columnLineage: {
            ...facet("https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet"),
            fields: {
              phone_sha256: {
                inputFields: [
                  {
                    namespace: "warehouse",
                    name: "profile.contact_points",
                    field: "phone_number",
                    transformations: [{ type: "DIRECT", subtype: "TRANSFORMATION", description: "sha256(phone_number)", masking: true }],
                  },
                ],
              },
            },
            dataset: [
              {
                namespace: "warehouse",
                name: "profile.contact_points",
                field: "user_id",
                transformations: [{ type: "INDIRECT", subtype: "FILTER" }],
              },
            ],
          },
        },
        outputFacets: {},
      },
    ],
  };
}

const bytesOf = (doc: unknown) => new TextEncoder().encode(JSON.stringify(doc));

/** The InputError `f` throws; fails the test when it throws nothing or something else. */
function inputErrorOf(f: () => unknown): InputError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(InputError);
    return error as InputError;
  }
  throw new Error("expected an InputError, nothing was thrown");
}

const messageFor = (doc: unknown) => inputErrorOf(() => validateRunEvent(doc)).message;

describe("validateRunEvent: valid events", () => {
  it("accepts a minimal RunEvent and returns it", () => {
    const doc = minimal();
    expect(validateRunEvent(doc)).toBe(doc);
  });

  it("accepts an event with columnLineage, schema and tags facets and the lineageAudit_purpose facet", () => {
    const doc = full();
    const event = validateRunEvent(doc);
    expect(event.outputs?.[0]?.facets?.columnLineage?.fields["phone_sha256"]?.inputFields[0]?.transformations?.[0]?.masking).toBe(true);
    expect(event.run.facets?.lineageAudit_purpose?.kind).toBe("USE");
  });

  it("accepts every eventType and a SHARE with a recipient", () => {
    for (const eventType of ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]) validateRunEvent({ ...minimal(), eventType });
    const doc = full();
    doc.run.facets.lineageAudit_purpose = {
      ...doc.run.facets.lineageAudit_purpose,
      kind: "SHARE",
      recipient: { name: "partner-co", external: true },
      _deleted: false,
    };
    expect(() => validateRunEvent(doc)).not.toThrow();
  });

  it("accepts an unknown facet with arbitrary content (held to the base facet only)", () => {
    const doc = full();
    doc.outputs[0].facets.vendor_thing = {
      ...facet("https://vendor.example/Thing.json"),
      fields: 42,
      tags: "not an array",
      x: [[[{ y: null }]]],
    };
    doc.run.facets.schema = { ...facet("https://vendor.example/Odd.json"), fields: "run facets are not dataset facets" };
    doc.job.facets.sql = { ...facet("https://openlineage.io/spec/facets/1-1-0/SQLJobFacet.json"), query: 7 };
    doc.inputs[0].inputFacets.anything = { ...facet("https://vendor.example/In.json"), whatever: { deep: true } };
    expect(() => validateRunEvent(doc)).not.toThrow();
  });

  it("still holds an unknown facet to the base facet of the spec", () => {
    const doc = full();
    doc.outputs[0].facets.vendor_thing = { whatever: 1 };
    expect(messageFor(doc)).toBe("OpenLineage event: /outputs/0/facets/vendor_thing must have required property '_producer'");
  });
});

describe("validateRunEvent: failures name the JSON path", () => {
  it("missing runId", () => {
    const doc = minimal();
    delete doc.run.runId;
    expect(messageFor(doc)).toBe("OpenLineage event: /run must have required property 'runId'");
  });

  it("runId not a UUID", () => {
    const doc = minimal();
    doc.run.runId = "run-42";
    const error = inputErrorOf(() => validateRunEvent(doc));
    expect(error.message).toBe('OpenLineage event: /run/runId must match format "uuid"');
    expect(error.code).toBe("INPUT");
    expect(error.context["path"]).toBe("/run/runId");
  });

  it("bad eventType", () => {
    expect(messageFor({ ...minimal(), eventType: "DONE" })).toBe(
      "OpenLineage event: /eventType must be equal to one of the allowed values",
    );
  });

  it("bad eventTime and producer", () => {
    expect(messageFor({ ...minimal(), eventTime: "yesterday" })).toBe('OpenLineage event: /eventTime must match format "date-time"');
    expect(messageFor({ ...minimal(), producer: "not a uri" })).toBe('OpenLineage event: /producer must match format "uri"');
  });

  it("checks every URI in full, whatever URIs came before (good ones are remembered, up to a bound)", () => {
    // RFC 3986 refuses these; a looser "scheme, then no spaces" check would take them.
    const bad = ["https://[::1", "http://exa%zzmple.org/", "https://example.org/a b"];
    for (let i = 0; i < 1_100; i++) expect(validateRunEvent({ ...minimal(), producer: `https://example.org/producer/${i}` })).toBeDefined();
    for (const producer of bad) {
      expect(messageFor({ ...minimal(), producer })).toBe('OpenLineage event: /producer must match format "uri"');
      // A good event in between does not make it pass next time.
      expect(validateRunEvent(minimal())).toBeDefined();
      expect(messageFor({ ...minimal(), producer })).toBe('OpenLineage event: /producer must match format "uri"');
    }
    expect(validateRunEvent({ ...minimal(), producer: "https://example.org/producer/1099" })).toBeDefined();
  });

  it("not an object at all: the root is /", () => {
    expect(messageFor(null)).toBe("OpenLineage event: / must be object");
    expect(messageFor([minimal()])).toBe("OpenLineage event: / must be object");
    const doc = minimal();
    delete doc.job;
    expect(messageFor(doc)).toBe("OpenLineage event: / must have required property 'job'");
  });

  it("bad transformation type in columnLineage", () => {
    const doc = full();
    doc.outputs[0].facets.columnLineage.fields.phone_sha256.inputFields[0].transformations[0].type = "HASHED";
    expect(messageFor(doc)).toBe(
      "OpenLineage event: /outputs/0/facets/columnLineage/fields/phone_sha256/inputFields/0/transformations/0/type must be equal to one of the allowed values",
    );
    const atDatasetLevel = full();
    atDatasetLevel.outputs[0].facets.columnLineage.dataset[0].transformations[0].type = 1;
    expect(messageFor(atDatasetLevel)).toBe(
      "OpenLineage event: /outputs/0/facets/columnLineage/dataset/0/transformations/0/type must be string",
    );
  });

  it("columnLineage without fields, or an input field without its field", () => {
    const doc = full();
    delete doc.outputs[0].facets.columnLineage.fields;
    expect(messageFor(doc)).toBe("OpenLineage event: /outputs/0/facets/columnLineage must have required property 'fields'");
    const noField = full();
    delete noField.outputs[0].facets.columnLineage.fields.phone_sha256.inputFields[0].field;
    expect(messageFor(noField)).toBe(
      "OpenLineage event: /outputs/0/facets/columnLineage/fields/phone_sha256/inputFields/0 must have required property 'field'",
    );
  });

  it("bad tags facet", () => {
    const doc = full();
    delete doc.inputs[0].facets.tags.tags[0].value;
    expect(messageFor(doc)).toBe("OpenLineage event: /inputs/0/facets/tags/tags/0 must have required property 'value'");
    const notArray = full();
    notArray.inputs[0].facets.tags.tags = { key: "pii", value: "true" };
    expect(messageFor(notArray)).toBe("OpenLineage event: /inputs/0/facets/tags/tags must be array");
  });

  it("bad schema facet", () => {
    const doc = full();
    doc.inputs[0].facets.schema.fields[1].fields[0] = { type: "VARCHAR" };
    expect(messageFor(doc)).toBe("OpenLineage event: /inputs/0/facets/schema/fields/1/fields/0 must have required property 'name'");
  });

  it("lineageAudit_purpose: SHARE without a recipient", () => {
    const doc = full();
    doc.run.facets.lineageAudit_purpose.kind = "SHARE";
    expect(messageFor(doc)).toBe("OpenLineage event: /run/facets/lineageAudit_purpose must have required property 'recipient'");
  });

  it("lineageAudit_purpose: a subject that is not a pseudonym", () => {
    const doc = full();
    doc.run.facets.lineageAudit_purpose.subjects = ["0123456789abcdef0123456789abcdef", EMAIL];
    expect(messageFor(doc)).toBe('OpenLineage event: /run/facets/lineageAudit_purpose/subjects/1 must match pattern "^[0-9a-f]{32}$"');
    const upper = full();
    upper.run.facets.lineageAudit_purpose.subjects = ["0123456789ABCDEF0123456789ABCDEF"];
    expect(messageFor(upper)).toContain("/run/facets/lineageAudit_purpose/subjects/0 must match pattern");
  });

  it("lineageAudit_purpose: other rules", () => {
    const purposeWith = (change: (p: Json) => void) => {
      const doc = full();
      change(doc.run.facets.lineageAudit_purpose);
      return messageFor(doc);
    };
    const at = "OpenLineage event: /run/facets/lineageAudit_purpose";
    expect(purposeWith((p) => (p.kind = "COLLECT"))).toBe(`${at}/kind must be equal to one of the allowed values`);
    expect(purposeWith((p) => (p.purposes = []))).toBe(`${at}/purposes must NOT have fewer than 1 items`);
    expect(purposeWith((p) => (p.purposes = [""]))).toBe(`${at}/purposes/0 must NOT have fewer than 1 characters`);
    expect(purposeWith((p) => (p.purposes = Array.from({ length: 65 }, (_, i) => `use.${i}`)))).toBe(
      `${at}/purposes must NOT have more than 64 items`,
    );
    expect(purposeWith((p) => delete p.dataSubject)).toBe(`${at} must have required property 'dataSubject'`);
    expect(purposeWith((p) => (p.recipient = { name: "partner-co" }))).toBe(`${at}/recipient must have required property 'external'`);
    expect(purposeWith((p) => (p.rawSubjects = [EMAIL]))).toBe(`${at} must NOT have additional properties ('rawSubjects')`);
    expect(purposeWith((p) => delete p._producer)).toBe(`${at} must have required property '_producer'`);
  });

  it("never puts a value from the event in the message", () => {
    const cases: ((doc: Json) => void)[] = [
      (d) => (d.run.runId = EMAIL),
      (d) => (d.eventType = EMAIL),
      (d) => (d.eventTime = EMAIL),
      (d) => (d.producer = `${EMAIL} `),
      (d) => (d.job.name = { email: EMAIL }),
      (d) => (d.run.facets.lineageAudit_purpose.subjects = [EMAIL]),
      (d) => (d.run.facets.lineageAudit_purpose.kind = EMAIL),
      (d) => (d.run.facets.lineageAudit_purpose[EMAIL] = true), // a key that could be data is not echoed either
      (d) => (d.outputs[0].facets.columnLineage.fields.phone_sha256.inputFields[0].transformations[0].type = EMAIL),
      (d) => (d.inputs[0].facets.tags.tags[0].value = [EMAIL]),
    ];
    for (const change of cases) {
      const doc = full();
      change(doc);
      const error = inputErrorOf(() => validateRunEvent(doc));
      expect(error.message).toMatch(/^OpenLineage event: \//);
      expect(error.message).not.toContain("jane");
      expect(JSON.stringify(error.context)).not.toContain("jane");
    }
  });
});

describe("validateRunEvent: count limits", () => {
  const dataset = (i: number) => ({ namespace: "warehouse", name: `t${i}` });

  it("defaults", () => {
    expect(defaultRunEventLimits).toEqual({
      maxBytes: defaultDecodeLimits.maxMessageBytes,
      maxDepth: 32,
      maxDatasets: MAX_RUN_EVENT_DATASETS,
      maxSchemaFields: MAX_SCHEMA_FIELDS_PER_DATASET,
      maxColumnLineageInputFields: MAX_COLUMN_LINEAGE_INPUT_FIELDS,
    });
    expect([MAX_RUN_EVENT_DATASETS, MAX_SCHEMA_FIELDS_PER_DATASET, MAX_COLUMN_LINEAGE_INPUT_FIELDS]).toEqual([10_000, 10_000, 100_000]);
  });

  it("over the input and output count", () => {
    const at = {
      ...minimal(),
      inputs: Array.from({ length: 6_000 }, (_, i) => dataset(i)),
      outputs: Array.from({ length: 4_000 }, (_, i) => dataset(i)),
    };
    expect(() => validateRunEvent(at)).not.toThrow();
    at.outputs.push(dataset(4_000));
    expect(messageFor(at)).toBe("OpenLineage event: / has 10,001 inputs and outputs; the limit is 10,000");
    expect(() => validateRunEvent({ ...minimal(), inputs: [dataset(1), dataset(2)] }, { maxDatasets: 1 })).toThrow(
      "OpenLineage event: / has 2 inputs and outputs; the limit is 1",
    );
  });

  it("over the schema fields of one dataset, nested fields counted", () => {
    const doc = full();
    doc.inputs[0].facets.schema.fields = Array.from({ length: MAX_SCHEMA_FIELDS_PER_DATASET }, (_, i) => ({ name: `c${i}` }));
    expect(() => validateRunEvent(doc)).not.toThrow();
    doc.inputs[0].facets.schema.fields[0].fields = [{ name: "nested" }];
    expect(messageFor(doc)).toBe("OpenLineage event: /inputs/0/facets/schema has more than 10,000 fields");
    expect(inputErrorOf(() => validateRunEvent(full(), { maxSchemaFields: 2 })).message).toBe(
      "OpenLineage event: /inputs/0/facets/schema has more than 2 fields",
    );
  });

  it("over the column-lineage input fields of one event", () => {
    const doc = full();
    const inputField = { namespace: "warehouse", name: "t", field: "f", transformations: [{ type: "DIRECT" }] };
    const fields: Record<string, unknown> = {};
    for (let i = 0; i < 10; i++) fields[`out_${i}`] = { inputFields: Array.from({ length: 10_000 }, () => inputField) };
    doc.outputs[0].facets.columnLineage.fields = fields;
    doc.outputs[0].facets.columnLineage.dataset = [];
    expect(() => validateRunEvent(doc)).not.toThrow();
    doc.outputs[0].facets.columnLineage.dataset = [inputField];
    expect(messageFor(doc)).toBe("OpenLineage event: / has 100,001 column-lineage input fields; the limit is 100,000");
    expect(inputErrorOf(() => validateRunEvent(full(), { maxColumnLineageInputFields: 1 })).message).toBe(
      "OpenLineage event: / has 2 column-lineage input fields; the limit is 1",
    );
  });

  it("deeply nested schema fields in a document that did not come through checkRunEventBytes: an InputError, no stack overflow", () => {
    const doc = full();
    let field: Json = { name: "leaf" };
    for (let i = 0; i < 10_000; i++) field = { name: `f${i}`, fields: [field] };
    doc.inputs[0].facets.schema.fields = [field];
    expect(messageFor(doc)).toBe("OpenLineage event: /inputs/0/facets/schema/fields nests deeper than 32 levels");
  });
});

describe("checkRunEventBytes", () => {
  it("parses a valid event's bytes", () => {
    const doc = full();
    const parsed = checkRunEventBytes(bytesOf(doc));
    expect(parsed).toEqual(doc);
    expect(validateRunEvent(parsed).job.name).toBe("ads.identity-graph");
  });

  it("too large: refused before anything is decoded", () => {
    const bytes = new Uint8Array(2_000_000).fill(0x20);
    expect(inputErrorOf(() => checkRunEventBytes(bytes)).message).toBe("OpenLineage event is 2,000,000 bytes; the limit is 1,048,576");
    const atLimit = new Uint8Array(1_048_576).fill(0x61);
    atLimit[0] = atLimit[atLimit.length - 1] = 0x22; // one JSON string of exactly 1 MiB
    expect(checkRunEventBytes(atLimit)).toHaveLength(1_048_574);
    expect(() => checkRunEventBytes(bytesOf(full()), { maxBytes: 100 })).toThrow(/; the limit is 100$/);
  });

  it("too deep: 10,000 nested arrays are refused at the 33rd, without a stack overflow", () => {
    const deep = new TextEncoder().encode("[".repeat(10_000) + "]".repeat(10_000));
    const error = inputErrorOf(() => checkRunEventBytes(deep));
    expect(error.message).toBe("OpenLineage event nests deeper than 32 levels at byte 32");
    expect(error.context["byte"]).toBe(32);
    const objects = new TextEncoder().encode('{"a":'.repeat(5_000) + "1" + "}".repeat(5_000));
    expect(inputErrorOf(() => checkRunEventBytes(objects)).message).toBe("OpenLineage event nests deeper than 32 levels at byte 160");
  });

  it("counts depth exactly, and not inside strings (escapes included)", () => {
    expect(checkRunEventBytes(new TextEncoder().encode("[".repeat(32) + "]".repeat(32)))).toBeInstanceOf(Array);
    expect(() => checkRunEventBytes(new TextEncoder().encode("[".repeat(33) + "]".repeat(33)))).toThrow(
      /deeper than 32 levels at byte 32$/,
    );
    const doc = { ...full(), note: `[{ "\\"[[[[ \\\\`, brackets: "[".repeat(100) + "{".repeat(100) };
    expect(checkRunEventBytes(bytesOf(doc))).toEqual(doc);
    expect(() => checkRunEventBytes(new TextEncoder().encode('[["\\\\"' + ",[".repeat(31) + "]".repeat(33)))).toThrow(/at byte 67$/);
    expect(() => checkRunEventBytes(bytesOf(full()), { maxDepth: 3 })).toThrow(/deeper than 3 levels/);
  });

  it("invalid UTF-8", () => {
    const bytes = bytesOf({ ...minimal(), job: { namespace: "x", name: "ab" } });
    const at = bytes.indexOf(0x61); // "a" of "ab"
    bytes[at] = 0xff;
    expect(inputErrorOf(() => checkRunEventBytes(bytes)).message).toBe("OpenLineage event is not valid UTF-8");
    expect(() => checkRunEventBytes(new Uint8Array([0x22, 0xc3, 0x22]))).toThrow("OpenLineage event is not valid UTF-8"); // truncated sequence
    expect(() => checkRunEventBytes(new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22]))).toThrow("not valid UTF-8"); // a surrogate
    expect(checkRunEventBytes(new TextEncoder().encode('"Zoë 😀"'))).toBe("Zoë 😀");
  });

  it("not JSON: the message holds no text of the event", () => {
    const message = inputErrorOf(() => checkRunEventBytes(new TextEncoder().encode(`{"email": ${EMAIL}}`))).message;
    expect(message).toMatch(/^OpenLineage event is not valid JSON/);
    expect(message).not.toContain("jane");
    expect(() => checkRunEventBytes(new Uint8Array(0))).toThrow(/^OpenLineage event is not valid JSON/);
  });
});

describe("isOpenLineageShape", () => {
  it("recognises RunEvents, valid or not", () => {
    expect(isOpenLineageShape(minimal())).toBe(true);
    expect(isOpenLineageShape(full())).toBe(true);
    expect(isOpenLineageShape({ ...minimal(), run: { runId: "not-a-uuid" }, eventType: "NOPE" })).toBe(true);
  });

  it("recognises JobEvents and DatasetEvents", () => {
    expect(isOpenLineageShape(jobEvent())).toBe(true);
    expect(isOpenLineageShape(datasetEvent())).toBe(true);
  });

  it("tells our emit() input apart", () => {
    const emitInput = {
      kind: "USE",
      service: "ads-sync",
      occurredAt: "2019-06-01T10:00:00Z",
      job: { namespace: "batch", name: "audiences.export" },
      runId: "run-42",
      inputs: [{ namespace: "wh", name: "ads.keys" }],
      purposes: ["marketing.advertising"],
      dataSubject: "customer",
      subjects: [EMAIL],
    };
    expect(isOpenLineageShape(emitInput)).toBe(false);
  });

  it("false for what lacks a part", () => {
    for (const key of ["eventTime", "producer", "job"]) {
      const doc = minimal();
      delete doc[key];
      expect(isOpenLineageShape(doc)).toBe(false);
    }
    for (const key of ["eventTime", "producer", "dataset"]) {
      const doc = datasetEvent();
      delete doc[key];
      expect(isOpenLineageShape(doc)).toBe(false);
    }
    expect(isOpenLineageShape({ ...minimal(), run: {} })).toBe(false);
    expect(isOpenLineageShape({ ...minimal(), run: ["runId"] })).toBe(false);
    expect(isOpenLineageShape({ ...minimal(), job: { namespace: "x" } })).toBe(false);
    expect(isOpenLineageShape({ ...minimal(), job: { name: "x" } })).toBe(false);
    expect(isOpenLineageShape({ ...datasetEvent(), dataset: { name: "x" } })).toBe(false);
    for (const other of [null, undefined, "event", 42, [minimal()]]) expect(isOpenLineageShape(other)).toBe(false);
  });
});

describe("JobEvents and DatasetEvents", () => {
  it("tells the three kinds apart by shape, as the spec does", () => {
    expect(eventKindOf(minimal())).toBe("RunEvent");
    expect(eventKindOf(jobEvent())).toBe("JobEvent");
    expect(eventKindOf(datasetEvent())).toBe("DatasetEvent");
    expect(eventKindOf({})).toBe("RunEvent");
    expect(eventKindOf([jobEvent()])).toBe("RunEvent");
  });

  it("validates each against the spec's schema for its kind, with the facet schemas we read", () => {
    expect(validateOpenLineageEvent(jobEvent())).toEqual({ kind: "JobEvent", event: jobEvent() });
    expect(validateOpenLineageEvent(datasetEvent())).toEqual({ kind: "DatasetEvent", event: datasetEvent() });
    expect(validateOpenLineageEvent(full())).toEqual({ kind: "RunEvent", event: full() });
    expect(() => validateOpenLineageEvent({ ...jobEvent(), job: { namespace: "x" } })).toThrow(
      "OpenLineage event: /job must have required property 'name'",
    );
    expect(() => validateOpenLineageEvent({ ...datasetEvent(), eventTime: "yesterday" })).toThrow(
      'OpenLineage event: /eventTime must match format "date-time"',
    );
    // The tags facet is held to its schema on a DatasetEvent as on a RunEvent's datasets.
    const badTags = datasetEvent();
    badTags.dataset.facets.tags.tags[0].key = 7;
    expect(() => validateOpenLineageEvent(badTags)).toThrow("OpenLineage event: /dataset/facets/tags/tags/0/key must be string");
  });

  it("bounds a DatasetEvent's schema fields as a RunEvent's", () => {
    const doc = datasetEvent();
    doc.dataset.facets.schema.fields = Array.from({ length: 11 }, (_, i) => ({ name: `c${i}` }));
    expect(() => validateOpenLineageEvent(doc, { maxSchemaFields: 10 })).toThrow(
      "OpenLineage event: /dataset/facets/schema has more than 10 fields",
    );
  });
});

describe("strings and keys a producer chose", () => {
  it("refuses a lone surrogate escape, in a value or a key, which no store would take; a surrogate pair is fine", () => {
    for (const text of [
      '{"a":"x\\ud800"}',
      '{"x\\udc00":1}',
      '{"a":"\\uD800"}',
      '{"a":"\\uDBFFx"}',
      '{"a":["\\uDfFf"]}',
      '{"a":"\\"\\udAbc"}',
    ])
      expect(() => checkRunEventBytes(Buffer.from(text)), text).toThrow(/unpaired UTF-16 surrogate/);
    expect(checkRunEventBytes(Buffer.from('{"a":"\\ud83d\\ude00"}'))).toEqual({ a: "\u{1F600}" });
    expect(checkRunEventBytes(Buffer.from('{"a":"\\uD83D\\uDE00"}'))).toEqual({ a: "\u{1F600}" });
    // An escaped backslash before "ud800" is text, not an escape; \ud7ff and \ue000 are not surrogates.
    expect(checkRunEventBytes(Buffer.from('{"a":"\\\\ud800","b":"\\ud7ff\\ue000"}'))).toEqual({ a: "\\ud800", b: "\ud7ff\ue000" });
  });

  it("shows a key a producer chose as <key> in the path when it could be data", () => {
    const doc = {
      eventTime: "2019-01-01T00:00:00Z",
      producer: "https://p",
      schemaURL: "https://openlineage.io/spec/2-0-2/OpenLineage.json",
      eventType: "COMPLETE",
      run: { runId: "0190d8a0-1c2b-7c3d-8e4f-5a6b7c8d9e0f", facets: { "jane.doe@example.com": { _producer: "https://p" } } },
      job: { namespace: "n", name: "j" },
    };
    expect(() => validateRunEvent(doc)).toThrow("OpenLineage event: /run/facets/<key> must have required property '_schemaURL'");
  });
});
