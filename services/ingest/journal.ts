/**
 * The intake journal: a write-ahead log that lets serve answer "201 stored" for a RunEvent as soon
 * as it is on disk, while a single consumer writes to the store in large batches later. After a
 * crash at any point, opening the journal again yields every record whose append had resolved and
 * that was not marked done (at least once: the consumer's writes are idempotent), never a partial one.
 *
 * Files in the journal's directory:
 *
 *   00000000000000000001.log  a segment, named by the seq of its first record (20 digits). Records
 *                             follow one another with no gaps; the n-th (from 0) has seq name + n:
 *                               u32le length of the rest | u32le CRC-32 (zlib) of the rest |
 *                               u16le source byte length | source UTF-8 | payload bytes
 *                             A new segment starts once the current one has reached segmentBytes.
 *   checkpoint                the last done seq, decimal ASCII and a newline; written to
 *                             checkpoint.tmp, fdatasync'd, then renamed over (never torn).
 *   lock                      the pid of the process that has the journal open.
 *
 * Appends are group-committed: every append made while a write + fdatasync runs goes into the
 * next one. A segment's name is made durable (directory fsync) before any record in it is
 * acknowledged, and the checkpoint before the segments it releases are deleted.
 *
 * At open, a bad record at the end of the newest segment, with no valid record after it, is the
 * tail of a write cut short by a crash: nothing in it was acknowledged, so it is truncated away.
 * A bad record anywhere else is corruption and opening fails, naming the file and byte offset.
 * (A crash of the machine that persists a later page of an unsynced write but not an earlier
 * one is reported as corruption too: it is rare, and refusing loses nothing.)
 */
