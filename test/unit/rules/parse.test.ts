import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadFideslangTaxonomy } from "../../../services/taxonomy/index.ts";
import { DEFAULT_POLICY_PATH, loadPolicy, parsePolicy, type Policy } from "../../../services/rules/index.ts";
import { RuleError } from "../../../services/errors/index.ts";

const taxonomy = loadFideslangTaxonomy();
const FILE = "policy.yaml";

function parse(text: string): Policy {
  return parsePolicy(text, FILE, taxonomy);
}

function ruleErrorOf(text: string): RuleError {
  try {
    parse(text);
  } catch (e) {
    expect(e).toBeInstanceOf(RuleError);
    return e as RuleError;
  }
  throw new Error("expected a RuleError, the policy parsed");
}

/** 1-based `line:column` of the `nth` (0-based) occurrence of `needle` in `text`. */
function at(text: string, needle: string, nth = 0): string {
  let index = -1;
  for (let i = 0; i <= nth; i++) {
    index = text.indexOf(needle, index + 1);
    if (index < 0) throw new Error(`'${needle}' occurs fewer than ${nth + 1} times`);
  }
  const before = text.slice(0, index).split("\n");
  return `${before.length}:${(before[before.length - 1] as string).length + 1}`;
}

/** Asserts the whole message and that the context carries the same file, line and column. */
function expectError(text: string, message: string): RuleError {
  const err = ruleErrorOf(text);
  expect(err.message).toBe(message);
  const [file, line, column] = message.split(":");
  expect(err.context["file"]).toBe(file);
  expect(err.context["line"]).toBe(Number(line));
  expect(err.context["column"]).toBe(Number(column));
  expect(err.code).toBe("RULE");
  return err;
}

/** A rules file with one deny rule whose match block is `matchLines` (indented 6 spaces). */
function ruleWithMatch(matchLines: string): string {
  return `version: 1\nrules:\n  - id: r1\n    effect: deny\n    match:\n${matchLines}`;
}

describe("the shipped default policy", () => {
  const policy = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);

  it("parses and contains the deny rule security-contact-not-for-marketing for contact data collected for security used for marketing", () => {
    const rule = policy.rules.find((r) => r.id === "security-contact-not-for-marketing");
    expect(rule).toEqual({
      id: "security-contact-not-for-marketing",
      description: "Contact data collected for account security or authentication must never be used for marketing or advertising.",
      effect: "deny",
      severity: "critical",
      mode: "enforce",
      match: {
        categories: ["user.contact.*"],
        collectedFor: ["essential.service.security", "essential.service.authentication"],
        usedFor: ["marketing.*"],
      },
    });
  });

  it("enables purpose limitation at high severity in enforce mode", () => {
    expect(policy.purposeLimitation).toEqual({ enabled: true, id: "purpose-limitation", severity: "high", mode: "enforce" });
  });

  it("lists its rules, compatibility entries and declassifications in file order", () => {
    expect(policy.rules.map((r) => r.id)).toEqual([
      "security-contact-not-for-marketing",
      "security-data-not-shared-externally",
      "credentials-never-for-analytics",
    ]);
    expect(policy.compatible.map((c) => c.id)).toEqual(["security-for-authentication", "service-data-for-fraud-and-security"]);
    expect(policy.declassify).toEqual([
      { id: "anonymised-aggregates", transforms: ["AGGREGATE"], masking: ["ANONYMISED"], categories: ["user"], action: { drop: true } },
    ]);
    expect(policy.unknownProvenance).toEqual({ severity: "medium" });
  });

  it("keeps the external-share rule restricted to SHAREs to external recipients and the analytics rule in shadow mode", () => {
    const share = policy.rules.find((r) => r.id === "security-data-not-shared-externally");
    expect(share?.match).toEqual({
      collectedFor: ["essential.service.security", "essential.service.authentication"],
      kinds: ["SHARE"],
      recipients: "external",
    });
    expect(share?.mode).toBe("enforce");
    const shadow = policy.rules.find((r) => r.id === "credentials-never-for-analytics");
    expect(shadow?.mode).toBe("shadow");
    expect(shadow?.severity).toBe("medium");
  });

  it("names the file it came from as its source", () => {
    expect(policy.source).toBe(DEFAULT_POLICY_PATH);
    expect(parsePolicy(readFileSync(DEFAULT_POLICY_PATH, "utf8"), "default.yaml", taxonomy).source).toBe("default.yaml");
  });

  it("reports a rules file that cannot be read as a RuleError naming the path and the error code", () => {
    const missing = "/nonexistent/rules.yaml";
    expect(() => loadPolicy(missing, taxonomy)).toThrow(RuleError);
    expect(() => loadPolicy(missing, taxonomy)).toThrow(`${missing}: cannot read rules file (ENOENT)`);
  });
});

