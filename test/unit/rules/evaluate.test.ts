import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { TaxonomyKind, covers, loadFideslangTaxonomy } from "../../../services/taxonomy/index.ts";
import {
  DEFAULT_POLICY_PATH,
  createEvaluator,
  loadPolicy,
  parsePolicy,
  type Policy,
  type UseContext,
  type Verdict,
} from "../../../services/rules/index.ts";

const taxonomy = loadFideslangTaxonomy();

interface TestLabel {
  id: string;
  category: string;
  collectedFor: string[];
  dataSubject: string;
}

let nextLabel = 0;
function label(category: string, collectedFor: string[], dataSubject = "customer"): TestLabel {
  nextLabel += 1;
  return { id: `label-${nextLabel}`, category, collectedFor, dataSubject };
}

function use(over: Partial<UseContext> = {}): UseContext {
  return { kind: "USE", purposes: [], dataSubject: "customer", service: "web", recipient: null, ...over };
}

function policy(yaml: string): Policy {
  return parsePolicy(`version: 1\n${yaml}`, "test.yaml", taxonomy);
}

function evaluate(p: Policy, labels: TestLabel[], u: UseContext): Verdict<TestLabel>[] {
  return createEvaluator(p).evaluate(labels, u);
}

function ids(verdicts: Verdict<TestLabel>[]): string[] {
  return verdicts.map((v) => v.ruleId).sort();
}

const SECURITY = "essential.service.security";
const AUTHENTICATION = "essential.service.authentication";
const TARGETED = "marketing.advertising.third_party.targeted";
const PHONE = "user.contact.phone_number";
const EMAIL = "user.contact.email";

describe("default purpose limitation", () => {
  const p = policy("");

  it("allows a use for exactly the purpose the data was collected for", () => {
    expect(evaluate(p, [label(PHONE, [SECURITY])], use({ purposes: [SECURITY] }))).toEqual([]);
  });

  it("allows a use for a purpose below a collected purpose (marketing covers marketing.advertising.third_party.targeted)", () => {
    expect(evaluate(p, [label(EMAIL, ["marketing"])], use({ purposes: [TARGETED] }))).toEqual([]);
  });

  it("allows a use covered by any one of several collection purposes", () => {
    expect(
      evaluate(p, [label(EMAIL, [SECURITY, "marketing.communications"])], use({ purposes: ["marketing.communications.email"] })),
    ).toEqual([]);
  });

  it("flags a phone number collected for security and used for targeted advertising, with the default id, severity and mode", () => {
    const phone = label(PHONE, [SECURITY]);
    expect(evaluate(p, [phone], use({ purposes: [TARGETED] }))).toEqual([
      {
        ruleId: "purpose-limitation",
        severity: "high",
        mode: "enforce",
        basis: "purpose-limitation",
        labels: [phone],
        purposes: [TARGETED],
        reason: `${PHONE} collected for ${SECURITY} used for ${TARGETED}`,
      },
    ]);
  });

  it("flags a use for a broader purpose than the one collected for (marketing.advertising does not cover marketing)", () => {
    const v = evaluate(p, [label(EMAIL, ["marketing.advertising"])], use({ purposes: ["marketing"] }));
    expect(ids(v)).toEqual(["purpose-limitation"]);
    expect(v[0]?.purposes).toEqual(["marketing"]);
  });

  it("flags a sibling purpose (collected for security, used for authentication) when nothing declares them compatible", () => {
    expect(ids(evaluate(p, [label(PHONE, [SECURITY])], use({ purposes: [AUTHENTICATION] })))).toEqual(["purpose-limitation"]);
  });

  it("flags data that has no collection purpose at all", () => {
    expect(ids(evaluate(p, [label(PHONE, [])], use({ purposes: ["analytics"] })))).toEqual(["purpose-limitation"]);
  });

  it("lists only the purposes of the use that break the rule", () => {
    const v = evaluate(p, [label(PHONE, [SECURITY])], use({ purposes: [SECURITY, "analytics.reporting", TARGETED] }));
    expect(v).toHaveLength(1);
    expect(v[0]?.purposes).toEqual(["analytics.reporting", TARGETED]);
  });

  it("returns nothing when there are no labels", () => {
    expect(evaluate(p, [], use({ purposes: [TARGETED] }))).toEqual([]);
  });

  it("uses the id, severity and mode given in the purposeLimitation block", () => {
    const custom = policy("purposeLimitation:\n  id: pl-custom\n  severity: low\n  mode: shadow\n");
    const v = evaluate(custom, [label(PHONE, [SECURITY])], use({ purposes: [TARGETED] }));
    expect(v).toHaveLength(1);
    expect(v[0]).toMatchObject({ ruleId: "pl-custom", severity: "low", mode: "shadow", basis: "purpose-limitation" });
  });

  it("flags a use exactly when no collection purpose covers the use's purpose (property over fideslang data uses)", () => {
    const uses = taxonomy.entries(TaxonomyKind.dataUse).map((e) => e.key);
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...uses), { maxLength: 3 }), fc.constantFrom(...uses), (collected, purpose) => {
        const v = evaluate(p, [label(EMAIL, collected)], use({ purposes: [purpose] }));
        const allowed = collected.some((c) => covers(c, purpose));
        expect(ids(v)).toEqual(allowed ? [] : ["purpose-limitation"]);
      }),
    );
  });
});

