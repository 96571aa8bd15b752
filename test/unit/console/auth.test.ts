import { describe, expect, it } from "vitest";
import { createConsoleAuth, SESSION_MS, sessionCookie } from "../../../services/console/index.ts";

const creds = { user: "analyst", password: "a-long-analyst-password" };
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("console sign-in", () => {
  it("takes only the analyst credentials", () => {
    const auth = createConsoleAuth(creds);
    expect(auth.check("analyst", "a-long-analyst-password")).toBe(true);
    expect(auth.check("analyst", "a-long-analyst-passwor")).toBe(false);
    expect(auth.check("admin", "a-long-analyst-password")).toBe(false);
  });

  it("identifies a session by its cookie until it expires, and not after it is closed", () => {
    const auth = createConsoleAuth(creds);
    const { id, session } = auth.open("analyst", 1000);
    expect(session.csrf).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(auth.identify({ cookie: `other=1; la_session=${id}` }, 2000)).toMatchObject({ user: "analyst", basic: false, session });
    expect(auth.identify({ cookie: `la_session=${id}` }, 1000 + SESSION_MS)).toBeUndefined();
    const second = auth.open("analyst", 1000);
    auth.close(second.id);
    expect(auth.identify({ cookie: `la_session=${second.id}` }, 2000)).toBeUndefined();
    expect(auth.identify({ cookie: "la_session=forged" })).toBeUndefined();
  });

  it("takes HTTP Basic with the same credentials, for scripts and kiosks", () => {
    const auth = createConsoleAuth(creds);
    expect(auth.identify({ authorization: basic("analyst", "a-long-analyst-password") })).toEqual({ user: "analyst", basic: true });
    expect(auth.identify({ authorization: basic("analyst", "wrong") })).toBeUndefined();
    expect(auth.identify({ authorization: "Basic !!!" })).toBeUndefined();
  });

  it("sets an HttpOnly, SameSite=Strict cookie, Secure over TLS", () => {
    expect(sessionCookie("abc", false)).toBe(`la_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MS / 1000}`);
    expect(sessionCookie("abc", true)).toMatch(/; Secure$/);
  });
});
