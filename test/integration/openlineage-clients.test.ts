// Real OpenLineage producers against a real `serve` (the compiled CLI as a process): the PyPI
// openlineage-python client's HTTP transport, and dbt (dbt-duckdb) through openlineage-dbt's
// `dbt-ol`. Their lineage meets what our SDK says services collected and used, and the misuse is
// flagged. The clients come from the venv .ci/openlineage.sh makes; without it this test fails.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEmitter, createHttpTransport, type EmitInput } from "../../services/emitter/index.ts";
import { openStore } from "../../services/store/index.ts";
import { HMAC_KEY, tempDir } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const BIN = join(ROOT, "bin/lineage-audit.mjs");
const VENV = join(process.env["LINEAGE_AUDIT_CLIENTS_DIR"] ?? join(homedir(), ".cache/lineage-audit/clients"), "openlineage");
const TOKEN = "openlineage-clients-token-0123";
const dir = tempDir("lineage-ol-clients-");
const store = join(dir, "store");
let serve: ChildProcess | undefined;
let url = "";

function clients(): void {
  if (!existsSync(join(VENV, "bin/python")) || !existsSync(join(VENV, "bin/dbt-ol")))
    throw new Error(`the OpenLineage clients are not installed in ${VENV}: run bash .ci/openlineage.sh`);
}

