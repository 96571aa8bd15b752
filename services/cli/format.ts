import type { AffectedSummary } from "../store/index.ts";

const n = (v: number) => v.toLocaleString("en-US");

/** The lineage path of a violation as a vertical diagram, one hop a line. */
export function pathDiagram(pathText: string, indent = "  "): string {
  return pathText
    .split(" ⇒ ")
    .map((hop, i) => `${indent}${i === 0 ? "  " : "⇒ "}${hop}`)
    .join("\n");
}

/** Human answer to "how many users, which data, since when, through which systems, shared outside?". */
export function formatSummary(s: AffectedSummary, truth?: { users: number; records: number; events: number }): string {
  const check = (found: number, planted: number | undefined) =>
    planted === undefined ? "" : found === planted ? `   (planted: ${n(planted)} ✓)` : `   (planted: ${n(planted)} ✗ MISMATCH)`;
  const rows: [string, string][] = [
    ["Users affected", `${n(s.subjects)}${check(s.subjects, truth?.users)}`],
    ["Records affected", `${n(s.records)}   (user × data category)${check(s.records, truth?.records)}`],
    ["Violating uses", `${n(s.violationEvents)}${check(s.violationEvents, truth?.events)}`],
    ["First violation", s.firstViolation ? `${s.firstViolation} UTC` : "none"],
    ["Last violation", s.lastViolation ? `${s.lastViolation} UTC` : "none"],
    ["Data categories", s.categories.join(", ") || "-"],
    ["Collected for", s.collectedFor.join(", ") || "-"],
    ["Used for", s.purposes.join(", ") || "-"],
    ["Services", s.services.join(", ") || "-"],
    ["Jobs", s.jobs.join(", ") || "-"],
    ["Collected at", s.origins.join(", ") || "-"],
    [
      "Shared outside?",
      s.externalShares.carryingViolatedData === 0
        ? `No: ${n(s.externalShares.checked)} external shares checked, none carried this data`
        : `YES: ${n(s.externalShares.carryingViolatedData)} external shares carried this data (${n(s.externalShares.subjects)} subjects), first ${s.externalShares.evidence[0]?.occurredAt ?? "?"} to ${s.externalShares.evidence[0]?.recipient ?? "?"}`,
    ],
  ];
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
