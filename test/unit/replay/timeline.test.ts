import { describe, expect, it } from "vitest";
import { Transform, type DataAccessEvent } from "../../../services/codec/index.ts";
import { createLineageTimeline } from "../../../services/replay/timeline.ts";
import { createAuditor, emptyBatch } from "../../../services/processor/index.ts";
import { collect, defaultPolicy, deriveFields, EMAIL, map, pseudo, read, ref, use, ADS } from "../helpers.ts";

/** Yields `facts` one at a time, counting how many were read. */
function source(facts: DataAccessEvent[]) {
  const read = { n: 0 };
  async function* iterate() {
    for (const f of facts) {
      read.n++;
      yield f;
    }
  }
  return { facts: iterate(), read };
}

describe("lineage timeline (replay)", () => {
  const t = (day: number) => Date.UTC(2019, 0, day);

  it("applies each fact once, when asked for a time at or after it occurred, reading one fact ahead", async () => {
    const facts = [1, 5, 5, 9].map((day) => collect(`t.d${day}`, { v: ["user.name"] }, ["essential.service"], { occurredAt: t(day) }));
    const { facts: iterable, read: count } = source(facts);
    const applied: string[] = [];
    const timeline = createLineageTimeline(iterable, (f) => applied.push(f.eventId));
    expect(await timeline.advanceTo(t(0))).toBe(0);
    expect(count.n).toBe(1);
    expect(await timeline.advanceTo(t(4))).toBe(1);
    expect(await timeline.advanceTo(t(4))).toBe(0);
    // The same millisecond counts: both facts of day 5.
    expect(await timeline.advanceTo(t(5))).toBe(2);
    expect(count.n).toBe(4);
    expect(await timeline.advanceTo(t(8))).toBe(0);
    expect(await timeline.advanceTo(t(30))).toBe(1);
    expect(await timeline.advanceTo(t(31))).toBe(0);
    expect(applied).toEqual(facts.map((f) => f.eventId));
    expect(timeline.applied).toBe(4);
  });

  it("refuses facts that are not in time order", async () => {
    const facts = [3, 2].map((day) => collect(`o.d${day}`, { v: [] }, ["essential.service"], { occurredAt: t(day) }));
    const timeline = createLineageTimeline(source(facts).facts, () => undefined);
    await expect(timeline.advanceTo(t(10))).rejects.toThrow(/out of time order/);
  });

  it("judges a use by the lineage of its time: a DERIVE that occurs later does not reach an earlier use", async () => {
    const { policy, taxonomy } = defaultPolicy();
    const auditor = createAuditor(policy, taxonomy, { recheckWindow: 0, maxPending: 0 });
    const facts = [
      collect("security.two_factor", { email: [EMAIL] }, ["essential.service.security"], { occurredAt: t(1) }),
      collect("ads.keys", { campaign: [] }, ["marketing.advertising"], { occurredAt: t(1) }),
      deriveFields([map(ref("ads.keys", "email_key"), [ref("security.two_factor", "email")], Transform.hash)], { occurredAt: t(10) }),
    ];
    const timeline = createLineageTimeline(source(facts).facts, (f) => auditor.restore(f));
    const verdicts: string[][] = [];
    for (const day of [5, 10, 20]) {
      const e = use([read("ads.keys", "email_key")], [ADS], { occurredAt: t(day), subjects: [pseudo(day)] });
      await timeline.advanceTo(e.occurredAt);
      const out = emptyBatch();
      auditor.handle(e, { writerFingerprint: "test", writerVersion: 0 }, out);
      verdicts.push(out.violations.map((v) => v.rule_id).filter((r) => r === "security-contact-not-for-marketing"));
    }
    expect(verdicts).toEqual([[], ["security-contact-not-for-marketing"], ["security-contact-not-for-marketing"]]);
  });
});
