/*! Switchboard calls — audio/video calls from a chat thread, served as /call.js.
 *
 * One classic script shared by the website widget (which loads it only when a call starts or
 * rings) and the staff inbox. It defines window.SwitchboardCall(options) → a call controller
 * for one thread; the page hands it the thread topic's `call` and `signal` events and a way to
 * call the chat service (README "Calls from a chat"):
 *
 *   var c = SwitchboardCall({ mount, styleRoot, rpc, thread, me, polite, peerName,
 *                             screenShare, onState, iceTransportPolicy });
 *   c.start(video) · c.event(kwargs) · c.resume() · c.state · c.destroy()
 *
 * WebRTC with "perfect negotiation" (the polite side — the visitor — rolls back its own offer
 * when both offer at once), trickle ICE, an ICE restart when the connection fails or stays
 * disconnected, and a resume after the page's signalling session reconnects. Nothing from the
 * network is inserted as HTML: names are set with textContent.
 *
 * Test hooks: the page's query parameter `sb_ice_policy=relay` (or the `iceTransportPolicy`
 * option) sets RTCConfiguration.iceTransportPolicy; `window.__switchboardCallHook(controller)`
 * is called with each controller when its RTCPeerConnection exists (controller.pc).
 */
(function () {
  "use strict";
  var W = window;
  var D = document;
  if (W.SwitchboardCall) return;

  var CSS =
    ".sbc{position:absolute;inset:0;z-index:5;display:flex;flex-direction:column;background:#11151b;color:#f3f5f8;font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}" +
    ".sbc [hidden]{display:none!important}" +
    ".sbc-top{display:flex;align-items:center;gap:8px;padding:10px 12px;background:rgba(0,0,0,.35)}" +
    ".sbc-who{flex:1;min-width:0;font-weight:700;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}" +
    ".sbc-time{font-variant-numeric:tabular-nums;opacity:.9}" +
    ".sbc-q{display:inline-flex;align-items:flex-end;gap:2px;height:14px}" +
    ".sbc-q i{display:block;width:4px;background:#59616d;border-radius:1px}" +
    ".sbc-q i:nth-child(1){height:5px}.sbc-q i:nth-child(2){height:9px}.sbc-q i:nth-child(3){height:14px}" +
    ".sbc-q[data-level=good] i{background:#3ccf6e}.sbc-q[data-level=fair] i:nth-child(-n+2){background:#f0b429}.sbc-q[data-level=poor] i:nth-child(1){background:#ef4e4e}" +
    ".sbc-stage{position:relative;flex:1;min-height:0;background:#000;display:flex;align-items:center;justify-content:center}" +
    ".sbc-remote{width:100%;height:100%;object-fit:contain;background:#000}" +
    ".sbc-local{position:absolute;right:10px;bottom:10px;width:30%;max-width:160px;aspect-ratio:4/3;object-fit:cover;border-radius:8px;border:2px solid rgba(255,255,255,.7);background:#222;transform:scaleX(-1)}" +
    ".sbc-local.sbc-screen{transform:none}" +
    ".sbc-msg{position:absolute;left:0;right:0;top:40%;padding:0 18px;text-align:center;font-size:16px;text-shadow:0 1px 3px #000}" +
    ".sbc-msg small{display:block;font-size:13.5px;opacity:.9;margin-top:6px}" +
    ".sbc-stats{padding:4px 12px;font-size:12px;opacity:.85;font-variant-numeric:tabular-nums;min-height:22px}" +
    ".sbc-bar{display:flex;flex-wrap:wrap;gap:8px;justify-content:center;padding:10px}" +
    ".sbc button,.sbc select{font:inherit;color:inherit;border:0;cursor:pointer}" +
    ".sbc-b{min-width:44px;min-height:44px;padding:0 14px;border-radius:22px;background:#2c333d;font-weight:600}" +
    ".sbc-b[aria-pressed=true]{background:#f3f5f8;color:#11151b}" +
    ".sbc-b:focus-visible,.sbc select:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}" +
    ".sbc-end{background:#d93025}.sbc-ok{background:#1e8e3e}" +
    ".sbc-dev{display:flex;flex-wrap:wrap;gap:8px;padding:0 12px 8px}" +
    ".sbc-dev label{display:flex;flex-direction:column;gap:2px;font-size:12px;flex:1;min-width:140px}" +
    ".sbc select{background:#2c333d;border-radius:6px;padding:6px}" +
    "@media (max-width:480px){.sbc-b{padding:0 10px}}";

  var TEST_POLICY = (function () {
    try {
      var p = new URLSearchParams(location.search).get("sb_ice_policy");
      return p === "relay" || p === "all" ? p : null;
    } catch (e) {
      return null;
    }
  })();

  function el(tag, attrs) {
    var e = D.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    for (var i = 2; i < arguments.length; i++) if (arguments[i] != null) e.append(arguments[i]);
    return e;
  }

  /** A ring made with WebAudio (no sound file): two tones, 1 s on, 2 s off. stop() ends it. */
  function ringTone(incoming) {
    var AC = W.AudioContext || W.webkitAudioContext;
    if (!AC) return function () {};
    var ctx;
    try {
      ctx = new AC();
      if (ctx.resume) ctx.resume().catch(function () {});
    } catch (e) {
      return function () {};
    }
    function burst() {
      var t = ctx.currentTime;
      var g = ctx.createGain();
      g.gain.setValueAtTime(0, t);
      g.gain.linearRampToValueAtTime(incoming ? 0.18 : 0.08, t + 0.03);
      g.gain.setValueAtTime(incoming ? 0.18 : 0.08, t + 0.95);
      g.gain.linearRampToValueAtTime(0, t + 1);
      g.connect(ctx.destination);
      (incoming ? [480, 620] : [440, 480]).forEach(function (f) {
        var o = ctx.createOscillator();
        o.frequency.value = f;
        o.connect(g);
        o.start(t);
        o.stop(t + 1);
      });
    }
    burst();
    var timer = setInterval(burst, 3000);
    return function () {
      clearInterval(timer);
      try {
        ctx.close();
      } catch (e) {
        /* already closed */
      }
    };
  }

  /** What to tell a person whose camera or microphone could not be opened. */
  function mediaHelp(e) {
    var n = e && e.name;
    if (n === "NotAllowedError" || n === "SecurityError")
      return ["Camera and microphone are blocked for this site.", "Allow them in your browser (the camera icon in the address bar, or the site settings), then call again."];
    if (n === "NotFoundError" || n === "OverconstrainedError")
      return ["No microphone was found.", "Connect a microphone (or a headset) and call again."];
    if (n === "NotReadableError" || n === "AbortError")
      return ["Your camera or microphone is busy.", "Close other apps or tabs that use it, then call again."];
    if (!navigator.mediaDevices)
      return ["Calls need a secure page.", "Open this page over https to make calls."];
    return ["The call could not start.", (e && e.message) || ""];
  }

  function fmtDuration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var m = Math.floor(s / 60);
    return (m < 10 ? "0" : "") + m + ":" + (s % 60 < 10 ? "0" : "") + (s % 60);
  }

  function SwitchboardCall(o) {
    var rpc = o.rpc;
    var thread = o.thread;
    // A constructed stylesheet where possible: CSSOM is not inline style, so a page whose
    // Content-Security-Policy forbids inline styles (the inbox's does) still styles the call.
    var sr = o.styleRoot;
    if (sr && !sr.__sbc) {
      sr.__sbc = true;
      var target = sr === D.head ? D : sr;
      if ("adoptedStyleSheets" in target && W.CSSStyleSheet && CSSStyleSheet.prototype.replaceSync) {
        var sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
        target.adoptedStyleSheets = target.adoptedStyleSheets.concat([sheet]);
      } else {
        var st = el("style");
        st.textContent = CSS;
        sr.append(st);
      }
    }
    // ---- the view ----
    var who = el("span", { class: "sbc-who" });
    var timeEl = el("span", { class: "sbc-time", "aria-label": "Call time" });
    var quality = el("span", { class: "sbc-q", role: "img", "aria-label": "Connection quality", "data-level": "none" }, el("i"), el("i"), el("i"));
    var remote = el("video", { class: "sbc-remote", autoplay: "", playsinline: "", "data-testid": "call-remote" });
    var local = el("video", { class: "sbc-local", autoplay: "", playsinline: "", muted: "", "data-testid": "call-local" });
    local.muted = true; // the attribute alone is not enough for Safari's autoplay
    var msg = el("p", { class: "sbc-msg", role: "status", "aria-live": "polite", "data-testid": "call-status" });
    var stats = el("div", { class: "sbc-stats", "aria-live": "off", "data-testid": "call-stats" });
    function button(label, cls, testid) {
      return el("button", { type: "button", class: "sbc-b " + (cls || ""), "data-testid": testid }, label);
    }
    var acceptBtn = button("Accept", "sbc-ok", "call-accept");
    var audioBtn = button("Audio only", "sbc-ok", "call-accept-audio");
    var declineBtn = button("Decline", "sbc-end", "call-decline");
    var muteBtn = button("Mute", "", "call-mute");
    var camBtn = button("Camera off", "", "call-camera");
    var shareBtn = button("Share screen", "", "call-share");
    var devBtn = button("Devices", "", "call-devices");
    var hangBtn = button("Hang up", "sbc-end", "call-hangup");
    var closeBtn = button("Close", "", "call-close");
    var camSel = el("select", { "data-testid": "call-camera-select" });
    var micSel = el("select", { "data-testid": "call-mic-select" });
    var devs = el("div", { class: "sbc-dev", hidden: "" }, el("label", {}, "Camera", camSel), el("label", {}, "Microphone", micSel));
    muteBtn.setAttribute("aria-pressed", "false");
    camBtn.setAttribute("aria-pressed", "false");
    shareBtn.setAttribute("aria-pressed", "false");
    devBtn.setAttribute("aria-expanded", "false");
    var view = el(
      "div",
      { class: "sbc", role: "region", "aria-label": "Call", "data-testid": "call", "data-state": "idle" },
      el("div", { class: "sbc-top" }, who, quality, timeEl),
      el("div", { class: "sbc-stage" }, remote, local, msg),
      stats,
      devs,
      el("div", { class: "sbc-bar" }, acceptBtn, audioBtn, declineBtn, muteBtn, camBtn, shareBtn, devBtn, hangBtn, closeBtn)
    );
    view.hidden = true;
    o.mount.append(view);

    // ---- state ----
    var c = {
      state: "idle", // idle | incoming | outgoing | active | ended
      call: null, // the call's id
      video: true,
      pc: null,
      thread: thread,
      view: view,
    };
    var stream = null; // local camera/mic
    var screen = null; // a shared screen's stream
    var stopRing = null;
    var answeredAt = 0;
    var tick = null;
    var statTimer = null;
    var lastStats = null;
    var makingOffer = false;
    var ignoreOffer = false;
    var inbox = Promise.resolve(); // incoming signals, one at a time
    var ready = null; // the peer connection being made (signals wait for it)
    var early = []; // candidates that came before the remote description
    var disconnectTimer = null;

    function setState(s, text, detail) {
      c.state = s;
      view.dataset.state = s;
      if (s !== "ended") delete view.dataset.error;
      view.hidden = s === "idle";
      var ringing = s === "incoming";
      acceptBtn.hidden = declineBtn.hidden = !ringing;
      audioBtn.hidden = !ringing || !c.video;
      var live = s === "active" || s === "outgoing";
      muteBtn.hidden = devBtn.hidden = hangBtn.hidden = !live;
      camBtn.hidden = !live || !hasVideo();
      shareBtn.hidden = !live || !o.screenShare || !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
      closeBtn.hidden = s !== "ended";
      if (s !== "active") devs.hidden = true;
      showMsg(text, detail);
      if (o.onState) o.onState(s, c);
    }
    function showMsg(text, detail) {
      msg.textContent = text || "";
      if (detail) msg.append(el("small", {}, detail));
      msg.hidden = !text;
    }
    function hasVideo() {
      return !!(stream && stream.getVideoTracks().length);
    }
    function ring(incoming) {
      if (stopRing) stopRing();
      stopRing = ringTone(incoming);
    }
    function silence() {
      if (stopRing) stopRing();
      stopRing = null;
    }

    async function getMedia(video) {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) throw Object.assign(new Error("no mediaDevices"), { name: "TypeError" });
      try {
        return await navigator.mediaDevices.getUserMedia({ audio: true, video: video });
      } catch (e) {
        // No camera: go on with audio only.
        if (video && (e.name === "NotFoundError" || e.name === "OverconstrainedError" || e.name === "NotReadableError")) {
          var s = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
          s.noCamera = true;
          return s;
        }
        throw e;
      }
    }
    async function openMedia(video) {
      stream = await getMedia(video);
      local.srcObject = stream;
      local.hidden = !hasVideo();
      return stream;
    }
    /** Camera/mic failed: guidance, and the call is declined or hung up. */
    function mediaFailed(e, asCallee) {
      var h = mediaHelp(e);
      var id = c.call;
      cleanup();
      setState("ended", h[0], h[1]);
      view.dataset.error = (e && e.name) || "Error";
      if (id) rpc(asCallee ? "call_decline" : "call_hangup", [thread, id]).catch(function () {});
    }

    // ---- the peer connection (perfect negotiation) ----
    async function iceServers() {
      try {
        var s = await rpc("ice_servers", []);
        return Array.isArray(s) ? s : [];
      } catch (e) {
        return [];
      }
    }
    function send(kind, payload) {
      var id = c.call;
      if (W.__switchboardCallDebug) console.warn("call " + o.me + " send " + kind + " " + id);
      return rpc("signal", [thread, kind, payload], { call: id }).catch(function (e) {
        console.warn("switchboard call: signal not sent", e && e.message);
      });
    }
    async function makePeer() {
      if (c.pc) c.pc.close();
      var cfg = { iceServers: await iceServers() };
      var policy = o.iceTransportPolicy || TEST_POLICY;
      if (policy) cfg.iceTransportPolicy = policy;
      var pc = new RTCPeerConnection(cfg);
      c.pc = pc;
      makingOffer = ignoreOffer = false;
      early = [];
      pc.onicecandidate = function (e) {
        if (e.candidate && pc === c.pc) send("candidate", { candidate: e.candidate.toJSON() });
      };
      // Offers go through the same queue as incoming signals: a description is never being set
      // from both ends at once (an offer made while an incoming offer is applied would turn
      // into a second answer).
      pc.onnegotiationneeded = function () {
        inbox = inbox.then(async function () {
          if (pc !== c.pc || pc.signalingState !== "stable") return; // fires again when stable
          try {
            makingOffer = true;
            await pc.setLocalDescription();
            await send(pc.localDescription.type, { type: pc.localDescription.type, sdp: pc.localDescription.sdp });
          } catch (e) {
            console.warn("switchboard call: offer failed", e);
          } finally {
            makingOffer = false;
          }
        });
      };
      // Every remote track in one stream: a screen shared into an audio call adds a video
      // track without silencing the audio.
      var rs = new MediaStream();
      remote.srcObject = rs;
      pc.ontrack = function (e) {
        if (rs.getTracks().indexOf(e.track) < 0) rs.addTrack(e.track);
        e.track.onended = function () {
          rs.removeTrack(e.track);
        };
        var p = remote.play();
        if (p && p.catch) p.catch(function () {});
      };
      pc.oniceconnectionstatechange = function () {
        if (pc !== c.pc) return;
        var s = pc.iceConnectionState;
        clearTimeout(disconnectTimer);
        if (s === "failed") restartIce();
        else if (s === "disconnected") {
          showMsg("Reconnecting…");
          disconnectTimer = setTimeout(restartIce, 3000);
        } else if (s === "connected" || s === "completed") showMsg(hasRemoteVideo() ? "" : c.video ? "" : "Audio call");
      };
      (stream ? stream.getTracks() : []).forEach(function (t) {
        pc.addTrack(screen && t.kind === "video" ? screen.getVideoTracks()[0] : t, stream);
      });
      if (W.__switchboardCallHook) {
        try {
          W.__switchboardCallHook(c);
        } catch (e) {
          /* a test hook */
        }
      }
      return pc;
    }
    function hasRemoteVideo() {
      return !!(remote.srcObject && remote.srcObject.getVideoTracks().length);
    }
    function restartIce() {
      if (!c.pc || c.state !== "active") return;
      showMsg("Reconnecting…");
      if (c.pc.restartIce) c.pc.restartIce();
    }
    function onSignal(k) {
      if (W.__switchboardCallDebug) console.warn("call " + o.me + " got " + k.kind + " " + k.call + " mine " + c.call + " pc " + !!c.pc);
      inbox = inbox.then(async function () {
        if (ready) await ready.catch(function () {});
        var pc = c.pc;
        if (!pc || k.call !== c.call) return;
        var p = k.payload || {};
        try {
          if (k.kind === "candidate") {
            // Before any remote description (a description being replaced): kept for it.
            if (!pc.remoteDescription) return early.push(p.candidate);
            try {
              await pc.addIceCandidate(p.candidate);
            } catch (e) {
              if (!ignoreOffer) throw e;
            }
            return;
          }
          var desc = { type: p.type, sdp: p.sdp };
          var collision = desc.type === "offer" && (makingOffer || pc.signalingState !== "stable");
          ignoreOffer = !o.polite && collision;
          if (ignoreOffer) return;
          await pc.setRemoteDescription(desc); // the polite side rolls back its own offer here
          for (var cand; (cand = early.shift()); ) await pc.addIceCandidate(cand).catch(function () {});
          if (desc.type === "offer") {
            await pc.setLocalDescription();
            await send("answer", { type: pc.localDescription.type, sdp: pc.localDescription.sdp });
          }
        } catch (e) {
          console.warn("switchboard call: signal failed", e);
        }
      });
    }

    // ---- the call's life ----
    async function goActive(answeredMs) {
      silence();
      answeredAt = answeredMs ? Math.min(Date.now(), answeredMs) : Date.now();
      setState("active", "Connecting…");
      clearInterval(tick);
      tick = setInterval(function () {
        timeEl.textContent = fmtDuration(Date.now() - answeredAt);
      }, 1000);
      timeEl.textContent = fmtDuration(Date.now() - answeredAt);
      clearInterval(statTimer);
      statTimer = setInterval(readStats, 2000);
      ready = makePeer();
      await ready;
    }
    function cleanup() {
      silence();
      clearInterval(tick);
      clearInterval(statTimer);
      clearTimeout(disconnectTimer);
      if (c.pc) c.pc.close();
      c.pc = null;
      ready = null;
      lastStats = null;
      [stream, screen].forEach(function (s) {
        if (s)
          s.getTracks().forEach(function (t) {
            t.stop();
          });
      });
      stream = screen = null;
      local.srcObject = remote.srcObject = null;
      quality.dataset.level = "none";
      stats.textContent = "";
    }
    function ended(text, detail) {
      cleanup();
      c.call = null;
      setState("ended", text, detail);
      clearTimeout(c._hide);
      c._hide = setTimeout(function () {
        if (c.state === "ended") setState("idle");
      }, 4000);
    }

    c.start = async function (video) {
      if (c.state !== "idle" && c.state !== "ended") return;
      c.video = video !== false;
      who.textContent = o.peerName || "";
      timeEl.textContent = "";
      setState("outgoing", "Starting the call…");
      try {
        await openMedia(c.video);
      } catch (e) {
        return mediaFailed(e, false);
      }
      if (stream.noCamera) c.video = false;
      try {
        var r = await rpc("call_start", [thread], { video: c.video });
        c.call = r.call;
        if (r.state === "busy") return ended("Busy", "They are in another call. Try again later.");
        if (r.state === "active") return goActive(r.answered_ms);
        setState("outgoing", "Calling…", stream.noCamera ? "No camera found: this is an audio call." : "");
        ring(false);
      } catch (e) {
        ended("The call could not start.", (e && e.message) || "");
      }
    };

    function incoming(k) {
      if (c.state === "active" || c.state === "outgoing" || c.state === "incoming") return;
      clearTimeout(c._hide);
      c.call = k.call;
      c.video = k.video !== false;
      who.textContent = o.peerName || "";
      timeEl.textContent = "";
      setState("incoming", (c.video ? "Incoming video call" : "Incoming audio call") + (o.peerName ? " — " + o.peerName : ""));
      ring(true);
    }
    async function accept(video) {
      if (c.state !== "incoming") return;
      silence();
      setState("active", "Connecting…");
      try {
        await openMedia(video && c.video);
      } catch (e) {
        return mediaFailed(e, true);
      }
      try {
        var r = await rpc("call_accept", [thread, c.call]);
        await goActive(r.answered_ms);
      } catch (e) {
        ended("The call could not be answered.", (e && e.message) || "");
      }
    }

    c.event = function (k) {
      if (!k || Number(k.thread) !== Number(thread)) return;
      if (k.type === "signal") return onSignal(k);
      if (k.type !== "call") return;
      if (k.event === "ring") {
        if (k.from !== o.me) incoming(k);
      } else if (k.call !== c.call) {
        return;
      } else if (k.event === "accept") {
        if (c.state === "outgoing") goActive(Date.now());
        // Still ringing here: answered in another window, or by a colleague.
        else if (c.state === "incoming") ended(k.by === o.me ? "Answered in another window" : "Answered by " + (k.by_name || k.by || "someone else"));
      } else if (k.event === "end") {
        var why = { declined: "Call declined", busy: "Busy", missed: k.reason === "timeout" ? "No answer" : "Missed call" }[k.outcome] || "Call ended";
        ended(why);
      } else if (k.event === "resume" && k.by !== o.me && c.state === "active") {
        // The other side is back: a fresh page needs a new connection, else an ICE restart.
        if (k.fresh) ready = makePeer();
        else restartIce();
      }
    };

    /** After the page's session reconnected (or the page reloaded): the call goes on. */
    c.resume = async function () {
      var s;
      try {
        s = await rpc("call_state", [thread]);
      } catch (e) {
        return;
      }
      if (!s) {
        if (c.state === "active" || c.state === "outgoing") ended("Call ended");
        else if (c.state === "incoming") setState("idle");
        return;
      }
      if (s.state === "ringing" && !s.me) {
        who.textContent = o.peerName || "";
        return incoming({ call: s.call, video: s.video });
      }
      if (!s.me) return;
      var fresh = !c.pc && !stream;
      c.call = s.call;
      c.video = s.video;
      who.textContent = o.peerName || "";
      if (fresh) {
        setState(s.state === "active" ? "active" : "outgoing", "Reconnecting…");
        try {
          await openMedia(c.video);
        } catch (e) {
          return mediaFailed(e, false);
        }
      }
      try {
        await rpc("call_resume", [thread, s.call], { fresh: fresh });
      } catch (e) {
        return ended("Call ended");
      }
      if (s.state === "active") {
        if (fresh || !c.pc) await goActive(s.answered_ms);
        else restartIce();
      } else {
        setState("outgoing", "Calling…");
      }
    };

    c.hangup = function () {
      var id = c.call;
      if (!id) return setState("idle");
      ended(c.state === "active" ? "Call ended" : "Call cancelled");
      rpc("call_hangup", [thread, id]).catch(function () {});
    };

    c.destroy = function () {
      cleanup();
      view.remove();
    };

    // ---- controls ----
    acceptBtn.addEventListener("click", function () {
      accept(true);
    });
    audioBtn.addEventListener("click", function () {
      accept(false);
    });
    declineBtn.addEventListener("click", function () {
      var id = c.call;
      ended("Call declined");
      rpc("call_decline", [thread, id]).catch(function () {});
    });
    hangBtn.addEventListener("click", c.hangup);
    closeBtn.addEventListener("click", function () {
      setState("idle");
    });
    function toggle(btn, kind, onLabel, offLabel) {
      var off = btn.getAttribute("aria-pressed") !== "true";
      (stream ? stream.getTracks() : []).forEach(function (t) {
        if (t.kind === kind) t.enabled = !off;
      });
      btn.setAttribute("aria-pressed", String(off));
      btn.textContent = off ? offLabel : onLabel;
    }
    muteBtn.addEventListener("click", function () {
      toggle(muteBtn, "audio", "Mute", "Unmute");
    });
    camBtn.addEventListener("click", function () {
      toggle(camBtn, "video", "Camera off", "Camera on");
    });
    function videoSender() {
      return c.pc && c.pc.getSenders().filter(function (s) {
        return s.track && s.track.kind === "video";
      })[0];
    }
    async function stopSharing() {
      if (!screen) return;
      screen.getTracks().forEach(function (t) {
        t.stop();
      });
      screen = null;
      var cam = stream && stream.getVideoTracks()[0];
      var sender = videoSender();
      if (sender) await sender.replaceTrack(cam || null);
      local.srcObject = stream;
      local.classList.remove("sbc-screen");
      local.hidden = !hasVideo();
      shareBtn.setAttribute("aria-pressed", "false");
      shareBtn.textContent = "Share screen";
    }
    shareBtn.addEventListener("click", async function () {
      if (screen) return stopSharing();
      try {
        screen = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      } catch (e) {
        return; // the person chose not to share
      }
      var track = screen.getVideoTracks()[0];
      track.onended = stopSharing;
      var sender = videoSender();
      if (sender) await sender.replaceTrack(track);
      else if (c.pc) c.pc.addTrack(track, screen); // an audio call: renegotiated
      local.srcObject = screen;
      local.hidden = false;
      local.classList.add("sbc-screen");
      shareBtn.setAttribute("aria-pressed", "true");
      shareBtn.textContent = "Stop sharing";
    });
    devBtn.addEventListener("click", async function () {
      var open = devs.hidden;
      devs.hidden = !open;
      devBtn.setAttribute("aria-expanded", String(open));
      if (!open) return;
      var list = [];
      try {
        list = await navigator.mediaDevices.enumerateDevices();
      } catch (e) {
        /* none listed */
      }
      [
        [camSel, "videoinput", stream && stream.getVideoTracks()[0]],
        [micSel, "audioinput", stream && stream.getAudioTracks()[0]],
      ].forEach(function (x) {
        var current = x[2] && x[2].getSettings ? x[2].getSettings().deviceId : "";
        x[0].replaceChildren();
        list
          .filter(function (d) {
            return d.kind === x[1];
          })
          .forEach(function (d, i) {
            var opt = el("option", {}, d.label || (x[1] === "videoinput" ? "Camera " : "Microphone ") + (i + 1));
            opt.value = d.deviceId;
            opt.selected = d.deviceId === current;
            x[0].append(opt);
          });
        x[0].disabled = !x[2] || x[0].options.length < 2;
      });
    });
    async function switchDevice(kind, id) {
      if (!stream) return;
      var old = kind === "video" ? stream.getVideoTracks()[0] : stream.getAudioTracks()[0];
      var c2 = {};
      c2[kind] = { deviceId: { exact: id } };
      try {
        var s = await navigator.mediaDevices.getUserMedia(c2);
        var t = s.getTracks()[0];
        t.enabled = old ? old.enabled : true;
        var sender =
          c.pc &&
          c.pc.getSenders().filter(function (x) {
            return x.track === old || (x.track && x.track.kind === kind);
          })[0];
        if (sender && !(kind === "video" && screen)) await sender.replaceTrack(t);
        if (old) {
          stream.removeTrack(old);
          old.stop();
        }
        stream.addTrack(t);
        if (!screen) local.srcObject = stream;
      } catch (e) {
        var h = mediaHelp(e);
        showMsg(h[0], h[1]);
      }
    }
    camSel.addEventListener("change", function () {
      switchDevice("video", camSel.value);
    });
    micSel.addEventListener("change", function () {
      switchDevice("audio", micSel.value);
    });

    /** Connection quality from getStats: round-trip time, packet loss, received bitrate. */
    async function readStats() {
      var pc = c.pc;
      if (!pc) return;
      var report;
      try {
        report = await pc.getStats();
      } catch (e) {
        return;
      }
      var rtt = null;
      var lost = 0;
      var got = 0;
      var bytes = 0;
      var frames = 0;
      report.forEach(function (r) {
        if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded" && r.currentRoundTripTime != null) rtt = r.currentRoundTripTime * 1000;
        if (r.type === "inbound-rtp") {
          lost += r.packetsLost || 0;
          got += r.packetsReceived || 0;
          bytes += r.bytesReceived || 0;
          if (r.kind === "video") frames += r.framesDecoded || 0;
        }
      });
      var now = Date.now();
      var prev = lastStats;
      lastStats = { at: now, lost: lost, got: got, bytes: bytes };
      if (!prev) return;
      var dl = lost - prev.lost;
      var dg = got - prev.got;
      var loss = dl + dg > 0 ? (100 * Math.max(0, dl)) / (dl + dg) : 0;
      var kbps = ((bytes - prev.bytes) * 8) / Math.max(1, now - prev.at);
      var level = rtt == null && !dg ? "poor" : loss > 8 || rtt > 600 ? "poor" : loss > 2 || rtt > 250 ? "fair" : "good";
      quality.dataset.level = level;
      quality.setAttribute("aria-label", "Connection quality: " + level);
      stats.textContent =
        (rtt != null ? "RTT " + Math.round(rtt) + " ms · " : "") +
        "loss " + loss.toFixed(1) + "% · " +
        (kbps >= 1000 ? (kbps / 1000).toFixed(1) + " Mbit/s" : Math.round(kbps) + " kbit/s");
      view.dataset.frames = String(frames);
      if (hasRemoteVideo() || dg) {
        if (msg.textContent === "Connecting…" || msg.textContent === "Reconnecting…") showMsg(c.video ? "" : "Audio call");
      }
    }

    return c;
  }

  W.SwitchboardCall = SwitchboardCall;
})();