describe("parsing valid policies", () => {
  it("fills in defaults: purpose limitation on, rule severity high, mode enforce, empty description and lists", () => {
    const policy = parse("version: 1\nrules:\n  - id: r1\n    effect: allow\n    match:\n      usedFor: analytics\n");
    expect(policy).toEqual({
      source: FILE,
      purposeLimitation: { enabled: true, id: "purpose-limitation", severity: "high", mode: "enforce" },
      compatible: [],
      rules: [{ id: "r1", description: "", effect: "allow", severity: "high", mode: "enforce", match: { usedFor: ["analytics"] } }],
      declassify: [],
      unknownProvenance: { severity: "medium" },
      locations: { r1: { line: 3, column: 5 } },
    });
  });

  it("reads every match key, accepting a single string for a one-element list", () => {
    const policy = parse(
      ruleWithMatch(
        [
          "      categories: [user.contact.email, user.contact.phone_number]",
          "      collectedFor: essential.service",
          "      usedFor: ['*']",
          "      subjects: [customer, employee]",
          "      kinds: [SHARE]",
          "      recipients: internal",
          "      services: [crm, ads-sync]",
          "",
        ].join("\n"),
      ),
    );
    expect(policy.rules[0]?.match).toEqual({
      categories: ["user.contact.email", "user.contact.phone_number"],
      collectedFor: ["essential.service"],
      usedFor: ["*"],
      subjects: ["customer", "employee"],
      kinds: ["SHARE"],
      recipients: "internal",
      services: ["crm", "ads-sync"],
    });
  });

  it("reads a custom purpose limitation block and a reclassifying declassification", () => {
    const policy = parse(
      [
        "version: 1",
        "purposeLimitation:",
        "  enabled: false",
        "  id: pl",
        "  severity: low",
        "  mode: shadow",
        "declassify:",
        "  - id: hashed-email",
        "    transforms: HASH",
        "    masking: [MASKED, ANONYMISED]",
        "    categories: [user.contact.email]",
        "    reclassifyTo: user.unique_id.pseudonymous",
        "unknownProvenance:",
        "  severity: critical",
        "",
      ].join("\n"),
    );
    expect(policy.purposeLimitation).toEqual({ enabled: false, id: "pl", severity: "low", mode: "shadow" });
    expect(policy.declassify).toEqual([
      {
        id: "hashed-email",
        transforms: ["HASH"],
        masking: ["MASKED", "ANONYMISED"],
        categories: ["user.contact.email"],
        action: { reclassifyTo: "user.unique_id.pseudonymous" },
      },
    ]);
    expect(policy.unknownProvenance).toEqual({ severity: "critical" });
  });

  it("accepts JSON input, since JSON is YAML, and reads it the same as the equivalent YAML", () => {
    const json = JSON.stringify({
      version: 1,
      compatible: [{ id: "c1", collectedFor: ["essential.service"], usedFor: ["essential.fraud_detection"] }],
      rules: [{ id: "r1", effect: "deny", severity: "low", mode: "shadow", match: { usedFor: "marketing", recipients: "external" } }],
    });
    const yaml = [
      "version: 1",
      "compatible:",
      "  - id: c1",
      "    collectedFor: [essential.service]",
      "    usedFor: [essential.fraud_detection]",
      "rules:",
      "  - id: r1",
      "    effect: deny",
      "    severity: low",
      "    mode: shadow",
      "    match:",
      "      usedFor: marketing",
      "      recipients: external",
      "",
    ].join("\n");
    const fromJson = parse(json);
    // The same policy; only where each rule starts in its file differs.
    expect({ ...fromJson, locations: undefined }).toEqual({ ...parse(yaml), locations: undefined });
    expect(Object.keys(fromJson.locations ?? {})).toEqual(Object.keys(parse(yaml).locations ?? {}));
    expect(fromJson.rules[0]).toEqual({
      id: "r1",
      description: "",
      effect: "deny",
      severity: "low",
      mode: "shadow",
      match: { usedFor: ["marketing"], recipients: "external" },
    });
    expect(fromJson.compatible).toEqual([{ id: "c1", collectedFor: ["essential.service"], usedFor: ["essential.fraud_detection"] }]);
  });

  it("accepts pretty-printed JSON of the default policy", () => {
    const yamlPolicy = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);
    const asJson = JSON.stringify(
      {
        version: 1,
        rules: yamlPolicy.rules.map((r) => ({
          id: r.id,
          description: r.description,
          effect: r.effect,
          severity: r.severity,
          mode: r.mode,
          match: r.match,
        })),
      },
      null,
      2,
    );
    expect(parse(asJson).rules).toEqual(yamlPolicy.rules);
  });
});