beforeAll(async () => {
  clients();
  serve = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
    env: {
      PATH: process.env["PATH"] ?? "",
      HOME: dir,
      LINEAGE_AUDIT_DATA: store,
      LINEAGE_AUDIT_HMAC_KEY: HMAC_KEY,
      LINEAGE_AUDIT_INGEST_TOKEN: TOKEN,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  url = await new Promise<string>((resolve, reject) => {
    let err = "";
    serve!.stderr!.on("data", (d: Buffer) => {
      err += d.toString("utf8");
      const m = /POST (http:\/\/[^ ]+)\/v1\/events/.exec(err);
      if (m) resolve(m[1]!);
    });
    serve!.once("exit", (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}, 60_000);

afterAll(async () => {
  if (serve && serve.exitCode === null) {
    serve.kill("SIGTERM");
    await new Promise((r) => serve!.once("exit", r));
  }
  rmSync(dir, { recursive: true, force: true });
});

async function emit(inputs: EmitInput[]): Promise<void> {
  const emitter = createEmitter({ transport: createHttpTransport({ url, token: TOKEN }), pseudonymKey: HMAC_KEY, service: "auth-service" });
  for (const input of inputs) await emitter.emit(input);
  await emitter.close();
}

const collect = (namespace: string, name: string, at: string): EmitInput => ({
  kind: "COLLECT",
  occurredAt: at,
  job: { namespace: "web", name: "2fa-enrolment" },
  runId: `collect-${name}`,
  outputs: [{ namespace, name, fields: [{ name: "phone_number", categories: ["user.contact.phone_number"] }] }],
  purposes: ["essential.service.security"],
  dataSubject: "customer",
  subjects: ["+15555550100", "+15555550101"],
});

function run(command: string, args: string[], cwd: string, env: Record<string, string>) {
  const r = spawnSync(command, args, {
    cwd,
    env: { PATH: `${join(VENV, "bin")}:${process.env["PATH"] ?? ""}`, HOME: dir, ...env },
    encoding: "utf8",
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`${command} ${args.join(" ")} exited ${r.status}:\n${(r.stdout + r.stderr).slice(-3000)}`);
  return r.stdout + r.stderr;
}

describe("real OpenLineage clients against serve", () => {
  it("openlineage-python: its HTTP transport, gzip on, sends the hashing job's START and COMPLETE, a FAIL and a share declared by the run facet", async () => {
    // A service collected phone numbers for account security; the Python client describes the
    // hashing job and an export to a partner (lineageAudit_purpose).
    await emit([collect("warehouse", "profile.contact_points", "2019-01-01T00:00:00Z")]);
    // With the transport's compression on (dbt-ol below posts through the same transport without it).
    const out = run(join(VENV, "bin/python"), [join(ROOT, "test/clients/openlineage/send_events.py"), url], ROOT, {
      OPENLINEAGE_API_KEY: TOKEN,
      OPENLINEAGE_COMPRESSION: "gzip",
    });
    expect(out.trim().split("\n")).toHaveLength(4);
  });

  it("dbt-ol: dbt seeds and runs the models, sending their column lineage; a service then uses a dbt output column for ads", async () => {
    const project = join(dir, "dbt");
    cpSync(join(ROOT, "test/clients/dbt"), project, { recursive: true, filter: (p) => !/\/(target|logs)(\/|$)/.test(p) });
    // The service names the seed as dbt does: namespace duckdb://<profile path>, name <db>.<schema>.<table>.
    await emit([collect("duckdb://target/warehouse.duckdb", "warehouse.main.two_factor", "2019-01-01T00:00:00Z")]);
    const env = { OPENLINEAGE_URL: url, OPENLINEAGE_API_KEY: TOKEN, DBT_PROFILES_DIR: project };
    run("dbt-ol", ["seed"], project, env);
    const log = run("dbt-ol", ["run"], project, env);
    // dbt-ol exits with dbt's code even when a POST fails: it logs the failure instead.
    expect(log).not.toMatch(/Failed to send|Error sending|401|422/);
    await emit([
      {
        kind: "USE",
        occurredAt: "2099-01-01T00:00:00Z",
        service: "tailored-audiences",
        job: { namespace: "ads", name: "tailored-audiences.match" },
        runId: "match-1",
        inputs: [
          { namespace: "duckdb://target/warehouse.duckdb", name: "warehouse.main.matching_keys", fields: [{ name: "phone_sha256" }] },
        ],
        purposes: ["marketing.advertising.third_party.targeted"],
        dataSubject: "customer",
      },
    ]);
  });

  it("stored what each client sent, explained each RunEvent, and flagged both misuses", async () => {
    serve!.kill("SIGTERM");
    expect(await new Promise((r) => serve!.once("exit", r))).toBe(0);
    const s = await openStore({ path: store });
    try {
      const logged = await s.query<{ job_name: string; event_type: string; events: string; explanation: string }>(
        `SELECT job_name, event_type, toString(length(event_ids)) AS events, explanation FROM lineage.openlineage_events_v1 FINAL ORDER BY job_name, event_type`,
      );
      const byJob = (name: string) => logged.filter((r) => r.job_name === name).map((r) => [r.event_type, r.events]);
      expect(byJob("ads.identity-graph")).toEqual([
        ["COMPLETE", "1"], // one DERIVE: user_id (IDENTITY), and the hashes, their mappings MASKED
        ["FAIL", "0"], // another run
        ["START", "0"],
      ]);
      expect(byJob("ads.partner-export")).toEqual([["COMPLETE", "1"]]);
      expect(logged.find((r) => r.event_type === "FAIL")?.explanation).toMatch(/is a FAIL event: the run did not complete/);
      expect(byJob("warehouse.main.lineage_audit_dbt.contact_points")).toEqual([
        ["COMPLETE", "1"],
        ["START", "0"],
      ]);
      expect(byJob("warehouse.main.lineage_audit_dbt.matching_keys")).toEqual([
        ["COMPLETE", "1"],
        ["START", "0"],
      ]);
      const dead = await s.query<{ reason: string }>(`SELECT reason FROM lineage.dead_letters_v1`);
      expect(dead).toEqual([]);

      const flagged = await s.query<{ rule_id: string; kind: string; service: string; path: string }>(
        `SELECT v.rule_id AS rule_id, v.kind AS kind, v.service AS service, p.lineage_path AS path
         FROM lineage.violations_v1 AS v INNER JOIN lineage.violation_paths_v1 AS p ON p.path_id = v.path_id
         WHERE v.rule_id = 'security-contact-not-for-marketing' ORDER BY service`,
      );
      expect(flagged.map((v) => [v.kind, v.service])).toEqual([
        ["USE", "tailored-audiences"],
        ["SHARE", "warehouse-jobs"],
      ]);
      // The paths run through the clients' jobs: dbt's two models, and the Python client's hashing job.
      expect(flagged[0]!.path).toContain("warehouse.main.lineage_audit_dbt.contact_points");
      expect(flagged[0]!.path).toContain("warehouse.main.lineage_audit_dbt.matching_keys");
      expect(flagged[1]!.path).toContain("ads.identity-graph");
      expect(flagged[1]!.path).toContain("MASKED");
    } finally {
      await s.close();
    }
    // Exactly affected, per person: the two people whose numbers were collected, carried to both
    // misuses by whole-table derivations (OpenLineage's DERIVEs name nobody, so they carry everyone's).
    const affected = spawnSync(process.execPath, [BIN, "affected", "--rule", "security-contact-not-for-marketing", "--json"], {
      env: { PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: store },
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(affected.status, affected.stderr).toBe(0);
    const answer = JSON.parse(affected.stdout) as { exact: { exact: { users: number } } };
    expect(answer.exact.exact.users).toBe(2);
  });
});
