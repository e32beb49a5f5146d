// Real-browser end-to-end test of a call whose media goes through Switchboard's own TURN relay.
//
// The server runs the built-in relay on loopback (--turn --turn-listen 127.0.0.1:0
// --turn-allow-loopback-peers), so ice_servers() hands the browsers stun:/turn: URIs of
// 127.0.0.1 with REST credentials. Both pages are loaded with ?sb_ice_policy=relay (web/call.js
// then sets iceTransportPolicy 'relay': no host or server-reflexive candidate is gathered), so
// the only way the two browser contexts can reach each other is relay ↔ relay through
// Switchboard. A visitor (the widget on a demo page of a second origin) calls staff (the inbox)
// with video, staff accept; then staff call the visitor back. Each time, on both sides: the
// remote <video> has a videoWidth, framesDecoded grows, and the selected candidate pair
// (getStats) has a local candidate of type relay whose address is the loopback relay, and a
// remote candidate that is the other side's relayed address. And the server's /metrics show
// switchboard_turn_relayed_bytes_total / _packets_total growing in both directions.
//
//   SWITCHBOARD_URL=http://127.0.0.1:8080 STAFF_AUTHID=ann STAFF_PASSWORD=… \
//     [SCREENSHOT_DIR=dir] node --test call-relay.test.mjs
//
// tests/interop/test_browser_call_relay.py starts the server and the staff user.
// Screenshot: call-relay.png (the inbox during the relayed call).

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

