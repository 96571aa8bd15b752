import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  TaxonomyKind,
  coveredByAny,
  covers,
  createTaxonomy,
  loadFideslangTaxonomy,
  type TaxonomyData,
} from "../../../services/taxonomy/index.ts";

const fides = loadFideslangTaxonomy();

describe("covers", () => {
  it("matches a key with itself (exact match)", () => {
    expect(covers("user.contact.email", "user.contact.email")).toBe(true);
    expect(covers("customer", "customer")).toBe(true);
  });

  it("lets a parent cover every descendant down the chain (marketing covers marketing.advertising.third_party.targeted)", () => {
    expect(covers("marketing", "marketing.advertising.third_party.targeted")).toBe(true);
    expect(covers("marketing.advertising", "marketing.advertising.third_party.targeted")).toBe(true);
    expect(covers("marketing.advertising.third_party", "marketing.advertising.third_party.targeted")).toBe(true);
  });

  it("treats a trailing .* as the same subtree (user.contact.* covers user.contact.email and user.contact itself)", () => {
    expect(covers("user.contact.*", "user.contact.email")).toBe(true);
    expect(covers("user.contact.*", "user.contact.address.city")).toBe(true);
    expect(covers("user.contact.*", "user.contact")).toBe(true);
    expect(covers("user.contact.*", "user")).toBe(false);
    expect(covers("user.contact.*", "user.contactless")).toBe(false);
  });

  it("does not let user.contact cover user.contactless (a sibling sharing a prefix) nor its parent user", () => {
    expect(covers("user.contact", "user.contactless")).toBe(false);
    expect(covers("user.contact", "user.contact_info")).toBe(false);
    expect(covers("user.contact", "user")).toBe(false);
  });

  it("does not let a child cover its parent (marketing.advertising does not cover marketing)", () => {
    expect(covers("marketing.advertising", "marketing")).toBe(false);
    expect(covers("essential.service.security", "essential.service")).toBe(false);
  });

  it("does not match unrelated subtrees", () => {
    expect(covers("essential.service.security", "essential.service.authentication")).toBe(false);
    expect(covers("marketing", "analytics.reporting")).toBe(false);
  });

  it("lets * cover any key", () => {
    expect(covers("*", "user.contact.phone_number")).toBe(true);
    expect(covers("*", "marketing")).toBe(true);
  });

  it("matches case-sensitively", () => {
    expect(covers("User.Contact", "user.contact.email")).toBe(false);
  });
});

describe("coveredByAny", () => {
  it("is true when at least one pattern covers the key", () => {
    expect(coveredByAny(["analytics", "marketing.*"], "marketing.communications.email")).toBe(true);
    expect(coveredByAny(["analytics", "essential.service"], "essential.service.security")).toBe(true);
  });

  it("is false when no pattern covers the key, and for an empty pattern list", () => {
    expect(coveredByAny(["analytics", "marketing.advertising"], "marketing.communications")).toBe(false);
    expect(coveredByAny([], "marketing")).toBe(false);
  });
});

describe("covers properties", () => {
  const segment = fc.stringMatching(/^[a-z0-9_]{1,10}$/);
  const key = fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => parts.join("."));

  it("covers(p, p + '.' + x) holds for any key p and segment x", () => {
    fc.assert(
      fc.property(key, segment, (p, x) => {
        expect(covers(p, `${p}.${x}`)).toBe(true);
        expect(covers(`${p}.*`, `${p}.${x}`)).toBe(true);
      }),
    );
  });

  it("covers(p + '.' + x, p) never holds: a child never covers its parent", () => {
    fc.assert(
      fc.property(key, segment, (p, x) => {
        expect(covers(`${p}.${x}`, p)).toBe(false);
      }),
    );
  });

  it("covers(p, p + x) does not hold when x continues the last segment instead of starting a new one", () => {
    fc.assert(
      fc.property(key, segment, (p, x) => {
        expect(covers(p, p + x)).toBe(false);
      }),
    );
  });

  it("covers is reflexive and, between distinct keys, never holds in both directions", () => {
    fc.assert(
      fc.property(key, key, (a, b) => {
        expect(covers(a, a)).toBe(true);
        if (a !== b) expect(covers(a, b) && covers(b, a)).toBe(false);
      }),
    );
  });

  it("agrees with segment-wise prefix comparison for any two keys", () => {
    // Mix unrelated pairs with descendants and with keys that only share a string prefix.
    const pair = fc.oneof(
      fc.tuple(key, key),
      fc.tuple(key, fc.array(segment, { maxLength: 2 })).map(([a, ext]) => [a, [a, ...ext].join(".")] as const),
      fc.tuple(key, segment).map(([a, s]) => [a, a + s] as const),
      fc.tuple(key, segment).map(([a, s]) => [`${a}.${s}`, a] as const),
    );
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const as = a.split(".");
        const bs = b.split(".");
        const expected = as.length <= bs.length && as.every((s, i) => s === bs[i]);
        expect(covers(a, b)).toBe(expected);
      }),
    );
  });
});

