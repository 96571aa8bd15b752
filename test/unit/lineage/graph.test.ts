import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  createLineageGraph,
  factDigest,
  factKey,
  labelId,
  labelKey,
  type Label,
  type LineageGraph,
} from "../../../services/lineage/index.ts";
import { sameFact } from "../../../services/lineage/graph.ts";
import { EventKind, Masking, Transform, type DataAccessEvent } from "../../../services/codec/index.ts";
import { parsePolicy, type Declassification } from "../../../services/rules/index.ts";
import {
  AUTHENTICATION,
  collect,
  defaultPolicy,
  deriveDatasets,
  deriveFields,
  dsId,
  EMAIL,
  map,
  PHONE,
  pipeline2019,
  pseudo,
  ref,
  SECURITY,
} from "../helpers.ts";

const USERNAME = "user.account.username";

function labelsAt(graph: LineageGraph, dataset: string, ...fields: string[]): Label[] {
  const lookup = graph.labelsOf([{ dataset: dsId(dataset), fields: fields.length > 0 ? fields : ["*"] }]);
  expect(lookup.unknownDatasets).toEqual([]);
  return lookup.labels;
}

/** `category@origin` of each label, sorted: what reached a field, independent of path. */
function summary(labels: readonly Label[]): string[] {
  return labels.map((l) => `${l.category}@${l.origin}`).sort();
}

