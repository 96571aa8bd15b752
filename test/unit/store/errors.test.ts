import { describe, expect, it } from "vitest";
import { insertError } from "../../../services/store/index.ts";
import { StoreDataError, StoreError } from "../../../services/errors/index.ts";

/** The shape @clickhouse/client (and chdb/connection) give a server's error. */
function clickhouseError(code: string, type: string, message: string): Error {
  return Object.assign(new Error(message), { code, type });
}

describe("insertError: a failed insert classified by ClickHouse's error code", () => {
  it("makes a data error of a refused value, naming the code and type but never ClickHouse's text (it quotes the row)", () => {
    const cause = clickhouseError(
      "469",
      "VIOLATED_CONSTRAINT",
      "Constraint `c` is violated at row 1. Column values: subject = 'alice@example.com'.",
    );
    const error = insertError(cause, "writing 1 rows to db.events_v1 failed", { table: "events_v1", rows: 1 });
    expect(error).toBeInstanceOf(StoreDataError);
    expect(error.retriable).toBe(false);
    expect(error.message).toBe("writing 1 rows to db.events_v1 failed: ClickHouse error 469 (VIOLATED_CONSTRAINT)");
    expect(JSON.stringify({ ...error, message: error.message })).not.toContain("alice@example.com");
    expect(error.context).toMatchObject({ clickhouseCode: 469, table: "events_v1" });
  });

  it.each([
    ["27", "CANNOT_PARSE_INPUT_ASSERTION_FAILED"],
    ["41", "CANNOT_PARSE_DATETIME"],
    ["53", "TYPE_MISMATCH"],
    ["131", "TOO_LARGE_STRING_SIZE"],
  ])("treats %s %s as a data error", (code, type) => {
    expect(insertError(clickhouseError(code, type, "x"), "w", {})).toBeInstanceOf(StoreDataError);
  });

  it.each([
    ["252", "TOO_MANY_PARTS"],
    ["241", "MEMORY_LIMIT_EXCEEDED"],
    ["159", "TIMEOUT_EXCEEDED"],
    ["210", "NETWORK_ERROR"],
    ["60", "UNKNOWN_TABLE"],
    ["99999", "A_CODE_NOT_KNOWN_YET"],
  ])("treats %s %s as an outage to retry, not a data error", (code, type) => {
    const error = insertError(clickhouseError(code, type, "x"), "w", {});
    expect(error).not.toBeInstanceOf(StoreDataError);
    expect(error.retriable).toBe(true);
  });

  it("treats a failure that is no answer from ClickHouse (connection refused) as an outage", () => {
    const error = insertError(new Error("connect ECONNREFUSED 127.0.0.1:8123"), "writing 3 rows to db.events_v1 failed", {});
    expect(error).toBeInstanceOf(StoreError);
    expect(error).not.toBeInstanceOf(StoreDataError);
    expect(error.retriable).toBe(true);
    expect(error.message).toBe("writing 3 rows to db.events_v1 failed: connect ECONNREFUSED 127.0.0.1:8123");
  });
});
