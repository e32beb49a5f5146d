// Switchboard admin view: a WAMP client of this router (web/wamp.js) that shows the realm's
// sessions, subscriptions and registrations from the meta API, live, and can kill sessions.
//
// Everything a peer or the router sends is written with textContent / attributes only:
// nothing from the network is ever parsed as HTML.

import { connect, WampError, TRANSPORT_LOST } from "/wamp.js";

const STORE_KEY = "switchboard.admin.login"; // non-secret login fields
const POLL_MS = 2000; // message counters have no events: refresh them this often
const MAX_POLLED = 500; // sessions whose counters are refreshed per round

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

let el = {};
/** The current meta-API client and everything it shows; replaced on every login. */
let live = null;

// ---------- small helpers ----------

const numberFmt = new Intl.NumberFormat("en-US");

function text(v, fallback = "–") {
  if (v === null || v === undefined || v === "") return fallback;
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function count(v) {
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : null;
}

function formatWhen(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return text(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  try {
    return sameDay
      ? d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" })
      : d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  } catch {
    return d.toISOString();
  }
}

function isUri(e, uri) {
  return e instanceof WampError && e.uri === uri;
}

function wsUrl(input) {
  const v = String(input || "").trim() || "/ws";
  if (/^wss?:\/\//i.test(v)) return v;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${v.startsWith("/") ? v : `/${v}`}`;
}

// ---------- errors ----------

const LOGIN_ERRORS = {
  "wamp.error.not_authorized": "Login refused: wrong credentials, or too many failed attempts",
  "wamp.error.no_such_principal": "Login refused: unknown Auth ID",
  "wamp.error.no_auth_method": "Login refused: this transport does not accept that authentication method",
  "wamp.error.no_such_realm": "Login refused: this router has no such realm",
  "wamp.error.no_such_role": "Login refused: the account's role does not exist on this realm",
  "wamp.error.authentication_failed": "Login failed: the authenticator did not answer properly",
  "wamp.error.cannot_authenticate": "Cannot log in from this page",
  [TRANSPORT_LOST]: "Cannot reach the router",
};

function showError(title, detail = "", uri = "") {
  el.errorTitle.textContent = title;
  el.errorDetail.textContent = detail;
  el.errorDetail.hidden = !detail;
  el.errorUri.textContent = uri;
  el.errorUri.parentElement.hidden = !uri;
  el.error.hidden = false;
}

function clearError() {
  el.error.hidden = true;
}

/** Explains a failed meta call (`what`: what the page tried). */
function showMetaError(what, e) {
  if (isUri(e, "wamp.error.not_authorized")) {
    showError("This account may not use the meta API", `${what}: ${e.message}`, e.uri);
  } else if (e instanceof WampError) {
    showError(`Could not ${what}`, e.message, e.uri);
  } else {
    showError(`Could not ${what}`, String(e && e.message ? e.message : e));
  }
}

// ---------- page state ----------

function setState(state, pill) {
  document.body.dataset.state = state;
  el.pill.dataset.state = state;
  el.pillText.textContent = pill;
  const signedIn = state === "live";
  el.login.hidden = signedIn;
  el.dashboard.hidden = !signedIn;
  el.logout.hidden = !signedIn;
  el.submit.disabled = state === "connecting";
}

function loadFields() {
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(STORE_KEY) || "{}") || {};
  } catch {
    saved = {};
  }
  if (typeof saved.url === "string" && saved.url) el.url.value = saved.url;
  if (typeof saved.realm === "string" && saved.realm) el.realm.value = saved.realm;
  if (["anonymous", "ticket", "wampcra"].includes(saved.authmethod)) el.method.value = saved.authmethod;
  if (typeof saved.authid === "string") el.authid.value = saved.authid;
}

function saveFields() {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify({
      url: el.url.value.trim(),
      realm: el.realm.value.trim(),
      authmethod: el.method.value,
      authid: el.authid.value.trim(),
    }));
  } catch {
    /* storage disabled: nothing to remember */
  }
}

function methodChanged() {
  el.secretField.hidden = el.method.value === "anonymous";
}

// ---------- live tables ----------

/**
 * A table body whose rows are kept by key and updated in place (so focus and clicks survive
 * refreshes). `columns`: [{ testid, cls, render(data) → { text, value?, title? } }].
 */
