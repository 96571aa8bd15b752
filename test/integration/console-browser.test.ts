// The investigation console as a person uses it: a real `serve` over the demo's store, driven by
// real headless Chromium. Sign in, read the overview (its counts equal the planted truth and the
// store's), see a new violation arrive without a reload, and run axe-core on each page.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { createEmitter, createHttpTransport } from "../../services/emitter/index.ts";
import { HMAC_KEY, adsMatch, launchChromium, tempDir, twoFactorCollect } from "./helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const BIN = join(ROOT, "bin/lineage-audit.mjs");
const AXE = readFileSync(join(ROOT, "node_modules/axe-core/axe.min.js"), "utf8");
const PASSWORD = "console-test-password-0123";
const RULE = "security-contact-not-for-marketing";
const dir = tempDir("lineage-console-");
const env = { PATH: process.env["PATH"] ?? "", HOME: dir, LINEAGE_AUDIT_DATA: join(dir, "store"), LINEAGE_AUDIT_HMAC_KEY: HMAC_KEY };
let demo: { groundTruth: { affectedUsers: number; exact: { users: number } } };
let serve: ChildProcess | undefined;
let url = "";
let serveLog = "";
let browser: Browser | undefined;
// Alert receivers on 127.0.0.1: one takes every alert (204), one is gone (410: its endpoint is
// disabled), one fails (500: retried).
let receiver: Server | undefined;
const received: Record<string, number> = { ok: 0, gone: 0, broken: 0 };

beforeAll(async () => {
  demo = JSON.parse(execFileSync(process.execPath, [BIN, "demo", "--users", "2000", "--json"], { env, encoding: "utf8" })) as typeof demo;
  receiver = createServer((req, res) => {
    const path = (req.url ?? "").slice(1);
    req.resume();
    req.on("end", () => {
      received[path] = (received[path] ?? 0) + 1;
      res.writeHead(path === "ok" ? 204 : path === "gone" ? 410 : 500).end();
    });
  });
  await new Promise<void>((resolve) => receiver!.listen(0, "127.0.0.1", resolve));
  const port = (receiver.address() as AddressInfo).port;
  const secret = `whsec_${randomBytes(32).toString("base64")}`;
  const subscriptions = join(dir, "webhooks.yaml");
  writeFileSync(
    subscriptions,
    ["privacy-team", "old-siem", "flaky-pager"]
      .map(
        (id, i) =>
          `  - id: ${id}\n    url: http://127.0.0.1:${port}/${["ok", "gone", "broken"][i]}\n    secret: ${secret}\n    rules: [${RULE}]\n`,
      )
      .join("")
      .replace(/^/, "subscriptions:\n"),
  );
  serve = spawn(process.execPath, [BIN, "serve", "--port", "0"], {
    env: {
      ...env,
      LINEAGE_AUDIT_DATABASE: "demo",
      LINEAGE_AUDIT_ANALYST_PASSWORD: PASSWORD,
      LINEAGE_AUDIT_ANALYST_PORT: "0",
      LINEAGE_AUDIT_WEBHOOKS: subscriptions,
      LINEAGE_AUDIT_MODEL_REFRESH_MS: "1000",
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  url = await new Promise<string>((resolve, reject) => {
    let err = "";
    serve!.stderr!.on("data", (d: Buffer) => {
      err += d.toString("utf8");
      serveLog += d.toString("utf8");
      const m = /investigation console at (http:\/\/[^ ]+)\//.exec(err);
      if (m) resolve(m[1]!);
    });
    serve!.once("exit", (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  receiver?.close();
  if (serve && serve.exitCode === null) {
    serve.kill("SIGTERM");
    await new Promise((r) => serve!.once("exit", r));
  }
  rmSync(dir, { recursive: true, force: true });
});

async function signIn(page: Page, password = PASSWORD): Promise<void> {
  await page.goto(`${url}/`);
  expect(new URL(page.url()).pathname).toBe("/login");
  await page.getByLabel("User").fill("analyst");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** axe-core's serious and critical findings on the page as it stands (run through the devtools protocol: the page's CSP allows no injected script). */
async function axeFindings(page: Page): Promise<string[]> {
  await page.evaluate(`${AXE};undefined`);
  return page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> } })
      .axe;
    const result = await axe.run();
    return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.nodes.length})`);
  });
}

/**
 * A full-page screenshot (kept in docs/images when LINEAGE_AUDIT_SCREENSHOTS names it), checked
 * for the page's key elements: each is visible, on the page, and drawn (its own screenshot is not
 * a blank box, whose PNG would be a few hundred bytes).
 */
async function screenshot(page: Page, name: string, keys: readonly string[]): Promise<void> {
  const size = await page.evaluate("({ w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight })");
  const { w, h } = size as { w: number; h: number };
  for (const key of keys) {
    const element = page.locator(key).first();
    expect(await element.isVisible(), `${name}: ${key} is visible`).toBe(true);
    const box = await element.boundingBox();
    expect(box && box.width > 0 && box.height > 0 && box.x >= 0 && box.x + box.width <= w + 1, `${name}: ${key} is on the page`).toBe(true);
    expect((await element.screenshot()).length, `${name}: ${key} is drawn`).toBeGreaterThan(1_500);
  }
  const shot = join(dir, `${name}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  expect(statSync(shot).size).toBeGreaterThan(20_000);
  expect(h).toBeGreaterThan(0);
  const docs = process.env["LINEAGE_AUDIT_SCREENSHOTS"];
  if (docs) {
    mkdirSync(docs, { recursive: true });
    copyFileSync(shot, join(docs, `console-${name}.png`));
  }
}

/** Evaluates `document.activeElement.<expression>` in the page (these tests are typed without the DOM's types). */
const focused = (page: Page, expression: string): Promise<unknown> =>
  page.evaluate(`document.activeElement ? document.activeElement.${expression} : undefined`);

/** Presses Tab until the focused element matches `selector` (at most `max` presses); fails otherwise. */
async function tabTo(page: Page, selector: string, max = 80): Promise<void> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press("Tab");
    if (await focused(page, `matches(${JSON.stringify(selector)})`)) return;
  }
  throw new Error(`${max} presses of Tab never reached ${selector}`);
}