/** The relay's counters from /metrics: {bytes: {to_peer, to_client}, packets: {…}}. */
async function turnMetrics() {
  const res = await fetch(`${BASE}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  const out = { bytes: { to_peer: 0, to_client: 0 }, packets: { to_peer: 0, to_client: 0 }, allocations: 0 };
  for (const line of text.split("\n")) {
    const m = line.match(/^switchboard_turn_relayed_(bytes|packets)_total\{[^}]*direction="(to_peer|to_client)"[^}]*\}\s+(\S+)/);
    if (m) out[m[1]][m[2]] += Number(m[3]);
    const a = line.match(/^switchboard_turn_allocations_created_total(?:\{[^}]*\})?\s+(\S+)/);
    if (a) out.allocations += Number(a[1]);
  }
  return out;
}

// Installed before any script of the page: keeps each call controller (the test hook of
// web/call.js), to read its RTCPeerConnection's configuration and stats.
function recordCalls() {
  window.__switchboardCallDebug = true;
  window.__calls = [];
  window.__switchboardCallHook = (c) => window.__calls.push(c);
}

/** What a page's current call shows, what its peer connection receives, and over which
 *  candidate pair. */
function callInfo(page, root) {
  return page.evaluate(async (root) => {
    const scope = root === "widget" ? document.querySelector("switchboard-chat")?.shadowRoot : document;
    const view = scope && [...scope.querySelectorAll('[data-testid="call"]')].pop();
    const c = window.__calls[window.__calls.length - 1];
    let frames = 0;
    let pair = null;
    let local = null;
    let remote = null;
    let config = null;
    const candidates = [];
    if (c && c.pc) {
      const cfg = c.pc.getConfiguration();
      config = {
        policy: cfg.iceTransportPolicy,
        urls: (cfg.iceServers || []).flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls])),
      };
      const stats = await c.pc.getStats();
      const byId = new Map();
      let selectedId = null;
      stats.forEach((r) => {
        byId.set(r.id, r);
        if (r.type === "inbound-rtp" && r.kind === "video") frames += r.framesDecoded || 0;
        if (r.type === "transport" && r.selectedCandidatePairId) selectedId = r.selectedCandidatePairId;
        if (r.type === "local-candidate") candidates.push(r.candidateType);
      });
      let p = selectedId && byId.get(selectedId);
      if (!p) stats.forEach((r) => {
        if (!p && r.type === "candidate-pair" && (r.selected || r.nominated) && r.state === "succeeded") p = r;
      });
      if (p) {
        pair = { id: p.id, state: p.state, nominated: p.nominated, bytesSent: p.bytesSent, bytesReceived: p.bytesReceived };
        const l = byId.get(p.localCandidateId);
        const r = byId.get(p.remoteCandidateId);
        if (l) local = { type: l.candidateType, address: l.address, port: l.port, relayProtocol: l.relayProtocol, url: l.url };
        if (r) remote = { type: r.candidateType, address: r.address, port: r.port };
      }
    }
    const rv = view && view.querySelector('[data-testid="call-remote"]');
    return {
      visible: !!view && !view.hidden,
      state: view ? view.dataset.state : null,
      status: view ? view.querySelector('[data-testid="call-status"]').textContent : "",
      remoteWidth: rv ? rv.videoWidth : 0,
      frames,
      ice: c && c.pc ? c.pc.iceConnectionState : null,
      config,
      candidates,
      pair,
      local,
      remote,
    };
  }, root);
}

/** Media flows through the relay on a page: the remote video has a size, frames keep decoding,
 *  and the selected pair's local candidate is a relayed one on Switchboard's loopback relay. */
async function assertRelayedMedia(page, root) {
  const first = await eventually(async () => {
    const i = await callInfo(page, root);
    assert.equal(i.state, "active", JSON.stringify(i));
    assert.ok(["connected", "completed"].includes(i.ice), `ICE ${i.ice}`);
    assert.ok(i.remoteWidth > 0, `remote videoWidth ${i.remoteWidth}`);
    assert.ok(i.frames > 0, `framesDecoded ${i.frames}`);
    assert.ok(i.pair && i.local && i.remote, `a selected candidate pair: ${JSON.stringify(i)}`);
    return i;
  });
  // The page asked for relay only, with Switchboard's own relay as the TURN server.
  assert.equal(first.config.policy, "relay", JSON.stringify(first.config));
  assert.ok(first.config.urls.some((u) => /^turn:127\.0\.0\.1:\d+\?transport=udp$/.test(u)), JSON.stringify(first.config));
  assert.ok(first.candidates.length > 0 && first.candidates.every((t) => t === "relay"), `only relay candidates gathered: ${first.candidates}`);
  assert.equal(first.local.type, "relay", `${root}: selected local candidate ${JSON.stringify(first.local)}`);
  assert.equal(first.local.address, "127.0.0.1", `${root}: relayed address on the loopback relay ${JSON.stringify(first.local)}`);
  assert.ok(["relay", "prflx"].includes(first.remote.type), `${root}: selected remote candidate ${JSON.stringify(first.remote)}`);
  await sleep(1500);
  const later = await callInfo(page, root);
  assert.ok(later.frames > first.frames, `framesDecoded grows on ${root}: ${first.frames} → ${later.frames}`);
  assert.equal(later.local?.type, "relay", `${root}: still relayed ${JSON.stringify(later.local)}`);
  console.log(`# ${root}: local ${JSON.stringify(later.local)} remote ${JSON.stringify(later.remote)} frames ${first.frames} → ${later.frames}`);
  return later;
}

/** Each side's remote candidate is the other side's relayed address: the media goes relay to
 *  relay, both allocations on Switchboard. */
function assertRelayToRelay(vi, si) {
  assert.deepEqual(
    [vi.remote.address, vi.remote.port],
    [si.local.address, si.local.port],
    `the visitor sends to staff's relayed address: ${JSON.stringify({ visitor: vi.remote, staff: si.local })}`,
  );
  assert.deepEqual(
    [si.remote.address, si.remote.port],
    [vi.local.address, vi.local.port],
    `staff send to the visitor's relayed address: ${JSON.stringify({ staff: si.remote, visitor: vi.local })}`,
  );
}

/** The relay's counters grew in both directions by a video's worth within a few seconds. */
async function assertRelayCounted(before, label) {
  await eventually(async () => {
    const now = await turnMetrics();
    const grew = (k, d) => now[k][d] - before[k][d];
    // A few seconds of the fake camera's video both ways: far above 50 KB per direction.
    for (const d of ["to_peer", "to_client"]) {
      assert.ok(grew("bytes", d) > 50_000, `${label}: switchboard_turn_relayed_bytes_total{direction=${d}} grew ${grew("bytes", d)}`);
      assert.ok(grew("packets", d) > 100, `${label}: switchboard_turn_relayed_packets_total{direction=${d}} grew ${grew("packets", d)}`);
    }
    assert.ok(now.allocations > before.allocations, `${label}: allocations created ${before.allocations} → ${now.allocations}`);
    console.log(`# ${label}: relayed bytes to_peer +${grew("bytes", "to_peer")}, to_client +${grew("bytes", "to_client")}; packets +${grew("packets", "to_peer")}/+${grew("packets", "to_client")}`);
  });
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
    ],
  });
  demo = await startDemoServer();
  visitor = await newPage({ width: 1100, height: 800 });
  staff = await newPage({ width: 1280, height: 860 });
  await visitor.context.grantPermissions(["camera", "microphone"]);
  await staff.context.grantPermissions(["camera", "microphone"]);

  const s = staff.page;
  await s.goto(`${BASE}/inbox?sb_ice_policy=relay`);
  await s.fill(tid("login-url"), "/ws");
  await s.fill(tid("login-realm"), "realm1");
  await s.selectOption(tid("login-method"), "wampcra");
  await s.fill(tid("login-authid"), STAFF);
  await s.fill(tid("login-secret"), PASSWORD);
  await s.click(tid("login-submit"));
  await s.waitForFunction(() => document.body.dataset.state === "live");

  const v = visitor.page;
  await v.goto(`http://127.0.0.1:${demo.address().port}/?sb_ice_policy=relay`);
  await v.locator("switchboard-chat .bubble").click();
  await v.locator("switchboard-chat textarea[aria-label=Message]").fill("Can we talk, through the relay?");
  await v.locator("switchboard-chat textarea[aria-label=Message]").press("Enter");
  await eventually(async () => assert.equal(await v.locator('switchboard-chat .list .m.me[data-status="sent"]').count(), 1));

  await s.locator('[data-testid="thread-list"] [role="option"]').first().click();
  await eventually(async () => assert.match(await s.locator(tid("live-log")).textContent() + (await s.locator(tid("history")).textContent()), /through the relay/));
  await eventually(async () => assert.equal(await v.locator('switchboard-chat button[aria-label="Video call"]').isVisible(), true));
});

