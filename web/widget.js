/*! Switchboard chat widget — served by the Switchboard router as /widget.js.
 *
 * Embed on any website (any origin):
 *   <script src="https://chat.example.com/widget.js" async
 *           data-name="Acme Bakery" data-color="#0b7a53"
 *           data-greeting="Hi! How can we help?" data-position="right"></script>
 *
 * One self-contained file, no dependencies: a minimal WAMP v2 client (JSON over WebSocket) and
 * a Shadow DOM user interface, so the page's CSS does not reach the widget and the widget's CSS
 * does not reach the page. Everything a person types is inserted as text (textContent), never
 * as HTML; links become <a> elements built here, http(s) only.
 *
 * The chat API it uses is the router's built-in chat service (README "Live chat"): the visitor
 * logs in on the visitor WebSocket path with a visitor token kept in localStorage, then calls
 * switchboard.chat.{threads,open,send,history,read,typing,page,presence} and subscribes to
 * switchboard.chat.thread.<id> and switchboard.chat.status. While no staff member is online it
 * shows a form instead of the message box: switchboard.chat.leave_message(text, {email, name}).
 * Attachments (the paperclip, a pasted image, a file dropped on the panel): upload() opens a
 * slot, the bytes go there by HTTP PUT, send(thread, "", {file}) attaches the file; images the
 * server calls inline show as thumbnails, all else as download links; file_url() renews a link.
 */
