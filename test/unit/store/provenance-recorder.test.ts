import { describe, expect, it } from "vitest";
import type { ProvenanceRows } from "../../../services/provenance/index.ts";
import { createProvenanceRecorder, type Store } from "../../../services/store/index.ts";
import { ADS, collect, defaultPolicy, PHONE, pseudo, read, SECURITY, use } from "../helpers.ts";

const { policy } = defaultPolicy();
const alice = pseudo("alice");

/** A store that only takes snapshots, failing the first `failures` writes. */
function snapshotStore(failures = 0) {
  const written: { version: number; rows: ProvenanceRows }[] = [];
  const store = {
    writeProvenance(version: number, rows: ProvenanceRows) {
      if (failures-- > 0) return Promise.reject(new Error("store down"));
      written.push({ version, rows });
      return Promise.resolve();
    },
  } as unknown as Store;
  return { store, written };
}

describe("provenance recorder", () => {
  it("writes a newer complete snapshot for each batch that brings a new event, and none for a batch already seen", async () => {
    const { store, written } = snapshotStore();
    const recorder = createProvenanceRecorder(policy, store);
    const collected = collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { subjects: [alice], occurredAt: 1 });
    const used = use([read("security.two_factor", "phone")], [ADS], { subjects: [alice], occurredAt: 2 });
    await recorder.record([used]);
    await recorder.record([collected]);
    await recorder.record([collected, used]);
    expect(written).toHaveLength(2);
    expect((written[1]?.version ?? 0) > (written[0]?.version ?? 0)).toBe(true);
    expect(written[1]?.rows.holdings.length).toBeGreaterThan(0);
    expect(new Set(written[1]?.rows.reads.map((r) => r.event_id))).toEqual(new Set([used.eventId]));
  });

  it("writes the snapshot again when the batch is retried after a failed write", async () => {
    const { store, written } = snapshotStore(1);
    const recorder = createProvenanceRecorder(policy, store);
    const collected = collect("security.two_factor", { phone: [PHONE] }, [SECURITY], { subjects: [alice], occurredAt: 1 });
    await expect(recorder.record([collected])).rejects.toThrow("store down");
    await recorder.record([collected]);
    expect(written).toHaveLength(1);
    expect(written[0]?.rows.holdings.length).toBeGreaterThan(0);
  });
});
