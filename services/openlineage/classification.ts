// The classification file: data categories for datasets whose OpenLineage producers send no
// tags. Dataset glob (`namespace/name`, `*` any run of characters, `?` one) → field → categories.
// Validated when loaded (serve's start-up, ingest's), every problem `file:line:column: …`.
//
//   version: 1
//   datasets:
//     "warehouse/profile.*":
//       phone_number: [user.contact.phone_number]
//       email: [user.contact.email]
import { readFileSync } from "node:fs";
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node } from "yaml";
import { ConfigError } from "../errors/index.ts";
import { TaxonomyKind, type Taxonomy } from "../taxonomy/index.ts";

/** Largest classification file read. */
export const MAX_CLASSIFICATION_BYTES = 4 * 1024 * 1024;

export interface Classification {
  /** The file it came from. */
  readonly source: string;
  /** Each field's categories for a dataset, from every pattern it matches (in file order). */
  categoriesOf(namespace: string, name: string): Map<string, string[]>;
}

interface Entry {
  pattern: RegExp;
  fields: [string, string[]][];
}

export function loadClassification(path: string, taxonomy: Taxonomy): Classification {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.byteLength > MAX_CLASSIFICATION_BYTES)
      throw new ConfigError(`${path}: the classification file is ${bytes.byteLength} bytes; the limit is ${MAX_CLASSIFICATION_BYTES}`);
    text = bytes.toString("utf8");
  } catch (cause) {
    if (cause instanceof ConfigError) throw cause;
    throw new ConfigError(`${path}: cannot read the classification file (${(cause as NodeJS.ErrnoException).code ?? "unreadable"})`, {
      cause,
    });
  }
  return parseClassification(text, path, taxonomy);
}

export function parseClassification(text: string, file: string, taxonomy: Taxonomy): Classification {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (node: unknown, problem: string): never => {
    const { line, col } = lines.linePos((node as Node | undefined)?.range?.[0] ?? 0);
    throw new ConfigError(`${file}:${line}:${col}: ${problem}`, { context: { file, line, column: col } });
  };
  const firstError = doc.errors[0];
  if (firstError) {
    const { line, col } = lines.linePos(firstError.pos[0]);
    throw new ConfigError(`${file}:${line}:${col}: not valid YAML: ${firstError.message.split("\n")[0]}`);
  }
  const root = doc.contents;
  if (!isMap(root)) return at(root, "must be a mapping with version: 1 and datasets");
  for (const item of root.items) {
    const key = isScalar(item.key) ? String(item.key.value) : "";
    if (key !== "version" && key !== "datasets") at(item.key, `unknown key '${key}' (expected version, datasets)`);
  }
  const version = doc.get("version", true);
  if (!isScalar(version) || version.value !== 1) at(version ?? root, "version must be 1");
  const datasets = doc.get("datasets", true);
  if (!isMap(datasets)) return at(datasets ?? root, "datasets must map dataset globs (namespace/name) to fields");
  const entries: Entry[] = [];
  for (const d of datasets.items) {
    if (!isScalar(d.key) || typeof d.key.value !== "string" || !d.key.value.includes("/"))
      at(d.key, "a dataset glob must be text of the form namespace/name (with * and ? as wildcards)");
    const glob = (d.key as { value: string }).value;
    if (!isMap(d.value)) return at(d.value ?? d.key, `'${glob}' must map field names to lists of data categories`);
    const fields: [string, string[]][] = [];
    for (const f of d.value.items) {
      if (!isScalar(f.key) || String(f.key.value).trim() === "") at(f.key, "a field name must be non-empty text");
      const field = String((f.key as { value: unknown }).value);
      if (!isSeq(f.value) || f.value.items.length === 0)
        return at(f.value ?? f.key, `${glob} ${field}: must be a non-empty list of data categories`);
      const categories: string[] = [];
      for (const c of f.value.items) {
        const value = isScalar(c) ? c.value : undefined;
        if (typeof value !== "string" || !taxonomy.has(TaxonomyKind.dataCategory, value)) {
          const hint = typeof value === "string" ? taxonomy.suggest(TaxonomyKind.dataCategory, value)[0] : undefined;
          at(c, `${glob} ${field}: '${String(value)}' is not a fideslang data category${hint ? ` (did you mean '${hint}'?)` : ""}`);
        }
        categories.push(value as string);
      }
      fields.push([field, categories]);
    }
    entries.push({ pattern: globToRegExp(glob), fields });
  }
  return {
    source: file,
    categoriesOf(namespace, name) {
      const id = `${namespace}/${name}`;
      const out = new Map<string, string[]>();
      for (const e of entries) {
        if (!e.pattern.test(id)) continue;
        for (const [field, categories] of e.fields) out.set(field, [...new Set([...(out.get(field) ?? []), ...categories])]);
      }
      return out;
    },
  };
}

function globToRegExp(glob: string): RegExp {
  const body = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}