(function () {
  "use strict";
  var W = window;
  var D = document;
  if (W.__switchboardChat || typeof WebSocket === "undefined" || !W.crypto) return;
  W.__switchboardChat = true;

  // ---- Where the server is, and the options ---------------------------------------------------

  var script =
    D.currentScript ||
    [].slice.call(D.querySelectorAll("script[src]")).filter(function (s) {
      return /\/widget\.js([?#]|$)/.test(s.src);
    })[0];
  if (!script) return;
  var SRC = new URL(script.src, location.href);
  var data = script.dataset;
  var PATH = data.path || "/chat";
  var WS_URL = (SRC.protocol === "https:" ? "wss://" : "ws://") + SRC.host + PATH;
  var REALM = data.realm || "realm1";
  var NAME = (data.name || "").trim().slice(0, 80) || "Chat";
  var GREETING = (data.greeting || "").trim().slice(0, 500) || "Hi! How can we help you?";
  var LEFT = data.position === "left";
  var COLOR = /^[#\w(),.%\s-]{1,60}$/.test(data.color || "") && CSS.supports("color", data.color) ? data.color : "#2457c5";
  var P = "switchboard.chat.";

  // ---- Storage (per host page origin, per server) -----------------------------------------------

  var KEY = "switchboard-chat:" + SRC.host + ":";
  var memory = {};
  function load(k) {
    try {
      return JSON.parse(localStorage.getItem(KEY + k));
    } catch (e) {
      return memory[k] === undefined ? null : memory[k];
    }
  }
  function save(k, v) {
    memory[k] = v;
    try {
      if (v == null) localStorage.removeItem(KEY + k);
      else localStorage.setItem(KEY + k, JSON.stringify(v));
    } catch (e) {
      /* storage blocked: keep it in memory for this page */
    }
  }
  function randomText(bytes) {
    var b = new Uint8Array(bytes);
    W.crypto.getRandomValues(b);
    return btoa(String.fromCharCode.apply(null, b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  // The visitor token: the router derives the visitor's identity from it, so keeping it keeps
  // the conversation across reloads and visits.
  function token() {
    var t = load("token");
    if (typeof t !== "string" || !/^[A-Za-z0-9_-]{22,128}$/.test(t)) {
      t = randomText(24);
      save("token", t);
    }
    return t;
  }

  // ---- A minimal WAMP v2 client (JSON serializer, caller + subscriber) -----------------------

  var CALL_TIMEOUT = 20000;

  /** Opens a session; resolves with {authid, call, subscribe, close, closed} once WELCOMEd. */
  function join(url, realm, ticket) {
    return new Promise(function (resolve, reject) {
      var ws;
      try {
        ws = new WebSocket(url, ["wamp.2.json"]);
      } catch (e) {
        reject(e);
        return;
      }
      var next = 0;
      var pending = new Map(); // request id → {resolve, reject, timer}
      var handlers = new Map(); // subscription id → handler
      var joined = false;
      var onClosed;
      var closed = new Promise(function (r) {
        onClosed = r;
      });
      var opening = setTimeout(function () {
        ws.close();
      }, 15000);
      function send(m) {
        if (ws.readyState === 1) ws.send(JSON.stringify(m));
      }
      function request(msg, onResult) {
        return new Promise(function (res, rej) {
          if (ws.readyState !== 1) return rej(new Error("not connected"));
          var id = ++next;
          msg.splice(1, 0, id);
          var timer = setTimeout(function () {
            pending.delete(id);
            rej(new Error("no answer"));
            ws.close(); // a session that stops answering is replaced
          }, CALL_TIMEOUT);
          pending.set(id, { resolve: onResult(res), reject: rej, timer: timer });
          send(msg);
        });
      }
      function settle(id, ok, value) {
        var p = pending.get(id);
        if (!p) return;
        pending.delete(id);
        clearTimeout(p.timer);
        if (ok) p.resolve(value);
        else p.reject(value);
      }
      var session = {
        authid: null,
        closed: closed,
        close: function () {
          ws.close(1000);
        },
        // Gives up on the socket at once (the network went away: its close may never come).
        drop: function () {
          ended();
          ws.close();
        },
        call: function (proc, args, kwargs) {
          return request([48, {}, P + proc, args || [], kwargs || {}], function (res) {
            return function (m) {
              res(m[3] || []);
            };
          });
        },
        subscribe: function (topic, handler) {
          return request([32, {}, topic], function (res) {
            return function (m) {
              handlers.set(m[2], handler);
              res(m[2]);
            };
          });
        },
      };
      ws.onopen = function () {
        send([1, realm, { authmethods: ["ticket"], roles: { caller: {}, subscriber: {} }, agent: "switchboard-widget" }]);
      };
      ws.onmessage = function (e) {
        var m;
        try {
          m = JSON.parse(e.data);
        } catch (err) {
          ws.close();
          return;
        }
        switch (m[0]) {
          case 4: // CHALLENGE
            send([5, ticket, {}]);
            break;
          case 2: // WELCOME
            clearTimeout(opening);
            joined = true;
            session.authid = (m[2] || {}).authid;
            resolve(session);
            break;
          case 3: // ABORT
            reject(Object.assign(new Error((m[1] || {}).message || m[2]), { abort: m[2] }));
            ws.close(1000);
            break;
          case 6: // GOODBYE
            send([6, {}, "wamp.close.goodbye_and_out"]);
            ws.close(1000);
            break;
          case 50: // RESULT
          case 33: // SUBSCRIBED
            settle(m[1], true, m);
            break;
          case 8: // ERROR [8, type, request, details, uri, args]
            settle(m[2], false, Object.assign(new Error((m[5] && m[5][0]) || m[4]), { uri: m[4] }));
            break;
          case 36: {
            // EVENT [36, subscription, publication, details, args, kwargs]
            var h = handlers.get(m[1]);
            if (h) {
              try {
                h(m[5] || {});
              } catch (err) {
                console.error("switchboard chat:", err);
              }
            }
            break;
          }
        }
      };
      var over = false;
      function ended() {
        if (over) return;
        over = true;
        ws.onmessage = null;
        clearTimeout(opening);
        pending.forEach(function (p) {
          clearTimeout(p.timer);
          p.reject(new Error("connection closed"));
        });
        pending.clear();
        if (!joined) reject(new Error("could not connect"));
        onClosed();
      }
      ws.onclose = ended;
    });
  }

  // ---- The user interface (Shadow DOM) -------------------------------------------------------

  /** Builds an element: el("div", {class: "x", "aria-label": "…"}, child, "text", …). */
  function el(tag, attrs) {
    var e = D.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c != null) e.append(c); // strings become text nodes, never markup
    }
    return e;
  }
  function icon(d) {
    var NS = "http://www.w3.org/2000/svg";
    var s = D.createElementNS(NS, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("focusable", "false");
    var p = D.createElementNS(NS, "path");
    p.setAttribute("d", d);
    s.appendChild(p);
    return s;
  }
  var ICON_CHAT = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z";
  var ICON_CLOSE = "M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12 19 17.6 17.6 19 12 13.4 6.4 19 5 17.6 10.6 12 5 6.4z";
  var ICON_SEND = "M3 20.5 21.5 12 3 3.5 3 10l12 2-12 2z";
  var ICON_PHONE = "M6.6 10.8a15 15 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25c1.1.37 2.3.57 3.6.57a1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z";
  var ICON_CLIP = "M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z";
  var ICON_VIDEO = "M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11z";

  /** Text with http(s) links made clickable — as text nodes and <a> elements, never HTML. */
  function linkify(text) {
    var f = D.createDocumentFragment();
    var re = /\bhttps?:\/\/[^\s<>"']+/gi;
    var at = 0;
    var m;
    while ((m = re.exec(text))) {
      var raw = m[0].replace(/[.,;:!?)\]}'"]+$/, "");
      var url = null;
      try {
        url = new URL(raw);
      } catch (e) {
        /* not a URL: stays text */
      }
      if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) continue;
      f.append(text.slice(at, m.index));
      var a = el("a", { href: url.href, target: "_blank", rel: "noopener noreferrer nofollow" }, raw);
      f.append(a);
      at = m.index + raw.length;
      re.lastIndex = at;
    }
    f.append(text.slice(at));
    return f;
  }

  /** Black or white text, whichever reads better on the accent colour. */
  function inkFor(color) {
    var c = D.createElement("canvas").getContext("2d");
    if (!c) return "#fff";
    c.fillStyle = color; // read back normalised: "#rrggbb" or "rgba(r, g, b, a)"
    var v = String(c.fillStyle);
    var rgb = v[0] === "#" ? [1, 3, 5].map(function (i) { return parseInt(v.substr(i, 2), 16); }) : (v.match(/[\d.]+/g) || []).map(Number);
    var L = [0.2126, 0.7152, 0.0722].reduce(function (sum, w, i) {
      var x = (rgb[i] || 0) / 255;
      return sum + w * (x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4));
    }, 0);
    return L > 0.4 ? "#111" : "#fff";
  }

  var CSS_TEXT =
    ".r{all:initial;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1d2127;" +
    "--c:" + COLOR + ";--ink:" + inkFor(COLOR) + "}" +
    // A reset of zero specificity (:where), so every rule below wins over it.
    ":where(.r *){box-sizing:border-box;font:inherit;color:inherit;margin:0;padding:0;border:0;background:none;letter-spacing:normal;text-transform:none}" +
    "[hidden]{display:none!important}" +
    ".r :focus-visible{outline:3px solid #ffbf47;outline-offset:2px;box-shadow:0 0 0 5px #1d2127}" +
    "button{cursor:pointer;display:inline-flex;align-items:center;justify-content:center}" +
    "svg{width:24px;height:24px;fill:currentColor}" +
    ".bubble{position:fixed;bottom:20px;" + (LEFT ? "left" : "right") + ":20px;width:60px;height:60px;border-radius:50%;" +
    "background:var(--c);color:var(--ink);box-shadow:0 4px 14px rgba(0,0,0,.28)}" +
    ".bubble svg{width:28px;height:28px}" +
    ".dot{position:absolute;right:3px;bottom:3px;width:14px;height:14px;border-radius:50%;border:2px solid #fff;background:#9aa1ab}" +
    ".on .dot,.on .sdot{background:#1f9d55}" +
    ".badge{position:absolute;top:-4px;" + (LEFT ? "right" : "left") + ":-4px;min-width:22px;height:22px;padding:0 6px;border-radius:11px;" +
    "background:#d42020;color:#fff;font-size:12px;font-weight:700;line-height:22px;text-align:center}" +
    ".panel{position:fixed;bottom:92px;" + (LEFT ? "left" : "right") + ":20px;width:370px;max-width:calc(100vw - 40px);" +
    "height:560px;max-height:calc(100vh - 112px);display:flex;flex-direction:column;background:#fff;border-radius:14px;" +
    "overflow:hidden;box-shadow:0 10px 40px rgba(0,0,0,.3)}" +
    ".head{display:flex;align-items:center;gap:10px;padding:14px 12px 14px 16px;background:var(--c);color:var(--ink)}" +
    ".who{flex:1;min-width:0}" +
    ".title{display:block;font-weight:700;font-size:16px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}" +
    ".status{display:flex;align-items:center;gap:6px;font-size:13px;opacity:.95}" +
    ".sdot{width:9px;height:9px;border-radius:50%;background:#c4c9d0;border:1px solid rgba(255,255,255,.7)}" +
    ".x,.cb{width:40px;height:40px;border-radius:8px}" +
    ".x:hover,.cb:hover{background:rgba(127,127,127,.25)}" +
    ".conn{display:flex;gap:8px;align-items:center;justify-content:space-between;padding:6px 14px;font-size:13px;background:#fff4d6;color:#5b4300;border-bottom:1px solid #f0dca0}" +
    ".conn button{text-decoration:underline;font-weight:600;white-space:nowrap}" +
    ".log{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:8px;background:#f5f6f8;overscroll-behavior:contain}" +
    ".list{display:flex;flex-direction:column;gap:8px}" +
    ".m{display:flex;flex-direction:column;max-width:85%}" +
    ".m .b{padding:8px 12px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word}" +
    ".them{align-self:flex-start}.them .b{background:#fff;border:1px solid #e1e4e8;border-bottom-left-radius:4px}" +
    ".me{align-self:flex-end;align-items:flex-end}.me .b{background:var(--c);color:var(--ink);border-bottom-right-radius:4px}" +
    ".sys{align-self:center;align-items:center;max-width:92%}.sys .b{background:#e6e9ee;color:#2f3640;font-size:13px;border-radius:10px}" +
    ".callh{position:relative;flex:1;min-height:0}.incall .log,.incall .typing,.incall .comp,.incall .notice,.incall .off,.incall .cb{display:none!important}" +
    ".me[data-status=pending] .b{opacity:.7}.me[data-status=failed] .b{background:#fbe9e9;color:#8a1010}" +
    ".b a{text-decoration:underline;font-weight:600}" +
    ".meta{font-size:12px;color:#5c6370;margin-top:2px;padding:0 4px}" +
    ".notice{padding:8px 14px;background:#eef1f5;color:#3a414c;font-size:13.5px;border-top:1px solid #e1e4e8}" +
    ".typing{min-height:22px;padding:2px 16px;font-size:13px;color:#5c6370;background:#f5f6f8}" +
    ".typing span{display:inline-block;animation:sb-blink 1.2s infinite}" +
    "@keyframes sb-blink{50%{opacity:.3}}" +
    ".comp{display:flex;gap:8px;align-items:flex-end;padding:10px;border-top:1px solid #e1e4e8;background:#fff}" +
    "textarea{flex:1;min-height:42px;max-height:120px;resize:none;padding:10px 12px;border:1px solid #b9c0c9;border-radius:10px;" +
    "background:#fff;color:#1d2127;line-height:1.4;display:block;white-space:pre-wrap}" +
    "textarea::placeholder{color:#6b7280}" +
    ".send{width:42px;height:42px;border-radius:10px;background:var(--c);color:var(--ink);flex:none}" +
    ".send:disabled{opacity:.45;cursor:default}" +
    ".att{width:42px;height:42px;border-radius:10px;flex:none;color:#3a414c}.att:hover{background:#eef1f5}" +
    ".up{padding:6px 14px;font-size:13px;background:#fff;border-top:1px solid #e1e4e8}" +
    ".up progress{display:block;width:100%;height:4px;margin-top:4px;accent-color:var(--c)}" +
    ".drop .log{outline:3px dashed var(--c);outline-offset:-6px}" +
    ".fw a{display:inline-block}.fw svg{width:16px;height:16px;vertical-align:-3px;margin-right:3px}" +
    ".fimg{display:block;max-width:220px;max-height:200px;border-radius:8px;background:#fff}" +
    ".off,.thanks{display:flex;flex-direction:column;gap:6px;padding:10px 12px 12px;border-top:1px solid #e1e4e8;background:#fff}" +
    ".f{display:flex;flex-direction:column;gap:2px;font-size:13px;font-weight:600;color:#3a414c}" +
    "input,.off textarea{display:block;width:100%;flex:none;min-height:38px;padding:7px 11px;border:1px solid #b9c0c9;border-radius:10px;background:#fff;color:#1d2127;font-weight:400;font-size:15px}" +
    ".off textarea{min-height:66px;max-height:150px;resize:vertical}" +
    "[aria-invalid=true]{border-color:#c62828;box-shadow:0 0 0 1px #c62828}" +
    ".err{color:#b3261e;font-size:13.5px;font-weight:600}.up .err{font-size:13px}" +
    ".go{min-height:42px;padding:0 16px;border-radius:10px;background:var(--c);color:var(--ink);font-weight:600}" +
    ".go[aria-disabled=true]{opacity:.6;cursor:progress}" +
    ".thanks{background:#eefaf3}.thanks strong{font-weight:700;font-size:16px}" +
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
    "@media (max-width:480px){.panel{inset:0;width:100%;max-width:none;height:100%;max-height:none;border-radius:0}" +
    ".r.open .bubble{display:none}}" +
    "@media (prefers-reduced-motion:reduce){.typing span{animation:none}}";

  var host = D.createElement("switchboard-chat");
  // Inline !important beats any stylesheet of the page, so `* {all: unset}`, `div {display:
  // none}` and the like cannot hide or restyle the widget's host element.
  host.setAttribute("style", "all:initial!important;display:block!important;position:static!important");
  var shadow = host.attachShadow({ mode: "open" });
  var style = el("style");
  style.textContent = CSS_TEXT;

  var badge = el("span", { class: "badge", "aria-hidden": "true", hidden: "" });
  var bubble = el(
    "button",
    { class: "bubble", type: "button", "aria-label": "Chat with " + NAME, "aria-expanded": "false", "aria-controls": "sb-panel" },
    icon(ICON_CHAT),
    el("span", { class: "dot", "aria-hidden": "true" }),
    badge
  );
  var statusText = el("span", { class: "stext" }, "Connecting…");
  var closeBtn = el("button", { class: "x", type: "button", "aria-label": "Close chat" }, icon(ICON_CLOSE));
  var audioCallBtn = el("button", { class: "cb", type: "button", "aria-label": "Audio call", hidden: "" }, icon(ICON_PHONE));
  var videoCallBtn = el("button", { class: "cb", type: "button", "aria-label": "Video call", hidden: "" }, icon(ICON_VIDEO));
  var callHost = el("div", { class: "callh", hidden: "" });
  var connText = el("span");
  var retryBtn = el("button", { type: "button" }, "Retry now");
  var conn = el("div", { class: "conn", role: "status" }, connText, retryBtn);
  var greeting = el("div", { class: "m them greet" }, el("div", { class: "b" }, GREETING));
  var offline = el(
    "div",
    { class: "notice offline", role: "status", hidden: "" },
    "No one is available right now. Leave your email and a message, and we'll answer by email."
  );
  // The offline form (shown instead of the message box while no staff member is online).
  function field(label, control) {
    return el("label", { class: "f" }, label, control); // the label wraps its control
  }
  var offEmail = el("input", { type: "email", name: "email", autocomplete: "email", required: "", maxlength: "254", spellcheck: "false" });
  var offName = el("input", { type: "text", name: "name", autocomplete: "name", maxlength: "80" });
  var offText = el("textarea", { name: "message", rows: "3", required: "", maxlength: "4000" });
  var offErr = el("p", { class: "err", role: "alert" });
  var offBtn = el("button", { class: "go", type: "submit" }, "Send message");
  var offForm = el(
    "form",
    { class: "off", novalidate: "", "aria-label": "Leave a message", hidden: "" },
    field("Your email", offEmail),
    field("Your name (optional)", offName),
    field("Message", offText),
    offErr,
    offBtn
  );
  var thanksTo = el("p");
  var againBtn = el("button", { class: "go", type: "button" }, "Write another message");
  var thanks = el("div", { class: "thanks", role: "status", tabindex: "-1", hidden: "" }, el("strong", {}, "Thanks — we'll answer by email."), thanksTo, againBtn);
  var list = el("div", { class: "list" });
  var log = el("div", { class: "log", role: "log", "aria-label": "Messages", tabindex: "0" }, greeting, list);
  var typingEl = el("div", { class: "typing", "aria-live": "polite" });
  var input = el("textarea", { rows: "1", "aria-label": "Message", placeholder: "Write a message…", maxlength: "4000" });
  var sendBtn = el("button", { class: "send", type: "submit", "aria-label": "Send" }, icon(ICON_SEND));
  var fileIn = el("input", { type: "file", hidden: "", tabindex: "-1", "aria-hidden": "true", multiple: "" });
  var attachBtn = el("button", { class: "att", type: "button", "aria-label": "Attach a file" }, icon(ICON_CLIP));
  var form = el("form", { class: "comp" }, attachBtn, fileIn, input, sendBtn);
  // The upload under way ("Uploading NAME…" and its progress), and why the last one failed.
  var upText = el("span", { role: "status" });
  var upBar = el("progress", { max: "1", value: "0", "aria-label": "Upload progress" });
  var upErr = el("p", { class: "err", role: "alert" });
  var up = el("div", { class: "up" }, upText, upBar, upErr);
  var titleId = "sb-title";
  var panel = el(
    "div",
    { class: "panel", id: "sb-panel", role: "dialog", "aria-labelledby": titleId, hidden: "" },
    el(
      "div",
      { class: "head" },
      el(
        "div",
        { class: "who" },
        el("h2", { class: "title", id: titleId }, NAME),
        el("span", { class: "status" }, el("span", { class: "sdot", "aria-hidden": "true" }), statusText)
      ),
      audioCallBtn,
      videoCallBtn,
      closeBtn
    ),
    conn,
    callHost,
    log,
    offline,
    typingEl,
    up,
    form,
    offForm,
    thanks
  );
  var root = el("div", { class: "r", "data-conn": "connecting" }, bubble, panel);
  shadow.append(style, root);

  // ---- State --------------------------------------------------------------------------------

  var st = {
    me: null, // the visitor's authid (from WELCOME)
    thread: null, // the open thread's id, once there is one
    lastSeq: 0, // the newest message seen (history after a reconnect starts after it)
    myRead: 0, // what this visitor has read
    staffRead: 0, // what staff have read (receipts)
    staffOnline: null,
    open: !!load("open"),
  };
  var bySeq = new Map(); // seq → message element
  var byCid = new Map(); // client_id → own message element
  var outbox = Array.isArray(load("outbox")) ? load("outbox") : []; // [{cid, text, ts}] not yet acknowledged
  // A message being left with the offline form, kept until the service has it (so a reload or
  // a reconnect goes on with it): {text, email, name, state: "sending"|"failed", mark, tried}.
  var pend = load("leave");
  if (!pend || typeof pend.text !== "string" || typeof pend.email !== "string") pend = null;
  var sess = null;

  function fmtTime(ms) {
    try {
      return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    } catch (e) {
      return "";
    }
  }
  var STATUS_TEXT = { pending: "Sending…", sent: "Sent", read: "Read", failed: "Not sent" };
  function setStatus(node, status, why) {
    node.dataset.status = status;
    node._status.textContent = STATUS_TEXT[status] + (why ? ": " + why : "");
  }
  function messageNode(mine, text, who, ts, kind, file) {
    var meta = el("div", { class: "meta" });
    // The service's own lines (call outcomes, notes): plain text, shown apart.
    var sys = kind === "call" || kind === "system";
    var b = el("div", { class: "b" }, sys ? text : linkify(text));
    var node = el("div", { class: "m " + (sys ? "sys" : mine ? "me" : "them"), "data-kind": kind || "text" }, b, meta);
    if (!sys && file) {
      node._f = el("div", { class: "fw" });
      b.prepend(node._f);
      setFile(node, file);
    }
    if (sys) {
      meta.append(fmtTime(ts));
      return node;
    }
    if (mine) {
      meta.append(el("span", { class: "sr" }, "You, "), fmtTime(ts), " · ");
      node._status = el("span", { class: "rcpt" });
      meta.append(node._status);
    } else {
      meta.append(who + " · " + fmtTime(ts));
    }
    return node;
  }

  /** "120 KB": a file's size for people. */
  function human(n) {
    return n < 1024 ? n + " B" : n < 1048576 ? Math.round(n / 1024) + " KB" : (n / 1048576).toFixed(1).replace(/\.0$/, "") + " MB";
  }
  /** A fresh download link for `f` (file_url): the links in messages are signed for an hour. */
  function renew(f, a) {
    return (sess ? sess.call("file_url", [st.thread, f.id]) : Promise.reject(new Error("not connected"))).then(function (r) {
      f.url = r[0];
      f.got = Date.now();
      return (a.href = new URL(f.url, SRC).href);
    });
  }
  /** Shows a message's file: an image the server serves inline as a thumbnail that opens in a
   *  new tab, anything else as a download link "NAME · SIZE" (text only until it has a link). */
  function setFile(node, f) {
    var box = node._f;
    if (!box || (box._url && !f.url)) return;
    box._url = !!f.url;
    f.got = Date.now();
    var label = f.name + " · " + human(f.size);
    box.textContent = "";
    if (!f.url) return box.append(label);
    var a = el("a", { href: new URL(f.url, SRC).href, target: "_blank", rel: "noopener noreferrer", title: label });
    a.addEventListener("click", function (e) {
      if (Date.now() - f.got < 3e6) return; // signed less than 50 minutes ago: still good
      e.preventDefault();
      renew(f, a).then(function (u) {
        W.open(u, "_blank", "noopener");
      }, function () {});
    });
    if (f.inline) {
      var img = el("img", { class: "fimg", alt: f.name, src: a.href });
      // A link that expired (403) is renewed once, then the image is asked for again.
      img.addEventListener("error", function () {
        if (img._renewed) return;
        img._renewed = true;
        renew(f, a).then(function (u) {
          img.src = u;
        }, function () {});
      });
      img.addEventListener("load", function () {
        img._renewed = false;
        if (log.scrollHeight - log.scrollTop - log.clientHeight < 60 + img.height) log.scrollTop = log.scrollHeight;
      });
      a.append(img);
    } else {
      a.append(icon(ICON_CLIP), label);
    }
    box.append(a);
  }

  /** Places a stored message (from an event or history) once, in sequence order. */
  function addMessage(m) {
    if (m.type !== "message" || m.thread !== st.thread) return;
    var node = bySeq.get(m.seq);
    if (node) {
      if (m.file && m.file.url && node._f && !node._f._url) setFile(node, m.file); // the link came later
      return;
    }
    var mine = m.sender === st.me;
    node = m.client_id && byCid.get(m.client_id);
    if (node && mine) {
      byCid.delete(m.client_id);
      dropFromOutbox(m.client_id);
      if (m.file) setFile(node, m.file);
    } else {
      node = messageNode(mine, m.text, m.sender_name || (mine ? "You" : NAME), m.ts_ms, m.kind, m.file);
    }
    node.dataset.seq = m.seq;
    bySeq.set(m.seq, node);
    if (mine) setStatus(node, m.seq <= st.staffRead ? "read" : "sent");
    var before = null;
    for (var n = list.firstChild; n; n = n.nextSibling) {
      if (!n.dataset.seq || Number(n.dataset.seq) > m.seq) {
        before = n;
        break;
      }
    }
    var atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    list.insertBefore(node, before);
    if (atEnd || mine) log.scrollTop = log.scrollHeight;
    if (m.seq > st.lastSeq) st.lastSeq = m.seq;
    if (!mine) {
      typingFrom(null);
      markRead();
      updateBadge();
    }
  }

  function updateReceipts() {
    bySeq.forEach(function (node, seq) {
      if (node._status && seq <= st.staffRead) setStatus(node, "read");
    });
  }

  function unread() {
    var n = 0;
    bySeq.forEach(function (node, seq) {
      if (!node._status && seq > st.myRead) n++;
    });
    return n;
  }
  function updateBadge() {
    var n = st.open ? 0 : unread();
    badge.hidden = n === 0;
    badge.textContent = n > 9 ? "9+" : String(n);
    bubble.setAttribute("aria-label", "Chat with " + NAME + (n ? " (" + n + " unread)" : ""));
  }

  var typingTimer = null;
  /** Shows "NAME is typing…" for a few seconds (the API has no "stopped typing"). */
  function typingFrom(name) {
    clearTimeout(typingTimer);
    typingEl.textContent = "";
    if (!name) return;
    typingEl.append(name + " is typing", el("span", {}, "…"));
    typingTimer = setTimeout(function () {
      typingEl.textContent = "";
    }, 6000);
  }

  function onThreadEvent(kw) {
    if (kw.thread !== st.thread) return;
    if (kw.type === "call" || kw.type === "signal") {
      if (caller || (kw.type === "call" && kw.event === "ring" && kw.from !== st.me)) withCall(function (c) {
        if (kw.event === "ring") setOpen(true, false);
        c.event(kw);
      });
    } else if (kw.type === "message") addMessage(kw);
    else if (kw.type === "typing" && kw.member !== st.me) typingFrom(kw.name || NAME);
    else if (kw.type === "read") {
      if (kw.member === st.me) {
        st.myRead = Math.max(st.myRead, kw.seq); // read in another tab
        updateBadge();
      } else if (kw.seq > st.staffRead) {
        st.staffRead = kw.seq;
        // Kept, because the service tells a visitor of staff reads only as events: after a
        // reload the widget would otherwise show read messages as merely sent.
        save("seen", { thread: st.thread, staffRead: kw.seq });
        updateReceipts();
      }
    }
  }

  function setStaff(online) {
    var atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    var focused = shadow.activeElement;
    st.staffOnline = online;
    if (online) save("left", null); // the thanks note is for this absence only
    // What was typed goes along to whichever box is shown now.
    var from = online ? offText : input;
    var to = online ? input : offText;
    if (from.value.trim() && !to.value.trim() && !(pend && pend.state === "sending")) {
      to.value = from.value;
      from.value = "";
    }
    renderStatus();
    if (focused && (focused === input || offForm.contains(focused) || focused === thanks || focused === againBtn) && !focused.getClientRects().length) focusBox();
    if (atEnd) log.scrollTop = log.scrollHeight; // the notice took room from the log
  }

  var connState = "connecting";
  var retryAt = 0;
  var countdown = null;
  function setConn(state) {
    connState = state;
    root.dataset.conn = state;
    clearInterval(countdown);
    if (state === "waiting") countdown = setInterval(renderStatus, 1000);
    renderStatus();
  }
  function sending() {
    return !!pend && pend.state === "sending";
  }
  function renderStatus() {
    var online = connState === "online";
    var away = st.staffOnline === false || sending();
    var left = load("left");
    root.classList.toggle("on", online && !!st.staffOnline);
    offline.hidden = !(online && st.staffOnline === false);
    form.hidden = typingEl.hidden = away;
    up.hidden = away || (!uploading && !upErr.textContent);
    upText.hidden = upBar.hidden = !uploading;
    thanks.hidden = !(away && !pend && left);
    offForm.hidden = !away || !thanks.hidden;
    if (left) thanksTo.textContent = "We will write to " + left.email + ".";
    var busy = sending();
    offBtn.setAttribute("aria-disabled", String(busy));
    offBtn.textContent = busy ? (online ? "Sending…" : "Waiting for the connection…") : "Send message";
    offEmail.readOnly = offName.readOnly = offText.readOnly = busy;
    conn.hidden = online;
    audioCallBtn.hidden = videoCallBtn.hidden = !(online && st.staffOnline);
    retryBtn.hidden = connState !== "waiting" && connState !== "offline";
    if (connState === "waiting") {
      var s = Math.max(1, Math.ceil((retryAt - Date.now()) / 1000));
      connText.textContent = "Connection lost. Reconnecting in " + s + " s…";
    } else if (connState === "offline") {
      connText.textContent = "You are offline. Waiting for the network…";
    } else if (connState === "connecting") {
      connText.textContent = "Connecting…";
    } else {
      connText.textContent = "";
    }
    statusText.textContent = !online
      ? connState === "connecting"
        ? "Connecting…"
        : "Not connected"
      : st.staffOnline
        ? "We're online"
        : "Away — leave a message";
  }

  function persistOutbox() {
    save("outbox", outbox.length ? outbox : null);
  }
  function dropFromOutbox(cid) {
    outbox = outbox.filter(function (o) {
      return o.cid !== cid;
    });
    persistOutbox();
  }

  // ---- Talking to the chat service -----------------------------------------------------------

  /** Makes `t` (a thread summary) the current thread: subscribe, then fetch what is missing. */
  async function useThread(s, t) {
    if (st.thread !== t.thread) {
      bySeq.forEach(function (n) {
        n.remove();
      });
      bySeq.clear();
      var seen = load("seen") || {};
      st.thread = t.thread;
      st.lastSeq = 0;
      if (caller && caller.state === "idle") {
        caller.destroy(); // a call belongs to its thread
        caller = null;
      }
      st.staffRead = seen.thread === t.thread ? Number(seen.staffRead) || 0 : 0;
      st.myRead = 0;
    }
    st.myRead = Math.max(st.myRead, t.read || 0);
    await s.subscribe(P + "thread." + t.thread, onThreadEvent);
    if (!st.lastSeq) {
      var newest = (await s.call("history", [t.thread], { limit: 200 }))[0] || [];
      newest.reverse().forEach(addMessage);
    } else {
      // Catch up after a reconnect: everything after the last message seen, oldest first.
      for (;;) {
        var page = (await s.call("history", [t.thread], { after: st.lastSeq, limit: 500 }))[0] || [];
        page.forEach(addMessage);
        if (page.length < 500) break;
      }
    }
    updateBadge();
  }

  var flushing = null;
  /** Sends what the outbox holds, oldest first. Each message keeps its client_id across
   *  retries (reconnects, reloads), and the service answers a repeated client_id with the first
   *  result, so nothing is stored twice. */
  function flush(s) {
    if (flushing) return flushing; // the running flush also takes what was queued meanwhile
    flushing = (async function () {
      while (outbox.length) {
        if (st.thread == null) await useThread(s, (await s.call("open"))[0]);
        var o = outbox[0];
        var r;
        try {
          r = (await s.call("send", [st.thread, o.text], o.file ? { client_id: o.cid, file: o.file.id } : { client_id: o.cid }))[0];
        } catch (e) {
          if (e.uri !== "wamp.error.invalid_argument") throw e; // kept for the next try
          var bad = byCid.get(o.cid);
          if (bad) setStatus(bad, "failed", e.message);
          byCid.delete(o.cid);
          dropFromOutbox(o.cid);
          continue;
        }
        // The message's event usually came first; if not, it is placed now.
        addMessage({ type: "message", thread: r.thread, seq: r.seq, ts_ms: r.ts_ms, sender: st.me, text: o.text, client_id: o.cid, file: o.file });
        byCid.delete(o.cid);
        dropFromOutbox(o.cid);
      }
    })().finally(function () {
      flushing = null;
    });
    return flushing;
  }

  function sendText(text, file) {
    if (!text.trim() && !file) return;
    var o = { cid: randomText(12), text: text, ts: Date.now(), file: file };
    outbox.push(o);
    persistOutbox();
    var node = messageNode(true, text, "You", o.ts, null, file);
    setStatus(node, "pending");
    byCid.set(o.cid, node);
    list.append(node);
    log.scrollTop = log.scrollHeight;
    if (sess) flush(sess).catch(retrySoon);
  }
  function retrySoon(e) {
    // Refused for now (e.g. overloaded) while the session is up: try again shortly. A lost
    // connection needs nothing here: every reconnect flushes the outbox.
    if (e && e.uri)
      setTimeout(function () {
        if (sess) flush(sess).catch(function () {});
      }, 3000);
  }

  // ---- Attachments ----------------------------------------------------------------------------

  var maxBytes = Number(load("max")) || 0; // the server's limit, learned from upload()
  var uploading = false;
  var uploads = Promise.resolve(); // files go one after another
  function attach(files) {
    [].slice.call(files || []).forEach(function (f) {
      uploads = uploads.then(function () {
        return upload(f);
      });
    });
  }
  /** Shows the upload line: in progress (`on`), or why it failed (`err`). */
  function upShow(on, err) {
    var atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    uploading = on;
    upErr.textContent = err || "";
    renderStatus();
    if (atEnd) log.scrollTop = log.scrollHeight; // the line took room from the log
  }
  function upDone(err) {
    upShow(false, err);
  }
  /** PUTs the bytes to the upload slot; resolves with the stored file's description. */
  function put(url, f) {
    return new Promise(function (ok, no) {
      var x = new XMLHttpRequest();
      x.open("PUT", url);
      x.timeout = 130000;
      x.upload.onprogress = function (e) {
        if (e.lengthComputable) upBar.value = e.loaded / e.total;
      };
      x.onload = function () {
        var r = null;
        try {
          r = x.status === 201 && JSON.parse(x.responseText);
        } catch (e) {
          /* refused below */
        }
        if (r && r.file) ok(r);
        else no(Object.assign(new Error((x.responseText || "").trim() || "HTTP " + x.status), { status: x.status }));
      };
      x.onerror = x.ontimeout = function () {
        no(new Error(""));
      };
      x.send(f);
    });
  }
  /** Why an upload failed, for people. */
  function whyNot(e, name) {
    var msg = e.message || "";
    var u = e.uri || "";
    var most = /at most (\d+)/.exec(msg);
    if (most) save("max", (maxBytes = Number(most[1])));
    if (most || e.status === 413) return name + " is too big" + (maxBytes ? ": files can have at most " + human(maxBytes) : "") + ".";
    var not = "Not sent: " + name + ": ";
    if (/overloaded/.test(u)) return not + (/full/.test(msg) ? "the chat's file storage is full." : "the server is busy; try again shortly.");
    var wait = Number((/retry in (\d+) s/.exec(msg) || [])[1]);
    if (/rate_limited/.test(u)) return not + "too many files; " + (!wait ? "try again later" : "retry in " + (wait < 120 ? wait + " s" : Math.ceil(wait / 60) + " min")) + ".";
    if (!u && !e.status) return not + "no connection to the server. Check your network and try again.";
    return not + msg;
  }
  async function upload(f) {
    var name = f.name || "file";
    var err = !f.size ? name + " is empty." : maxBytes && f.size > maxBytes ? whyNot({ status: 413 }, name) : !sess ? "Not sent: " + name + ": not connected. Try again once the chat is back." : "";
    if (err) return upDone(err);
    var s = sess;
    upText.textContent = "Uploading " + name + "…";
    upBar.value = 0;
    upShow(true);
    try {
      if (st.thread == null) await useThread(s, (await s.call("open"))[0]);
      var slot = (await s.call("upload", [st.thread, name, f.type || "application/octet-stream", f.size]))[0];
      save("max", (maxBytes = Number(slot.max_bytes) || 0));
      var r = await put(new URL(slot.url, SRC).href, f);
      upDone();
      sendText("", { id: r.file, name: r.name, content_type: r.content_type, size: r.size, inline: !!r.inline });
    } catch (e) {
      upDone(whyNot(e, name));
    }
  }
  attachBtn.addEventListener("click", function () {
    fileIn.click();
  });
  fileIn.addEventListener("change", function () {
    attach(fileIn.files);
    fileIn.value = "";
  });
  input.addEventListener("paste", function (e) {
    var files = e.clipboardData && e.clipboardData.files;
    if (files && files.length) {
      e.preventDefault();
      attach(files);
    }
  });
  var dropTimer = null;
  panel.addEventListener("dragover", function (e) {
    if (form.hidden || [].indexOf.call(e.dataTransfer.types, "Files") < 0) return;
    e.preventDefault();
    root.classList.add("drop");
    clearTimeout(dropTimer);
    dropTimer = setTimeout(function () {
      root.classList.remove("drop");
    }, 200);
  });
  panel.addEventListener("drop", function (e) {
    root.classList.remove("drop");
    if (form.hidden || !e.dataTransfer.files.length) return;
    e.preventDefault();
    attach(e.dataTransfer.files);
  });

  // ---- Leaving a message while no staff member is online -------------------------------------

  var leaving = null;
  /** The visitor's newest thread (the one leave_message writes into), if any. */
  function newest(threads) {
    return (threads || []).reduce(function (a, t) {
      return !a || t.thread > a.thread ? t : a;
    }, null);
  }
  /** leave_message has no client_id: after a try whose answer was lost (connection gone,
   *  reload), the visitor's threads are searched for the text past where they ended before the
   *  first try, so a retry never stores (and emails) the message twice. */
  async function findLeft(s, L) {
    var threads = (await s.call("threads"))[0] || [];
    for (var i = 0; i < threads.length; i++) {
      var id = threads[i].thread;
      if (id < L.mark[0]) continue;
      var after = id === L.mark[0] ? L.mark[1] : 0;
      for (;;) {
        var page = (await s.call("history", [id], { after: after, limit: 500 }))[0] || [];
        for (var j = 0; j < page.length; j++) {
          if (page[j].sender === st.me && page[j].text === L.text) return page[j];
        }
        if (page.length < 500) break;
        after = page[page.length - 1].seq;
      }
    }
    return null;
  }
  /** Sends the pending offline message (once connected; again after every reconnect). */
  function leave() {
    var s = sess;
    var L = pend;
    if (!s || !L || L.state !== "sending" || leaving) return;
    leaving = (async function () {
      var r = L.tried ? await findLeft(s, L) : null;
      if (!r) {
        if (!L.mark) {
          var t = newest((await s.call("threads"))[0]);
          L.mark = t ? [t.thread, t.last_seq] : [0, 0];
        }
        L.tried = true;
        save("leave", L);
        var kw = { email: L.email };
        if (L.name) kw.name = L.name;
        r = (await s.call("leave_message", [L.text], kw))[0];
      }
      var inForm = offForm.contains(shadow.activeElement);
      pend = null;
      save("leave", null);
      save("left", { email: L.email });
      offText.value = "";
      offErr.textContent = "";
      renderStatus();
      if (inForm) thanks.focus();
      if (st.thread !== r.thread) await useThread(s, { thread: r.thread, read: 0 });
    })()
      .catch(function (e) {
        // Refused (the service answered with an error): shown, and the form is editable again.
        // A lost connection needs nothing here: every reconnect goes on with it.
        if (e && e.uri && pend === L) {
          L.state = "failed";
          save("leave", L);
          offErr.textContent = "Not sent: " + e.message;
          renderStatus();
        }
      })
      .finally(function () {
        leaving = null;
      });
  }

  var readTimer = null;
  /** Tells the service what the visitor has seen (panel open, tab visible): a read receipt. */
  function markRead() {
    if (!readTimer) readTimer = setTimeout(doMarkRead, 50);
  }
  function doMarkRead() {
    readTimer = null;
    if (sess && st.open && D.visibilityState === "visible" && st.thread != null) {
      var top = 0;
      bySeq.forEach(function (node, seq) {
        if (!node._status && seq > top) top = seq;
      });
      if (top > st.myRead) {
        st.myRead = top;
        sess.call("read", [st.thread, top]).catch(function () {});
      }
    }
    updateBadge();
  }

  function reportPage() {
    if (sess) sess.call("page", [location.href, D.title]).catch(function () {});
  }

  /** After each (re)connect: status, the thread and what was missed, the page, the outbox. */
  async function sync(s) {
    st.me = s.authid;
    await s.subscribe(P + "status", function (kw) {
      setStaff(!!kw.staff_online);
    });
    var threads = (await s.call("threads"))[0] || [];
    var open = threads
      .filter(function (t) {
        return t.status === "open";
      })
      .sort(function (a, b) {
        return b.thread - a.thread;
      })[0];
    // No thread is opened until the visitor writes, so page views do not fill the inbox.
    if (open) await useThread(s, open);
    var p = (await s.call("presence"))[0] || {};
    setStaff(!!p.staff_online);
    reportPage();
  }

  var wake = null;
  function nudge() {
    if (wake) wake();
  }

  /** Connects, and reconnects with exponential backoff (0.5–1 s doubling up to 30 s, jittered). */
  async function run() {
    var tries = 0;
    for (;;) {
      var s = null;
      setConn("connecting");
      try {
        s = await join(WS_URL, REALM, token());
        sess = s;
        await sync(s);
        setConn("online");
        tries = 0;
        flush(s).catch(retrySoon);
        leave();
        markRead();
        resumeCall(s).catch(function () {});
        await s.closed;
      } catch (e) {
        if (e && e.abort && /token/i.test(e.message || "")) save("token", null); // a fresh one next time
        if (s) s.close();
      }
      sess = null;
      // Offline (the browser knows it has no network): wait for the "online" event instead.
      var offline = navigator.onLine === false;
      var delay = Math.min(30000, 1000 * Math.pow(2, tries)) * (0.5 + Math.random() / 2);
      tries = Math.min(tries + 1, 5);
      retryAt = Date.now() + delay;
      setConn(offline ? "offline" : "waiting");
      await new Promise(function (r) {
        var t = offline ? 0 : setTimeout(r, delay);
        wake = function () {
          clearTimeout(t);
          r();
        };
      });
      wake = null;
    }
  }

  // ---- Calls (the call code, /call.js, is loaded on the first ring or call) ----------------------

  var caller = null; // the call controller of the thread, once loaded
  var callLib = null;
  function withCall(fn) {
    if (!callLib)
      callLib = new Promise(function (ok, no) {
        if (W.SwitchboardCall) return ok();
        var sc = D.createElement("script");
        sc.src = new URL("call.js", SRC).href;
        sc.onload = ok;
        sc.onerror = function () {
          callLib = null;
          no(new Error("call.js did not load"));
        };
        D.head.append(sc);
      });
    return callLib
      .then(function () {
        if (!caller && st.thread != null)
          caller = W.SwitchboardCall({
            mount: callHost,
            styleRoot: shadow,
            thread: st.thread,
            me: st.me,
            polite: true, // the visitor yields when both sides offer at once
            peerName: NAME,
            rpc: function (proc, args, kw) {
              return sess ? sess.call(proc, args, kw).then(function (r) { return r[0]; }) : Promise.reject(new Error("not connected"));
            },
            onState: function (state) {
              callHost.hidden = state === "idle";
              root.classList.toggle("incall", state !== "idle");
            },
          });
        if (caller) fn(caller);
      })
      .catch(function (e) {
        console.error("switchboard chat:", e);
      });
  }
  async function startCall(video) {
    if (!sess) return;
    if (st.thread == null) await useThread(sess, (await sess.call("open"))[0]);
    withCall(function (c) {
      c.start(video);
    });
  }
  audioCallBtn.addEventListener("click", function () {
    startCall(false).catch(function () {});
  });
  videoCallBtn.addEventListener("click", function () {
    startCall(true).catch(function () {});
  });
  /** After a (re)connect: a call in progress goes on (or rings again). */
  async function resumeCall(s) {
    if (st.thread == null) return;
    if (caller) return caller.resume();
    if ((await s.call("call_state", [st.thread]))[0]) withCall(async function (c) {
      await c.resume();
      if (c.state === "incoming") setOpen(true, false); // still ringing for us
    });
  }

  // ---- Opening, closing, typing ---------------------------------------------------------------

  /** Focuses where the visitor writes: the message box, or the offline form (or its thanks). */
  function focusBox() {
    (!form.hidden ? input : !thanks.hidden ? againBtn : offEmail.value ? offText : offEmail).focus();
  }

  function setOpen(open, focus) {
    st.open = open;
    save("open", open || null);
    panel.hidden = !open;
    root.classList.toggle("open", open);
    bubble.setAttribute("aria-expanded", String(open));
    if (open) {
      if (focus) focusBox();
      log.scrollTop = log.scrollHeight;
      markRead();
    } else if (focus) {
      bubble.focus();
    }
    updateBadge();
  }

  bubble.addEventListener("click", function () {
    setOpen(!st.open, true);
  });
  closeBtn.addEventListener("click", function () {
    setOpen(false, true);
  });
  retryBtn.addEventListener("click", nudge);
  root.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && st.open) {
      e.stopPropagation();
      setOpen(false, true);
    }
  });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value;
    if (!text.trim()) return;
    input.value = "";
    upErr.textContent = ""; // a failed upload's note goes once the visitor writes on
    renderStatus();
    lastTyping = 0; // the next message's first keystroke is announced again
    autosize();
    sendText(text);
    input.focus();
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });
  var lastTyping = 0;
  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 120) + "px";
  }
  input.addEventListener("input", function () {
    autosize();
    var now = Date.now();
    if (sess && st.thread != null && input.value.trim() && now - lastTyping > 3000) {
      lastTyping = now;
      sess.call("typing", [st.thread]).catch(function () {});
    }
  });
  D.addEventListener("visibilitychange", markRead);
  W.addEventListener("online", nudge);
  W.addEventListener("offline", function () {
    if (sess) sess.drop();
  });
  W.addEventListener("popstate", reportPage);
  W.addEventListener("hashchange", reportPage);

  offForm.addEventListener("submit", function (e) {
    e.preventDefault();
    if (sending()) return; // on its way: a second click sends nothing more
    var text = offText.value.trim();
    var email = offEmail.value.trim();
    var name = offName.value.trim();
    var emailOk = offEmail.validity.valid && /^[^@\s]+@[^@\s]+\.[^@\s.]+$/.test(email);
    var bad = !emailOk ? offEmail : !text ? offText : null;
    offEmail.setAttribute("aria-invalid", String(!emailOk));
    offText.setAttribute("aria-invalid", String(emailOk && !text));
    offErr.textContent = !bad ? "" : bad === offEmail ? "Please enter your email address, like name@example.com." : "Please write your message.";
    if (bad) return bad.focus();
    save("contact", { email: email, name: name });
    // The same message again after a refusal keeps its record: a retry, checked like one.
    if (!(pend && pend.text === text && pend.email === email && pend.name === name)) pend = { text: text, email: email, name: name };
    pend.state = "sending";
    save("leave", pend);
    renderStatus();
    leave();
  });
  offForm.addEventListener("input", function (e) {
    // The field named by the error is being fixed: the error goes.
    if (e.target.getAttribute("aria-invalid") === "true") {
      e.target.setAttribute("aria-invalid", "false");
      offErr.textContent = "";
    }
  });
  offText.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      offForm.requestSubmit ? offForm.requestSubmit() : offForm.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });
  againBtn.addEventListener("click", function () {
    save("left", null);
    renderStatus();
    offText.focus();
  });

  // The offline form as it was: a message still on its way (or refused), else the contact.
  var contact = pend || load("contact") || {};
  offEmail.value = typeof contact.email === "string" ? contact.email : "";
  offName.value = typeof contact.name === "string" ? contact.name : "";
  if (pend) offText.value = pend.text;

  // Messages written before a reload that were never acknowledged: shown, sent on connect.
  outbox.forEach(function (o) {
    var node = messageNode(true, o.text, "You", o.ts, null, o.file);
    setStatus(node, "pending");
    byCid.set(o.cid, node);
    list.append(node);
  });
  renderStatus();
  setOpen(st.open, false);

  function mount() {
    D.body.append(host);
    run();
  }
  if (D.body) mount();
  else D.addEventListener("DOMContentLoaded", mount);
})();
