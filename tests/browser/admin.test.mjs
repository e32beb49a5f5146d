// Real-browser test of the Switchboard admin view (/admin) and its WAMP client (web/wamp.js).
//
// Drives Debian's /usr/bin/chromium through playwright-core (which never downloads a browser)
// against running servers; the WAMP clients the page must show are Autobahn|JS sessions opened
// by this test (from tests/interop/js/node_modules):
//
//   SWITCHBOARD_URL=http://127.0.0.1:8080 \            # zero-config development default
//   SWITCHBOARD_RESTRICTED_URL=http://127.0.0.1:8081 \ # tests/interop/test_browser_admin.py's config
//   [SCREENSHOT_DIR=dir] node --test admin.test.mjs
//
// Screenshots: admin-login.png, admin-live.png, admin-killed.png, admin-mobile.png,
// admin-not-authorized.png in $SCREENSHOT_DIR when it is set.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const BASE = (process.env.SWITCHBOARD_URL || "").replace(/\/+$/, "");
const RESTRICTED = (process.env.SWITCHBOARD_RESTRICTED_URL || "").replace(/\/+$/, "");
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || "";
const STEP_TIMEOUT = 15_000; // bound for any single wait
const TEST_TIMEOUT = 60_000; // bound for any single test

// Credentials of the restricted config (see tests/interop/test_browser_admin.py).
const CREDS = {
  viewerTicket: { authid: "viewer", secret: "viewer-ticket" },
  saltedAdmin: { authid: "admin", secret: "admin-password" },
  plainAdmin: { authid: "root", secret: "root-secret" },
};

const tid = (id) => `[data-testid="${id}"]`;

if (!BASE) throw new Error("SWITCHBOARD_URL is not set (e.g. SWITCHBOARD_URL=http://127.0.0.1:8080)");
if (!existsSync(CHROMIUM)) {
  throw new Error(`${CHROMIUM} not found: install Debian's chromium (tests/browser/install-chromium.sh)`);
}

const requireInterop = createRequire(new URL("../interop/js/package.json", import.meta.url));
let autobahn;
// Autobahn|JS warns on every close it sees ("connection closed", "auto-reconnect disabled!");
// the test closes clients on purpose, so those two are dropped from the output.
const consoleWarn = console.warn;
console.warn = (...args) => {
  if (/^(connection closed|auto-reconnect disabled)/.test(String(args[0]))) return;
  consoleWarn.apply(console, args);
};
try {
  autobahn = requireInterop("autobahn");
} catch (e) {
  throw new Error(`autobahn not installed: run npm ci in tests/interop/js (${e.message})`);
}

const wsUrlOf = (base) => `${base.replace(/^http/, "ws")}/ws`;

// Poll `fn` until it stops throwing, or rethrow its last error after `timeout` ms.
async function eventually(fn, timeout = STEP_TIMEOUT, interval = 100) {
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

/**
 * An Autobahn|JS session (no reconnects). Resolves with { connection, session, details,
 * closed } once joined; `closed` resolves with { reason, details } when it ends.
 */
function openClient(base, serializer = "json") {
  return new Promise((resolve, reject) => {
    let closedResolve;
    const closed = new Promise((r) => (closedResolve = r));
    const ser = serializer === "msgpack"
      ? new autobahn.serializer.MsgpackSerializer()
      : new autobahn.serializer.JSONSerializer();
    const connection = new autobahn.Connection({
      url: wsUrlOf(base),
      realm: "realm1",
      serializers: [ser],
      max_retries: 0,
      retry_if_unreachable: false,
    });
    let opened = false;
    connection.onopen = (session, details) => {
      opened = true;
      resolve({ connection, session, details, closed });
    };
    connection.onclose = (reason, details) => {
      closedResolve({ reason, details });
      if (!opened) reject(new Error(`Autobahn|JS could not join: ${reason} ${JSON.stringify(details)}`));
      return true; // never retry
    };
    connection.open();
  });
}

async function closeClient(c) {
  if (c && c.connection.isOpen) {
    c.connection.close();
    await c.closed;
  }
}

async function screenshot(page, name) {
  if (!SCREENSHOT_DIR) return;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, name);
  await page.screenshot({ path: file, fullPage: true });
  assert.ok(existsSync(file));
  console.log(`# screenshot: ${file}`);
}

