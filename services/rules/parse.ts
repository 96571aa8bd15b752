import { LineCounter, parseDocument, isMap, isSeq, isScalar, type Document, type Node } from "yaml";
import { RuleError } from "../errors/index.ts";
import { TaxonomyKind, type Taxonomy } from "../taxonomy/index.ts";
import { Masking, Transform } from "../codec/index.ts";
import {
  RecipientScope,
  RuleMode,
  SEVERITIES,
  Severity,
  type Compatibility,
  type Declassification,
  type Policy,
  type Rule,
  type RuleMatch,
} from "./types.ts";

type Path = (string | number)[];

/**
 * Parses and validates a rules file (YAML, or JSON, which is YAML too). Every problem is a
 * RuleError whose message starts `file:line:column:` and names the offending key.
 */
export function parsePolicy(text: string, file: string, taxonomy: Taxonomy): Policy {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const firstError = doc.errors[0];
  if (firstError) {
    const pos = lineCounter.linePos(firstError.pos[0]);
    throw new RuleError(`${file}:${pos.line}:${pos.col}: not valid YAML/JSON: ${firstError.message.split("\n")[0]}`, {
      context: { file, line: pos.line, column: pos.col },
    });
  }
  return new PolicyReader(doc, lineCounter, file, taxonomy).read();
}