class LiveTable {
  constructor({ body, wrap, empty, counter, rowTestid, keyAttr, columns, sortKey, decorate }) {
    Object.assign(this, { body, wrap, empty, counter, rowTestid, keyAttr, columns, sortKey, decorate });
    this.rows = new Map(); // key → { tr, cells, data, sort }
    this.refreshChrome();
  }

  has(key) {
    return this.rows.has(key);
  }

  get(key) {
    return this.rows.get(key)?.data;
  }

  keys() {
    return [...this.rows.keys()];
  }

  upsert(key, data) {
    let row = this.rows.get(key);
    if (!row) {
      const tr = document.createElement("tr");
      tr.dataset.testid = this.rowTestid;
      tr.dataset[this.keyAttr] = String(key);
      const cells = this.columns.map((c) => {
        const td = document.createElement("td");
        td.dataset.testid = c.testid;
        if (c.label) td.dataset.label = c.label;
        if (c.cls) td.className = c.cls;
        tr.appendChild(td);
        return td;
      });
      row = { tr, cells, data, sort: null };
      this.rows.set(key, row);
      if (this.decorate) this.decorate(tr, key, data, true);
    }
    row.data = data;
    this.columns.forEach((c, i) => {
      if (!c.render) return;
      const r = c.render(data);
      const td = row.cells[i];
      if (td.textContent !== r.text) td.textContent = r.text;
      if (r.value !== undefined) td.dataset.value = String(r.value);
      if (r.title) td.title = r.title;
    });
    if (this.decorate) this.decorate(row.tr, key, data, false);
    const sort = this.sortKey(data);
    if (sort !== row.sort || !row.tr.isConnected) {
      row.sort = sort;
      this.place(row);
    }
    this.refreshChrome();
  }

  /** Inserts `row` at its sorted position. */
  place(row) {
    let before = null;
    for (const other of this.rows.values()) {
      if (other === row || !other.tr.isConnected) continue;
      if (other.sort > row.sort && (!before || other.sort < before.sort)) before = other;
    }
    this.body.insertBefore(row.tr, before ? before.tr : null);
  }

  remove(key) {
    const row = this.rows.get(key);
    if (!row) return;
    row.tr.remove();
    this.rows.delete(key);
    this.refreshChrome();
  }

  clear() {
    this.rows.clear();
    this.body.replaceChildren();
    this.refreshChrome();
  }

  refreshChrome() {
    const n = this.rows.size;
    this.counter.textContent = numberFmt.format(n);
    this.counter.dataset.value = String(n);
    if (this.empty) {
      this.empty.hidden = n > 0;
      this.wrap.hidden = n === 0;
    }
  }
}

const plain = (key, fallback) => (d) => ({ text: text(d[key], fallback) });
const number = (key) => (d) => {
  const n = count(d[key]);
  return n === null ? { text: "–", value: "" } : { text: numberFmt.format(n), value: n };
};
const when = (key) => (d) => ({ text: formatWhen(d[key]), value: text(d[key], ""), title: text(d[key], "") });

function transportText(t) {
  if (!t || typeof t !== "object") return "internal";
  const framing = text(t.channel_framing || t.type, "?");
  return t.channel_type ? `${framing} / ${t.channel_type}` : framing;
}

function sessionColumns() {
  return [
    { testid: "session-id", cls: "mono", label: "Session", render: plain("session") },
    { testid: "session-authid", cls: "mono strong", label: "Auth ID", render: plain("authid") },
    { testid: "session-role", label: "Role", render: plain("authrole") },
    { testid: "session-authmethod", label: "Method", render: plain("authmethod") },
    { testid: "session-transport", label: "Transport", render: (d) => ({ text: transportText(d.transport) }) },
    { testid: "session-serializer", label: "Serializer", render: plain("serializer") },
    { testid: "session-address", cls: "mono", label: "Address", render: (d) => ({ text: text(d.transport && d.transport.peer) }) },
    { testid: "session-joined", label: "Connected since", render: when("joined") },
    { testid: "session-in", cls: "num", label: "Msgs in", render: number("messages_in") },
    { testid: "session-out", cls: "num", label: "Msgs out", render: number("messages_out") },
    { testid: "session-actions", cls: "actions", render: null },
  ];
}

// ---------- the live view ----------

