// The facets a job's runs send again byte for byte, parsed once: pure, no I/O.
//
// A scheduled job's RunEvents repeat their datasets' large facets exactly (the schema, the column
// lineage: both follow from the job's code and tables, not from the run), while the run id, the
// times and small facets such as output statistics change. Parsing those facets is most of
// JSON.parse's work on such an event. The byte scan that bounds an event's nesting
// (checkRunEventBytes) also finds where each dataset facet's value lies; a facet whose bytes
// equal those the same dataset's facet had before is not parsed again: the event is parsed with a
// placeholder in its place, and the placeholder replaced by the object parsed then (frozen,
// shared by every event that sent it). The document is the same as JSON.parse of the whole event
// would give, value for value, duplicate keys included.

import { randomBytes } from "node:crypto";

/** What the byte scan found of one dataset facet's value: an object, at /inputs|outputs/i/facets/<key>. */
export interface FacetSpan {
  /** The value's bytes, from its `{` to its `}` inclusive. */
  start: number;
  end: number;
  /** The facet's key, between its quotes (raw: escapes as sent). */
  keyStart: number;
  keyEnd: number;
  /** The dataset it belongs to, an index into the found datasets. */
  dataset: number;
  /** The remembered facet these bytes are, when the scan found them equal to it (and skipped them). */
  value?: object;
}

/** A dataset object of an event's inputs or outputs, with where its namespace and name strings lie (-1 when not found as plain strings). */
export interface DatasetSpan {
  side: "inputs" | "outputs";
  namespaceStart: number;
  namespaceEnd: number;
  nameStart: number;
  nameEnd: number;
}

/** What the byte scan found of one event's datasets and their facets. */
export interface FoundFacets {
  datasets: DatasetSpan[];
  facets: FacetSpan[];
}

export interface FacetMemoOptions {
  /** Facets remembered (one per dataset, side and facet key); past it, those unused longest are forgotten. @default 4096 */
  maxFacets?: number;
  /** Bytes of facets remembered; past it, those unused longest are forgotten. @default 16777216 (16 MiB; the objects they parse to take a few times that) */
  maxBytes?: number;
  /** A facet larger than this is parsed with its event every time. @default 262144 (256 KiB) */
  maxFacetBytes?: number;
}

export const defaultFacetMemoOptions = { maxFacets: 4096, maxBytes: 16 * 1024 * 1024, maxFacetBytes: 256 * 1024 } as const;

export interface FacetMemo {
  /**
   * During the byte scan, at a dataset facet's `{`: the remembered facet whose bytes are the ones
   * there, with their length, when nesting them there stays within `maxDepth`; else undefined.
   * The scan then skips them: they were scanned and parsed before.
   */
  known(key: string, bytes: Uint8Array, start: number, maxDepth: number): { value: object; length: number } | undefined;
  /**
   * JSON.parse(text), where `text` is the event's bytes decoded (ASCII only, so byte offsets are
   * character offsets) and `found` what the byte scan found in them. Throws as JSON.parse does.
   */
  parse(text: string, bytes: Uint8Array, found: FoundFacets): unknown;
  /** Facet values taken from the memo instead of parsed, and facets remembered now. */
  readonly stats: { reused: number; remembered: number };
}

/** One dataset's facet as last seen: its bytes, and once they came twice, the object they parse to and how deep it nests. */
interface Slot {
  bytes: Buffer;
  value: object | undefined;
  depth: number;
}

/**
 * The name of a dataset's facet in the memo: its side, the dataset's namespace and name, and the
 * facet's key, as their raw bytes (latin1: one character a byte, so the same bytes always give the
 * same name).
 */
export function facetKey(bytes: Buffer, d: DatasetSpan, keyStart: number, keyEnd: number): string {
  return `${d.side}\u0000${bytes.toString("latin1", d.namespaceStart, d.namespaceEnd)}\u0000${bytes.toString("latin1", d.nameStart, d.nameEnd)}\u0000${bytes.toString("latin1", keyStart, keyEnd)}`;
}

