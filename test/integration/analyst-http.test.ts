// Analysts' tools against the embedded store: @clickhouse/client over HTTP, with credentials;
// reads work, anything that writes is refused.
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type ClickHouseClient } from "@clickhouse/client";
import { openStore, type Store } from "../../services/store/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import { createEmitter, createInProcessTransport } from "../../services/emitter/index.ts";
import { startAnalystServer, type AnalystServer } from "../../services/api/index.ts";
import { emptyGroundTruth, generateScenario } from "../../services/demo/index.ts";
import { core, HMAC_KEY, randomDatabase, tempDir } from "./helpers.ts";

const dir = tempDir("lineage-analyst-");
let store: Store;
let server: AnalystServer;
let client: ClickHouseClient;
const truth = emptyGroundTruth();

beforeAll(async () => {
  store = await openStore({ path: dir, database: randomDatabase("an") });
  await store.migrate();
  const { taxonomy, policy, codec } = core();
  const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
  const emitter = createEmitter({ transport: createInProcessTransport(processor), pseudonymKey: HMAC_KEY, maxBatch: 2000 }, { codec });
  for (const input of generateScenario({ users: 1000, seed: 4 }, truth)) await emitter.emit(input);
  await emitter.close();
  server = await startAnalystServer(store, { port: 0, user: "analyst", password: "s3cret-for-tests" });
  client = createClient({ url: server.url, username: "analyst", password: "s3cret-for-tests" });
});
afterAll(async () => {
  await client.close();
  await server.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("ClickHouse HTTP interface for analysts", () => {
  it("answers @clickhouse/client queries over HTTP with credentials", async () => {
    expect((await client.ping()).success).toBe(true);
    const rows = await (
      await client.query({ query: "SELECT uniqExact(event_id) AS n FROM events_v1", format: "JSONEachRow" })
    ).json<{ n: string }>();
    expect(Number(rows[0]?.n)).toBe(truth.events);
    const users = await (
      await client.query({
        query: "SELECT uniqExact(subject_id) AS users FROM violation_subjects_v1 WHERE rule_id = {rule:String}",
        query_params: { rule: "security-contact-not-for-marketing" },
        format: "JSONEachRow",
      })
    ).json<{ users: string }>();
    expect(Number(users[0]?.users)).toBe(truth.affectedUsers);
  });

  it("refuses statements that write, and wrong credentials", async () => {
    await expect(client.command({ query: "DROP TABLE events_v1" })).rejects.toThrow(/would write to the store \(DropQuery\)/);
    await expect(client.insert({ table: "events_v1", values: [{ event_id: "x" }], format: "JSONEachRow" })).rejects.toThrow(
      /would write to the store/,
    );
    await expect(client.command({ query: "SELECT 1; DROP TABLE events_v1" })).rejects.toThrow(/only one statement at a time/);
    const intruder = createClient({ url: server.url, username: "analyst", password: "guess" });
    await expect(intruder.query({ query: "SELECT 1", format: "JSONEachRow" })).rejects.toThrow(/Authentication failed/);
    await intruder.close();
    const rows = await (await client.query({ query: "SELECT count() AS n FROM events_v1", format: "JSONEachRow" })).json<{ n: string }>();
    expect(Number(rows[0]?.n)).toBeGreaterThan(0);
  });
});
