// Real-browser test of the chat widget's offline form (web/widget.js): no staff member is online,
// so the widget says so and takes a message with an email address (switchboard.chat.leave_message).
//
// A demo "business website" on a second origin (served by this test) embeds the widget; Debian's
// /usr/bin/chromium is driven through playwright-core. The widget's WebSocket goes through
// Playwright's WebSocket routing, which counts the CALLs and loses what the test needs lost: the
// first leave_message CALL is swallowed (the page is then reloaded while it shows "Sending…"),
// and the RESULT of the second one is dropped with the connection closed — so the message is
// stored and emailed while the widget never hears so, and must not send it again.
//
//   SWITCHBOARD_URL=http://127.0.0.1:8080 OFFLINE_EMAIL=… OFFLINE_NAME=… OFFLINE_MESSAGE=… \
//     RESULT_FILE=out.json [SCREENSHOT_DIR=dir] node --test widget-offline.test.mjs
//
// tests/interop/test_browser_widget_offline.py starts the server (with email to an SMTP sink, no
// staff online), runs this, then checks the email and the staff side. RESULT_FILE gets the
// visitor token, the leave_message CALLs the server received, and what the widget showed.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import zlib from "node:zlib";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const BASE = (process.env.SWITCHBOARD_URL || "").replace(/\/+$/, "");
const EMAIL = process.env.OFFLINE_EMAIL || "";
const NAME = process.env.OFFLINE_NAME || "";
const MESSAGE = process.env.OFFLINE_MESSAGE || "";
const RESULT_FILE = process.env.RESULT_FILE || "";
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || "";
const STEP_TIMEOUT = 15_000;
const TEST_TIMEOUT = 60_000;

if (!BASE) throw new Error("SWITCHBOARD_URL is not set");
if (!EMAIL || !MESSAGE) throw new Error("OFFLINE_EMAIL and OFFLINE_MESSAGE must be set");
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (tests/browser/install-chromium.sh)`);

const BUSINESS = "Acme Bakery";
const LEAVE = "switchboard.chat.leave_message";

function demoPage() {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme Bakery — closed for the night</title>
<style>
  * { all: unset; }
  head, style, title, script { display: none; }
  html, body, main, h1, p { display: block; }
  body { font: 22px/1.3 "Comic Sans MS", cursive; color: #f0f; background: #fffbe8; padding: 24px; }
  h1 { font-size: 40px; font-weight: bold; }
  form, input, textarea, label, button, p.x { display: none !important; }
  switchboard-chat { display: none !important; }
</style>
</head><body>
<main><h1>Acme Bakery</h1><p>We are closed. Leave us a message!</p></main>
<script src="${BASE}/widget.js" async data-name="${BUSINESS}" data-color="#0b7a53"></script>
</body></html>`;
}

function startDemoServer() {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      if (req.url === "/") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
        res.end(demoPage());
      } else {
        res.writeHead(req.url === "/favicon.ico" ? 204 : 404);
        res.end();
      }
    });
    srv.listen(0, "127.0.0.1", () => resolve(srv));
  });
}

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
    const shown = (s) => !!q(s) && q(s).getClientRects().length > 0;
    const a = r.activeElement;
    return {
      conn: q(".r").dataset.conn,
      staffOnline: q(".r").classList.contains("on"),
      open: !q(".panel").hidden,
      status: q(".status").textContent,
      notice: shown(".offline") ? q(".offline").textContent : null,
      composer: shown(".comp"),
      form: shown(".off"),
      thanks: shown(".thanks") ? q(".thanks").textContent : null,
      error: q(".off .err").textContent,
      button: q(".off .go").textContent,
      buttonBusy: q(".off .go").getAttribute("aria-disabled"),
      email: q(".off input[type=email]").value,
      emailInvalid: q(".off input[type=email]").getAttribute("aria-invalid"),
      text: q(".off textarea").value,
      readOnly: q(".off textarea").readOnly,
      messages: [...r.querySelectorAll(".list .m")].map((m) => ({
        mine: m.classList.contains("me"),
        seq: m.dataset.seq ? Number(m.dataset.seq) : null,
        text: m.querySelector(".b").textContent,
      })),
      // e.g. "button.bubble", "input[email]", "textarea"
      active: a ? a.tagName.toLowerCase() + (a.className ? "." + a.className.replace(/ /g, ".") : "") + (a.tagName === "INPUT" ? `[${a.type}]` : "") : null,
    };
  });
}

