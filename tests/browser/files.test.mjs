// Real-browser end-to-end test of chat attachments in the widget (web/widget.js) and the staff
// inbox (web/inbox.js).
//
// One headless Debian chromium, two contexts: a visitor on a demo website of a second origin
// embedding the widget (so uploads and downloads cross origins: CORS), and a staff member in
// the inbox (/inbox). The files are made here: a real PNG (decodable, so <img> has a
// naturalWidth), a PDF-looking document, an SVG with a script, a text file with markup in its
// name, one byte more than the server's limit; then uploads past the visitor's hourly rate, past
// the storage quota, and one whose PUT the network loses.
//
//   SWITCHBOARD_URL=http://127.0.0.1:8080 STAFF_AUTHID=ann STAFF_PASSWORD=… \
//     MAX_FILE_BYTES=524288 UPLOADS_PER_HOUR=10 [SCREENSHOT_DIR=dir] node --test files.test.mjs
//
// The server's chat section must have those limits and `max_total_file_bytes` at most 3 MiB;
// the staff user must exist with a WAMP-CRA key. tests/interop/test_browser_files.py sets all
// of this up. Screenshots: files-widget.png, files-inbox.png, files-widget-error.png,
// files-inbox-error.png, files-widget-phone.png.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import zlib from "node:zlib";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const BASE = (process.env.SWITCHBOARD_URL || "").replace(/\/+$/, "");
const STAFF = process.env.STAFF_AUTHID || "";
const PASSWORD = process.env.STAFF_PASSWORD || "";
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || "";
const STEP_TIMEOUT = 20_000;
const TEST_TIMEOUT = 90_000;
const MAX_BYTES = Number(process.env.MAX_FILE_BYTES || 5 * 1024 * 1024); // the chat's max_file_bytes
const UPLOADS_PER_HOUR = Number(process.env.UPLOADS_PER_HOUR || 30);

if (!BASE) throw new Error("SWITCHBOARD_URL is not set (e.g. SWITCHBOARD_URL=http://127.0.0.1:8080)");
if (!STAFF || !PASSWORD) throw new Error("STAFF_AUTHID and STAFF_PASSWORD must name a staff user with --wampcra");
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (tests/browser/install-chromium.sh)`);

const tid = (id) => `[data-testid="${id}"]`;
const MAX_KB = MAX_BYTES < 1048576 ? `${Math.round(MAX_BYTES / 1024)} KB` : `${MAX_BYTES / 1048576} MB`;
const HOSTILE = "<img src=x onerror=alert(1)>.txt";

// ---- files made here ----------------------------------------------------------------------

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(td) >>> 0);
  return Buffer.concat([len, td, crc]);
}

/** A real, decodable RGB PNG of `w`×`h` pixels (a diagonal gradient). */
function makePng(w, h) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const rows = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    const o = y * (1 + 3 * w);
    rows[o] = 0; // no filter
    for (let x = 0; x < w; x++) {
      rows[o + 1 + 3 * x] = (x * 255) / w;
      rows[o + 2 + 3 * x] = (y * 255) / h;
      rows[o + 3 + 3 * x] = 160;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(rows)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** A PDF-looking document of exactly `size` bytes. */
function makePdf(size) {
  const head = Buffer.from("%PDF-1.4\n% Switchboard test report\n");
  const body = Buffer.alloc(size - head.length, "x");
  for (let i = 0; i < body.length; i += 64) body[i] = 0x0a;
  return Buffer.concat([head, body]);
}

const PNG = makePng(120, 80);
const PDF = makePdf(120 * 1024);
const SVG = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script><rect width="10" height="10"/></svg>');

// ---- the demo website (a second origin) -----------------------------------------------------

function demoPage() {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Acme Bakery</title></head>
<body><h1>Acme Bakery</h1><p>Fresh bread daily.</p>
<script src="${BASE}/widget.js" async data-name="Acme Bakery" data-color="#0b7a53"></script>
</body></html>`;
}

function startDemoServer() {
  return new Promise((resolve) => {
    const srv = http.createServer((req, res) => {
      const p = new URL(req.url, "http://x").pathname;
      if (p === "/") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
        res.end(demoPage());
      } else {
        res.writeHead(p === "/favicon.ico" ? 204 : 404);
        res.end();
      }
    });
    srv.listen(0, "127.0.0.1", () => resolve(srv));
  });
}

