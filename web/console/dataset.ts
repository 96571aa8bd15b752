// A dataset's page: the purpose labels on each field and where they were collected, who reads it
// for what, and the datasets upstream and downstream of it at any depth.
import type { DatasetList, DatasetView } from "../../services/console/types.ts";
import { el, oneFieldForm, section } from "./dom.ts";

const n = (v: number) => v.toLocaleString("en-US");

export const datasetLink = (dataset: string, text = dataset): HTMLAnchorElement => {
  const a = el("a", text);
  a.href = `#/dataset/${encodeURIComponent(dataset)}`;
  return a;
};

export function renderDataset(root: HTMLElement, id: string, view: DatasetView | undefined): void {
  root.replaceChildren();
  if (!view) {
    const empty = el("div", undefined, "empty");
    empty.append(el("p", `No lineage names a dataset “${id}”.`));
    const back = el("a", "Back to the overview");
    back.href = "#/";
    empty.append(back);
    root.append(empty);
    return;
  }
  section(
    root,
    "Labels on its fields",
    "No field of it holds a purpose label (no collection reaches it).",
    "Each field's labels: the data category, what it was collected for, and where (steps from there)",
    ["Field", "Category", "Collected for", "Subject", "Collected at", "Steps"],
    view.fields.flatMap((f) =>
      f.labels.length === 0
        ? [[f.field, "—", "—", "—", "—", "—"]]
        : f.labels.map((l) => [f.field, l.category, l.collectedFor.join(", "), l.dataSubject, l.origin, String(l.hops)]),
    ),
  );
  section(
    root,
    "Who reads it, for what",
    "No use or share read it.",
    "Uses and shares of it, by service and declared purpose",
    ["Kind", "Service", "Purposes", "Events", "Last"],
    view.readers.map((r) => [r.kind, r.service, r.purposes.join(", "), n(r.events), r.last ? r.last.slice(0, 10) : "—"]),
  );
  for (const [heading, list, none] of [
    ["Upstream", view.upstream, "Nothing is derived into it: it is collected directly."],
    ["Downstream", view.downstream, "Nothing is derived from it."],
  ] as const) {
    root.append(el("h3", heading));
    if (list.length === 0) {
      root.append(el("p", none));
      continue;
    }
    const ul = el("ul", undefined, "neighbours");
    ul.dataset["side"] = heading.toLowerCase();
    for (const d of list) {
      const li = el("li");
      li.append(datasetLink(d.dataset), document.createTextNode(` (${d.depth} ${d.depth === 1 ? "step" : "steps"})`));
      ul.append(li);
    }
    root.append(ul);
  }
}

/** The datasets page: a search by a part of the name (any case), its matches as links. */
export function renderDatasetSearch(root: HTMLElement): void {
  root.replaceChildren();
  const out = el("div");
  out.id = "dataset-results";
  out.setAttribute("aria-live", "polite");
  const { form } = oneFieldForm(
    {
      formId: "dataset-search",
      inputId: "dataset-query",
      label: "Dataset name contains",
      button: "Search",
      maxLength: 200,
      type: "search",
    },
    (q) => void search(q, out),
  );
  form.setAttribute("role", "search");
  root.append(form, out);
  void search("", out);
}

async function search(q: string, out: HTMLElement): Promise<void> {
  const res = await fetch(`/api/console/datasets?q=${encodeURIComponent(q)}`, { headers: { accept: "application/json" } });
  if (res.status === 401) return location.assign("/login");
  if (!res.ok) {
    const { error } = (await res.json().catch(() => ({ error: `the server answered ${res.status}` }))) as { error: string };
    out.replaceChildren(el("p", `Cannot search: ${error}.`, "empty"));
    return;
  }
  const list = (await res.json()) as DatasetList;
  out.replaceChildren();
  if (list.total === 0) {
    out.append(el("p", q === "" ? "No lineage names any dataset yet." : `No dataset's name contains “${q}”.`, "empty"));
    return;
  }
  const shown = list.datasets.length;
  out.append(
    el(
      "p",
      `${n(list.total)} dataset${list.total === 1 ? "" : "s"}${q === "" ? "" : ` whose name contains “${q}”`}${shown < list.total ? `; the first ${n(shown)} by name` : ""}:`,
    ),
  );
  const ul = el("ul", undefined, "datasets");
  for (const d of list.datasets) {
    const li = el("li");
    li.append(datasetLink(d.dataset));
    ul.append(li);
  }
  out.append(ul);
}