import { link, mkdir, open, readdir, rename, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { ConfigError, InputError, StoreError, TransportError } from "../errors/index.ts";

/** One record handed to the journal. */
export interface JournalEntry {
  /** Where it came from, e.g. "http 127.0.0.1:5555 #12": never content, as it may be logged. */
  source: string;
  /** The payload; kept by reference until taken, so it must not change after append. */
  bytes: Uint8Array;
  /** Handed back by take() in this process only (say, the parsed payload): never written, so absent on records recovered at open, and not counted in pendingBytes. */
  memo?: unknown;
}

/** A durable record as the consumer takes it. */
export interface JournalRecord extends JournalEntry {
  /** Global, strictly increasing from 1 in append order, continuing across reopen. */
  seq: number;
}

export interface IntakeJournalOptions {
  /** Directory of the journal; created (with its parents) if missing. */
  dir: string;
  /** A new segment file starts once the current one holds this many bytes. @default 67108864 (64 MiB) */
  segmentBytes?: number;
  /** Largest record (payload + source UTF-8 bytes) an append takes; also bounds lengths read back at open (never below the default). @default 1052672 (1 MiB + 4 KiB) */
  maxRecordBytes?: number;
  /** Bytes of records appended and not yet done beyond which appends are refused as retriable. @default 268435456 (256 MiB) */
  maxPendingBytes?: number;
}

/** What opening the journal found. */
export interface JournalRecovery {
  /** Records read back that were not done (they are waiting). */
  readonly records: number;
  /** Bytes cut from the end of the newest segment: the torn tail of a write a crash interrupted. */
  readonly truncatedBytes: number;
}

export interface IntakeJournal {
  /** The journal's directory. */
  readonly dir: string;
  /** What opening found: records read back and torn bytes truncated. */
  readonly recovered: JournalRecovery;
  /** Resolves once the entries are on disk (write + fdatasync), in one group commit with every append made while the previous one ran; seq follows the order of calls. */
  append(entries: readonly JournalEntry[]): Promise<void>;
  /** Up to max durable records not yet taken, oldest first; [] when none. */
  take(max: number): JournalRecord[];
  /** Resolves when at least one record can be taken, or the journal is closing. */
  readable(): Promise<void>;
  /** Every record with seq <= seq is processed: records that durably and deletes the segments wholly at or below it. An earlier seq is ignored; one past the last taken is refused (InputError). */
  done(seq: number): Promise<void>;
  /** Durable records not yet taken. */
  readonly waiting: number;
  /** Bytes (payload + source) of records appended and not yet done. */
  readonly pendingBytes: number;
  /** fdatasync calls made to commit appends (one per group). */
  readonly syncs: number;
  /** Finishes the appends already made and the done calls in flight, closes files and releases the lock; later appends and done calls reject. */
  close(): Promise<void>;
}

export const defaultIntakeJournalOptions = {
  segmentBytes: 64 * 1024 * 1024,
  maxRecordBytes: 1024 * 1024 + 4 * 1024,
  maxPendingBytes: 256 * 1024 * 1024,
} satisfies Partial<IntakeJournalOptions>;

type JournalConfig = Required<IntakeJournalOptions>;

/** u32 length, u32 CRC, u16 source length. */
const HEADER_BYTES = 10;
const MAX_SOURCE_BYTES = 0xffff;
/** A group is written in chunks of about this size, so a large group does not need one large buffer. */
const WRITE_CHUNK_BYTES = 4 * 1024 * 1024;
const SEGMENT_NAME = /^(\d{20})\.log$/;
const CHECKPOINT = "checkpoint";
const CHECKPOINT_TMP = "checkpoint.tmp";
const LOCK = "lock";

/** Opens (or creates) the journal in options.dir, takes its lock and reads back what was not done. */
export async function openIntakeJournal(options: IntakeJournalOptions): Promise<IntakeJournal> {
  const config = resolveOptions(options);
  try {
    await mkdir(config.dir, { recursive: true });
  } catch (cause) {
    throw new StoreError(`cannot create the intake journal directory ${config.dir} (${errnoCode(cause)})`, {
      cause,
      context: { dir: config.dir },
    });
  }
  await acquireLock(config.dir);
  try {
    return new FileIntakeJournal(config, await recover(config));
  } catch (error) {
    await releaseLock(config.dir);
    if (error instanceof StoreError) throw error;
    throw new StoreError(`cannot read the intake journal ${config.dir} (${errnoCode(error)})`, {
      cause: error,
      context: { dir: config.dir },
    });
  }
}

function resolveOptions(options: IntakeJournalOptions): JournalConfig {
  const config: JournalConfig = { ...defaultIntakeJournalOptions, ...withoutUndefined(options), dir: options.dir };
  if (typeof config.dir !== "string" || config.dir === "") throw new ConfigError("intake journal option dir must be a non-empty path");
  for (const name of ["segmentBytes", "maxRecordBytes", "maxPendingBytes"] as const) {
    const value = config[name];
    if (!Number.isSafeInteger(value) || value < 1)
      throw new ConfigError(`intake journal option ${name} must be a positive whole number of bytes`, { context: { option: name } });
  }
  // The length field is a u32 of source length + source + payload.
  if (config.maxRecordBytes > 0xffffffff - 2)
    throw new ConfigError("intake journal option maxRecordBytes must be below 4 GiB", { context: { option: "maxRecordBytes" } });
  if (config.maxRecordBytes > config.maxPendingBytes)
    throw new ConfigError(
      "intake journal option maxPendingBytes must be at least maxRecordBytes, or a largest record could never be appended",
      {
        context: { option: "maxPendingBytes" },
      },
    );
  return config;
}

function withoutUndefined(options: IntakeJournalOptions): Partial<IntakeJournalOptions> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
}

/** A queue that takes from the front in O(taken), compacting now and then. */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(count: number): T[] {
    const out = this.items.slice(this.head, this.head + count);
    this.head += out.length;
    if (this.head >= 4096 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }
}

