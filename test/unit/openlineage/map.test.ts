// One test per mapping rule of docs/openlineage.md.
import { describe, expect, it } from "vitest";
import { loadFideslangTaxonomy } from "../../../services/taxonomy/index.ts";
import { InputError } from "../../../services/errors/index.ts";
import {
  CATEGORY_TAG_KEY,
  eventIdOf,
  explainStaticEvent,
  mapRunEvent,
  parseClassification,
  validateOpenLineageEvent,
  type RunEventInput,
} from "../../../services/openlineage/index.ts";

const taxonomy = loadFideslangTaxonomy();
const RUN = "0190d8a0-1c2b-7c3d-8e4f-5a6b7c8d9e0f";
const PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python";

function runEvent(over: Partial<RunEventInput> = {}): RunEventInput {
  return {
    eventType: "COMPLETE",
    eventTime: "2019-06-01T10:00:00.000Z",
    producer: PRODUCER,
    run: { runId: RUN },
    job: { namespace: "warehouse-jobs", name: "ads.identity-graph" },
    inputs: [
      {
        namespace: "warehouse",
        name: "profile.contact_points",
        facets: { schema: { fields: [{ name: "email" }, { name: "phone_number" }, { name: "user_id" }] } },
      },
    ],
    outputs: [{ namespace: "warehouse", name: "ads.matching_keys", facets: { schema: { fields: [{ name: "phone_sha256" }] } } }],
    ...over,
  };
}

const columnLineage = (fields: Record<string, unknown>) => ({ columnLineage: { fields } });
const input = (field: string, transformations?: unknown[]) => ({
  namespace: "warehouse",
  name: "profile.contact_points",
  field,
  ...(transformations ? { transformations } : {}),
});
const direct = (subtype: string, masking = false) => ({ type: "DIRECT", subtype, masking });
/** A classification file of this text, checked against the taxonomy as at start-up. */
const classify = (text: string) => parseClassification(text, "c.yaml", taxonomy);

