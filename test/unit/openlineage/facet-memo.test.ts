// The facet memo (services/openlineage/facet-memo.ts): a dataset facet a job's runs send again
// byte for byte is parsed, checked and mapped once. Whatever an event holds, the intake must see
// the same document, the same refusal and the same events as without it: checked against the
// plain path on generated events (duplicate and escaped keys, facets of every JSON type, broken
// JSON, non-ASCII text), and on the cases one by one.
import { describe, expect, it } from "vitest";
import { createFacetMemo, type FacetMemo } from "../../../services/openlineage/facet-memo.ts";
import { checkRunEventBytes, validateOpenLineageEvent, type RunEventLimits } from "../../../services/openlineage/validate.ts";
import { mapRunEvent, type MapOptions } from "../../../services/openlineage/map.ts";
import { parseClassification } from "../../../services/openlineage/classification.ts";
import { loadFideslangTaxonomy } from "../../../services/taxonomy/index.ts";

const taxonomy = loadFideslangTaxonomy();
const PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python";
const facetHead = (name: string) => `"_producer":"${PRODUCER}","_schemaURL":"https://openlineage.io/spec/facets/1-0-0/${name}.json"`;

/** What parsing gives, or the message it throws. */
function parsed(text: string, memo?: FacetMemo): { doc?: unknown; error?: string } {
  try {
    return { doc: checkRunEventBytes(Buffer.from(text, "utf8"), undefined, memo) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/** Parses `text` with the memo and without: the same document (own keys, "__proto__" included) or the same error. */
function same(memo: FacetMemo, text: string): unknown {
  const plain = parsed(text);
  const memoized = parsed(text, memo);
  expect(memoized.error).toBe(plain.error);
  expect(memoized.doc).toStrictEqual(plain.doc);
  return memoized.doc;
}

/** The intake's mapping options: one object for its life, as the intake has. */
const plainOptions: MapOptions = { taxonomy };

/** What the intake makes of an event: its refusal, or its mapped events and explanation. */
function outcome(text: string, memo?: FacetMemo, limits?: Partial<RunEventLimits>, options: MapOptions = plainOptions) {
  try {
    const checked = validateOpenLineageEvent(checkRunEventBytes(Buffer.from(text, "utf8"), undefined, memo), limits);
    if (checked.kind !== "RunEvent") return { kind: checked.kind };
    return mapRunEvent(checked.event, options);
  } catch (error) {
    return { error: (error as Error).message };
  }
}

// ---------------------------------------------------------------------------------------------
// A small generator of event texts, written out by hand so that they can hold what
// JSON.stringify never writes: duplicate keys, escaped keys, odd whitespace.

/** A deterministic pseudo-random source (mulberry32). */
function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)] as T,
    chance: (p: number) => next() < p,
  };
}
type Random = ReturnType<typeof random>;

const ws = (r: Random) => (r.chance(0.2) ? r.pick([" ", "\n", "\t ", "  "]) : "");
const object = (r: Random, entries: [string, string][]) =>
  `{${ws(r)}${entries.map(([k, v]) => `${k}${ws(r)}:${ws(r)}${v}`).join(`,${ws(r)}`)}${ws(r)}}`;
const str = (s: string) => JSON.stringify(s);

/** Any JSON value, nested at most `depth` more levels. */
function value(r: Random, depth: number): string {
  const kind = depth <= 0 ? r.int(4) : r.int(6);
  if (kind === 0) return r.pick(["null", "true", "false", "0", "-1.5e3", "42"]);
  if (kind === 1) return str(r.pick(["", "a", 'x"y', "tab\there", "é", "\\u00e9"]));
  if (kind === 2) return str(`v${r.int(5)}`);
  if (kind === 3) return r.pick(["[]", "{}"]);
  if (kind === 4) return `[${Array.from({ length: r.int(4) }, () => value(r, depth - 1)).join(",")}]`;
  return object(
    r,
    Array.from({ length: r.int(4) }, () => [str(r.pick(["a", "b", "fields", "name", "_producer"])), value(r, depth - 1)]),
  );
}

/** A facet's key as written: known, unknown, escaped (the same key to JSON.parse), or __proto__. */
const FACET_KEYS = ['"schema"', '"columnLineage"', '"tags"', '"outputStatistics"', '"sch\\u0065ma"', '"__proto__"', '"x"'];