class LiveView {
  constructor(session, url) {
    this.session = session;
    this.url = url;
    this.closed = false;
    this.pollTimer = null;
    this.polling = false;
    this.sessions = new LiveTable({
      body: el.sessionsBody, wrap: el.sessionsWrap, empty: null, counter: el.sessionsCount,
      rowTestid: "session-row", keyAttr: "session",
      columns: sessionColumns(),
      sortKey: (d) => `${text(d.joined, "")}|${String(d.session).padStart(16, "0")}`,
      decorate: (tr, id, d, created) => this.decorateSession(tr, id, d, created),
    });
    this.subs = new LiveTable({
      body: el.subsBody, wrap: el.subsWrap, empty: el.subsEmpty, counter: el.subsCount,
      rowTestid: "subscription-row", keyAttr: "subscription",
      columns: [
        { testid: "subscription-uri", cls: "mono strong", label: "Topic", render: plain("uri") },
        { testid: "subscription-match", label: "Match", render: plain("match") },
        { testid: "subscription-count", cls: "num", label: "Subscribers", render: number("count") },
        { testid: "subscription-created", label: "Created", render: when("created") },
        { testid: "subscription-id", cls: "mono", label: "ID", render: plain("id") },
      ],
      sortKey: (d) => `${text(d.uri, "")}|${text(d.match, "")}`,
    });
    this.regs = new LiveTable({
      body: el.regsBody, wrap: el.regsWrap, empty: el.regsEmpty, counter: el.regsCount,
      rowTestid: "registration-row", keyAttr: "registration",
      columns: [
        { testid: "registration-uri", cls: "mono strong", label: "Procedure", render: plain("uri") },
        { testid: "registration-match", label: "Match", render: plain("match") },
        { testid: "registration-invoke", label: "Invoke", render: plain("invoke") },
        { testid: "registration-count", cls: "num", label: "Callees", render: number("count") },
        { testid: "registration-created", label: "Created", render: when("created") },
        { testid: "registration-id", cls: "mono", label: "ID", render: plain("id") },
      ],
      sortKey: (d) => `${text(d.uri, "")}|${text(d.match, "")}`,
    });
  }

  decorateSession(tr, id, d, created) {
    const own = id === this.session.id;
    tr.classList.toggle("own", own);
    if (!created) return;
    const cell = tr.querySelector('[data-testid="session-actions"]');
    if (own) {
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.dataset.testid = "session-own";
      tag.textContent = "this page";
      cell.appendChild(tag);
      return;
    }
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "btn btn-danger btn-small";
    btn.dataset.testid = "session-kill";
    btn.dataset.session = String(id);
    btn.textContent = "Kill";
    btn.setAttribute("aria-label", `Kill session ${id}`);
    btn.addEventListener("click", () => askKill(this, id));
    cell.appendChild(btn);
  }

  /** Subscribes to the meta events, then loads the current state. Throws on refusal. */
  async start() {
    const s = this.session;
    const on = (topic, fn) => s.subscribe(topic, (args) => {
      if (!this.closed) fn(Array.isArray(args) ? args : []);
    });
    await Promise.all([
      on("wamp.session.on_join", ([details]) => this.sessionJoined(details)),
      on("wamp.session.on_leave", ([id]) => this.sessions.remove(id)),
      on("wamp.subscription.on_create", ([, details]) => this.refresh("subscription", details && details.id)),
      on("wamp.subscription.on_subscribe", ([, id]) => this.refresh("subscription", id)),
      on("wamp.subscription.on_unsubscribe", ([, id]) => this.refresh("subscription", id)),
      on("wamp.subscription.on_delete", ([, id]) => this.subs.remove(id)),
      on("wamp.registration.on_create", ([, details]) => this.refresh("registration", details && details.id)),
      on("wamp.registration.on_register", ([, id]) => this.refresh("registration", id)),
      on("wamp.registration.on_unregister", ([, id]) => this.refresh("registration", id)),
      on("wamp.registration.on_delete", ([, id]) => this.regs.remove(id)),
    ]);
    const [sessions, subs, regs] = await Promise.all([
      s.call("wamp.session.list"),
      s.call("wamp.subscription.list"),
      s.call("wamp.registration.list"),
    ]);
    const ids = (r) => {
      const v = r.args[0];
      if (Array.isArray(v)) return v;
      if (v && typeof v === "object") return [...(v.exact || []), ...(v.prefix || []), ...(v.wildcard || [])];
      return [];
    };
    await Promise.all([
      ...ids(sessions).map((id) => this.refreshSession(id)),
      ...ids(subs).map((id) => this.refresh("subscription", id)),
      ...ids(regs).map((id) => this.refresh("registration", id)),
    ]);
    this.touch();
    this.schedulePoll();
  }

