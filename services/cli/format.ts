import type { AffectedAnswer } from "../store/index.ts";

const n = (v: number) => v.toLocaleString("en-US");

/** The lineage path of a violation as a vertical diagram, one hop a line. */
export function pathDiagram(pathText: string, indent = "  "): string {
  return pathText
    .split(" ⇒ ")
    .map((hop, i) => `${indent}${i === 0 ? "  " : "⇒ "}${hop}`)
    .join("\n");
}

/** What the demo planted, to print beside each number (✓ or MISMATCH). */
export interface Planted {
  exact: { users: number; records: number; events: number };
  fieldLevel: { users: number; records: number; events: number };
}

/** A time in milliseconds as the store prints times (`2019-01-01 14:00:00.000`, UTC). */
export function storedTime(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

/** The reasons a subject named by a flagged use was not exactly affected, those that occur, as text. */
export function reasonsText(r: AffectedAnswer["exact"]["possiblyNotExactly"]["reasons"]): string {
  return (
    [
      [r.deletedBefore, "deleted before the use"],
      [r.notCarried, "not carried by a subject-named derivation"],
      [r.collectedAfter, "collected after the use"],
      [r.noProvenance, "no provenance for that subject"],
    ] as const
  )
    .filter(([count]) => count > 0)
    .map(([count, why]) => `${n(count)} ${why}`)
    .join(", ");
}

/**
 * Human answer to "how many users, which data, since when, through which systems, shared
 * outside?": the exact, per-person numbers, with the field-level ones beside them as "possibly
 * affected" wherever they differ, and the reasons they differ.
 */
export function formatSummary(a: AffectedAnswer, planted?: Planted): string {
  const s = a;
  const x = a.exact;
  const check = (found: number, want: number | undefined) =>
    want === undefined ? "" : found === want ? `   (planted: ${n(want)} ✓)` : `   (planted: ${n(want)} ✗ MISMATCH)`;
  const beside = (exact: number, field: number, what: string, want?: number) =>
    exact === field ? "" : `; possibly affected (field level): ${n(field)} ${what}${check(field, want)}`;
  const notExactly = x.possiblyNotExactly;
  const rows: [string, string][] = [
    [
      "Users affected",
      `${n(x.exact.users)}   (exact: their own data, with a label the rule forbids, was in the field used)${check(x.exact.users, planted?.exact.users)}`,
    ],
  ];
  if (x.fieldLevel.users !== x.exact.users || planted) {
    rows.push([
      "Possibly affected",
      `${n(x.fieldLevel.users)}   (field level: every user the flagged uses name)${check(x.fieldLevel.users, planted?.fieldLevel.users)}`,
    ]);
  }
  if (notExactly.users > 0) rows.push(["  not exactly, as", `${reasonsText(notExactly.reasons)}`]);
  if (x.onDeclarationOnly > 0) {
    rows.push([
      "  on declarations",
      `${n(x.onDeclarationOnly)} of the exact users rest only on a COLLECT naming nobody, not on evidence per person`,
    ]);
  }
  rows.push(
    [
      "Records affected",
      `${n(x.exact.records)}   (user × data category)${check(x.exact.records, planted?.exact.records)}${beside(x.exact.records, x.fieldLevel.records, "records", planted?.fieldLevel.records)}`,
    ],
    [
      "Violating uses",
      `${n(x.exact.violatingEvents)}${check(x.exact.violatingEvents, planted?.exact.events)}${beside(x.exact.violatingEvents, x.fieldLevel.violatingEvents, "flagged uses", planted?.fieldLevel.events)}`,
    ],
    ["First violation", timeBeside(x.exact.first, x.fieldLevel.first)],
    ["Last violation", timeBeside(x.exact.last, x.fieldLevel.last)],
    ["Data categories", s.categories.join(", ") || "-"],
    ["Collected for", s.collectedFor.join(", ") || "-"],
    ["Used for", s.purposes.join(", ") || "-"],
    ["Services", s.services.join(", ") || "-"],
    ["Jobs", s.jobs.join(", ") || "-"],
    ["Collected at", s.origins.join(", ") || "-"],
    [
      "Shared outside?",
      x.sharedOutside.shared
        ? `YES: ${n(x.sharedOutside.events)} external shares carried it for ${n(x.sharedOutside.subjects)} users (exact; whole-table exports included)`
        : s.externalShares.carryingViolatedData === 0
          ? `No: ${n(s.externalShares.checked)} external shares checked, none carried this data`
          : `No user's own data: ${n(s.externalShares.carryingViolatedData)} external shares carried fields holding this data (field level), none of an affected user`,
    ],
  );
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [
    `Rule ${s.ruleId}${s.severity ? ` (${s.severity}, ${s.mode})` : ""}${s.window.from || s.window.to ? `, ${s.window.from ?? "start"} to ${s.window.to ?? "now"}` : ""}`,
  ];
  for (const [k, v] of rows) lines.push(`  ${k.padEnd(width)}  ${v}`);
  const top = s.paths[0];
  if (top) {
    lines.push(
      "",
      `Lineage path (${n(top.violations)} violations${s.paths.length > 1 ? `; ${s.paths.length - 1} other path${s.paths.length > 2 ? "s" : ""} in --json` : ""}):`,
    );
    lines.push(pathDiagram(top.path));
  }
  return lines.join("\n");
}

function timeBeside(exact: number | null, field: number | null): string {
  const text = (t: number | null) => (t === null ? "none" : `${storedTime(t)} UTC`);
  return exact === field ? text(exact) : `${text(exact)}   (field level: ${text(field)})`;
}

/** What `replay --dry-run` prints: the compiled statements, then what they would write. */
export function formatDryRun(
  rulesFile: string,
  r: {
    replayId: string;
    events: number;
    violations: number;
    shapes: number;
    epochs: number;
    byRule: Record<string, number>;
    sql: { verdicts: string; violations: string };
  },
): string {
  const n = (x: number) => x.toLocaleString("en-US");
  const rules = Object.entries(r.byRule).sort(([a], [b]) => a.localeCompare(b));
  return [
    `-- replay ${r.replayId} of ${rulesFile}, dry run: nothing was written`,
    `-- 1. the verdict of each use shape at each lineage epoch (the compiled rules are the ARRAY JOIN expression):`,
    `${r.sql.verdicts};`,
    ``,
    `-- 2. per chunk of days ({from} to {to}), the violations written (the verdicts joined back onto the uses):`,
    `${r.sql.violations};`,
    ``,
    `-- would evaluate ${n(r.events)} stored uses and shares (${n(r.shapes)} shapes, ${n(r.epochs)} shape epochs)`,
    `-- would write ${n(r.violations)} violations, marked retroactive${rules.length > 0 ? ":" : ""}`,
    ...rules.map(([rule, count]) => `--   ${rule}: ${n(count)}`),
  ].join("\n");
}

/** Rows as a plain text table (cells cut at 60 characters). */
export function formatTable(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return "(no rows)";
  const cols = Object.keys(rows[0] as object);
  const cell = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  const widths = cols.map((c) => Math.min(60, Math.max(c.length, ...rows.map((r) => cell(r[c]).length))));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (v.length > (widths[i] as number) ? `${v.slice(0, (widths[i] as number) - 1)}…` : v.padEnd(widths[i] as number)))
      .join("  ")
      .trimEnd();
  return [line(cols), line(widths.map((w) => "-".repeat(w))), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join("\n");
}
