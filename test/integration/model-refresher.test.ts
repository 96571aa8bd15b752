// The process's one refresher of the exact model (services/store/refresher.ts), on the real store:
// callers that need what was stored by the same time share one refresh, a later need queues one
// behind it, and never two run at once.
import { rmSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { createProcessor } from "../../services/processor/index.ts";
import { createModelRefresher, openStore, Table } from "../../services/store/index.ts";
import { ADS, collect, PHONE, pseudo, read, SECURITY, use } from "../unit/helpers.ts";
import { core, randomDatabase, tempDir } from "./helpers.ts";

const dir = tempDir("lineage-refresher-");
const { taxonomy, policy, codec } = core();
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the model refresher", () => {
  it("shares a refresh among callers that need what was stored by then, queues one for a later need, and runs one at a time", async () => {
    const store = await openStore({ path: dir, database: randomDatabase("refresher") });
    await store.migrate();
    const processor = createProcessor({ policy, taxonomy, codec }, { sink: store });
    const feed = (events: Parameters<typeof codec.encode>[0][]) =>
      processor.processMessages(events.map((e, i) => ({ bytes: codec.encode(e), source: `r/${e.eventId}/${i}` })));
    await feed([collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { subjects: [pseudo(1)] })]);
    const versions = async () =>
      Number((await store.query<{ n: string }>(`SELECT toString(count()) AS n FROM ${store.database}.${Table.provenanceVersions}`))[0]?.n);

    const refresher = createModelRefresher(store, policy);
    expect(refresher.updating).toBe(false);
    const since = Date.now();
    const first = refresher.upToDate(since);
    expect(refresher.upToDate(since)).toBe(first); // what was stored by then: the same refresh
    expect(refresher.updating).toBe(true);
    // Stored after the first began: a second refresh, queued behind it, shared by later needs.
    await feed([use([read("security.two_factor", "phone")], [ADS], { subjects: [pseudo(1)] })]);
    const second = refresher.upToDate(Date.now() + 1);
    expect(second).not.toBe(first);
    expect(refresher.upToDate(Date.now() + 2)).toBe(second);
    await first;
    expect(await versions()).toBe(1);
    expect(refresher.updating).toBe(true); // the second runs after the first, never beside it
    await second;
    expect(refresher.updating).toBe(false);
    expect(await versions()).toBe(2); // it read the use stored after the first began
    await refresher.idle();
    await store.close();
  });
});