async function eventually(fn, timeout = STEP_TIMEOUT, interval = 150) {
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
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function screenshot(page, name) {
  if (!SCREENSHOT_DIR) return;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, name);
  await page.screenshot({ path: file });
  console.log(`# screenshot: ${file}`);
}

// ---- what each side shows -------------------------------------------------------------------

/** The widget's messages: [{mine, kind, text, links: [{href, text, target, rel}], imgs: [{alt, src, w}]}]. */
function widgetMessages(page) {
  return page.evaluate(() =>
    [...document.querySelector("switchboard-chat").shadowRoot.querySelectorAll(".list .m")].map((m) => ({
      mine: m.classList.contains("me"),
      status: m.dataset.status || "",
      text: m.querySelector(".b").textContent,
      links: [...m.querySelectorAll(".b a")].map((a) => ({ href: a.href, text: a.textContent, target: a.target, rel: a.rel })),
      imgs: [...m.querySelectorAll("img")].map((i) => ({ alt: i.alt, src: i.src, w: i.complete ? i.naturalWidth : 0 })),
    })),
  );
}

/** The inbox's messages of the open conversation, in the same shape. */
function inboxMessages(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('[data-testid="history"] .message, [data-testid="live-log"] .message')].map((m) => ({
      mine: m.classList.contains("mine"),
      text: m.textContent,
      links: [...m.querySelectorAll('[data-testid="message-file"] a')].map((a) => ({ href: a.href, text: a.textContent, target: a.target, rel: a.rel })),
      imgs: [...m.querySelectorAll("img")].map((i) => ({ alt: i.alt, src: i.src, w: i.complete ? i.naturalWidth : 0 })),
    })),
  );
}
const last = (a) => a[a.length - 1];

let browser;
let demo;
let visitor; // { context, page }
let staff;
const dialogs = [];
const pageErrors = [];

async function newPage(viewport) {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(STEP_TIMEOUT);
  const page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  // Intercepting file choosers is switched on now, so a later waitForEvent("filechooser") cannot
  // race the click that opens one.
  page.on("filechooser", () => {});
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  return { context, page };
}

const widgetInput = (v) => v.locator('switchboard-chat input[type="file"]');
const widgetError = (v) => v.locator('switchboard-chat .up [role="alert"]');

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
  demo = await startDemoServer();
  visitor = await newPage({ width: 1100, height: 800 });
  staff = await newPage({ width: 1280, height: 860 });

  // Staff log in first, so the widget shows the message box (not the offline form).
  const s = staff.page;
  await s.goto(`${BASE}/inbox`);
  await s.fill(tid("login-url"), "/ws");
  await s.fill(tid("login-realm"), "realm1");
  await s.selectOption(tid("login-method"), "wampcra");
  await s.fill(tid("login-authid"), STAFF);
  await s.fill(tid("login-secret"), PASSWORD);
  await s.click(tid("login-submit"));
  await s.waitForFunction(() => document.body.dataset.state === "live");

  const v = visitor.page;
  const demoUrl = `http://127.0.0.1:${demo.address().port}/`;
  assert.notEqual(new URL(demoUrl).origin, new URL(BASE).origin, "the demo site must be another origin");
  await v.goto(demoUrl);
  await v.locator("switchboard-chat .bubble").click();
  await eventually(async () => assert.equal(await v.locator("switchboard-chat textarea[aria-label=Message]").isVisible(), true));
});

after(async () => {
  await browser?.close();
  demo?.close();
});

