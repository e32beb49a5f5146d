// Switchboard staff inbox: a WAMP client of this router (web/wamp.js) for the built-in chat
// service (`switchboard.chat.*`, see README "Live chat" and "Staff inbox").
//
// Threads with unread counts, status and assignee; the open conversation with history paging
// (newest 50, then older pages by cursor when scrolled to the top), typing and read state both
// ways; online visitors and the page they are on; search; browser notifications and an unread
// count in the tab title.
//
// Everything visitors (or anyone) send is written with textContent / attributes only: nothing
// from the network is ever parsed as HTML. Links in messages are built as <a> elements, and only
// for http: and https: URLs.
//
// Attachments (the paperclip, a pasted image, files dropped on the conversation): upload() opens
// a slot, the bytes are PUT there, send(thread, "", {file}) attaches the file. Images the server
// serves inline show as thumbnails that open full size in a new tab; everything else is a
// download link "NAME · SIZE". file_url() renews a link that expired (signed for an hour).

import { connect, WampError, TRANSPORT_LOST } from "/wamp.js";

const P = "switchboard.chat.";
const STORE_KEY = "switchboard.inbox.login"; // non-secret login fields
const TITLE = "Switchboard inbox";
const PAGE = 50; // history page size
const TYPING_EVERY_MS = 2000; // at most one typing() call per this interval
const TYPING_SHOWN_MS = 5000; // a typing indicator without a new event fades after this
const PRESENCE_POLL_MS = 15000; // page changes have no event: presence() is re-read this often
const PREVIEW_LOADS = 100; // threads whose last message is fetched for the list at login
const NOTIFY_MAX = 200; // characters of a message shown in a notification

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

let el = {};
/** The signed-in inbox (one per login; replaced on reconnect). */
let live = null;
/** Credentials of this tab's login, in memory only, to reconnect after a lost connection. */
let creds = null;
let reconnectTimer = null;
/** What to restore after a reconnect: the open thread and replies not yet stored. */
let resume = { openId: null, outbox: [] };
/** The call in progress (web/call.js), across reconnects: { ctl, thread, sub }. */
let phone = null;

// ---------- small helpers ----------

const numberFmt = new Intl.NumberFormat("en-US");

function text(v, fallback = "–") {
  if (v === null || v === undefined || v === "") return fallback;
  return typeof v === "object" ? JSON.stringify(v) : String(v);
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

function formatTime(ms) {
  const d = new Date(Number(ms));
  if (!ms || Number.isNaN(d.getTime())) return "";
  const sameDay = d.toDateString() === new Date().toDateString();
  try {
    return sameDay
      ? d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
      : d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  } catch {
    return d.toISOString();
  }
}

function make(tag, cls, textContent) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (textContent !== undefined) n.textContent = textContent;
  return n;
}

/** An http(s) URL as an absolute href, or null for anything else (javascript:, data:, …). */
function safeHref(s) {
  try {
    const u = new URL(String(s));
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

function link(href, label) {
  const a = make("a", "", label);
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  return a;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

/** Appends `value` to `parent` as text, with http(s) URLs as links. Never parses HTML. */
function appendLinkified(parent, value) {
  const s = String(value ?? "");
  let last = 0;
  for (const m of s.matchAll(URL_RE)) {
    const url = m[0].replace(/[.,;:!?)\]}]+$/, "");
    const href = safeHref(url);
    if (!href) continue;
    if (m.index > last) parent.appendChild(document.createTextNode(s.slice(last, m.index)));
    parent.appendChild(link(href, url));
    last = m.index + url.length;
  }
  if (last < s.length) parent.appendChild(document.createTextNode(s.slice(last)));
}

/** Appends `value` as text with each (case-insensitive) occurrence of `query` in a <mark>. */
function appendHighlighted(parent, value, query) {
  const s = String(value ?? "");
  const q = String(query || "").toLowerCase();
  if (!q) {
    parent.appendChild(document.createTextNode(s));
    return;
  }
  const lower = s.toLowerCase();
  let at = 0;
  for (;;) {
    const i = lower.indexOf(q, at);
    if (i < 0 || lower.length !== s.length) break; // (case mapping changed lengths: no marks)
    if (i > at) parent.appendChild(document.createTextNode(s.slice(at, i)));
    parent.appendChild(make("mark", "", s.slice(i, i + q.length)));
    at = i + q.length;
  }
  if (at < s.length) parent.appendChild(document.createTextNode(s.slice(at)));
}

