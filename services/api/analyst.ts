import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { timingSafeEqual } from "node:crypto";
import type { AddressInfo } from "node:net";
import { StoreError } from "../errors/index.ts";
import type { Store } from "../store/index.ts";

export interface AnalystServerOptions {
  /** @default "127.0.0.1" */
  host?: string;
  /** @default 8124 */
  port?: number;
  /** The one account analysts' tools log in with. */
  user: string;
  password: string;
}

export interface AnalystServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * A read-only subset of ClickHouse's HTTP interface over the embedded store, so analysts point
 * standard tools at it (`@clickhouse/client`, curl, Grafana's ClickHouse data source): `GET
 * /ping`, and queries as the `query` URL parameter and/or the request body, answered in the
 * FORMAT they name. Credentials as ClickHouse takes them (Basic auth, X-ClickHouse-User/Key, or
 * user/password parameters). Anything that writes is refused, as `lineage-audit sql` refuses it.
 */
export async function startAnalystServer(store: Store, options: AnalystServerOptions): Promise<AnalystServer> {
  const expectedUser = Buffer.from(options.user);
  const expectedPassword = Buffer.from(options.password);
  const same = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      fail(res, 500, 1002, message, "UNKNOWN_EXCEPTION");
    });
  });

  function credentials(req: IncomingMessage, url: URL): { user: string; password: string } {
    const auth = req.headers.authorization ?? "";
    if (auth.startsWith("Basic ")) {
      const decoded = Buffer.from(auth.slice(6), "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    const user = (req.headers["x-clickhouse-user"] as string | undefined) ?? url.searchParams.get("user") ?? "default";
    const password = (req.headers["x-clickhouse-key"] as string | undefined) ?? url.searchParams.get("password") ?? "";
    return { user, password };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname === "/ping") {
      res.writeHead(200, { "content-type": "text/plain" }).end("Ok.\n");
      return;
    }
    if (url.pathname !== "/") return fail(res, 404, 1002, "only / (queries) and /ping are served here", "UNKNOWN_EXCEPTION");
    const { user, password } = credentials(req, url);
    if (!same(Buffer.from(user), expectedUser) || !same(Buffer.from(password), expectedPassword)) {
      // The same words as ClickHouse, so tools show their usual message.
      return fail(
        res,
        401,
        516,
        `${user}: Authentication failed: password is incorrect, or there is no user with such name`,
        "AUTHENTICATION_FAILED",
      );
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const sql = [url.searchParams.get("query") ?? "", body].filter((s) => s.trim() !== "").join("\n");
    if (sql.trim() === "") return fail(res, 400, 62, "empty query", "SYNTAX_ERROR");
    try {
      // Query parameters come as param_<name>=<value>, as ClickHouse takes them.
      const params = Object.fromEntries([...url.searchParams].filter(([k]) => k.startsWith("param_")).map(([k, v]) => [k.slice(6), v]));
      const text = await store.queryTextReadOnly(sql, Object.keys(params).length > 0 ? params : undefined);
      const json = /\bFORMAT\s+JSON/i.test(sql);
      res.writeHead(200, {
        "content-type": json ? "application/json; charset=UTF-8" : "text/tab-separated-values; charset=UTF-8",
        "x-clickhouse-query-id": url.searchParams.get("query_id") ?? "",
      });
      res.end(text);
    } catch (error) {
      if (error instanceof StoreError && error.context["refused"]) return fail(res, 403, 164, error.message, "READONLY");
      if (error instanceof StoreError) return fail(res, 400, 1002, error.message, "UNKNOWN_EXCEPTION");
      throw error;
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8124, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.address}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** An error as ClickHouse's HTTP interface writes one (clients parse "Code: N. DB::Exception: …"). */
function fail(res: ServerResponse, status: number, code: number, message: string, name: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=UTF-8", "x-clickhouse-exception-code": String(code) });
  res.end(`Code: ${code}. DB::Exception: ${message}. (${name})\n`);
}
