// The rules compiler (issue 10) without an engine: what it refuses, with the file, line and rule,
// and the shape of what it emits. Its agreement with the evaluator is checked against the real
// engine in test/integration/replay-sql.test.ts.
import { describe, expect, it } from "vitest";
import { RuleError } from "../../../services/errors/index.ts";
import {
  compilePolicy,
  DEFAULT_POLICY_PATH,
  loadPolicy,
  MAX_COMPILED_BYTES,
  parsePolicy,
  sqlLiteral,
  type Policy,
} from "../../../services/rules/index.ts";
import { loadFideslangTaxonomy } from "../../../services/taxonomy/index.ts";

const taxonomy = loadFideslangTaxonomy();
const parse = (text: string) => parsePolicy(text, "replay.yaml", taxonomy);

describe("compiling a policy to SQL", () => {
  it("compiles the shipped policy: its deny rule and purpose limitation, each with its metadata", () => {
    const policy = loadPolicy(DEFAULT_POLICY_PATH, taxonomy);
    const compiled = compilePolicy(policy);
    const deny = policy.rules.filter((r) => r.effect === "deny");
    expect([...compiled.rules.keys()]).toEqual([...deny.map((r) => r.id), policy.purposeLimitation.id]);
    for (const r of deny) expect(compiled.rules.get(r.id)).toEqual({ id: r.id, basis: "deny", severity: r.severity, mode: r.mode });
    expect(compiled.rules.get(policy.purposeLimitation.id)?.basis).toBe("purpose-limitation");
    expect(compiled.ruleIds).toMatch(/^arrayFilter\(r -> r != '', \[/);
    expect(compiled.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it("turns taxonomy patterns into subtree tests: equal or below, `.*` the same subtree, `*` everything", () => {
    const compiled = compilePolicy(
      parse(
        [
          "version: 1",
          "purposeLimitation: { enabled: false }",
          "rules:",
          "  - id: r1",
          "    effect: deny",
          "    match: { categories: [user.contact.*], usedFor: [marketing], services: [ads] }",
          "  - id: r2",
          "    effect: deny",
          "    match: { usedFor: ['*'], recipients: external }",
          "",
        ].join("\n"),
      ),
    );
    expect(compiled.ruleIds).toContain("l_category = 'user.contact' OR startsWith(l_category, 'user.contact.')");
    expect(compiled.ruleIds).toContain("u_purpose = 'marketing' OR startsWith(u_purpose, 'marketing.')");
    expect(compiled.ruleIds).toContain("u_service IN ('ads')");
    expect(compiled.ruleIds).toContain("(1 AND (u_kind = 'SHARE' AND u_recipient != '' AND u_recipient_external = 1))");
    expect(compiled.ruleIds).not.toContain("purpose-limitation");
  });

  it("leaves a shadow allow rule out of the exemption, as the evaluator does", () => {
    const compiled = compilePolicy(
      parse(
        ["version: 1", "rules:", "  - id: a1", "    effect: allow", "    mode: shadow", "    match: { usedFor: [analytics] }", ""].join(
          "\n",
        ),
      ),
    );
    expect(compiled.ruleIds).toContain("if(NOT 0 AND NOT arrayExists");
    expect(compiled.ruleIds).not.toContain("'analytics'");
  });

  it("compiles a policy with no rule to an empty list", () => {
    const compiled = compilePolicy(parse("version: 1\npurposeLimitation: { enabled: false }\nrules: []\n"));
    expect(compiled.ruleIds).toBe("CAST([], 'Array(String)')");
    expect(compiled.rules.size).toBe(0);
  });

  it("refuses a match key it has no SQL form for, naming the file, line and rule", () => {
    const policy = parse(["version: 1", "rules:", "  - id: r1", "    effect: deny", "    match: { usedFor: [marketing] }", ""].join("\n"));
    const future = {
      ...policy,
      rules: [{ ...policy.rules[0], match: { usedFor: ["marketing"], fields: ["email"] } }],
    } as unknown as Policy;
    expect(() => compilePolicy(future)).toThrow(RuleError);
    expect(() => compilePolicy(future)).toThrow(
      "replay.yaml:3:5: rule 'r1' cannot be compiled to SQL: match key 'fields' has no SQL form (the compiler knows categories, collectedFor, usedFor, subjects, kinds, recipients, services)",
    );
  });

  it("refuses rules too large for one query, naming the largest rule and what to do", () => {
    const services = Array.from({ length: 12_000 }, (_, i) => `service-number-${i}`);
    const text = [
      "version: 1",
      "rules:",
      "  - id: small",
      "    effect: deny",
      "    match: { usedFor: [marketing] }",
      "  - id: huge",
      "    effect: deny",
      `    match: { services: [${services.join(", ")}] }`,
      "",
    ].join("\n");
    const policy = parse(text);
    expect(() => compilePolicy(policy)).toThrow(
      /^replay\.yaml:6:5: rule 'huge' cannot be compiled to SQL: the rules compile to \d+ KiB of SQL, over the 192 KiB one query may hold .*split the rules file/,
    );
    expect(MAX_COMPILED_BYTES).toBeLessThan(256 * 1024);
  });

  it("refuses ids that cannot be written as they are in SQL (policies built in code skip the parser)", () => {
    const policy = parse(["version: 1", "rules:", "  - id: r1", "    effect: deny", "    match: { usedFor: [marketing] }", ""].join("\n"));
    const bad = { ...policy, rules: [{ ...policy.rules[0], id: "r1'; DROP TABLE x; --" }] } as Policy;
    expect(() => compilePolicy(bad)).toThrow("its id must be letters, digits");
  });

  it("quotes string literals so that no value can end them", () => {
    expect(sqlLiteral("it's")).toBe("'it\\'s'");
    expect(sqlLiteral("back\\slash'")).toBe("'back\\\\slash\\''");
  });
});
