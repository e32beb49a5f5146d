// Real-browser end-to-end test of the chat widget (web/widget.js).
//
// A demo "business website" on a second origin (served by this test, with hostile CSS) embeds
// <script src="SERVER/widget.js" async>; a visitor browser context uses the widget, and a staff
// browser context runs a raw WAMP client (WAMP-CRA login, written below on WebSocket and
// WebCrypto) against the same server. Drives Debian's /usr/bin/chromium via playwright-core:
//
//   SWITCHBOARD_URL=http://127.0.0.1:8080 STAFF_AUTHID=ann STAFF_PASSWORD=… \
//     [SCREENSHOT_DIR=dir] node --test widget.test.mjs
//
// The staff user must exist with a WAMP-CRA key (`switchboard user add ann --role staff
// --wampcra`); tests/interop/test_browser_widget.py sets all of this up.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import zlib from "node:zlib";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const BASE = (process.env.SWITCHBOARD_URL || "").replace(/\/+$/, "");
const STAFF_AUTHID = process.env.STAFF_AUTHID || "";
const STAFF_PASSWORD = process.env.STAFF_PASSWORD || "";
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || "";
const STEP_TIMEOUT = 15_000; // bound for any single wait
const TEST_TIMEOUT = 60_000; // bound for any single test

if (!BASE) throw new Error("SWITCHBOARD_URL is not set (e.g. SWITCHBOARD_URL=http://127.0.0.1:8080)");
if (!STAFF_AUTHID || !STAFF_PASSWORD) throw new Error("STAFF_AUTHID and STAFF_PASSWORD must name a staff user with --wampcra");
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (tests/browser/install-chromium.sh)`);

const WS_BASE = BASE.replace(/^http/, "ws");
const BUSINESS = "Acme Bakery";
const GREETING = "Hi! Ask us anything about our cakes.";
const COLOR = "#0b7a53";

// ---- The demo business website (second origin) ----------------------------------------------

function demoPage(withWidget) {
  const script = withWidget
    ? `<script src="${BASE}/widget.js" async data-name="${BUSINESS}" data-greeting="${GREETING}" data-color="${COLOR}" data-position="right"></script>`
    : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme Bakery — fresh bread daily</title>
<style>
  /* Hostile on purpose: none of this may reach the widget, and the widget's CSS must not
     change anything here. */
  * { all: unset; }
  head, style, title, script { display: none; }
  html, body, main, header, section, h1, p { display: block; }
  body { font: 22px/1.3 "Comic Sans MS", cursive; color: #f0f !important; background: #fffbe8; padding: 24px; }
  h1 { font-size: 40px; font-weight: bold; margin: 0 0 16px; }
  div, span, form, textarea, input, svg { display: none !important; }
  button { display: none !important; visibility: hidden !important; }
  * { box-sizing: content-box !important; letter-spacing: 3px !important; line-height: 3 !important; }
  body * { transform: rotate(3deg); }
  switchboard-chat { display: none !important; opacity: 0 !important; position: absolute !important; left: -9999px !important; }
  .probe { color: rgb(1, 2, 3) !important; font-size: 17px; }
</style>
</head><body>
<header><h1>Acme Bakery</h1></header>
<main>
  <p class="probe" id="probe">Sourdough, rye and the best cheesecake in town.</p>
  <p>Open Monday to Saturday, 7:00–18:00.</p>
  <button id="host-button" type="button">A button of the page</button>
</main>
${script}
</body></html>`;
}

function startDemoServer() {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      const url = new URL(req.url, "http://x");
      if (url.pathname === "/favicon.ico") {
        res.writeHead(204);
        res.end();
      } else if (url.pathname === "/" || url.pathname === "/plain") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
        res.end(demoPage(url.pathname === "/"));
      } else {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("not found\n");
      }
    });
    srv.listen(0, "127.0.0.1", () => resolve(srv));
  });
}

// ---- The staff side: a raw WAMP client inside a browser page ---------------------------------

