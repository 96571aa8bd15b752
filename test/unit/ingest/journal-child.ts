// Run by journal.test.ts as a process to be killed: appends records to the intake journal in
// argv[2] from four concurrent appenders and prints "first last" for each append once it has
// resolved, until it is killed (or a minute has passed). It never marks records done.
import { pathToFileURL } from "node:url";
import { openIntakeJournal, type JournalEntry } from "../../../services/ingest/index.ts";

/** The record appended with this seq: a source and 0 to 2,999 bytes, the same for a given seq. */
export function entryFor(seq: number): JournalEntry {
  let x = Math.imul(seq, 2654435761) >>> 0 || 1;
  const bytes = new Uint8Array(seq % 7 === 0 ? 0 : x % 3000);
  for (let i = 0; i < bytes.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return { source: `child #${seq} ✓`, bytes };
}

async function main(dir: string): Promise<void> {
  const journal = await openIntakeJournal({ dir, segmentBytes: 64 * 1024 });
  // Nothing is ever done here, so the records read back run from seq 1 to the last; seq follows
  // the order of append calls.
  let next = (journal.take(Number.MAX_SAFE_INTEGER).at(-1)?.seq ?? 0) + 1;
  const deadline = Date.now() + 60_000;
  const appender = async () => {
    while (Date.now() < deadline) {
      const first = next;
      const count = 1 + (first % 5);
      next += count;
      await journal.append(Array.from({ length: count }, (_, i) => entryFor(first + i)));
      process.stdout.write(`${first} ${first + count - 1}\n`);
    }
  };
  await Promise.all([appender(), appender(), appender(), appender()]);
  await journal.close();
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main(process.argv[2]!);
