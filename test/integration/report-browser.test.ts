// The HTML incident report as a person sees it: rendered by real headless Chromium, with its
// lineage diagram and chart laid out, and a screenshot taken.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { launchChromium, tempDir } from "./helpers.ts";

const BIN = new URL("../../bin/lineage-audit.mjs", import.meta.url).pathname;
const dir = tempDir("lineage-report-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("HTML incident report in a browser", () => {
  it("renders its facts, lineage diagram and chart in headless Chromium", async () => {
    const env = { PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: join(dir, "store") };
    const demo = JSON.parse(execFileSync(process.execPath, [BIN, "demo", "--users", "2000", "--json"], { env, encoding: "utf8" })) as {
      groundTruth: { affectedUsers: number; exact: { users: number } };
    };
    const file = join(dir, "report.html");
    execFileSync(process.execPath, [BIN, "report", "--rule", "security-contact-not-for-marketing", "--format", "html", "-o", file], {
      env: { ...env, LINEAGE_AUDIT_DATABASE: "demo" },
    });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 1400 } });
      await page.goto(pathToFileURL(file).toString());
      expect(await page.title()).toBe("Incident report: security-contact-not-for-marketing");
      const subjects = await page.locator("#facts tr", { hasText: "Number of data subjects" }).locator("td").textContent();
      expect(subjects).toBe(demo.groundTruth.exact.users.toLocaleString("en-US"));
      const possibly = await page.locator("#facts tr", { hasText: "Possibly affected" }).locator("td").textContent();
      expect(possibly).toMatch(
        new RegExp(`^${demo.groundTruth.affectedUsers.toLocaleString("en-US")} data subjects were named by the flagged uses`),
      );
      for (const id of ["#lineage", "#chart"]) {
        const box = await page.locator(id).boundingBox();
        expect(box?.width, id).toBeGreaterThan(300);
        expect(box?.height, id).toBeGreaterThan(100);
      }
      expect(await page.locator("#lineage rect").count()).toBe(5);
      expect(await page.locator("#chart rect").count()).toBeGreaterThan(10);
      const shot = join(dir, "report.png");
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(20_000);
      expect(readFileSync(shot).subarray(1, 4).toString()).toBe("PNG");
    } finally {
      await browser.close();
    }
  });
});