class PolicyReader {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
    private readonly file: string,
    private readonly taxonomy: Taxonomy,
  ) {}

  fail(path: Path, problem: string, at?: Node): never {
    let node: unknown = at ?? (path.length === 0 ? this.doc.contents : this.doc.getIn(path, true));
    // Fall back to the nearest existing parent, so a missing key points at its map.
    for (let n = path.length - 1; (node === undefined || node === null) && n >= 0; n--) {
      node = n === 0 ? this.doc.contents : this.doc.getIn(path.slice(0, n), true);
    }
    const offset = (node as Node | null | undefined)?.range?.[0] ?? 0;
    const { line, col } = this.lines.linePos(offset);
    const where = path.length > 0 ? `${formatPath(path)}: ` : "";
    throw new RuleError(`${this.file}:${line}:${col}: ${where}${problem}`, {
      context: { file: this.file, line, column: col, path: formatPath(path) },
    });
  }

  /** Line and column where the node at `path` starts. */
  position(path: Path): { line: number; column: number } {
    const node = this.doc.getIn(path, true) as Node | undefined;
    const { line, col } = this.lines.linePos(node?.range?.[0] ?? 0);
    return { line, column: col };
  }

  value(path: Path): unknown {
    const node = path.length === 0 ? this.doc.contents : this.doc.getIn(path, true);
    if (node === undefined || node === null) return undefined;
    if (isScalar(node)) return node.value;
    return (node as Node).toJSON();
  }

  keysOf(path: Path, allowed: readonly string[]): void {
    const node = path.length === 0 ? this.doc.contents : this.doc.getIn(path, true);
    if (!isMap(node)) this.fail(path, "must be a mapping");
    for (const item of node.items) {
      const key = isScalar(item.key) ? String(item.key.value) : String(item.key);
      if (!allowed.includes(key)) {
        this.fail([...path, key], `unknown key '${key}' (expected one of: ${allowed.join(", ")})`, item.key as Node);
      }
    }
  }

  string(path: Path, fallback?: string): string {
    const v = this.value(path);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      this.fail(path, "is required");
    }
    if (typeof v !== "string" || v.trim() === "") this.fail(path, "must be a non-empty string");
    return v;
  }

  oneOf<T extends string>(path: Path, options: readonly T[], fallback: T): T {
    const v = this.value(path);
    if (v === undefined) return fallback;
    if (typeof v !== "string" || !options.includes(v as T)) this.fail(path, `must be one of ${options.join(", ")}`);
    return v as T;
  }

  bool(path: Path, fallback: boolean): boolean {
    const v = this.value(path);
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") this.fail(path, "must be true or false");
    return v;
  }

  list(path: Path): number {
    const node = this.doc.getIn(path, true);
    if (node === undefined || node === null) return 0;
    if (!isSeq(node)) this.fail(path, "must be a list");
    return node.items.length;
  }

  stringList(path: Path, required: boolean): string[] | undefined {
    const node = this.doc.getIn(path, true);
    if (node === undefined || node === null) {
      if (required) this.fail(path, "is required");
      return undefined;
    }
    // A single string is accepted for a one-element list.
    if (isScalar(node) && typeof node.value === "string") return [node.value];
    if (!isSeq(node)) this.fail(path, "must be a list of strings");
    if (node.items.length === 0) this.fail(path, "must not be empty");
    return node.items.map((_, i) => this.string([...path, i]));
  }

  taxonomyList(path: Path, kind: TaxonomyKind, required: boolean): string[] | undefined {
    const keys = this.stringList(path, required);
    keys?.forEach((key, i) => {
      if (key === "*") return;
      if (!this.taxonomy.has(kind, key)) {
        const hints = this.taxonomy.suggest(kind, key.replace(/\.\*$/, ""));
        const hint = hints.length > 0 ? ` (did you mean ${hints.map((h) => `'${h}'`).join(" or ")}?)` : "";
        this.fail([...path, i], `unknown ${kind} '${key}'${hint}`);
      }
    });
    return keys;
  }

  read(): Policy {
    this.keysOf([], ["version", "purposeLimitation", "compatible", "rules", "declassify", "unknownProvenance"]);
    const version = this.value(["version"]);
    if (version !== 1) this.fail(["version"], "must be 1 (the only rules format version so far)");

    let purposeLimitation: Policy["purposeLimitation"] = {
      enabled: true,
      id: "purpose-limitation",
      severity: Severity.high,
      mode: RuleMode.enforce,
    };
    if (this.value(["purposeLimitation"]) !== undefined) {
      this.keysOf(["purposeLimitation"], ["enabled", "id", "severity", "mode"]);
      purposeLimitation = {
        enabled: this.bool(["purposeLimitation", "enabled"], true),
        id: this.string(["purposeLimitation", "id"], "purpose-limitation"),
        severity: this.oneOf(["purposeLimitation", "severity"], SEVERITIES, Severity.high),
        mode: this.oneOf(["purposeLimitation", "mode"], Object.values(RuleMode), RuleMode.enforce),
      };
    }

    const ids = new Map<string, Path>([[purposeLimitation.id, ["purposeLimitation", "id"]]]);
    const locations: Record<string, { line: number; column: number }> = {};
    if (this.value(["purposeLimitation"]) !== undefined) locations[purposeLimitation.id] = this.position(["purposeLimitation"]);
    const claimId = (path: Path): string => {
      const id = this.string(path);
      if (!/^[a-z0-9][a-z0-9._-]*$/i.test(id)) this.fail(path, "must be letters, digits, '.', '_' or '-'");
      const earlier = ids.get(id);
      if (earlier) this.fail(path, `duplicate id '${id}' (also at ${formatPath(earlier)})`);
      ids.set(id, path);
      locations[id] = this.position(path.slice(0, -1));
      return id;
    };

    const compatible: Compatibility[] = [];
    for (let i = 0; i < this.list(["compatible"]); i++) {
      const p: Path = ["compatible", i];
      this.keysOf(p, ["id", "collectedFor", "usedFor", "description"]);
      compatible.push({
        id: claimId([...p, "id"]),
        collectedFor: this.taxonomyList([...p, "collectedFor"], TaxonomyKind.dataUse, true) as string[],
        usedFor: this.taxonomyList([...p, "usedFor"], TaxonomyKind.dataUse, true) as string[],
      });
    }

    const rules: Rule[] = [];
    for (let i = 0; i < this.list(["rules"]); i++) {
      const p: Path = ["rules", i];
      this.keysOf(p, ["id", "description", "effect", "severity", "mode", "match"]);
      const id = claimId([...p, "id"]);
      const effect = this.value([...p, "effect"]);
      if (effect !== "deny" && effect !== "allow") this.fail([...p, "effect"], "must be deny or allow");
      const m: Path = [...p, "match"];
      if (this.value(m) === undefined) this.fail(m, "is required (say what the rule matches)");
      this.keysOf(m, ["categories", "collectedFor", "usedFor", "subjects", "kinds", "recipients", "services"]);
      const match: RuleMatch = {};
      const categories = this.taxonomyList([...m, "categories"], TaxonomyKind.dataCategory, false);
      const collectedFor = this.taxonomyList([...m, "collectedFor"], TaxonomyKind.dataUse, false);
      const usedFor = this.taxonomyList([...m, "usedFor"], TaxonomyKind.dataUse, false);
      const subjects = this.taxonomyList([...m, "subjects"], TaxonomyKind.dataSubject, false);
      const kinds = this.stringList([...m, "kinds"], false);
      kinds?.forEach((k, j) => {
        if (k !== "USE" && k !== "SHARE") this.fail([...m, "kinds", j], "must be USE or SHARE");
      });
      const services = this.stringList([...m, "services"], false);
      if (categories) match.categories = categories;
      if (collectedFor) match.collectedFor = collectedFor;
      if (usedFor) match.usedFor = usedFor;
      if (subjects) match.subjects = subjects;
      if (kinds) match.kinds = kinds as RuleMatch["kinds"];
      if (services) match.services = services;
      if (this.value([...m, "recipients"]) !== undefined) {
        match.recipients = this.oneOf([...m, "recipients"], Object.values(RecipientScope), RecipientScope.any);
      }
      if (Object.keys(match).length === 0)
        this.fail(m, "must name at least one of categories, collectedFor, usedFor, subjects, kinds, recipients, services");
      rules.push({
        id,
        description: this.value([...p, "description"]) === undefined ? "" : this.string([...p, "description"]),
        effect,
        severity: this.oneOf([...p, "severity"], SEVERITIES, Severity.high),
        mode: this.oneOf([...p, "mode"], Object.values(RuleMode), RuleMode.enforce),
        match,
      });
    }

    const declassify: Declassification[] = [];
    const transforms = Object.values(Transform);
    const maskings = Object.values(Masking).filter((m) => m !== Masking.none);
    for (let i = 0; i < this.list(["declassify"]); i++) {
      const p: Path = ["declassify", i];
      this.keysOf(p, ["id", "description", "transforms", "masking", "categories", "drop", "reclassifyTo"]);
      const id = claimId([...p, "id"]);
      const ts = this.stringList([...p, "transforms"], true) as string[];
      ts.forEach((t, j) => {
        if (!transforms.includes(t as Transform)) this.fail([...p, "transforms", j], `must be one of ${transforms.join(", ")}`);
      });
      const ms = this.stringList([...p, "masking"], true) as string[];
      ms.forEach((t, j) => {
        if (!maskings.includes(t as (typeof maskings)[number])) this.fail([...p, "masking", j], `must be one of ${maskings.join(", ")}`);
      });
      const categories = this.taxonomyList([...p, "categories"], TaxonomyKind.dataCategory, true) as string[];
      const drop = this.bool([...p, "drop"], false);
      const reclassifyTo = this.value([...p, "reclassifyTo"]);
      if (drop === (reclassifyTo !== undefined)) this.fail(p, "needs exactly one of 'drop: true' or 'reclassifyTo: <data category>'");
      let action: Declassification["action"] = { drop: true };
      if (!drop) {
        const target = this.taxonomyList([...p, "reclassifyTo"], TaxonomyKind.dataCategory, true) as string[];
        if (target.length !== 1) this.fail([...p, "reclassifyTo"], "must be one data category");
        action = { reclassifyTo: target[0] as string };
      }
      declassify.push({ id, transforms: ts as Transform[], masking: ms as Declassification["masking"], categories, action });
    }

    let unknownProvenance = { severity: Severity.medium as Severity };
    if (this.value(["unknownProvenance"]) !== undefined) {
      this.keysOf(["unknownProvenance"], ["severity"]);
      unknownProvenance = { severity: this.oneOf(["unknownProvenance", "severity"], SEVERITIES, Severity.medium) };
    }
    return { source: this.file, purposeLimitation, compatible, rules, declassify, unknownProvenance, locations };
  }
}

function formatPath(path: Path): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}
