// Real-browser test of the Switchboard status page.
//
// Drives Debian's /usr/bin/chromium through playwright-core (which never
// downloads a browser) against a running server:
//
//   SWITCHBOARD_URL=http://127.0.0.1:8080 [SCREENSHOT_DIR=dir] node --test status.test.mjs
//
// Screenshots (desktop and phone width) go to $SCREENSHOT_DIR when it is set.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const BASE = (process.env.SWITCHBOARD_URL || "").replace(/\/+$/, "");
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || "";
const STEP_TIMEOUT = 15_000; // bound for any single wait
const TEST_TIMEOUT = 45_000; // bound for any single test

const tid = (id) => `[data-testid="${id}"]`;

if (!BASE) {
  throw new Error("SWITCHBOARD_URL is not set (e.g. SWITCHBOARD_URL=http://127.0.0.1:8080)");
}
if (!existsSync(CHROMIUM)) {
  throw new Error(`${CHROMIUM} not found: install Debian's chromium (tests/browser/install-chromium.sh)`);
}

async function getStatusJson() {
  const res = await fetch(`${BASE}/api/status`, { cache: "no-store", signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200, `GET /api/status returned HTTP ${res.status}`);
  assert.match(res.headers.get("content-type") || "", /application\/json/, "GET /api/status content-type");
  return res.json();
}

// Poll `fn` until it stops throwing, or rethrow its last error after `timeout` ms.
async function eventually(fn, timeout = STEP_TIMEOUT, interval = 200) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, interval));
    }
  }
}

// Everything the page shows, read in one go so the values belong together.
function readPage(page) {
  return page.evaluate(() => {
    const q = (id) => document.querySelector(`[data-testid="${id}"]`);
    const val = (id) => q(id).dataset.value;
    return {
      state: q("status-state").dataset.state,
      stateText: q("status-state").textContent.trim(),
      version: q("version").dataset.value,
      uptimeSecs: val("uptime"),
      uptimeText: q("uptime").textContent.trim(),
      startedAt: q("started-at").getAttribute("datetime"),
      devBannerVisible: !q("dev-banner").hidden && q("dev-banner").offsetParent !== null,
      connBannerVisible: !q("conn-banner").hidden,
      connections: val("stat-connections"),
      sessions: val("stat-sessions"),
      realmCount: val("stat-realms"),
      messagesIn: val("stat-messages-in"),
      messagesOut: val("stat-messages-out"),
      realms: [...document.querySelectorAll('[data-testid="realm-row"]')].map((tr) => ({
        name: tr.querySelector('[data-testid="realm-name"]').textContent,
        sessions: tr.querySelector('[data-testid="realm-sessions"]').textContent.replace(/,/g, ""),
        subscriptions: tr.querySelector('[data-testid="realm-subscriptions"]').textContent.replace(/,/g, ""),
        registrations: tr.querySelector('[data-testid="realm-registrations"]').textContent.replace(/,/g, ""),
      })),
      wsUrl: q("ws-url").textContent.trim(),
    };
  });
}

function expectedFrom(json) {
  const realms = [...json.realms]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((r) => ({
      name: r.name,
      sessions: String(r.sessions),
      subscriptions: String(r.subscriptions),
      registrations: String(r.registrations),
    }));
  return {
    state: "running",
    version: json.version,
    uptimeSecs: String(json.uptime_secs),
    startedAt: json.started_at,
    devBannerVisible: json.dev_mode === true,
    connBannerVisible: false,
    connections: String(json.connections),
    sessions: String(json.sessions),
    realmCount: String(json.realms.length),
    messagesIn: String(json.messages_in),
    messagesOut: String(json.messages_out),
    realms,
  };
}