after(async () => {
  await browser?.close();
  demo?.close();
});

describe("a call relayed by Switchboard's TURN relay", { timeout: TEST_TIMEOUT * 3 }, () => {
  it("the visitor calls with video, staff accept: video both ways, relay to relay through Switchboard", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    const before = await turnMetrics();
    await v.locator('switchboard-chat button[aria-label="Video call"]').click();
    await eventually(async () => {
      const i = await callInfo(s, "inbox");
      assert.equal(i.state, "incoming", JSON.stringify(i));
      assert.match(i.status, /Incoming video call/);
    });
    await s.locator(`${tid("call-dock")} ${tid("call-accept")}`).click();

    const vi = await assertRelayedMedia(v, "widget");
    const si = await assertRelayedMedia(s, "inbox");
    assertRelayToRelay(vi, si);
    await assertRelayCounted(before, "visitor → staff call");
    await screenshot(s, "call-relay.png");

    await v.locator(`switchboard-chat ${tid("call-hangup")}`).click();
    await eventually(async () => {
      const i = await callInfo(s, "inbox");
      assert.ok(i.state === "ended" || !i.visible, JSON.stringify(i));
    });
  });

  it("staff call the visitor back; the visitor answers: relayed again", { timeout: TEST_TIMEOUT }, async () => {
    const v = visitor.page;
    const s = staff.page;
    await eventually(async () => assert.equal((await callInfo(s, "inbox")).visible, false), 8000);
    await eventually(async () => assert.equal((await callInfo(v, "widget")).visible, false), 8000);
    const before = await turnMetrics();
    await s.click(tid("call-video-start"));
    await eventually(async () => assert.equal((await callInfo(v, "widget")).state, "incoming"));
    await v.locator(`switchboard-chat ${tid("call-accept")}`).click();

    const vi = await assertRelayedMedia(v, "widget");
    const si = await assertRelayedMedia(s, "inbox");
    assertRelayToRelay(vi, si);
    await assertRelayCounted(before, "staff → visitor call");

    await s.locator(`${tid("call-dock")} ${tid("call-hangup")}`).click();
    await eventually(async () => {
      const i = await callInfo(v, "widget");
      assert.ok(i.state === "ended" || !i.visible, JSON.stringify(i));
    });
    assert.equal(visitor.errors.length, 0, visitor.errors.join("\n"));
    assert.equal(staff.errors.length, 0, staff.errors.join("\n"));
  });
});
