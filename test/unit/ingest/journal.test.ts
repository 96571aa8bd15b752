import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { InputError, StoreError, TransportError } from "../../../services/errors/index.ts";
import { openIntakeJournal, type IntakeJournal, type IntakeJournalOptions, type JournalRecord } from "../../../services/ingest/index.ts";
import { entryFor } from "./journal-child.ts";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CHILD = fileURLToPath(new URL("./journal-child.ts", import.meta.url));

/** Runs journal-child.ts on dir and kills it (SIGKILL) once it has acknowledged `acks` appends. */
async function runChildUntilKilled(dir: string, acks: number): Promise<{ signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD, dir], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  onTestFinished(() => {
    child.kill("SIGKILL");
  });
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    if (stdout.split("\n").length > acks) child.kill("SIGKILL");
  });
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on("close", (_code, signal) => resolve(signal)));
  return { signal, stdout, stderr };
}

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "lineage-audit-journal-"));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function openJournal(options: IntakeJournalOptions): Promise<IntakeJournal> {
  const journal = await openIntakeJournal(options);
  onTestFinished(() => journal.close());
  return journal;
}

function segments(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(".log"))
    .sort();
}

function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Records as plain values, so bytes compare by content whatever their class. */
function plain(records: readonly JournalRecord[]): { seq: number; source: string; bytes: number[] }[] {
  return records.map((r) => ({ seq: r.seq, source: r.source, bytes: [...r.bytes] }));
}