/** The sessions table as data, one entry per row. */
function readSessions(page) {
  return page.$$eval(tid("session-row"), (rows) => rows.map((tr) => {
    const cell = (id) => tr.querySelector(`[data-testid="${id}"]`);
    return {
      session: Number(tr.dataset.session),
      authid: cell("session-authid").textContent,
      role: cell("session-role").textContent,
      authmethod: cell("session-authmethod").textContent,
      transport: cell("session-transport").textContent,
      serializer: cell("session-serializer").textContent,
      address: cell("session-address").textContent,
      joined: cell("session-joined").dataset.value,
      joinedText: cell("session-joined").textContent,
      messagesIn: cell("session-in").dataset.value,
      messagesOut: cell("session-out").dataset.value,
      own: !!tr.querySelector('[data-testid="session-own"]'),
      killable: !!tr.querySelector('[data-testid="session-kill"]'),
    };
  }));
}

/** Subscription or registration rows: { id, uri, match, count }. */
function readRows(page, kind) {
  return page.$$eval(`[data-testid="${kind}-row"]`, (rows, kind) => rows.map((tr) => ({
    id: Number(tr.dataset[kind]),
    uri: tr.querySelector(`[data-testid="${kind}-uri"]`).textContent,
    match: tr.querySelector(`[data-testid="${kind}-match"]`).textContent,
    count: tr.querySelector(`[data-testid="${kind}-count"]`).dataset.value,
  })), kind);
}

async function login(page, { method = "anonymous", authid = "", secret = "", url = "/ws", realm = "realm1" } = {}) {
  await page.fill(tid("login-url"), url);
  await page.fill(tid("login-realm"), realm);
  await page.selectOption(tid("login-method"), method);
  await page.fill(tid("login-authid"), authid);
  if (method !== "anonymous") await page.fill(tid("login-secret"), secret);
  await page.click(tid("login-submit"));
  await page.waitForFunction(() => ["live", "signed-out"].includes(document.body.dataset.state)
    && document.body.dataset.state !== "connecting");
  // Either the dashboard or an error comes up.
  await page.waitForFunction(() => document.body.dataset.state === "live"
    || !document.querySelector('[data-testid="admin-error"]').hidden);
}

async function errorShown(page) {
  await page.locator(tid("admin-error")).waitFor({ state: "visible" });
  return page.evaluate(() => {
    const q = (id) => document.querySelector(`[data-testid="${id}"]`).textContent;
    return { title: q("admin-error-title"), detail: q("admin-error-detail"), uri: q("admin-error-uri") };
  });
}

let browser;

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
});

after(async () => {
  await browser?.close();
});

async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(STEP_TIMEOUT);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  page.on("console", (msg) => {
    // A refused WebSocket is logged by Chromium itself; the tests provoke one on purpose.
    if (msg.type() === "error" && !/WebSocket connection to .* failed/.test(msg.text())) {
      errors.push(`console: ${msg.text()}`);
    }
  });
  return { context, page, errors };
}