describe("compatible purposes", () => {
  const p = policy(
    [
      "compatible:",
      "  - id: service-for-fraud",
      "    collectedFor: [essential.service]",
      "    usedFor: [essential.fraud_detection]",
      "  - id: security-for-ads-reporting",
      "    collectedFor: [essential.service.security]",
      "    usedFor: [analytics.reporting]",
      "",
    ].join("\n"),
  );

  it("allows a use declared compatible with the collection purpose, including a collection purpose below the declared one", () => {
    expect(evaluate(p, [label(PHONE, ["essential.service"])], use({ purposes: ["essential.fraud_detection"] }))).toEqual([]);
    expect(evaluate(p, [label(PHONE, [SECURITY])], use({ purposes: ["essential.fraud_detection"] }))).toEqual([]);
  });

  it("allows a use below a purpose declared compatible (analytics.reporting covers analytics.reporting.ad_performance)", () => {
    expect(evaluate(p, [label(PHONE, [SECURITY])], use({ purposes: ["analytics.reporting.ad_performance"] }))).toEqual([]);
  });

  it("applies only in the declared direction: data collected for fraud detection may not be used to run the service", () => {
    expect(ids(evaluate(p, [label(PHONE, ["essential.fraud_detection"])], use({ purposes: ["essential.service"] })))).toEqual([
      "purpose-limitation",
    ]);
  });

  it("does not extend to data collected for a broader purpose than the declared one", () => {
    // security-for-ads-reporting covers data collected for essential.service.security, not all of essential.service.
    expect(ids(evaluate(p, [label(PHONE, ["essential.service"])], use({ purposes: ["analytics.reporting"] })))).toEqual([
      "purpose-limitation",
    ]);
  });

  it("does not extend to purposes outside the declared ones", () => {
    expect(ids(evaluate(p, [label(PHONE, [SECURITY])], use({ purposes: ["analytics"] })))).toEqual(["purpose-limitation"]);
  });
});