describe(`Switchboard status page at ${BASE}`, { timeout: 4 * 60_000 }, () => {
  let browser;
  let context;
  let page;
  const pageErrors = [];
  // Bodies of /api/status responses the page itself received, newest last.
  const seen = [];

  before(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(STEP_TIMEOUT);
    page = await context.newPage();
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    page.on("response", async (res) => {
      if (new URL(res.url()).pathname !== "/api/status" || res.status() !== 200) return;
      try {
        seen.push(await res.json());
      } catch {
        /* body unavailable (e.g. page navigated) */
      }
    });
    const res = await page.goto(`${BASE}/`, { waitUntil: "load" });
    assert.ok(res, "no response for /");
    assert.equal(res.status(), 200, `GET / returned HTTP ${res.status()}`);
  });

  after(async () => {
    await browser?.close();
  });

  it("loads with a Switchboard title and brand", { timeout: TEST_TIMEOUT }, async () => {
    assert.match(await page.title(), /Switchboard/);
    assert.equal((await page.textContent(tid("app-name"))).trim(), "Switchboard");
    for (const asset of ["/app.js", "/style.css"]) {
      const r = await fetch(`${BASE}${asset}`, { signal: AbortSignal.timeout(5000) });
      assert.equal(r.status, 200, `GET ${asset}`);
    }
  });

  it("shows the running state and figures matching /api/status", { timeout: TEST_TIMEOUT }, async () => {
    await page.waitForSelector(`${tid("status-state")}[data-state="running"]`);

    // The test's own view of the API: version and realm names must show.
    const json = await getStatusJson();
    for (const key of ["name", "version", "uptime_secs", "started_at", "dev_mode", "connections",
      "sessions", "realms", "messages_in", "messages_out"]) {
      assert.ok(key in json, `/api/status lacks "${key}"`);
    }
    assert.equal(json.name, "switchboard");
    await eventually(async () => {
      const shown = await readPage(page);
      assert.equal(shown.version, json.version, "version");
      assert.equal(await page.textContent(tid("version")), `v${json.version}`);
      const latest = await getStatusJson();
      assert.deepEqual(shown.realms.map((r) => r.name), latest.realms.map((r) => r.name).sort(), "realm names");
    });

    // Every figure must equal the response the page last rendered.
    await eventually(async () => {
      assert.ok(seen.length > 0, "page has not fetched /api/status yet");
      const shown = await readPage(page);
      const want = expectedFrom(seen[seen.length - 1]);
      const { uptimeText, stateText, wsUrl, ...comparable } = shown;
      assert.deepEqual(comparable, want);
      assert.equal(stateText, "Running");
      assert.match(uptimeText, /^\d+ (s|min \d+ s|h \d+ min|d \d+ h)$/, `uptime text "${uptimeText}"`);
    });
  });

  it("shows the dev-mode banner exactly when dev_mode is true", { timeout: TEST_TIMEOUT }, async () => {
    const json = await getStatusJson();
    const banner = page.locator(tid("dev-banner"));
    if (json.dev_mode === true) {
      await banner.waitFor({ state: "visible" });
      const text = await banner.textContent();
      assert.match(text, /development/i);
      assert.match(text, /production/i);
    } else {
      await banner.waitFor({ state: "hidden" });
    }
  });

  it("updates the uptime over time", { timeout: TEST_TIMEOUT }, async () => {
    const before = await readPage(page);
    const started = Date.now();
    const handle = await page.waitForFunction(
      (prev) => {
        const v = document.querySelector('[data-testid="uptime"]').dataset.value;
        return v !== "" && Number(v) > Number(prev) ? v : false;
      },
      before.uptimeSecs,
      { timeout: 8_000, polling: 100 },
    );
    const after = await readPage(page);
    assert.ok(Number(await handle.jsonValue()) > Number(before.uptimeSecs));
    if (Number(after.uptimeSecs) < 3600) {
      // Below an hour the text shows seconds, so it must have changed too.
      assert.notEqual(after.uptimeText, before.uptimeText, "uptime text did not change");
    }
    console.log(`# uptime ${before.uptimeText} -> ${after.uptimeText} after ${Date.now() - started} ms`);
  });

  it("shows a WebSocket URL for this host, realm and serializers", { timeout: TEST_TIMEOUT }, async () => {
    const base = new URL(BASE);
    const scheme = base.protocol === "https:" ? "wss:" : "ws:";
    const want = `${scheme}//${base.host}/ws`;
    assert.equal((await page.textContent(tid("ws-url"))).trim(), want);
    assert.equal((await page.textContent(tid("snippet-url"))).trim(), want);
    assert.equal((await page.textContent(tid("ws-realm"))).trim(), "realm1");
    const sers = await page.textContent(tid("serializers"));
    for (const s of ["wamp.2.json", "wamp.2.msgpack", "wamp.2.cbor"]) assert.ok(sers.includes(s), s);
  });

  it("fits a phone-width screen without horizontal scrolling", { timeout: TEST_TIMEOUT }, async () => {
    const phone = await context.newPage();
    try {
      await phone.setViewportSize({ width: 390, height: 844 });
      await phone.goto(`${BASE}/`, { waitUntil: "load" });
      await phone.waitForSelector(`${tid("status-state")}[data-state="running"]`);
      const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `page is ${overflow}px wider than a 390px screen`);
      if (SCREENSHOT_DIR) {
        mkdirSync(SCREENSHOT_DIR, { recursive: true });
        const file = path.join(SCREENSHOT_DIR, "status-mobile.png");
        await phone.screenshot({ path: file, fullPage: true });
        console.log(`# screenshot: ${file}`);
      }
    } finally {
      await phone.close();
    }
  });

  it("takes a screenshot when SCREENSHOT_DIR is set", { timeout: TEST_TIMEOUT }, async (t) => {
    if (!SCREENSHOT_DIR) {
      t.diagnostic("SCREENSHOT_DIR not set; no screenshot taken");
      return;
    }
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const file = path.join(SCREENSHOT_DIR, "status.png");
    await page.waitForSelector(`${tid("status-state")}[data-state="running"]`);
    await page.screenshot({ path: file, fullPage: true });
    assert.ok(existsSync(file));
    console.log(`# screenshot: ${file}`);
  });

  // The remaining tests stub /api/status inside the browser only (the server
  // is untouched) to check the failure path and HTML safety deterministically.

  it("never renders server strings as HTML", { timeout: TEST_TIMEOUT }, async () => {
    const evil = '<img src=x onerror="window.__pwned=1"><b data-testid="injected">x</b>';
    const real = await getStatusJson();
    const fake = {
      ...real,
      version: evil,
      started_at: evil,
      realms: [{ name: evil, sessions: 1, subscriptions: 2, registrations: 3 }],
    };
    const handler = (route) =>
      route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(fake) });
    await page.route("**/api/status", handler);
    try {
      await page.waitForFunction(
        (name) => [...document.querySelectorAll('[data-testid="realm-name"]')].some((e) => e.textContent === name),
        evil,
      );
      const injected = await page.evaluate(() => ({
        imgs: document.querySelectorAll("main img, header img").length,
        bold: document.querySelectorAll('[data-testid="injected"]').length,
        pwned: window.__pwned === 1,
      }));
      assert.deepEqual(injected, { imgs: 0, bold: 0, pwned: false });
    } finally {
      await page.unroute("**/api/status", handler);
    }
    await page.waitForFunction(
      (v) => document.querySelector('[data-testid="version"]').dataset.value === v,
      real.version,
    );
  });

  it("shows an empty state when there are no realms", { timeout: TEST_TIMEOUT }, async () => {
    const real = await getStatusJson();
    const fake = { ...real, sessions: 0, realms: [] };
    const handler = (route) =>
      route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(fake) });
    await page.route("**/api/status", handler);
    try {
      await page.locator(tid("realms-empty")).waitFor({ state: "visible" });
      await page.locator(tid("realms-wrap")).waitFor({ state: "hidden" });
      assert.equal(await page.getAttribute(tid("stat-realms"), "data-value"), "0");
    } finally {
      await page.unroute("**/api/status", handler);
    }
    if (real.realms.length > 0) await page.locator(tid("realms-wrap")).waitFor({ state: "visible" });
  });

  it("shows 'server unreachable, retrying' when the API fails, then recovers", { timeout: TEST_TIMEOUT }, async () => {
    const handler = (route) => route.abort("connectionrefused");
    await page.route("**/api/status", handler);
    try {
      const banner = page.locator(tid("conn-banner"));
      await banner.waitFor({ state: "visible" });
      const text = await page.textContent(tid("conn-state"));
      assert.match(text, /unreachable/i);
      assert.match(text, /retrying/i);
      await page.waitForSelector(`${tid("status-pill")}[data-state="unreachable"]`);
    } finally {
      await page.unroute("**/api/status", handler);
    }
    await page.waitForSelector(`${tid("status-state")}[data-state="running"]`);
    await page.locator(tid("conn-banner")).waitFor({ state: "hidden" });
  });

  it("raised no uncaught page errors", () => {
    assert.deepEqual(pageErrors, []);
  });
});
