// Issue 9 as a new user meets it: the four NDJSON lines of the issue, ingested by the CLI, and
// `affected` (text and JSON) and `report` asked about them as processes against the embedded store.
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { HMAC_KEY, tempDir } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const BIN = join(ROOT, "bin/lineage-audit.mjs");
const RULE = "security-contact-not-for-marketing";
const dir = tempDir("lineage-cli-exact-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { LINEAGE_AUDIT_HMAC_KEY: HMAC_KEY, LINEAGE_AUDIT_DATABASE: "fourlines" };

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: join(dir, "store"), ...env },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const phone = (name: string) => ({ namespace: "warehouse", name, fields: [{ name: "phone", categories: ["user.contact.phone_number"] }] });
const FOUR_LINES = [
  {
    kind: "COLLECT",
    occurredAt: "2019-03-01T10:00",
    service: "accounts",
    job: { namespace: "web", name: "signup" },
    outputs: [phone("accounts.users")],
    purposes: ["essential.service", "marketing.advertising"],
    dataSubject: "customer",
    runId: "r1",
    subjects: ["carol@example.com", "dave@example.com"],
  },
  {
    kind: "COLLECT",
    occurredAt: "2019-03-01T10:00",
    service: "auth-service",
    job: { namespace: "web", name: "2fa-enrolment" },
    outputs: [phone("security.two_factor")],
    purposes: ["essential.service.security"],
    dataSubject: "customer",
    runId: "r1",
    subjects: ["alice@example.com", "bob@example.com"],
  },
  {
    kind: "DERIVE",
    occurredAt: "2019-03-02T02:00",
    service: "profile-sync",
    job: { namespace: "batch", name: "contact-points" },
    inputs: [
      { namespace: "warehouse", name: "accounts.users" },
      { namespace: "warehouse", name: "security.two_factor" },
    ],
    outputs: [{ namespace: "warehouse", name: "profile.contact" }],
    transform: "COPY",
    fieldLineage: [
      {
        output: { namespace: "warehouse", name: "profile.contact", field: "phone" },
        inputs: [
          { namespace: "warehouse", name: "accounts.users", field: "phone" },
          { namespace: "warehouse", name: "security.two_factor", field: "phone" },
        ],
        transform: "COPY",
      },
    ],
    dataSubject: "customer",
    runId: "r1",
  },
  {
    kind: "USE",
    occurredAt: "2019-03-03T14:00",
    service: "partner-audiences",
    job: { namespace: "ads", name: "match" },
    inputs: [{ namespace: "warehouse", name: "profile.contact", fields: [{ name: "phone" }] }],
    purposes: ["marketing.advertising.third_party.targeted"],
    dataSubject: "customer",
    runId: "r1",
    subjects: ["alice@example.com", "carol@example.com", "erin@example.com"],
  },
];

describe("the issue's four-line example through the CLI", () => {
  it("answers 1 user exactly (alice) and 3 as possibly affected, with the reason for the other two", () => {
    const file = join(dir, "four.ndjson");
    writeFileSync(file, FOUR_LINES.map((l) => JSON.stringify(l)).join("\n"));
    const ingest = cli(["ingest", file]);
    expect(ingest.code, ingest.stderr).toBe(0);

    const json = cli(["affected", "--rule", RULE, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const answer = JSON.parse(json.stdout) as {
      subjects: number;
      exact: {
        exact: { users: number; records: number; violatingEvents: number };
        fieldLevel: { users: number };
        possiblyNotExactly: { users: number; reasons: Record<string, number> };
      };
    };
    expect(answer.exact.exact).toMatchObject({ users: 1, records: 1, violatingEvents: 1 });
    expect(answer.exact.fieldLevel.users).toBe(3);
    expect(answer.subjects).toBe(3); // the field-level summary beside it
    expect(answer.exact.possiblyNotExactly).toEqual({
      users: 2,
      reasons: { deletedBefore: 0, notCarried: 0, collectedAfter: 0, noProvenance: 2 },
    });

    const text = cli(["affected", "--rule", RULE]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/Users affected +1 /);
    expect(text.stdout).toMatch(/Possibly affected +3 /);
    expect(text.stdout).toMatch(/not exactly, as +2 no provenance for that subject/);
    // Whose: the exact user is alice, by her pseudonym (raw identifiers are never stored).
    type Violations = {
      violations: {
        ruleId: string;
        exact: boolean;
        reason: string | null;
        evidence: {
          origin: string;
          collected: { service: string; purposes: string[] } | null;
          hops: { field: string; transform: string }[];
        }[];
      }[];
    };
    const ofRule = (who: string) => {
      const r = cli(["subject", who, "--json"]);
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as Violations).violations.find((v) => v.ruleId === RULE);
    };
    // Alice's evidence chain: collected at the two-factor store, for security, by the auth service; copied; used.
    expect(ofRule("alice@example.com")).toMatchObject({
      exact: true,
      reason: null,
      evidence: [
        {
          origin: "warehouse/security.two_factor#phone",
          collected: { service: "auth-service", purposes: ["essential.service.security"] },
          hops: [{ field: "phone", transform: "COPY" }],
        },
      ],
    });
    expect(ofRule("carol@example.com")).toMatchObject({ exact: false, reason: "no provenance for that subject", evidence: [] });
    // Erin is named by the match, but nothing of hers was ever collected.
    expect(ofRule("erin@example.com")).toMatchObject({ exact: false, reason: "no provenance for that subject", evidence: [] });
    const aliceText = cli(["subject", "alice@example.com"]).stdout;
    expect(aliceText).toMatch(
      /rule security-contact-not-for-marketing: EXACTLY AFFECTED\n +collected 2019-03-01 10:00:00.000 +warehouse\/security.two_factor#phone/,
    );

    const report = cli(["report", "--rule", RULE, "--format", "json"]);
    expect(report.code, report.stderr).toBe(0);
    const r = JSON.parse(report.stdout) as { summary: { exact: { exact: { users: number } } }; timeline: { totalSubjects: number }[] };
    expect(r.summary.exact.exact.users).toBe(1);
    expect(r.timeline.at(-1)?.totalSubjects).toBe(1);
    const md = cli(["report", "--rule", RULE]);
    expect(md.stdout).toMatch(/Number of data subjects \(exact, per person\) \| 1 \|/);
    expect(md.stdout).toMatch(
      /Possibly affected \(field level\) \| 3 data subjects were named by the flagged uses; 2 of them not exactly: 2 no provenance/,
    );
  });
});
