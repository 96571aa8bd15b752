// Issue 9 against the real engine (chDB): the processor records accepted events, the recorder
// stores per-subject holdings, and the exact count is a query; checked on the four-line
// example and, on random histories fed in random batches and orders, against the reference.
import { rmSync } from "node:fs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Transform, type DataAccessEvent } from "../../services/codec/index.ts";
import { createProcessor } from "../../services/processor/index.ts";
import { affectedSummary, createProvenanceRecorder, exactAffected, openStore, type Store } from "../../services/store/index.ts";
import { historyArb, withIds } from "../reference/histories.ts";
import { evaluateProvenance, summarize } from "../reference/provenance.ts";
import { ADS, collect, deriveFields, map, PHONE, pseudo, read, ref, SECURITY, use } from "../unit/helpers.ts";
import { core, randomDatabase, tempDir } from "./helpers.ts";

const RULE = "security-contact-not-for-marketing";
const DAY = 86_400_000;
const day = (n: number) => Date.UTC(2019, 0, 1) + n * DAY;
const [alice, bob, carol, dave, erin] = ["alice", "bob", "carol", "dave", "erin"].map((n) => pseudo(n)) as [
  string,
  string,
  string,
  string,
  string,
];

const dir = tempDir();
let store: Store;
const { taxonomy, policy, codec } = core();

beforeAll(async () => {
  store = await openStore({ path: dir, database: randomDatabase("exact") });
  await store.migrate();
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A processor recording into the store's per-subject model; each call of the result is one batch. */
function pipeline() {
  const processor = createProcessor({ policy, taxonomy, codec }, { sink: store, provenance: createProvenanceRecorder(policy, store) });
  return async (...events: DataAccessEvent[]) => {
    const result = await processor.processEvents(events.map((event, i) => ({ event, source: `test#${i}` })));
    expect(result.rejected).toEqual([]);
  };
}

describe("exact affected users in the store", () => {
  it("counts alice alone in the issue's four-line example, where the field level counts 3", async () => {
    const batch = pipeline();
    const match = use([read("profile.contact", "phone")], [ADS], { subjects: [alice, carol, erin], occurredAt: day(3) });
    // The use arrives first and the copy last: the answer must not depend on arrival order.
    await batch(match);
    await batch(
      collect("accounts.users", { phone: [PHONE] }, ["essential.service", "marketing.advertising"], {
        subjects: [carol, dave],
        occurredAt: day(1),
      }),
      collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { subjects: [alice, bob], occurredAt: day(1) }),
    );
    await batch(
      deriveFields(
        [map(ref("profile.contact", "phone"), [ref("accounts.users", "phone"), ref("security.two_factor", "phone")], Transform.copy)],
        { occurredAt: day(2) },
      ),
    );
    expect((await exactAffected(store, RULE)).exact).toEqual({ users: 1, records: 1, violatingEvents: 1, first: day(3), last: day(3) });
    expect((await exactAffected(store, RULE, { to: day(3) })).exact).toEqual({
      users: 0,
      records: 0,
      violatingEvents: 0,
      first: null,
      last: null,
    });
    const fieldLevel = await affectedSummary(store, { ruleId: RULE });
    expect(fieldLevel.subjects).toBe(3);
  });

  it("judges a January use by the holdings of January when the lineage arrives in March", async () => {
    const batch = pipeline();
    const jan = Date.UTC(2020, 0, 15);
    const mar = Date.UTC(2020, 2, 1);
    const subject = pseudo("january");
    const january = use([read("security.keys", "phone")], [ADS], { subjects: [subject], occurredAt: jan });
    await batch(january);
    // Collected in March: not held in January.
    await batch(collect("security.keys", { phone: [PHONE] }, [SECURITY], { subjects: [subject], occurredAt: mar }));
    const window = { from: jan, to: jan + 1 };
    expect((await exactAffected(store, RULE, window)).exact.users).toBe(0);
    expect(
      (await affectedSummary(store, { ruleId: RULE, from: new Date(jan).toISOString(), to: new Date(jan + 1).toISOString() })).subjects,
    ).toBe(1);
    // Collected in December, but only heard of in March: held in January.
    await batch(collect("security.keys", { phone: [PHONE] }, [SECURITY], { subjects: [subject], occurredAt: Date.UTC(2019, 11, 1) }));
    expect((await exactAffected(store, RULE, window)).exact.users).toBe(1);
  });

  it("equals the reference's exact answer on random histories, in random batches and arrival orders", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        historyArb({ maxEvents: 12 }),
        fc.integer({ min: 1, max: 4 }),
        fc.boolean(),
        async (generated, batches, reversed) => {
          // Ids of their own per run: the store keeps one content per event id.
          const history = withIds(generated, ++run);
          const reference = evaluateProvenance(history, policy);
          const batch = pipeline();
          const arrival = reversed ? [...history].reverse() : history;
          const size = Math.ceil(arrival.length / batches);
          for (let i = 0; i < arrival.length; i += size) await batch(...arrival.slice(i, i + size));
          const rules = [...new Set(reference.verdicts.map((v) => v.ruleId))];
          for (const rule of rules) {
            for (const window of [{}, { to: day(2) }, { from: day(2) }]) {
              const answer = await exactAffected(store, rule, window);
              const expected = summarize(reference, rule, window);
              expect({ rule, window, answer }).toEqual({
                rule,
                window,
                answer: {
                  ruleId: rule,
                  exact: expected.exact,
                  sharedOutside: expected.sharedOutside.exact,
                  onDeclarationOnly: expected.onDeclarationOnly,
                },
              });
            }
          }
        },
      ),
      { numRuns: 15 },
    );
  });
});