describe("fideslang taxonomy", () => {
  it("loads the shipped file with its source and the expected numbers of entries", () => {
    expect(fides.source).toMatch(/^fideslang default taxonomy 3\.2\.0/);
    expect(fides.entries(TaxonomyKind.dataCategory)).toHaveLength(123);
    expect(fides.entries(TaxonomyKind.dataUse)).toHaveLength(56);
    expect(fides.entries(TaxonomyKind.dataSubject)).toHaveLength(15);
  });

  it.each([
    [TaxonomyKind.dataCategory, "user.contact.phone_number"],
    [TaxonomyKind.dataCategory, "user.contact.email"],
    [TaxonomyKind.dataCategory, "user.contact"],
    [TaxonomyKind.dataCategory, "user"],
    [TaxonomyKind.dataUse, "essential.service.security"],
    [TaxonomyKind.dataUse, "essential.service.authentication"],
    [TaxonomyKind.dataUse, "marketing.advertising.third_party.targeted"],
    [TaxonomyKind.dataUse, "marketing"],
    [TaxonomyKind.dataSubject, "customer"],
    [TaxonomyKind.dataSubject, "employee"],
  ])("has the %s key %s", (kind, key) => {
    expect(fides.has(kind, key)).toBe(true);
  });

  it("gives user.contact.phone_number its parent user.contact and name", () => {
    const entry = fides.entries(TaxonomyKind.dataCategory).find((e) => e.key === "user.contact.phone_number");
    expect(entry).toMatchObject({ key: "user.contact.phone_number", parent: "user.contact", name: "User Contact Phone Number" });
  });

  it.each([
    [TaxonomyKind.dataCategory, "user.contactless"],
    [TaxonomyKind.dataCategory, "user.contact.phone"],
    [TaxonomyKind.dataUse, "marketting"],
    [TaxonomyKind.dataUse, ""],
    [TaxonomyKind.dataSubject, "customers"],
  ])("rejects the unknown %s key '%s'", (kind, key) => {
    expect(fides.has(kind, key)).toBe(false);
  });

  it("keeps the kinds apart: a data use is not a data category and a data subject is not a data use", () => {
    expect(fides.has(TaxonomyKind.dataCategory, "marketing")).toBe(false);
    expect(fides.has(TaxonomyKind.dataUse, "customer")).toBe(false);
    expect(fides.has(TaxonomyKind.dataSubject, "user")).toBe(false);
  });

  it("accepts a key written with a trailing .* as the same key", () => {
    expect(fides.has(TaxonomyKind.dataCategory, "user.contact.*")).toBe(true);
    expect(fides.has(TaxonomyKind.dataUse, "marketing.*")).toBe(true);
    expect(fides.has(TaxonomyKind.dataUse, "marketting.*")).toBe(false);
  });

  it("has keys whose parent exists and is their dotted prefix, so covers() follows the real hierarchy", () => {
    const raw = JSON.parse(readFileSync(new URL("../../../schemas/taxonomy/fideslang.json", import.meta.url), "utf8")) as TaxonomyData;
    for (const [kind, entries] of [
      [TaxonomyKind.dataCategory, raw.dataCategories],
      [TaxonomyKind.dataUse, raw.dataUses],
      [TaxonomyKind.dataSubject, raw.dataSubjects],
    ] as const) {
      const keys = new Set(entries.map((e) => e.key));
      expect(keys.size).toBe(entries.length);
      for (const e of entries) {
        if (e.parent == null) {
          expect(e.key).not.toContain(".");
          continue;
        }
        expect(fides.has(kind, e.parent)).toBe(true);
        expect(e.key.slice(0, e.key.lastIndexOf("."))).toBe(e.parent);
        expect(covers(e.parent, e.key)).toBe(true);
      }
    }
  });
});