const cell = (page: Page, field: string) => page.locator(`tr[data-rule="${RULE}"] td[data-field="${field}"]`);
const number = async (page: Page, field: string) => Number(((await cell(page, field).textContent()) ?? "").replaceAll(",", ""));

describe("the investigation console in Chromium", () => {
  it("refuses a wrong password with a clear message, and the API without credentials", async () => {
    const page = await browser!.newPage();
    await signIn(page, "wrong-password");
    await expect.poll(() => page.getByRole("alert").textContent()).toBe("Wrong user or password.");
    expect(await axeFindings(page)).toEqual([]);
    await page.close();
    expect((await fetch(`${url}/api/console/overview`)).status).toBe(401);
    const basic = await fetch(`${url}/api/console/overview`, {
      headers: { authorization: `Basic ${Buffer.from(`analyst:${PASSWORD}`).toString("base64")}` },
    });
    expect(basic.status).toBe(200);
    // An action without the session's CSRF token is refused.
    const login = await fetch(`${url}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `user=analyst&password=${PASSWORD}`,
      redirect: "manual",
    });
    const cookie = login.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^la_session=[^;]+; Path=\/; HttpOnly; SameSite=Strict/);
    const logout = await fetch(`${url}/logout`, { method: "POST", headers: { cookie: cookie.split(";")[0]! }, redirect: "manual" });
    expect(logout.status).toBe(403);
  });

  it("signs in and shows each rule with exact and possibly-affected users equal to the planted truth, then a new violation live", async () => {
    const page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    await signIn(page);
    await page.waitForSelector(`tr[data-rule="${RULE}"]`);
    expect(new URL(page.url()).pathname).toBe("/");
    expect(await number(page, "exact")).toBe(demo.groundTruth.exact.users);
    expect(await number(page, "possibly")).toBe(demo.groundTruth.affectedUsers);
    // The sparkline is drawn (uPlot's canvas), and described for screen readers.
    expect(await page.locator(`tr[data-rule="${RULE}"] .spark canvas`).count()).toBe(1);
    expect(await page.locator(`tr[data-rule="${RULE}"] .spark`).getAttribute("aria-label")).toMatch(/users over \d+ days/);
    expect(await axeFindings(page)).toEqual([]);

    await screenshot(page, "overview", ["table#rules", `tr[data-rule="${RULE}"] .spark canvas`, "#model-state"]);

    // A new misuse, emitted now: the page shows it without a reload (server-sent events).
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 42));
    const before = await number(page, "violations");
    const possiblyBefore = await number(page, "possibly");
    const emitter = createEmitter({ transport: createHttpTransport({ url }), pseudonymKey: HMAC_KEY, service: "auth-service" });
    // After the demo's last event (October 2019): the newest alerts on the rule's page.
    // Collected as the demo's enrolments are (the same purposes: the field's labels do not change,
    // so no stored use is checked again and only this misuse raises alerts).
    await emitter.emit({
      ...twoFactorCollect(Date.UTC(2019, 11, 1), "+15555559999"),
      purposes: ["essential.service.security", "essential.service.authentication"],
    });
    await emitter.emit(adsMatch(Date.UTC(2019, 11, 2), "+15555559999", "live-run"));
    await emitter.close();
    await expect.poll(() => number(page, "violations"), { timeout: 30_000 }).toBeGreaterThan(before);
    // One more person possibly affected: the counts are read again once the data changed.
    await expect.poll(() => number(page, "possibly"), { timeout: 30_000 }).toBe(possiblyBefore + 1);
    // The exact model catches up in the background (no call waits for it), and says when it was computed.
    await expect.poll(() => number(page, "exact"), { timeout: 60_000 }).toBe(demo.groundTruth.exact.users + 1);
    expect(await page.locator("#model-state").textContent()).toMatch(
      /^Exact counts from the exact model computed 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC(; a newer one is being computed)?\. Possibly-affected counts are live\.$/,
    );
    expect(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker)).toBe(42);
    await expect.poll(() => page.locator("#live").textContent()).toMatch(/\(\d+ new since this page opened\)/);
    await page.close();
  });

  it("opens a rule from the overview: its counts, its lineage graph with the demo's path, its shares, and its report as a download", async () => {
    const page = await browser!.newPage({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
    await signIn(page);
    await page.getByRole("link", { name: RULE }).click();
    await page.waitForSelector("figure.path svg");
    expect(page.url()).toMatch(new RegExp(`#/rule/${RULE}$`));
    expect(await page.getByRole("heading", { level: 2 }).textContent()).toBe(`Rule ${RULE}`);
    // The demo's live stream added one exact user above (the previous test); the planted ones are all here.
    expect(Number((await page.locator("#rule-exact").textContent())!.replaceAll(",", ""))).toBeGreaterThanOrEqual(
      demo.groundTruth.exact.users,
    );
    expect(Number((await page.locator("#rule-possibly").textContent())!.replaceAll(",", ""))).toBeGreaterThanOrEqual(
      demo.groundTruth.affectedUsers,
    );
    // The graph: the demo's path from the two-factor store, through the copies, to the hashed key the ads job matched on.
    const titles = await page.locator("figure.path").first().locator("g.node title").allTextContents();
    expect(titles.some((t) => /^warehouse\/security\.two_factor#(email|phone_number): collected by auth-service$/.test(t))).toBe(true);
    expect(titles.some((t) => /^warehouse\/ads\.matching_keys#(email|phone)_sha256: HASH by /.test(t))).toBe(true);
    expect(titles.at(-1)).toMatch(/^USE by (tailored|partner)-audiences: for marketing\.advertising/);
    expect(await page.locator("figure.path").first().locator("g.node.origin").count()).toBe(1);
    expect(await page.locator("figure.path").first().locator("g.node.use").count()).toBe(1);
    expect(await page.locator("#rule-chart canvas").count()).toBeGreaterThan(0);
    expect(await axeFindings(page)).toEqual([]);
    await screenshot(page, "rule", ["dl.facts-list", "#rule-chart canvas", "figure.path", "a.button[download]"]);

    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Markdown" }).click()]);
    expect(download.suggestedFilename()).toBe(`incident-${RULE}.md`);
    const report = readFileSync(await download.path(), "utf8");
    expect(report).toContain(RULE);

    // The live misuse of the test before raised an alert to each subscription: the page lists each
    // with its deliveries, as the receivers answered them.
    await expect.poll(() => JSON.stringify(received), { timeout: 30_000 }).toMatch(/^{"ok":[1-9]\d*,"gone":[1-9]\d*,"broken":[1-9]\d*}$/);
    const alertRow = (subscription: string) => page.locator(`#rule-alerts tr[data-subscription="${subscription}"][data-run="live-run"]`);
    await expect
      .poll(
        async () => {
          await page.reload();
          await page.waitForSelector("figure.path svg");
          return (await alertRow("flaky-pager").count()) > 0 && (await alertRow("old-siem").getAttribute("data-state")) === "disabled";
        },
        { timeout: 30_000 },
      )
      .toBe(true);
    expect(await alertRow("privacy-team").getAttribute("data-state")).toBe("delivered");
    expect(await alertRow("privacy-team").locator("ol.deliveries li").allTextContents()).toEqual([
      expect.stringMatching(/^attempt 1 at 20\d\d-\d\d-\d\d \d\d:\d\d:\d\dZ: HTTP 204, delivered \(\d+ ms\)$/),
    ]);
    expect(await alertRow("old-siem").locator("ol.deliveries li").allTextContents()).toEqual([
      expect.stringMatching(/^attempt 1 at .*: HTTP 410, disabled/),
    ]);
    const flaky = await alertRow("flaky-pager").locator("ol.deliveries li").allTextContents();
    expect(flaky.length).toBeGreaterThan(0);
    expect(flaky[0]).toMatch(/^attempt 1 at .*: HTTP 500, retry/);
    expect(await alertRow("flaky-pager").getAttribute("data-state")).toBe("pending");
    // Each alert names the job run that raised it; the newest violations' alerts come first.
    expect(await alertRow("privacy-team").locator("td").nth(3).textContent()).toMatch(/, run live-run$/);
    expect(await page.locator("#rule-alerts tbody tr").first().getAttribute("data-run")).toBe("live-run");
    expect(await axeFindings(page)).toEqual([]);

    // A rule the policy does not have: a clear empty state, never a stack trace.
    await page.goto(`${url}/#/rule/no-such-rule`);
    await expect.poll(() => page.locator(".empty").textContent()).toMatch(/The policy has no rule called “no-such-rule”/);
    expect(
      (
        await fetch(`${url}/api/console/report?rule=x&format=exe`, {
          headers: { authorization: `Basic ${Buffer.from(`analyst:${PASSWORD}`).toString("base64")}` },
        })
      ).status,
    ).toBe(400);
    await page.close();
  });

  it("answers an access request: the person's history and the evidence per violation, the identifier never kept", async () => {
    const page = await browser!.newPage({ viewport: { width: 1400, height: 1000 } });
    await signIn(page);
    await page.getByRole("link", { name: "A person (access request)" }).click();
    await page.getByLabel(/Identifier of the person/).fill("+15555559999");
    await page.getByRole("button", { name: "Look up" }).click();
    await page.waitForSelector("#person-history tbody tr");
    const kinds = await page.locator("#person-history tbody tr td:nth-child(2)").allTextContents();
    expect(kinds).toEqual(["COLLECT", "USE"]);
    const verdicts = await page.locator("#person-violations > li > p").allTextContents();
    expect(verdicts.some((v) => v.includes(`rule ${RULE}: exactly affected`))).toBe(true);
    expect(await page.locator("#person-violations li", { hasText: "collected" }).count()).toBeGreaterThan(0);
    expect(await axeFindings(page)).toEqual([]);
    await screenshot(page, "person", ["#person-form", "#person-history", "#person-violations"]);
    // The identifier is in no address, and serve logged nothing of it.
    expect(page.url()).toMatch(/#\/person$/);
    expect(serveLog).not.toContain("15555559999");
    await page.getByLabel(/Identifier of the person/).fill("nobody@example.com");
    await page.getByRole("button", { name: "Look up" }).click();
    await expect
      .poll(() => page.locator("#person .empty").textContent())
      .toMatch(/^Nothing stored concerns this person \(pseudonym [0-9a-f]{32}\)\.$/);
    await page.close();
  });

  it("shows operations: dead letters with their reasons, the webhook endpoints (one disabled by its receiver) and failed deliveries", async () => {
    // Something refused: a RunEvent that is not JSON.
    const bad = await fetch(`${url}/api/v1/lineage`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{ not json",
    });
    expect(bad.status).toBe(400);
    // Answered once journaled; its dead letter is stored right behind.
    await expect
      .poll(
        async () => ((await (await fetch(`${url}/healthz`)).json()) as { openLineage: { notYetStored: number } }).openLineage.notYetStored,
      )
      .toBe(0);
    const page = await browser!.newPage({ viewport: { width: 1400, height: 1000 } });
    await signIn(page);
    await page.getByRole("link", { name: "Operations" }).click();
    // Its own table: the overview's, still there just after the click, would do for "table".
    await page.waitForSelector('table:has-text("by error code and reason")');
    expect(await page.getByRole("heading", { level: 2 }).textContent()).toBe("Operations");
    const reasons = await page.locator("table", { hasText: "by error code and reason" }).locator("tbody tr").allTextContents();
    expect(reasons.some((r) => r.includes("OpenLineage event is not valid JSON"))).toBe(true);
    expect(await page.getByText("This serve consumes no Kafka topic").count()).toBe(1);
    expect(await page.getByText("Every RunEvent answered 201 is stored.").count()).toBe(1);
    const endpoints = page.locator("table", { hasText: "Alert subscriptions and whether they are delivered to" }).locator("tbody tr");
    await expect.poll(() => endpoints.count()).toBe(3);
    const endpointRows = await endpoints.allTextContents();
    expect(endpointRows.find((r) => r.includes("privacy-team"))).toMatch(/\/ok.*enabled/);
    expect(endpointRows.find((r) => r.includes("old-siem"))).toMatch(/\/gone.*disabled.*410 Gone/);
    expect(endpointRows.join("\n")).not.toContain("whsec_");
    const failed = await page.locator("table", { hasText: "attempts that did not deliver" }).locator("tbody tr").allTextContents();
    expect(failed.some((r) => r.includes("flaky-pager") && r.includes("500"))).toBe(true);
    expect(failed.some((r) => r.includes("privacy-team"))).toBe(false);
    expect(await axeFindings(page)).toEqual([]);
    await screenshot(page, "operations", [
      'table:has-text("by error code and reason")',
      'table:has-text("Alert subscriptions and whether they are delivered to")',
      'table:has-text("attempts that did not deliver")',
    ]);
    await page.close();
  });

  it("opens a dataset from a rule's path: its fields' labels and their origin, its readers, upstream and downstream", async () => {
    const page = await browser!.newPage({ viewport: { width: 1400, height: 1000 } });
    await signIn(page);
    await page.goto(`${url}/#/rule/${RULE}`);
    await page.waitForSelector("figure.path .path-steps a");
    await page
      .locator("figure.path .path-steps a", { hasText: /^warehouse\/ads\.matching_keys#/ })
      .first()
      .click();
    await page.waitForSelector("ul.neighbours");
    expect(await page.getByRole("heading", { level: 2 }).textContent()).toBe("Dataset warehouse/ads.matching_keys");
    const labels = await page.locator("table", { hasText: "Each field's labels" }).locator("tbody tr").allTextContents();
    expect(
      labels.some(
        (l) => l.includes("essential.service.authentication, essential.service.security") && l.includes("warehouse/security.two_factor#"),
      ),
    ).toBe(true);
    const readers = await page.locator("table", { hasText: "Uses and shares of it" }).locator("tbody tr").allTextContents();
    expect(readers.some((r) => r.includes("marketing.advertising.third_party.targeted"))).toBe(true);
    const upstream = await page.locator('ul.neighbours[data-side="upstream"] a').allTextContents();
    expect(upstream).toContain("warehouse/security.two_factor");
    expect(await axeFindings(page)).toEqual([]);
    await screenshot(page, "dataset", [
      'table:has-text("Each field\'s labels")',
      'table:has-text("Uses and shares of it")',
      "ul.neighbours",
    ]);
    await page.goto(`${url}/#/dataset/${encodeURIComponent("warehouse/no-such-table")}`);
    await expect.poll(() => page.locator(".empty").textContent()).toMatch(/No lineage names a dataset “warehouse\/no-such-table”/);
    await page.close();
  });

  it("works from the keyboard alone: skips to the content, finds a dataset by name, opens a rule", async () => {
    const page = await browser!.newPage({ viewport: { width: 1400, height: 1000 } });
    await signIn(page);
    await page.waitForSelector(`tr[data-rule="${RULE}"]`);
    // The first Tab reaches the skip link, which moves the focus without leaving the page.
    await page.keyboard.press("Tab");
    expect(await focused(page, "textContent")).toBe("Skip to the content");
    await page.keyboard.press("Enter");
    expect(await focused(page, "id")).toBe("main");
    expect(new URL(page.url()).hash).toBe("");
    // The focus is visible wherever it goes.
    await tabTo(page, 'nav a[href="#/datasets"]');
    expect(await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")).toBe("solid");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#dataset-results ul.datasets");
    await tabTo(page, "#dataset-query");
    await page.keyboard.type("TWO_fac");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator("#dataset-results p").first().textContent()).toBe("1 dataset whose name contains “TWO_fac”:");
    await tabTo(page, '#dataset-results a[href="#/dataset/warehouse%2Fsecurity.two_factor"]');
    await page.keyboard.press("Enter");
    await page.waitForSelector("ul.neighbours");
    expect(await page.getByRole("heading", { level: 2 }).textContent()).toBe("Dataset warehouse/security.two_factor");
    await expect.poll(() => focused(page, "id")).toBe("main");
    // A search that finds nothing says so; the API refuses what is not a short printable text.
    await page.goto(`${url}/#/datasets`);
    await page.waitForSelector("#dataset-results ul.datasets");
    expect(await axeFindings(page)).toEqual([]);
    await screenshot(page, "datasets", ["#dataset-search", "#dataset-results ul.datasets"]);
    await page.locator("#dataset-query").fill("no such table anywhere");
    await page.keyboard.press("Enter");
    await expect
      .poll(() => page.locator("#dataset-results .empty").textContent())
      .toBe("No dataset's name contains “no such table anywhere”.");
    const basic = { authorization: `Basic ${Buffer.from(`analyst:${PASSWORD}`).toString("base64")}` };
    expect((await fetch(`${url}/api/console/datasets?q=${"x".repeat(201)}`, { headers: basic })).status).toBe(400);
    expect((await fetch(`${url}/api/console/datasets?q=a%00b`, { headers: basic })).status).toBe(400);
    const all = (await (await fetch(`${url}/api/console/datasets?q=`, { headers: basic })).json()) as {
      total: number;
      datasets: unknown[];
    };
    expect(all.total).toBeGreaterThan(3);
    expect(all.datasets).toHaveLength(Math.min(all.total, 50));
    // From the overview, a rule opens with Enter, and the focus goes to its page.
    await page.goto(`${url}/#/`);
    await page.waitForSelector(`tr[data-rule="${RULE}"]`);
    await tabTo(page, `a[href="#/rule/${RULE}"]`);
    await page.keyboard.press("Enter");
    await page.waitForSelector("figure.path svg g.node");
    await expect.poll(() => focused(page, "id")).toBe("main");
    await tabTo(page, 'a[download$=".md"]');
    await page.close();
  });
});