  sessionJoined(details) {
    if (details && typeof details === "object" && details.session !== undefined) {
      this.sessions.upsert(details.session, details);
      this.touch();
    }
  }

  /** Reads one session's details; a session that is gone leaves the table. */
  async refreshSession(id) {
    try {
      const r = await this.session.call("wamp.session.get", [id]);
      if (!this.closed && r.args[0]) this.sessions.upsert(id, r.args[0]);
    } catch (e) {
      if (isUri(e, "wamp.error.no_such_session")) this.sessions.remove(id);
      else throw e;
    }
  }

  /** Reads one subscription or registration and its subscriber/callee count. */
  async refresh(kind, id) {
    if (id === undefined || id === null || this.closed) return;
    const table = kind === "subscription" ? this.subs : this.regs;
    const counter = kind === "subscription" ? "count_subscribers" : "count_callees";
    try {
      const [details, n] = await Promise.all([
        this.session.call(`wamp.${kind}.get`, [id]),
        this.session.call(`wamp.${kind}.${counter}`, [id]),
      ]);
      const d = details.args[0];
      if (this.closed || !d || typeof d !== "object") return;
      // The page's own meta subscriptions (and anyone's to wamp.*) fire no events: not shown.
      if (String(d.uri || "").startsWith("wamp.")) return;
      table.upsert(id, { ...d, count: n.args[0] });
      this.touch();
    } catch (e) {
      if (isUri(e, `wamp.error.no_such_${kind}`)) table.remove(id);
      else if (!this.closed) showMetaError(`read ${kind} ${id}`, e);
    }
  }

  schedulePoll() {
    clearTimeout(this.pollTimer);
    if (!this.closed) this.pollTimer = setTimeout(() => this.poll(), POLL_MS);
  }

  /** Refreshes the message counters (they change without events). */
  async poll() {
    if (this.closed || this.polling) return;
    this.polling = true;
    try {
      const ids = this.sessions.keys().slice(0, MAX_POLLED);
      const results = await Promise.allSettled(ids.map((id) => this.refreshSession(id)));
      const failed = results.find((r) => r.status === "rejected");
      if (failed && !this.closed) showMetaError("refresh the sessions", failed.reason);
      else this.touch();
    } finally {
      this.polling = false;
      this.schedulePoll();
    }
  }

