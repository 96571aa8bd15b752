// OpenLineage RunEvents over HTTP into the real embedded store: POST /api/v1/lineage beside our
// own events, Marquez's status codes, dead letters with the JSON path, and the lineage they add
// flagging a use the way our own DERIVE events would.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { request } from "node:http";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEmitter, createHttpTransport } from "../../services/emitter/index.ts";
import { startIngestServer, type IngestServer } from "../../services/api/index.ts";
import { parseConfig } from "../../services/config/index.ts";
import { openAuditor, type AuditorContext } from "../../services/cli/context.ts";
import { HMAC_KEY, tempDir } from "./helpers.ts";

const TOKEN = "openlineage-test-token-0123";
const dir = tempDir("lineage-ol-http-");
let ctx: AuditorContext;
let server: IngestServer;

beforeAll(async () => {
  // As serve opens it: RunEvents over HTTP answered once journaled, stored behind the answer.
  ctx = await openAuditor(parseConfig({ LINEAGE_AUDIT_DATA: join(dir, "store") }), { openLineageJournal: true });
  server = await startIngestServer(ctx.processor, { port: 0, token: TOKEN, openLineage: ctx.openLineage });
});
afterAll(async () => {
  await server?.close();
  await ctx?.close();
  rmSync(dir, { recursive: true, force: true });
});

const RUN = "0190d8a0-1c2b-7c3d-8e4f-5a6b7c8d9e0f";
const PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.54.0/client/python";
const SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const facet = (name: string) => ({ _producer: PRODUCER, _schemaURL: `https://openlineage.io/spec/facets/1-0-0/${name}.json` });

/** The inputs and outputs of a job that hashes `from`'s phone column into `to`'s phone_sha256 (column lineage with masking). */
function hashesPhones(from: string, field: string, to: string, moreFacets: Record<string, unknown> = {}) {
  return {
    inputs: [
      {
        namespace: "warehouse",
        name: from,
        facets: { schema: { ...facet("SchemaDatasetFacet"), fields: [{ name: field }, { name: "user_id" }] } },
      },
    ],
    outputs: [
      {
        namespace: "warehouse",
        name: to,
        facets: {
          columnLineage: {
            _producer: PRODUCER,
            _schemaURL: "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
            fields: {
              phone_sha256: {
                inputFields: [
                  {
                    namespace: "warehouse",
                    name: from,
                    field,
                    transformations: [{ type: "DIRECT", subtype: "TRANSFORMATION", masking: true }],
                  },
                ],
              },
            },
          },
          ...moreFacets,
        },
      },
    ],
  };
}

function runEvent(eventType: string, over: Record<string, unknown> = {}) {
  return {
    eventType,
    eventTime: "2019-06-01T10:00:00.000Z",
    producer: PRODUCER,
    schemaURL: SCHEMA_URL,
    run: { runId: RUN },
    job: { namespace: "warehouse-jobs", name: "ads.identity-graph" },
    ...hashesPhones("profile.contact_points", "phone_number", "ads.matching_keys"),
    ...over,
  };
}