describe("deny rules", () => {
  const defaults = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);

  it("flags a phone number collected for security and used for targeted advertising under the shipped policy (deny and purpose limitation)", () => {
    const phone = label(PHONE, [SECURITY]);
    const v = evaluate(defaults, [phone], use({ purposes: [TARGETED], service: "ads-sync" }));
    expect(ids(v)).toEqual(["purpose-limitation", "security-contact-not-for-marketing"]);
    expect(v.find((x) => x.ruleId === "security-contact-not-for-marketing")).toEqual({
      ruleId: "security-contact-not-for-marketing",
      severity: "critical",
      mode: "enforce",
      basis: "deny",
      labels: [phone],
      purposes: [TARGETED],
      reason: `${PHONE} collected for ${SECURITY} used for ${TARGETED}`,
    });
  });

  it("flags contact data even when it was also collected for marketing, so the use passes purpose limitation (deny beats allow)", () => {
    const email = label(EMAIL, [AUTHENTICATION, "marketing"]);
    const v = evaluate(defaults, [email], use({ purposes: [TARGETED] }));
    expect(ids(v)).toEqual(["security-contact-not-for-marketing"]);
    expect(v[0]?.basis).toBe("deny");
  });

  it("does not flag contact data collected for security when it is used for security", () => {
    expect(evaluate(defaults, [label(PHONE, [SECURITY])], use({ purposes: [SECURITY] }))).toEqual([]);
  });

  it("lets the shipped compatible entry allow security data for authentication", () => {
    expect(evaluate(defaults, [label(PHONE, [SECURITY])], use({ purposes: [AUTHENTICATION] }))).toEqual([]);
  });

  it("does not apply the contact rule to a category outside user.contact", () => {
    const v = evaluate(defaults, [label("user.account.username", [SECURITY, "marketing"])], use({ purposes: [TARGETED] }));
    expect(v).toEqual([]);
  });

  it("flags a use that an allow rule also matches: deny wins over allow", () => {
    const p = policy(
      [
        "rules:",
        "  - id: allow-contact-for-ads",
        "    effect: allow",
        "    match: {categories: [user.contact], usedFor: [marketing]}",
        "  - id: no-third-party-ads",
        "    effect: deny",
        "    match: {usedFor: [marketing.advertising.third_party]}",
        "",
      ].join("\n"),
    );
    const v = evaluate(p, [label(PHONE, [SECURITY])], use({ purposes: [TARGETED] }));
    expect(ids(v)).toEqual(["no-third-party-ads"]);
    expect(v[0]).toMatchObject({ basis: "deny", severity: "high", mode: "enforce" });
  });

  it("carries the rule's severity into the verdict", () => {
    const p = policy("rules:\n  - id: low-rule\n    effect: deny\n    severity: low\n    match: {usedFor: [analytics]}\n");
    const v = evaluate(p, [label(EMAIL, ["analytics"])], use({ purposes: ["analytics.reporting"] }));
    expect(v).toHaveLength(1);
    expect(v[0]).toMatchObject({ ruleId: "low-rule", severity: "low", mode: "enforce", basis: "deny" });
  });

  it("reports a shadow-mode rule's match with mode 'shadow'", () => {
    const v = evaluate(defaults, [label("user.authorization.credentials", ["analytics"])], use({ purposes: ["analytics"] }));
    expect(v).toHaveLength(1);
    expect(v[0]).toMatchObject({ ruleId: "credentials-never-for-analytics", mode: "shadow", severity: "medium", basis: "deny" });
  });
});

describe("allow rules", () => {
  const p = policy(
    [
      "rules:",
      "  - id: newsletter-ok",
      "    effect: allow",
      "    match: {categories: [user.contact.email], usedFor: [marketing.communications]}",
      "  - id: no-sms-marketing",
      "    effect: deny",
      "    match: {usedFor: [marketing.communications.sms]}",
      "",
    ].join("\n"),
  );

  it("exempts a matching use from purpose limitation", () => {
    expect(evaluate(p, [label(EMAIL, [SECURITY])], use({ purposes: ["marketing.communications.email"] }))).toEqual([]);
  });

  it("does not exempt a category the allow rule does not name", () => {
    expect(ids(evaluate(p, [label(PHONE, [SECURITY])], use({ purposes: ["marketing.communications.email"] })))).toEqual([
      "purpose-limitation",
    ]);
  });

  it("does not exempt from a deny rule: the deny is still reported, purpose limitation is not", () => {
    const v = evaluate(p, [label(EMAIL, [SECURITY])], use({ purposes: ["marketing.communications.sms"] }));
    expect(ids(v)).toEqual(["no-sms-marketing"]);
  });

  it("exempts purpose by purpose: an allowed purpose and a disallowed one in the same use", () => {
    const v = evaluate(p, [label(EMAIL, [SECURITY])], use({ purposes: ["marketing.communications.email", "analytics"] }));
    expect(ids(v)).toEqual(["purpose-limitation"]);
    expect(v[0]?.purposes).toEqual(["analytics"]);
  });
});