interface PendingAppend {
  first: number;
  entries: readonly JournalEntry[];
  sourceBytes: number[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface Recovered {
  checkpoint: number;
  /** First seqs of the segments kept, oldest first; the last is the one appends go to. */
  segments: number[];
  active: FileHandle | undefined;
  activeSize: number;
  /** Appends must start a new segment (the newest one does not end just before nextSeq). */
  mustRoll: boolean;
  nextSeq: number;
  records: JournalRecord[];
  sizes: number[];
  truncatedBytes: number;
}

class FileIntakeJournal implements IntakeJournal {
  readonly dir: string;
  readonly recovered: JournalRecovery;
  syncs = 0;
  pendingBytes = 0;

  private readonly config: JournalConfig;
  private readonly ready = new Fifo<JournalRecord>();
  /** Sizes of the durable records not yet done, in seq order from doneSeq + 1. */
  private readonly sizes = new Fifo<number>();
  private readonly segments: number[];
  private active: FileHandle | undefined;
  private activeSize: number;
  private mustRoll: boolean;
  private nextSeq: number;
  private takenThrough: number;
  private doneSeq: number;
  private doneRequested: number;
  private doneChain: Promise<void> = Promise.resolve();
  private queue: PendingAppend[] = [];
  private writing: Promise<void> | undefined;
  private failure: StoreError | undefined;
  private waiters: (() => void)[] = [];
  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(config: JournalConfig, state: Recovered) {
    this.config = config;
    this.dir = config.dir;
    this.segments = state.segments;
    this.active = state.active;
    this.activeSize = state.activeSize;
    this.mustRoll = state.mustRoll;
    this.nextSeq = state.nextSeq;
    this.takenThrough = state.checkpoint;
    this.doneSeq = state.checkpoint;
    this.doneRequested = state.checkpoint;
    for (const record of state.records) this.ready.push(record);
    for (const size of state.sizes) {
      this.sizes.push(size);
      this.pendingBytes += size;
    }
    this.recovered = { records: state.records.length, truncatedBytes: state.truncatedBytes };
  }

  get waiting(): number {
    return this.ready.length;
  }

  async append(entries: readonly JournalEntry[]): Promise<void> {
    if (this.closing) throw new TransportError("the intake journal is closing; retry", { context: { dir: this.dir }, retriable: true });
    if (this.failure) throw this.failure;
    const sourceBytes: number[] = [];
    let total = 0;
    for (const [index, entry] of entries.entries()) {
      const sourceLength = Buffer.byteLength(entry.source, "utf8");
      const size = sourceLength + entry.bytes.byteLength;
      if (sourceLength > MAX_SOURCE_BYTES)
        throw new InputError(`entry ${index}: its source is ${sourceLength} bytes; the intake journal takes at most ${MAX_SOURCE_BYTES}`, {
          context: { index, sourceBytes: sourceLength },
        });
      if (size > this.config.maxRecordBytes)
        throw new InputError(
          `entry ${index} is ${size} bytes with its source; the intake journal takes at most ${this.config.maxRecordBytes}`,
          {
            context: { index, bytes: size, maxRecordBytes: this.config.maxRecordBytes },
          },
        );
      sourceBytes.push(sourceLength);
      total += size;
    }
    if (entries.length === 0) return;
    if (this.pendingBytes + total > this.config.maxPendingBytes)
      throw new TransportError(`the intake journal holds ${this.pendingBytes} bytes not yet stored; retry`, {
        context: { pendingBytes: this.pendingBytes, maxPendingBytes: this.config.maxPendingBytes },
        retriable: true,
      });
    const first = this.nextSeq;
    this.nextSeq += entries.length;
    this.pendingBytes += total;
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ first, entries: entries.slice(), sourceBytes, resolve, reject });
      // Deferred to the next turn, so the appends of this one share a commit.
      this.writing ??= new Promise<void>((started) => setImmediate(started)).then(() => this.writeLoop());
    });
  }

  take(max: number): JournalRecord[] {
    if (!(max >= 1) || this.ready.length === 0) return [];
    const records = this.ready.shift(Math.floor(max));
    this.takenThrough = records[records.length - 1]!.seq;
    return records;
  }

  readable(): Promise<void> {
    if (this.ready.length > 0 || this.closing) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async done(seq: number): Promise<void> {
    if (this.closing) throw new StoreError("the intake journal is closed; done() came after close()", { context: { dir: this.dir, seq } });
    if (!Number.isSafeInteger(seq)) throw new InputError(`done() needs a whole seq, not ${String(seq)}`);
    // Repeated or older: already covered.
    if (seq <= this.doneRequested) return this.doneChain;
    if (seq > this.takenThrough)
      throw new InputError(`done(${seq}) is past the last record taken (seq ${this.takenThrough})`, {
        context: { seq, takenThrough: this.takenThrough },
      });
    this.doneRequested = seq;
    const run = this.doneChain.then(() => this.commitDone(seq));
    this.doneChain = run.catch(() => undefined);
    return run;
  }

  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    this.wake();
    while (this.writing) await this.writing;
    await this.doneChain;
    try {
      await this.active?.close();
    } finally {
      this.active = undefined;
      await releaseLock(this.dir);
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Commits groups until none is queued; never rejects (a failure rejects the appends instead). */
  private async writeLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue;
        this.queue = [];
        try {
          await this.writeGroup(group);
        } catch (cause) {
          // After a failed write or fdatasync the file's state is unknown: stop appending; opening
          // again reads back what did reach the disk.
          const file = segmentName(this.segments[this.segments.length - 1] ?? group[0]!.first);
          this.failure = new StoreError(`the intake journal cannot write ${join(this.dir, file)} (${errnoCode(cause)}); reopen it`, {
            cause,
            context: { file: join(this.dir, file) },
          });
          for (const pending of [...group, ...this.queue]) pending.reject(this.failure);
          this.queue = [];
          return;
        }
        for (const pending of group) {
          pending.entries.forEach((entry, index) => {
            const record: JournalRecord = { seq: pending.first + index, source: entry.source, bytes: entry.bytes };
            if (entry.memo !== undefined) record.memo = entry.memo;
            this.ready.push(record);
            this.sizes.push(pending.sourceBytes[index]! + entry.bytes.byteLength);
          });
        }
        this.wake();
        for (const pending of group) pending.resolve();
      }
    } finally {
      this.writing = undefined;
    }
  }

  private async writeGroup(group: readonly PendingAppend[]): Promise<void> {
    if (this.active === undefined || this.mustRoll || this.activeSize >= this.config.segmentBytes) await this.roll(group[0]!.first);
    const handle = this.active!;
    let position = this.activeSize;
    let chunk: { entry: JournalEntry; sourceBytes: number }[] = [];
    let chunkBytes = 0;
    const flush = async () => {
      const buffer = encodeRecords(chunk, chunkBytes);
      await writeFully(handle, buffer, position);
      position += buffer.length;
      chunk = [];
      chunkBytes = 0;
    };
    for (const pending of group) {
      for (const [index, entry] of pending.entries.entries()) {
        const sourceBytes = pending.sourceBytes[index]!;
        chunk.push({ entry, sourceBytes });
        chunkBytes += HEADER_BYTES + sourceBytes + entry.bytes.byteLength;
        if (chunkBytes >= WRITE_CHUNK_BYTES) await flush();
      }
    }
    if (chunk.length > 0) await flush();
    await handle.datasync();
    this.syncs++;
    this.activeSize = position;
  }

  private async roll(first: number): Promise<void> {
    const handle = await open(join(this.dir, segmentName(first)), "wx");
    try {
      // The new name must survive a crash before any record in it is acknowledged.
      await syncDir(this.dir);
    } catch (error) {
      await handle.close();
      throw error;
    }
    const previous = this.active;
    this.active = handle;
    this.activeSize = 0;
    this.mustRoll = false;
    this.segments.push(first);
    await previous?.close();
  }

  private async commitDone(seq: number): Promise<void> {
    const checkpoint = join(this.dir, CHECKPOINT);
    try {
      const tmp = join(this.dir, CHECKPOINT_TMP);
      const handle = await open(tmp, "w");
      try {
        await handle.writeFile(`${seq}\n`);
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await rename(tmp, checkpoint);
      // Durable before the segments it releases go: otherwise a crash could leave an older
      // checkpoint with its records deleted.
      await syncDir(this.dir);
    } catch (cause) {
      // A later done() of the same seq must try again, not find it already requested.
      if (this.doneRequested === seq) this.doneRequested = this.doneSeq;
      throw new StoreError(`cannot write the intake journal checkpoint ${checkpoint} (${errnoCode(cause)})`, {
        cause,
        context: { file: checkpoint, seq },
      });
    }
    for (const size of this.sizes.shift(seq - this.doneSeq)) this.pendingBytes -= size;
    this.doneSeq = seq;
    // Segment i ends just before segment i + 1 starts; the newest one stays for appends.
    while (this.segments.length > 1 && this.segments[1]! - 1 <= seq) {
      const file = join(this.dir, segmentName(this.segments.shift()!));
      try {
        await unlink(file);
      } catch (cause) {
        if (errnoCode(cause) !== "ENOENT")
          throw new StoreError(`cannot delete the done intake journal segment ${file} (${errnoCode(cause)})`, { cause, context: { file } });
      }
    }
  }
}