// Runs in the staff page (serialized by Playwright): logs in with salted WAMP-CRA (PBKDF2, then
// HMAC-SHA256, as Autobahn does) and exposes window.staff = {call, subscribe, events, details}.
async function installStaffClient({ url, realm, authid, password }) {
  const enc = new TextEncoder();
  const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
  async function sign(extra) {
    let key = password;
    if (extra.salt) {
      const base = await crypto.subtle.importKey("raw", enc.encode(password), "PBKDF2", false, ["deriveBits"]);
      const bits = await crypto.subtle.deriveBits(
        { name: "PBKDF2", salt: enc.encode(extra.salt), iterations: extra.iterations, hash: "SHA-256" },
        base,
        (extra.keylen || 32) * 8,
      );
      key = b64(bits);
    }
    const hmac = await crypto.subtle.importKey("raw", enc.encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return b64(await crypto.subtle.sign("HMAC", hmac, enc.encode(extra.challenge)));
  }
  const ws = new WebSocket(url, ["wamp.2.json"]);
  let next = 0;
  const pending = new Map();
  const topics = new Map();
  const staff = { ws, events: [], details: null, closed: false };
  window.staff = staff;
  const send = (m) => ws.send(JSON.stringify(m));
  const request = (msg) =>
    new Promise((resolve, reject) => {
      const id = ++next;
      msg.splice(1, 0, id);
      pending.set(id, { resolve, reject });
      send(msg);
    });
  staff.call = (proc, args = [], kwargs = {}) =>
    request([48, {}, proc, args, kwargs]).then((m) => ({ args: m[3] || [], kwargs: m[4] || {} }));
  staff.subscribe = (topic) => request([32, {}, topic]).then((m) => topics.set(m[2], topic));
  await new Promise((resolve, reject) => {
    ws.onopen = () =>
      send([1, realm, { authmethods: ["wampcra"], authid, roles: { caller: {}, subscriber: {}, publisher: {} } }]);
    ws.onclose = (e) => {
      staff.closed = true;
      reject(new Error(`staff connection closed (${e.code})`));
    };
    ws.onmessage = async (e) => {
      const m = JSON.parse(e.data);
      if (m[0] === 4) send([5, await sign(m[2]), {}]);
      else if (m[0] === 2) {
        staff.details = m[2];
        resolve();
      } else if (m[0] === 3) reject(new Error(`ABORT ${m[2]}: ${JSON.stringify(m[1])}`));
      else if (m[0] === 50 || m[0] === 33) {
        pending.get(m[1])?.resolve(m);
        pending.delete(m[1]);
      } else if (m[0] === 8) {
        pending.get(m[2])?.reject(new Error(`${m[4]}: ${(m[5] || [])[0]}`));
        pending.delete(m[2]);
      } else if (m[0] === 36) staff.events.push({ topic: topics.get(m[1]), kwargs: m[5] || {}, at: Date.now() });
    };
  });
  return staff.details;
}

// ---- Helpers --------------------------------------------------------------------------------

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

// What the widget shows, read from its (open) shadow root in one go.
function readWidget(page) {
  return page.evaluate(() => {
    const host = document.querySelector("switchboard-chat");
    if (!host || !host.shadowRoot) return null;
    const r = host.shadowRoot;
    const q = (s) => r.querySelector(s);
    return {
      conn: q(".r").dataset.conn,
      staffOnline: q(".r").classList.contains("on"),
      open: !q(".panel").hidden,
      status: q(".status").textContent,
      connText: q(".conn").hidden ? "" : q(".conn").textContent,
      offlineNotice: !q(".offline").hidden,
      typing: q(".typing").textContent,
      badge: q(".badge").hidden ? "" : q(".badge").textContent,
      greeting: q(".greet").textContent,
      messages: [...r.querySelectorAll(".list .m")].map((m) => ({
        mine: m.classList.contains("me"),
        seq: m.dataset.seq ? Number(m.dataset.seq) : null,
        status: m.dataset.status || null,
        text: m.querySelector(".b").textContent,
      })),
      active: r.activeElement ? r.activeElement.className || r.activeElement.tagName.toLowerCase() : null,
    };
  });
}

const w = (page, sel) => page.locator("switchboard-chat").locator(sel);

describe(`chat widget against ${BASE}`, { timeout: 8 * 60_000 }, () => {
  let browser;
  let demo;
  let demoUrl;
  let staffContext;
  let staffPage;
  let visitorContext;
  let vpage;
  let visitorAuthid;
  let thread;
  const dialogs = [];
  const pageErrors = [];

  const staffCall = (proc, args = [], kwargs = {}) =>
    staffPage.evaluate(([p, a, k]) => window.staff.call(p, a, k), [proc, args, kwargs]);
  const chat = async (name, args = [], kwargs = {}) => (await staffCall(`switchboard.chat.${name}`, args, kwargs)).args[0];
  const staffEvents = () => staffPage.evaluate(() => window.staff.events);
  async function staffEvent(pred, what) {
    return eventually(async () => {
      const found = (await staffEvents()).find(pred);
      assert.ok(found, `staff did not get ${what}`);
      return found;
    });
  }
  async function loginStaff() {
    const details = await staffPage.evaluate(installStaffClient, {
      url: `${WS_BASE}/ws`,
      realm: "realm1",
      authid: STAFF_AUTHID,
      password: STAFF_PASSWORD,
    });
    assert.equal(details.authrole, "staff");
    for (const topic of ["switchboard.chat.inbox", "switchboard.chat.presence"]) {
      await staffPage.evaluate((t) => window.staff.subscribe(t), topic);
    }
    if (thread) await staffPage.evaluate((t) => window.staff.subscribe(t), `switchboard.chat.thread.${thread}`);
  }
  function watch(page) {
    page.on("pageerror", (err) => pageErrors.push(String(err)));
    page.on("dialog", (d) => {
      dialogs.push(d.message());
      d.dismiss().catch(() => {});
    });
    page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(`console: ${m.text()}`);
    });
  }
  async function screenshot(page, name) {
    if (!SCREENSHOT_DIR) return;
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const file = path.join(SCREENSHOT_DIR, name);
    await page.screenshot({ path: file });
    console.log(`# screenshot: ${file}`);
  }

  before(async () => {
    demo = await startDemoServer();
    demoUrl = `http://127.0.0.1:${demo.address().port}/`;
    assert.notEqual(new URL(demoUrl).origin, new URL(BASE).origin, "the demo site must be another origin");
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
    staffContext = await browser.newContext();
    staffContext.setDefaultTimeout(STEP_TIMEOUT);
    staffPage = await staffContext.newPage();
    await staffPage.goto(`${BASE}/`, { waitUntil: "load" });
    visitorContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    visitorContext.setDefaultTimeout(STEP_TIMEOUT);
  });

  after(async () => {
    await browser?.close();
    await new Promise((r) => (demo ? demo.close(r) : r()));
  });

  it("serves widget.js as JavaScript, under 30 KB gzipped", { timeout: TEST_TIMEOUT }, async () => {
    const res = await fetch(`${BASE}/widget.js`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") || "", /javascript/);
    const body = Buffer.from(await res.arrayBuffer());
    const gz = zlib.gzipSync(body, { level: 9 }).length;
    console.log(`# widget.js: ${body.length} bytes raw, ${gz} bytes gzip -9`);
    assert.ok(gz < 30 * 1024, `widget.js is ${gz} bytes gzipped`);
    assert.doesNotMatch(body.toString(), /\binnerHTML\b|insertAdjacentHTML|document\.write|outerHTML/, "no HTML parsing APIs");
  });

  it("staff log in with WAMP-CRA and see the chat service", { timeout: TEST_TIMEOUT }, async () => {
    await loginStaff();
    const p = await chat("presence");
    assert.equal(p.staff_online, true);
    assert.ok(Array.isArray(p.visitors));
  });

  it("appears on a hostile page of another origin and leaks no CSS either way", { timeout: TEST_TIMEOUT }, async () => {
    vpage = await visitorContext.newPage();
    watch(vpage);
    await vpage.goto(demoUrl, { waitUntil: "load" });
    const bubble = w(vpage, ".bubble");
    await bubble.waitFor({ state: "visible" });
    const box = await bubble.boundingBox();
    assert.ok(box && box.width >= 44 && box.height >= 44, `bubble box ${JSON.stringify(box)}`);
    assert.ok(box.x > 1280 / 2 && box.y > 800 / 2, `bubble at bottom right: ${JSON.stringify(box)}`);
    assert.equal(await bubble.evaluate((b) => b.tagName), "BUTTON");
    assert.match(await bubble.getAttribute("aria-label"), new RegExp(`Chat with ${BUSINESS}`));
    // The page's `* {letter-spacing; line-height}`, colours and fonts do not reach inside.
    const inside = await bubble.evaluate((b) => {
      const s = getComputedStyle(b);
      return { letterSpacing: s.letterSpacing, transform: s.transform, bg: s.backgroundColor };
    });
    assert.deepEqual(inside, { letterSpacing: "normal", transform: "none", bg: "rgb(11, 122, 83)" });
    await eventually(async () => {
      const s = await readWidget(vpage);
      assert.equal(s.conn, "online");
      assert.equal(s.staffOnline, true, "staff are online");
      assert.match(s.status, /online/i);
    });
    // Nothing of the widget's CSS reaches the page: same computed styles as without it.
    const styles = (page) =>
      page.evaluate(() =>
        ["#probe", "#host-button", "body", "h1"].map((sel) => {
          const s = getComputedStyle(document.querySelector(sel));
          return [sel, s.color, s.fontSize, s.fontFamily, s.display, s.backgroundColor, s.outlineStyle, s.margin, s.padding].join("|");
        }),
      );
    const plain = await visitorContext.newPage();
    await plain.goto(`${demoUrl}plain`, { waitUntil: "load" });
    assert.deepEqual(await styles(vpage), await styles(plain));
    await plain.close();
    await screenshot(vpage, "widget-desktop-closed.png");
  });

  it("is keyboard accessible: Tab to the bubble, Enter opens a dialog, Escape closes", { timeout: TEST_TIMEOUT }, async () => {
    await vpage.keyboard.press("Tab");
    await eventually(async () => assert.equal((await readWidget(vpage)).active, "bubble"));
    const ring = await w(vpage, ".bubble").evaluate((b) => getComputedStyle(b).outlineStyle);
    assert.equal(ring, "solid", "visible focus ring");
    await vpage.keyboard.press("Enter");
    const panel = w(vpage, ".panel");
    await panel.waitFor({ state: "visible" });
    assert.equal(await panel.getAttribute("role"), "dialog");
    assert.equal(await w(vpage, ".bubble").getAttribute("aria-expanded"), "true");
    let s = await readWidget(vpage);
    assert.equal(s.greeting, GREETING);
    assert.equal(await w(vpage, ".title").textContent(), BUSINESS);
    assert.equal(s.active, "textarea", "focus moved to the message box");
    await vpage.keyboard.press("Escape");
    await panel.waitFor({ state: "hidden" });
    s = await readWidget(vpage);
    assert.equal(s.active, "bubble", "focus back on the bubble");
    await vpage.keyboard.press("Enter");
    await panel.waitFor({ state: "visible" });
  });

  it("visitor writes (Enter sends, Shift+Enter breaks the line); staff see it and the page", { timeout: TEST_TIMEOUT }, async () => {
    await vpage.keyboard.type("Hello, I would like to order a cake.");
    await vpage.keyboard.press("Enter");
    await vpage.keyboard.type("For Saturday");
    await vpage.keyboard.press("Shift+Enter");
    await vpage.keyboard.type("if possible");
    await vpage.keyboard.press("Enter");
    await eventually(async () => {
      const s = await readWidget(vpage);
      assert.deepEqual(
        s.messages.map((m) => [m.mine, m.text, m.status, m.seq]),
        [
          [true, "Hello, I would like to order a cake.", "sent", 1],
          [true, "For Saturday\nif possible", "sent", 2],
        ],
      );
    });
    const created = await staffEvent((e) => e.topic === "switchboard.chat.inbox" && e.kwargs.type === "thread", "a new-thread note");
    thread = created.kwargs.thread.thread;
    visitorAuthid = created.kwargs.thread.visitor;
    assert.match(visitorAuthid, /^visitor:[0-9a-f]{16}$/);
    await staffEvent((e) => e.topic === "switchboard.chat.inbox" && e.kwargs.seq === 2 && e.kwargs.text === "For Saturday\nif possible", "the second message");
    await staffPage.evaluate((t) => window.staff.subscribe(t), `switchboard.chat.thread.${thread}`);
    const list = await chat("threads");
    const mine = list.find((t) => t.thread === thread);
    assert.equal(mine.visitor_online, true);
    assert.equal(mine.last_seq, 2);
    await eventually(async () => {
      const p = await chat("presence");
      const v = p.visitors.find((x) => x.authid === visitorAuthid);
      assert.ok(v, "visitor listed online");
      assert.equal(v.page_url, demoUrl);
      assert.equal(v.page_title, "Acme Bakery — fresh bread daily");
    });
  });

  it("shows staff typing, then the reply with a safe clickable link", { timeout: TEST_TIMEOUT }, async () => {
    await chat("typing", [thread]);
    await eventually(async () => assert.match((await readWidget(vpage)).typing, /is typing/));
    await screenshot(vpage, "widget-desktop-typing.png");
    await chat("send", [thread, "Sure! Which size? See https://example.com/cakes?size=l. Or javascript:alert(1)"]);
    await eventually(async () => {
      const s = await readWidget(vpage);
      const last = s.messages.at(-1);
      assert.deepEqual([last.mine, last.seq], [false, 3]);
      assert.equal(last.text, "Sure! Which size? See https://example.com/cakes?size=l. Or javascript:alert(1)");
      assert.equal(s.typing, "", "the indicator goes when the message comes");
    });
    const links = await vpage.evaluate(() =>
      [...document.querySelector("switchboard-chat").shadowRoot.querySelectorAll(".list a")].map((a) => ({
        href: a.getAttribute("href"),
        text: a.textContent,
        rel: a.rel,
        target: a.target,
      })),
    );
    assert.deepEqual(links, [
      { href: "https://example.com/cakes?size=l", text: "https://example.com/cakes?size=l", rel: "noopener noreferrer nofollow", target: "_blank" },
    ]);
    // The panel is open and the tab visible: the visitor's widget sends a read receipt.
    await staffEvent((e) => e.kwargs.type === "read" && e.kwargs.member === visitorAuthid && e.kwargs.seq === 3, "the visitor's read receipt");
  });

  it("sends the visitor's typing to staff", { timeout: TEST_TIMEOUT }, async () => {
    await vpage.keyboard.type("A large one");
    await staffEvent((e) => e.kwargs.type === "typing" && e.kwargs.member === visitorAuthid, "the visitor typing");
    await vpage.keyboard.press("Enter");
    await eventually(async () => assert.equal((await readWidget(vpage)).messages.at(-1).status, "sent"));
  });

  it("shows a read receipt once staff have read the visitor's messages", { timeout: TEST_TIMEOUT }, async () => {
    let s = await readWidget(vpage);
    assert.deepEqual(
      s.messages.filter((m) => m.mine).map((m) => m.status),
      ["sent", "sent", "sent"],
    );
    await chat("read", [thread, 4]);
    await eventually(async () => {
      s = await readWidget(vpage);
      assert.deepEqual(
        s.messages.filter((m) => m.mine).map((m) => [m.seq, m.status]),
        [
          [1, "read"],
          [2, "read"],
          [4, "read"],
        ],
      );
    });
    assert.match(await w(vpage, '.me[data-seq="4"] .rcpt').textContent(), /^Read$/);
  });

  it("shows markup typed by either side as text, never as HTML", { timeout: TEST_TIMEOUT }, async () => {
    const evil1 = `<img src=x onerror="window.__pwned=1;alert('img')">`;
    const evil2 = `<script>window.__pwned=2;alert('script')</script>`;
    const evil3 = `<b>bold</b><img src=x onerror=window.__pwned=3><svg onload=alert(3)>`;
    await w(vpage, ".comp textarea").fill(evil1);
    await vpage.keyboard.press("Enter");
    await w(vpage, ".comp textarea").fill(evil2);
    await vpage.keyboard.press("Enter");
    await chat("send", [thread, evil3]);
    // The staff message may overtake the visitor's second one on its way to the server; what
    // matters here is that all three show as text (order is tested elsewhere).
    await eventually(async () => {
      const s = await readWidget(vpage);
      assert.deepEqual(
        s.messages.slice(-3).map((m) => m.text).sort(),
        [evil1, evil2, evil3].sort(),
      );
    });
    await vpage.waitForTimeout(300); // give any (wrongly) created element time to load and fire
    const found = await vpage.evaluate(() => {
      const r = document.querySelector("switchboard-chat").shadowRoot;
      return {
        imgs: r.querySelectorAll("img").length,
        scripts: r.querySelectorAll("script").length,
        bold: r.querySelectorAll("b").length,
        svgWithOnload: r.querySelectorAll("svg[onload]").length,
        pwned: window.__pwned ?? null,
        pageImgs: document.querySelectorAll("img").length,
      };
    });
    assert.deepEqual(found, { imgs: 0, scripts: 0, bold: 0, svgWithOnload: 0, pwned: null, pageImgs: 0 });
    assert.deepEqual(dialogs, [], "no alert/confirm/prompt fired");
    // Staff received the visitor's text verbatim.
    await staffEvent((e) => e.kwargs.type === "message" && e.kwargs.text === evil1, "the markup text verbatim");
    await screenshot(vpage, "widget-desktop.png");
  });

  it("reconnects by itself when the server drops the session", { timeout: TEST_TIMEOUT }, async () => {
    await vpage.evaluate(() => {
      const r = document.querySelector("switchboard-chat").shadowRoot.querySelector(".r");
      window.__connStates = [];
      new MutationObserver(() => window.__connStates.push(r.dataset.conn)).observe(r, { attributeFilter: ["data-conn"] });
    });
    const killed = await staffCall("wamp.session.kill_by_authid", [visitorAuthid]);
    assert.equal(killed.args[0].length, 1, `killed ${JSON.stringify(killed.args)}`);
    await eventually(async () => {
      const states = await vpage.evaluate(() => window.__connStates);
      assert.deepEqual(states.slice(0, 1), ["waiting"], `states ${states}`);
      assert.equal(states.at(-1), "online", `states ${states}`);
    });
    // Subscribed again: staff messages arrive live.
    await chat("send", [thread, "Still there?"]);
    await eventually(async () => assert.equal((await readWidget(vpage)).messages.at(-1).text, "Still there?"));
  });

  it("shows when the network is gone, queues, then catches up with history and sends once", { timeout: TEST_TIMEOUT }, async () => {
    const before = (await readWidget(vpage)).messages.length;
    await visitorContext.setOffline(true);
    await eventually(async () => {
      const s = await readWidget(vpage);
      assert.equal(s.conn, "offline");
      assert.match(s.connText, /You are offline/);
      assert.match(s.status, /Not connected/);
    });
    // Meanwhile staff write (the widget has dropped its socket: no event reaches it) and so
    // does the visitor (queued in the widget, and in localStorage).
    const missed = await chat("send", [thread, "Missed while you were away"]);
    await w(vpage, ".comp textarea").fill("Written while offline");
    await vpage.keyboard.press("Enter");
    let s = await readWidget(vpage);
    assert.deepEqual(s.messages.at(-1), { mine: true, seq: null, status: "pending", text: "Written while offline" });
    assert.ok(!s.messages.some((m) => m.text === "Missed while you were away"));
    await screenshot(vpage, "widget-desktop-reconnecting.png");
    await visitorContext.setOffline(false); // the "online" event makes it reconnect at once
    await eventually(async () => {
      s = await readWidget(vpage);
      assert.equal(s.conn, "online");
      const missedShown = s.messages.find((m) => m.text === "Missed while you were away");
      assert.ok(missedShown, "caught up with history(after)");
      assert.equal(missedShown.seq, missed.seq);
      assert.equal(s.messages.at(-1).status, "sent");
    });
    assert.equal(s.messages.length, before + 2);
    const all = (await chat("history", [thread], { after: 0, limit: 500 })).map((m) => m.text);
    assert.equal(all.filter((t) => t === "Written while offline").length, 1, "stored once");
    const seqs = s.messages.map((m) => m.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "in sequence order");
  });

  it("keeps the conversation across a reload", { timeout: TEST_TIMEOUT }, async () => {
    const before = (await readWidget(vpage)).messages.map((m) => [m.seq, m.mine, m.text, m.status]);
    assert.equal(before[0][3], "read");
    await vpage.reload({ waitUntil: "load" });
    await eventually(async () => {
      const s = await readWidget(vpage);
      assert.equal(s.conn, "online");
      assert.equal(s.open, true, "the panel stays open");
      assert.deepEqual(s.messages.map((m) => [m.seq, m.mine, m.text, m.status]), before, "same messages, same receipts");
    });
    // A reload is a new session of the same visitor: same identity, same thread.
    const list = await chat("threads");
    assert.equal(list.filter((t) => t.visitor === visitorAuthid).length, 1);
  });

  it("fits a 360 px wide phone", { timeout: TEST_TIMEOUT }, async () => {
    const phone = await browser.newContext({
      viewport: { width: 360, height: 740 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      storageState: await visitorContext.storageState(), // the same visitor (token in localStorage)
    });
    try {
      const p = await phone.newPage();
      watch(p);
      await p.goto(demoUrl, { waitUntil: "load" });
      await eventually(async () => {
        const s = await readWidget(p);
        assert.equal(s.conn, "online");
        assert.equal(s.open, true);
        assert.ok(s.messages.length >= 8);
      });
      const panel = await w(p, ".panel").boundingBox();
      assert.deepEqual([panel.x, panel.y, panel.width, panel.height], [0, 0, 360, 740], "full screen panel");
      for (const sel of [".comp textarea", ".send", ".x"]) {
        const b = await w(p, sel).boundingBox();
        assert.ok(b.x >= 0 && b.x + b.width <= 360 && b.y + b.height <= 740, `${sel} inside the screen: ${JSON.stringify(b)}`);
        assert.ok(b.height >= 40, `${sel} is a big enough target`);
      }
      const overflow = await p.evaluate(() => {
        const log = document.querySelector("switchboard-chat").shadowRoot.querySelector(".log");
        return log.scrollWidth - log.clientWidth;
      });
      assert.ok(overflow <= 0, `messages overflow by ${overflow}px`);
      await screenshot(p, "widget-mobile-360.png");
      await w(p, ".x").tap();
      await w(p, ".bubble").waitFor({ state: "visible" });
      const bubble = await w(p, ".bubble").boundingBox();
      assert.ok(bubble.x + bubble.width <= 360 && bubble.y + bubble.height <= 740);
      await screenshot(p, "widget-mobile-360-closed.png");
    } finally {
      await phone.close();
    }
  });

  it("says so when no staff is online, and when they are back", { timeout: TEST_TIMEOUT }, async () => {
    await staffPage.evaluate(() => window.staff.ws.close());
    await eventually(async () => {
      const s = await readWidget(vpage);
      assert.equal(s.staffOnline, false);
      assert.equal(s.offlineNotice, true);
      assert.match(s.status, /Away/);
    });
    assert.match(await w(vpage, ".offline").textContent(), /No one is available/);
    // The offline form (tests/browser/widget-offline.test.mjs) replaces the message box.
    assert.equal(await w(vpage, ".comp").isVisible(), false);
    assert.equal(await w(vpage, "form.off").isVisible(), true);
    await screenshot(vpage, "widget-desktop-offline.png");
    await loginStaff();
    await eventually(async () => {
      const s = await readWidget(vpage);
      assert.equal(s.staffOnline, true);
      assert.equal(s.offlineNotice, false);
    });
    assert.equal(await w(vpage, ".comp").isVisible(), true, "the message box is back");
    assert.equal(await w(vpage, "form.off").isVisible(), false);
  });

  it("counts unread staff messages on the bubble while the panel is closed", { timeout: TEST_TIMEOUT }, async () => {
    await w(vpage, ".comp textarea").focus();
    await vpage.keyboard.press("Escape");
    await w(vpage, ".panel").waitFor({ state: "hidden" });
    const sent = await chat("send", [thread, "Your cake is ready"]);
    await chat("send", [thread, "Pick it up any time"]);
    await eventually(async () => assert.equal((await readWidget(vpage)).badge, "2"));
    assert.match(await w(vpage, ".bubble").getAttribute("aria-label"), /\(2 unread\)/);
    const receipts = (await staffEvents()).filter((e) => e.kwargs.type === "read" && e.kwargs.seq > sent.seq).length;
    assert.equal(receipts, 0, "no read receipt while the panel is closed");
    await w(vpage, ".bubble").click();
    await eventually(async () => assert.equal((await readWidget(vpage)).badge, ""));
    await staffEvent((e) => e.kwargs.type === "read" && e.kwargs.member === visitorAuthid && e.kwargs.seq === sent.seq + 1, "the read receipt");
  });

  it("shows the visitor offline to staff once the tab is closed", { timeout: TEST_TIMEOUT }, async () => {
    assert.equal((await chat("threads")).find((t) => t.thread === thread).visitor_online, true);
    await vpage.close();
    const ev = await staffEvent(
      (e) => e.topic === "switchboard.chat.presence" && e.kwargs.authid === visitorAuthid && e.kwargs.online === false,
      "a presence offline event for the visitor",
    );
    assert.equal(ev.kwargs.role, "visitor");
    assert.equal((await chat("threads")).find((t) => t.thread === thread).visitor_online, false);
    const p = await chat("presence");
    assert.ok(!p.visitors.some((v) => v.authid === visitorAuthid));
  });

  it("raised no page errors and no dialogs", () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(dialogs, []);
  });
});
