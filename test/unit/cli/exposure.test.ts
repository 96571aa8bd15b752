import { describe, expect, it } from "vitest";
import { checkExposure, isLoopback } from "../../../services/cli/context.ts";
import { ConfigError } from "../../../services/errors/index.ts";

const token = "t".repeat(16);
const analyst = (password: string) => ({ user: "analyst", password, port: 8124 });

describe("serve's exposure check", () => {
  it("treats only loopback addresses as private", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"]) expect(isLoopback(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "127.0.0.1.example.com", ""])
      expect(isLoopback(h), h).toBe(false);
  });

  it("lets loopback listen with no credentials at all", () => {
    expect(() => checkExposure("127.0.0.1", {})).not.toThrow();
    expect(() => checkExposure("localhost", { analyst: analyst("x") })).not.toThrow();
  });

  it("refuses a non-loopback address without a long enough token, or with a short analyst password", () => {
    expect(() => checkExposure("0.0.0.0", {})).toThrow(ConfigError);
    expect(() => checkExposure("0.0.0.0", { ingestToken: "short" })).toThrow(/at least 16/);
    expect(() => checkExposure("::", { ingestToken: token, analyst: analyst("short") })).toThrow(/LINEAGE_AUDIT_ANALYST_PASSWORD/);
    expect(() => checkExposure("0.0.0.0", { ingestToken: token })).not.toThrow();
    expect(() => checkExposure("0.0.0.0", { ingestToken: token, analyst: analyst("p".repeat(16)) })).not.toThrow();
  });

  it("never echoes the token or password it refuses", () => {
    try {
      checkExposure("0.0.0.0", { ingestToken: "secret-abc" });
    } catch (error) {
      expect((error as Error).message).not.toContain("secret-abc");
    }
  });
});