describe("match filters", () => {
  // Every use below is within the collection purpose, so only the rule under test can produce a verdict.
  const within = { purposes: [SECURITY] };
  const security = (category = PHONE, subject = "customer") => label(category, [SECURITY], subject);

  describe("recipients", () => {
    const external = policy(
      "rules:\n  - id: ext\n    effect: deny\n    match: {collectedFor: [essential.service.security], recipients: external}\n",
    );
    const internal = policy(
      "rules:\n  - id: int\n    effect: deny\n    match: {collectedFor: [essential.service.security], recipients: internal}\n",
    );
    const anyone = policy(
      "rules:\n  - id: any\n    effect: deny\n    match: {collectedFor: [essential.service.security], recipients: any}\n",
    );
    const partner = { name: "ad-partner", external: true };
    const team = { name: "fraud-team", external: false };

    it("external matches a SHARE to an external recipient", () => {
      expect(ids(evaluate(external, [security()], use({ ...within, kind: "SHARE", recipient: partner })))).toEqual(["ext"]);
    });

    it("external does not match a SHARE to an internal recipient, a SHARE without recipient, or a USE", () => {
      expect(evaluate(external, [security()], use({ ...within, kind: "SHARE", recipient: team }))).toEqual([]);
      expect(evaluate(external, [security()], use({ ...within, kind: "SHARE", recipient: null }))).toEqual([]);
      expect(evaluate(external, [security()], use({ ...within, kind: "USE", recipient: null }))).toEqual([]);
    });

    it("internal matches only a SHARE to an internal recipient", () => {
      expect(ids(evaluate(internal, [security()], use({ ...within, kind: "SHARE", recipient: team })))).toEqual(["int"]);
      expect(evaluate(internal, [security()], use({ ...within, kind: "SHARE", recipient: partner }))).toEqual([]);
      expect(evaluate(internal, [security()], use({ ...within, kind: "USE" }))).toEqual([]);
    });

    it("any matches USEs and SHAREs alike", () => {
      expect(ids(evaluate(anyone, [security()], use({ ...within, kind: "USE" })))).toEqual(["any"]);
      expect(ids(evaluate(anyone, [security()], use({ ...within, kind: "SHARE", recipient: partner })))).toEqual(["any"]);
    });

    it("the shipped security-data-not-shared-externally rule flags an external SHARE of security data for security", () => {
      const defaults = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);
      const v = evaluate(defaults, [security()], use({ ...within, kind: "SHARE", recipient: partner }));
      expect(ids(v)).toEqual(["security-data-not-shared-externally"]);
      expect(v[0]?.reason).toBe(`${PHONE} collected for ${SECURITY} shared externally for ${SECURITY}`);
      expect(evaluate(defaults, [security()], use({ ...within, kind: "SHARE", recipient: team }))).toEqual([]);
    });
  });

  describe("kinds", () => {
    const p = policy("rules:\n  - id: no-share\n    effect: deny\n    match: {categories: [user.contact], kinds: [SHARE]}\n");

    it("a kinds: [SHARE] rule flags a SHARE and not a USE", () => {
      expect(ids(evaluate(p, [security()], use({ ...within, kind: "SHARE", recipient: { name: "x", external: false } })))).toEqual([
        "no-share",
      ]);
      expect(evaluate(p, [security()], use({ ...within, kind: "USE" }))).toEqual([]);
    });
  });

  describe("subjects", () => {
    const p = policy("rules:\n  - id: employees\n    effect: deny\n    match: {subjects: [employee]}\n");

    it("flags labels about the named data subject", () => {
      expect(ids(evaluate(p, [security(PHONE, "employee")], use({ ...within, dataSubject: "employee" })))).toEqual(["employees"]);
    });

    it("does not flag data about another subject", () => {
      expect(evaluate(p, [security(PHONE, "customer")], use({ ...within, dataSubject: "customer" }))).toEqual([]);
    });
  });

  describe("services", () => {
    const p = policy("rules:\n  - id: ads-service\n    effect: deny\n    match: {services: [ads-sync]}\n");

    it("flags a use by a listed service", () => {
      expect(ids(evaluate(p, [security()], use({ ...within, service: "ads-sync" })))).toEqual(["ads-service"]);
    });

    it("compares service names exactly", () => {
      expect(evaluate(p, [security()], use({ ...within, service: "ads-sync-v2" }))).toEqual([]);
      expect(evaluate(p, [security()], use({ ...within, service: "ads" }))).toEqual([]);
    });
  });

  describe("categories and collectedFor", () => {
    const p = policy("rules:\n  - id: r\n    effect: deny\n    match: {categories: [user.contact.*], collectedFor: [essential.service]}\n");

    it("match subtrees of the label's category and of any of its collection purposes", () => {
      expect(ids(evaluate(p, [label(EMAIL, ["analytics", SECURITY])], use({ purposes: ["analytics"] })))).toEqual(["r"]);
    });

    it("do not match when either list misses", () => {
      expect(evaluate(p, [label("user.account.username", [SECURITY])], use(within))).toEqual([]);
      expect(evaluate(p, [label(EMAIL, ["analytics"])], use({ purposes: ["analytics"] }))).toEqual([]);
    });
  });
});