describe(`admin view on the development default at ${BASE}`, { timeout: 5 * 60_000 }, () => {
  let context;
  let page;
  let errors;
  const clients = [];

  before(async () => {
    ({ context, page, errors } = await newPage());
    const res = await page.goto(`${BASE}/admin`, { waitUntil: "load" });
    assert.equal(res.status(), 200, `GET /admin returned HTTP ${res.status()}`);
    await page.waitForSelector('body[data-ready="true"]');
  });

  after(async () => {
    for (const c of clients) await closeClient(c).catch(() => {});
    await context?.close();
  });

  it("shows a login form with this host's defaults", { timeout: TEST_TIMEOUT }, async () => {
    assert.match(await page.title(), /Switchboard/);
    assert.equal(await page.inputValue(tid("login-url")), "/ws");
    assert.equal(await page.inputValue(tid("login-realm")), "realm1");
    assert.equal(await page.inputValue(tid("login-method")), "anonymous");
    assert.equal(await page.isHidden(tid("login-secret-field")), true, "no secret for anonymous");
    await page.selectOption(tid("login-method"), "wampcra");
    assert.equal(await page.isVisible(tid("login-secret")), true);
    await page.selectOption(tid("login-method"), "anonymous");
    assert.equal(await page.isHidden(tid("dashboard")), true);
    await screenshot(page, "admin-login.png");
  });

  it("logs in anonymously and lists its own session", { timeout: TEST_TIMEOUT }, async () => {
    await login(page);
    assert.equal(await page.getAttribute("body", "data-state"), "live");
    assert.equal((await page.textContent(tid("whoami-role"))).trim(), "anonymous");
    const rows = await readSessions(page);
    const own = rows.filter((r) => r.own);
    assert.equal(own.length, 1, JSON.stringify(rows));
    assert.equal(own[0].serializer, "json");
    assert.equal(own[0].transport, "websocket / tcp");
    assert.match(own[0].address, /^tcp4:127\.0\.0\.1:\d+$/);
    assert.equal(own[0].killable, false, "the page cannot kill itself");
    assert.equal(own[0].authid, (await page.textContent(tid("whoami-authid"))).trim());
  });

  it("shows a client the test connects, live, with its subscription and registration", { timeout: TEST_TIMEOUT }, async () => {
    const topic = `com.example.admin_test.t${Date.now()}`;
    const procedure = `com.example.admin_test.p${Date.now()}`;
    const a = await openClient(BASE, "json");
    clients.push(a);
    const started = Date.now();
    const rowOf = async (id) => (await readSessions(page)).find((r) => r.session === id);
    const rowA = await eventually(async () => {
      const r = await rowOf(a.session.id);
      assert.ok(r, `session ${a.session.id} not shown yet`);
      return r;
    });
    console.log(`# a new session appeared in the table ${Date.now() - started} ms after its WELCOME`);
    assert.equal(rowA.authid, a.details.authid);
    assert.equal(rowA.role, "anonymous");
    assert.equal(rowA.authmethod, "anonymous");
    assert.equal(rowA.serializer, "json");
    assert.equal(rowA.transport, "websocket / tcp");
    assert.match(rowA.address, /^tcp4:127\.0\.0\.1:\d+$/);
    assert.ok(!Number.isNaN(Date.parse(rowA.joined)), `joined ${rowA.joined}`);
    assert.ok(Math.abs(Date.parse(rowA.joined) - Date.now()) < 60_000, `joined ${rowA.joined}`);
    assert.equal(rowA.killable, true);

    const sub = await a.session.subscribe(topic, () => {});
    await a.session.register(procedure, () => 42);
    const subRow = await eventually(async () => {
      const r = (await readRows(page, "subscription")).find((x) => x.uri === topic);
      assert.ok(r, `subscription ${topic} not shown`);
      assert.equal(r.count, "1");
      return r;
    });
    assert.equal(subRow.id, sub.id);
    assert.equal(subRow.match, "exact");
    await eventually(async () => {
      const r = (await readRows(page, "registration")).find((x) => x.uri === procedure);
      assert.ok(r, `registration ${procedure} not shown`);
      assert.equal(r.count, "1");
    });

    // A second subscriber (msgpack) raises the count; when it leaves, its row goes and the
    // count drops again.
    const b = await openClient(BASE, "msgpack");
    clients.push(b);
    await b.session.subscribe(topic, () => {});
    await eventually(async () => {
      const rowB = await rowOf(b.session.id);
      assert.ok(rowB, "second client shown");
      assert.equal(rowB.serializer, "msgpack");
      const r = (await readRows(page, "subscription")).find((x) => x.uri === topic);
      assert.equal(r?.count, "2");
    });
    await closeClient(b);
    await eventually(async () => {
      assert.equal(await rowOf(b.session.id), undefined, "second client gone");
      const r = (await readRows(page, "subscription")).find((x) => x.uri === topic);
      assert.equal(r?.count, "1");
    });
    // The page's own meta subscriptions are not listed.
    assert.ok((await readRows(page, "subscription")).every((r) => !r.uri.startsWith("wamp.")));
    assert.equal(
      await page.getAttribute(tid("sessions-count"), "data-value"),
      String((await readSessions(page)).length),
    );
    a.topic = topic;
    a.procedure = procedure;
  });

  it("shows each session's messages in and out", { timeout: TEST_TIMEOUT }, async () => {
    const a = clients[0];
    for (let i = 0; i < 3; i++) {
      await a.session.publish(a.topic, [i], {}, { acknowledge: true, exclude_me: true });
    }
    // In: SUBSCRIBE, REGISTER, 3 × PUBLISH. Out: WELCOME, SUBSCRIBED, REGISTERED, 3 × PUBLISHED.
    await eventually(async () => {
      const r = (await readSessions(page)).find((x) => x.session === a.session.id);
      assert.deepEqual([r.messagesIn, r.messagesOut], ["5", "6"]);
    });
    await screenshot(page, "admin-live.png");
  });

  it("never renders what peers send as HTML", { timeout: TEST_TIMEOUT }, async () => {
    const evil = "com.adminxss.<img/src=x/onerror=__pwned=1><b/data-testid=injected>x</b>";
    const c = await openClient(BASE, "json");
    clients.push(c);
    await c.session.subscribe(evil, () => {});
    await c.session.register(`${evil}_proc`, () => 1);
    await eventually(async () => {
      assert.ok((await readRows(page, "subscription")).some((r) => r.uri === evil), "evil topic shown as text");
      assert.ok((await readRows(page, "registration")).some((r) => r.uri === `${evil}_proc`));
    });
    const injected = await page.evaluate(() => ({
      imgs: document.querySelectorAll("main img").length,
      bold: document.querySelectorAll('[data-testid="injected"]').length,
      pwned: typeof window.__pwned !== "undefined",
    }));
    assert.deepEqual(injected, { imgs: 0, bold: 0, pwned: false });
    await closeClient(c);
    await eventually(async () => {
      assert.ok(!(await readRows(page, "subscription")).some((r) => r.uri === evil), "evil subscription deleted");
    });
  });

  it("cancelling the kill dialog kills nothing", { timeout: TEST_TIMEOUT }, async () => {
    const a = clients[0];
    await page.click(`${tid("session-kill")}[data-session="${a.session.id}"]`);
    await page.locator(tid("kill-dialog")).waitFor({ state: "visible" });
    assert.equal((await page.textContent(tid("kill-session"))).trim(), String(a.session.id));
    await page.click(tid("kill-cancel"));
    await page.locator(tid("kill-dialog")).waitFor({ state: "hidden" });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(a.connection.isOpen, true);
    assert.ok((await readSessions(page)).some((r) => r.session === a.session.id));
  });

  it("kills a session: the client gets GOODBYE wamp.close.killed and leaves the tables", { timeout: TEST_TIMEOUT }, async () => {
    const a = clients[0];
    await page.click(`${tid("session-kill")}[data-session="${a.session.id}"]`);
    await page.locator(tid("kill-dialog")).waitFor({ state: "visible" });
    await page.fill(tid("kill-message"), "killed by the admin test");
    const started = Date.now();
    await page.click(tid("kill-confirm"));
    let timer;
    const closed = await Promise.race([
      a.closed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("client was not closed")), STEP_TIMEOUT);
      }),
    ]).finally(() => clearTimeout(timer));
    assert.equal(closed.details.reason, "wamp.close.killed", JSON.stringify(closed));
    assert.equal(closed.details.message, "killed by the admin test");
    await eventually(async () => {
      assert.ok(!(await readSessions(page)).some((r) => r.session === a.session.id), "killed session still shown");
      assert.ok(!(await readRows(page, "subscription")).some((r) => r.uri === a.topic), "its subscription still shown");
      assert.ok(!(await readRows(page, "registration")).some((r) => r.uri === a.procedure), "its registration still shown");
    });
    console.log(`# kill → row gone in ${Date.now() - started} ms`);
    assert.equal(await page.isHidden(tid("admin-error")), true, "no error after a kill");
    await screenshot(page, "admin-killed.png");
  });

  it("fits a phone-width screen without horizontal scrolling", { timeout: TEST_TIMEOUT }, async () => {
    const phone = await newPage({ width: 390, height: 844 });
    try {
      await phone.page.goto(`${BASE}/admin`, { waitUntil: "load" });
      await phone.page.waitForSelector('body[data-ready="true"]');
      await login(phone.page);
      assert.equal(await phone.page.getAttribute("body", "data-state"), "live");
      const overflow = await phone.page.evaluate(
        () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
      );
      assert.ok(overflow <= 0, `page is ${overflow}px wider than a 390px screen`);
      await screenshot(phone.page, "admin-mobile.png");

      // Killed from the desktop page, the phone's page says so and returns to the login form.
      const phoneId = (await readSessions(phone.page)).find((r) => r.own).session;
      await page.click(`${tid("session-kill")}[data-session="${phoneId}"]`);
      await page.click(tid("kill-confirm"));
      await phone.page.waitForSelector('body[data-state="signed-out"]');
      const err = await errorShown(phone.page);
      assert.equal(err.title, "This page's session was killed");
      assert.equal(err.uri, "wamp.close.killed");
      assert.equal(err.detail, "Disconnected by an administrator");
      assert.deepEqual(phone.errors, []);
    } finally {
      await phone.context.close();
    }
  });

  it("logs out", { timeout: TEST_TIMEOUT }, async () => {
    const ownId = (await readSessions(page)).find((r) => r.own).session;
    const watcher = await openClient(BASE, "json");
    clients.push(watcher);
    await page.click(tid("logout"));
    await page.waitForSelector('body[data-state="signed-out"]');
    assert.equal(await page.isVisible(tid("login-form")), true);
    await eventually(async () => {
      const ids = (await watcher.session.call("wamp.session.list")) || [];
      assert.ok(!ids.includes(ownId), "the page's session left the router");
    });
  });

  it("raised no page errors", () => {
    assert.deepEqual(errors, []);
  });
});