/** "120 KB": a file's size for people. */
function humanSize(n) {
  n = Number(n) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${Math.round(n / 1024)} KB`;
  return `${(n / 1048576).toFixed(1).replace(/\.0$/, "")} MB`;
}

/** A message's text for one-line places (the thread list, notifications): a file's name when
 *  the message is only a file. */
function messageSummary(m) {
  const t = String(m.text ?? "").replace(/\s+/g, " ");
  return !t.trim() && m.file && m.file.name ? `${m.file.inline ? "Image" : "File"}: ${m.file.name}` : t;
}

/** The paperclip of download links (an SVG: no emoji font needed). */
function clipIcon() {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "file-icon");
  const p = document.createElementNS(NS, "path");
  p.setAttribute("d", "M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z");
  svg.appendChild(p);
  return svg;
}

/** The server's upload limit, learned from the first upload() answer (or its refusal). */
let maxFileBytes = 0;

/** Why an upload failed, for people. */
function uploadError(e, name) {
  const msg = String((e && e.message) || "");
  const uri = (e && e.uri) || "";
  const most = /at most (\d+)/.exec(msg);
  if (most) maxFileBytes = Number(most[1]);
  if (most || (e && e.status === 413)) {
    return `${name} is too big${maxFileBytes ? `: files can have at most ${humanSize(maxFileBytes)}` : ""}.`;
  }
  const not = `Not sent: ${name}: `;
  if (uri === "switchboard.chat.error.overloaded") return not + (/full/.test(msg) ? "the chat's file storage is full." : "the server is busy; try again shortly.");
  const wait = Number((/retry in (\d+) s/.exec(msg) || [])[1]);
  if (uri === "switchboard.chat.error.rate_limited") {
    return `${not}too many files; ${!wait ? "try again later" : `retry in ${wait < 120 ? `${wait} s` : `${Math.ceil(wait / 60)} min`}`}.`;
  }
  if ((!uri && !(e && e.status)) || uri === TRANSPORT_LOST || uri.startsWith("wamp.close.")) {
    return `${not}no connection to the server. Check the network and try again.`;
  }
  return not + msg;
}

/** PUTs a file's bytes to its upload slot (`onProgress(0..1)`); resolves with what was stored. */
function putFile(url, file, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("PUT", url);
    x.timeout = 130000;
    x.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    x.onload = () => {
      let r = null;
      try {
        r = x.status === 201 ? JSON.parse(x.responseText) : null;
      } catch {
        /* refused below */
      }
      if (r && r.file) resolve(r);
      else reject(Object.assign(new Error((x.responseText || "").trim() || `HTTP ${x.status}`), { status: x.status }));
    };
    x.onerror = x.ontimeout = () => reject(new Error("network"));
    x.send(file);
  });
}

function visitorLabel(authid) {
  const a = String(authid || "");
  if (a.startsWith("visitor:")) return `Visitor ${a.slice(-6)}`;
  return a || "Visitor";
}

function threadName(t) {
  return t.visitor_name ? String(t.visitor_name) : visitorLabel(t.visitor);
}

function newClientId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// ---------- errors and page state ----------

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

function showCallError(what, e) {
  if (isUri(e, "wamp.error.no_such_procedure")) {
    showError(`Could not ${what}`, "This server's chat service does not offer that yet.", e.uri);
  } else if (e instanceof WampError) {
    showError(`Could not ${what}`, e.message === e.uri ? "" : e.message, e.uri);
  } else {
    showError(`Could not ${what}`, String(e && e.message ? e.message : e));
  }
}

function setState(state, pill) {
  document.body.dataset.state = state;
  el.pill.dataset.state = state === "live" ? "live" : state === "signed-out" ? "signed-out" : "connecting";
  el.pillText.textContent = pill;
  const inside = state === "live" || state === "reconnecting";
  el.login.hidden = inside;
  el.inbox.hidden = !inside;
  el.logout.hidden = !inside;
  el.whoami.hidden = !inside;
  el.submit.disabled = state === "connecting";
  el.send.disabled = state !== "live";
  refreshNotifyButton();
  if (!inside) document.title = TITLE;
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
  if (["ticket", "wampcra"].includes(saved.authmethod)) el.method.value = saved.authmethod;
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

// ---------- notifications ----------

function notificationsSupported() {
  return typeof window.Notification === "function";
}

function refreshNotifyButton() {
  const inside = document.body.dataset.state === "live" || document.body.dataset.state === "reconnecting";
  el.notify.hidden = !inside || !notificationsSupported() || Notification.permission !== "default";
}

async function enableNotifications() {
  if (!notificationsSupported()) return;
  try {
    await Notification.requestPermission(); // on a user gesture (this click)
  } catch {
    /* older browsers: callback form only; nothing else to do */
  }
  refreshNotifyButton();
}

// ---------- the inbox ----------

/**
 * One signed-in inbox: the session, the threads, the online people and the open conversation.
 * Subscribes first and buffers events until the initial lists are loaded, so nothing between
 * the two is lost.
 */
class Inbox {
  constructor(session) {
    this.session = session;
    this.me = String(session.details.authid || "");
    this.role = String(session.details.authrole || "");
    this.closed = false;
    this.loading = true;
    this.buffered = [];
    this.threads = new Map(); // id → { s: summary, unread, preview, li }
    this.visitors = new Map(); // authid → { authid, sessions, page_url, page_title }
    this.staff = new Map(); // authid → {…}
    this.lastSeen = new Map(); // authid → last_seen_ms (from presence events)
    // Who is online: presence() at login, then the presence topic. More current than a thread
    // summary's `visitor_online`, which can miss a visitor who joined a moment ago.
    this.online = null;
    this.knownStaff = new Set([this.me]); // for the assign menu: me, online staff, assignees
    this.conv = null; // the open conversation
    this.presenceTimer = null;
    this.presencePoll = null;
    this.readTimer = null;
    this.features = { search: null, export: null, forget: null };
  }

  call(name, args = [], kwargs = {}) {
    return this.session.call(P + name, args, kwargs);
  }

  /** Subscribes, loads threads and presence. Throws (e.g. not_authorized) if not staff. */
  async start() {
    const s = this.session;
    const buffered = (fn) => (args, kwargs) => {
      if (this.closed) return;
      if (this.loading) this.buffered.push(() => fn(kwargs || {}, args || []));
      else fn(kwargs || {}, args || []);
    };
    // A visitor, or an account that is not staff, is refused here (not_authorized).
    await Promise.all([
      s.subscribe(`${P}inbox`, buffered((k) => this.inboxEvent(k))),
      s.subscribe(`${P}presence`, buffered((k) => this.presenceEvent(k))),
    ]);
    const [list, presence] = await Promise.all([this.call("threads"), this.call("presence")]);
    for (const t of Array.isArray(list.args[0]) ? list.args[0] : []) this.upsertThread(t, true);
    this.applyPresence(presence.args[0]);
    this.loading = false;
    for (const fn of this.buffered.splice(0)) fn();
    this.refreshList();
    this.presencePoll = setInterval(() => this.refreshPresence(), PRESENCE_POLL_MS);
    this.loadPreviews();
    this.touch();
  }

  stop() {
    this.closed = true;
    clearInterval(this.presencePoll);
    clearTimeout(this.presenceTimer);
    clearTimeout(this.readTimer);
    if (this.conv) clearTimeout(this.conv.typingTimer);
    this.conv = null;
  }

  touch() {
    el.updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  // ----- threads -----

  /** Merges a thread summary. `fromList`: from threads() (its `unread`/`read` are ours). */
  upsertThread(s, fromList = false) {
    if (!s || typeof s !== "object" || s.thread === undefined) return null;
    const id = Number(s.thread);
    let t = this.threads.get(id);
    let created = false;
    if (!t) {
      t = { id, s: { ...s }, unread: 0, readSeq: 0, preview: null, li: null };
      this.threads.set(id, t);
      created = true;
    } else {
      const max = (k) => Math.max(Number(t.s[k]) || 0, Number(s[k]) || 0);
      t.s = { ...t.s, ...s, last_seq: max("last_seq"), last_ts_ms: max("last_ts_ms"), others_read: max("others_read") };
    }
    if (this.online) t.s.visitor_online = this.online.has(String(t.s.visitor));
    if (fromList) {
      // Only threads() knows this reader's read position; inbox notes carry none.
      t.unread = Number(s.unread) || 0;
      t.readSeq = Number(s.read) || 0;
    }
    if (s.assignee) this.knownStaff.add(String(s.assignee));
    this.renderThread(t);
    // An online visitor who just opened a conversation gets its name and "Open chat".
    if (created && !this.loading) this.renderVisitors();
    // For staff, `others_read` is how far the visitor has read (also in inbox notes).
    if (this.conv && this.conv.id === id) this.conv.visitorReadUpTo(Number(t.s.others_read) || 0);
    return t;
  }

  inboxEvent(k) {
    if (k.type === "thread") {
      const t = this.upsertThread(k.thread);
      if (t && this.conv && this.conv.id === t.id) this.renderConvHead();
      this.updateUnread();
      this.touch();
    } else if (k.type === "message") {
      this.messageArrived(k);
    } else if (k.type === "call") {
      callEvent(k);
    }
  }

  /** A message on the inbox topic (all threads) or the open thread's topic. */
  messageArrived(m) {
    const id = Number(m.thread);
    const seq = Number(m.seq);
    let t = this.threads.get(id);
    if (!t) {
      // A thread this page has not heard of (its note was missed): re-read the list.
      this.reloadThreads();
      return;
    }
    if (this.conv && this.conv.id === id) this.conv.add(m, true);
    if (seq <= (Number(t.s.last_seq) || 0) && t.preview && Number(t.preview.seq) >= seq) return;
    const isNew = seq > (Number(t.s.last_seq) || 0);
    t.s.last_seq = Math.max(Number(t.s.last_seq) || 0, seq);
    t.s.last_ts_ms = Math.max(Number(t.s.last_ts_ms) || 0, Number(m.ts_ms) || 0);
    if (!t.preview || Number(t.preview.seq) < seq) t.preview = m;
    if (isNew && m.sender !== this.me && seq > t.readSeq) {
      if (this.isVisible(id)) {
        this.scheduleRead();
      } else {
        t.unread += 1;
        if (m.sender === t.s.visitor) this.notify(t, m);
      }
    }
    this.renderThread(t);
    this.updateUnread();
    this.refreshList();
    this.touch();
  }

  /**
   * The service answered no_such_thread: the thread was deleted (forget() by someone, or
   * retention). It leaves the list; an open conversation closes with a note.
   */
  threadGone(id) {
    const t = this.threads.get(id);
    if (!t) return;
    if (this.conv && this.conv.id === id) {
      this.closeThread();
      showError("This conversation no longer exists", "It was deleted on the server (the visitor's data was forgotten, or it expired).");
    }
    t.li?.remove();
    this.threads.delete(id);
    this.updateUnread();
    this.refreshList();
    this.renderVisitors();
  }

  /** Handles a failed call about thread `id`; true if it was because the thread is gone. */
  gone(id, e) {
    if (!isUri(e, "switchboard.chat.error.no_such_thread")) return false;
    this.threadGone(id);
    return true;
  }

  async reloadThreads() {
    if (this.reloading) return;
    this.reloading = true;
    try {
      const r = await this.call("threads");
      for (const s of Array.isArray(r.args[0]) ? r.args[0] : []) this.upsertThread(s, true);
      this.updateUnread();
      this.refreshList();
    } catch (e) {
      if (!this.closed) showCallError("load the conversations", e);
    } finally {
      this.reloading = false;
    }
  }

  /** The newest message of each thread, for the list (threads() carries no text). */
  async loadPreviews() {
    const ids = [...this.threads.values()]
      .sort((a, b) => this.sortKey(b) - this.sortKey(a))
      .filter((t) => !t.preview && Number(t.s.last_seq) > 0)
      .slice(0, PREVIEW_LOADS)
      .map((t) => t.id);
    const worker = async () => {
      while (ids.length && !this.closed) {
        const id = ids.shift();
        try {
          const r = await this.call("history", [id], { limit: 1 });
          const m = Array.isArray(r.args[0]) ? r.args[0][0] : null;
          const t = this.threads.get(id);
          if (m && t && (!t.preview || Number(t.preview.seq) < Number(m.seq))) {
            t.preview = m;
            this.renderThread(t);
          }
        } catch {
          /* a preview is optional */
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  sortKey(t) {
    return Math.max(Number(t.s.last_ts_ms) || 0, Number(t.s.created_ms) || 0);
  }

  /** Creates or updates the thread's list item (text only). */
  renderThread(t) {
    let li = t.li;
    if (!li) {
      li = make("li", "thread");
      li.setAttribute("role", "option");
      li.id = `thread-${t.id}`;
      li.tabIndex = -1;
      li.dataset.testid = "thread";
      li.dataset.thread = String(t.id);
      const top = make("div", "thread-top");
      const dot = make("span", "online-dot");
      dot.setAttribute("aria-hidden", "true");
      const name = make("span", "thread-name");
      name.dataset.testid = "thread-name";
      const online = make("span", "visually-hidden");
      online.dataset.testid = "thread-online-text";
      const time = make("time", "thread-time");
      time.dataset.testid = "thread-time";
      top.append(dot, name, online, time);
      const mid = make("div", "thread-mid");
      const preview = make("span", "thread-preview");
      preview.dataset.testid = "thread-preview";
      const unread = make("span", "unread-badge");
      unread.dataset.testid = "thread-unread";
      mid.append(preview, unread);
      const bottom = make("div", "thread-bottom");
      const status = make("span", "status-badge");
      status.dataset.testid = "thread-status";
      const assignee = make("span", "thread-assignee");
      assignee.dataset.testid = "thread-assignee";
      bottom.append(status, assignee);
      li.append(top, mid, bottom);
      li.addEventListener("click", () => this.openThread(t.id, { focusComposer: false }));
      t.li = li;
    }
    const q = (id) => li.querySelector(`[data-testid="${id}"]`);
    const online = !!t.s.visitor_online;
    li.dataset.online = String(online);
    li.dataset.status = String(t.s.status || "open");
    li.dataset.unread = String(t.unread);
    li.dataset.assignee = String(t.s.assignee || "");
    li.setAttribute("aria-selected", String(!!(this.conv && this.conv.id === t.id)));
    q("thread-name").textContent = threadName(t.s);
    q("thread-online-text").textContent = online ? ", online" : ", offline";
    const ts = Number(t.preview ? t.preview.ts_ms : 0) || this.sortKey(t);
    q("thread-time").textContent = formatTime(ts);
    q("thread-time").dateTime = ts ? new Date(ts).toISOString() : "";
    const pv = q("thread-preview");
    if (t.preview) {
      const service = t.preview.kind === "call" || t.preview.kind === "system"; // its own lines: no author
      const who = service ? "" : t.preview.sender === this.me ? "You: " : t.preview.sender !== t.s.visitor ? `${text(t.preview.sender_name || t.preview.sender)}: ` : "";
      pv.textContent = who + messageSummary(t.preview);
    } else {
      pv.textContent = Number(t.s.last_seq) > 0 ? "…" : "No messages yet";
    }
    const badge = q("thread-unread");
    badge.textContent = t.unread > 0 ? numberFmt.format(t.unread) : "";
    badge.hidden = t.unread <= 0;
    badge.setAttribute("aria-label", `${t.unread} unread`);
    const status = q("thread-status");
    status.textContent = t.s.status === "resolved" ? "Resolved" : "Open";
    status.dataset.status = String(t.s.status || "open");
    q("thread-assignee").textContent = t.s.assignee
      ? (t.s.assignee === this.me ? "Assigned to you" : `Assigned to ${t.s.assignee}`)
      : "Unassigned";
    li.classList.toggle("has-unread", t.unread > 0);
    if (!li.isConnected || li.dataset.sort !== String(this.sortKey(t))) {
      li.dataset.sort = String(this.sortKey(t));
      this.place(t);
    }
    this.applyFilter(t);
  }

  /** Inserts the thread's item at its place (most recent activity first). */
  place(t) {
    const key = this.sortKey(t);
    let before = null;
    for (const other of el.threadList.children) {
      if (other === t.li) continue;
      const k = Number(other.dataset.sort);
      const oid = Number(other.dataset.thread);
      if (k < key || (k === key && oid < t.id)) {
        before = other;
        break;
      }
    }
    el.threadList.insertBefore(t.li, before);
  }

  matchesFilter(t) {
    switch (el.filter.value) {
      case "open": return t.s.status !== "resolved";
      case "resolved": return t.s.status === "resolved";
      case "mine": return t.s.assignee === this.me;
      case "unassigned": return !t.s.assignee;
      default: return true;
    }
  }

  applyFilter(t) {
    if (t.li) t.li.hidden = !this.matchesFilter(t);
  }

  /** Filter, empty state and the roving tab stop of the list. */
  refreshList() {
    for (const t of this.threads.values()) this.applyFilter(t);
    const shown = [...el.threadList.children].filter((li) => !li.hidden);
    el.threadsEmpty.hidden = shown.length > 0;
    el.threadsEmpty.textContent = this.threads.size === 0
      ? "No conversations yet. They appear here as soon as a visitor writes."
      : "No conversations match this filter.";
    const current = shown.find((li) => li.tabIndex === 0);
    if (!current) {
      for (const li of el.threadList.children) li.tabIndex = -1;
      const selected = shown.find((li) => li.getAttribute("aria-selected") === "true") || shown[0];
      if (selected) selected.tabIndex = 0;
    }
  }

  focusOption(li) {
    if (!li) return;
    for (const other of el.threadList.children) other.tabIndex = -1;
    li.tabIndex = 0;
    li.focus();
  }

  listKeydown(e) {
    const shown = [...el.threadList.children].filter((li) => !li.hidden);
    const i = shown.indexOf(document.activeElement);
    if (i < 0) return;
    let next = null;
    if (e.key === "ArrowDown") next = shown[Math.min(i + 1, shown.length - 1)];
    else if (e.key === "ArrowUp") next = shown[Math.max(i - 1, 0)];
    else if (e.key === "Home") next = shown[0];
    else if (e.key === "End") next = shown[shown.length - 1];
    else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.openThread(Number(shown[i].dataset.thread), { focusComposer: true });
      return;
    } else return;
    e.preventDefault();
    this.focusOption(next);
  }

  updateUnread() {
    let total = 0;
    for (const t of this.threads.values()) total += t.unread;
    document.title = total > 0 ? `(${total}) ${TITLE}` : TITLE;
    el.unreadTotal.textContent = `${numberFmt.format(total)} unread`;
    el.unreadTotal.dataset.value = String(total);
    el.unreadTotal.hidden = total === 0;
  }

  // ----- notifications -----

  notify(t, m) {
    if (!notificationsSupported() || Notification.permission !== "granted") return;
    try {
      const n = new Notification(threadName(t.s), {
        body: messageSummary(m).slice(0, NOTIFY_MAX),
        tag: `switchboard-thread-${t.id}`,
      });
      n.onclick = () => {
        window.focus();
        this.openThread(t.id, { focusComposer: true });
        n.close();
      };
    } catch {
      /* e.g. Android Chrome needs a service worker for notifications */
    }
  }

  // ----- presence -----

  applyPresence(p) {
    if (!p || typeof p !== "object") return;
    this.visitors = new Map((Array.isArray(p.visitors) ? p.visitors : []).map((v) => [String(v.authid), v]));
    this.staff = new Map((Array.isArray(p.staff) ? p.staff : []).map((v) => [String(v.authid), v]));
    for (const a of this.staff.keys()) this.knownStaff.add(a);
    this.online = new Set([...this.visitors.keys(), ...this.staff.keys()]);
    for (const t of this.threads.values()) {
      const online = this.online.has(String(t.s.visitor));
      if (!!t.s.visitor_online !== online) {
        t.s.visitor_online = online;
        this.renderThread(t);
      }
    }
    this.renderVisitors();
    if (this.conv) this.renderConvHead();
  }

  async refreshPresence() {
    if (this.closed) return;
    try {
      const r = await this.call("presence");
      if (!this.closed) this.applyPresence(r.args[0]);
    } catch {
      /* next poll */
    }
  }

  presenceEvent(k) {
    const authid = String(k.authid || "");
    if (!authid) return;
    if (k.last_seen_ms) this.lastSeen.set(authid, Number(k.last_seen_ms));
    const online = !!k.online;
    if (this.online) {
      if (online) this.online.add(authid);
      else this.online.delete(authid);
    }
    if (!online) {
      this.visitors.delete(authid);
      this.staff.delete(authid);
    }
    for (const t of this.threads.values()) {
      if (String(t.s.visitor) === authid && !!t.s.visitor_online !== online) {
        t.s.visitor_online = online;
        this.renderThread(t);
      }
    }
    this.renderVisitors();
    if (this.conv) this.renderConvHead();
    // The event has no page and no list: re-read presence() shortly (debounced).
    clearTimeout(this.presenceTimer);
    this.presenceTimer = setTimeout(() => this.refreshPresence(), online ? 400 : 50);
    this.touch();
  }

  /** The newest thread of a visitor (open first). */
  threadOf(authid) {
    let best = null;
    for (const t of this.threads.values()) {
      if (String(t.s.visitor) !== authid) continue;
      const score = (t.s.status !== "resolved" ? 1e15 : 0) + t.id;
      if (!best || score > best.score) best = { t, score };
    }
    return best ? best.t : null;
  }

  renderVisitors() {
    const list = el.visitorList;
    list.replaceChildren();
    const people = [...this.visitors.values()].sort((a, b) => String(a.authid).localeCompare(String(b.authid)));
    for (const v of people) {
      const authid = String(v.authid);
      const t = this.threadOf(authid);
      const li = make("li", "visitor");
      li.dataset.testid = "visitor";
      li.dataset.authid = authid;
      const name = make("span", "visitor-name", t ? threadName(t.s) : visitorLabel(authid));
      name.dataset.testid = "visitor-name";
      const page = make("span", "visitor-page");
      page.dataset.testid = "visitor-page";
      const title = String(v.page_title || "");
      const href = safeHref(v.page_url);
      if (href) page.appendChild(link(href, title || String(v.page_url)));
      else page.textContent = title || (v.page_url ? String(v.page_url) : "Page unknown");
      if (href) page.title = href;
      li.append(name, page);
      if (Number(v.sessions) > 1) li.appendChild(make("span", "visitor-tabs", `${v.sessions} tabs`));
      if (t) {
        const b = make("button", "btn btn-quiet btn-small", "Open chat");
        b.type = "button";
        b.dataset.testid = "visitor-open";
        b.setAttribute("aria-label", `Open the conversation with ${threadName(t.s)}`);
        b.addEventListener("click", () => this.openThread(t.id, { focusComposer: true }));
        li.appendChild(b);
      }
      list.appendChild(li);
    }
    el.visitorsCount.textContent = numberFmt.format(people.length);
    el.visitorsCount.dataset.value = String(people.length);
    el.visitorsEmpty.hidden = people.length > 0;
    const staff = [...this.staff.keys()].sort();
    el.staffOnline.textContent = staff.length ? `Staff online: ${staff.join(", ")}` : "";
  }

  // ----- the open conversation -----

  isVisible(id) {
    return !!this.conv && this.conv.id === id && document.visibilityState === "visible"
      && (document.body.dataset.view === "thread" || !phoneLayout());
  }

  /** Marks the open thread read up to its newest message (debounced; only when visible). */
  scheduleRead() {
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => this.markRead(), 150);
  }

  async markRead() {
    const c = this.conv;
    if (!c || this.closed || !this.isVisible(c.id)) return;
    const t = this.threads.get(c.id);
    if (!t) return;
    const seq = Number(t.s.last_seq) || 0;
    const hadUnread = t.unread > 0;
    t.unread = 0;
    this.renderThread(t);
    this.updateUnread();
    if (seq <= t.readSeq && !hadUnread) return;
    t.readSeq = Math.max(t.readSeq, seq);
    try {
      await this.call("read", [c.id, seq]);
    } catch (e) {
      if (!this.closed && !this.gone(c.id, e)) showCallError("mark the conversation read", e);
    }
  }

  async openThread(id, { focusComposer = false, draft = "" } = {}) {
    const t = this.threads.get(id);
    if (!t) return;
    document.body.dataset.view = "thread";
    if (this.conv && this.conv.id === id) {
      this.scheduleRead();
      if (focusComposer) el.reply.focus();
      return;
    }
    if (this.conv) this.conv.close();
    const prevSelected = el.threadList.querySelector('[aria-selected="true"]');
    if (prevSelected) prevSelected.setAttribute("aria-selected", "false");
    t.li.setAttribute("aria-selected", "true");
    for (const li of el.threadList.children) li.tabIndex = -1;
    t.li.tabIndex = 0;
    el.reply.value = draft;
    this.conv = new Conversation(this, t);
    el.convEmpty.hidden = true;
    el.convBody.hidden = false;
    this.renderConvHead();
    if (focusComposer) el.reply.focus();
    await this.conv.start();
  }

  closeThread() {
    if (this.conv) this.conv.close();
    this.conv = null;
    el.convBody.hidden = true;
    el.convEmpty.hidden = false;
    document.body.dataset.view = "list";
    const sel = el.threadList.querySelector('[aria-selected="true"]');
    if (sel) sel.setAttribute("aria-selected", "false");
  }

  renderConvHead() {
    const c = this.conv;
    if (!c) return;
    const t = this.threads.get(c.id);
    if (!t) return;
    const s = t.s;
    el.convName.textContent = threadName(s);
    el.convName.title = String(s.visitor || "");
    const online = !!s.visitor_online;
    el.convPresence.dataset.online = String(online);
    if (online) {
      el.convPresence.textContent = "Online";
    } else {
      const seen = this.lastSeen.get(String(s.visitor));
      el.convPresence.textContent = seen ? `Offline · last seen ${formatTime(seen)}` : "Offline";
    }
    const v = this.visitors.get(String(s.visitor));
    el.convPage.replaceChildren();
    if (v && (v.page_url || v.page_title)) {
      el.convPage.appendChild(document.createTextNode("on "));
      const href = safeHref(v.page_url);
      const label = String(v.page_title || v.page_url);
      el.convPage.appendChild(href ? link(href, label) : document.createTextNode(label));
    }
    el.convStatus.textContent = s.status === "resolved" ? "Resolved" : "Open";
    el.convStatus.dataset.status = String(s.status || "open");
    el.resolve.textContent = s.status === "resolved" ? "Reopen" : "Resolve";
    el.resolve.dataset.action = s.status === "resolved" ? "reopen" : "resolve";
    // The assign menu: me, online staff, and anyone assigned before.
    const current = s.assignee ? String(s.assignee) : "";
    const names = new Set(this.knownStaff);
    if (current) names.add(current);
    const options = [];
    if (!current) {
      const none = make("option", "", "Unassigned");
      none.value = "";
      none.disabled = true;
      options.push(none);
    }
    for (const a of [...names].sort((x, y) => (x === this.me ? -1 : y === this.me ? 1 : x.localeCompare(y)))) {
      const o = make("option", "", a === this.me ? `Assigned to me (${a})` : `Assigned to ${a}`);
      o.value = a;
      options.push(o);
    }
    el.assign.replaceChildren(...options);
    el.assign.value = current;
  }

  async setStatus() {
    const c = this.conv;
    if (!c) return;
    const action = el.resolve.dataset.action === "reopen" ? "reopen" : "resolve";
    el.resolve.disabled = true;
    try {
      const r = await this.call(action, [c.id]);
      this.upsertThread(r.args[0]);
      this.refreshList();
      this.renderConvHead();
      clearError();
    } catch (e) {
      if (!this.gone(c.id, e)) showCallError(`${action} the conversation`, e);
    } finally {
      el.resolve.disabled = false;
    }
  }

  async assign() {
    const c = this.conv;
    if (!c || !el.assign.value) return;
    const who = el.assign.value;
    el.assign.disabled = true;
    try {
      const r = await this.call("assign", [c.id, who]);
      this.upsertThread(r.args[0]);
      this.refreshList();
      clearError();
    } catch (e) {
      if (!this.gone(c.id, e)) showCallError(`assign the conversation to ${who}`, e);
    } finally {
      el.assign.disabled = false;
      this.renderConvHead();
    }
  }

  async exportThread() {
    const c = this.conv;
    if (!c) return;
    try {
      const r = await this.call("export", [c.id]);
      const data = r.args[0] !== undefined ? r.args[0] : r.kwargs;
      const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `switchboard-thread-${c.id}.json`;
      a.dataset.testid = "export-link";
      a.hidden = true;
      document.body.appendChild(a);
      a.click();
      setTimeout(() => {
        URL.revokeObjectURL(a.href);
        a.remove();
      }, 1000);
      clearError();
    } catch (e) {
      if (!this.gone(c.id, e)) showCallError("export the conversation", e);
    }
  }

  askForget() {
    const c = this.conv;
    if (!c) return;
    const t = this.threads.get(c.id);
    this.forgetTarget = String(t.s.visitor);
    el.forgetWho.textContent = `${threadName(t.s)} (${t.s.visitor})`;
    el.forgetDialog.returnValue = "";
    el.forgetDialog.showModal();
    el.forgetCancel.focus();
  }

  async forgetConfirmed() {
    const who = this.forgetTarget;
    this.forgetTarget = null;
    if (!who || el.forgetDialog.returnValue !== "forget") return;
    try {
      await this.call("forget", [who]);
      for (const t of [...this.threads.values()]) {
        if (String(t.s.visitor) !== who) continue;
        if (this.conv && this.conv.id === t.id) this.closeThread();
        t.li?.remove();
        this.threads.delete(t.id);
      }
      this.updateUnread();
      this.refreshList();
      this.renderVisitors();
      clearError();
    } catch (e) {
      showCallError("forget the visitor", e);
    }
  }

  // ----- search -----

  async search(query) {
    const q = String(query || "").trim();
    if (!q) {
      this.clearSearch();
      return;
    }
    el.searchResults.hidden = false;
    el.searchSummary.textContent = "Searching…";
    el.searchList.replaceChildren();
    try {
      const r = await this.call("search", [q], { limit: 50 });
      this.features.search = true;
      const hits = Array.isArray(r.args[0]) ? r.args[0] : [];
      el.searchSummary.textContent = hits.length
        ? `${hits.length}${hits.length >= 50 ? "+" : ""} message${hits.length === 1 ? "" : "s"} with “${q}”`
        : `No messages with “${q}”`;
      for (const m of hits) {
        const id = Number(m.thread);
        const t = this.threads.get(id);
        const li = make("li", "result");
        const b = make("button", "result-btn");
        b.type = "button";
        b.dataset.testid = "search-result";
        b.dataset.thread = String(id);
        b.dataset.seq = String(m.seq);
        const head = make("span", "result-head");
        head.append(
          make("span", "result-name", t ? threadName(t.s) : `Conversation ${id}`),
          make("span", "result-time", formatTime(m.ts_ms)),
        );
        const body = make("span", "result-text");
        appendHighlighted(body, m.text, q);
        b.append(head, body);
        b.addEventListener("click", () => this.openThread(id, { focusComposer: false }).then(() => this.conv && this.conv.reveal(Number(m.seq))));
        li.appendChild(b);
        el.searchList.appendChild(li);
      }
    } catch (e) {
      if (isUri(e, "wamp.error.no_such_procedure")) {
        this.features.search = false;
        el.searchSummary.textContent = "Search is not available on this server (it needs switchboard.chat.search).";
      } else {
        el.searchSummary.textContent = `Search failed: ${e && e.message ? e.message : e}`;
      }
    }
  }

  clearSearch() {
    el.searchResults.hidden = true;
    el.searchList.replaceChildren();
    el.searchSummary.textContent = "";
  }
}

/** The open conversation: its messages, history paging, typing and read state. */
class Conversation {
  constructor(inbox, t) {
    this.inbox = inbox;
    this.id = t.id;
    this.visitor = String(t.s.visitor);
    this.closed = false;
    this.sub = null;
    this.items = new Map(); // seq → li
    this.pending = new Map(); // client_id → li
    this.outbox = new Map(); // client_id → { text, file }: replies not yet confirmed stored
    this.uploads = Promise.resolve(); // files are uploaded one after another
    this.clientIds = new Set(); // client_ids of the messages shown
    this.oldest = null;
    this.newest = 0;
    this.exhausted = false;
    this.loadingOlder = false;
    this.visitorRead = Number(t.s.others_read) || 0; // the visitor's "read up to"
    this.lastTypingSent = 0;
    this.typingTimer = null;
    el.history.replaceChildren();
    el.liveLog.replaceChildren();
    el.typing.textContent = "";
    el.upload.hidden = true; // an upload belongs to its conversation
    el.uploadError.textContent = "";
    this.setHistoryState("loading");
  }

  async start() {
    const s = this.inbox.session;
    try {
      this.sub = await s.subscribe(`${P}thread.${this.id}`, (args, kwargs) => {
        if (!this.closed) this.event(kwargs || {});
      });
      if (this.closed) {
        this.sub.unsubscribe().catch(() => {});
        return;
      }
      const r = await this.inbox.call("history", [this.id], { limit: PAGE });
      if (this.closed) return;
      const page = Array.isArray(r.args[0]) ? r.args[0] : [];
      this.prepend(page);
      if (page.length < PAGE || page.some((m) => Number(m.seq) <= 1)) this.exhausted = true;
      this.setHistoryState();
      this.scrollToBottom();
      this.inbox.scheduleRead();
      this.fillViewport();
    } catch (e) {
      if (!this.closed && !this.inbox.gone(this.id, e)) {
        this.setHistoryState("error");
        showCallError("load the conversation", e);
      }
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.typingTimer);
    if (this.sub) this.sub.unsubscribe().catch(() => {});
    el.typing.textContent = "";
  }

  event(k) {
    if (k.type === "message") {
      this.inbox.messageArrived(k);
    } else if (k.type === "typing") {
      if (k.member === this.inbox.me) return;
      const who = k.member === this.visitor
        ? threadName(this.inbox.threads.get(this.id)?.s || { visitor: this.visitor })
        : text(k.name || k.member);
      el.typing.textContent = `${who} is typing…`;
      el.typing.dataset.member = String(k.member);
      clearTimeout(this.typingTimer);
      this.typingTimer = setTimeout(() => {
        el.typing.textContent = "";
      }, TYPING_SHOWN_MS);
    } else if (k.type === "read") {
      if (k.member === this.visitor) this.visitorReadUpTo(Number(k.seq) || 0);
    } else if (k.type === "status") {
      // Also announced on the inbox topic; applied here too, whichever comes first.
      const t = this.inbox.threads.get(this.id);
      if (t) {
        this.inbox.upsertThread({ ...t.s, status: k.status, assignee: k.assignee ?? null });
        this.inbox.refreshList();
        this.inbox.renderConvHead();
      }
    }
  }

  visitorReadUpTo(seq) {
    if (seq > this.visitorRead) {
      this.visitorRead = seq;
      this.renderSeen();
    }
  }

  /** Adds one message (from an event or a send); `live`: newly arrived (goes to the log). */
  add(m, liveMsg) {
    const seq = Number(m.seq);
    if (this.items.has(seq)) {
      // Our own file message, numbered by the send's answer: the event brings its link.
      const shown = this.items.get(seq);
      const box = shown.querySelector(".msg-file");
      if (m.file && m.file.url && (!box || box.dataset.linked !== "true")) this.setFile(shown, m.file);
      return;
    }
    let li = m.client_id ? this.pending.get(String(m.client_id)) : null;
    if (li) {
      this.pending.delete(String(m.client_id));
      this.fill(li, m);
    } else {
      li = this.render(m);
      const near = this.nearBottom();
      // Keep the log in seq order even if events race each other or the history page.
      const list = liveMsg ? el.liveLog : el.history;
      const after = [...list.children].find((x) => x.dataset.seq && Number(x.dataset.seq) > seq);
      list.insertBefore(li, after || null);
      if (near || m.sender === this.inbox.me) this.scrollToBottom();
    }
    this.items.set(seq, li);
    this.newest = Math.max(this.newest, seq);
    if (m.sender === this.visitor) {
      if (el.typing.dataset.member === this.visitor) el.typing.textContent = "";
    }
    this.renderSeen();
  }

  /** Prepends a history page (newest first, as history() returns it). */
  prepend(page) {
    const frag = document.createDocumentFragment();
    const ordered = [...page].sort((a, b) => Number(a.seq) - Number(b.seq));
    const firstLive = el.liveLog.firstElementChild;
    for (const m of ordered) {
      const seq = Number(m.seq);
      if (this.items.has(seq)) continue;
      const li = this.render(m);
      this.items.set(seq, li);
      if (firstLive && firstLive.dataset.seq && seq > Number(firstLive.dataset.seq)) {
        // An event overtook the first page: keep the whole conversation in seq order.
        const after = [...el.liveLog.children].find((x) => x.dataset.seq && Number(x.dataset.seq) > seq);
        el.liveLog.insertBefore(li, after || null);
        continue;
      }
      frag.appendChild(li);
      this.oldest = this.oldest === null ? seq : Math.min(this.oldest, seq);
      this.newest = Math.max(this.newest, seq);
    }
    el.history.insertBefore(frag, el.history.firstChild);
    this.renderSeen();
  }

  render(m) {
    const li = make("li", "message");
    li.dataset.testid = "message";
    const head = make("div", "msg-head");
    const author = make("span", "msg-author");
    author.dataset.testid = "message-author";
    const time = make("time", "msg-time");
    time.dataset.testid = "message-time";
    head.append(author, time);
    const body = make("div", "msg-text");
    body.dataset.testid = "message-text";
    const foot = make("div", "msg-foot");
    foot.dataset.testid = "message-state";
    li.append(head, body, foot);
    this.fill(li, m);
    return li;
  }

  fill(li, m) {
    const mine = m.sender === this.inbox.me;
    const fromVisitor = m.sender === this.visitor;
    li.classList.toggle("mine", mine);
    li.classList.toggle("from-visitor", fromVisitor);
    li.classList.toggle("from-staff", !fromVisitor);
    // The service's own lines (call outcomes, notes) are shown apart, as text.
    li.classList.toggle("call", m.kind === "call");
    li.classList.toggle("system", m.kind === "system");
    li.dataset.kind = String(m.kind || "text");
    li.classList.remove("pending", "failed");
    if (m.seq !== undefined) li.dataset.seq = String(m.seq);
    if (m.client_id) this.clientIds.add(String(m.client_id));
    li.dataset.sender = String(m.sender || "");
    const t = this.inbox.threads.get(this.id);
    const author = m.kind === "call" || m.kind === "system" ? "" : mine ? "You" : fromVisitor ? threadName(t ? t.s : { visitor: this.visitor }) : text(m.sender_name || m.sender);
    li.querySelector(".msg-author").textContent = author;
    const time = li.querySelector(".msg-time");
    time.textContent = formatTime(m.ts_ms);
    if (m.ts) time.dateTime = String(m.ts);
    const body = li.querySelector(".msg-text");
    if (body.dataset.filled !== "true") {
      body.replaceChildren();
      appendLinkified(body, m.text);
      body.dataset.filled = "true";
    }
    if (m.file && m.kind !== "call" && m.kind !== "system") this.setFile(li, m.file);
    li.querySelector(".msg-foot").replaceChildren();
  }

  /** Shows a message's file: an image the server serves inline as a thumbnail (opening full
   *  size in a new tab), anything else as a download link "NAME · SIZE" (text only until the
   *  message has a link). Names and sizes are set as text and attributes, never as HTML. */
  setFile(li, f) {
    let box = li.querySelector(".msg-file");
    if (!box) {
      box = make("div", "msg-file");
      box.dataset.testid = "message-file";
      li.querySelector(".msg-text").before(box);
    }
    if (box.dataset.linked === "true" && !f.url) return;
    const file = { ...f, got: Date.now() };
    const label = `${text(file.name, "file")} · ${humanSize(file.size)}`;
    box.replaceChildren();
    box.dataset.linked = String(!!file.url);
    if (!file.url) {
      box.textContent = label;
      return;
    }
    const a = make("a", "file-link");
    a.href = new URL(file.url, location.href).href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.title = label;
    const renew = async () => {
      const r = await this.inbox.call("file_url", [this.id, file.id]);
      file.url = String(r.args[0]);
      file.got = Date.now();
      a.href = new URL(file.url, location.href).href;
      return a.href;
    };
    // Links are signed for an hour: an older one is renewed before it is followed.
    a.addEventListener("click", (e) => {
      if (Date.now() - file.got < 50 * 60 * 1000) return;
      e.preventDefault();
      renew().then((u) => window.open(u, "_blank", "noopener"), (err) => showCallError("get a fresh link", err));
    });
    if (file.inline) {
      const img = make("img", "file-thumb");
      img.alt = String(file.name ?? "");
      img.dataset.testid = "message-image";
      // An expired link (403) is renewed once, then the image is asked for again.
      let renewed = false;
      img.addEventListener("error", () => {
        if (renewed) return;
        renewed = true;
        renew().then((u) => { img.src = u; }, () => {});
      });
      img.addEventListener("load", () => {
        renewed = false;
        const s = el.scroller;
        if (s.scrollHeight - s.scrollTop - s.clientHeight < 80 + img.height) this.scrollToBottom();
      });
      img.src = a.href;
      a.appendChild(img);
    } else {
      a.dataset.testid = "message-download";
      a.append(clipIcon(), document.createTextNode(label));
    }
    box.appendChild(a);
  }

  /** "Seen" under the newest staff message the visitor has read. */
  renderSeen() {
    for (const n of document.querySelectorAll('[data-testid="seen"]')) n.remove();
    if (!this.visitorRead) return;
    let best = null;
    for (const [seq, li] of this.items) {
      const staffLine = !li.classList.contains("from-visitor") && !li.classList.contains("call") && !li.classList.contains("system");
      if (seq <= this.visitorRead && staffLine && (!best || seq > best.seq)) best = { seq, li };
    }
    if (best) {
      const s = make("span", "seen", "Seen");
      s.dataset.testid = "seen";
      best.li.querySelector(".msg-foot").appendChild(s);
    }
  }

  setHistoryState(state) {
    const n = el.historyState;
    n.replaceChildren();
    n.dataset.state = state || (this.exhausted ? "start" : "more");
    if (state === "loading") {
      n.textContent = "Loading…";
    } else if (state === "error") {
      n.textContent = "Could not load the messages.";
    } else if (this.exhausted) {
      n.textContent = this.items.size ? "Start of the conversation" : "No messages yet";
    } else {
      const b = make("button", "btn btn-quiet btn-small", "Load earlier messages");
      b.type = "button";
      b.dataset.testid = "load-older";
      b.addEventListener("click", () => this.loadOlder());
      n.appendChild(b);
    }
  }

  async loadOlder() {
    if (this.loadingOlder || this.exhausted || this.closed || this.oldest === null) return;
    this.loadingOlder = true;
    this.setHistoryState("loading");
    const scroller = el.scroller;
    try {
      const r = await this.inbox.call("history", [this.id], { before: this.oldest, limit: PAGE });
      if (this.closed) return;
      const page = Array.isArray(r.args[0]) ? r.args[0] : [];
      const before = scroller.scrollHeight - scroller.scrollTop;
      this.prepend(page);
      if (page.length < PAGE || this.oldest <= 1) this.exhausted = true;
      this.setHistoryState();
      // Keep what the reader was looking at in place.
      scroller.scrollTop = scroller.scrollHeight - before;
    } catch (e) {
      if (!this.closed && !this.inbox.gone(this.id, e)) {
        this.setHistoryState();
        showCallError("load earlier messages", e);
      }
    } finally {
      this.loadingOlder = false;
    }
  }

  /** Loads older pages while the messages do not fill the view (no scrollbar to scroll). */
  async fillViewport() {
    for (let i = 0; i < 10 && !this.exhausted && !this.closed; i++) {
      if (el.scroller.scrollHeight > el.scroller.clientHeight + 40) break;
      await this.loadOlder();
    }
  }

  /** Loads older pages until `seq` is shown, then scrolls to it and highlights it. */
  async reveal(seq) {
    for (let i = 0; i < 20 && !this.items.has(seq) && !this.exhausted && !this.closed; i++) {
      await this.loadOlder();
    }
    const li = this.items.get(seq);
    if (!li) return;
    li.scrollIntoView({ block: "center" });
    li.classList.add("highlight");
    setTimeout(() => li.classList.remove("highlight"), 2500);
  }

  onScroll() {
    if (el.scroller.scrollTop < 60) this.loadOlder();
  }

  nearBottom() {
    const s = el.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  }

  scrollToBottom() {
    el.scroller.scrollTop = el.scroller.scrollHeight;
  }

  /** Replies sent or being sent that the server has not confirmed: [{ text, cid }]. */
  unsent() {
    return [...this.outbox].map(([cid, v]) => ({ text: v.text, file: v.file, cid }));
  }

  /** typing(), at most once per TYPING_EVERY_MS while the reply has text. */
  typed() {
    const now = Date.now();
    if (!el.reply.value.trim() || now - this.lastTypingSent < TYPING_EVERY_MS) return;
    this.lastTypingSent = now;
    this.inbox.call("typing", [this.id]).catch(() => {});
  }

  async send(value, li = null, clientId = null, file = null) {
    const v = String(value);
    if (!v.trim() && !file) return;
    const cid = clientId || newClientId();
    if (!li) {
      li = this.render({ sender: this.inbox.me, text: v, ts_ms: Date.now(), file });
      li.classList.add("pending");
      li.querySelector(".msg-foot").textContent = "Sending…";
      el.liveLog.appendChild(li);
      this.scrollToBottom();
    } else {
      li.classList.remove("failed");
      li.classList.add("pending");
      li.querySelector(".msg-foot").replaceChildren(document.createTextNode("Sending…"));
    }
    li.dataset.clientId = cid;
    this.pending.set(cid, li);
    this.outbox.set(cid, { text: v, file });
    this.lastTypingSent = 0;
    try {
      const r = await this.inbox.call("send", [this.id, v], file ? { client_id: cid, file: file.id } : { client_id: cid });
      const res = r.args[0] || {};
      this.outbox.delete(cid);
      if (this.pending.get(cid) === li) {
        // The event has not come yet: the answer numbers the message.
        this.pending.delete(cid);
        this.fill(li, { sender: this.inbox.me, text: v, seq: res.seq, ts_ms: res.ts_ms, ts: res.ts, file });
        if (res.seq !== undefined) {
          this.items.set(Number(res.seq), li);
          this.newest = Math.max(this.newest, Number(res.seq));
        }
        this.renderSeen();
      }
    } catch (e) {
      if (this.closed || this.inbox.gone(this.id, e)) return;
      li.classList.remove("pending");
      li.classList.add("failed");
      const foot = li.querySelector(".msg-foot");
      foot.replaceChildren(document.createTextNode(`Not sent: ${e && e.message ? e.message : e} `));
      const retry = make("button", "btn btn-quiet btn-small", "Retry");
      retry.type = "button";
      retry.dataset.testid = "retry";
      // The same client_id: if the first try did reach the server, no duplicate is created.
      retry.addEventListener("click", () => this.send(v, li, cid, file));
      foot.appendChild(retry);
    }
  }

  /** Queues files to be uploaded and sent, one after another. */
  attach(files) {
    for (const f of files) this.uploads = this.uploads.then(() => this.upload(f));
  }

  /** Uploads one file (upload() slot, then PUT), then sends it as a message. */
  async upload(f) {
    const name = f.name || "file";
    // The upload line takes room from the conversation: one scrolled to the end stays there.
    const show = (fn) => {
      const near = this.nearBottom();
      fn();
      if (near) this.scrollToBottom();
    };
    const done = (err = "") => {
      if (this.closed) return;
      show(() => {
        el.uploadStatus.hidden = el.uploadProgress.hidden = true;
        el.uploadError.textContent = err;
        el.upload.hidden = !err;
      });
    };
    if (this.closed) return;
    if (!f.size) return done(`${name} is empty.`);
    if (maxFileBytes && f.size > maxFileBytes) return done(uploadError({ status: 413 }, name));
    show(() => {
      el.uploadError.textContent = "";
      el.uploadStatus.textContent = `Uploading ${name}…`;
      el.uploadProgress.value = 0;
      el.uploadStatus.hidden = el.uploadProgress.hidden = el.upload.hidden = false;
    });
    try {
      const r = await this.inbox.call("upload", [this.id, name, f.type || "application/octet-stream", f.size]);
      const slot = r.args[0] || {};
      maxFileBytes = Number(slot.max_bytes) || maxFileBytes;
      const stored = await putFile(new URL(String(slot.url), location.href).href, f, (p) => {
        el.uploadProgress.value = p;
      });
      done();
      if (this.closed) return;
      await this.send("", null, null, {
        id: stored.file, name: stored.name, content_type: stored.content_type, size: stored.size, inline: !!stored.inline,
      });
    } catch (e) {
      done(uploadError(e, name));
    }
  }
}

function phoneLayout() {
  return window.matchMedia("(max-width: 760px)").matches;
}

// ---------- calls ----------

/** The call controller for thread `id` (one call at a time), following the thread's topic. */
async function makePhone(id) {
  if (phone && phone.thread === id) return phone;
  if (phone) dropPhone();
  const t = live && live.threads.get(id);
  const p = { thread: id, sub: null, ctl: null };
  phone = p;
  p.ctl = window.SwitchboardCall({
    mount: el.callDock,
    styleRoot: document.head,
    thread: id,
    me: live ? live.me : "",
    polite: false, // staff keep their offer when both sides offer at once
    screenShare: true,
    peerName: t ? threadName(t.s) : "Visitor",
    rpc: (proc, args, kwargs) => {
      if (!live || live.closed) return Promise.reject(new Error("not connected"));
      return live.call(proc, args, kwargs).then((r) => r.args[0]);
    },
    onState: (state) => {
      el.callDock.hidden = state === "idle";
      if (state === "active" && live && (!live.conv || live.conv.id !== id) && live.threads.has(id)) live.openThread(id);
      if (state === "idle" && phone === p) dropPhone();
    },
  });
  await followCall(p);
  return p;
}

/** Subscribes the current session to the call's thread (again after a reconnect). */
async function followCall(p) {
  if (!live || live.closed) return;
  const inbox = live;
  try {
    p.sub = await inbox.session.subscribe(`${P}thread.${p.thread}`, (args, kwargs) => {
      const k = kwargs || {};
      if (phone === p && (k.type === "call" || k.type === "signal")) p.ctl.event(k);
    });
  } catch (e) {
    showCallError("follow the call", e);
  }
}

function dropPhone() {
  const p = phone;
  phone = null;
  if (!p) return;
  if (p.sub) p.sub.unsubscribe().catch(() => {});
  p.ctl.destroy();
  el.callDock.hidden = true;
}

/** A call event from the inbox topic (rings of visitors' calls, answers, ends). */
async function callEvent(k) {
  const id = Number(k.thread);
  if (k.event === "ring") {
    // Busy in a call of our own: colleagues may answer (the service says busy when nobody can).
    if (phone && phone.thread !== id && phone.ctl.state !== "idle" && phone.ctl.state !== "ended") return;
    const p = await makePhone(id);
    const before = p.ctl.state;
    p.ctl.event(k);
    // A notification too, when this tab is not being looked at.
    const t = live && live.threads.get(id);
    if (t && before !== "incoming" && p.ctl.state === "incoming" && document.visibilityState !== "visible") {
      live.notify(t, { text: k.video === false ? "Incoming audio call" : "Incoming video call" });
    }
  } else if (phone && phone.thread === id) {
    phone.ctl.event(k);
  }
}

async function startCall(video) {
  if (!live || !live.conv) return;
  if (phone && phone.ctl.state !== "idle" && phone.ctl.state !== "ended") return;
  const p = await makePhone(live.conv.id);
  p.ctl.start(video);
}

/** After a reconnect: the call's topic again, and the call goes on (call_state, call_resume). */
async function resumePhone() {
  const p = phone;
  if (!p) return;
  p.sub = null;
  await followCall(p);
  await p.ctl.resume();
}

// ---------- login / logout / reconnect ----------

/** Remembers what to restore after a reconnect, then stops the inbox. */
function lose(inbox) {
  if (inbox.closed) return;
  resume = {
    openId: inbox.conv ? inbox.conv.id : null,
    outbox: inbox.conv ? inbox.conv.unsent() : [],
  };
  inbox.stop();
}

function sessionClosed(inbox, info) {
  if (live !== inbox) return;
  lose(inbox);
  if (info.byClient && !inbox.offline) return;
  if ((info.reason === TRANSPORT_LOST || inbox.offline) && creds) {
    setState("reconnecting", inbox.offline ? "Offline" : "Reconnecting…");
    showError(
      inbox.offline ? "This browser is offline" : "Connection to the router lost",
      "Reconnecting… Replies can be sent again once connected.",
      inbox.offline ? "" : info.reason,
    );
    scheduleReconnect(inbox.offline ? 2000 : 500);
    return;
  }
  live = null;
  creds = null;
  setState("signed-out", "Signed out");
  if (info.reason === "wamp.close.killed") {
    showError("This page's session was ended by the router", info.message || "", info.reason);
  } else {
    showError("The router closed this page's session", info.message || "", info.reason || "");
  }
}

/** Reconnects after `delay` ms, then backs off (doubling, jittered, at most 30 s). */
function scheduleReconnect(delay) {
  clearTimeout(reconnectTimer);
  const wait = Math.round(delay * (0.8 + Math.random() * 0.4));
  reconnectTimer = setTimeout(async () => {
    if (!creds || document.body.dataset.state !== "reconnecting") return;
    const ok = await start(creds, resume);
    if (!ok && creds && document.body.dataset.state === "reconnecting") scheduleReconnect(Math.min(delay * 2, 30000));
  }, wait);
}

/**
 * Connects with `c` and starts an inbox; true once it is live. `again`: a reconnect, with what
 * to restore (then refusals end the session, unreachable routers are retried).
 */
async function start(c, again = null) {
  let inbox = null;
  let session;
  try {
    session = await connect({
      url: c.url,
      realm: c.realm,
      authmethods: [c.authmethod],
      authid: c.authid,
      secret: c.secret,
      onclose: (info) => inbox && sessionClosed(inbox, info),
    });
  } catch (e) {
    if (again && isUri(e, TRANSPORT_LOST)) return false; // not reachable yet: retried
    const title = (e instanceof WampError && LOGIN_ERRORS[e.uri]) || "Login failed";
    if (again) {
      // Refused on reconnect (password changed, account removed, …): signed out.
      live = null;
      creds = null;
      setState("signed-out", "Signed out");
    }
    showError(title, e.message === e.uri ? "" : e.message, e instanceof WampError ? e.uri : "");
    return false;
  }
  if (live) live.stop();
  inbox = new Inbox(session);
  live = inbox;
  el.threadList.replaceChildren();
  el.visitorList.replaceChildren();
  el.searchResults.hidden = true;
  el.searchList.replaceChildren();
  el.convBody.hidden = true;
  el.convEmpty.hidden = false;
  el.whoami.textContent = `${inbox.me} (${inbox.role})`;
  try {
    await inbox.start();
  } catch (e) {
    if (live === inbox) {
      inbox.stop();
      live = null;
    }
    creds = null;
    const closing = session.close("wamp.close.close_realm");
    setState("signed-out", "Signed out");
    if (isUri(e, "wamp.error.not_authorized")) {
      showError(
        "This account is not staff of the chat service",
        `Signed in as ${text(session.details.authid)} (role ${text(session.details.authrole)}), but the chat service refused: ${e.message}`,
        e.uri,
      );
    } else if (isUri(e, "wamp.error.no_such_procedure")) {
      showError("This realm has no chat service", e.message, e.uri);
    } else {
      showCallError("load the inbox", e);
    }
    await closing;
    return false;
  }
  if (live !== inbox) return false;
  setState("live", "Live");
  clearError();
  resumePhone().catch(() => {});
  if (again && again.openId !== null && inbox.threads.has(again.openId)) {
    // The reply box keeps what was typed meanwhile.
    await inbox.openThread(again.openId, { draft: el.reply.value });
    // Replies in flight when the connection went: sent again with their client_id, so one
    // that did reach the server is not stored twice (and one already shown is skipped).
    if (inbox.conv && inbox.conv.id === again.openId) {
      for (const { text: v, cid, file } of again.outbox) {
        if (!inbox.conv.clientIds.has(cid)) inbox.conv.send(v, null, cid, file);
      }
    }
  } else {
    document.body.dataset.view = "list";
  }
  resume = { openId: null, outbox: [] };
  return true;
}

async function login(ev) {
  ev.preventDefault();
  if (document.body.dataset.state === "connecting") return;
  clearError();
  saveFields();
  const realm = el.realm.value.trim();
  const authid = el.authid.value.trim();
  if (!realm || !authid) {
    showError(!realm ? "Enter a realm" : "Enter your Auth ID", "");
    return;
  }
  setState("connecting", "Connecting…");
  const c = {
    url: wsUrl(el.url.value),
    realm,
    authmethod: el.method.value,
    authid,
    secret: el.secret.value,
  };
  creds = c;
  const ok = await start(c);
  if (ok) {
    el.secret.value = "";
  } else if (!live) {
    creds = null;
    setState("signed-out", "Signed out");
  }
}

async function logout() {
  clearTimeout(reconnectTimer);
  if (phone) {
    phone.ctl.hangup();
    dropPhone();
  }
  creds = null;
  const inbox = live;
  live = null;
  clearError();
  setState("signed-out", "Signed out");
  el.updated.textContent = "Not connected";
  if (!inbox) return;
  inbox.stop();
  await inbox.session.close("wamp.close.close_realm");
}

// ---------- start ----------

function init() {
  el = {
    pill: $("inbox-pill"), pillText: $("inbox-pill-text"), logout: $("logout"), whoami: $("whoami"),
    notify: $("notify-enable"),
    error: $("inbox-error"), errorTitle: $("inbox-error-title"), errorDetail: $("inbox-error-detail"),
    errorUri: $("inbox-error-uri"), errorClose: $("inbox-error-close"),
    login: $("login"), form: $("login-form"), url: $("login-url"), realm: $("login-realm"),
    method: $("login-method"), authid: $("login-authid"), secret: $("login-secret"), submit: $("login-submit"),
    inbox: $("inbox"), unreadTotal: $("unread-total"),
    searchForm: $("search-form"), searchInput: $("search-input"), searchResults: $("search-results"),
    searchSummary: $("search-summary"), searchList: $("search-list"), searchClear: $("search-clear"),
    filter: $("thread-filter"), threadList: $("thread-list"), threadsEmpty: $("threads-empty"),
    visitorList: $("visitor-list"), visitorsCount: $("visitors-count"), visitorsEmpty: $("visitors-empty"),
    staffOnline: $("staff-online"),
    convEmpty: $("conversation-empty"), convBody: $("conversation-body"), back: $("back"),
    convName: $("conv-name"), convPresence: $("conv-presence"), convPage: $("conv-page"),
    convStatus: $("conv-status"), assign: $("assign"), resolve: $("resolve"), exportBtn: $("export"),
    forget: $("forget"),
    scroller: $("scroller"), historyState: $("history-state"), history: $("history"), liveLog: $("live-log"),
    typing: $("typing"), composer: $("composer"), reply: $("reply"), send: $("send"),
    forgetDialog: $("forget-dialog"), forgetWho: $("forget-who"), forgetCancel: $("forget-cancel"),
    updated: $("last-updated"),
    callDock: $("call-dock"), callAudio: $("call-audio-start"), callVideo: $("call-video-start"),
    attach: $("attach"), fileInput: $("file-input"), upload: $("upload"), uploadStatus: $("upload-status"),
    uploadProgress: $("upload-progress"), uploadError: $("upload-error"),
  };
  loadFields();
  el.form.addEventListener("submit", login);
  el.logout.addEventListener("click", logout);
  el.notify.addEventListener("click", enableNotifications);
  el.errorClose.addEventListener("click", clearError);
  el.threadList.addEventListener("keydown", (e) => live && live.listKeydown(e));
  el.filter.addEventListener("change", () => live && live.refreshList());
  el.searchForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (live) live.search(el.searchInput.value);
  });
  el.searchClear.addEventListener("click", () => {
    el.searchInput.value = "";
    if (live) live.clearSearch();
    el.searchInput.focus();
  });
  el.back.addEventListener("click", () => {
    const id = live && live.conv ? live.conv.id : null;
    if (live) live.closeThread();
    const li = id !== null ? document.getElementById(`thread-${id}`) : null;
    if (li && live) live.focusOption(li);
  });
  el.resolve.addEventListener("click", () => live && live.setStatus());
  el.callAudio.addEventListener("click", () => startCall(false).catch((e) => showCallError("start the call", e)));
  el.callVideo.addEventListener("click", () => startCall(true).catch((e) => showCallError("start the call", e)));
  el.assign.addEventListener("change", () => live && live.assign());
  el.exportBtn.addEventListener("click", () => live && live.exportThread());
  el.forget.addEventListener("click", () => live && live.askForget());
  el.forgetDialog.addEventListener("close", () => live && live.forgetConfirmed());
  el.scroller.addEventListener("scroll", () => live && live.conv && live.conv.onScroll(), { passive: true });
  el.reply.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      el.composer.requestSubmit();
    }
  });
  el.reply.addEventListener("input", () => live && live.conv && live.conv.typed());
  // Attachments: the paperclip, an image pasted into the reply, files dropped on the conversation.
  const canAttach = () => live && live.conv && document.body.dataset.state === "live";
  el.attach.addEventListener("click", () => el.fileInput.click());
  el.fileInput.addEventListener("change", () => {
    if (canAttach()) live.conv.attach([...el.fileInput.files]);
    el.fileInput.value = "";
  });
  el.reply.addEventListener("paste", (e) => {
    const files = e.clipboardData ? [...e.clipboardData.files] : [];
    if (!files.length || !canAttach()) return;
    e.preventDefault();
    live.conv.attach(files);
  });
  let dropTimer = null;
  el.convBody.addEventListener("dragover", (e) => {
    if (!canAttach() || !e.dataTransfer || ![...e.dataTransfer.types].includes("Files")) return;
    e.preventDefault();
    el.convBody.classList.add("dropping");
    clearTimeout(dropTimer);
    dropTimer = setTimeout(() => el.convBody.classList.remove("dropping"), 200);
  });
  el.convBody.addEventListener("drop", (e) => {
    el.convBody.classList.remove("dropping");
    const files = e.dataTransfer ? [...e.dataTransfer.files] : [];
    if (!files.length || !canAttach()) return;
    e.preventDefault();
    live.conv.attach(files);
  });
  el.composer.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!live || !live.conv || document.body.dataset.state !== "live") return;
    const v = el.reply.value;
    if (!v.trim()) return;
    el.reply.value = "";
    live.conv.send(v);
    el.reply.focus();
  });
  // The browser lost its network: drop the session now (rather than when keep-alive notices)
  // and reconnect when it is back.
  window.addEventListener("offline", () => {
    if (!live || document.body.dataset.state !== "live") return;
    const inbox = live;
    inbox.offline = true;
    lose(inbox);
    setState("reconnecting", "Offline");
    inbox.session.close("wamp.close.close_realm", "the browser went offline");
  });
  window.addEventListener("online", () => {
    if (creds && document.body.dataset.state === "reconnecting") scheduleReconnect(0);
  });
  document.addEventListener("visibilitychange", () => {
    if (live && live.conv && document.visibilityState === "visible") live.scheduleRead();
  });
  window.addEventListener("focus", () => {
    if (live && live.conv) live.scheduleRead();
  });
  setState("signed-out", "Signed out");
  document.body.dataset.ready = "true";
}

init();