export function createFacetMemo(options: FacetMemoOptions = {}): FacetMemo {
  const maxFacets = options.maxFacets ?? defaultFacetMemoOptions.maxFacets;
  const maxBytes = options.maxBytes ?? defaultFacetMemoOptions.maxBytes;
  const maxFacetBytes = options.maxFacetBytes ?? defaultFacetMemoOptions.maxFacetBytes;
  // Two generations, so that what is in use survives when the memo is full: new and used facets go
  // to the young one; when it holds half the bounds, it becomes the old one and the old one is
  // forgotten. A facet used since is moved back to the young one.
  let young = new Map<string, Slot>();
  let old = new Map<string, Slot>();
  let youngBytes = 0;
  const stats = { reused: 0, remembered: 0 };
  // The placeholders: strings no sender can write, for they hold a secret made at start-up (a
  // number would not do: many literals give the same number).
  const prefix = `lineage-audit facet ${randomBytes(16).toString("hex")} #`;

  /** The slot of a facet, moved to the young generation when it is in the old one. */
  function slotOf(key: string): Slot | undefined {
    const slot = young.get(key);
    if (slot !== undefined) return slot;
    const kept = old.get(key);
    if (kept !== undefined) {
      old.delete(key);
      keep(key, kept);
    }
    return kept;
  }

  function keep(key: string, slot: Slot): void {
    if (young.size >= maxFacets / 2 || youngBytes + slot.bytes.length > maxBytes / 2) {
      old = young;
      young = new Map();
      youngBytes = 0;
    }
    const before = young.get(key);
    if (before !== undefined) youngBytes -= before.bytes.length;
    young.set(key, slot);
    youngBytes += slot.bytes.length;
  }

  function remember(key: string, bytes: Uint8Array, start: number, end: number): void {
    old.delete(key);
    keep(key, { bytes: Buffer.from(bytes.subarray(start, end)), value: undefined, depth: 0 });
  }

  return {
    stats,
    known(key, bytes, start, maxDepth) {
      const slot = slotOf(key);
      if (slot?.value === undefined) return undefined;
      const length = slot.bytes.length;
      // The facet's `{` is at depth 5 (the event 1, inputs 2, the dataset 3, its facets 4).
      if (start + length > bytes.length || 4 + slot.depth > maxDepth || slot.bytes.compare(bytes, start, start + length) !== 0)
        return undefined;
      return { value: slot.value, length };
    },
    parse(text, bytes, found) {
      let parts: string[] | undefined;
      let at = 0;
      let values: object[] | undefined;
      const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (const span of found.facets) {
        let value = span.value;
        if (value === undefined) {
          const length = span.end - span.start;
          if (length > maxFacetBytes) continue;
          const d = found.datasets[span.dataset] as DatasetSpan;
          if (d.namespaceStart < 0 || d.nameStart < 0) continue;
          const key = facetKey(view, d, span.keyStart, span.keyEnd);
          const slot = slotOf(key);
          if (slot === undefined || slot.bytes.length !== length || slot.bytes.compare(bytes, span.start, span.end) !== 0) {
            // New, or changed since: its bytes are kept, and parsed with the event this time.
            remember(key, bytes, span.start, span.end);
            continue;
          }
          if (slot.value === undefined) {
            // The second time these bytes come: parsed alone, once, and kept (frozen: it is shared).
            try {
              const parsed = JSON.parse(text.slice(span.start, span.end)) as object;
              slot.depth = deepFreeze(parsed);
              slot.value = parsed;
              stats.remembered++;
            } catch {
              continue; // not JSON: the event's parse says where
            }
          }
          value = slot.value;
        }
        // The prefix needs no escaping in JSON.
        (parts ??= []).push(text.slice(at, span.start), `"${prefix}${(values ??= []).length}"`);
        values.push(value);
        at = span.end;
      }
      if (values === undefined || parts === undefined) return JSON.parse(text) as unknown;
      parts.push(text.slice(at));
      let doc: unknown;
      try {
        doc = JSON.parse(parts.join(""));
      } catch {
        // The same event with each remembered facet in place of its placeholder: the error is
        // the whole event's, at its own position.
        return JSON.parse(text) as unknown;
      }
      stats.reused += put(doc, values);
      return doc;
    },
  };

  /**
   * Puts each remembered facet where its placeholder is. A placeholder is only ever at a facet's
   * place (/inputs|outputs/i/facets/<key>), or gone with what JSON.parse dropped (a duplicate key's
   * earlier value), so only those places are looked at.
   */
  function put(doc: unknown, values: readonly object[]): number {
    let put = 0;
    eachDatasetFacet(doc, (facets, key, v) => {
      if (typeof v !== "string" || !v.startsWith(prefix)) return;
      // An own property already (JSON.parse made it, "__proto__" too): assigning sets its value.
      facets[key] = values[Number(v.slice(prefix.length))];
      put++;
    });
    return put;
  }
}

/** A JSON object (not an array, not null). */
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Each facet of an event's datasets (its /inputs and /outputs), with the facets object that holds it. */
export function eachDatasetFacet(doc: unknown, each: (facets: Record<string, unknown>, key: string, value: unknown) => void): void {
  if (!isObject(doc)) return;
  for (const side of [doc["inputs"], doc["outputs"]]) {
    if (!Array.isArray(side)) continue;
    for (const dataset of side) {
      const facets = isObject(dataset) ? dataset["facets"] : undefined;
      if (!isObject(facets)) continue;
      for (const key of Object.keys(facets)) each(facets, key, facets[key]);
    }
  }
}

/** Freezes a parsed JSON object or array and everything in it (its nesting is bounded by the scan); returns how deep it nests (1: nothing nested). */
export function deepFreeze(value: object): number {
  let depth = 0;
  for (const v of Object.values(value) as unknown[]) if (typeof v === "object" && v !== null) depth = Math.max(depth, deepFreeze(v));
  Object.freeze(value);
  return depth + 1;
}