describe("lineage graph: propagation", () => {
  it("carries a collected label over COPY -> JOIN -> HASH to the last field, with every hop in order", () => {
    const g = createLineageGraph([]);
    const p = pipeline2019();
    for (const e of [p.collect, p.copy, p.join, p.hash]) expect(g.apply(e).applied).toBe(true);

    const labels = labelsAt(g, "ads.matching_keys", "phone_sha256");
    expect(labels).toHaveLength(1);
    const [label] = labels as [Label];
    expect(label.category).toBe(PHONE);
    expect(label.origin).toBe("wh/security.two_factor#phone_number");
    expect(label.collectedFor).toEqual([AUTHENTICATION, SECURITY]); // sorted
    expect(label.dataSubject).toBe("customer");
    expect(label.key).toBe(labelKey("wh/security.two_factor#phone_number", PHONE, [AUTHENTICATION, SECURITY], "customer"));
    expect(label.id).toBe(labelId(label.key));
    expect(label.id).toMatch(/^[0-9a-f]{16}$/);
    expect(label.path.map((h) => [h.kind, h.transform ?? null, `${h.dataset}#${h.field}`, h.service, h.eventId])).toEqual([
      ["COLLECT", null, "wh/security.two_factor#phone_number", "auth-service", p.collect.eventId],
      ["DERIVE", "COPY", "wh/profile.contact_points#phone_number", "profile-sync", p.copy.eventId],
      ["DERIVE", "JOIN", "wh/identity.graph#security_phone", "identity-graph", p.join.eventId],
      ["DERIVE", "HASH", "wh/ads.matching_keys#phone_sha256", "ads-identity", p.hash.eventId],
    ]);
  });

  it("keeps labels off columns that column-level lineage does not connect", () => {
    const g = createLineageGraph([]);
    g.apply(collect("accounts.users", { email: [EMAIL], handle: [USERNAME] }, ["essential.service"]));
    g.apply(
      deriveFields([
        map(ref("profile.public", "display_name"), [ref("accounts.users", "handle")]),
        map(ref("profile.public", "contact"), [ref("accounts.users", "email")]),
      ]),
    );

    expect(summary(labelsAt(g, "profile.public", "display_name"))).toEqual([`${USERNAME}@wh/accounts.users#handle`]);
    expect(summary(labelsAt(g, "profile.public", "contact"))).toEqual([`${EMAIL}@wh/accounts.users#email`]);
    // Reading both columns (or the whole dataset) sees both.
    expect(summary(labelsAt(g, "profile.public", "display_name", "contact"))).toEqual(
      [`${EMAIL}@wh/accounts.users#email`, `${USERNAME}@wh/accounts.users#handle`].sort(),
    );
    expect(summary(labelsAt(g, "profile.public"))).toHaveLength(2);
  });

  it("gives a dataset-level DERIVE (no fieldLineage) every label of every input", () => {
    const g = createLineageGraph([]);
    g.apply(collect("accounts.users", { email: [EMAIL], handle: [USERNAME] }, ["essential.service"]));
    g.apply(collect("security.two_factor", { phone_number: [PHONE] }, [SECURITY]));
    g.apply(deriveDatasets(["accounts.users", "security.two_factor"], ["warehouse.snapshot"], Transform.copy));

    const expected = [
      `${EMAIL}@wh/accounts.users#email`,
      `${PHONE}@wh/security.two_factor#phone_number`,
      `${USERNAME}@wh/accounts.users#handle`,
    ].sort();
    expect(summary(labelsAt(g, "warehouse.snapshot"))).toEqual(expected);
    // Any column of the dataset-level output carries them too.
    expect(summary(labelsAt(g, "warehouse.snapshot", "some_column"))).toEqual(expected);
    const hop = labelsAt(g, "warehouse.snapshot")[0]?.path[1];
    expect(hop).toMatchObject({ kind: "DERIVE", transform: "COPY", dataset: "wh/warehouse.snapshot", field: "*" });
  });

  it("carries whole-dataset labels of a dataset-level copy on through a later column-level DERIVE out of that copy", () => {
    const g = createLineageGraph([]);
    g.apply(collect("security.two_factor", { phone_number: [PHONE] }, [SECURITY]));
    g.apply(deriveDatasets(["security.two_factor"], ["backup.two_factor"], Transform.copy));
    g.apply(deriveFields([map(ref("ads.keys", "phone_sha256"), [ref("backup.two_factor", "phone_number")], Transform.hash)]));

    // The copy's column holds the phone label (read through its whole-dataset node)...
    expect(summary(labelsAt(g, "backup.two_factor", "phone_number"))).toEqual([`${PHONE}@wh/security.two_factor#phone_number`]);
    // ...so the hash of that column must hold it too.
    const labels = labelsAt(g, "ads.keys", "phone_sha256");
    expect(summary(labels)).toEqual([`${PHONE}@wh/security.two_factor#phone_number`]);
    expect(labels[0]?.path.map((h) => h.dataset)).toEqual(["wh/security.two_factor", "wh/backup.two_factor", "wh/ads.keys"]);
  });

  it("lets a late COLLECT reach through a dataset-level DERIVE", () => {
    const g = createLineageGraph([]);
    g.apply(deriveDatasets(["accounts.users"], ["warehouse.snapshot"], Transform.copy));
    expect(labelsAt(g, "warehouse.snapshot")).toEqual([]);
    g.apply(collect("accounts.users", { email: [EMAIL] }, ["essential.service"]));
    expect(summary(labelsAt(g, "warehouse.snapshot"))).toEqual([`${EMAIL}@wh/accounts.users#email`]);
  });

  it("gives one label (no duplicate) when a diamond offers two paths from one origin, and either path alone delivers it", () => {
    const origin = collect("src", { phone: [PHONE] }, [SECURITY]);
    const viaA = deriveFields([map(ref("a", "phone"), [ref("src", "phone")])]);
    const viaB = deriveFields([map(ref("b", "phone"), [ref("src", "phone")])]);
    const join = deriveFields([map(ref("sink", "phone"), [ref("a", "phone"), ref("b", "phone")], Transform.join)]);

    const both = createLineageGraph([]);
    for (const e of [origin, viaA, viaB, join]) both.apply(e);
    const labels = labelsAt(both, "sink", "phone");
    expect(labels).toHaveLength(1);
    const id = labels[0]?.id;
    expect([dsId("a"), dsId("b")]).toContain(labels[0]?.path[1]?.dataset);

    for (const branch of [viaA, viaB]) {
      const g = createLineageGraph([]);
      for (const e of [origin, branch, join]) g.apply(e);
      const only = labelsAt(g, "sink", "phone");
      expect(only.map((l) => l.id)).toEqual([id]);
      expect(only[0]?.path.map((h) => h.dataset)).toEqual([dsId("src"), branch === viaA ? dsId("a") : dsId("b"), dsId("sink")]);
    }
  });

  it("keeps two labels when the same field is collected for two different purposes", () => {
    const g = createLineageGraph([]);
    g.apply(collect("src", { phone: [PHONE] }, [SECURITY], { service: "auth-service" }));
    g.apply(collect("src", { phone: [PHONE] }, ["marketing.advertising"], { service: "signup" }));
    g.apply(deriveFields([map(ref("copy", "phone"), [ref("src", "phone")])]));

    for (const [dataset, field] of [
      ["src", "phone"],
      ["copy", "phone"],
    ] as const) {
      const labels = labelsAt(g, dataset, field);
      expect(labels.map((l) => l.collectedFor).sort()).toEqual([["essential.service.security"], ["marketing.advertising"]]);
      expect(new Set(labels.map((l) => l.id)).size).toBe(2);
      expect(labels.every((l) => l.category === PHONE && l.origin === "wh/src#phone")).toBe(true);
    }
  });

  it("keeps labels through HASH, which is not anonymisation, with or without MASKED", () => {
    const { policy } = defaultPolicy();
    const g = createLineageGraph(policy.declassify);
    g.apply(collect("src", { phone: [PHONE] }, [SECURITY]));
    g.apply(deriveFields([map(ref("hashed", "phone_sha256"), [ref("src", "phone")], Transform.hash)]));
    g.apply(deriveFields([map(ref("masked", "phone_sha256"), [ref("src", "phone")], Transform.hash)], { masking: Masking.masked }));

    expect(summary(labelsAt(g, "hashed", "phone_sha256"))).toEqual([`${PHONE}@wh/src#phone`]);
    const masked = labelsAt(g, "masked", "phone_sha256");
    expect(summary(masked)).toEqual([`${PHONE}@wh/src#phone`]);
    expect(masked[0]?.path[1]).toMatchObject({ transform: "HASH", masking: "MASKED" });
    expect(masked[0]?.path[1]?.declassifiedBy).toBeUndefined();
  });
});

