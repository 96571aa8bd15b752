import { it, expect } from "vitest";
import { createEmitter, type Transport } from "../../../services/emitter/index.ts";
const KEY = "ab".repeat(32);
const input = (i: number) => ({ kind: "USE" as const, job: { namespace: "n", name: "j" }, runId: "r", dataSubject: "customer", inputs: [{ namespace: "wh", name: "d" }], purposes: ["essential.service"], subjects: [`u${i}`] });
it("probe", async () => {
  const sizes: number[] = [];
  const t: Transport = { async send(m) { sizes.push(m.length); return { accepted: m.length, rejected: [] }; }, async close() {} };
  const e = createEmitter({ transport: t, pseudonymKey: KEY, service: "s", maxBatch: 3, lingerMs: 10000 });
  await Promise.all(Array.from({ length: 7 }, (_, i) => e.emit(input(i))));
  await e.flush();
  console.log("concurrent sizes", sizes);
  // in flight
  let cur = 0, max = 0; const pend: (() => void)[] = [];
  const t2: Transport = { send(m) { cur++; max = Math.max(max, cur); return new Promise((res) => pend.push(() => { cur--; res({ accepted: m.length, rejected: [] }); })); }, async close() {} };
  const e2 = createEmitter({ transport: t2, pseudonymKey: KEY, service: "s", maxBatch: 2, lingerMs: 10000, maxInFlight: 1 });
  await e2.emit(input(1)); await e2.emit(input(2));
  await e2.emit(input(3));
  const f = e2.flush();
  await new Promise((r) => setTimeout(r, 10));
  console.log("max in flight", max, cur);
  while (pend.length) pend.shift()!();
  await f;
  try { await e2.emit({ ...input(1), job: undefined } as never); } catch (err) { console.log(String(err)); }
});
