// The console's overview: every rule with violations, exact and possibly-affected users side by
// side, a sparkline of new users per day (uPlot), and new violations arriving live (server-sent events).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import type { Overview, RuleDetail, RuleOverview } from "../../services/console/types.ts";
import { renderRule } from "./rule.ts";
import { el, modelNote } from "./dom.ts";
import { renderPersonForm } from "./person.ts";
import { renderOperations } from "./operations.ts";
import { renderDataset, renderDatasetSearch } from "./dataset.ts";
import type { DatasetView, OperationsView } from "../../services/console/types.ts";

const n = (v: number) => v.toLocaleString("en-US");
const day = (iso: string | null) => (iso ? iso.slice(0, 10) : "—");
const csrf = document.querySelector<HTMLMetaElement>('meta[name="csrf-token"]')?.content ?? "";
const csrfInput = document.getElementById("csrf") as HTMLInputElement | null;
if (csrfInput) csrfInput.value = csrf;

function sparkline(cell: HTMLElement, rule: RuleOverview): void {
  const total = rule.daily.reduce((a, d) => a + d.users, 0);
  const peak = rule.daily.reduce((a, d) => (d.users > a.users ? d : a), { day: "", users: 0 });
  const holder = document.createElement("div");
  holder.className = "spark";
  holder.setAttribute("role", "img");
  holder.setAttribute(
    "aria-label",
    `${n(total)} users over ${rule.daily.length} days, from ${day(rule.first)} to ${day(rule.last)}; most on ${peak.day}: ${n(peak.users)}`,
  );
  cell.append(holder);
  if (rule.daily.length === 0) return;
  const xs = rule.daily.map((d) => Date.parse(`${d.day}T00:00:00Z`) / 1000);
  const ys = rule.daily.map((d) => d.users);
  new uPlot(
    {
      width: 160,
      height: 40,
      legend: { show: false },
      cursor: { show: false },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: true } },
      series: [{}, { stroke: "#b42318", fill: "rgba(180,35,24,0.12)", width: 1.5, points: { show: false } }],
    },
    [xs, ys],
    holder,
  );
}