describe("suggest", () => {
  it("proposes 'marketing' for the misspelt data use 'marketting'", () => {
    expect(fides.suggest(TaxonomyKind.dataUse, "marketting")).toEqual(["marketing"]);
  });

  it("proposes 'customer' for the misspelt data subject 'custmer'", () => {
    expect(fides.suggest(TaxonomyKind.dataSubject, "custmer")).toEqual(["customer"]);
  });

  it("proposes 'essential.service.security' for 'essential.service.securty'", () => {
    expect(fides.suggest(TaxonomyKind.dataUse, "essential.service.securty")).toEqual(["essential.service.security"]);
  });

  it("proposes the full key for a truncated one (user.contact.phone -> user.contact.phone_number)", () => {
    expect(fides.suggest(TaxonomyKind.dataCategory, "user.contact.phone")).toEqual(["user.contact.phone_number"]);
  });

  it("orders suggestions best first and returns at most three", () => {
    expect(fides.suggest(TaxonomyKind.dataCategory, "user.contact.emial")).toEqual(["user.contact.email", "user.contact.url"]);
    expect(fides.suggest(TaxonomyKind.dataCategory, "user.contact.addres").length).toBeLessThanOrEqual(3);
    expect(fides.suggest(TaxonomyKind.dataCategory, "user.contact.addres")[0]).toBe("user.contact.address");
  });

  it("proposes nothing for a key far from every known one", () => {
    expect(fides.suggest(TaxonomyKind.dataUse, "zzzzzzzzzz")).toEqual([]);
  });

  it("only proposes keys of the kind asked for", () => {
    expect(fides.suggest(TaxonomyKind.dataCategory, "marketting")).toEqual([]);
    expect(fides.suggest(TaxonomyKind.dataSubject, "marketting")).toEqual([]);
  });
});

describe("createTaxonomy", () => {
  const data: TaxonomyData = {
    dataCategories: [
      { key: "pets", parent: null, name: "Pets" },
      { key: "pets.dog", parent: "pets", name: "Dogs" },
    ],
    dataUses: [{ key: "walks", name: "Walks" }],
    dataSubjects: [],
  };

  it("answers has() from the given data and calls an unnamed source 'custom taxonomy'", () => {
    const t = createTaxonomy(data);
    expect(t.source).toBe("custom taxonomy");
    expect(t.has(TaxonomyKind.dataCategory, "pets.dog")).toBe(true);
    expect(t.has(TaxonomyKind.dataCategory, "pets.cat")).toBe(false);
    expect(t.has(TaxonomyKind.dataUse, "walks")).toBe(true);
    expect(t.has(TaxonomyKind.dataSubject, "owner")).toBe(false);
  });

  it("returns the entries it was given, per kind", () => {
    const t = createTaxonomy({ ...data, source: "pets taxonomy" });
    expect(t.source).toBe("pets taxonomy");
    expect(t.entries(TaxonomyKind.dataCategory).map((e) => e.key)).toEqual(["pets", "pets.dog"]);
    expect(t.entries(TaxonomyKind.dataSubject)).toEqual([]);
  });

  it("suggests from its own keys", () => {
    expect(createTaxonomy(data).suggest(TaxonomyKind.dataCategory, "pets.dgo")).toEqual(["pets.dog"]);
  });
});
