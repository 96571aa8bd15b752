export const TaxonomyKind = { dataCategory: "data category", dataUse: "data use", dataSubject: "data subject" } as const;
export type TaxonomyKind = (typeof TaxonomyKind)[keyof typeof TaxonomyKind];

export interface TaxonomyEntry {
  key: string;
  parent?: string | null;
  name: string;
  description?: string;
}

export interface TaxonomyData {
  source?: string;
  license?: string;
  dataCategories: TaxonomyEntry[];
  dataUses: TaxonomyEntry[];
  dataSubjects: TaxonomyEntry[];
}

export interface Taxonomy {
  readonly source: string;
  /** Whether `key` exists in the taxonomy of `kind`. */
  has(kind: TaxonomyKind, key: string): boolean;
  /** Known keys most similar to a mistyped one, best first (at most three). */
  suggest(kind: TaxonomyKind, key: string): string[];
  entries(kind: TaxonomyKind): readonly TaxonomyEntry[];
}

/**
 * Parent-chain matching: `pattern` covers `key` when they are equal or `key` lies below it,
 * so `marketing` covers `marketing.advertising.third_party.targeted`. A trailing `.*` on the
 * pattern means the same subtree. Plain string logic, so it also works for keys an extended
 * taxonomy adds.
 */
export function covers(pattern: string, key: string): boolean {
  const p = pattern.endsWith(".*") ? pattern.slice(0, -2) : pattern;
  if (p === "*") return true;
  return key === p || (key.length > p.length && key.startsWith(p) && key.charCodeAt(p.length) === 46); /* . */
}

/** Whether any of `patterns` covers `key`. */
export function coveredByAny(patterns: readonly string[], key: string): boolean {
  for (const p of patterns) if (covers(p, key)) return true;
  return false;
}

export function createTaxonomy(data: TaxonomyData): Taxonomy {
  const byKind = new Map<TaxonomyKind, TaxonomyEntry[]>([
    [TaxonomyKind.dataCategory, data.dataCategories],
    [TaxonomyKind.dataUse, data.dataUses],
    [TaxonomyKind.dataSubject, data.dataSubjects],
  ]);
  const keys = new Map<TaxonomyKind, Set<string>>();
  for (const [kind, entries] of byKind) keys.set(kind, new Set(entries.map((e) => e.key)));

  return {
    source: data.source ?? "custom taxonomy",
    has(kind, key) {
      const k = key.endsWith(".*") ? key.slice(0, -2) : key;
      return keys.get(kind)?.has(k) ?? false;
    },
    suggest(kind, key) {
      const all = [...(keys.get(kind) ?? [])];
      return all
        .map((candidate) => ({ candidate, d: candidate.startsWith(key) ? 0.5 : editDistance(key, candidate) }))
        .filter(({ candidate, d }) => d <= Math.max(2, Math.floor(candidate.length / 4)))
        .sort((a, b) => a.d - b.d || a.candidate.localeCompare(b.candidate))
        .slice(0, 3)
        .map(({ candidate }) => candidate);
    },
    entries(kind) {
      return byKind.get(kind) ?? [];
    },
  };
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] as number;
      prev[j] = Math.min(up + 1, (prev[j - 1] as number) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length] as number;
}