function facets(r: Random, variant: number): string {
  const entries: [string, string][] = [];
  for (let i = 0, n = 1 + r.int(3); i < n; i++) {
    const key = r.pick(FACET_KEYS);
    // Mostly objects, as facets are, changing with the variant now and then (a run's statistics).
    const v = r.chance(0.85)
      ? object(r, [
          [str("_producer"), str(PRODUCER)],
          [str("n"), String(r.chance(0.3) ? variant : 1)],
          [str("body"), value(r, 4)],
        ])
      : value(r, 2);
    entries.push([key, v]);
  }
  return object(r, entries);
}

function dataset(r: Random, variant: number): string {
  const entries: [string, string][] = [
    ['"namespace"', str(r.pick(["warehouse", "lake"]))],
    ['"name"', str(r.pick(["a", "b", "c", "é.d"]))],
    ['"facets"', facets(r, variant)],
  ];
  if (r.chance(0.1)) entries.push(['"facets"', facets(r, variant)]); // a duplicate: the last is kept
  if (r.chance(0.1)) entries.push(['"f\\u0061cets"', facets(r, variant)]); // escaped: also "facets"
  if (r.chance(0.1)) entries.splice(r.int(entries.length), 1); // no namespace, name or facets
  // Any order: facets before the name, say.
  for (let i = entries.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [entries[i], entries[j]] = [entries[j] as [string, string], entries[i] as [string, string]];
  }
  return object(r, entries);
}

/** An event text: the same seed gives the same event; `variant` changes its run and some facets. */
function eventText(seed: number, variant: number): string {
  const r = random(seed);
  const datasets = () => `[${Array.from({ length: r.int(3) }, () => dataset(r, variant)).join(",")}]`;
  const entries: [string, string][] = [
    ['"eventType"', '"COMPLETE"'],
    ['"eventTime"', '"2024-05-01T12:34:56.789Z"'],
    ['"producer"', str(PRODUCER)],
    ['"run"', `{"runId":"0190d8a0-1c2b-7c3d-8e4f-${variant.toString(16).padStart(12, "0")}"}`],
    ['"job"', '{"namespace":"jobs","name":"j"}'],
    ['"inputs"', datasets()],
    ['"outputs"', datasets()],
  ];
  if (r.chance(0.1)) entries.push(['"inputs"', datasets()]);
  if (r.chance(0.1)) entries.push(['"inp\\u0075ts"', datasets()]);
  if (r.chance(0.05)) entries.push(['"outputs"', "7"]);
  if (r.chance(0.2)) entries.push(['"extra"', datasets()]); // datasets' shape elsewhere: not facets of the event's datasets
  return object(r, entries);
}

/** Breaks a text as a sender might: cut short, or a byte dropped. */
function broken(text: string, r: Random): string {
  const at = 1 + r.int(text.length - 2);
  return r.chance(0.5) ? text.slice(0, at) : text.slice(0, at) + text.slice(at + 1);
}