/** Encodes records into one buffer of exactly `bytes` bytes (their sum of sizes with headers). */
function encodeRecords(records: readonly { entry: JournalEntry; sourceBytes: number }[], bytes: number): Buffer {
  const buffer = Buffer.allocUnsafe(bytes);
  let offset = 0;
  for (const { entry, sourceBytes } of records) {
    const rest = 2 + sourceBytes + entry.bytes.byteLength;
    buffer.writeUInt16LE(sourceBytes, offset + 8);
    buffer.write(entry.source, offset + HEADER_BYTES, sourceBytes, "utf8");
    buffer.set(entry.bytes, offset + HEADER_BYTES + sourceBytes);
    buffer.writeUInt32LE(rest, offset);
    buffer.writeUInt32LE(crc32(buffer.subarray(offset + 8, offset + 8 + rest)), offset + 4);
    offset += 8 + rest;
  }
  return buffer;
}

async function writeFully(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < buffer.length) {
    const { bytesWritten } = await handle.write(buffer, written, buffer.length - written, position + written);
    if (bytesWritten === 0) throw new Error("write made no progress");
    written += bytesWritten;
  }
}

/**
 * Checks the record at offset: its total size, or why it is bad. `limit` bounds the length field,
 * so a torn or random header is not taken for a record of gigabytes.
 */
