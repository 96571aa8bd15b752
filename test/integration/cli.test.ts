// The lineage-audit command as people run it: a real process, the real embedded store.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { writeContainerFile, AVRO_SCHEMA_DIR } from "../../services/codec/index.ts";
import { HMAC_KEY, tempDir } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const BIN = join(ROOT, "bin/lineage-audit.mjs");
const dir = tempDir("lineage-cli-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: join(dir, "store"), ...env },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A CLI failure is one clear line on stderr and a non-zero exit. */
function expectOneLineError(r: ReturnType<typeof cli>, pattern: RegExp, code = 1) {
  expect(r.code).toBe(code);
  const lines = r.stderr.trim().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^lineage-audit: /);
  expect(lines[0]).toMatch(pattern);
}

const collect = (id: string, subject: string) => ({
  kind: "COLLECT",
  eventId: id,
  occurredAt: "2019-03-01T10:00:00Z",
  service: "auth-service",
  job: { namespace: "web", name: "2fa-enrolment" },
  runId: "r1",
  outputs: [
    { namespace: "warehouse", name: "security.two_factor", fields: [{ name: "phone_number", categories: ["user.contact.phone_number"] }] },
  ],
  purposes: ["essential.service.security"],
  dataSubject: "customer",
  subjects: [subject],
});
const misuse = (id: string, subject: string) => ({
  kind: "USE",
  eventId: id,
  occurredAt: Date.parse("2019-03-02T10:00:00Z"),
  service: "partner-audiences",
  job: { namespace: "ads", name: "partner-audiences.match" },
  runId: "r2",
  inputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "phone_number" }] }],
  purposes: ["marketing.advertising.third_party.targeted"],
  dataSubject: "customer",
  subjects: [subject],
});

