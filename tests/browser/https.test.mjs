// Real-browser test of the web UI over HTTPS: every page loads with no Content-Security-Policy
// violation, and a page opens wss:// to the same server and joins a realm.
//
//   SWITCHBOARD_URL=https://localhost:8443 node --test https.test.mjs
//
// The server's certificate is self-signed (made by the test): the browser context ignores
// certificate errors, everything else is as in production.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const BASE = (process.env.SWITCHBOARD_URL || "").replace(/\/+$/, "");

if (!BASE.startsWith("https://")) {
  throw new Error("SWITCHBOARD_URL must be an https:// URL");
}
if (!existsSync(CHROMIUM)) {
  throw new Error(`${CHROMIUM} not found: install Debian's chromium (tests/browser/install-chromium.sh)`);
}

describe("web UI over HTTPS", { timeout: 60_000 }, () => {
  let browser;
  let context;

  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--headless",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    context = await browser.newContext({ ignoreHTTPSErrors: true });
  });

  after(async () => {
    await browser?.close();
  });

  for (const path of ["/", "/admin", "/inbox", "/setup"]) {
    it(`${path} loads with no CSP violation`, async () => {
      const page = await context.newPage();
      const violations = [];
      page.on("console", (m) => {
        if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
      });
      await page.exposeFunction("__cspViolation", (v) => violations.push(v));
      await page.addInitScript(() => {
        document.addEventListener("securitypolicyviolation", (e) =>
          window.__cspViolation(`${e.violatedDirective} ${e.blockedURI}`),
        );
      });
      const resp = await page.goto(BASE + path, { waitUntil: "load" });
      assert.equal(resp.status(), 200);
      const headers = resp.headers();
      assert.match(headers["strict-transport-security"] || "", /max-age=/);
      assert.match(headers["content-security-policy"] || "", /script-src 'self'/);
      await page.waitForTimeout(1000);
      assert.deepEqual(violations, [], `CSP violations on ${path}`);
      await page.close();
    });
  }

  it("the check sees a violation (an inline script is refused)", async () => {
    const page = await context.newPage();
    await page.goto(BASE + "/", { waitUntil: "load" });
    const seen = await page.evaluate(
      () =>
        new Promise((resolve) => {
          document.addEventListener("securitypolicyviolation", (e) => resolve(e.violatedDirective));
          const s = document.createElement("script");
          s.textContent = "window.__inlineRan = true";
          document.body.appendChild(s);
          setTimeout(() => resolve(window.__inlineRan ? "ran" : "none"), 2000);
        }),
    );
    assert.match(seen, /script-src/);
    await page.close();
  });

  it("a page joins a realm over wss://", async () => {
    const page = await context.newPage();
    await page.goto(BASE + "/", { waitUntil: "load" });
    const welcome = await page.evaluate(
      () =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(`wss://${location.host}/ws`, ["wamp.2.json"]);
          ws.onopen = () => ws.send(JSON.stringify([1, "realm1", { roles: { subscriber: {} } }]));
          ws.onmessage = (e) => {
            ws.close();
            resolve(JSON.parse(e.data));
          };
          ws.onerror = () => reject(new Error("wss failed"));
          setTimeout(() => reject(new Error("no WELCOME")), 10_000);
        }),
    );
    assert.equal(welcome[0], 2, JSON.stringify(welcome));
    await page.close();
  });
});