function checkRecord(buffer: Buffer, offset: number, limit: number): number | string {
  if (buffer.length - offset < HEADER_BYTES) return "a header cut short";
  const rest = buffer.readUInt32LE(offset);
  if (rest < 2 || rest > limit) return "a length out of bounds";
  if (rest > buffer.length - offset - 8) return "a record cut short";
  if (buffer.readUInt16LE(offset + 8) > rest - 2) return "a source length out of bounds";
  if (crc32(buffer.subarray(offset + 8, offset + 8 + rest)) !== buffer.readUInt32LE(offset + 4)) return "a checksum mismatch";
  return 8 + rest;
}

/** Whether any valid record starts after offset: then the bad record is not a torn tail. */
function validRecordAfter(buffer: Buffer, offset: number, limit: number): boolean {
  for (let at = offset + 1; at + HEADER_BYTES <= buffer.length; at++) if (typeof checkRecord(buffer, at, limit) === "number") return true;
  return false;
}

async function recover(config: JournalConfig): Promise<Recovered> {
  const { dir } = config;
  const limit = Math.max(config.maxRecordBytes, defaultIntakeJournalOptions.maxRecordBytes) + 2;
  // Segments written with other options are read too: the larger of these and the defaults.
  const segmentBound =
    Math.max(config.segmentBytes, defaultIntakeJournalOptions.segmentBytes) +
    Math.max(config.maxPendingBytes, defaultIntakeJournalOptions.maxPendingBytes) +
    HEADER_BYTES;
  const checkpoint = await readCheckpoint(dir);
  await unlink(join(dir, CHECKPOINT_TMP)).catch(() => undefined);

  const names = (await readdir(dir)).filter((name) => SEGMENT_NAME.test(name)).sort();
  const firsts = names.map((name) => Number(name.slice(0, 20)));
  for (const [index, first] of firsts.entries()) {
    if (!Number.isSafeInteger(first) || first < 1) {
      const file = join(dir, names[index]!);
      throw new StoreError(`intake journal segment ${file} has no valid first seq in its name; move it out of ${dir}`, {
        context: { file, offset: 0 },
      });
    }
  }
  // Segments wholly done (a crash came between the checkpoint and their deletion) are not read.
  while (firsts.length > 1 && firsts[1]! - 1 <= checkpoint) {
    await unlink(join(dir, segmentName(firsts.shift()!)));
  }
  if (firsts.length > 0 && firsts[0]! > checkpoint + 1) {
    const file = join(dir, segmentName(firsts[0]!));
    throw new StoreError(
      `the intake journal ${dir} lacks seqs ${checkpoint + 1} to ${firsts[0]! - 1} (its oldest segment is ${file}); restore the missing segment, or write ${firsts[0]! - 1} to ${join(dir, CHECKPOINT)} to go on without them`,
      { context: { file, offset: 0 } },
    );
  }

  const records: JournalRecord[] = [];
  const sizes: number[] = [];
  let truncatedBytes = 0;
  let active: FileHandle | undefined;
  let activeSize = 0;
  let nextSeq = checkpoint + 1;
  for (const [index, first] of firsts.entries()) {
    const file = join(dir, segmentName(first));
    if (first !== nextSeq && index > 0)
      throw new StoreError(
        `intake journal segment ${file} starts at seq ${first}, but the one before it ends at seq ${nextSeq - 1}; move it out of ${dir}`,
        {
          context: { file, offset: 0 },
        },
      );
    const newest = index === firsts.length - 1;
    // Bounded before it is read: a segment rolls at segmentBytes, after at most one group commit
    // (itself within maxPendingBytes); a file grown past that is not ours.
    const read = await readBounded(file, segmentBound);
    if (read.tooLarge !== undefined)
      throw new StoreError(
        `intake journal segment ${file} is ${read.tooLarge} bytes, more than a segment grows to (${segmentBound}); move it out of ${dir}`,
        { context: { file, offset: 0, bytes: read.tooLarge } },
      );
    const buffer = read.bytes;
    let offset = 0;
    let seq = first;
    while (offset < buffer.length) {
      const size = checkRecord(buffer, offset, limit);
      if (typeof size === "string") {
        if (newest && !validRecordAfter(buffer, offset, limit)) break;
        throw new StoreError(
          `intake journal segment ${file} has ${size} at byte ${offset}; move the file out of ${dir} to open the journal without it (losing its records from seq ${seq} on)`,
          { context: { file, offset, seq } },
        );
      }
      if (seq > checkpoint) {
        const sourceLength = buffer.readUInt16LE(offset + 8);
        const start = offset + HEADER_BYTES;
        // Copied, so the segment's buffer (done records included) is not kept alive.
        records.push({
          seq,
          source: buffer.toString("utf8", start, start + sourceLength),
          bytes: new Uint8Array(buffer.subarray(start + sourceLength, offset + size)),
        });
        sizes.push(size - HEADER_BYTES);
      }
      offset += size;
      seq++;
    }
    nextSeq = seq;
    if (newest) {
      active = await open(file, "r+");
      try {
        if (offset < buffer.length) {
          truncatedBytes = buffer.length - offset;
          await active.truncate(offset);
          await active.datasync();
        }
      } catch (cause) {
        await active.close();
        throw new StoreError(`cannot truncate the torn tail of intake journal segment ${file} (${errnoCode(cause)})`, {
          cause,
          context: { file, offset },
        });
      }
      activeSize = offset;
    }
  }
  // Only if the files were tampered with: a checkpoint past the newest record.
  const mustRoll = nextSeq < checkpoint + 1;
  return {
    checkpoint,
    segments: firsts,
    active,
    activeSize,
    mustRoll,
    nextSeq: Math.max(nextSeq, checkpoint + 1),
    records,
    sizes,
    truncatedBytes,
  };
}

