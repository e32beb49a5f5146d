// Real-browser end-to-end test of calls from a chat (web/call.js in the widget and the inbox).
//
// Two browser contexts of one headless Debian chromium with a fake camera and microphone
// (--use-fake-ui-for-media-stream --use-fake-device-for-media-stream) and mDNS hiding of local
// addresses off (so host candidates on loopback connect): a visitor on a demo website (second
// origin) embedding the widget, and a staff member in the inbox (/inbox). They call each other
// from the chat: accepted calls must show the other side's video (videoWidth > 0) with
// framesDecoded growing (getStats); then a declined call, a ring that times out, hang-ups from
// either side, and the history lines each side shows.
//
//   SWITCHBOARD_URL=http://127.0.0.1:8080 STAFF_AUTHID=ann STAFF_PASSWORD=… RING_TIMEOUT_S=5 \
//     [SCREENSHOT_DIR=dir] node --test call.test.mjs
//
// The server must run with a short ring timeout (--chat-ring-timeout); the staff user must
// exist with a WAMP-CRA key. tests/interop/test_browser_call.py sets all of this up.
// Screenshots: call-widget-incoming.png, call-inbox-ringing.png, call-widget.png,
// call-inbox.png, call-widget-phone.png, call-widget-denied.png, call-widget-history.png,
// call-inbox-history.png.

import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const BASE = (process.env.SWITCHBOARD_URL || "").replace(/\/+$/, "");
const STAFF = process.env.STAFF_AUTHID || "";
const PASSWORD = process.env.STAFF_PASSWORD || "";
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || "";
const RING_TIMEOUT_MS = Number(process.env.RING_TIMEOUT_S || "5") * 1000;
const STEP_TIMEOUT = 20_000;
const TEST_TIMEOUT = 90_000;

if (!BASE) throw new Error("SWITCHBOARD_URL is not set (e.g. SWITCHBOARD_URL=http://127.0.0.1:8080)");
if (!STAFF || !PASSWORD) throw new Error("STAFF_AUTHID and STAFF_PASSWORD must name a staff user with --wampcra");
if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: install Debian's chromium (tests/browser/install-chromium.sh)`);

const tid = (id) => `[data-testid="${id}"]`;

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
      if (new URL(req.url, "http://x").pathname === "/favicon.ico") {
        res.writeHead(204);
        res.end();
      } else if (new URL(req.url, "http://x").pathname === "/") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
        res.end(demoPage());
      } else {
        res.writeHead(404);
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

// Installed before any script of the page: keeps each call controller (the test hook of
// web/call.js), to read its RTCPeerConnection's stats.
function recordCalls() {
  window.__switchboardCallDebug = true;
  window.__calls = [];
  window.__switchboardCallHook = (c) => window.__calls.push(c);
}

/** What a page's current call shows, and what its peer connection receives. */
function callInfo(page, root) {
  return page.evaluate(async (root) => {
    const scope = root === "widget" ? document.querySelector("switchboard-chat")?.shadowRoot : document;
    const view = scope && [...scope.querySelectorAll('[data-testid="call"]')].pop();
    const c = window.__calls[window.__calls.length - 1];
    let frames = 0;
    let pair = null;
    if (c && c.pc) {
      const stats = await c.pc.getStats();
      stats.forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded || 0;
        if (r.type === "transport" && r.selectedCandidatePairId) pair = r.selectedCandidatePairId;
      });
    }
    const remote = view && view.querySelector('[data-testid="call-remote"]');
    const local = view && view.querySelector('[data-testid="call-local"]');
    return {
      visible: !!view && !view.hidden,
      state: view ? view.dataset.state : null,
      status: view ? view.querySelector('[data-testid="call-status"]').textContent : "",
      stats: view ? view.querySelector('[data-testid="call-stats"]').textContent : "",
      remoteWidth: remote ? remote.videoWidth : 0,
      localWidth: local ? local.videoWidth : 0,
      frames,
      pair,
      ice: c && c.pc ? c.pc.iceConnectionState : null,
      localAttrs: local ? ["playsinline", "autoplay", "muted"].filter((a) => local.hasAttribute(a)) : [],
    };
  }, root);
}

/** The current connection's local ICE username fragment and signalling state (an ICE restart
 *  that went through the signalling changes the first and ends "stable"). */