describe("errors name file, line, column and the problem", () => {
  it("reports invalid YAML at the position of the first syntax error", () => {
    const err = ruleErrorOf("version: 1\nrules: [\n  - id: x\n");
    expect(err.message).toMatch(/^policy\.yaml:3:3: not valid YAML\/JSON: \S/);
    expect(err.context).toEqual({ file: FILE, line: 3, column: 3 });
  });

  it("reports a duplicate key as invalid YAML at the second occurrence", () => {
    expectError("version: 1\nversion: 1\n", "policy.yaml:2:1: not valid YAML/JSON: Map keys must be unique");
  });

  it("reports invalid JSON as invalid YAML/JSON with its line", () => {
    const err = ruleErrorOf('{\n  "version": 1,\n  "rules": [\n}\n');
    expect(err.message).toMatch(/^policy\.yaml:4:\d+: not valid YAML\/JSON: /);
  });

  it("rejects version 2, pointing at the value", () => {
    const text = "version: 2\n";
    expectError(text, `policy.yaml:${at(text, "2")}: version: must be 1 (the only rules format version so far)`);
  });

  it("rejects the version written as a string '1'", () => {
    expectError("version: '1'\n", "policy.yaml:1:10: version: must be 1 (the only rules format version so far)");
  });

  it("rejects a missing version, pointing at the start of the document", () => {
    expectError("rules: []\n", "policy.yaml:1:1: version: must be 1 (the only rules format version so far)");
  });

  it("rejects an empty document as not a mapping", () => {
    expectError("", "policy.yaml:1:1: must be a mapping");
  });

  it("rejects an unknown top-level key, pointing at the key's own line", () => {
    const text = "version: 1\n\n# a comment\nrulez: []\n";
    expectError(
      text,
      `policy.yaml:4:1: rulez: unknown key 'rulez' (expected one of: version, purposeLimitation, compatible, rules, declassify, unknownProvenance)`,
    );
  });

  it("rejects an unknown key inside a rule and inside match, naming their paths", () => {
    const inRule = "version: 1\nrules:\n  - id: r1\n    effect: deny\n    priority: 1\n    match: {kinds: [USE]}\n";
    expectError(
      inRule,
      `policy.yaml:${at(inRule, "priority")}: rules[0].priority: unknown key 'priority' (expected one of: id, description, effect, severity, mode, match)`,
    );
    const inMatch = ruleWithMatch("      kinds: [USE]\n      purposes: [marketing]\n");
    expectError(
      inMatch,
      `policy.yaml:${at(inMatch, "purposes")}: rules[0].match.purposes: unknown key 'purposes' (expected one of: categories, collectedFor, usedFor, subjects, kinds, recipients, services)`,
    );
  });

  it("rejects an unknown data use with a did-you-mean suggestion (marketting -> marketing)", () => {
    const text = ruleWithMatch("      usedFor: [analytics, marketting]\n");
    expectError(
      text,
      `policy.yaml:${at(text, "marketting")}: rules[0].match.usedFor[1]: unknown data use 'marketting' (did you mean 'marketing'?)`,
    );
  });

  it("rejects an unknown data use written with .* and suggests from the key without it", () => {
    const text = ruleWithMatch("      usedFor: [marketting.*]\n");
    expectError(text, `policy.yaml:6:17: rules[0].match.usedFor[0]: unknown data use 'marketting.*' (did you mean 'marketing'?)`);
  });

  it("rejects an unknown data category, without a suggestion when no key is close", () => {
    const text = ruleWithMatch("      categories: [user.contact.xyzzy]\n");
    expectError(
      text,
      `policy.yaml:${at(text, "user.contact.xyzzy")}: rules[0].match.categories[0]: unknown data category 'user.contact.xyzzy'`,
    );
  });

  it("rejects a truncated data category and suggests the full key", () => {
    const text = ruleWithMatch("      categories: [user.contact.phone]\n");
    expectError(
      text,
      `policy.yaml:6:20: rules[0].match.categories[0]: unknown data category 'user.contact.phone' (did you mean 'user.contact.phone_number'?)`,
    );
  });

  it("rejects a data use given where a category is expected (marketing is no data category)", () => {
    const text = ruleWithMatch("      categories: [marketing]\n");
    expect(ruleErrorOf(text).message).toMatch(/^policy\.yaml:6:20: rules\[0\]\.match\.categories\[0\]: unknown data category 'marketing'/);
  });

  it("rejects an unknown data subject with a suggestion (customr -> customer)", () => {
    const text = ruleWithMatch("      subjects: [customr]\n");
    expectError(
      text,
      `policy.yaml:${at(text, "customr")}: rules[0].match.subjects[0]: unknown data subject 'customr' (did you mean 'customer'?)`,
    );
  });

  it("rejects an unknown data use in a compatible entry", () => {
    const text = "version: 1\ncompatible:\n  - id: c1\n    collectedFor: [essential.service]\n    usedFor: [fraud]\n";
    expectError(text, `policy.yaml:${at(text, "fraud")}: compatible[0].usedFor[0]: unknown data use 'fraud'`);
  });

  it("rejects a compatible entry without usedFor, pointing at the entry", () => {
    expectError(
      "version: 1\ncompatible:\n  - id: c1\n    collectedFor: [essential.service]\n",
      "policy.yaml:3:5: compatible[0].usedFor: is required",
    );
  });

  it("rejects a duplicate rule id, naming where the first one is", () => {
    const text =
      "version: 1\nrules:\n  - id: r1\n    effect: deny\n    match: {kinds: [USE]}\n  - id: r1\n    effect: deny\n    match: {kinds: [USE]}\n";
    expectError(text, `policy.yaml:${at(text, "r1", 1)}: rules[1].id: duplicate id 'r1' (also at rules[0].id)`);
  });

  it("rejects a rule id that repeats a compatible entry's id", () => {
    const text =
      "version: 1\ncompatible:\n  - id: same\n    collectedFor: [essential]\n    usedFor: [analytics]\nrules:\n  - id: same\n    effect: deny\n    match: {kinds: [USE]}\n";
    expectError(text, `policy.yaml:${at(text, "same", 1)}: rules[0].id: duplicate id 'same' (also at compatible[0].id)`);
  });

  it("rejects a rule id equal to the purpose limitation id", () => {
    const text = "version: 1\nrules:\n  - id: purpose-limitation\n    effect: deny\n    match: {kinds: [USE]}\n";
    expectError(text, "policy.yaml:3:9: rules[0].id: duplicate id 'purpose-limitation' (also at purposeLimitation.id)");
  });

  it("rejects a rule id with spaces", () => {
    expectError(
      "version: 1\nrules:\n  - id: 'bad id'\n    effect: deny\n    match: {kinds: [USE]}\n",
      "policy.yaml:3:9: rules[0].id: must be letters, digits, '.', '_' or '-'",
    );
  });

  it("rejects a rule without match, pointing at the rule", () => {
    expectError(
      "version: 1\nrules:\n  - id: r1\n    effect: deny\n",
      "policy.yaml:3:5: rules[0].match: is required (say what the rule matches)",
    );
  });

  it("rejects an empty match, pointing at the match value", () => {
    const text = "version: 1\nrules:\n  - id: r1\n    effect: deny\n    match: {}\n";
    expectError(
      text,
      `policy.yaml:${at(text, "{}")}: rules[0].match: must name at least one of categories, collectedFor, usedFor, subjects, kinds, recipients, services`,
    );
  });

  it("rejects a match that is not a mapping", () => {
    expectError(
      "version: 1\nrules:\n  - id: r1\n    effect: deny\n    match: [USE]\n",
      "policy.yaml:5:12: rules[0].match: must be a mapping",
    );
  });

  it("rejects an effect other than deny or allow", () => {
    const text = "version: 1\nrules:\n  - id: r1\n    effect: permit\n    match: {kinds: [USE]}\n";
    expectError(text, `policy.yaml:${at(text, "permit")}: rules[0].effect: must be deny or allow`);
  });

  it("rejects a missing effect, pointing at the rule", () => {
    expectError("version: 1\nrules:\n  - id: r1\n    match: {kinds: [USE]}\n", "policy.yaml:3:5: rules[0].effect: must be deny or allow");
  });

  it("rejects an unknown severity, listing the severities", () => {
    const text = "version: 1\nrules:\n  - id: r1\n    effect: deny\n    severity: urgent\n    match: {kinds: [USE]}\n";
    expectError(text, `policy.yaml:${at(text, "urgent")}: rules[0].severity: must be one of info, low, medium, high, critical`);
  });

  it("rejects an unknown mode, listing enforce and shadow", () => {
    const text = "version: 1\nrules:\n  - id: r1\n    effect: deny\n    mode: dry-run\n    match: {kinds: [USE]}\n";
    expectError(text, `policy.yaml:${at(text, "dry-run")}: rules[0].mode: must be one of enforce, shadow`);
  });

  it("rejects a bad severity in purposeLimitation and unknownProvenance", () => {
    expectError(
      "version: 1\npurposeLimitation:\n  severity: severe\n",
      "policy.yaml:3:13: purposeLimitation.severity: must be one of info, low, medium, high, critical",
    );
    expectError(
      "version: 1\nunknownProvenance:\n  severity: severe\n",
      "policy.yaml:3:13: unknownProvenance.severity: must be one of info, low, medium, high, critical",
    );
  });

  it("rejects purposeLimitation.enabled that is not a boolean", () => {
    expectError(
      "version: 1\npurposeLimitation:\n  enabled: sometimes\n",
      "policy.yaml:3:12: purposeLimitation.enabled: must be true or false",
    );
  });

  it("rejects kinds other than USE and SHARE, pointing at the bad element", () => {
    const text = ruleWithMatch("      kinds: [USE, READ]\n");
    expectError(text, `policy.yaml:${at(text, "READ")}: rules[0].match.kinds[1]: must be USE or SHARE`);
  });

  it("rejects COLLECT as a kind (rules apply to USE and SHARE only)", () => {
    const text = ruleWithMatch("      kinds: COLLECT\n");
    expectError(text, `policy.yaml:${at(text, "COLLECT")}: rules[0].match.kinds[0]: must be USE or SHARE`);
  });

  it("rejects an empty kinds list", () => {
    const text = ruleWithMatch("      kinds: []\n");
    expectError(text, `policy.yaml:${at(text, "[]")}: rules[0].match.kinds: must not be empty`);
  });

  it("rejects recipients other than any, internal or external", () => {
    const text = ruleWithMatch("      recipients: partners\n");
    expectError(text, `policy.yaml:${at(text, "partners")}: rules[0].match.recipients: must be one of any, internal, external`);
  });

  it("rejects a list where a string list element must be a non-empty string", () => {
    const text = ruleWithMatch("      services: [crm, '']\n");
    expectError(text, `policy.yaml:${at(text, "''")}: rules[0].match.services[1]: must be a non-empty string`);
  });

  it("rejects rules given as a mapping instead of a list", () => {
    expectError("version: 1\nrules: {}\n", "policy.yaml:2:8: rules: must be a list");
  });

  const declassifyHead =
    "version: 1\ndeclassify:\n  - id: d1\n    transforms: [AGGREGATE]\n    masking: [ANONYMISED]\n    categories: [user]\n";

  it("rejects a declassification with both drop and reclassifyTo", () => {
    expectError(
      `${declassifyHead}    drop: true\n    reclassifyTo: user.contact\n`,
      "policy.yaml:3:5: declassify[0]: needs exactly one of 'drop: true' or 'reclassifyTo: <data category>'",
    );
  });

  it("rejects a declassification with neither drop nor reclassifyTo", () => {
    expectError(declassifyHead, "policy.yaml:3:5: declassify[0]: needs exactly one of 'drop: true' or 'reclassifyTo: <data category>'");
  });

  it("rejects a declassification with drop: false and no reclassifyTo", () => {
    expectError(
      `${declassifyHead}    drop: false\n`,
      "policy.yaml:3:5: declassify[0]: needs exactly one of 'drop: true' or 'reclassifyTo: <data category>'",
    );
  });

  it("rejects a declassification with an unknown transform, listing the transforms", () => {
    const text =
      "version: 1\ndeclassify:\n  - id: d1\n    transforms: [AGGREGATE, SQUASH]\n    masking: [ANONYMISED]\n    categories: [user]\n    drop: true\n";
    expectError(
      text,
      `policy.yaml:${at(text, "SQUASH")}: declassify[0].transforms[1]: must be one of COPY, JOIN, HASH, AGGREGATE, FILTER, ENRICH, OTHER`,
    );
  });

  it("rejects masking NONE in a declassification (only MASKED or ANONYMISED declassify)", () => {
    const text =
      "version: 1\ndeclassify:\n  - id: d1\n    transforms: [AGGREGATE]\n    masking: [NONE]\n    categories: [user]\n    drop: true\n";
    expectError(text, `policy.yaml:${at(text, "NONE")}: declassify[0].masking[0]: must be one of MASKED, ANONYMISED`);
  });

  it("rejects reclassifyTo with more than one category", () => {
    const text = `${declassifyHead}    reclassifyTo: [user.contact, user.account]\n`;
    expectError(text, `policy.yaml:${at(text, "[user.contact")}: declassify[0].reclassifyTo: must be one data category`);
  });

  it("rejects reclassifyTo naming an unknown category", () => {
    const text = `${declassifyHead}    reclassifyTo: user.pseudonym\n`;
    expect(ruleErrorOf(text).message).toMatch(
      /^policy\.yaml:7:19: declassify\[0\]\.reclassifyTo\[0\]: unknown data category 'user\.pseudonym'/,
    );
  });

  it("reports an error in JSON input at its line and column", () => {
    const text = '{"version": 1, "rules": [{"id": "r1", "effect": "deny", "match": {"usedFor": ["marketting"]}}]}';
    expectError(
      text,
      `policy.yaml:${at(text, '"marketting"')}: rules[0].match.usedFor[0]: unknown data use 'marketting' (did you mean 'marketing'?)`,
    );
  });

  it("reports an unknown key in multi-line JSON on the key's line", () => {
    const text = '{\n  "version": 1,\n  "rule": []\n}\n';
    expectError(
      text,
      `policy.yaml:3:3: rule: unknown key 'rule' (expected one of: version, purposeLimitation, compatible, rules, declassify, unknownProvenance)`,
    );
  });

  it("puts the offending path in the error context", () => {
    const err = ruleErrorOf(ruleWithMatch("      subjects: [customr]\n"));
    expect(err.context).toEqual({ file: FILE, line: 6, column: 18, path: "rules[0].match.subjects[0]" });
  });
});