describe("lineage-audit CLI", () => {
  it("runs the demo and prints answers that agree with the planted ground truth, exact and field level (--json)", () => {
    const r = cli(["demo", "--users", "3000", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    type Counts = { users: number; records: number; violatingEvents: number };
    const out = JSON.parse(r.stdout) as {
      answers: {
        subjects: number;
        records: number;
        violationEvents: number;
        externalShares: { carryingViolatedData: number };
        lastViolation: string;
        exact: { exact: Counts; fieldLevel: Counts; sharedOutside: { shared: boolean; subjects: number; events: number } };
      };
      groundTruth: {
        affectedUsers: number;
        affectedRecords: number;
        violatingEvents: number;
        externalSharesOfViolatedData: number;
        events: number;
        exact: Counts & { sharedOutside: { shared: boolean; subjects: number; events: number } };
      };
      agrees: Record<string, boolean>;
      events: number;
    };
    const { answers, groundTruth: truth } = out;
    expect(answers.exact.exact).toMatchObject({
      users: truth.exact.users,
      records: truth.exact.records,
      violatingEvents: truth.exact.violatingEvents,
    });
    expect(answers.exact.fieldLevel).toMatchObject({
      users: truth.affectedUsers,
      records: truth.affectedRecords,
      violatingEvents: truth.violatingEvents,
    });
    // The matched fields mix sign-up and two-factor contact points: fewer people exactly than at field level.
    expect(answers.exact.exact.users).toBeGreaterThan(100);
    expect(answers.exact.exact.users).toBeLessThan(answers.exact.fieldLevel.users);
    expect(answers.subjects).toBe(truth.affectedUsers);
    expect(answers.exact.sharedOutside).toEqual(truth.exact.sharedOutside);
    expect(answers.exact.sharedOutside.shared).toBe(true);
    expect(answers.externalShares.carryingViolatedData).toBe(truth.externalSharesOfViolatedData);
    expect(answers.lastViolation < "2019-09-17").toBe(true);
    expect(out.agrees).toEqual(Object.fromEntries(Object.keys(out.agrees).map((k) => [k, true])));
    expect(out.events).toBe(truth.events);
  });

  it("prints the human answer with a lineage path diagram and a progress bar on stderr", () => {
    const r = cli(["demo", "--users", "2000"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Users affected\s+[\d,]+ {3}\(exact[^)]*\) {3}\(planted: [\d,]+ ✓\)/);
    expect(r.stdout).toMatch(/Possibly affected\s+[\d,]+ {3}\(field level[^)]*\) {3}\(planted: [\d,]+ ✓\)/);
    expect(r.stdout).toMatch(/Shared outside\?\s+YES: \d+ external shares carried it for [\d,]+ users \(exact/);
    expect(r.stdout).toMatch(
      /^Exactly affected: [\d,]+ users\. The field-level reading names [\d,]+: [\d,]+ of them were not exactly affected/m,
    );
    expect(r.stdout).toMatch(/^ {4}COLLECT warehouse\/security\.two_factor#/m);
    expect(r.stdout).toMatch(/^ {2}⇒ (USE|SHARE) warehouse\/ads\.matching_keys#/m);
    expect(r.stderr).toMatch(/events █+/);
  });

  it("writes an incident report whose numbers equal the planted ground truth, as Markdown, JSON and HTML", () => {
    const demo = cli(["demo", "--users", "2500", "--json"]);
    expect(demo.code, demo.stderr).toBe(0);
    const truth = (
      JSON.parse(demo.stdout) as {
        groundTruth: {
          affectedUsers: number;
          affectedRecords: number;
          violatingEvents: number;
          exact: { users: number; records: number; violatingEvents: number };
        };
      }
    ).groundTruth;
    const env = { LINEAGE_AUDIT_DATABASE: "demo" };
    const json = cli(["report", "--rule", "security-contact-not-for-marketing", "--format", "json"], env);
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as {
      summary: {
        subjects: number;
        exact: { exact: { users: number; records: number; violatingEvents: number }; fieldLevel: { users: number } };
      };
      timeline: { totalSubjects: number }[];
      path: unknown[];
    };
    expect(report.summary.exact.exact).toMatchObject({
      users: truth.exact.users,
      records: truth.exact.records,
      violatingEvents: truth.exact.violatingEvents,
    });
    expect(report.summary.exact.fieldLevel.users).toBe(truth.affectedUsers);
    expect(report.timeline.at(-1)?.totalSubjects).toBe(truth.exact.users);
    expect(report.path).toHaveLength(5);
    const fmt = (v: number) => v.toLocaleString("en-US");
    const md = cli(["report", "--rule", "security-contact-not-for-marketing"], env);
    expect(md.stdout).toContain(`| Number of data subjects (exact, per person) | ${fmt(truth.exact.users)} |`);
    expect(md.stdout).toContain(
      `| Possibly affected (field level) | ${fmt(truth.affectedUsers)} data subjects were named by the flagged uses;`,
    );
    expect(md.stdout).toContain(
      `| Number of personal data records (exact; subject × data category) | ${fmt(truth.exact.records)} (field level: ${fmt(truth.affectedRecords)}) |`,
    );
    expect(md.stdout).toContain("```mermaid\nflowchart TD");
    const file = join(dir, "report.html");
    const html = cli(["report", "--rule", "security-contact-not-for-marketing", "--format", "html", "-o", file], env);
    expect(html.code, html.stderr).toBe(0);
    const page = readFileSync(file, "utf8");
    expect(page).toContain(`<tr><th>Number of data subjects (exact, per person)</th><td>${fmt(truth.exact.users)}</td></tr>`);
    expect(page).toMatch(/<svg id="lineage"[\s\S]*<svg id="chart"/);
    expect(page).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
    expectOneLineError(
      cli(["report", "--rule", "security-contact-not-for-marketing", "--format", "pdf"], env),
      /--format must be md, json or html, not 'pdf'/,
      2,
    );
  });

  it("replays a rule added after the fact over the stored history: it finds the planted misuse as of each use's time, and a second replay adds nothing", () => {
    const demo = cli(["demo", "--users", "2500", "--json"]);
    expect(demo.code, demo.stderr).toBe(0);
    const truth = (JSON.parse(demo.stdout) as { groundTruth: { affectedUsers: number; violatingEvents: number; lastViolation: string } })
      .groundTruth;
    const rules = join(dir, "after-the-fact.yaml");
    writeFileSync(
      rules,
      [
        "version: 1",
        "purposeLimitation: { enabled: false }",
        "rules:",
        "  - id: no-2fa-data-for-audiences",
        "    description: Written after the incident.",
        "    effect: deny",
        "    severity: critical",
        "    match:",
        "      collectedFor: [essential.service.security]",
        "      usedFor: [marketing.advertising]",
        "",
      ].join("\n"),
    );
    const env = { LINEAGE_AUDIT_DATABASE: "demo" };
    const first = cli(["replay", "--rules", rules, "--json"], env);
    expect(first.code, first.stderr).toBe(0);
    const r1 = JSON.parse(first.stdout) as { events: number; violations: number; done: boolean };
    expect(r1.done).toBe(true);
    // Replay is time-valid: it flags the uses the live rule flagged (the planted field-level
    // misuse), except a match that ran before any two-factor contact point of the categories it
    // was flagged for had been collected (same day, later hour: the live check goes by arrival,
    // the planted field-level truth by day).
    const sql = <T>(query: string) => JSON.parse(cli(["sql", query, "--json"], env).stdout) as T[];
    const firstCollected = new Map(
      sql<{ category: string; first: string }>(
        "SELECT arrayJoin(categories) AS category, toString(min(occurred_at)) AS first FROM events_v1 FINAL WHERE kind = 'COLLECT' AND job_name = '2fa-enrolment' GROUP BY category",
      ).map((r) => [r.category, r.first]),
    );
    const live = sql<{ event_id: string; at: string; categories: string[] }>(
      "SELECT event_id, toString(occurred_at) AS at, categories FROM violations_v1 FINAL WHERE rule_id = 'security-contact-not-for-marketing'",
    );
    expect(live).toHaveLength(truth.violatingEvents);
    const replayed = new Set(
      sql<{ event_id: string }>("SELECT event_id FROM violations_v1 FINAL WHERE rule_id = 'no-2fa-data-for-audiences'").map(
        (r) => r.event_id,
      ),
    );
    const tooEarly = live.filter((v) => v.categories.every((c) => v.at < (firstCollected.get(c) ?? "")));
    expect(tooEarly.length).toBeLessThan(5);
    expect([...replayed].sort()).toEqual(
      live
        .filter((v) => !tooEarly.includes(v))
        .map((v) => v.event_id)
        .sort(),
    );
    expect(r1.violations).toBe(truth.violatingEvents - tooEarly.length);
    const affected = cli(["affected", "--rule", "no-2fa-data-for-audiences", "--json"], { ...env, LINEAGE_AUDIT_RULES: rules });
    const answer = JSON.parse(affected.stdout) as { subjects: number; violationEvents: number };
    expect(answer.violationEvents).toBe(r1.violations);
    expect(answer.subjects).toBeLessThanOrEqual(truth.affectedUsers);
    expect(answer.subjects).toBeGreaterThan(truth.affectedUsers - 5 * 500);
    const marked = cli(
      ["sql", "SELECT min(retroactive) AS lo, count() AS n FROM violations_v1 FINAL WHERE rule_id = 'no-2fa-data-for-audiences'", "--json"],
      env,
    );
    expect(JSON.parse(marked.stdout)).toEqual([{ lo: 1, n: r1.violations }]);

    const second = cli(["replay", "--rules", rules, "--json"], env);
    expect(JSON.parse(second.stdout)).toMatchObject({ alreadyDone: true, violations: 0 });
    const again = cli(["sql", "SELECT count() AS n FROM violations_v1 FINAL WHERE rule_id = 'no-2fa-data-for-audiences'", "--json"], env);
    expect(JSON.parse(again.stdout)).toEqual([{ n: r1.violations }]);
    // Before the misuse began, the same rule finds nothing.
    const before = cli(["replay", "--rules", rules, "--to", "2019-01-01", "--json"], env);
    expect(JSON.parse(before.stdout)).toMatchObject({ violations: 0, done: true });

    // A dry run of the same rule under another id prints the compiled SQL and what it would write, and writes nothing.
    const renamed = join(dir, "renamed.yaml");
    writeFileSync(renamed, readFileSync(rules, "utf8").replace("no-2fa-data-for-audiences", "renamed-rule"));
    const dry = cli(["replay", "--rules", renamed, "--dry-run"], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("ASOF INNER JOIN");
    expect(dry.stdout).toContain("'renamed-rule'");
    expect(dry.stdout).toContain(`-- would write ${r1.violations.toLocaleString("en-US")} violations, marked retroactive:`);
    expect(dry.stdout).toContain(`--   renamed-rule: ${r1.violations.toLocaleString("en-US")}`);
    const none = cli(["sql", "SELECT count() AS n FROM violations_v1 WHERE rule_id = 'renamed-rule'", "--json"], env);
    expect(JSON.parse(none.stdout)).toEqual([{ n: 0 }]);

    // Rules the compiler cannot express fail at start with the file, line and reason, and nothing is written.
    const huge = join(dir, "huge.yaml");
    const services = Array.from({ length: 20_000 }, (_, i) => `service-${i}`).join(", ");
    writeFileSync(
      huge,
      ["version: 1", "rules:", "  - id: too-big", "    effect: deny", `    match: { services: [${services}] }`, ""].join("\n"),
    );
    expectOneLineError(
      cli(["replay", "--rules", huge], env),
      new RegExp(`${huge}:3:5: rule 'too-big' cannot be compiled to SQL: the rules compile to`),
    );
    const progress = cli(["sql", "SELECT count() AS n FROM replay_progress_v1 WHERE rules_file = '" + huge + "'", "--json"], env);
    expect(JSON.parse(progress.stdout)).toEqual([{ n: 0 }]);
  });

  it("ingests NDJSON, stores the good lines, and names each bad line on stderr", () => {
    const file = join(dir, "events.ndjson");
    writeFileSync(
      file,
      [
        JSON.stringify(collect("nd-1", "alice@example.com")),
        "{ this is not json",
        JSON.stringify({ ...misuse("nd-2", "alice@example.com"), purposes: ["marketting"] }),
        JSON.stringify(misuse("nd-3", "alice@example.com")),
        JSON.stringify({ ...misuse("nd-4", "bob@example.com"), job: "not-an-object" }),
        "",
      ].join("\n"),
    );
    const r = cli(["ingest", file], { LINEAGE_AUDIT_HMAC_KEY: HMAC_KEY, LINEAGE_AUDIT_DATABASE: "nd" });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/events\.ndjson:2: line is not valid JSON \(dead-lettered\)$/);
    expect(lines[1]).toMatch(/events\.ndjson:3: event USE field 'purposes\[0\]' is not a fideslang data use \('marketting'\)/);
    expect(lines[2]).toMatch(
      /events\.ndjson:5: event field 'job' is not a valid Job record \(an object with namespace, name\) \(dead-lettered\)$/,
    );
    expect(r.stderr).not.toContain("alice@example.com");
    expect(r.stderr).not.toContain("bob@example.com");
    expect(r.stdout).toMatch(/ingested 2 of 5 records from 1 file\(s\): 2 violations, 3 rejected/);

    const q = cli(["sql", "SELECT event_id, verdict FROM events_v1 FINAL ORDER BY event_id", "--json"], { LINEAGE_AUDIT_DATABASE: "nd" });
    expect(q.code, q.stderr).toBe(0);
    expect(JSON.parse(q.stdout)).toEqual([
      { event_id: "nd-1", verdict: "" },
      { event_id: "nd-3", verdict: "violation" },
    ]);
    const letters = cli(
      ["sql", "SELECT source, redacted, payload_base64 = '' AS withheld FROM dead_letters_v1 ORDER BY source", "--json"],
      { LINEAGE_AUDIT_DATABASE: "nd" },
    );
    const rows = JSON.parse(letters.stdout) as { source: string; redacted: number; withheld: number }[];
    expect(rows.map((x) => x.source.split("/").pop())).toEqual(["events.ndjson:2", "events.ndjson:3", "events.ndjson:5"]);
    expect(rows.every((x) => x.redacted === 1 && x.withheld === 1)).toBe(true);
    const everything = cli(["sql", "SELECT groupArray(subject_id) AS s FROM event_subjects_v1", "--json"], {
      LINEAGE_AUDIT_DATABASE: "nd",
    });
    expect(everything.stdout).not.toContain("alice");
    expect(JSON.parse(everything.stdout)[0].s).toHaveLength(2);
  });

  it("lists exactly one subject's events for an access request, by the raw identifier", () => {
    const env = { LINEAGE_AUDIT_HMAC_KEY: HMAC_KEY, LINEAGE_AUDIT_DATABASE: "nd" };
    const r = cli(["subject", "alice@example.com", "--json"], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain("alice@example.com");
    const out = JSON.parse(r.stdout) as {
      subject: string;
      events: { eventId: string; kind: string; violations: string[]; purposes: string[] }[];
    };
    expect(out.subject).toMatch(/^[0-9a-f]{32}$/);
    expect(out.events.map((e) => [e.eventId, e.kind, e.violations])).toEqual([
      ["nd-1", "COLLECT", []],
      ["nd-3", "USE", ["purpose-limitation", "security-contact-not-for-marketing"]],
    ]);
    const human = cli(["subject", "alice@example.com"], env);
    expect(human.stdout).toMatch(/^subject [0-9a-f]{32}: 2 events\n/);
    expect(human.stdout).toMatch(
      /USE +partner-audiences \(ads\/partner-audiences\.match\).*VIOLATION: purpose-limitation, security-contact-not-for-marketing/,
    );
    expect(cli(["subject", "bob@example.com"], env).stdout).toMatch(/^nothing stored concerns subject [0-9a-f]{32}\n$/);
    expectOneLineError(cli(["subject", "alice@example.com"], { LINEAGE_AUDIT_DATABASE: "nd" }), /LINEAGE_AUDIT_HMAC_KEY is not set/);
  });

  it("ingests an Avro container file written with the older schema version", async () => {
    const file = join(dir, "events.avro");
    const v1 = JSON.parse(readFileSync(join(AVRO_SCHEMA_DIR, "data_access_event.v1.avsc"), "utf8")) as object;
    const base = {
      runId: "r",
      transform: "OTHER",
      fieldLineage: [],
      masking: "NONE",
      dataSubject: "customer",
      recipient: null,
      traceparent: null,
    };
    const records = [];
    records.push({
      ...base,
      eventId: "avro-1",
      kind: "COLLECT",
      occurredAt: Date.parse("2019-02-01T00:00:00Z"),
      service: "auth-service",
      job: { namespace: "web", name: "2fa-enrolment" },
      inputs: [],
      outputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "email", categories: ["user.contact.email"] }] }],
      purposes: ["essential.service.authentication"],
      subjects: ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"],
    });
    records.push({
      ...base,
      eventId: "avro-2",
      kind: "USE",
      occurredAt: Date.parse("2019-02-02T00:00:00Z"),
      service: "tailored-audiences",
      job: { namespace: "ads", name: "tailored-audiences.match" },
      inputs: [{ namespace: "warehouse", name: "security.two_factor", fields: [{ name: "email", categories: [] }] }],
      outputs: [],
      purposes: ["marketing.advertising.third_party.targeted"],
      subjects: ["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"],
    });
    await writeContainerFile(file, v1, records);
    const r = cli(["ingest", file, "--json"], { LINEAGE_AUDIT_DATABASE: "avro" });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ files: 1, records: 2, accepted: 2, rejected: 0, violations: 2 });
    const a = cli(["affected", "--rule", "security-contact-not-for-marketing", "--json"], { LINEAGE_AUDIT_DATABASE: "avro" });
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({
      subjects: 2,
      records: 2,
      violationEvents: 1,
      categories: ["user.contact.email"],
      services: ["tailored-audiences"],
    });
    const v = cli(["sql", "SELECT schema_version, pseudonym_key_id FROM events_v1 WHERE event_id = 'avro-2'", "--json"], {
      LINEAGE_AUDIT_DATABASE: "avro",
    });
    expect(JSON.parse(v.stdout)).toEqual([{ schema_version: 1, pseudonym_key_id: "default" }]);
  });

  it("refuses SQL that writes, with one line", () => {
    expectOneLineError(cli(["sql", "INSERT INTO events_v1 (event_id) VALUES ('x')"]), /read-only: INSERT is not allowed$/);
    expectOneLineError(cli(["sql", "SELECT 1; DROP TABLE events_v1"]), /read-only: one statement at a time/);
    expectOneLineError(cli(["sql", "SYSTEM STOP MERGES"]), /^lineage-audit: read-only: SYSTEM is not allowed$/);
    expectOneLineError(cli(["sql", "SELECT 1 INTO OUTFILE '/tmp/x'"]), /read-only: INTO OUTFILE is not allowed$/);
    const ok = cli(["sql", "SELECT count() AS n FROM events_v1 -- trailing comment"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^n\n-+\n\d+\n$/);
  });

  it("gives one clear line and a non-zero exit for bad flags, rules, files and commands", () => {
    expectOneLineError(cli(["demo", "--users", "many"]), /--users must be a positive whole number, not 'many'/, 2);
    expectOneLineError(cli(["demo", "--colour"]), /Unknown option '--colour'/, 2);
    expectOneLineError(cli(["frobnicate"]), /unknown command 'frobnicate'/, 2);
    expectOneLineError(cli(["affected"]), /affected needs --rule ID/, 2);
    expectOneLineError(cli(["affected", "--rule", "nope"]), /no rule 'nope' in .*default\.yaml/, 2);
    expectOneLineError(
      cli(["affected", "--rule", "purpose-limitation", "--from", "last tuesday"]),
      /--from must be a date or date-time: 2019-01-31, .* \(no offset = UTC\); not 'last tuesday'/,
      2,
    );
    expectOneLineError(
      cli(["affected", "--rule", "purpose-limitation", "--category", "user.contact.phone"]),
      /not a fideslang data category \(did you mean 'user\.contact\.phone_number'\?\)/,
      2,
    );
    expectOneLineError(cli(["ingest", join(dir, "missing.ndjson")]), /missing\.ndjson: cannot open \(ENOENT\)/);
    const rules = join(dir, "bad-rules.yaml");
    writeFileSync(rules, "version: 1\nrules:\n  - id: x\n    effect: deny\n    match:\n      usedFor: [marketing.advertizing]\n");
    expectOneLineError(
      cli(["affected", "--rule", "x"], { LINEAGE_AUDIT_RULES: rules }),
      /bad-rules\.yaml:6:17: rules\[0\]\.match\.usedFor\[0\]: unknown data use 'marketing\.advertizing' \(did you mean 'marketing\.advertising'\?\)/,
    );
    expectOneLineError(
      cli(["ingest", join(dir, "events.ndjson")], { LINEAGE_AUDIT_DATABASE: "nokey" }),
      /LINEAGE_AUDIT_HMAC_KEY is not set/,
    );
  });
});