describe("lineage graph: declassification", () => {
  const aggregate = () => deriveDatasets(["accounts.users"], ["reports.daily"], Transform.aggregate, { masking: Masking.anonymised });
  const users = () => collect("accounts.users", { email: [EMAIL], handle: [USERNAME] }, ["essential.service"]);

  it("drops user.* labels over an AGGREGATE/ANONYMISED derivation under the default anonymised-aggregates rule", () => {
    const { policy } = defaultPolicy();
    expect(policy.declassify.map((d) => d.id)).toEqual(["anonymised-aggregates"]);
    const g = createLineageGraph(policy.declassify);
    g.apply(users());
    g.apply(aggregate());
    const lookup = g.labelsOf([{ dataset: dsId("reports.daily"), fields: ["*"] }]);
    expect(lookup).toEqual({ labels: [], unknownDatasets: [] });
    expect(g.knows(dsId("reports.daily"))).toBe(true);
  });

  it("passes labels over an AGGREGATE/ANONYMISED derivation when no declassify rule exists", () => {
    const g = createLineageGraph([]);
    g.apply(users());
    g.apply(aggregate());
    const labels = labelsAt(g, "reports.daily");
    expect(summary(labels)).toEqual([`${EMAIL}@wh/accounts.users#email`, `${USERNAME}@wh/accounts.users#handle`].sort());
    expect(labels[0]?.path[1]).toMatchObject({ transform: "AGGREGATE", masking: "ANONYMISED" });
  });

  it("declassifies over the mapping that anonymises, and only that one, when masking is per mapping (schema version 3)", () => {
    const { policy } = defaultPolicy();
    const g = createLineageGraph(policy.declassify);
    g.apply(users());
    // One DERIVE, not masked as a whole: one mapping aggregates and anonymises, the other copies.
    const count = {
      ...map(ref("reports.daily", "users"), [ref("accounts.users", "email")], Transform.aggregate),
      masking: Masking.anonymised,
    };
    const copy = { ...map(ref("reports.daily", "email"), [ref("accounts.users", "email")], Transform.aggregate), masking: null };
    g.apply(deriveFields([count, copy], { masking: Masking.none }));
    expect(summary(labelsAt(g, "reports.daily", "users"))).toEqual([]);
    const kept = labelsAt(g, "reports.daily", "email");
    expect(summary(kept)).toEqual([`${EMAIL}@wh/accounts.users#email`]);
    expect(kept[0]?.path[1]).toMatchObject({ transform: "AGGREGATE", masking: "NONE" });
    // The event's masking applies to every mapping; a mapping's own adds to it.
    const h = createLineageGraph(policy.declassify);
    h.apply(users());
    h.apply(deriveFields([{ ...copy, masking: Masking.none }], { masking: Masking.anonymised }));
    expect(summary(labelsAt(h, "reports.daily", "email"))).toEqual([]);
  });

  it("keys a fact by each mapping's own masking; a mapping without one keys as before version 3", () => {
    const m = map(ref("b", "x"), [ref("a", "x")], Transform.hash);
    const e = deriveFields([m]);
    expect(factDigest({ ...e, fieldLineage: [{ ...m, masking: null }] })).toBe(factDigest(e));
    expect(factDigest({ ...e, fieldLineage: [{ ...m, masking: Masking.none }] })).toBe(factDigest(e));
    expect(factDigest({ ...e, fieldLineage: [{ ...m, masking: Masking.masked }] })).not.toBe(factDigest(e));
  });

  it("keeps labels over a MASKED aggregate when the rule requires ANONYMISED", () => {
    const { policy } = defaultPolicy();
    const g = createLineageGraph(policy.declassify);
    g.apply(users());
    g.apply(deriveDatasets(["accounts.users"], ["reports.daily"], Transform.aggregate, { masking: Masking.masked }));
    expect(summary(labelsAt(g, "reports.daily"))).toEqual(
      [`${EMAIL}@wh/accounts.users#email`, `${USERNAME}@wh/accounts.users#handle`].sort(),
    );
  });

  it("keeps labels whose category the rule does not cover", () => {
    const { policy } = defaultPolicy();
    const g = createLineageGraph(policy.declassify);
    g.apply(collect("devices", { model: ["system.operations"] }, ["essential.service"]));
    g.apply(deriveDatasets(["devices"], ["reports.devices"], Transform.aggregate, { masking: Masking.anonymised }));
    expect(summary(labelsAt(g, "reports.devices"))).toEqual(["system.operations@wh/devices#model"]);
  });

  it("reclassifies a label to reclassifyTo over a matching masked derivation, keeping origin and purposes", () => {
    const { taxonomy } = defaultPolicy();
    const policy = parsePolicy(
      [
        "version: 1",
        "declassify:",
        "  - id: masked-phone-is-pseudonymous",
        "    transforms: [HASH]",
        "    masking: [MASKED]",
        "    categories: [user.contact]",
        "    reclassifyTo: user.unique_id.pseudonymous",
      ].join("\n"),
      "inline.yaml",
      taxonomy,
    );
    const rule = policy.declassify[0] as Declassification;
    expect(rule.action).toEqual({ reclassifyTo: "user.unique_id.pseudonymous" });

    const g = createLineageGraph(policy.declassify);
    g.apply(collect("src", { phone: [PHONE] }, [SECURITY]));
    g.apply(deriveFields([map(ref("keys", "phone_key"), [ref("src", "phone")], Transform.hash)], { masking: Masking.masked }));
    g.apply(deriveFields([map(ref("keys_copy", "phone_key"), [ref("keys", "phone_key")], Transform.copy)]));

    const original = labelsAt(g, "src", "phone")[0] as Label;
    for (const dataset of ["keys", "keys_copy"]) {
      const labels = labelsAt(g, dataset, "phone_key");
      expect(labels).toHaveLength(1);
      const l = labels[0] as Label;
      expect(l.category).toBe("user.unique_id.pseudonymous");
      expect(l.origin).toBe("wh/src#phone");
      expect(l.collectedFor).toEqual([SECURITY]);
      expect(l.key).toBe(labelKey("wh/src#phone", "user.unique_id.pseudonymous", [SECURITY], "customer"));
      expect(l.id).not.toBe(original.id);
      expect(l.path[1]?.declassifiedBy).toBe("masked-phone-is-pseudonymous");
    }
  });
});