describe("mapping OpenLineage RunEvents", () => {
  it("turns a COMPLETE event with inputs and outputs into a DERIVE keeping job, run, time and producer", () => {
    const { events, explanation } = mapRunEvent(runEvent(), { taxonomy });
    expect(events).toHaveLength(1);
    const [e] = events;
    expect(e).toMatchObject({
      kind: "DERIVE",
      occurredAt: Date.parse("2019-06-01T10:00:00.000Z"),
      service: "warehouse-jobs",
      job: { namespace: "warehouse-jobs", name: "ads.identity-graph" },
      runId: RUN,
      subjects: [],
      fieldLineage: [],
      masking: "NONE",
      attributes: {
        "openlineage.producer": PRODUCER,
        "openlineage.eventType": "COMPLETE",
        "openlineage.eventTime": "2019-06-01T10:00:00.000Z",
      },
    });
    expect(explanation).toMatch(/completed: a dataset-level DERIVE \(no column lineage\)/);
  });

  it("without column lineage, the edge is dataset-level: the outputs list their schema fields, and no field mappings", () => {
    const [e] = mapRunEvent(runEvent(), { taxonomy }).events;
    expect(e!.outputs).toEqual([{ namespace: "warehouse", name: "ads.matching_keys", fields: [{ name: "phone_sha256", categories: [] }] }]);
    expect(e!.fieldLineage).toEqual([]);
  });

  it("takes schema facet fields as the dataset's fields", () => {
    const [e] = mapRunEvent(runEvent(), { taxonomy }).events;
    expect(e!.inputs[0]!.fields.map((f) => f.name)).toEqual(["email", "phone_number", "user_id"]);
  });

  it("maps IDENTITY to COPY, TRANSFORMATION to OTHER and AGGREGATION to AGGREGATE, as field lineage", () => {
    const ol = runEvent({
      outputs: [
        {
          namespace: "warehouse",
          name: "ads.matching_keys",
          facets: columnLineage({
            user_id: { inputFields: [input("user_id", [direct("IDENTITY")])] },
            contact: { inputFields: [input("email", [direct("TRANSFORMATION")])] },
            users: { inputFields: [input("user_id", [direct("AGGREGATION")])] },
          }),
        },
      ],
    });
    const [e, ...rest] = mapRunEvent(ol, { taxonomy }).events;
    expect(rest).toEqual([]);
    const out = { namespace: "warehouse", name: "ads.matching_keys" };
    expect(e!.fieldLineage).toEqual([
      { output: { ...out, field: "user_id" }, inputs: [input("user_id")], transform: "COPY", masking: null },
      { output: { ...out, field: "contact" }, inputs: [input("email")], transform: "OTHER", masking: null },
      { output: { ...out, field: "users" }, inputs: [input("user_id")], transform: "AGGREGATE", masking: null },
    ]);
    expect(e!.transform).toBe("OTHER");
    // A column-mapped output lists no fields: they take labels only through their mappings.
    expect(e!.outputs).toEqual([{ ...out, fields: [] }]);
  });

  it("maps masking: true to a HASH whose mapping is marked MASKED, in the one DERIVE of the run", () => {
    const ol = runEvent({
      outputs: [
        {
          namespace: "warehouse",
          name: "ads.matching_keys",
          facets: columnLineage({
            phone_sha256: { inputFields: [input("phone_number", [direct("TRANSFORMATION", true)])] },
            user_id: { inputFields: [input("user_id", [direct("IDENTITY")])] },
          }),
        },
      ],
    });
    const { events, explanation } = mapRunEvent(ol, { taxonomy });
    // Masking is per column in OpenLineage, and per mapping in ours (schema version 3): one event.
    expect(events.map((e) => [e.kind, e.masking, e.transform, e.runId])).toEqual([["DERIVE", "NONE", "OTHER", RUN]]);
    expect(events[0]!.fieldLineage.map((m) => [m.output.field, m.transform, m.masking])).toEqual([
      ["phone_sha256", "HASH", "MASKED"],
      ["user_id", "COPY", null],
    ]);
    expect(explanation).toMatch(/2 column mapping\(s\), 1 of them masking/);
  });

  it("takes the strongest DIRECT transformation of an input field, and carries nothing through INDIRECT ones", () => {
    const ol = runEvent({
      outputs: [
        {
          namespace: "warehouse",
          name: "ads.matching_keys",
          facets: columnLineage({
            total: {
              inputFields: [
                input("user_id", [direct("IDENTITY"), direct("AGGREGATION")]),
                input("email", [{ type: "INDIRECT", subtype: "FILTER" }]),
              ],
            },
          }),
        },
      ],
    });
    const [e] = mapRunEvent(ol, { taxonomy }).events;
    expect(e!.fieldLineage).toEqual([
      {
        output: { namespace: "warehouse", name: "ads.matching_keys", field: "total" },
        inputs: [input("user_id")],
        transform: "AGGREGATE",
        masking: null,
      },
    ]);
  });

  it("derives from column lineage alone when the inputs list misses a dataset it names (dbt's seeds), an empty transformations list saying nothing", () => {
    const ol = runEvent({
      inputs: [],
      outputs: [
        {
          namespace: "duckdb://target/warehouse.duckdb",
          name: "warehouse.main.contact_points",
          facets: columnLineage({
            phone_number: {
              inputFields: [
                {
                  namespace: "duckdb://target/warehouse.duckdb",
                  name: "warehouse.main.two_factor",
                  field: "phone_number",
                  transformations: [],
                },
              ],
            },
          }),
        },
      ],
    });
    const [e, ...rest] = mapRunEvent(ol, { taxonomy }).events;
    expect(rest).toEqual([]);
    expect(e!.inputs).toEqual([]);
    expect(e!.fieldLineage).toEqual([
      {
        output: { namespace: "duckdb://target/warehouse.duckdb", name: "warehouse.main.contact_points", field: "phone_number" },
        inputs: [{ namespace: "duckdb://target/warehouse.duckdb", name: "warehouse.main.two_factor", field: "phone_number" }],
        transform: "OTHER",
        masking: null,
      },
    ]);
  });

  it("reads the older column lineage facet (transformationType per output field, no transformations)", () => {
    const ol = runEvent({
      outputs: [
        {
          namespace: "warehouse",
          name: "ads.matching_keys",
          facets: columnLineage({
            user_id: { inputFields: [input("user_id")], transformationType: "IDENTITY" },
            phone_sha256: { inputFields: [input("phone_number")], transformationType: "" },
          }),
        },
      ],
    });
    const [e] = mapRunEvent(ol, { taxonomy }).events;
    expect(e!.fieldLineage.map((m) => [m.output.field, m.transform])).toEqual([
      ["user_id", "COPY"],
      ["phone_sha256", "OTHER"],
    ]);
  });

  it.each(["START", "RUNNING", "FAIL", "ABORT", "OTHER", undefined])("stores and explains a %s event, never lineage", (eventType) => {
    const ol = runEvent();
    if (eventType === undefined) delete ol.eventType;
    else ol.eventType = eventType;
    const { events, explanation } = mapRunEvent(ol, { taxonomy });
    expect(events).toEqual([]);
    expect(explanation).toMatch(/stored, no lineage$/);
    expect(explanation).toContain(eventType ?? "no eventType");
  });

  it("explains a JobEvent and a DatasetEvent (static metadata), never lineage", () => {
    const base = {
      eventTime: "2019-06-01T10:00:00Z",
      producer: "https://p.example/x",
      schemaURL: "https://openlineage.io/spec/2-0-2/OpenLineage.json",
    };
    const job = validateOpenLineageEvent({
      ...base,
      job: { namespace: "warehouse-jobs", name: "ads.identity-graph" },
      inputs: [{ namespace: "warehouse", name: "profile.contact_points" }],
    });
    const dataset = validateOpenLineageEvent({ ...base, dataset: { namespace: "warehouse", name: "ads.matching_keys" } });
    if (job.kind === "RunEvent" || dataset.kind === "RunEvent") throw new Error("static events taken as RunEvents");
    expect(explainStaticEvent(job)).toBe(
      "a JobEvent for warehouse-jobs/ads.identity-graph (1 input(s), 0 output(s)): static job metadata, no run; stored, no lineage (lineage is taken from a run's COMPLETE event)",
    );
    expect(explainStaticEvent(dataset)).toBe(
      "a DatasetEvent for warehouse/ads.matching_keys: static dataset metadata, no run; stored, no lineage",
    );
  });

  it("explains a COMPLETE event with nothing to record", () => {
    const { events, explanation } = mapRunEvent(runEvent({ outputs: [] }), { taxonomy });
    expect(events).toEqual([]);
    expect(explanation).toMatch(/completed without outputs and declares no purpose/);
    const indirect = runEvent({
      outputs: [
        {
          namespace: "warehouse",
          name: "ads.matching_keys",
          facets: columnLineage({ n: { inputFields: [input("email", [{ type: "INDIRECT", subtype: "FILTER" }])] } }),
        },
      ],
    });
    const none = mapRunEvent(indirect, { taxonomy });
    expect(none.events).toEqual([]);
    expect(none.explanation).toMatch(/its column lineage moves no values \(INDIRECT only\); stored, no lineage$/);
  });

  it("takes data categories from tags with the documented key, on the field they name", () => {
    const ol = runEvent();
    ol.inputs![0]!.facets = {
      ...ol.inputs![0]!.facets,
      tags: {
        tags: [
          { key: CATEGORY_TAG_KEY, value: "user.contact.phone_number", field: "phone_number", source: "CONFIG" },
          { key: "owner", value: "ads-team", field: "phone_number" },
        ],
      },
    };
    const [e] = mapRunEvent(ol, { taxonomy }).events;
    expect(e!.inputs[0]!.fields).toEqual([
      { name: "email", categories: [] },
      { name: "phone_number", categories: ["user.contact.phone_number"] },
      { name: "user_id", categories: [] },
    ]);
  });

  it("refuses a tag that is not a fideslang data category, naming its JSON path and never a value that is not a key", () => {
    const ol = runEvent();
    ol.inputs![0]!.facets = { tags: { tags: [{ key: CATEGORY_TAG_KEY, value: "alice@example.com", field: "email" }] } };
    expect(() => mapRunEvent(ol, { taxonomy })).toThrow(InputError);
    try {
      mapRunEvent(ol, { taxonomy });
    } catch (error) {
      expect((error as Error).message).toBe("OpenLineage event: /inputs/0/facets/tags/tags/0/value is not a fideslang data category");
    }
    ol.inputs![0]!.facets = { tags: { tags: [{ key: CATEGORY_TAG_KEY, value: "user.contact.email" }] } };
    expect(() => mapRunEvent(ol, { taxonomy })).toThrow(/\/inputs\/0\/facets\/tags\/tags\/0\/field must name the field/);
  });

  it("takes categories from the classification file for datasets without tags, and tags win over it", () => {
    const classification = classify(
      'version: 1\ndatasets:\n  "warehouse/profile.*":\n    phone_number: [user.contact.phone_number]\n    email: [user.contact.email]\n',
    );
    const [e] = mapRunEvent(runEvent(), { taxonomy, classification }).events;
    expect(e!.inputs[0]!.fields).toEqual([
      { name: "email", categories: ["user.contact.email"] },
      { name: "phone_number", categories: ["user.contact.phone_number"] },
      { name: "user_id", categories: [] },
    ]);
    const tagged = runEvent();
    tagged.inputs![0]!.facets = {
      ...tagged.inputs![0]!.facets,
      tags: { tags: [{ key: CATEGORY_TAG_KEY, value: "user.contact", field: "email" }] },
    };
    expect(mapRunEvent(tagged, { taxonomy, classification }).events[0]!.inputs[0]!.fields).toEqual([
      { name: "email", categories: ["user.contact"] },
      { name: "phone_number", categories: [] },
      { name: "user_id", categories: [] },
    ]);
  });

  it("lists a field the schema names twice once, and takes the classification file when the tags hold no category", () => {
    const classification = classify(
      'version: 1\ndatasets:\n  "warehouse/profile.*":\n    email: [user.contact.email]\n    not_in_schema: [user.contact.phone_number]\n',
    );
    const ol = runEvent();
    ol.inputs![0]!.facets = {
      schema: { fields: [{ name: "email" }, { name: "user_id" }, { name: "email" }] },
      // Tags, but none with the category key: as if there were none.
      tags: { tags: [{ key: "owner", value: "crm-team", field: "email" }] },
    };
    expect(mapRunEvent(ol, { taxonomy }).events[0]!.inputs[0]!.fields).toEqual([
      { name: "email", categories: [] },
      { name: "user_id", categories: [] },
    ]);
    expect(mapRunEvent(ol, { taxonomy, classification }).events[0]!.inputs[0]!.fields).toEqual([
      { name: "email", categories: ["user.contact.email"] },
      { name: "user_id", categories: [] },
    ]);
  });

  it("never adds a field through tags or the classification file: without a schema facet the dataset stays whole", () => {
    const classification = classify('version: 1\ndatasets:\n  "warehouse/*":\n    phone_number: [user.contact.phone_number]\n');
    const ol = runEvent();
    ol.inputs![0]!.facets = { tags: { tags: [{ key: CATEGORY_TAG_KEY, value: "user.contact.phone_number", field: "phone_number" }] } };
    // A use of this input reads the whole dataset, not the tagged field alone.
    expect(mapRunEvent(ol, { taxonomy }).events[0]!.inputs[0]!.fields).toEqual([]);
    ol.inputs![0]!.facets = {};
    expect(mapRunEvent(ol, { taxonomy, classification }).events[0]!.inputs[0]!.fields).toEqual([]);
  });

  it("reads the older facet's transformationType MASKED as a masking transformation", () => {
    const ol = runEvent({
      outputs: [
        {
          namespace: "warehouse",
          name: "ads.matching_keys",
          facets: columnLineage({ phone_sha256: { inputFields: [input("phone_number")], transformationType: "MASKED" } }),
        },
      ],
    });
    const events = mapRunEvent(ol, { taxonomy }).events;
    expect(events.map((e) => [e.masking, e.transform, e.fieldLineage.map((m) => m.masking)])).toEqual([["NONE", "HASH", ["MASKED"]]]);
  });

  it("gives dataset-level edges the transform OTHER when a DERIVE also carries column mappings", () => {
    const ol = runEvent({
      outputs: [
        {
          namespace: "warehouse",
          name: "ads.matching_keys",
          facets: columnLineage({ total: { inputFields: [input("user_id", [direct("AGGREGATION")])] } }),
        },
        { namespace: "warehouse", name: "ads.audit_copy" },
      ],
    });
    const [e] = mapRunEvent(ol, { taxonomy }).events;
    expect(e!.transform).toBe("OTHER");
    expect(e!.fieldLineage.map((m) => m.transform)).toEqual(["AGGREGATE"]);
  });

  it("declares a USE or SHARE from the lineageAudit_purpose run facet, with purposes, subject type and recipient", () => {
    const ol = runEvent({
      job: { namespace: "warehouse-jobs", name: "ads.partner-export" },
      run: {
        runId: RUN,
        facets: {
          lineageAudit_purpose: {
            kind: "SHARE",
            purposes: ["marketing.advertising.third_party.targeted"],
            dataSubject: "customer",
            service: "partner-export",
            recipient: { name: "partner-co", external: true },
          },
        },
      },
      inputs: [{ namespace: "warehouse", name: "ads.matching_keys", facets: { schema: { fields: [{ name: "phone_sha256" }] } } }],
      outputs: [],
    });
    const { events, explanation } = mapRunEvent(ol, { taxonomy });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      kind: "SHARE",
      service: "partner-export",
      purposes: ["marketing.advertising.third_party.targeted"],
      dataSubject: "customer",
      recipient: { name: "partner-co", external: true },
      inputs: [{ namespace: "warehouse", name: "ads.matching_keys", fields: [{ name: "phone_sha256", categories: [] }] }],
    });
    expect(explanation).toMatch(/a SHARE for marketing\.advertising\.third_party\.targeted/);
    // With outputs too, it is a DERIVE and the USE.
    ol.run.facets = { lineageAudit_purpose: { kind: "USE", purposes: ["analytics.reporting"], dataSubject: "customer" } };
    ol.outputs = runEvent().outputs!;
    expect(mapRunEvent(ol, { taxonomy }).events.map((e) => e.kind)).toEqual(["DERIVE", "USE"]);
  });

  it("gives the same event ids when the same RunEvent comes again, and other ids for another run or time", () => {
    const a = mapRunEvent(runEvent(), { taxonomy }).events[0]!.eventId;
    expect(mapRunEvent(runEvent(), { taxonomy }).events[0]!.eventId).toBe(a);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(mapRunEvent(runEvent({ eventTime: "2019-06-01T10:00:01Z" }), { taxonomy }).events[0]!.eventId).not.toBe(a);
    expect(eventIdOf({ ...runEvent(), run: { runId: "other" } }, "derive:NONE")).not.toBe(a);
  });

  it("makes ids that are fixed for a RunEvent and sort by its event time (the store checks a batch's ids by ranges of them)", () => {
    // Fixed values: a change here means a RunEvent delivered again after an upgrade is stored twice.
    const ol = {
      eventType: "COMPLETE",
      eventTime: "2019-06-01T00:00:07.000Z",
      run: { runId: "r7\u00e9" },
      job: { namespace: "ns", name: "j7" },
    };
    expect(eventIdOf(ol, "derive:NONE")).toBe("016b1056-1b58-89f4-80e2-6a1aa6bc6fa7");
    expect(eventIdOf({ ...ol, eventType: undefined }, "purpose:USE")).toBe("016b1056-1b58-863d-a6f1-446272632a0e");
    // The first 48 bits are the event time's milliseconds, as in a UUIDv7.
    expect(eventIdOf(ol, "derive:NONE").replace("-", "").slice(0, 12)).toBe((Date.UTC(2019, 5, 1) + 7_000).toString(16).padStart(12, "0"));
    const times = [
      "2019-06-01T00:00:07.000Z",
      "2019-06-01T00:00:07.001Z",
      "2019-06-02T00:00:00Z",
      "2024-01-01T00:00:00+02:00",
      "2026-12-07T10:00:00Z",
    ];
    const ids = times.map((eventTime, i) => eventIdOf({ ...ol, eventTime, run: { runId: `run-${9 - i}` } }, "derive:NONE"));
    expect([...ids].sort()).toEqual(ids);
  });

  it("keeps namespace and name as they are: an OpenLineage dataset with the namespace and name of ours is the same dataset", () => {
    const [e] = mapRunEvent(runEvent(), { taxonomy }).events;
    expect(e!.inputs[0]).toMatchObject({ namespace: "warehouse", name: "profile.contact_points" });
  });

  it("refuses an event time the store cannot keep", () => {
    expect(() => mapRunEvent(runEvent({ eventTime: "2400-01-01T00:00:00Z" }), { taxonomy })).toThrow(/\/eventTime must be a time from/);
  });
});