/** The checkpoint's and the lock's most: one number and a newline. */
const SMALL_FILE_BYTES = 64;

/**
 * Reads a file of at most `maxBytes`: its size is taken from the open handle before anything is
 * allocated; a larger file gives `tooLarge` (its size) and no bytes (an empty buffer: a caller
 * that only parses them finds nothing there). Reads no more than the size it saw.
 */
async function readBounded(file: string, maxBytes: number): Promise<{ bytes: Buffer; tooLarge?: number }> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) return { bytes: Buffer.alloc(0), tooLarge: size };
    const bytes = Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await handle.read(bytes, filled, size - filled, filled);
      if (bytesRead === 0) break; // cut short meanwhile
      filled += bytesRead;
    }
    return { bytes: bytes.subarray(0, filled) };
  } finally {
    await handle.close();
  }
}

async function readCheckpoint(dir: string): Promise<number> {
  const file = join(dir, CHECKPOINT);
  let text: string;
  try {
    // A seq is at most 16 digits: anything longer holds no seq, and is not read whole.
    const read = await readBounded(file, SMALL_FILE_BYTES);
    text = read.bytes.toString("utf8");
  } catch (cause) {
    if (errnoCode(cause) === "ENOENT") return 0;
    throw new StoreError(`cannot read the intake journal checkpoint ${file} (${errnoCode(cause)})`, { cause, context: { file } });
  }
  const seq = /^\d{1,16}\n?$/.test(text) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(seq))
    throw new StoreError(
      `the intake journal checkpoint ${file} does not hold a seq; restore it, or remove it to process again every record in ${dir}`,
      {
        context: { file, offset: 0 },
      },
    );
  return seq;
}