describe("lineage graph: late facts, unknown datasets, idempotence, cycles", () => {
  it("lets a COLLECT that arrives after the DERIVEs reach every downstream field", () => {
    const g = createLineageGraph([]);
    const p = pipeline2019();
    for (const e of [p.hash, p.join, p.copy]) g.apply(e);
    expect(labelsAt(g, "ads.matching_keys", "phone_sha256")).toEqual([]);
    const before = g.version;

    const result = g.apply(p.collect);
    expect(result.applied).toBe(true);
    expect([...result.changedDatasets].sort()).toEqual(
      ["wh/ads.matching_keys", "wh/identity.graph", "wh/profile.contact_points", "wh/security.two_factor"].sort(),
    );
    expect(g.version).toBe(before + 1);
    const labels = labelsAt(g, "ads.matching_keys", "phone_sha256");
    expect(summary(labels)).toEqual([`${PHONE}@wh/security.two_factor#phone_number`]);
    expect(labels[0]?.path.map((h) => h.transform ?? h.kind)).toEqual(["COLLECT", "COPY", "JOIN", "HASH"]);
  });

  it("reports a dataset read before any COLLECT or DERIVE described it as unknown", () => {
    const g = createLineageGraph([]);
    expect(g.labelsOf([{ dataset: dsId("mystery"), fields: ["x"] }])).toEqual({ labels: [], unknownDatasets: [dsId("mystery")] });
    expect(g.knows(dsId("mystery"))).toBe(false);

    // Being read by a DERIVE does not describe a dataset; being written does.
    g.apply(deriveFields([map(ref("out", "x"), [ref("mystery", "x")])]));
    expect(g.knows(dsId("mystery"))).toBe(false);
    expect(g.knows(dsId("out"))).toBe(true);
    expect(
      g.labelsOf([
        { dataset: dsId("mystery"), fields: ["x"] },
        { dataset: dsId("out"), fields: ["x"] },
      ]),
    ).toEqual({
      labels: [],
      unknownDatasets: [dsId("mystery")],
    });
  });

  it("returns applied=false and leaves version alone when the same fact is applied again", () => {
    const g = createLineageGraph([]);
    const first = collect("src", { phone: [PHONE] }, [SECURITY]);
    const fact = factDigest(first);
    expect(fact).toMatch(/^[0-9a-f]{32}$/);
    expect(g.apply(first)).toEqual({ applied: true, changedDatasets: [dsId("src")], fact });
    expect(g.version).toBe(1);

    // Same fact, new identity, time, run and subjects.
    const again = {
      ...first,
      eventId: "00000000-0000-4000-8000-ffffffffffff",
      occurredAt: first.occurredAt + 86_400_000,
      runId: "run-2",
      subjects: [pseudo(1)],
    };
    // Each repeat names the fact it repeats: its row points there instead of storing the lineage again.
    expect(g.apply(again)).toEqual({ applied: false, changedDatasets: [], fact });
    expect(g.apply(first)).toEqual({ applied: false, changedDatasets: [], fact });
    expect(g.version).toBe(1);
    expect(g.stats.facts).toBe(1);
    expect(labelsAt(g, "src", "phone")).toHaveLength(1);
  });

  it("does not bump version for an applied fact that neither changes a label nor describes a new dataset", () => {
    const g = createLineageGraph([]);
    g.apply(collect("src", { phone: [PHONE] }, [SECURITY]));
    g.apply(deriveFields([map(ref("elsewhere", "x"), [ref("unrelated", "x")])]));
    const version = g.version;
    const derive = deriveFields([map(ref("elsewhere", "y"), [ref("unrelated", "y")])]);
    expect(g.apply(derive)).toEqual({ applied: true, changedDatasets: [], fact: factDigest(derive) });
    expect(g.version).toBe(version);
  });

  it("ignores USE, SHARE and DELETE events", () => {
    const g = createLineageGraph([]);
    const c = collect("src", { phone: [PHONE] }, [SECURITY]);
    for (const kind of ["USE", "SHARE", "DELETE"] as const)
      expect(g.apply({ ...c, kind })).toEqual({ applied: false, changedDatasets: [] });
    expect(g.knows(dsId("src"))).toBe(false);
    expect(g.version).toBe(0);
  });

  it("terminates on a column-level cycle A -> B -> A and puts exactly one label on each", () => {
    const g = createLineageGraph([]);
    g.apply(deriveFields([map(ref("A", "f"), [ref("B", "f")])]));
    g.apply(deriveFields([map(ref("B", "f"), [ref("A", "f")])]));
    g.apply(collect("A", { f: [PHONE] }, [SECURITY]));
    expect(summary(labelsAt(g, "A", "f"))).toEqual([`${PHONE}@wh/A#f`]);
    expect(summary(labelsAt(g, "B", "f"))).toEqual([`${PHONE}@wh/A#f`]);
    expect(g.stats.labels).toBe(2);
  });

  it("terminates on a dataset-level cycle A -> B -> A", () => {
    const g = createLineageGraph([]);
    g.apply(collect("A", { f: [PHONE] }, [SECURITY]));
    g.apply(deriveDatasets(["A"], ["B"], Transform.copy));
    g.apply(deriveDatasets(["B"], ["A"], Transform.copy));
    expect(summary(labelsAt(g, "A"))).toEqual([`${PHONE}@wh/A#f`]);
    expect(summary(labelsAt(g, "B"))).toEqual([`${PHONE}@wh/A#f`]);
  });
});