describe("the facet memo gives the document JSON.parse gives", () => {
  it("on generated events sent again and again, changed, broken, with duplicate and escaped keys and facets of every type", () => {
    const memo = createFacetMemo();
    const r = random(7);
    for (let round = 0; round < 3000; round++) {
      const seed = r.int(60);
      const variant = r.chance(0.7) ? 1 : r.int(4);
      const text = eventText(seed, variant);
      same(memo, r.chance(0.1) ? broken(text, r) : text);
    }
    // The memo was used, and used a lot: the same facets came again.
    expect(memo.stats.remembered).toBeGreaterThan(20);
    expect(memo.stats.reused).toBeGreaterThan(1000);
  });

  it("gives a facet sent again as the object parsed before: frozen, and the same one each time", () => {
    const memo = createFacetMemo();
    const text = `{"run":{"runId":"r"},"inputs":[{"namespace":"w","name":"a","facets":{"schema":{${facetHead("SchemaDatasetFacet")},"fields":[{"name":"x"}]}}}]}`;
    const docs = [1, 2, 3, 4].map(() => same(memo, text) as { inputs: { facets: { schema: object } }[] });
    const schemas = docs.map((d) => d.inputs[0]?.facets.schema);
    // The first time its bytes are kept, the second time it is parsed alone and kept: then reused.
    expect(Object.isFrozen(schemas[0])).toBe(false);
    expect(Object.isFrozen(schemas[1])).toBe(true);
    expect(schemas[2]).toBe(schemas[1]);
    expect(schemas[3]).toBe(schemas[1]);
    expect(memo.stats).toEqual({ remembered: 1, reused: 3 });
    // The rest of the document is its own each time.
    expect(docs[2]).not.toBe(docs[3]);
    expect(Object.isFrozen(docs[3]?.inputs[0]?.facets)).toBe(false);
  });

  it("a changed facet is parsed as sent: the memo keeps the new bytes", () => {
    const memo = createFacetMemo();
    const text = (rows: number) =>
      `{"outputs":[{"namespace":"w","name":"b","facets":{"outputStatistics":{${facetHead("OutputStatisticsOutputDatasetFacet")},"rowCount":${rows}}}}]}`;
    for (const rows of [1, 1, 1, 2, 2, 2, 1, 3]) {
      const doc = same(memo, text(rows)) as { outputs: { facets: { outputStatistics: { rowCount: number } } }[] };
      expect(doc.outputs[0]?.facets.outputStatistics.rowCount).toBe(rows);
    }
  });

  it("keeps JSON.parse's answer to duplicate keys: the last one wins, wherever the remembered facet was", () => {
    const memo = createFacetMemo();
    const schema = (field: string) => `{${facetHead("SchemaDatasetFacet")},"fields":[{"name":"${field}"}]}`;
    const texts = [
      // A duplicate facet key: the second value is kept.
      `{"inputs":[{"namespace":"w","name":"a","facets":{"schema":${schema("first")},"schema":${schema("second")}}}]}`,
      // A duplicate facets object, and a duplicate inputs array.
      `{"inputs":[{"namespace":"w","name":"a","facets":{"schema":${schema("x")}},"facets":{"tags":{}}}]}`,
      `{"inputs":[{"namespace":"w","name":"a","facets":{"schema":${schema("x")}}}],"inputs":[]}`,
      // The same key escaped: JSON.parse reads "inputs", "facets" and "schema" all the same.
      `{"inputs":[{"namespace":"w","name":"a","facets":{"schema":${schema("x")}}}],"inp\\u0075ts":[{"namespace":"w","name":"a","facets":{"sch\\u0065ma":${schema("y")}}}]}`,
    ];
    for (let round = 0; round < 4; round++) for (const text of texts) same(memo, text);
    expect(memo.stats.reused).toBeGreaterThan(0);
  });

  it("puts a remembered facet under the key __proto__ as JSON.parse does: an own property, the prototype untouched", () => {
    const memo = createFacetMemo();
    const text = `{"inputs":[{"namespace":"w","name":"a","facets":{"__proto__":{${facetHead("X")},"polluted":true}}}]}`;
    for (let round = 0; round < 3; round++) {
      const doc = same(memo, text) as { inputs: { facets: Record<string, unknown> }[] };
      const facets = doc.inputs[0]?.facets as Record<string, unknown>;
      expect(Object.hasOwn(facets, "__proto__")).toBe(true);
      expect(Object.getPrototypeOf(facets)).toBe(Object.prototype);
      expect((facets as { polluted?: unknown }).polluted).toBeUndefined();
    }
    expect(memo.stats.reused).toBe(2);
  });

  it("a text that cannot be parsed gets the refusal it gets without the memo, broken inside a remembered facet or outside it", () => {
    const memo = createFacetMemo();
    const good = `{"inputs":[{"namespace":"w","name":"a","facets":{"schema":{${facetHead("SchemaDatasetFacet")},"fields":[]}}}]}`;
    for (let round = 0; round < 3; round++) same(memo, good);
    // Outside the facet: the remembered facet is put in, and the error stays where it was.
    const outside = good.replace('"name":"a"', '"name" "a"');
    expect(same(memo, outside)).toBeUndefined();
    expect(parsed(outside, memo).error).toMatch(/^OpenLineage event is not valid JSON \(at character \d+\)$/);
    // Inside it, sent twice so that the memo would parse it alone: refused both times.
    const inside = good.replace('"fields":[]', '"fields":[}');
    for (let round = 0; round < 3; round++) expect(parsed(inside, memo).error).toBe(parsed(inside).error);
  });

  it("leaves non-ASCII events, escapes of surrogates and facets over its limits to JSON.parse, with the same result", () => {
    const memo = createFacetMemo({ maxFacetBytes: 200 });
    const texts = [
      `{"inputs":[{"namespace":"w","name":"é","facets":{"schema":{${facetHead("SchemaDatasetFacet")},"fields":[]}}}]}`,
      `{"inputs":[{"namespace":"w","name":"a","facets":{"schema":{${facetHead("SchemaDatasetFacet")},"fields":[{"name":"\\ud83d\\ude00"}]}}}]}`,
      `{"inputs":[{"namespace":"w","name":"a","facets":{"big":{${facetHead("Big")},"padding":"${"x".repeat(300)}"}}}]}`,
    ];
    for (let round = 0; round < 3; round++) for (const text of texts) same(memo, text);
    expect(memo.stats.reused).toBe(0);
  });

  it("a remembered facet nested deeper than narrower limits allow is refused there as without the memo", () => {
    const memo = createFacetMemo();
    const deep = `{"inputs":[{"namespace":"w","name":"a","facets":{"deep":{${facetHead("Deep")},"x":[[[{"y":[1]}]]]}}}]}`;
    for (let round = 0; round < 3; round++) same(memo, deep);
    expect(memo.stats.reused).toBe(2);
    // The facet's "y" array is at depth 10.
    const plain = () => checkRunEventBytes(Buffer.from(deep), { maxDepth: 9 });
    expect(plain).toThrow("OpenLineage event nests deeper than 9 levels at byte");
    expect(() => checkRunEventBytes(Buffer.from(deep), { maxDepth: 9 }, memo)).toThrow(
      /^OpenLineage event nests deeper than 9 levels at byte \d+$/,
    );
    expect(checkRunEventBytes(Buffer.from(deep), { maxDepth: 10 }, memo)).toStrictEqual(
      checkRunEventBytes(Buffer.from(deep), { maxDepth: 10 }),
    );
  });

  it("keeps the facets in use when more come than it may hold, forgetting those unused longest", () => {
    const memo = createFacetMemo({ maxFacets: 8 });
    const text = (name: string) =>
      `{"inputs":[{"namespace":"w","name":"${name}","facets":{"schema":{${facetHead("SchemaDatasetFacet")},"fields":[]}}}]}`;
    for (let round = 0; round < 50; round++) {
      same(memo, text("hot"));
      // Facets that never come again, three a round: the memo is full every other round.
      for (let k = 0; k < 3; k++) same(memo, text(`cold_${round}_${k}`));
    }
    // Parsed alone once (the second round), and reused from then on: in every round but the first.
    expect(memo.stats).toEqual({ remembered: 1, reused: 49 });
  });

  it("forgets what it cannot hold when more facets or bytes come than allowed, and stays right", () => {
    const memo = createFacetMemo({ maxFacets: 2, maxBytes: 1_000 });
    const text = (name: string) =>
      `{"inputs":[{"namespace":"w","name":"${name}","facets":{"schema":{${facetHead("SchemaDatasetFacet")},"fields":[]}}}]}`;
    for (let round = 0; round < 5; round++) for (const name of ["a", "b", "c"]) same(memo, text(name));
    for (let round = 0; round < 5; round++) same(memo, text("a"));
    expect(memo.stats.reused).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------

/** A valid COMPLETE event with a schema facet and tags on its input, column lineage on its output. */
function runEventText(opts: { runId?: number; eventTime?: string; transformation?: string; fields?: number } = {}): string {
  const fields = Array.from({ length: opts.fields ?? 2 }, (_, i) => `{"name":"f${i}","type":"VARCHAR"}`).join(",");
  return `{"eventType":"COMPLETE","eventTime":"${opts.eventTime ?? "2024-05-01T12:34:56.789Z"}","producer":"${PRODUCER}",
    "schemaURL":"https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    "run":{"runId":"0190d8a0-1c2b-7c3d-8e4f-${(opts.runId ?? 1).toString(16).padStart(12, "0")}"},
    "job":{"namespace":"jobs","name":"nightly"},
    "inputs":[{"namespace":"warehouse","name":"security.two_factor","facets":{
      "schema":{${facetHead("SchemaDatasetFacet")},"fields":[${fields}]},
      "tags":{${facetHead("TagsDatasetFacet")},"tags":[{"key":"data_category","value":"user.contact.phone_number","field":"f0"}]}}}],
    "outputs":[{"namespace":"warehouse","name":"ads.matching_keys","facets":{
      "columnLineage":{${facetHead("ColumnLineageDatasetFacet")},"fields":{
        "h0":{"inputFields":[{"namespace":"warehouse","name":"security.two_factor","field":"f0","transformations":[{"type":"${opts.transformation ?? "DIRECT"}","subtype":"TRANSFORMATION","masking":true}]}]},
        "c1":{"inputFields":[{"namespace":"warehouse","name":"security.two_factor","field":"f1","transformations":[{"type":"DIRECT","subtype":"IDENTITY"}]}]}}},
      "outputStatistics":{${facetHead("OutputStatisticsOutputDatasetFacet")},"rowCount":${opts.runId ?? 1}}}}]}`;
}

describe("events with remembered facets are checked and mapped as without the memo", () => {
  it("a job's runs: the same events, the mapping of the remembered facets shared from the third run on", () => {
    const memo = createFacetMemo();
    const results = [1, 2, 3, 4, 5].map((run) => {
      const text = runEventText({ runId: run });
      const mapped = outcome(text, memo);
      expect(mapped).toStrictEqual(outcome(text));
      return mapped as ReturnType<typeof mapRunEvent>;
    });
    const derive = (i: number) => results[i]?.events[0];
    expect(derive(0)?.fieldLineage).toHaveLength(2);
    expect(derive(0)?.inputs[0]?.fields.find((f) => f.name === "f0")?.categories).toEqual(["user.contact.phone_number"]);
    // Runs 3 to 5 share the lists their remembered facets map to.
    expect(derive(3)?.fieldLineage).toBe(derive(2)?.fieldLineage);
    expect(derive(4)?.inputs[0]?.fields).toBe(derive(2)?.inputs[0]?.fields);
    expect(Object.isFrozen(derive(4)?.fieldLineage)).toBe(true);
    // Each run is its own event.
    expect(new Set(results.map((r) => r.events[0]?.eventId)).size).toBe(5);
  });

  it("a remembered facet that breaks the schema is refused each time it comes, with the same reason", () => {
    const memo = createFacetMemo();
    const text = runEventText({ transformation: "SIDEWAYS" });
    const refusal = outcome(text);
    expect(refusal).toEqual({
      error: expect.stringMatching(
        /^OpenLineage event: \/outputs\/0\/facets\/columnLineage\/.* must be equal to one of the allowed values$/,
      ) as string,
    });
    for (let round = 0; round < 4; round++)
      expect(outcome(runEventText({ transformation: "SIDEWAYS", runId: round }), memo)).toEqual(refusal);
  });

  it("an event whose remembered facets are valid is still refused for what else it breaks, with the reason it gets without the memo", () => {
    const memo = createFacetMemo();
    for (let run = 1; run <= 3; run++) outcome(runEventText({ runId: run }), memo);
    const late = runEventText({ runId: 4, eventTime: "yesterday" });
    expect(outcome(late, memo)).toEqual(outcome(late));
    expect(outcome(late, memo)).toEqual({ error: 'OpenLineage event: /eventTime must match format "date-time"' });
  });

  it("limits narrower than the intake's are applied to remembered facets too", () => {
    const memo = createFacetMemo();
    const text = runEventText({ fields: 3 });
    for (let round = 0; round < 3; round++) expect(outcome(text, memo)).not.toHaveProperty("error");
    expect(outcome(text, memo, { maxSchemaFields: 2 })).toEqual(outcome(text, undefined, { maxSchemaFields: 2 }));
    expect(outcome(text, memo, { maxSchemaFields: 2 })).toEqual({
      error: "OpenLineage event: /inputs/0/facets/schema has more than 2 fields",
    });
  });

  it("categories from the classification file, for facets without tags, are mapped from remembered facets as from parsed ones", () => {
    const classification = parseClassification(
      'version: 1\ndatasets:\n  "warehouse/security.*":\n    f1: [user.contact.email]\n',
      "c.yaml",
      taxonomy,
    );
    const options: MapOptions = { taxonomy, classification };
    const memo = createFacetMemo();
    const text = runEventText().replace(/,\s*"tags":\{[^}]*"tags":\[[^\]]*\]\}/, "");
    expect(text).not.toContain('"tags"');
    for (let round = 0; round < 4; round++) {
      const mapped = outcome(text, memo, undefined, options) as ReturnType<typeof mapRunEvent>;
      expect(mapped).toStrictEqual(outcome(text, undefined, undefined, options));
      expect(mapped.events[0]?.inputs[0]?.fields.find((f) => f.name === "f1")?.categories).toEqual(["user.contact.email"]);
    }
  });
});
