import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { EVENT_TIME_RANGE, isWholeDay, parseTime } from "../../../services/codec/index.ts";

describe("parseTime: one reading of times for CLI flags and NDJSON", () => {
  it.each([
    ["2019-01-31", "2019-01-31T00:00:00.000Z"],
    ["2019-01-31T12:00", "2019-01-31T12:00:00.000Z"],
    ["2019-01-31 12:00:30", "2019-01-31T12:00:30.000Z"],
    ["2019-01-31T12:00:00.2509Z", "2019-01-31T12:00:00.250Z"],
    ["2019-01-31T12:00:00+02:00", "2019-01-31T10:00:00.000Z"],
    ["2019-01-31T12:00-0530", "2019-01-31T17:30:00.000Z"],
    ["2020-02-29", "2020-02-29T00:00:00.000Z"],
  ])("reads %s as %s (no offset = UTC)", (text, iso) => {
    expect(new Date(parseTime(text) as number).toISOString()).toBe(iso);
  });

  it.each([
    "last tuesday",
    "2019-02-30",
    "2019-02-29",
    "2019-13-01",
    "2019-01-31T24:00",
    "2019-01-31T12:60",
    "2019-1-31",
    "1548936000000",
    "2019-01-31T12:00+25:00",
    "",
  ])("refuses %j", (text) => {
    expect(parseTime(text)).toBeUndefined();
  });

  it("reads the same instant whatever the process's time zone", () => {
    const zone = process.env["TZ"];
    try {
      const readings = ["UTC", "Pacific/Auckland", "America/Los_Angeles"].map((tz) => {
        process.env["TZ"] = tz;
        return parseTime("2019-01-31T12:00");
      });
      expect(new Set(readings).size).toBe(1);
    } finally {
      if (zone === undefined) delete process.env["TZ"];
      else process.env["TZ"] = zone;
    }
  });

  it("round-trips every instant of the stored range through its ISO text", () => {
    fc.assert(
      fc.property(fc.integer({ min: EVENT_TIME_RANGE.min, max: Date.UTC(9999, 11, 31) }), (ms) => {
        expect(parseTime(new Date(ms).toISOString())).toBe(ms);
      }),
    );
  });

  it("knows a whole UTC day", () => {
    expect(isWholeDay(parseTime("2019-01-31") as number)).toBe(true);
    expect(isWholeDay(parseTime("2019-01-31T00:00:00+01:00") as number)).toBe(false);
  });
});