describe(`web/wamp.js in Chromium against ${BASE}`, { timeout: 2 * 60_000 }, () => {
  let context;
  let page;
  let errors;

  before(async () => {
    ({ context, page, errors } = await newPage());
    await page.goto(`${BASE}/admin`, { waitUntil: "load" });
    await page.waitForSelector('body[data-ready="true"]');
  });

  after(async () => {
    await context?.close();
  });

  it("publishes, subscribes, unsubscribes, calls, reports errors and closes", { timeout: TEST_TIMEOUT }, async () => {
    const r = await page.evaluate(async (url) => {
      const { connect, WampError } = await import("/wamp.js");
      const wait = (ms) => new Promise((res) => setTimeout(res, ms));
      const closes = [];
      const s1 = await connect({ url, realm: "realm1" });
      const s2 = await connect({ url, realm: "realm1", onclose: (info) => closes.push(info) });
      const topic = `com.example.wampjs.t${Date.now()}`;
      const got1 = [];
      const got2 = [];
      const h1 = await s1.subscribe(topic, (args, kwargs, details) => got1.push({ args, kwargs, details }));
      const h2 = await s1.subscribe(topic, (args) => got2.push(args));
      const acked = await s2.publish(topic, [1, "<b>x</b>"], { k: "v" }, { acknowledge: true });
      await s2.publish(topic, [2]);
      for (let i = 0; i < 50 && got1.length < 2; i++) await wait(20);
      await h1.unsubscribe();
      await s2.publish(topic, [3], {}, { acknowledge: true });
      for (let i = 0; i < 50 && got2.length < 3; i++) await wait(20);
      await h2.unsubscribe();
      await s2.publish(topic, [4], {}, { acknowledge: true });
      await wait(200);
      let error = null;
      try {
        await s1.call("com.example.wampjs.nobody", [1]);
      } catch (e) {
        error = { isWampError: e instanceof WampError, uri: e.uri, message: e.message, args: e.args };
      }
      const got = await s1.call("wamp.session.get", [s2.id]);
      await s1.call("wamp.session.kill", [s2.id], { reason: "wamp.close.killed", message: "bye" });
      for (let i = 0; i < 50 && closes.length < 1; i++) await wait(20);
      let afterKill = null;
      try {
        await s2.call("wamp.session.count");
      } catch (e) {
        afterKill = e.uri;
      }
      await s1.close();
      let afterClose = null;
      try {
        await s1.call("wamp.session.count");
      } catch (e) {
        afterClose = e.uri;
      }
      return {
        ids: [typeof s1.id, s1.details.authrole, s1.id !== s2.id],
        acked: typeof acked.publication,
        got1, got2, error,
        getSession: got.args[0].session === s2.id,
        closes, afterKill, afterClose, open: [s1.isOpen, s2.isOpen],
      };
    }, wsUrlOf(BASE));
    assert.deepEqual(r.ids, ["number", "anonymous", true]);
    assert.equal(r.acked, "number");
    assert.deepEqual(r.got1.map((e) => e.args), [[1, "<b>x</b>"], [2]]);
    assert.deepEqual(r.got1[0].kwargs, { k: "v" });
    assert.equal(typeof r.got1[0].details, "object");
    assert.deepEqual(r.got2, [[1, "<b>x</b>"], [2], [3]], "the second handler kept its subscription");
    assert.equal(r.error.isWampError, true);
    assert.equal(r.error.uri, "wamp.error.no_such_procedure");
    assert.ok(r.error.message.length > 0 && r.error.message !== r.error.uri, r.error.message);
    assert.equal(r.getSession, true);
    assert.equal(r.closes.length, 1);
    assert.equal(r.closes[0].reason, "wamp.close.killed");
    assert.equal(r.closes[0].message, "bye");
    assert.equal(r.closes[0].byClient, false);
    assert.equal(r.afterKill, "wamp.close.killed");
    assert.equal(r.afterClose, "wamp.close.close_realm");
    assert.deepEqual(r.open, [false, false]);
  });

  it("raised no page errors", () => {
    assert.deepEqual(errors, []);
  });
});