/** A record of exactly `size` bytes on disk (header 10 + source + payload), its source "s<seq>" padded. */
function fixed(seq: number, size: number, payload = "x"): { source: string; bytes: Uint8Array } {
  const source = `s${String(seq).padStart(4, "0")}`;
  return { source, bytes: bytesOf(payload.padEnd(size - 10 - source.length, "-")) };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe("intake journal", () => {
  it("gives back appended records in order with their seq, source and bytes, also after reopening", async () => {
    const dir = freshDir();
    const binary = Uint8Array.from({ length: 256 }, (_, i) => i);
    const entries = [
      { source: "http 127.0.0.1:5555 #1", bytes: bytesOf('{"eventType":"START"}') },
      { source: "http [::1]:80 #2 — café 🚀", bytes: new Uint8Array(0) },
      { source: "", bytes: binary },
    ];
    const expected = entries.map((e, i) => ({ seq: i + 1, source: e.source, bytes: [...e.bytes] }));

    const journal = await openJournal({ dir });
    expect(journal.recovered).toEqual({ records: 0, truncatedBytes: 0 });
    const memo = { parsed: true };
    await journal.append([{ ...entries[0]!, memo }]);
    await journal.append(entries.slice(1));
    expect(journal.waiting).toBe(3);
    expect(journal.pendingBytes).toBe(entries.reduce((n, e) => n + Buffer.byteLength(e.source) + e.bytes.length, 0));
    const firstTwo = journal.take(2);
    expect(plain(firstTwo)).toEqual(expected.slice(0, 2));
    expect(firstTwo.map((r) => r.memo)).toEqual([memo, undefined]);
    expect(plain(journal.take(10))).toEqual(expected.slice(2));
    expect(journal.take(10)).toEqual([]);
    await journal.close();

    const reopened = await openJournal({ dir });
    expect(reopened.recovered).toEqual({ records: 3, truncatedBytes: 0 });
    const recovered = reopened.take(10);
    expect(plain(recovered)).toEqual(expected);
    expect(recovered[0]!.memo).toBeUndefined(); // never written
    await reopened.append([{ source: "after", bytes: bytesOf("more") }]);
    expect(reopened.take(10).map((r) => r.seq)).toEqual([4]);
  });

  it("commits concurrent appends together, with far fewer fdatasyncs than appends", async () => {
    const dir = freshDir();
    const probe = await open(dir, "r");
    const datasync = vi.spyOn(Object.getPrototypeOf(probe) as FileHandle, "datasync");
    onTestFinished(() => datasync.mockRestore());
    await probe.close();
    const journal = await openJournal({ dir });
    const first = Array.from({ length: 500 }, (_, i) => journal.append([{ source: `#${i + 1}`, bytes: bytesOf(`payload ${i + 1}`) }]));
    // Appends made while that group's write and fdatasync run go into the next group.
    await new Promise((resolve) => setImmediate(resolve));
    const second = Array.from({ length: 300 }, (_, i) => journal.append([{ source: `#${i + 501}`, bytes: bytesOf(`payload ${i + 501}`) }]));
    await Promise.all([...first, ...second]);

    expect(journal.syncs).toBeGreaterThanOrEqual(1);
    expect(journal.syncs).toBeLessThanOrEqual(5);
    expect(datasync).toHaveBeenCalledTimes(journal.syncs);
    const records = journal.take(10_000);
    expect(records).toHaveLength(800);
    records.forEach((record, i) => {
      expect(record.seq).toBe(i + 1);
      expect(record.source).toBe(`#${i + 1}`);
      expect(Buffer.from(record.bytes).toString()).toBe(`payload ${i + 1}`);
    });
  });

  it("makes records takeable only once their append has resolved", async () => {
    const journal = await openJournal({ dir: freshDir() });
    let readable = false;
    void journal.readable().then(() => (readable = true));
    const appended = journal.append([{ source: "a", bytes: bytesOf("one") }]);
    expect(journal.take(10)).toEqual([]);
    expect(journal.waiting).toBe(0);
    expect(journal.pendingBytes).toBe(4);
    await new Promise((resolve) => setImmediate(resolve));
    expect(readable).toBe(false);
    await appended;
    expect(readable).toBe(true);
    expect(journal.waiting).toBe(1);
    expect(journal.take(10).map((r) => r.seq)).toEqual([1]);
  });

  it("resolves readable() when the journal closes and refuses appends after close", async () => {
    const dir = freshDir();
    const journal = await openIntakeJournal({ dir });
    const readable = journal.readable();
    const inFlight = journal.append([{ source: "a", bytes: bytesOf("before close") }]);
    await journal.close();
    await readable;
    await inFlight;
    expect(existsSync(join(dir, "lock"))).toBe(false);
    const error = await rejection(journal.append([{ source: "b", bytes: bytesOf("late") }]));
    expect(error).toBeInstanceOf(TransportError);

    const reopened = await openJournal({ dir });
    expect(reopened.take(10).map((r) => Buffer.from(r.bytes).toString())).toEqual(["before close"]);
  });

  it("deletes done segments and reopens after the checkpoint with seq continuing", async () => {
    const dir = freshDir();
    const journal = await openJournal({ dir, segmentBytes: 300 });
    for (let seq = 1; seq <= 20; seq++) await journal.append([fixed(seq, 120)]);
    const before = segments(dir);
    expect(before.length).toBeGreaterThanOrEqual(6);
    expect(before[0]).toBe("00000000000000000001.log");

    expect(journal.take(12).map((r) => r.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    await journal.done(12);
    expect(readFileSync(join(dir, "checkpoint"), "utf8")).toBe("12\n");
    expect(journal.pendingBytes).toBe(8 * 110);
    const firsts = segments(dir).map((name) => Number(name.slice(0, 20)));
    expect(firsts.length).toBeLessThan(before.length);
    // The oldest kept segment holds seq 13; no kept segment is wholly done.
    expect(firsts[0]).toBeLessThanOrEqual(13);
    expect(firsts[1]! - 1).toBeGreaterThan(12);

    await journal.done(5); // older than the checkpoint: ignored
    expect(readFileSync(join(dir, "checkpoint"), "utf8")).toBe("12\n");
    expect(await rejection(journal.done(13))).toBeInstanceOf(InputError); // not taken yet
    await journal.close();

    const reopened = await openJournal({ dir, segmentBytes: 300 });
    expect(reopened.recovered.records).toBe(8);
    expect(reopened.pendingBytes).toBe(8 * 110);
    const records = reopened.take(100);
    expect(plain(records)).toEqual(
      Array.from({ length: 8 }, (_, i) => {
        const entry = fixed(i + 13, 120);
        return { seq: i + 13, source: entry.source, bytes: [...entry.bytes] };
      }),
    );
    await reopened.append([fixed(21, 120)]);
    expect(reopened.take(10).map((r) => r.seq)).toEqual([21]);
    await reopened.done(21);
    expect(reopened.pendingBytes).toBe(0);
    expect(segments(dir)).toHaveLength(1);
  });

  const GARBAGE = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0xff, 0xfe, 0x7f, 0x10, 0x20]);
  it.each([
    { name: "a record cut 3 bytes short", cut: 3, garbage: Buffer.alloc(0) },
    { name: "garbage after the last record", cut: 0, garbage: GARBAGE },
    { name: "a record cut short followed by garbage", cut: 3, garbage: GARBAGE },
    { name: "zeros after the last record", cut: 0, garbage: Buffer.alloc(4096) },
  ])("drops a torn tail ($name) and appends after it", async ({ cut, garbage }) => {
    const dir = freshDir();
    const journal = await openJournal({ dir });
    for (let seq = 1; seq <= 10; seq++) await journal.append([fixed(seq, 100)]);
    await journal.close();
    const [segment] = segments(dir);
    const file = join(dir, segment!);
    truncateSync(file, statSync(file).size - cut);
    appendFileSync(file, garbage);

    const reopened = await openJournal({ dir });
    const kept = cut > 0 ? 9 : 10;
    expect(reopened.recovered).toEqual({ records: kept, truncatedBytes: (cut > 0 ? 100 - cut : 0) + garbage.length });
    expect(statSync(file).size).toBe(kept * 100);
    expect(reopened.take(100).map((r) => r.seq)).toEqual(Array.from({ length: kept }, (_, i) => i + 1));
    await reopened.append([fixed(kept + 1, 100, "after the tear")]);
    await reopened.close();

    const again = await openJournal({ dir });
    expect(again.recovered).toEqual({ records: kept + 1, truncatedBytes: 0 });
    const last = again.take(100).at(-1)!;
    expect(last.seq).toBe(kept + 1);
    expect(Buffer.from(last.bytes).toString()).toMatch(/^after the tear-+$/);
  });

  it("refuses to open with a corrupt record in an older segment, naming the file and offset but not the content", async () => {
    const dir = freshDir();
    const journal = await openJournal({ dir, segmentBytes: 400 });
    for (let seq = 1; seq <= 12; seq++) await journal.append([fixed(seq, 100, "SECRET-PAYLOAD")]);
    await journal.close();
    const names = segments(dir);
    expect(names.length).toBeGreaterThanOrEqual(3);
    const file = join(dir, names[1]!);
    const bytes = readFileSync(file);
    bytes[100 + 30] = bytes[100 + 30]! ^ 0x01; // inside the second record's payload
    writeFileSync(file, bytes);

    const error = await rejection(openIntakeJournal({ dir, segmentBytes: 400 }));
    expect(error).toBeInstanceOf(StoreError);
    const storeError = error as StoreError;
    expect(storeError.context).toMatchObject({ file, offset: 100 });
    expect(storeError.message).toContain(file);
    expect(storeError.message).toContain("byte 100");
    expect(storeError.message).toContain("checksum");
    expect(storeError.message).not.toContain("SECRET");
    expect(storeError.message).not.toContain("\n");
    expect(existsSync(join(dir, "lock"))).toBe(false);
  });

  it("refuses a bad record in the newest segment when valid records follow it", async () => {
    const dir = freshDir();
    const journal = await openJournal({ dir });
    for (let seq = 1; seq <= 5; seq++) await journal.append([fixed(seq, 100)]);
    await journal.close();
    const file = join(dir, segments(dir)[0]!);
    const bytes = readFileSync(file);
    bytes[200 + 4] = bytes[200 + 4]! ^ 0xff; // the third record's CRC
    writeFileSync(file, bytes);

    const error = await rejection(openIntakeJournal({ dir }));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).context).toMatchObject({ file, offset: 200 });
    expect(statSync(file).size).toBe(500); // nothing truncated
  });

  it("refuses a segment, checkpoint or lock larger than the journal writes before reading it", async () => {
    const dir = freshDir();
    const journal = await openJournal({ dir });
    for (let seq = 1; seq <= 3; seq++) await journal.append([fixed(seq, 100)]);
    await journal.close();
    const file = join(dir, segments(dir)[0]!);
    // Sparse: 1 TiB on paper, nothing on disk. Read whole, it could not even be allocated.
    const huge = 2 ** 40;
    truncateSync(file, huge);
    const error = await rejection(openIntakeJournal({ dir }));
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).message).toBe(
      `intake journal segment ${file} is ${huge} bytes, more than a segment grows to (${64 * 2 ** 20 + 256 * 2 ** 20 + 10}); move it out of ${dir}`,
    );
    expect((error as StoreError).context).toMatchObject({ file, bytes: huge });
    expect(existsSync(join(dir, "lock"))).toBe(false);
    truncateSync(file, 300); // as written
    const reopened = await openJournal({ dir });
    expect(reopened.waiting).toBe(3);
    await reopened.close();

    // A checkpoint is one seq: a large one holds none (and the lock, one pid).
    writeFileSync(join(dir, "checkpoint"), "1".repeat(5_000_000));
    const badCheckpoint = await rejection(openIntakeJournal({ dir }));
    expect((badCheckpoint as StoreError).message).toContain("does not hold a seq");
    writeFileSync(join(dir, "checkpoint"), "0\n");
    writeFileSync(join(dir, "lock"), "1".repeat(5_000_000));
    expect(((await rejection(openIntakeJournal({ dir }))) as StoreError).message).toContain("holds no pid");
  });

  it("refuses a record over maxRecordBytes without writing anything of the append", async () => {
    const dir = freshDir();
    const journal = await openJournal({ dir, maxRecordBytes: 100, maxPendingBytes: 1000 });
    const error = await rejection(
      journal.append([
        { source: "ok", bytes: new Uint8Array(98) },
        { source: "big", bytes: new Uint8Array(98) },
      ]),
    );
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).context).toMatchObject({ index: 1, bytes: 101, maxRecordBytes: 100 });
    expect(await rejection(journal.append([{ source: "s".repeat(70_000), bytes: new Uint8Array(0) }]))).toBeInstanceOf(InputError);
    expect(journal.pendingBytes).toBe(0);
    expect(journal.waiting).toBe(0);
    expect(segments(dir)).toEqual([]);

    await journal.append([{ source: "ok", bytes: new Uint8Array(98) }]);
    expect(journal.take(10).map((r) => r.seq)).toEqual([1]);
  });

  it("refuses appends past maxPendingBytes as retriable until records are done", async () => {
    const journal = await openJournal({ dir: freshDir(), maxRecordBytes: 600, maxPendingBytes: 1000 });
    await journal.append([{ source: "a", bytes: new Uint8Array(599) }]);
    expect(journal.pendingBytes).toBe(600);
    const error = await rejection(journal.append([{ source: "b", bytes: new Uint8Array(499) }]));
    expect(error).toBeInstanceOf(TransportError);
    expect((error as TransportError).retriable).toBe(true);
    expect((error as TransportError).message).toBe("the intake journal holds 600 bytes not yet stored; retry");
    expect(journal.waiting).toBe(1);

    const [record] = journal.take(10);
    expect(journal.pendingBytes).toBe(600); // taken is not done
    await journal.done(record!.seq);
    expect(journal.pendingBytes).toBe(0);
    await journal.append([{ source: "b", bytes: new Uint8Array(499) }]);
    expect(journal.take(10).map((r) => r.seq)).toEqual([2]);
  });

  it("refuses a directory locked by a live process and takes over the lock of a dead one", async () => {
    const dir = freshDir();
    const journal = await openJournal({ dir });
    expect(readFileSync(join(dir, "lock"), "utf8")).toBe(`${process.pid}\n`);
    const inUse = await rejection(openIntakeJournal({ dir }));
    expect(inUse).toBeInstanceOf(StoreError);
    expect((inUse as StoreError).message).toContain(`the intake journal ${dir} is in use by process ${process.pid}`);
    await journal.append([{ source: "a", bytes: bytesOf("kept") }]);
    await journal.close();

    writeFileSync(join(dir, "lock"), `${process.ppid}\n`);
    const other = await rejection(openIntakeJournal({ dir }));
    expect((other as StoreError).message).toContain(`in use by process ${process.ppid}`);

    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    writeFileSync(join(dir, "lock"), `${dead}\n`);
    const reopened = await openJournal({ dir });
    expect(readFileSync(join(dir, "lock"), "utf8")).toBe(`${process.pid}\n`);
    expect(reopened.take(10).map((r) => Buffer.from(r.bytes).toString())).toEqual(["kept"]);
    await reopened.close();
    expect(existsSync(join(dir, "lock"))).toBe(false);
    expect(readdirSync(dir).filter((name) => name.startsWith("lock"))).toEqual([]);
  });

  it("recovers every acknowledged record intact each time the writing process is killed", async () => {
    const dir = freshDir();
    let acknowledged = 0;
    for (let round = 1; round <= 3; round++) {
      const { signal, stdout, stderr } = await runChildUntilKilled(dir, 300);
      expect(stderr).toBe("");
      expect(signal).toBe("SIGKILL");
      // Each whole line was printed after its append resolved (a line cut by the kill is left out).
      const lines = stdout.split("\n").slice(0, -1);
      expect(lines.length).toBeGreaterThanOrEqual(300);
      for (const line of lines) {
        const match = /^(\d+) (\d+)$/.exec(line);
        expect(match).not.toBeNull();
        acknowledged = Math.max(acknowledged, Number(match![2]));
      }

      // The child's lock is stale now: opening takes it over.
      const journal = await openIntakeJournal({ dir, segmentBytes: 64 * 1024 });
      const records = journal.take(Number.MAX_SAFE_INTEGER);
      await journal.close();
      expect(records.length).toBeGreaterThanOrEqual(acknowledged);
      records.forEach((record, i) => {
        expect(record.seq).toBe(i + 1);
        const entry = entryFor(record.seq);
        expect(record.source).toBe(entry.source);
        expect(Buffer.from(record.bytes).equals(entry.bytes)).toBe(true);
      });
    }
    expect(segments(dir).length).toBeGreaterThan(3);
  });
});
