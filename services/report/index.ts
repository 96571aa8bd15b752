export { buildReport } from "./report.ts";
export type { IncidentReport } from "./report.ts";
export { renderHtml, renderJson, renderMarkdown } from "./render.ts";