const w = (page, sel) => page.locator("switchboard-chat").locator(sel);

describe(`chat widget offline form against ${BASE}`, { timeout: 5 * 60_000 }, () => {
  let browser;
  let demo;
  let demoUrl;
  let context;
  let page;
  let widgetSize;
  const pageErrors = [];
  const dialogs = [];
  // The WebSocket traffic of the widget, as Playwright's routing sees it.
  const calls = []; // {proc, args, kwargs, fate: "swallowed" | "forwarded"}
  const leaveResults = []; // what happened to leave_message RESULTs: "dropped" | "delivered"
  let mode = "pass"; // "swallow-leave" | "drop-leave-result" | "pass"

  async function screenshot(name) {
    if (!SCREENSHOT_DIR) return;
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const file = path.join(SCREENSHOT_DIR, name);
    await page.screenshot({ path: file });
    console.log(`# screenshot: ${file}`);
  }
  function watch(p) {
    p.on("pageerror", (err) => pageErrors.push(String(err)));
    p.on("dialog", (d) => {
      dialogs.push(d.message());
      d.dismiss().catch(() => {});
    });
    p.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(`console: ${m.text()}`);
    });
  }
  const leaveCalls = () => calls.filter((c) => c.proc === LEAVE);

  before(async () => {
    demo = await startDemoServer();
    demoUrl = `http://127.0.0.1:${demo.address().port}/`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30_000,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    context.setDefaultTimeout(STEP_TIMEOUT);
    await context.routeWebSocket(/\/chat$/, (ws) => {
      const server = ws.connectToServer();
      const leaveIds = new Set();
      ws.onMessage((m) => {
        let j = null;
        try {
          j = JSON.parse(m);
        } catch {
          /* not JSON: passed on */
        }
        if (j && j[0] === 48) {
          const call = { proc: j[3], args: j[4] || [], kwargs: j[5] || {}, fate: "forwarded" };
          calls.push(call);
          if (j[3] === LEAVE) {
            if (mode === "swallow-leave") {
              call.fate = "swallowed"; // never reaches the server; the page hears nothing
              mode = "pass";
              return;
            }
            leaveIds.add(j[1]);
          }
        }
        server.send(m);
      });
      server.onMessage((m) => {
        const j = JSON.parse(m);
        if (j[0] === 50 && leaveIds.has(j[1])) {
          if (mode === "drop-leave-result") {
            // Stored and emailed by the server, but the answer is lost with the connection.
            mode = "pass";
            leaveResults.push("dropped");
            ws.close();
            server.close();
            return;
          }
          leaveResults.push("delivered");
        }
        ws.send(m);
      });
    });
  });

  after(async () => {
    await browser?.close();
    await new Promise((r) => (demo ? demo.close(r) : r()));
  });

  it("widget.js is still under 30 KB gzipped", { timeout: TEST_TIMEOUT }, async () => {
    const body = Buffer.from(await (await fetch(`${BASE}/widget.js`, { signal: AbortSignal.timeout(5000) })).arrayBuffer());
    const gz = zlib.gzipSync(body, { level: 9 }).length;
    widgetSize = { raw: body.length, gzip9: gz };
    console.log(`# widget.js: ${body.length} bytes raw, ${gz} bytes gzip -9`);
    assert.ok(gz < 30 * 1024, `widget.js is ${gz} bytes gzipped`);
    assert.doesNotMatch(body.toString(), /\binnerHTML\b|insertAdjacentHTML|document\.write|outerHTML/);
  });

  it("says no one is available and shows the form, reached by keyboard", { timeout: TEST_TIMEOUT }, async () => {
    page = await context.newPage();
    watch(page);
    await page.goto(demoUrl, { waitUntil: "load" });
    await w(page, ".bubble").waitFor({ state: "visible" });
    await eventually(async () => {
      const s = await readWidget(page);
      assert.equal(s.conn, "online");
      assert.equal(s.staffOnline, false);
      assert.match(s.status, /Away/);
    });
    await page.keyboard.press("Tab");
    await eventually(async () => assert.equal((await readWidget(page)).active, "button.bubble"));
    await page.keyboard.press("Enter");
    await w(page, ".panel").waitFor({ state: "visible" });
    const s = await readWidget(page);
    assert.match(s.notice, /No one is available right now/);
    assert.equal(s.composer, false, "the message box is replaced by the form");
    assert.equal(s.form, true);
    assert.equal(s.active, "input[email]", "focus goes to the email field");
    // Labelled controls (the label wraps each one), found by role and accessible name.
    const email = page.getByRole("textbox", { name: "Your email" });
    assert.equal(await email.getAttribute("type"), "email");
    assert.equal(await email.getAttribute("autocomplete"), "email");
    assert.equal(await page.getByRole("textbox", { name: "Message" }).evaluate((e) => e.tagName), "TEXTAREA");
    await page.getByRole("textbox", { name: "Your name (optional)" }).waitFor();
    assert.equal(await page.getByRole("button", { name: "Send message" }).getAttribute("type"), "submit");
    assert.equal(await page.getByRole("form", { name: "Leave a message" }).count(), 1);
  });

  it("refuses a wrong address or an empty message with a text error, sending nothing", { timeout: TEST_TIMEOUT }, async () => {
    await page.keyboard.type("kari@nowhere");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    await page.keyboard.type("Hello?");
    await page.keyboard.press("Tab");
    await page.keyboard.press("Enter");
    let s = await readWidget(page);
    assert.match(s.error, /Please enter your email address, like name@example\.com\./);
    assert.equal(s.emailInvalid, "true");
    assert.equal(s.active, "input[email]", "focus back on the field to fix");
    assert.equal(await w(page, ".off .err").getAttribute("role"), "alert");
    await page.getByRole("textbox", { name: "Your email" }).fill(EMAIL);
    await page.getByRole("textbox", { name: "Message" }).fill("   ");
    await page.getByRole("button", { name: "Send message" }).click();
    s = await readWidget(page);
    assert.equal(s.error, "Please write your message.");
    assert.equal(s.emailInvalid, "false");
    assert.equal(s.active, "textarea", "focus on the message");
    assert.deepEqual(leaveCalls(), [], "nothing was sent");
  });

  it("keeps a message on its way across a reload, and sends it once though the answer is lost", { timeout: TEST_TIMEOUT }, async () => {
    // Typed with the keyboard: Enter in the message makes a new line (it does not send).
    await page.getByRole("textbox", { name: "Message" }).fill("");
    const [first, ...rest] = MESSAGE.split("\n");
    await page.keyboard.type(first);
    for (const line of rest) {
      await page.keyboard.press("Enter");
      await page.keyboard.type(line);
    }
    let s = await readWidget(page);
    assert.equal(s.text, MESSAGE);
    assert.equal(s.error, "", "the error went once the message was written");
    await page.keyboard.press("Shift+Tab"); // back to the name
    await page.keyboard.type(NAME);
    await screenshot("widget-offline-form.png");
    mode = "swallow-leave";
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab"); // the send button
    assert.equal((await readWidget(page)).active, "button.go");
    // Pressed twice: the second press sends nothing more.
    await page.keyboard.press("Enter");
    await page.keyboard.press("Enter");
    await eventually(async () => assert.equal(leaveCalls().length, 1));
    s = await readWidget(page);
    assert.equal(s.button, "Sending…");
    assert.equal(s.buttonBusy, "true");
    assert.equal(s.readOnly, true);
    assert.equal(leaveCalls()[0].fate, "swallowed");
    assert.deepEqual(leaveCalls()[0].args, [MESSAGE]);
    assert.deepEqual(leaveCalls()[0].kwargs, { email: EMAIL, name: NAME });
    await page.waitForTimeout(300);
    assert.equal(leaveCalls().length, 1, "one CALL for two presses");

    // The visitor reloads while it hangs: the form comes back with the message, still on its way.
    // On the new connection the widget looks for it (not there: the CALL never arrived) and
    // sends it; this time the server stores and emails it, but its answer is lost.
    mode = "drop-leave-result";
    await page.reload({ waitUntil: "load" });
    await eventually(async () => assert.equal(leaveResults.length, 1));
    assert.deepEqual(leaveResults, ["dropped"]);
    assert.equal(leaveCalls().length, 2);
    assert.equal(leaveCalls()[1].fate, "forwarded");
    assert.deepEqual(leaveCalls()[1].args, [MESSAGE]);
    // The widget reconnects, finds the message in its thread, and confirms without sending again.
    await eventually(async () => {
      s = await readWidget(page);
      assert.equal(s.conn, "online");
      assert.ok(s.thanks, `the thanks note is shown: ${JSON.stringify(s)}`);
    });
    assert.match(s.thanks, /Thanks — we'll answer by email\./);
    assert.match(s.thanks, new RegExp(`We will write to ${EMAIL.replace(/\./g, "\\.")}\\.`));
    assert.equal(s.form, false);
    assert.equal(leaveCalls().length, 2, "not sent again after the lost answer");
    assert.equal(leaveCalls().filter((c) => c.fate === "forwarded").length, 1, "the server got it once");
    const afterDrop = calls.slice(calls.indexOf(leaveCalls()[1]) + 1).map((c) => c.proc);
    assert.ok(afterDrop.includes("switchboard.chat.history"), `looked in the history: ${afterDrop}`);
    // The thread shows it, as text: the <script> in it is not run.
    await eventually(async () => {
      s = await readWidget(page);
      const mine = s.messages.filter((m) => m.mine);
      assert.deepEqual(
        mine.map((m) => m.text),
        [MESSAGE],
      );
      assert.ok(s.messages.some((m) => !m.mine && m.text.includes(`answer by email to ${EMAIL}`)));
    });
    const found = await page.evaluate(() => {
      const r = document.querySelector("switchboard-chat").shadowRoot;
      return { scripts: r.querySelectorAll("script").length, imgs: r.querySelectorAll("img").length, pwned: window.__pwned ?? null };
    });
    assert.deepEqual(found, { scripts: 0, imgs: 0, pwned: null });
    await screenshot("widget-offline.png");
  });

  it("still thanks after another reload; 'Write another message' brings the form back", { timeout: TEST_TIMEOUT }, async () => {
    await page.reload({ waitUntil: "load" });
    await eventually(async () => {
      const s = await readWidget(page);
      assert.equal(s.conn, "online");
      assert.equal(s.open, true);
      assert.match(s.thanks || "", /Thanks — we'll answer by email\./);
      assert.deepEqual(s.messages.filter((m) => m.mine).map((m) => m.text), [MESSAGE]);
    });
    await page.getByRole("button", { name: "Write another message" }).click();
    const s = await readWidget(page);
    assert.equal(s.form, true);
    assert.equal(s.thanks, null);
    assert.equal(s.email, EMAIL, "the address is remembered");
    assert.equal(s.text, "");
    assert.equal(s.active, "textarea");
    assert.equal(leaveCalls().length, 2, "nothing more sent");
  });

  it("fits a 360 px wide phone", { timeout: TEST_TIMEOUT }, async () => {
    const phone = await browser.newContext({
      viewport: { width: 360, height: 740 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      storageState: await context.storageState(), // the same visitor, panel open
    });
    try {
      const p = await phone.newPage();
      watch(p);
      await p.goto(demoUrl, { waitUntil: "load" });
      await eventually(async () => {
        const s = await readWidget(p);
        assert.equal(s.conn, "online");
        assert.equal(s.form, true, "the form, as left on the desktop ('Write another message')");
      });
      for (const sel of ["input[type=email]", "input[name=name]", ".off textarea", ".off .go"]) {
        const b = await w(p, sel).boundingBox();
        assert.ok(b.x >= 0 && b.x + b.width <= 360 && b.y + b.height <= 740, `${sel} inside the screen: ${JSON.stringify(b)}`);
        assert.ok(b.height >= 38, `${sel} is a big enough target`);
      }
      const log = await w(p, ".log").boundingBox();
      assert.ok(log.height >= 150, `room left for the messages: ${log.height}px`);
      await p.screenshot({ path: SCREENSHOT_DIR ? path.join(SCREENSHOT_DIR, "widget-offline-mobile-360.png") : undefined });
    } finally {
      await phone.close();
    }
  });

  it("raised no page errors and no dialogs", async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(dialogs, []);
    const token = await page.evaluate(() => {
      for (let i = 0; i < localStorage.length; i++) {
        const k = localStorage.key(i);
        if (/^switchboard-chat:.*:token$/.test(k)) return JSON.parse(localStorage.getItem(k));
      }
      return null;
    });
    assert.ok(token, "the visitor token is in localStorage");
    if (RESULT_FILE)
      writeFileSync(
        RESULT_FILE,
        JSON.stringify({ token, widget: widgetSize, leave_calls: leaveCalls(), leave_results: leaveResults }, null, 2),
      );
  });
});