describe("verdicts", () => {
  const defaults = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);

  it("gives one verdict per rule listing every label that broke it, and leaves out labels that did not", () => {
    const phone = label(PHONE, [SECURITY]);
    const email = label(EMAIL, [AUTHENTICATION]);
    const username = label("user.account.username", ["marketing"]);
    const v = evaluate(defaults, [phone, email, username], use({ purposes: [TARGETED] }));
    expect(ids(v)).toEqual(["purpose-limitation", "security-contact-not-for-marketing"]);
    const deny = v.find((x) => x.ruleId === "security-contact-not-for-marketing");
    expect(deny?.labels).toHaveLength(2);
    expect(deny?.labels[0]).toBe(phone);
    expect(deny?.labels[1]).toBe(email);
    expect(deny?.purposes).toEqual([TARGETED]);
    expect(deny?.reason).toBe(`${EMAIL}, ${PHONE} collected for ${AUTHENTICATION}, ${SECURITY} used for ${TARGETED}`);
    const pl = v.find((x) => x.ruleId === "purpose-limitation");
    expect(pl?.labels).toEqual([phone, email]);
  });

  it("keeps the caller's label objects, with their extra fields", () => {
    const phone = label(PHONE, [SECURITY]);
    const [v] = evaluate(policy(""), [phone], use({ purposes: ["analytics"] }));
    expect(v?.labels[0]).toBe(phone);
    expect(v?.labels[0]?.id).toBe(phone.id);
  });

  it("names each purpose once even when several labels break the rule for it", () => {
    const v = evaluate(policy(""), [label(PHONE, [SECURITY]), label(EMAIL, [SECURITY])], use({ purposes: ["analytics", TARGETED] }));
    expect(v).toHaveLength(1);
    expect(v[0]?.purposes).toEqual(["analytics", TARGETED]);
    expect(v[0]?.reason).toBe(`${EMAIL}, ${PHONE} collected for ${SECURITY} used for analytics, ${TARGETED}`);
  });

  it("writes 'shared for' for an internal SHARE and 'shared externally for' for an external one", () => {
    const p = policy("");
    const internal = evaluate(
      p,
      [label(PHONE, [SECURITY])],
      use({ kind: "SHARE", purposes: ["analytics"], recipient: { name: "bi", external: false } }),
    );
    expect(internal[0]?.reason).toBe(`${PHONE} collected for ${SECURITY} shared for analytics`);
    const external = evaluate(
      p,
      [label(PHONE, [SECURITY])],
      use({ kind: "SHARE", purposes: ["analytics"], recipient: { name: "vendor", external: true } }),
    );
    expect(external[0]?.reason).toBe(`${PHONE} collected for ${SECURITY} shared externally for analytics`);
  });

  it("keeps reasons to categories and purposes: no service, recipient name or subject appears", () => {
    const [v] = evaluate(
      policy(""),
      [label(PHONE, [SECURITY], "customer")],
      use({ kind: "SHARE", purposes: ["analytics"], service: "secret-service", recipient: { name: "acme-data-broker", external: true } }),
    );
    expect(v?.reason).not.toContain("secret-service");
    expect(v?.reason).not.toContain("acme-data-broker");
    expect(v?.reason).not.toContain("customer");
  });
});

describe("purposeLimitation.enabled: false", () => {
  const off = policy(
    [
      "purposeLimitation:",
      "  enabled: false",
      "rules:",
      "  - id: no-targeting",
      "    effect: deny",
      "    match: {usedFor: [marketing.advertising]}",
      "",
    ].join("\n"),
  );

  it("turns the default principle off: a use outside the collected purposes is not flagged", () => {
    expect(evaluate(off, [label(PHONE, [SECURITY])], use({ purposes: ["analytics"] }))).toEqual([]);
  });

  it("still applies deny rules", () => {
    const v = evaluate(off, [label(PHONE, [SECURITY])], use({ purposes: [TARGETED] }));
    expect(ids(v)).toEqual(["no-targeting"]);
  });
});

describe("shadow allow rules", () => {
  it("do not exempt a use from purpose limitation while they are only being tried out", () => {
    const rules = (mode: string) =>
      policy(`rules:\n  - id: try-allow\n    effect: allow\n    mode: ${mode}\n    match:\n      usedFor: [${TARGETED}]\n`);
    const labels = [label(PHONE, [SECURITY])];
    expect(ids(evaluate(rules("shadow"), labels, use({ purposes: [TARGETED] })))).toEqual(["purpose-limitation"]);
    expect(ids(evaluate(rules("enforce"), labels, use({ purposes: [TARGETED] })))).toEqual([]);
  });
});