  touch() {
    el.updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  stop() {
    this.closed = true;
    clearTimeout(this.pollTimer);
    this.sessions.clear();
    this.subs.clear();
    this.regs.clear();
    el.updated.textContent = "Not connected";
  }
}

// ---------- kill ----------

let killTarget = null;

function askKill(view, id) {
  const d = view.sessions.get(id) || {};
  killTarget = { view, id };
  el.killSession.textContent = String(id);
  el.killWho.textContent = `${text(d.authid)} (role ${text(d.authrole)}), ${transportText(d.transport)} from ${text(d.transport && d.transport.peer)}`;
  el.killDialog.querySelector("form").reset(); // the default reason and message each time
  el.killDialog.returnValue = "";
  el.killDialog.showModal();
  el.killCancel.focus();
}

async function killConfirmed() {
  const target = killTarget;
  killTarget = null;
  if (!target || el.killDialog.returnValue !== "kill" || target.view !== live) return;
  const { view, id } = target;
  const reason = el.killReason.value.trim() || "wamp.close.killed";
  const message = el.killMessage.value.trim();
  const btn = el.sessionsBody.querySelector(`[data-testid="session-kill"][data-session="${CSS.escape(String(id))}"]`);
  if (btn) {
    btn.disabled = true;
    btn.textContent = "Killing…";
  }
  try {
    await view.session.call("wamp.session.kill", [id], message ? { reason, message } : { reason });
    clearError();
    // The row leaves with wamp.session.on_leave.
  } catch (e) {
    if (btn) {
      btn.disabled = false;
      btn.textContent = "Kill";
    }
    if (isUri(e, "wamp.error.no_such_session")) {
      view.sessions.remove(id);
      showError(`Session ${id} is already gone`, e.message, e.uri);
    } else if (isUri(e, "wamp.error.not_authorized")) {
      showError("This account may not kill sessions", e.message, e.uri);
    } else {
      showMetaError(`kill session ${id}`, e);
    }
  }
}

// ---------- login / logout ----------

function sessionClosed(view, info) {
  if (live !== view) return;
  view.stop();
  live = null;
  setState("signed-out", "Signed out");
  if (info.byClient) return;
  if (info.reason === "wamp.close.killed") {
    showError("This page's session was killed", info.message || "", info.reason);
  } else if (info.reason === TRANSPORT_LOST) {
    showError("Connection to the router lost", `${info.message || ""} — log in again to reconnect`.replace(/^ — /, ""), info.reason);
  } else {
    showError("The router closed this page's session", info.message || "", info.reason || "");
  }
}

async function login(ev) {
  ev.preventDefault();
  if (document.body.dataset.state === "connecting") return;
  clearError();
  saveFields();
  const url = wsUrl(el.url.value);
  const realm = el.realm.value.trim();
  const authmethod = el.method.value;
  if (!realm) {
    showError("Enter a realm", "The realm to administer, e.g. realm1.");
    return;
  }
  setState("connecting", "Connecting…");
  let view = null;
  let session;
  try {
    session = await connect({
      url,
      realm,
      authmethods: [authmethod],
      authid: el.authid.value.trim() || undefined,
      secret: authmethod === "anonymous" ? undefined : el.secret.value,
      onclose: (info) => view && sessionClosed(view, info),
    });
  } catch (e) {
    setState("signed-out", "Signed out");
    const title = (e instanceof WampError && LOGIN_ERRORS[e.uri]) || "Login failed";
    showError(title, e.message === e.uri ? "" : e.message, e instanceof WampError ? e.uri : "");
    return;
  }
  view = new LiveView(session, url);
  if (live) live.stop();
  live = view;
  el.whoAuthid.textContent = text(session.details.authid);
  el.whoRole.textContent = text(session.details.authrole);
  el.whoRealm.textContent = realm;
  el.whoUrl.textContent = url;
  try {
    await view.start();
  } catch (e) {
    if (live === view) {
      view.stop();
      live = null;
    }
    const closing = session.close("wamp.close.close_realm");
    setState("signed-out", "Signed out");
    if (isUri(e, "wamp.error.not_authorized")) {
      showError(
        "This account may not use the meta API",
        `Signed in as ${text(session.details.authid)} (role ${text(session.details.authrole)}), but the router refused: ${e.message}`,
        e.uri,
      );
    } else {
      showMetaError("load the realm's sessions", e);
    }
    await closing;
    return;
  }
  if (live === view) setState("live", "Live");
}

async function logout() {
  const view = live;
  if (!view) return;
  live = null;
  view.stop();
  clearError();
  setState("signed-out", "Signed out");
  await view.session.close("wamp.close.close_realm");
}

// ---------- start ----------

function init() {
  el = {
    pill: $("admin-pill"), pillText: $("admin-pill-text"), logout: $("logout"),
    error: $("admin-error"), errorTitle: $("admin-error-title"), errorDetail: $("admin-error-detail"),
    errorUri: $("admin-error-uri"),
    login: $("login"), form: $("login-form"), url: $("login-url"), realm: $("login-realm"),
    method: $("login-method"), authid: $("login-authid"), secret: $("login-secret"),
    secretField: $("login-secret-field"), submit: $("login-submit"),
    dashboard: $("dashboard"), whoAuthid: $("whoami-authid"), whoRole: $("whoami-role"),
    whoRealm: $("whoami-realm"), whoUrl: $("whoami-url"),
    sessionsBody: $("sessions-body"), sessionsWrap: $("sessions-wrap"), sessionsCount: $("sessions-count"),
    subsBody: $("subscriptions-body"), subsWrap: $("subscriptions-wrap"), subsEmpty: $("subscriptions-empty"),
    subsCount: $("subscriptions-count"),
    regsBody: $("registrations-body"), regsWrap: $("registrations-wrap"), regsEmpty: $("registrations-empty"),
    regsCount: $("registrations-count"),
    killDialog: $("kill-dialog"), killSession: $("kill-session"), killWho: $("kill-who"),
    killReason: $("kill-reason"), killMessage: $("kill-message"), killCancel: $("kill-cancel"),
    updated: $("last-updated"),
  };
  loadFields();
  methodChanged();
  el.method.addEventListener("change", methodChanged);
  el.form.addEventListener("submit", login);
  el.logout.addEventListener("click", logout);
  el.killDialog.addEventListener("close", killConfirmed);
  setState("signed-out", "Signed out");
  document.body.dataset.ready = "true";
}

init();