function negotiation(page) {
  return page.evaluate(() => {
    const c = window.__calls[window.__calls.length - 1];
    const sdp = (c && c.pc && c.pc.localDescription && c.pc.localDescription.sdp) || "";
    return { ufrag: (sdp.match(/a=ice-ufrag:(\S+)/) || [])[1] || null, signaling: c && c.pc ? c.pc.signalingState : null };
  });
}

/** The call lines a side shows in its history, oldest first. */
function widgetCallLines(page) {
  return page.evaluate(() =>
    [...document.querySelector("switchboard-chat").shadowRoot.querySelectorAll('.list .m[data-kind="call"] .b')].map((b) => b.textContent),
  );
}
function inboxCallLines(page) {
  return page.evaluate(() => [...document.querySelectorAll('.message[data-kind="call"] [data-testid="message-text"]')].map((b) => b.textContent));
}

/** Media flows both ways on a page: the remote video has a size and frames keep decoding. */
async function assertMediaFlows(page, root) {
  const first = await eventually(async () => {
    const i = await callInfo(page, root);
    assert.equal(i.state, "active", JSON.stringify(i));
    assert.ok(["connected", "completed"].includes(i.ice), `ICE ${i.ice}`);
    assert.ok(i.remoteWidth > 0, `remote videoWidth ${i.remoteWidth}`);
    assert.ok(i.frames > 0, `framesDecoded ${i.frames}`);
    return i;
  });
  await sleep(1500);
  const later = await callInfo(page, root);
  assert.ok(later.frames > first.frames, `framesDecoded grows on ${root}: ${first.frames} → ${later.frames}`);
  return later;
}

let browser;
let demo;
let visitor; // { context, page, errors }
let staff;

async function newPage(viewport) {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(STEP_TIMEOUT);
  await context.addInitScript(recordCalls);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.type() === "warning" || msg.type() === "error") console.log(`# ${viewport.width}px page ${msg.type()}: ${msg.text()}`);
  });
  return { context, page, errors };
}

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
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      "--autoplay-policy=no-user-gesture-required",
      "--auto-select-desktop-capture-source=Entire screen",
    ],
  });
  demo = await startDemoServer();
  visitor = await newPage({ width: 1100, height: 800 });
  staff = await newPage({ width: 1280, height: 860 });
  await visitor.context.grantPermissions(["camera", "microphone"]);
  await staff.context.grantPermissions(["camera", "microphone"]);

  // Staff log in (so the widget shows the message box), the visitor writes, staff open it.
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
  await v.goto(`http://127.0.0.1:${demo.address().port}/`);
  await v.locator("switchboard-chat .bubble").click();
  await v.locator("switchboard-chat textarea[aria-label=Message]").fill("Can we talk face to face?");
  await v.locator("switchboard-chat textarea[aria-label=Message]").press("Enter");
  await eventually(async () => assert.equal(await v.locator('switchboard-chat .list .m.me[data-status="sent"]').count(), 1));

  await s.locator('[data-testid="thread-list"] [role="option"]').first().click();
  await eventually(async () => assert.match(await s.locator(tid("live-log")).textContent() + (await s.locator(tid("history")).textContent()), /face to face/));
  // The widget shows the call buttons once staff are online.
  await eventually(async () => assert.equal(await v.locator('switchboard-chat button[aria-label="Video call"]').isVisible(), true));
});

after(async () => {
  await browser?.close();
  demo?.close();
});