describe("the classification file", () => {
  it("names the file, line and column of each problem", () => {
    const bad = (text: string) => () => parseClassification(text, "c.yaml", taxonomy);
    expect(bad("version: 2\ndatasets: {}\n")).toThrow(/^c\.yaml:1:10: version must be 1$/);
    expect(bad('version: 1\ndatasets:\n  "warehouse/t":\n    phone: [user.contact.phon]\n')).toThrow(
      /^c\.yaml:4:13: warehouse\/t phone: 'user\.contact\.phon' is not a fideslang data category \(did you mean 'user\.contact\.phone_number'\?\)$/,
    );
    expect(bad('version: 1\ndatasets:\n  "no-slash":\n    phone: [user.contact.phone_number]\n')).toThrow(/^c\.yaml:3:3: a dataset glob/);
    expect(bad('version: 1\ndatasets:\n  "w/t":\n    phone: []\n')).toThrow(/^c\.yaml:4:12: w\/t phone: must be a non-empty list/);
    expect(bad("version: 1\nextra: 1\n")).toThrow(/^c\.yaml:2:1: unknown key 'extra'/);
    expect(bad("version: 1\ndatasets: [\n")).toThrow(/^c\.yaml:\d+:\d+: not valid YAML/);
  });

  it("matches globs over namespace/name, * any run of characters and ? one, and merges every match", () => {
    const c = classify(
      'version: 1\ndatasets:\n  "duckdb://*/main.two_fa?tor":\n    phone: [user.contact.phone_number]\n  "duckdb://*":\n    phone: [user.contact]\n',
    );
    expect(Object.fromEntries(c.categoriesOf("duckdb:///tmp/w.duckdb", "main.two_factor"))).toEqual({
      phone: ["user.contact.phone_number", "user.contact"],
    });
    expect(Object.fromEntries(c.categoriesOf("postgres://db", "main.two_factor"))).toEqual({});
  });
});