describe(`admin view with a role that lacks the meta API at ${RESTRICTED || "(not set)"}`, { timeout: 5 * 60_000 }, () => {
  let context;
  let page;
  let errors;

  before(async () => {
    if (!RESTRICTED) return;
    ({ context, page, errors } = await newPage());
    await page.goto(`${RESTRICTED}/admin`, { waitUntil: "load" });
    await page.waitForSelector('body[data-ready="true"]');
  });

  after(async () => {
    await context?.close();
  });

  const maybe = (name, fn) => it(name, { timeout: TEST_TIMEOUT, skip: RESTRICTED ? false : "SWITCHBOARD_RESTRICTED_URL not set" }, fn);

  maybe("anonymous (role viewer) is told it may not use the meta API", async () => {
    await login(page, { method: "anonymous" });
    const err = await errorShown(page);
    assert.equal(err.title, "This account may not use the meta API");
    assert.equal(err.uri, "wamp.error.not_authorized");
    assert.match(err.detail, /role viewer/);
    assert.equal(await page.getAttribute("body", "data-state"), "signed-out");
    assert.equal(await page.isVisible(tid("login-form")), true);
    assert.equal(await page.isHidden(tid("dashboard")), true);
    await screenshot(page, "admin-not-authorized.png");
  });

  maybe("a ticket login to the same role gets the same message", async () => {
    await login(page, { method: "ticket", ...CREDS.viewerTicket });
    const err = await errorShown(page);
    assert.equal(err.title, "This account may not use the meta API");
    assert.match(err.detail, /Signed in as viewer \(role viewer\)/);
  });

  maybe("refused logins say why", async () => {
    await login(page, { method: "ticket", authid: "viewer", secret: "wrong" });
    let err = await errorShown(page);
    assert.match(err.title, /^Login refused/);
    assert.equal(err.uri, "wamp.error.not_authorized");
    await login(page, { method: "wampcra", authid: "nobody", secret: "x" });
    err = await errorShown(page);
    assert.equal(err.uri, "wamp.error.no_such_principal");
    assert.match(err.title, /unknown Auth ID/);
    await login(page, { method: "anonymous", realm: "no.such.realm" });
    err = await errorShown(page);
    assert.equal(err.uri, "wamp.error.no_such_realm");
    await login(page, { method: "anonymous", url: "/nothing-here" });
    err = await errorShown(page);
    assert.equal(err.uri, "wamp.close.transport_lost");
    assert.equal(err.title, "Cannot reach the router");
  });

  maybe("salted WAMP-CRA (PBKDF2 in WebCrypto) logs an admin in", async () => {
    await login(page, { method: "wampcra", ...CREDS.saltedAdmin });
    assert.equal(await page.getAttribute("body", "data-state"), "live");
    assert.equal(await page.isHidden(tid("admin-error")), true, "earlier errors cleared");
    assert.equal((await page.textContent(tid("whoami-authid"))).trim(), "admin");
    assert.equal((await page.textContent(tid("whoami-role"))).trim(), "admin");
    const own = (await readSessions(page)).find((r) => r.own);
    assert.equal(own.authmethod, "wampcra");
    await page.click(tid("logout"));
    await page.waitForSelector('body[data-state="signed-out"]');
  });

  maybe("plain WAMP-CRA logs an admin in", async () => {
    await login(page, { method: "wampcra", ...CREDS.plainAdmin });
    assert.equal(await page.getAttribute("body", "data-state"), "live");
    assert.equal((await page.textContent(tid("whoami-authid"))).trim(), "root");
    await page.click(tid("logout"));
    await page.waitForSelector('body[data-state="signed-out"]');
  });

  maybe("remembers the non-secret login fields, never the secret", async () => {
    await page.reload({ waitUntil: "load" });
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(await page.inputValue(tid("login-method")), "wampcra");
    assert.equal(await page.inputValue(tid("login-authid")), "root");
    assert.equal(await page.inputValue(tid("login-url")), "/ws");
    assert.equal(await page.inputValue(tid("login-secret")), "");
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }));
    for (const c of Object.values(CREDS)) assert.ok(!stored.includes(c.secret), "a secret was stored");
  });

  maybe("raised no page errors", () => {
    assert.deepEqual(errors, []);
  });
});
