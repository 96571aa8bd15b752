/**
 * Where adapters report what an operator should see (a retry, a failed delivery, the Kafka
 * client's warnings). Adapters never write to stdout or stderr themselves: a process's main
 * passes a logger in, and without one nothing is written. Messages carry no personal data.
 */
export interface Logger {
  warn(message: string): void;
  error(message: string): void;
}

/** Writes nothing: the default of every adapter. */
export const silentLogger: Logger = { warn() {}, error() {} };

/**
 * One line per message through `write`: `lineage-audit: <message>` as text, or one JSON object
 * (`{"time","level","message"}`) for log collectors (`LINEAGE_AUDIT_LOG=json`).
 */
export function createLineLogger(write: (line: string) => void, format: "text" | "json" = "text", clock: () => number = Date.now): Logger {
  const line = (level: "warn" | "error", message: string) => {
    const oneLine = message.split("\n")[0] ?? "";
    write(
      format === "json" ? JSON.stringify({ time: new Date(clock()).toISOString(), level, message: oneLine }) : `lineage-audit: ${oneLine}`,
    );
  };
  return { warn: (m) => line("warn", m), error: (m) => line("error", m) };
}
