// The console's sign-in: the analyst credentials, by a login form that sets a session cookie
// (HttpOnly, SameSite=Strict, with a CSRF token every action must echo), or by HTTP Basic for
// scripts and kiosks. Sessions live in this process's memory and expire; nothing is stored.
import { randomBytes, timingSafeEqual, createHash } from "node:crypto";

export const SESSION_COOKIE = "la_session";
/** A session's life. */
export const SESSION_MS = 8 * 60 * 60 * 1000;
/** Sessions held at once; the oldest is dropped past this. */
const MAX_SESSIONS = 1000;

export interface Credentials {
  user: string;
  password: string;
}

export interface Session {
  user: string;
  csrf: string;
  expires: number;
}

export interface ConsoleAuth {
  /** Whether these are the analyst credentials (constant time). */
  check(user: string, password: string): boolean;
  /** A new session: its id (the cookie's value) and CSRF token. */
  open(user: string, now?: number): { id: string; session: Session };
  close(id: string): void;
  /**
   * Who a request is: by its session cookie, or by HTTP Basic. `undefined` when neither holds.
   * `basic` says the request proved the credentials itself (no CSRF token is needed then).
   */
  identify(
    headers: { cookie?: string | undefined; authorization?: string | undefined },
    now?: number,
  ): { user: string; session?: Session; basic: boolean } | undefined;
}

/** Constant-time equality of two strings (compared as SHA-256 digests, so lengths leak nothing). */
function same(a: string, b: string): boolean {
  const da = createHash("sha256").update(a).digest();
  const db = createHash("sha256").update(b).digest();
  return timingSafeEqual(da, db);
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The Set-Cookie header of a session (Secure when the console is reached over TLS). */
export function sessionCookie(id: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MS / 1000}${secure ? "; Secure" : ""}`;
}

export function clearedCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
}

export function createConsoleAuth(credentials: Credentials): ConsoleAuth {
  const sessions = new Map<string, Session>();
  const check = (user: string, password: string) => same(user, credentials.user) && same(password, credentials.password);
  return {
    check,
    open(user, now = Date.now()) {
      const id = randomBytes(32).toString("base64url");
      const session = { user, csrf: randomBytes(24).toString("base64url"), expires: now + SESSION_MS };
      sessions.set(id, session);
      if (sessions.size > MAX_SESSIONS) sessions.delete(sessions.keys().next().value as string);
      return { id, session };
    },
    close(id) {
      sessions.delete(id);
    },
    identify(headers, now = Date.now()) {
      const auth = headers.authorization ?? "";
      if (/^basic /i.test(auth)) {
        const decoded = Buffer.from(auth.slice(6).trim(), "base64").toString("utf8");
        const colon = decoded.indexOf(":");
        if (colon >= 0 && check(decoded.slice(0, colon), decoded.slice(colon + 1))) return { user: decoded.slice(0, colon), basic: true };
        return undefined;
      }
      const id = cookieValue(headers.cookie, SESSION_COOKIE);
      const session = id === undefined ? undefined : sessions.get(id);
      if (!session) return undefined;
      if (session.expires <= now) {
        sessions.delete(id as string);
        return undefined;
      }
      return { user: session.user, session, basic: false };
    },
  };
}