async function post(body: unknown, headers: Record<string, string> = {}, encode: (text: string) => string | Buffer = (t) => t) {
  const res = await fetch(`${server.url}/api/v1/lineage`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}`, ...headers },
    body: encode(typeof body === "string" ? body : JSON.stringify(body)),
  });
  const text = await res.text();
  return { status: res.status, body: text === "" ? undefined : (JSON.parse(text) as { error: string; code: string }) };
}

/** A person's phone number collected for account security by our own SDK (the label a RunEvent's lineage then carries). */
async function collectForSecurity(c: { job: string; dataset: string; field: string; subject: string }): Promise<void> {
  const emitter = createEmitter({
    transport: createHttpTransport({ url: server.url, token: TOKEN }),
    pseudonymKey: HMAC_KEY,
    service: "auth-service",
  });
  await emitter.emit({
    kind: "COLLECT",
    occurredAt: "2019-05-01T00:00:00Z",
    job: { namespace: "web", name: c.job },
    runId: "r1",
    outputs: [{ namespace: "warehouse", name: c.dataset, fields: [{ name: c.field, categories: ["user.contact.phone_number"] }] }],
    purposes: ["essential.service.security"],
    dataSubject: "customer",
    subjects: [c.subject],
  });
  await emitter.close();
}

/** A job's COMPLETE run declaring a SHARE with an external partner (our purpose facet) of a dataset's phone_sha256 column. */
function shareWithPartner(s: { eventTime: string; runId: string; job: string; dataset: string }) {
  return runEvent("COMPLETE", {
    eventTime: s.eventTime,
    run: {
      runId: s.runId,
      facets: {
        lineageAudit_purpose: {
          _producer: PRODUCER,
          _schemaURL: "https://github.com/lineage-audit/lineage-audit/blob/main/schemas/openlineage/LineageAuditPurposeRunFacet.json",
          kind: "SHARE",
          purposes: ["marketing.advertising.third_party.targeted"],
          dataSubject: "customer",
          recipient: { name: "partner-co", external: true },
        },
      },
    },
    job: { namespace: "warehouse-jobs", name: s.job },
    inputs: [
      {
        namespace: "warehouse",
        name: s.dataset,
        facets: { schema: { ...facet("SchemaDatasetFacet"), fields: [{ name: "phone_sha256" }] } },
      },
    ],
    outputs: [],
  });
}

describe("POST /api/v1/lineage", () => {
  it("takes a RunEvent's column lineage so a later share of the hashed column is flagged, with the OpenLineage hop in its path", async () => {
    await collectForSecurity({ job: "2fa-enrolment", dataset: "profile.contact_points", field: "phone_number", subject: "+15555550100" });

    expect((await post(runEvent("START"))).status).toBe(201);
    expect(await post(runEvent("COMPLETE"))).toEqual({ status: 201, body: undefined });
    // Delivered again (a client's retry): the same rows, nothing added.
    expect((await post(runEvent("COMPLETE"))).status).toBe(201);
    const share = shareWithPartner({
      eventTime: "2019-06-02T10:00:00.000Z",
      runId: "0190d8a0-1c2b-7c3d-8e4f-5a6b7c8d9e10",
      job: "ads.partner-export",
      dataset: "ads.matching_keys",
    });
    expect((await post(share)).status).toBe(201);
    await ctx.openLineage.settled();

    const violations = await ctx.store.query<{ rule_id: string; kind: string; service: string; path: string }>(
      `SELECT v.rule_id AS rule_id, v.kind AS kind, v.service AS service, p.lineage_path AS path
       FROM lineage.violations_v1 AS v INNER JOIN lineage.violation_paths_v1 AS p ON p.path_id = v.path_id ORDER BY rule_id`,
    );
    expect(violations.map((v) => [v.rule_id, v.kind, v.service])).toEqual([
      ["purpose-limitation", "SHARE", "warehouse-jobs"],
      ["security-contact-not-for-marketing", "SHARE", "warehouse-jobs"],
      ["security-data-not-shared-externally", "SHARE", "warehouse-jobs"],
    ]);
    const path = JSON.stringify(JSON.parse(violations[1]!.path));
    expect(path).toContain("ads.identity-graph");
    expect(path).toContain("HASH");
    expect(path).toContain("MASKED");

    const logged = await ctx.store.query<{ event_type: string; job_name: string; n: string; explanation: string; events: string }>(
      `SELECT event_type, job_name, toString(count()) AS n, any(explanation) AS explanation, toString(length(any(event_ids))) AS events
       FROM lineage.openlineage_events_v1 FINAL GROUP BY event_type, job_name ORDER BY job_name, event_type`,
    );
    expect(logged.map((r) => [r.job_name, r.event_type, r.n, r.events])).toEqual([
      ["ads.identity-graph", "COMPLETE", "1", "1"],
      ["ads.identity-graph", "START", "1", "0"],
      ["ads.partner-export", "COMPLETE", "1", "1"],
    ]);
    expect(logged[1]!.explanation).toMatch(/is a START event: lineage is taken when the run COMPLETEs; stored, no lineage/);
    const derives = await ctx.store.query<{ n: string }>(
      `SELECT toString(count()) AS n FROM lineage.events_v1 FINAL WHERE kind = 'DERIVE'`,
    );
    expect(derives[0]!.n).toBe("1");
  });

  it("answers as Marquez does, and dead-letters what breaks the schema with its JSON path, never its values", async () => {
    const bad = runEvent("COMPLETE", { run: { runId: "alice@example.com" } });
    const r = await post(bad);
    expect(r.status).toBe(422);
    expect(r.body!.error).toMatch(/^OpenLineage event: \/run\/runId /);
    expect(r.body!.error).not.toContain("alice");
    await ctx.openLineage.settled();
    const letters = await ctx.store.query<{ reason: string; redacted: number; payload_base64: string }>(
      `SELECT reason, redacted, payload_base64 FROM lineage.dead_letters_v1 WHERE source LIKE 'openlineage http %'`,
    );
    expect(letters).toHaveLength(1);
    expect(letters[0]!.reason).toMatch(/\/run\/runId/);
    expect(letters[0]!.payload_base64).toBe("");

    expect((await post("{ not json")).status).toBe(400);
    expect((await post(runEvent("COMPLETE"), { "content-type": "text/plain" })).status).toBe(415);
    expect((await post(runEvent("COMPLETE"), { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await post(JSON.stringify({ pad: "x".repeat(1_100_000) }))).status).toBe(413);
    const badTag = runEvent("COMPLETE", { eventTime: "2019-06-03T00:00:00Z" });
    (badTag.inputs[0]!.facets as Record<string, unknown>)["tags"] = {
      ...facet("TagsDatasetFacet"),
      tags: [{ key: "data_category", value: "user.contact.fax", field: "phone_number", source: "CONFIG" }],
    };
    const tagged = await post(badTag);
    expect(tagged.status).toBe(422);
    expect(tagged.body!.error).toBe(
      "OpenLineage event: /inputs/0/facets/tags/tags/0/value is not a fideslang data category ('user.contact.fax')",
    );
    await ctx.openLineage.settled();
    const count = await ctx.store.query<{ n: string }>(
      `SELECT toString(count()) AS n FROM lineage.dead_letters_v1 WHERE source LIKE 'openlineage http %'`,
    );
    // The bad JSON is dead-lettered too; the 415, 401 and 413 answers never reached the intake.
    expect(count[0]!.n).toBe("3");
  });

  it("answers 413 to a chunked body (no Content-Length) once it passes the limit, reads no further, and closes the connection", async () => {
    // 1.5 MiB in chunks of 64 KiB: the length is known only by reading.
    const answer = await new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
      const req = request(`${server.url}/api/v1/lineage`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}`, "transfer-encoding": "chunked" },
      });
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
      });
      req.on("error", reject);
      req.write(`{"pad":"`);
      for (let i = 0; i < 24; i++) req.write("x".repeat(64 * 1024));
      req.end(`"}`);
    });
    expect(answer).toEqual({
      status: 413,
      connection: "close",
      body: JSON.stringify({ error: "a RunEvent over 1048576 bytes is not taken" }),
    });
  });

  it("takes JobEvents and DatasetEvents as Marquez does, logs and explains each, and makes no lineage of them", async () => {
    const at = "2019-07-01T00:00:00.000Z";
    const base = { eventTime: at, producer: PRODUCER };
    const jobEvent = {
      ...base,
      schemaURL: "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/JobEvent",
      job: { namespace: "static-jobs", name: "nightly.export" },
      inputs: [{ namespace: "warehouse", name: "profile.contact_points" }],
      outputs: [{ namespace: "warehouse", name: "static.copy" }],
    };
    const datasetEvent = (name: string) => ({
      ...base,
      schemaURL: "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetEvent",
      dataset: {
        namespace: "warehouse",
        name,
        facets: { schema: { ...facet("SchemaDatasetFacet"), fields: [{ name: "phone_number" }] } },
      },
    });
    const edgesBefore = await ctx.store.query<{ n: string }>(`SELECT toString(count()) AS n FROM lineage.lineage_edges_v1`);
    for (const body of [jobEvent, datasetEvent("static.a"), datasetEvent("static.b"), datasetEvent("static.a")])
      expect((await post(body)).status).toBe(201);
    // A JobEvent with a run is neither kind: refused with the path of what it breaks.
    const mixed = await post({ ...datasetEvent("static.c"), run: { runId: RUN } });
    expect(mixed.status).toBe(422);
    expect(mixed.body!.error).toBe("OpenLineage event: / must have required property 'job'");
    await ctx.openLineage.settled();
    const logged = await ctx.store.query<{ event_kind: string; job_name: string; dataset: string; explanation: string; events: string }>(
      `SELECT event_kind, job_name, dataset, explanation, toString(length(event_ids)) AS events
       FROM lineage.openlineage_events_v1 FINAL WHERE event_kind != 'RunEvent' ORDER BY event_kind, dataset`,
    );
    expect(logged.map((r) => [r.event_kind, r.job_name, r.dataset, r.events])).toEqual([
      ["DatasetEvent", "", "warehouse/static.a", "0"],
      ["DatasetEvent", "", "warehouse/static.b", "0"],
      ["JobEvent", "nightly.export", "", "0"],
    ]);
    expect(logged[0]!.explanation).toBe("a DatasetEvent for warehouse/static.a: static dataset metadata, no run; stored, no lineage");
    expect(logged[2]!.explanation).toMatch(
      /^a JobEvent for static-jobs\/nightly.export \(1 input\(s\), 1 output\(s\)\): static job metadata/,
    );
    const edgesAfter = await ctx.store.query<{ n: string }>(`SELECT toString(count()) AS n FROM lineage.lineage_edges_v1`);
    expect(edgesAfter).toEqual(edgesBefore);
  });

  it("takes a gzip body (Content-Encoding: gzip, as OpenLineage clients send with compression on), bounded once decompressed", async () => {
    const gz = (text: string) => gzipSync(text);
    const event = runEvent("COMPLETE", { eventTime: "2019-08-01T00:00:00.000Z", job: { namespace: "gzip-jobs", name: "compressed" } });
    expect(await post(event, { "content-encoding": "gzip" }, gz)).toEqual({ status: 201, body: undefined });
    // A bomb: 64 KiB on the wire, 64 MiB once decompressed; refused without decompressing it all.
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
    expect(bomb.length).toBeLessThan(128 * 1024);
    const refused = await post("", { "content-encoding": "gzip" }, () => bomb);
    expect(refused).toEqual({ status: 413, body: { error: "a RunEvent over 1048576 bytes (decompressed) is not taken" } });
    expect(await post(event, { "content-encoding": "gzip" })).toEqual({
      status: 400,
      body: { error: "the body is not valid gzip (Content-Encoding: gzip)" },
    });
    expect((await post(event, { "content-encoding": "br" }, gz)).status).toBe(415);
    await ctx.openLineage.settled();
    const logged = await ctx.store.query<{ job_name: string; events: string }>(
      `SELECT job_name, toString(length(event_ids)) AS events FROM lineage.openlineage_events_v1 FINAL WHERE job_namespace = 'gzip-jobs'`,
    );
    expect(logged).toEqual([{ job_name: "compressed", events: "1" }]);
  });

  it("stores each run of a scheduled job, whose facets come again byte for byte (parsed once), with the lineage of its first", async () => {
    await collectForSecurity({ job: "recovery-phone", dataset: "security.recovery_phones", field: "phone", subject: "+15555550111" });
    const nightly = (day: number) =>
      runEvent("COMPLETE", {
        eventTime: `2019-09-0${day}T02:00:00.000Z`,
        run: { runId: `0190d8a0-1c2b-7c3d-8e4f-00000000090${day}` },
        job: { namespace: "warehouse-jobs", name: "ads.nightly-keys" },
        // The statistics change with each run, as a run's statistics do.
        ...hashesPhones("security.recovery_phones", "phone", "ads.nightly_keys", {
          outputStatistics: { ...facet("OutputStatisticsOutputDatasetFacet"), rowCount: 1000 + day },
        }),
      });
    for (let day = 1; day <= 5; day++) expect((await post(nightly(day))).status).toBe(201);
    const share = shareWithPartner({
      eventTime: "2019-09-09T10:00:00.000Z",
      runId: "0190d8a0-1c2b-7c3d-8e4f-000000000999",
      job: "ads.nightly-export",
      dataset: "ads.nightly_keys",
    });
    expect((await post(share)).status).toBe(201);
    await ctx.openLineage.settled();

    // Five runs, each its own DERIVE with the input's fields, all one lineage fact.
    const runs = await ctx.store.query<{ run_id: string; input_fields: string[]; fact_key: string }>(
      `SELECT run_id, input_fields, fact_key FROM lineage.events_v1 FINAL WHERE job_name = 'ads.nightly-keys' ORDER BY run_id`,
    );
    expect(runs.map((r) => r.run_id)).toEqual([1, 2, 3, 4, 5].map((d) => `0190d8a0-1c2b-7c3d-8e4f-00000000090${d}`));
    for (const r of runs) expect(r.input_fields.map((f) => f.split("#").at(-1))).toEqual(["phone", "user_id"]);
    expect(new Set(runs.map((r) => r.fact_key)).size).toBe(1);
    const edges = await ctx.store.query<{ from_field: string; to_field: string; masking: string }>(
      `SELECT DISTINCT from_field, to_field, masking FROM lineage.lineage_edges_v1 WHERE fact_key = {fact:String}`,
      { fact: runs[0]!.fact_key },
    );
    expect(edges).toEqual([{ from_field: "phone", to_field: "phone_sha256", masking: "MASKED" }]);
    // The hashed column carries the security label through every run: the share is flagged.
    const flagged = await ctx.store.query<{ rule_id: string }>(
      `SELECT rule_id FROM lineage.violations_v1 WHERE job_name = 'ads.nightly-export' ORDER BY rule_id`,
    );
    expect(flagged.map((v) => v.rule_id)).toContain("security-data-not-shared-externally");
  });
});
