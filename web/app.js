// Switchboard status page.
// Polls GET /api/status every 2 s and renders it. Every server-provided string
// is written with textContent only; nothing from the server is parsed as HTML.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var FETCH_TIMEOUT_MS = 5000;
  var STATUS_URL = "/api/status";

  var numberFmt = (typeof Intl !== "undefined" && Intl.NumberFormat)
    ? new Intl.NumberFormat("en-US")
    : { format: function (n) { return String(n); } };

  function $(id) {
    return document.querySelector('[data-testid="' + id + '"]');
  }

  var el = {};
  var state = {
    everOk: false,
    failures: 0,
    lastOk: null,
    timer: null,
    inFlight: false
  };

  // ---------- formatting ----------

  function toCount(v) {
    var n = Number(v);
    if (!isFinite(n) || n < 0) return 0;
    return Math.floor(n);
  }

  function formatCount(v) {
    return numberFmt.format(toCount(v));
  }

  // Human-readable duration: "42 s", "5 min 12 s", "2 h 3 min", "3 d 4 h".
  function formatUptime(secs) {
    var s = toCount(secs);
    var d = Math.floor(s / 86400);
    var h = Math.floor((s % 86400) / 3600);
    var m = Math.floor((s % 3600) / 60);
    var r = s % 60;
    if (d > 0) return d + " d " + h + " h";
    if (h > 0) return h + " h " + m + " min";
    if (m > 0) return m + " min " + r + " s";
    return r + " s";
  }

  function formatTime(date) {
    try {
      return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    } catch (e) {
      return date.toISOString();
    }
  }

  function formatDateTime(date) {
    try {
      return date.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit"
      });
    } catch (e) {
      return date.toISOString();
    }
  }

  function asText(v, fallback) {
    if (v === null || v === undefined) return fallback;
    return String(v);
  }

  function setNumber(node, value) {
    var n = toCount(value);
    node.dataset.value = String(n);
    node.textContent = formatCount(n);
  }

  // ---------- rendering ----------

  function setPill(kind, text) {
    el.pill.dataset.state = kind;
    if (el.pillText.textContent !== text) el.pillText.textContent = text;
  }

  function renderOk(data) {
    document.body.classList.remove("is-stale");

    setPill("running", "Running");
    el.state.dataset.state = "running";
    el.state.textContent = "Running";

    el.version.textContent = "v" + asText(data.version, "?");
    el.version.dataset.value = asText(data.version, "");

    el.uptime.dataset.value = String(toCount(data.uptime_secs));
    el.uptime.textContent = formatUptime(data.uptime_secs);
    el.uptime.title = formatCount(data.uptime_secs) + " seconds";

    var startedRaw = asText(data.started_at, "");
    var started = startedRaw ? new Date(startedRaw) : null;
    el.startedAt.setAttribute("datetime", startedRaw);
    if (started && !isNaN(started.getTime())) {
      el.startedAt.textContent = formatDateTime(started);
      el.startedAt.title = startedRaw;
    } else {
      el.startedAt.textContent = startedRaw || "–";
    }

    el.devBanner.hidden = data.dev_mode !== true;

    var realms = Array.isArray(data.realms) ? data.realms : [];
    setNumber(el.connections, data.connections);
    setNumber(el.sessions, data.sessions);
    setNumber(el.realmCount, realms.length);
    setNumber(el.msgIn, data.messages_in);
    setNumber(el.msgOut, data.messages_out);

    renderRealms(realms);

    el.connBanner.hidden = true;
    el.lastUpdated.textContent = "Updated " + formatTime(state.lastOk);
  }

  function cell(text, label, testid) {
    var td = document.createElement("td");
    td.className = "num";
    td.setAttribute("role", "cell");
    td.dataset.testid = testid;
    // data-label is a fixed string from this file, shown as a caption on phones.
    td.dataset.label = label;
    td.textContent = text;
    return td;
  }

  function renderRealms(realms) {
    var sorted = realms.slice().sort(function (a, b) {
      var an = asText(a && a.name, ""), bn = asText(b && b.name, "");
      return an < bn ? -1 : an > bn ? 1 : 0;
    });
    var frag = document.createDocumentFragment();
    sorted.forEach(function (r) {
      r = r || {};
      var tr = document.createElement("tr");
      tr.dataset.testid = "realm-row";
      tr.dataset.realm = asText(r.name, "");
      tr.setAttribute("role", "row");
      var th = document.createElement("th");
      th.scope = "row";
      th.setAttribute("role", "rowheader");
      th.dataset.testid = "realm-name";
      th.textContent = asText(r.name, "(unnamed)");
      tr.appendChild(th);
      tr.appendChild(cell(formatCount(r.sessions), "Sessions", "realm-sessions"));
      tr.appendChild(cell(formatCount(r.subscriptions), "Subscriptions", "realm-subscriptions"));
      tr.appendChild(cell(formatCount(r.registrations), "Registrations", "realm-registrations"));
      frag.appendChild(tr);
    });
    el.realmsBody.replaceChildren(frag);
    el.realmsEmpty.hidden = sorted.length > 0;
    el.realmsWrap.hidden = sorted.length === 0;
  }

  function renderError(reason) {
    state.failures += 1;
    var secs = Math.round(POLL_MS / 1000);
    var msg = "Server unreachable (" + reason + "), retrying every " + secs + " s";
    if (state.lastOk) msg += " · last update " + formatTime(state.lastOk);
    el.connState.textContent = msg;
    el.connBanner.hidden = false;
    setPill("unreachable", "Unreachable");
    el.state.dataset.state = "unreachable";
    el.state.textContent = state.everOk ? "Unreachable" : "Waiting for server";
    if (state.everOk) document.body.classList.add("is-stale");
  }

  // ---------- polling ----------

  function fetchStatus() {
    var ctrl = typeof AbortController !== "undefined" ? new AbortController() : null;
    var timeout = setTimeout(function () { if (ctrl) ctrl.abort(); }, FETCH_TIMEOUT_MS);
    return fetch(STATUS_URL, {
      cache: "no-store",
      headers: { "Accept": "application/json" },
      signal: ctrl ? ctrl.signal : undefined
    }).then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.json().catch(function () { throw new Error("invalid response"); });
    }).then(function (data) {
      if (!data || typeof data !== "object") throw new Error("invalid response");
      return data;
    }, function (err) {
      if (err && err.name === "AbortError") throw new Error("timed out");
      if (err && /^(HTTP |invalid)/.test(err.message)) throw err;
      throw new Error("network error");
    }).finally(function () {
      clearTimeout(timeout);
    });
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(poll, POLL_MS);
  }

  function poll() {
    if (state.inFlight) return;
    state.inFlight = true;
    fetchStatus().then(function (data) {
      state.everOk = true;
      state.failures = 0;
      state.lastOk = new Date();
      renderOk(data);
    }, function (err) {
      renderError(err && err.message ? err.message : "error");
    }).finally(function () {
      state.inFlight = false;
      schedule();
    });
  }

  // ---------- connect section ----------

  function wsUrl() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + "/ws";
  }

  function setupConnect() {
    var url = wsUrl();
    el.wsUrl.textContent = url;
    el.snippetUrl.textContent = url;

    el.copyBtn.addEventListener("click", function () {
      var done = function (ok) {
        el.copyBtn.textContent = ok ? "Copied" : "Press Ctrl+C";
        setTimeout(function () { el.copyBtn.textContent = "Copy"; }, 1800);
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(url).then(function () { done(true); }, function () { selectUrl(); done(false); });
      } else {
        selectUrl();
        done(false);
      }
    });
  }

  function selectUrl() {
    var range = document.createRange();
    range.selectNodeContents(el.wsUrl);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // ---------- start ----------

  function init() {
    el = {
      pill: $("status-pill"),
      pillText: $("status-pill-text"),
      state: $("status-state"),
      version: $("version"),
      uptime: $("uptime"),
      startedAt: $("started-at"),
      devBanner: $("dev-banner"),
      connBanner: $("conn-banner"),
      connState: $("conn-state"),
      connections: $("stat-connections"),
      sessions: $("stat-sessions"),
      realmCount: $("stat-realms"),
      msgIn: $("stat-messages-in"),
      msgOut: $("stat-messages-out"),
      realmsWrap: $("realms-wrap"),
      realmsBody: $("realms-body"),
      realmsEmpty: $("realms-empty"),
      lastUpdated: $("last-updated"),
      wsUrl: $("ws-url"),
      snippetUrl: $("snippet-url"),
      copyBtn: $("copy-ws-url")
    };
    setupConnect();
    poll();

    // Refresh immediately when the tab becomes visible again.
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && !state.inFlight) {
        clearTimeout(state.timer);
        poll();
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