/**
 * Takes the directory's lock. The pid is written to a file of our own first and linked into
 * place (link fails if it exists, as O_EXCL would), so the lock is never seen without its pid.
 * A lock whose process is dead is taken over; two processes doing that to the same stale lock at
 * the same instant are not told apart (one serve runs per directory).
 */
async function acquireLock(dir: string): Promise<void> {
  const lock = join(dir, LOCK);
  const mine = join(dir, `${LOCK}.${process.pid}.tmp`);
  try {
    await writeSmallFile(mine, `${process.pid}\n`);
  } catch (cause) {
    throw new StoreError(`cannot write the intake journal lock ${mine} (${errnoCode(cause)})`, { cause, context: { file: mine } });
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(mine, lock);
        return;
      } catch (cause) {
        if (errnoCode(cause) !== "EEXIST")
          throw new StoreError(`cannot create the intake journal lock ${lock} (${errnoCode(cause)})`, { cause, context: { file: lock } });
      }
      let text: string;
      try {
        text = (await readBounded(lock, SMALL_FILE_BYTES)).bytes.toString("utf8");
      } catch (cause) {
        if (errnoCode(cause) === "ENOENT") continue; // released meanwhile
        throw new StoreError(`cannot read the intake journal lock ${lock} (${errnoCode(cause)})`, { cause, context: { file: lock } });
      }
      const pid = /^\d{1,10}\n?$/.test(text) ? Number(text.trim()) : NaN;
      if (!(pid > 0))
        throw new StoreError(`the intake journal lock ${lock} holds no pid; remove it if no process uses ${dir}`, {
          context: { file: lock },
        });
      if (isAlive(pid))
        throw new StoreError(`the intake journal ${dir} is in use by process ${pid} (if it is not, remove ${lock})`, {
          context: { file: lock, pid },
        });
      // Its owner died without closing: take it over.
      await unlink(lock).catch(() => undefined);
    }
    throw new StoreError(`cannot take the intake journal lock ${lock}: other processes keep taking it`, { context: { file: lock } });
  } finally {
    await unlink(mine).catch(() => undefined);
  }
}

async function releaseLock(dir: string): Promise<void> {
  await unlink(join(dir, LOCK)).catch(() => undefined);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return errnoCode(error) === "EPERM";
  }
}

async function writeSmallFile(path: string, text: string): Promise<void> {
  const handle = await open(path, "w");
  try {
    await handle.writeFile(text);
  } finally {
    await handle.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function segmentName(first: number): string {
  return `${String(first).padStart(20, "0")}.log`;
}

function errnoCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? "unknown error";
}