describe("calls from a chat", { timeout: TEST_TIMEOUT * 5 }, () => {
  it("the visitor calls with video, staff accept: video both ways, then the visitor hangs up", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    await v.locator('switchboard-chat button[aria-label="Video call"]').click();
    // Staff are rung in the inbox (the dock), with Accept and Decline.
    const dock = s.locator(tid("call-dock"));
    await eventually(async () => {
      const i = await callInfo(s, "inbox");
      assert.equal(i.state, "incoming", JSON.stringify(i));
      assert.match(i.status, /Incoming video call/);
    });
    assert.equal(await dock.locator(tid("call-accept")).isVisible(), true);
    await screenshot(s, "call-inbox-ringing.png");
    const out = await callInfo(v, "widget");
    assert.equal(out.state, "outgoing");
    assert.match(out.status, /Calling/);
    assert.deepEqual(out.localAttrs, ["playsinline", "autoplay", "muted"], "the local preview plays inline, muted (Safari)");

    await dock.locator(tid("call-accept")).click();
    const vi = await assertMediaFlows(v, "widget");
    const si = await assertMediaFlows(s, "inbox");
    assert.ok(vi.localWidth > 0 && si.localWidth > 0, "local previews show the camera");
    // The quality line from getStats (RTT, loss, bitrate) and the timer.
    await eventually(async () => {
      const i = await callInfo(s, "inbox");
      assert.match(i.stats, /loss \d+\.\d% · [\d.]+ (k|M)bit\/s/, i.stats);
    });
    assert.match(await s.locator(`${tid("call-dock")} .sbc-time`).textContent(), /^\d\d:\d\d$/);
    assert.match(await s.locator(`${tid("call-dock")} .sbc-q`).getAttribute("data-level"), /good|fair|poor/);

    // Mute and camera off are toggles.
    const mute = v.locator(`switchboard-chat ${tid("call-mute")}`);
    await mute.click();
    assert.equal(await mute.getAttribute("aria-pressed"), "true");
    assert.equal(await mute.textContent(), "Unmute");
    await mute.click();
    assert.equal(await mute.getAttribute("aria-pressed"), "false");
    // Device selection lists the fake devices.
    await s.locator(`${tid("call-dock")} ${tid("call-devices")}`).click();
    await eventually(async () => assert.ok((await s.locator(`${tid("call-dock")} ${tid("call-camera-select")} option`).count()) >= 1));
    await s.locator(`${tid("call-dock")} ${tid("call-devices")}`).click();
    await screenshot(v, "call-widget.png");

    // Screen sharing from the inbox replaces the camera track; the visitor keeps receiving.
    const share = s.locator(`${tid("call-dock")} ${tid("call-share")}`);
    assert.equal(await share.isVisible(), true);
    assert.equal(await v.locator(`switchboard-chat ${tid("call-share")}`).isVisible(), false, "the widget has no screen sharing");
    await share.click();
    await eventually(async () => assert.equal(await share.getAttribute("aria-pressed"), "true"));
    await assertMediaFlows(v, "widget");
    await screenshot(s, "call-inbox.png");
    await share.click();
    await eventually(async () => assert.equal(await share.getAttribute("aria-pressed"), "false"));

    await sleep(1000);
    await v.locator(`switchboard-chat ${tid("call-hangup")}`).click();
    await eventually(async () => {
      const i = await callInfo(s, "inbox");
      assert.ok(i.state === "ended" || !i.visible, JSON.stringify(i));
    });
    await eventually(async () => {
      const lines = await widgetCallLines(v);
      assert.match(lines[lines.length - 1] || "", /^Video call, \d+ s$/);
    });
    await eventually(async () => {
      const lines = await inboxCallLines(s);
      assert.match(lines[lines.length - 1] || "", /^Video call, \d+ s$/);
    });
    await eventually(async () => assert.equal((await callInfo(v, "widget")).visible, false), 8000);
  });

  it("staff call the visitor; the visitor answers; staff hang up", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    await eventually(async () => assert.equal((await callInfo(s, "inbox")).visible, false), 8000);
    await s.click(tid("call-video-start"));
    await eventually(async () => {
      const i = await callInfo(v, "widget");
      assert.equal(i.state, "incoming", JSON.stringify(i));
      assert.match(i.status, /Incoming video call/);
    });
    await screenshot(v, "call-widget-incoming.png");
    await v.locator(`switchboard-chat ${tid("call-accept")}`).click();
    await assertMediaFlows(v, "widget");
    await assertMediaFlows(s, "inbox");
    await s.locator(`${tid("call-dock")} ${tid("call-hangup")}`).click();
    await eventually(async () => {
      const i = await callInfo(v, "widget");
      assert.ok(i.state === "ended" || !i.visible, JSON.stringify(i));
    });
    await eventually(async () => {
      const lines = await widgetCallLines(v);
      assert.equal(lines.length, 2);
      assert.match(lines[1], /^Video call, \d+ s$/);
    });
  });

  it("the visitor declines an audio call from staff", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    await eventually(async () => assert.equal((await callInfo(s, "inbox")).visible, false), 8000);
    await eventually(async () => assert.equal((await callInfo(v, "widget")).visible, false), 8000);
    await s.click(tid("call-audio-start"));
    await eventually(async () => assert.match((await callInfo(v, "widget")).status, /Incoming audio call/));
    assert.equal(await v.locator(`switchboard-chat ${tid("call-accept-audio")}`).isVisible(), false, "an audio call has no audio-only choice");
    await v.locator(`switchboard-chat ${tid("call-decline")}`).click();
    await eventually(async () => {
      const i = await callInfo(s, "inbox");
      assert.equal(i.state, "ended", JSON.stringify(i));
      assert.match(i.status, /Call declined/);
    });
    await eventually(async () => assert.equal((await widgetCallLines(v)).pop(), "Call declined"));
    await eventually(async () => assert.equal((await inboxCallLines(s)).pop(), "Call declined"));
  });

  it("a ring nobody answers times out as a missed call", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    await eventually(async () => assert.equal((await callInfo(s, "inbox")).visible, false), 8000);
    await eventually(async () => assert.equal((await callInfo(v, "widget")).visible, false), 8000);
    await v.locator('switchboard-chat button[aria-label="Audio call"]').click();
    await eventually(async () => assert.equal((await callInfo(s, "inbox")).state, "incoming"));
    const rang = Date.now();
    await eventually(async () => {
      const i = await callInfo(v, "widget");
      assert.equal(i.state, "ended", JSON.stringify(i));
      assert.match(i.status, /No answer/);
    }, RING_TIMEOUT_MS + STEP_TIMEOUT);
    assert.ok(Date.now() - rang > RING_TIMEOUT_MS / 2, "it rang for the ring timeout");
    await eventually(async () => assert.notEqual((await callInfo(s, "inbox")).state, "incoming"));
    await eventually(async () => assert.equal((await widgetCallLines(v)).pop(), "Missed call"));
    await eventually(async () => assert.equal((await inboxCallLines(s)).pop(), "Missed call"));
    // The lines are call lines, apart from the conversation (and never markup).
    const lines = await widgetCallLines(v);
    assert.equal(lines.length, 4, JSON.stringify(lines));
    await eventually(async () => assert.equal((await callInfo(v, "widget")).visible, false), 8000);
    await eventually(async () => assert.equal((await callInfo(s, "inbox")).visible, false), 8000);
    await screenshot(v, "call-widget-history.png");
    await screenshot(s, "call-inbox-history.png");
    assert.equal(visitor.errors.length, 0, visitor.errors.join("\n"));
    assert.equal(staff.errors.length, 0, staff.errors.join("\n"));
  });

  it("on a phone-sized screen the call fills the widget", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    await v.setViewportSize({ width: 360, height: 740 });
    await eventually(async () => assert.equal((await callInfo(v, "widget")).visible, false), 8000);
    await s.click(tid("call-video-start"));
    await eventually(async () => assert.equal((await callInfo(v, "widget")).state, "incoming"));
    await v.locator(`switchboard-chat ${tid("call-accept")}`).click();
    await assertMediaFlows(v, "widget");
    const box = await v.locator(`switchboard-chat ${tid("call")}`).boundingBox();
    assert.ok(box && box.width >= 340, `the call is as wide as the screen: ${JSON.stringify(box)}`);
    await screenshot(v, "call-widget-phone.png");
    await v.locator(`switchboard-chat ${tid("call-hangup")}`).click();
    await eventually(async () => assert.equal((await widgetCallLines(v)).length, 5));
  });

  it("a page reload, and a lost connection, resume the call instead of dropping it", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    await v.setViewportSize({ width: 1100, height: 800 });
    await eventually(async () => assert.equal((await callInfo(s, "inbox")).visible, false), 8000);
    await eventually(async () => assert.equal((await callInfo(v, "widget")).visible, false), 8000);
    await v.locator('switchboard-chat button[aria-label="Video call"]').click();
    await eventually(async () => assert.equal((await callInfo(s, "inbox")).state, "incoming"));
    await s.locator(`${tid("call-dock")} ${tid("call-accept")}`).click();
    await assertMediaFlows(v, "widget");
    await assertMediaFlows(s, "inbox");

    // Reloaded: the widget finds the call (call_state), resumes it with fresh media, and staff
    // make a new connection for it.
    await v.reload();
    await assertMediaFlows(v, "widget");
    await assertMediaFlows(s, "inbox");

    // The browser goes offline for a moment: the widget's session drops and comes back; the
    // call resumes on the new session with an ICE restart (media keeps flowing).
    const beforeV = await negotiation(v);
    await visitor.context.setOffline(true);
    await eventually(async () => assert.notEqual(await v.evaluate(() => document.querySelector("switchboard-chat").shadowRoot.querySelector(".r").dataset.conn), "online"));
    await visitor.context.setOffline(false);
    await eventually(async () => assert.equal(await v.evaluate(() => document.querySelector("switchboard-chat").shadowRoot.querySelector(".r").dataset.conn), "online"));
    await sleep(1000);
    await assertMediaFlows(v, "widget");
    await assertMediaFlows(s, "inbox");
    await eventually(async () => {
      const now = await negotiation(v);
      assert.ok(now.ufrag && now.ufrag !== beforeV.ufrag && now.signaling === "stable", `ICE restarted: ${JSON.stringify([beforeV, now])}`);
    });

    // The same for the inbox: offline, back, reconnected, and the call still there.
    const beforeS = await negotiation(s);
    await staff.context.setOffline(true);
    await eventually(async () => assert.notEqual(await s.evaluate(() => document.body.dataset.state), "live"));
    await staff.context.setOffline(false);
    await eventually(async () => assert.equal(await s.evaluate(() => document.body.dataset.state), "live"));
    await sleep(1000);
    await assertMediaFlows(s, "inbox");
    await assertMediaFlows(v, "widget");
    assert.equal((await callInfo(s, "inbox")).state, "active");
    await eventually(async () => {
      const now = await negotiation(s);
      assert.ok(now.ufrag && now.ufrag !== beforeS.ufrag && now.signaling === "stable", `ICE restarted: ${JSON.stringify([beforeS, now])}`);
    });

    await s.locator(`${tid("call-dock")} ${tid("call-hangup")}`).click();
    await eventually(async () => {
      const lines = await widgetCallLines(v);
      assert.equal(lines.length, 6, JSON.stringify(lines));
      assert.match(lines[5], /^Video call, \d+ s$/);
    });
    assert.equal(visitor.errors.length, 0, visitor.errors.join("\n"));
    assert.equal(staff.errors.length, 0, staff.errors.join("\n"));
  });

  it("a blocked camera and microphone get guidance; no camera falls back to an audio call", { timeout: TEST_TIMEOUT }, async () => {
    const s = staff.page;
    await eventually(async () => assert.equal((await callInfo(s, "inbox")).visible, false), 8000);
    async function visitorWith(failure) {
      const p = await newPage({ width: 1000, height: 760 });
      await p.context.addInitScript((failure) => {
        const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
        navigator.mediaDevices.getUserMedia = (c) => {
          if (failure === "denied") return Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
          if (c && c.video) return Promise.reject(new DOMException("Requested device not found", "NotFoundError"));
          return real(c);
        };
      }, failure);
      await p.page.goto(`http://127.0.0.1:${demo.address().port}/`);
      await p.page.locator("switchboard-chat .bubble").click();
      await eventually(async () => assert.equal(await p.page.locator('switchboard-chat button[aria-label="Video call"]').isVisible(), true));
      return p;
    }

    const denied = await visitorWith("denied");
    await denied.page.locator('switchboard-chat button[aria-label="Video call"]').click();
    await eventually(async () => {
      const i = await callInfo(denied.page, "widget");
      assert.equal(i.state, "ended", JSON.stringify(i));
      assert.match(i.status, /Camera and microphone are blocked for this site\./);
      assert.match(i.status, /Allow them in your browser/);
    });
    await screenshot(denied.page, "call-widget-denied.png");
    await sleep(500);
    assert.equal((await callInfo(s, "inbox")).visible, false, "nobody was rung");
    await denied.page.locator(`switchboard-chat ${tid("call-close")}`).click();
    assert.equal((await callInfo(denied.page, "widget")).visible, false);
    await denied.context.close();

    const noCamera = await visitorWith("no-camera");
    await noCamera.page.locator('switchboard-chat button[aria-label="Video call"]').click();
    await eventually(async () => {
      const i = await callInfo(noCamera.page, "widget");
      assert.equal(i.state, "outgoing", JSON.stringify(i));
      assert.match(i.status, /No camera found: this is an audio call\./);
    });
    await eventually(async () => assert.match((await callInfo(s, "inbox")).status, /Incoming audio call/));
    await s.locator(`${tid("call-dock")} ${tid("call-decline")}`).click();
    await eventually(async () => assert.match((await callInfo(noCamera.page, "widget")).status, /Call declined/));
    await eventually(async () => assert.deepEqual(await widgetCallLines(noCamera.page), ["Call declined"]));
    assert.equal(noCamera.errors.length, 0, noCamera.errors.join("\n"));
    await noCamera.context.close();
  });
});
