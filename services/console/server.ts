// The investigation console's HTTP side, mounted on serve's HTTP server: a login page, the
// bundled app (dist/web, built with vite; no CDN), its JSON API and a server-sent event stream
// of new violations. Everything but the login page is behind the analyst credentials.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { IncomingMessage, ServerResponse } from "node:http";
import { clearedCookie, cookieValue, SESSION_COOKIE, sessionCookie, type ConsoleAuth } from "./auth.ts";
import { REPORT_FORMATS, type ConsoleData, type ReportFormat } from "./queries.ts";

/** Where `npm run build` puts the bundled app (two levels up from services/console or dist/console). */
export const CONSOLE_ASSETS_DIR = fileURLToPath(new URL("../../dist/web/", import.meta.url));

/** How often the live stream checks for new violations. */
export const LIVE_POLL_MS = 1000;
/** Live streams open at once; more are answered 503. */
export const MAX_LIVE_STREAMS = 32;
const MAX_FORM_BYTES = 4096;
const ASSET = /^\/assets\/[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.(js|css)$/;
const TYPES: Record<string, string> = { js: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8" };

export interface ConsoleOptions {
  auth: ConsoleAuth;
  data: ConsoleData;
  /** @default CONSOLE_ASSETS_DIR */
  assetsDir?: string;
}

/** Handles the console's paths; resolves false for any other path (the caller answers it). */
export type ConsoleHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

const LOGIN_CSS = `body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1b1f24}
main{max-width:22rem;margin:12vh auto;padding:2rem;background:#fff;border:1px solid #d0d5dd;border-radius:8px}
h1{font-size:1.4rem;margin:0 0 1rem}label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;border:1px solid #667085;border-radius:4px}
button{margin-top:1.2rem;padding:.55rem 1.2rem;font:inherit;font-weight:600;background:#1d4ed8;color:#fff;border:0;border-radius:4px;cursor:pointer}
:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}.error{color:#b42318;font-weight:600}`;

function loginPage(failed: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in: lineage-audit</title><link rel="stylesheet" href="/login.css"></head>
<body><main><h1>lineage-audit console</h1>
${failed ? '<p class="error" role="alert">Wrong user or password.</p>' : ""}
<form method="post" action="/login">
<label for="user">User</label><input id="user" name="user" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></main></body></html>`;
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, "content-type": type, "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  send(res, status, "application/json; charset=utf-8", JSON.stringify(body), headers);

/** The body as text when it has this content type (else 415) and is at most MAX_FORM_BYTES (else 413). */
async function readBody(req: IncomingMessage, contentType: string): Promise<string | 413 | 415> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== contentType) return 415;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_FORM_BYTES) return 413;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const body = await readBody(req, "application/x-www-form-urlencoded");
  return typeof body === "string" ? new URLSearchParams(body) : undefined;
}

export function createConsoleHandler(options: ConsoleOptions): ConsoleHandler {
  const { auth, data } = options;
  const assets = options.assetsDir ?? CONSOLE_ASSETS_DIR;
  let live = 0;

  function indexHtml(csrf: string): string {
    let html: string;
    try {
      html = readFileSync(join(assets, "index.html"), "utf8");
    } catch {
      return "<!doctype html><title>lineage-audit</title><p>The console is not built: run npm run build.</p>";
    }
    return html.replace("%CSRF_TOKEN%", csrf);
  }

  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://console");
    const path = url.pathname;
    const secure = (req.socket as { encrypted?: boolean }).encrypted === true;
    if (path === "/login.css" && req.method === "GET") return (send(res, 200, TYPES["css"] as string, LOGIN_CSS), true);
    if (path === "/login") {
      if (req.method === "GET") return (send(res, 200, "text/html; charset=utf-8", loginPage(url.searchParams.has("failed"))), true);
      if (req.method !== "POST") return (json(res, 405, { error: "use GET or POST" }), true);
      const form = await readForm(req);
      const user = form?.get("user") ?? "";
      if (!form || !auth.check(user, form.get("password") ?? "")) {
        return (send(res, 303, "text/plain; charset=utf-8", "", { location: "/login?failed" }), true);
      }
      const { id } = auth.open(user);
      return (send(res, 303, "text/plain; charset=utf-8", "", { location: "/", "set-cookie": sessionCookie(id, secure) }), true);
    }
    const isPage = path === "/" || path === "/index.html";
    const isApi = path.startsWith("/api/console/");
    const isAsset = ASSET.test(path);
    if (!isPage && !isApi && !isAsset && path !== "/logout") return false;

    const who = auth.identify({ cookie: req.headers.cookie, authorization: req.headers.authorization });
    if (!who) {
      if (isPage) return (send(res, 303, "text/plain; charset=utf-8", "", { location: "/login" }), true);
      return (json(res, 401, { error: "sign in at /login, or send HTTP Basic with the analyst credentials" }), true);
    }
    // Actions (POST) need the session's CSRF token, unless the request proved the credentials itself.
    if (req.method === "POST" && !who.basic) {
      const form = await readForm(req);
      const token = (req.headers["x-csrf-token"] as string | undefined) ?? form?.get("csrf") ?? "";
      if (!who.session || token !== who.session.csrf) return (json(res, 403, { error: "missing or wrong CSRF token" }), true);
    }
    if (path === "/logout") {
      if (req.method !== "POST") return (json(res, 405, { error: "use POST" }), true);
      const id = cookieValue(req.headers.cookie, SESSION_COOKIE);
      if (id) auth.close(id);
      return (send(res, 303, "text/plain; charset=utf-8", "", { location: "/login", "set-cookie": clearedCookie() }), true);
    }
    if (path === "/api/console/person" && req.method === "POST") return (await person(req, res), true);
    if (req.method !== "GET") return (json(res, 405, { error: "use GET" }), true);
    if (isPage) return (send(res, 200, "text/html; charset=utf-8", indexHtml(who.session?.csrf ?? "")), true);
    if (isAsset) {
      const ext = path.slice(path.lastIndexOf(".") + 1);
      let body: Buffer;
      try {
        body = readFileSync(join(assets, path));
      } catch {
        return (json(res, 404, { error: "no such asset" }), true);
      }
      return (send(res, 200, TYPES[ext] as string, body, { "cache-control": "private, max-age=3600" }), true);
    }
    if (path === "/api/console/overview") return (json(res, 200, await data.overview()), true);
    if (path === "/api/console/operations") return (json(res, 200, await data.operations()), true);
    if (path === "/api/console/dataset") {
      const id = url.searchParams.get("name") ?? "";
      if (id === "" || id.length > 1000 || !id.includes("/")) return (json(res, 400, { error: "name must be namespace/name" }), true);
      const view = await data.dataset(id);
      if (!view) return (json(res, 404, { error: "no lineage names this dataset" }), true);
      return (json(res, 200, view), true);
    }
    if (path === "/api/console/datasets") {
      const q = url.searchParams.get("q") ?? "";
      // A part of a name: printable, at most 200 characters; matched as text, never as a pattern.
      if (q.length > 200 || /[\u0000-\u001f\u007f]/.test(q))
        return (json(res, 400, { error: "q must be at most 200 printable characters" }), true);
      return (json(res, 200, await data.datasets(q)), true);
    }
    if (path === "/api/console/rule") {
      const id = url.searchParams.get("id") ?? "";
      const detail = data.knows(id) ? await data.rule(id) : undefined;
      if (!detail) return (json(res, 404, { error: "the policy has no such rule" }), true);
      return (json(res, 200, detail), true);
    }
    if (path === "/api/console/report") {
      const id = url.searchParams.get("rule") ?? "";
      const format = url.searchParams.get("format") ?? "";
      if (!Object.hasOwn(REPORT_FORMATS, format)) return (json(res, 400, { error: "format must be md, json or html" }), true);
      const report = data.knows(id) ? await data.report(id, format as ReportFormat) : undefined;
      if (!report) return (json(res, 404, { error: "the policy has no such rule" }), true);
      // A download, never rendered here (the HTML report draws its chart and diagram inline).
      send(res, 200, report.type, report.body, {
        "content-disposition": `attachment; filename="${report.filename}"`,
        "content-security-policy": "sandbox",
      });
      return true;
    }
    if (path === "/api/console/live") return (liveStream(req, res), true);
    return (json(res, 404, { error: "no such console API" }), true);
  };

  /**
   * An access request: the identifier comes in a POST body (never a URL, so no log or history holds
   * it), is pseudonymised at once and never stored, logged or sent back.
   */
  async function person(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, "application/json");
    if (body === 415) return json(res, 415, { error: "content-type must be application/json" });
    if (body === 413) return json(res, 413, { error: "the request is too large" });
    let identifier: unknown;
    try {
      identifier = (JSON.parse(body) as { identifier?: unknown }).identifier;
    } catch {
      return json(res, 400, { error: 'the body must be JSON: {"identifier": "…"}' });
    }
    if (typeof identifier !== "string" || identifier.trim() === "" || identifier.length > 320)
      return json(res, 400, { error: "identifier must be text of 1 to 320 characters" });
    const history = await data.person(identifier);
    if (!history)
      return json(res, 503, {
        error: "the pseudonymisation key is not configured (LINEAGE_AUDIT_HMAC_KEY): access requests cannot be answered",
      });
    return json(res, 200, history);
  }

  /**
   * Server-sent events: `violations` with the stored count whenever it changes, `model` with when
   * the exact model's latest snapshot was computed whenever a newer one is there; a comment every
   * 15 s keeps proxies open.
   */
  function liveStream(req: IncomingMessage, res: ServerResponse): void {
    if (live >= MAX_LIVE_STREAMS) return json(res, 503, { error: "too many live views open; retry" });
    live++;
    res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/event-stream; charset=utf-8", connection: "keep-alive" });
    let last = -1;
    let lastModel: string | null | undefined;
    let beats = 0;
    let busy = false;
    const tick = async () => {
      if (busy) return;
      busy = true;
      try {
        const [n, model] = await Promise.all([data.violationCount(), data.modelComputedAt()]);
        let said = false;
        if (n !== last) {
          last = n;
          res.write(`event: violations\ndata: ${JSON.stringify({ violations: n })}\n\n`);
          said = true;
        }
        if (model !== lastModel) {
          lastModel = model;
          res.write(`event: model\ndata: ${JSON.stringify({ computedAt: model })}\n\n`);
          said = true;
        }
        if (!said && ++beats % 15 === 0) res.write(": still here\n\n");
      } catch {
        // The store is busy or failing: the next tick tries again.
      } finally {
        busy = false;
      }
    };
    void tick();
    const timer = setInterval(() => void tick(), LIVE_POLL_MS);
    req.on("close", () => {
      clearInterval(timer);
      live--;
    });
  }
}