describe("chat attachments", { timeout: TEST_TIMEOUT * 8 }, () => {
  it("the paperclip is a labelled, keyboard-reachable button that opens the file chooser", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const clip = v.locator('switchboard-chat button[aria-label="Attach a file"]');
    assert.equal(await clip.isVisible(), true);
    await v.locator("switchboard-chat textarea[aria-label=Message]").focus();
    await v.keyboard.press("Shift+Tab");
    assert.equal(await v.evaluate(() => document.querySelector("switchboard-chat").shadowRoot.activeElement?.getAttribute("aria-label")), "Attach a file");
    const [chooser] = await Promise.all([v.waitForEvent("filechooser"), v.keyboard.press("Enter")]);
    assert.equal(chooser.isMultiple(), true);
  });

  it("the visitor attaches a PNG (its first message): a thumbnail on both sides, full size in a new tab", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    await widgetInput(v).setInputFiles({ name: "holiday.png", mimeType: "image/png", buffer: PNG });
    // The widget: the visitor's own message with a loaded thumbnail from the chat server's
    // origin, in a link that opens a new tab.
    const mine = await eventually(async () => {
      const m = last(await widgetMessages(v));
      assert.ok(m && m.mine, JSON.stringify(m));
      assert.equal(m.imgs.length, 1, JSON.stringify(m));
      assert.equal(m.imgs[0].alt, "holiday.png");
      assert.equal(m.imgs[0].w, 120, "the thumbnail loaded (naturalWidth)");
      assert.equal(m.status, "sent");
      return m;
    });
    assert.equal(new URL(mine.imgs[0].src).origin, new URL(BASE).origin);
    assert.equal(mine.links[0].target, "_blank");
    assert.match(mine.links[0].rel, /noopener/);
    assert.equal(await widgetError(v).textContent(), "");

    // Staff: the new thread, its image.
    const row = s.locator('[data-testid="thread-list"] [role="option"]').first();
    await eventually(async () => assert.equal(await row.locator(tid("thread-preview")).textContent(), "Image: holiday.png"));
    await row.click();
    const got = await eventually(async () => {
      const m = last(await inboxMessages(s));
      assert.ok(m, "a message");
      assert.equal(m.imgs.length, 1, JSON.stringify(m));
      assert.equal(m.imgs[0].alt, "holiday.png");
      assert.ok(m.imgs[0].w > 0, "naturalWidth > 0 in the inbox");
      return m;
    });
    assert.equal(got.links[0].target, "_blank");
    assert.match(got.links[0].rel, /noopener/);
    // Clicking the thumbnail opens the image full size in a new tab.
    const [tab] = await Promise.all([s.context().waitForEvent("page"), s.locator(`${tid("message-image")}`).last().click()]);
    await tab.waitForLoadState();
    assert.match(tab.url(), /\/api\/chat\/files\/\d+\/\d+\?expires=\d+&sig=/);
    const natural = await tab.evaluate(() => document.images[0] && document.images[0].naturalWidth);
    assert.equal(natural, 120, "the new tab shows the image itself");
    await tab.close();
    await screenshot(s, "files-inbox.png");
  });

  it("an expired image link is renewed once with file_url, then the image loads", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    // Make the thumbnail's link invalid (as an expired one is: 403) and ask for it again.
    const broken = await v.evaluate(() => {
      const img = [...document.querySelector("switchboard-chat").shadowRoot.querySelectorAll(".list .m img")].pop();
      img.src = img.src.replace(/expires=\d+/, "expires=1");
      return img.src;
    });
    await eventually(async () => {
      const m = last(await widgetMessages(v));
      assert.notEqual(m.imgs[0].src, broken, "a fresh link");
      assert.equal(m.imgs[0].w, 120);
      assert.equal(m.links[0].href, m.imgs[0].src, "the link follows");
    });
  });

  it("staff attach a PDF; the visitor gets a download link with the name and size that returns the bytes", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    const before = (await widgetMessages(v)).length;
    // The inbox's paperclip: a labelled button that opens the file chooser.
    assert.equal(await s.locator(tid("attach")).getAttribute("aria-label"), "Attach a file");
    await s.locator(tid("attach")).focus();
    const [chooser] = await Promise.all([s.waitForEvent("filechooser"), s.keyboard.press("Enter")]);
    await chooser.setFiles({ name: "report.pdf", mimeType: "application/pdf", buffer: PDF });
    await eventually(async () => {
      const m = last(await inboxMessages(s));
      assert.ok(m.mine, JSON.stringify(m));
      assert.equal(m.links.length, 1, JSON.stringify(m));
      assert.match(m.links[0].text, /report\.pdf · 120 KB/);
      assert.equal(m.imgs.length, 0);
    });
    assert.equal(await s.locator(tid("upload")).isHidden(), true, "the upload line is gone");
    const link = await eventually(async () => {
      const msgs = await widgetMessages(v);
      assert.equal(msgs.length, before + 1);
      const m = last(msgs);
      assert.equal(m.mine, false);
      assert.equal(m.imgs.length, 0);
      assert.equal(m.links.length, 1, JSON.stringify(m));
      assert.equal(m.links[0].text, "report.pdf · 120 KB");
      return m.links[0];
    });
    assert.equal(new URL(link.href).origin, new URL(BASE).origin);
    assert.equal(link.target, "_blank");
    assert.match(link.rel, /noopener/);
    const res = await fetch(link.href, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-disposition") || "", /^attachment/);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(PDF), "the link returns the bytes");
    await screenshot(v, "files-widget.png");
  });

  it("a pasted image and a dropped file are sent too", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    const png = [...PNG];
    // Paste into the widget's message box.
    await v.evaluate((bytes) => {
      const box = document.querySelector("switchboard-chat").shadowRoot.querySelector("textarea[aria-label=Message]");
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(bytes)], "pasted.png", { type: "image/png" }));
      box.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
    }, png);
    await eventually(async () => {
      const m = last(await inboxMessages(s));
      assert.equal(m.imgs.length, 1, JSON.stringify(m));
      assert.equal(m.imgs[0].alt, "pasted.png");
      assert.ok(m.imgs[0].w > 0);
    });
    // Dropped on the inbox's conversation.
    await s.evaluate(() => {
      const target = document.querySelector('[data-testid="conversation-body"]');
      const dt = new DataTransfer();
      dt.items.add(new File(["dropped notes\n"], "notes.txt", { type: "text/plain" }));
      target.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
      target.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await eventually(async () => {
      const m = last(await widgetMessages(v));
      assert.equal(m.links.length, 1, JSON.stringify(m));
      assert.equal(m.links[0].text, "notes.txt · 14 B");
    });
    // Dropped on the widget's panel.
    await v.evaluate(() => {
      const panel = document.querySelector("switchboard-chat").shadowRoot.querySelector(".panel");
      const dt = new DataTransfer();
      dt.items.add(new File(["a,b\n1,2\n"], "table.csv", { type: "text/csv" }));
      panel.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
      panel.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await eventually(async () => {
      const m = last(await inboxMessages(s));
      assert.equal(m.links.length, 1, JSON.stringify(m));
      assert.match(m.links[0].text, /table\.csv · 8 B/);
    });
  });

  it("an SVG is a download link, never an <img>", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    await widgetInput(v).setInputFiles({ name: "logo.svg", mimeType: "image/svg+xml", buffer: SVG });
    const theirs = await eventually(async () => {
      const m = last(await inboxMessages(s));
      assert.equal(m.links.length, 1, JSON.stringify(m));
      assert.match(m.links[0].text, new RegExp(`logo\\.svg · ${SVG.length} B`));
      return m;
    });
    assert.equal(theirs.imgs.length, 0, "no <img> for an SVG in the inbox");
    const mine = await eventually(async () => {
      const m = last(await widgetMessages(v));
      assert.ok(m.links.length === 1 && m.links[0].href.includes("sig="), JSON.stringify(m));
      return m;
    });
    assert.equal(mine.imgs.length, 0, "no <img> for an SVG in the widget");
    const res = await fetch(mine.links[0].href, { signal: AbortSignal.timeout(5000) });
    assert.match(res.headers.get("content-disposition") || "", /^attachment/);
  });

  it("a file named like markup shows its name as text on both sides", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    await widgetInput(v).setInputFiles({ name: HOSTILE, mimeType: "text/plain", buffer: Buffer.from("hello\n") });
    const theirs = await eventually(async () => {
      const m = last(await inboxMessages(s));
      assert.equal(m.links.length, 1, JSON.stringify(m));
      assert.equal(m.links[0].text, `${HOSTILE} · 6 B`);
      return m;
    });
    assert.equal(theirs.imgs.length, 0, "no <img> element in the inbox");
    const mine = await eventually(async () => {
      const m = last(await widgetMessages(v));
      assert.equal(m.links.length, 1, JSON.stringify(m));
      assert.equal(m.links[0].text, `${HOSTILE} · 6 B`);
      return m;
    });
    assert.equal(mine.imgs.length, 0, "no <img> element in the widget");
    // The thread list's preview shows the name as text too.
    assert.equal(await s.locator(tid("thread-preview")).first().textContent(), `File: ${HOSTILE}`);
    await sleep(300);
    assert.deepEqual(dialogs, []);
  });

  it("a file over the limit is refused in the inbox (by the server) with an error line; nothing is sent", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    // A fresh inbox page has not learned the limit yet: the server refuses the upload.
    await s.reload();
    await s.fill(tid("login-secret"), PASSWORD);
    await s.click(tid("login-submit"));
    await s.waitForFunction(() => document.body.dataset.state === "live");
    await s.locator('[data-testid="thread-list"] [role="option"]').first().click();
    await eventually(async () => assert.ok((await inboxMessages(s)).length > 0));
    const inboxBefore = (await inboxMessages(s)).length;
    const widgetBefore = (await widgetMessages(v)).length;
    await s.setInputFiles(tid("file-input"), { name: "huge.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(MAX_BYTES + 1) });
    await eventually(async () => assert.match(await s.locator(tid("upload-error")).textContent(), new RegExp(`huge\\.bin is too big: files can have at most ${MAX_KB}\\.`)));
    assert.equal(await s.locator(tid("upload-error")).getAttribute("role"), "alert");
    await screenshot(s, "files-inbox-error.png");
    await sleep(800);
    assert.equal((await inboxMessages(s)).length, inboxBefore, "nothing sent from the inbox");
    assert.equal((await widgetMessages(v)).length, widgetBefore, "nothing reached the visitor");
  });

  it("a file over the limit is refused in the widget (before uploading) with an error line; nothing is sent", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    const inboxBefore = (await inboxMessages(s)).length;
    const widgetBefore = (await widgetMessages(v)).length;
    const uploads = [];
    v.on("request", (r) => r.url().includes("/api/chat/files/") && r.method() === "PUT" && uploads.push(r.url()));
    await widgetInput(v).setInputFiles({ name: "huge.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(MAX_BYTES + 1) });
    const err = widgetError(v);
    await eventually(async () => assert.match(await err.textContent(), new RegExp(`huge\\.bin is too big: files can have at most ${MAX_KB}\\.`)));
    assert.equal(await err.isVisible(), true);
    await screenshot(v, "files-widget-error.png");
    await sleep(800);
    assert.deepEqual(uploads, [], "no bytes were sent");
    assert.equal((await widgetMessages(v)).length, widgetBefore, "nothing sent from the widget");
    assert.equal((await inboxMessages(s)).length, inboxBefore, "nothing reached staff");
    // The next good file clears the error.
    await widgetInput(v).setInputFiles({ name: "small.txt", mimeType: "text/plain", buffer: Buffer.from("ok") });
    await eventually(async () => assert.equal(last(await widgetMessages(v)).links[0]?.text, "small.txt · 2 B"));
    assert.equal(await err.textContent(), "");
  });

  it("an upload the network loses says so; nothing is sent", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const widgetBefore = (await widgetMessages(v)).length;
    const lose = (route) => (route.request().method() === "PUT" ? route.abort("connectionreset") : route.continue());
    await v.route(`${BASE}/api/chat/files/**`, lose);
    await widgetInput(v).setInputFiles({ name: "lost.txt", mimeType: "text/plain", buffer: Buffer.from("lost") });
    await eventually(async () => assert.equal(await widgetError(v).textContent(), "Not sent: lost.txt: no connection to the server. Check your network and try again."));
    await v.unroute(`${BASE}/api/chat/files/**`, lose);
    assert.equal((await widgetMessages(v)).length, widgetBefore);
    // The same in the inbox.
    const s = staff.page;
    const inboxBefore = (await inboxMessages(s)).length;
    await s.route(`${BASE}/api/chat/files/**`, lose);
    await s.setInputFiles(tid("file-input"), { name: "lost.txt", mimeType: "text/plain", buffer: Buffer.from("lost") });
    await eventually(async () => assert.equal(await s.locator(tid("upload-error")).textContent(), "Not sent: lost.txt: no connection to the server. Check the network and try again."));
    await s.unroute(`${BASE}/api/chat/files/**`, lose);
    assert.equal((await inboxMessages(s)).length, inboxBefore);
  });

  it("a visitor past the hourly upload limit is told to wait", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    let refused = "";
    for (let i = 0; i <= UPLOADS_PER_HOUR && !refused; i++) {
      const before = (await widgetMessages(v)).length;
      await widgetInput(v).setInputFiles({ name: `n${i}.txt`, mimeType: "text/plain", buffer: Buffer.from(`note ${i}`) });
      await eventually(async () => {
        const e = await widgetError(v).textContent();
        refused = e.includes(`n${i}.txt`) ? e : ""; // (an earlier file's error may still show)
        assert.ok(refused || (await widgetMessages(v)).length > before, "sent or refused");
      });
    }
    assert.match(refused, /^Not sent: n\d+\.txt: too many files; retry in \d+ (s|min)\.$/);
  });

  it("staff uploading past the storage quota are told it is full", { timeout: TEST_TIMEOUT }, async () => {
    const s = staff.page;
    let refused = "";
    for (let i = 0; i < 8 && !refused; i++) {
      const before = (await inboxMessages(s)).length;
      await s.setInputFiles(tid("file-input"), { name: `part${i}.bin`, mimeType: "application/octet-stream", buffer: Buffer.alloc(MAX_BYTES - 1, i) });
      await eventually(async () => {
        const e = await s.locator(tid("upload-error")).textContent();
        refused = e.includes(`part${i}.bin`) ? e : "";
        assert.ok(refused || (await inboxMessages(s)).length > before, "sent or refused");
      });
    }
    assert.match(refused, /^Not sent: part\d\.bin: the chat's file storage is full\.$/);
    // A new visitor (not rate-limited) is told the same in the widget.
    const other = await newPage({ width: 1100, height: 800 });
    try {
      await other.page.goto(`http://127.0.0.1:${demo.address().port}/`);
      await other.page.locator("switchboard-chat .bubble").click();
      await eventually(async () => assert.equal(await other.page.locator("switchboard-chat textarea[aria-label=Message]").isVisible(), true));
      await widgetInput(other.page).setInputFiles({ name: "photo.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(MAX_BYTES - 1, 7) });
      await eventually(async () => assert.equal(await widgetError(other.page).textContent(), "Not sent: photo.bin: the chat's file storage is full."));
      assert.equal((await widgetMessages(other.page)).length, 0, "nothing sent");
    } finally {
      await other.context.close();
    }
  });

  it("fits a 360 px wide phone", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    await v.setViewportSize({ width: 360, height: 720 });
    await sleep(200);
    const box = await v.evaluate(() => {
      const r = document.querySelector("switchboard-chat").shadowRoot;
      const img = [...r.querySelectorAll(".list .m img")][0];
      const panel = r.querySelector(".panel").getBoundingClientRect();
      const clip = r.querySelector(".att").getBoundingClientRect();
      return { panel: panel.width, img: img.getBoundingClientRect().right, clip: clip.right };
    });
    assert.equal(box.panel, 360);
    assert.ok(box.img <= 360 && box.clip <= 360, JSON.stringify(box));
    await screenshot(v, "files-widget-phone.png");
    await v.setViewportSize({ width: 1100, height: 800 });
  });

  it("a link older than 50 minutes is renewed with file_url before it opens", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    // The page's clock jumps 55 minutes ahead (the links were signed "long ago").
    await v.clock.install();
    await v.clock.fastForward("55:00");
    const link = v.locator("switchboard-chat .list .m.them a", { hasText: "report.pdf" });
    const old = await link.getAttribute("href");
    const asked = [];
    const record = (r) => asked.push(r.url());
    v.context().on("request", record);
    const [tab] = await Promise.all([v.context().waitForEvent("page"), link.click()]);
    await eventually(async () => assert.notEqual(await link.getAttribute("href"), old, "a fresh link"));
    const fresh = await link.getAttribute("href");
    assert.match(fresh, /\/api\/chat\/files\/\d+\/\d+\?expires=\d+&sig=/);
    // The new tab asks for the fresh link (and, the file being an attachment, downloads it).
    await eventually(async () => assert.ok(asked.includes(fresh), JSON.stringify(asked)));
    assert.ok(!asked.includes(old), "the old link was not followed");
    v.context().off("request", record);
    await tab.close();
    const res = await fetch(fresh, { signal: AbortSignal.timeout(5000) });
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(PDF));
  });

  it("raised no page errors and no dialogs", () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(dialogs, []);
  });
});
