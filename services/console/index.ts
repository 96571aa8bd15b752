export { createConsoleAuth, cookieValue, sessionCookie, SESSION_COOKIE, SESSION_MS } from "./auth.ts";
export type { ConsoleAuth, Credentials, Session } from "./auth.ts";
export { createConsoleData, STILL_HAPPENING_MS } from "./queries.ts";
export type { ConsoleData, Overview, PersonHistory, RuleOverview } from "./queries.ts";
export { createConsoleHandler, CONSOLE_ASSETS_DIR, LIVE_POLL_MS, MAX_LIVE_STREAMS } from "./server.ts";
export type { ConsoleHandler, ConsoleOptions } from "./server.ts";