describe("lineage graph: property", () => {
  const CATEGORIES = [PHONE, EMAIL, USERNAME, "user.financial.credit_card"];

  const dag = fc
    .integer({ min: 2, max: 8 })
    .chain((n) =>
      fc.record({
        n: fc.constant(n),
        // parents[j] ⊆ {0..j-1}: a DAG by construction.
        parents: fc.tuple(...Array.from({ length: n }, (_, j) => fc.subarray(Array.from({ length: j }, (_, i) => i)))),
        collected: fc.array(fc.boolean(), { minLength: n, maxLength: n }),
        seed: fc.integer(),
      }),
    )
    .chain((d) => {
      const events = [];
      for (let j = 0; j < d.n; j++) {
        const parents = d.parents[j] as number[];
        if (d.collected[j] || parents.length === 0)
          events.push(collect(`n${j}`, { f: [CATEGORIES[j % CATEGORIES.length] as string] }, [SECURITY]));
        if (parents.length > 0)
          events.push(
            deriveFields([
              map(
                ref(`n${j}`, "f"),
                parents.map((i) => ref(`n${i}`, "f")),
              ),
            ]),
          );
      }
      // Any arrival order: late lineage must give the same result.
      return fc.shuffledSubarray(events, { minLength: events.length, maxLength: events.length }).map((order) => ({ ...d, order }));
    });

  it("delivers every collected label to every descendant and nothing else, whatever the arrival order", () => {
    fc.assert(
      fc.property(dag, ({ n, parents, collected, order }) => {
        const g = createLineageGraph([]);
        for (const e of order) g.apply(e);
        const sources = Array.from({ length: n }, (_, j) => collected[j] === true || (parents[j] as number[]).length === 0);
        const ancestors = (j: number, seen = new Set<number>()): Set<number> => {
          if (seen.has(j)) return seen;
          seen.add(j);
          for (const p of parents[j] as number[]) ancestors(p, seen);
          return seen;
        };
        for (let j = 0; j < n; j++) {
          const expected = [...ancestors(j)]
            .filter((i) => sources[i])
            .map((i) => `${CATEGORIES[i % CATEGORIES.length]}@wh/n${i}#f`)
            .sort();
          const lookup = g.labelsOf([{ dataset: dsId(`n${j}`), fields: ["f"] }]);
          expect(lookup.unknownDatasets).toEqual([]);
          expect(summary(lookup.labels)).toEqual(expected);
          expect(lookup.labels.length).toBe(new Set(lookup.labels.map((l) => l.key)).size);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("graph version", () => {
  it("changes when a derivation describes a dataset even though no label reaches it yet", () => {
    const graph = createLineageGraph([]);
    const before = graph.version;
    graph.apply(deriveFields([map(ref("ads.keys", "k"), [ref("not.yet.collected", "x")], Transform.hash)]));
    expect(graph.knows("wh/ads.keys")).toBe(true);
    expect(graph.version).toBeGreaterThan(before);
  });
});

describe("lineage graph: a job's repeated fact (sameFact)", () => {
  // Small alphabets, so two generated events often share a part; no value holds factKey's
  // separators, so equal keys mean equal parts and sameFact must agree with the keys exactly.
  const word = fc.constantFrom("a", "b");
  const strings = fc.array(word, { maxLength: 2 });
  const dataset = fc.record({
    namespace: word,
    name: word,
    fields: fc.array(fc.record({ name: word, categories: strings }), { maxLength: 2 }),
  });
  const fieldRef = fc.record({ namespace: word, name: word, field: word });
  const mapping = fc.record({
    output: fieldRef,
    inputs: fc.array(fieldRef, { maxLength: 2 }),
    transform: fc.constantFrom(Transform.copy, Transform.hash),
    masking: fc.constantFrom(undefined, null, Masking.none, Masking.masked),
  });
  const event = fc.record({
    kind: fc.constantFrom(EventKind.derive, EventKind.collect),
    service: word,
    job: fc.record({ namespace: word, name: word }),
    transform: fc.constantFrom(Transform.copy, Transform.other),
    masking: fc.constantFrom(Masking.none, Masking.masked),
    dataSubject: word,
    purposes: strings,
    inputs: fc.array(dataset, { maxLength: 2 }),
    outputs: fc.array(dataset, { maxLength: 2 }),
    fieldLineage: fc.array(mapping, { maxLength: 3 }),
    // Not part of the fact: they differ from run to run.
    eventId: fc.uuid(),
    runId: word,
    occurredAt: fc.integer({ min: 0, max: 1e12 }),
    subjects: strings,
  });
  const complete = (e: object): DataAccessEvent =>
    ({ recipient: null, traceparent: null, pseudonymKeyId: "default", attributes: {}, ...e }) as DataAccessEvent;

  // One part of an event taken from another: every part factKey reads, down to one mapping's.
  type Part = (x: Record<string, unknown>, o: Record<string, unknown>) => Record<string, unknown>;
  const top =
    (k: string): Part =>
    (x, o) => ({ ...x, [k]: o[k] });
  const first =
    (list: "inputs" | "outputs" | "fieldLineage", k: string): Part =>
    (x, o) => {
      const [xs, os] = [x[list] as Record<string, unknown>[], o[list] as Record<string, unknown>[]];
      if (xs.length === 0 || os.length === 0) return { ...x, [list]: os };
      return { ...x, [list]: [{ ...xs[0], [k]: (os[0] as Record<string, unknown>)[k] }, ...xs.slice(1)] };
    };
  const parts: Part[] = [
    ...["kind", "service", "job", "transform", "masking", "dataSubject", "purposes", "inputs", "outputs", "fieldLineage"].map(top),
    ...["namespace", "name", "fields"].flatMap((k) => [first("inputs", k), first("outputs", k)]),
    ...["output", "inputs", "transform", "masking"].map((k) => first("fieldLineage", k)),
    // Not part of the fact: they differ from run to run.
    ...["eventId", "runId", "occurredAt", "subjects"].map(top),
  ];

  it("says an event and one with a part of it changed are the same fact exactly when their fact keys are equal", () => {
    fc.assert(
      fc.property(event, event, fc.nat(parts.length - 1), (x, o, part) => {
        const a = complete(x);
        const b = complete((parts[part] as Part)(x, o));
        expect(sameFact(a, b)).toBe(factKey(a) === factKey(b));
      }),
      { numRuns: 5000 },
    );
  });

  it("says two events are the same fact exactly when their fact keys are equal", () => {
    fc.assert(
      fc.property(event, event, (x, y) => {
        const [a, b] = [complete(x), complete(y)];
        expect(sameFact(a, b)).toBe(factKey(a) === factKey(b));
        // The same event again under another run: always the same fact.
        expect(sameFact(a, complete({ ...x, eventId: "other", runId: "c", occurredAt: 1, subjects: ["x"] }))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("does not apply a job's fact again when the job runs again, nor one it ran before its last", () => {
    const g = createLineageGraph([]);
    const fact = (field: string, runId: string) =>
      deriveFields([map(ref("ads.keys", field), [ref("profile.phone", field)], Transform.hash)], {
        runId,
        job: { namespace: "dbt", name: "keys" },
      });
    expect(g.apply(fact("k", "run-1"))).toMatchObject({ applied: true, fact: factDigest(fact("k", "run-1")) });
    // Its last fact again: known without its key, and named by the id the first run stored.
    expect(g.apply(fact("k", "run-2"))).toEqual({ applied: false, changedDatasets: [], fact: factDigest(fact("k", "run-1")) });
    expect(g.apply(fact("j", "run-3"))).toMatchObject({ applied: true, fact: factDigest(fact("j", "run-3")) }); // the job's lineage changed
    // Back to a fact seen before its last: known by its key.
    expect(g.apply(fact("k", "run-4"))).toEqual({ applied: false, changedDatasets: [], fact: factDigest(fact("k", "run-1")) });
    expect(g.apply(fact("k", "run-5"))).toEqual({ applied: false, changedDatasets: [], fact: factDigest(fact("k", "run-1")) });
    expect(factDigest(fact("j", "run-3"))).not.toBe(factDigest(fact("k", "run-1")));
    expect(g.stats.facts).toBe(2);
    // A fact with subjects is not kept as a job's last (it may name many people): still known by its key.
    const withSubjects = (runId: string) => ({ ...fact("k", runId), subjects: [pseudo("alice")] });
    expect(g.apply(withSubjects("run-5")).applied).toBe(false);
    expect(g.apply(withSubjects("run-6")).applied).toBe(false);
    g.clear();
    expect(g.apply(fact("j", "run-7")).applied).toBe(true); // forgotten with everything else
  });

  it("still knows every fact once more jobs have run than it keeps the last fact of", () => {
    const g = createLineageGraph([]);
    const fact = (job: number) =>
      deriveFields([map(ref(`t${job}`, "k"), [ref("s", "k")])], { job: { namespace: "jobs", name: `j${job}` } });
    for (let job = 0; job < 5000; job++) expect(g.apply(fact(job)).applied).toBe(true);
    for (let job = 0; job < 5000; job++)
      expect(g.apply(fact(job))).toEqual({ applied: false, changedDatasets: [], fact: factDigest(fact(job)) });
    expect(g.stats.facts).toBe(5000);
  });
});