function render(overview: Overview): void {
  const root = document.getElementById("overview") as HTMLElement;
  root.replaceChildren();
  if (overview.rules.length === 0) {
    root.append(el("p", "No rule has been violated in the stored history.", "empty"));
    return;
  }
  const table = document.createElement("table");
  table.id = "rules";
  table.append(el("caption", `Rules with violations (${overview.rules.length}); newest event stored ${day(overview.latestEvent)}`));
  const head = document.createElement("tr");
  for (const h of [
    "Rule",
    "Severity / mode",
    "Exactly affected",
    "Possibly affected",
    "Violations",
    "First",
    "Last",
    "Now",
    "New users per day",
  ]) {
    const th = el("th", h);
    th.setAttribute("scope", "col");
    head.append(th);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  table.append(thead);
  const body = document.createElement("tbody");
  for (const r of overview.rules) {
    const row = document.createElement("tr");
    row.dataset["rule"] = r.id;
    const name = document.createElement("th");
    name.setAttribute("scope", "row");
    const link = document.createElement("a");
    link.href = `#/rule/${encodeURIComponent(r.id)}`;
    link.append(el("strong", r.id));
    name.append(link, el("span", r.description, "desc"));
    const sev = document.createElement("td");
    sev.append(el("span", r.severity, `badge sev-${r.severity}`), document.createTextNode(` ${r.mode}`));
    const exact = el("td", n(r.exact), "num exact");
    exact.dataset["field"] = "exact";
    const possibly = el("td", n(r.possibly), "num");
    possibly.dataset["field"] = "possibly";
    const violations = el("td", n(r.violations), "num");
    violations.dataset["field"] = "violations";
    const now = el("td", r.stillHappening ? "still happening" : "stopped", r.stillHappening ? "now" : "stopped");
    const spark = document.createElement("td");
    row.append(name, sev, exact, possibly, violations, el("td", day(r.first), "date"), el("td", day(r.last), "date"), now, spark);
    body.append(row);
    sparkline(spark, r);
  }
  table.append(body);
  root.append(table, modelNote(overview.model));
}

let shown = -1;
/** Violations stored when the page first showed the count: what arrived since is said as new. */
let opened = -1;

/** The page the hash names: `#/rule/<id>`, else the overview. */
function route():
  { page: "overview" } | { page: "person" } | { page: "operations" } | { page: "datasets" } | { page: "rule" | "dataset"; id: string } {
  if (location.hash === "#/person") return { page: "person" };
  if (location.hash === "#/datasets") return { page: "datasets" };
  if (location.hash === "#/operations") return { page: "operations" };
  const d = /^#\/dataset\/(.+)$/.exec(location.hash);
  if (d) return { page: "dataset", id: decodeURIComponent(d[1] as string) };
  const m = /^#\/rule\/(.+)$/.exec(location.hash);
  return m ? { page: "rule", id: decodeURIComponent(m[1] as string) } : { page: "overview" };
}

async function getJson<T>(path: string): Promise<{ status: number; body: T | undefined }> {
  const res = await fetch(path, { headers: { accept: "application/json" } });
  if (res.status === 401) location.assign("/login");
  return { status: res.status, body: res.ok ? ((await res.json()) as T) : undefined };
}

/** Each refresh's ticket: one that finishes after a newer one started draws nothing (the page may have changed). */
let generation = 0;

async function refresh(): Promise<void> {
  const ticket = ++generation;
  const at = route();
  const heading = document.getElementById("page-title") as HTMLElement;
  if (at.page === "dataset") {
    heading.textContent = `Dataset ${at.id}`;
    document.title = `${at.id}: lineage-audit`;
    const { body } = await getJson<DatasetView>(`/api/console/dataset?name=${encodeURIComponent(at.id)}`);
    if (ticket !== generation) return;
    renderDataset(document.getElementById("overview") as HTMLElement, at.id, body);
  } else if (at.page === "datasets") {
    heading.textContent = "Datasets";
    document.title = "Datasets: lineage-audit";
    // The search is drawn once: a live refresh must not wipe what was typed or found.
    const root = document.getElementById("overview") as HTMLElement;
    if (!root.querySelector("#dataset-search")) renderDatasetSearch(root);
  } else if (at.page === "operations") {
    heading.textContent = "Operations";
    document.title = "Operations: lineage-audit";
    const { body } = await getJson<OperationsView>("/api/console/operations");
    if (ticket !== generation || !body) return;
    renderOperations(document.getElementById("overview") as HTMLElement, body);
  } else if (at.page === "person") {
    heading.textContent = "A person's history";
    document.title = "Access request: lineage-audit";
    // The form is drawn once: a live refresh must not wipe what was typed or found.
    const root = document.getElementById("overview") as HTMLElement;
    if (!root.querySelector("#person-form")) renderPersonForm(root, csrf);
  } else if (at.page === "rule") {
    heading.textContent = `Rule ${at.id}`;
    document.title = `${at.id}: lineage-audit`;
    const { body } = await getJson<RuleDetail>(`/api/console/rule?id=${encodeURIComponent(at.id)}`);
    if (ticket !== generation) return;
    renderRule(document.getElementById("overview") as HTMLElement, at.id, body);
  } else {
    heading.textContent = "Overview";
    document.title = "Overview: lineage-audit";
  }
  const { body: overview } = await getJson<Overview>("/api/console/overview");
  if (!overview || ticket !== generation) return;
  if (at.page === "overview") render(overview);
  const live = document.getElementById("live") as HTMLElement;
  if (opened < 0) opened = overview.violations;
  const added = overview.violations > opened ? ` (${n(overview.violations - opened)} new since this page opened)` : "";
  live.textContent = `Live: ${n(overview.violations)} violations stored${added}, updated ${new Date().toLocaleTimeString("en-GB")}.`;
  shown = overview.violations;
}

void refresh();
// The skip link moves the focus to the page's content without changing the address (a hash of
// its own would leave the page the address names).
document.querySelector<HTMLAnchorElement>("a.skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  (document.getElementById("main") as HTMLElement).focus();
});
// A new page: the focus goes to its content at once (what it draws lands there), not when the
// page's last request ends, which could pull the focus from where someone has moved it since.
window.addEventListener("hashchange", () => {
  (document.getElementById("main") as HTMLElement).focus();
  void refresh();
});
const events = new EventSource("/api/console/live");
// The exact model's newest snapshot: a page showing exact counts draws them again from it.
let shownModel: string | null | undefined;
events.addEventListener("model", (e) => {
  const computedAt = (JSON.parse((e as MessageEvent<string>).data) as { computedAt: string | null }).computedAt;
  const first = shownModel === undefined;
  shownModel = computedAt;
  const at = route().page;
  if (!first && (at === "overview" || at === "rule")) void refresh();
});
events.addEventListener("violations", (e) => {
  const count = (JSON.parse((e as MessageEvent<string>).data) as { violations: number }).violations;
  // The first event only says how many there are now: the page's own first load shows that.
  if (shown >= 0 && count !== shown) void refresh();
});
