// wamp.js — a small WAMP v2 client for the browser (and Node ≥ 22), no dependencies.
//
// Speaks JSON (`wamp.2.json`) over WebSocket. Roles: caller, subscriber, publisher.
// Authentication: anonymous, ticket, wampcra (plain and salted: PBKDF2-HMAC-SHA256, then
// HMAC-SHA256, base64 — through WebCrypto, which browsers offer only on https: and
// localhost/127.0.0.1 pages).
//
//   import { connect, WampError } from "/wamp.js";
//   const session = await connect({ url: "ws://127.0.0.1:8080/ws", realm: "realm1",
//     authmethods: ["wampcra"], authid: "alice", secret: "…",
//     onclose: (info) => console.log("closed", info.reason, info.message) });
//   const sub = await session.subscribe("com.example.topic", (args, kwargs, details) => …);
//   const res = await session.call("com.example.add", [2, 3]);   // → { args, kwargs, details }
//   await session.publish("com.example.topic", ["hi"], {}, { acknowledge: true });
//   await sub.unsubscribe();
//   await session.close();
//
// Failures are `WampError`s: `.uri` (the WAMP error or ABORT/GOODBYE reason), `.args`,
// `.kwargs`, `.details`, and `.message` (the router's explanation, `args[0]` or
// `details.message`, else the URI). Transport failures use `wamp.close.transport_lost`.
// This module never touches the DOM; show what peers send with `textContent` only.
//
// Not supported (yet): registering procedures (callee), progressive results, cancel, the
// binary-in-JSON convention (strings starting with "\u0000" are passed on as they are).

const HELLO = 1, WELCOME = 2, ABORT = 3, CHALLENGE = 4, AUTHENTICATE = 5, GOODBYE = 6,
  ERROR = 8, PUBLISH = 16, PUBLISHED = 17, SUBSCRIBE = 32, SUBSCRIBED = 33,
  UNSUBSCRIBE = 34, UNSUBSCRIBED = 35, EVENT = 36, CALL = 48, RESULT = 50;

/** Reason used when the WebSocket fails or closes without a WAMP GOODBYE/ABORT. */
export const TRANSPORT_LOST = "wamp.close.transport_lost";

/** An ERROR, ABORT or unexpected GOODBYE from the router, or a lost transport. */
export class WampError extends Error {
  constructor(uri, args = [], kwargs = {}, details = {}) {
    const first = Array.isArray(args) && typeof args[0] === "string" ? args[0] : "";
    const text = first || (details && typeof details.message === "string" ? details.message : "");
    super(text || uri);
    this.name = "WampError";
    this.uri = uri;
    this.args = Array.isArray(args) ? args : [];
    this.kwargs = kwargs && typeof kwargs === "object" ? kwargs : {};
    this.details = details && typeof details === "object" ? details : {};
  }
}

const enc = new TextEncoder();

function b64(bytes) {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s);
}

function subtle() {
  const s = globalThis.crypto && globalThis.crypto.subtle;
  if (!s) {
    throw new WampError("wamp.error.cannot_authenticate", [
      "WAMP-CRA needs WebCrypto, which this browser offers only on https: or localhost pages",
    ]);
  }
  return s;
}

/** Salted WAMP-CRA key as Autobahn derives it: base64(PBKDF2-HMAC-SHA256(secret, salt)). */
export async function deriveKey(secret, salt, iterations = 1000, keylen = 32) {
  const s = subtle();
  const base = await s.importKey("raw", enc.encode(secret), "PBKDF2", false, ["deriveBits"]);
  const bits = await s.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: enc.encode(salt), iterations },
    base,
    keylen * 8,
  );
  return b64(bits);
}

/** WAMP-CRA signature: base64(HMAC-SHA256(key, challenge)); the key is used as text. */
export async function signChallenge(key, challenge) {
  const s = subtle();
  const k = await s.importKey("raw", enc.encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return b64(await s.sign("HMAC", k, enc.encode(challenge)));
}

/** Answers a CHALLENGE: the ticket itself, or the WAMP-CRA signature. */
async function answer(method, extra, secret) {
  if (method === "ticket") return String(secret ?? "");
  if (method === "wampcra") {
    let key = String(secret ?? "");
    if (extra.salt !== undefined && extra.salt !== null) {
      key = await deriveKey(key, String(extra.salt), extra.iterations || 1000, extra.keylen || 32);
    }
    return signChallenge(key, String(extra.challenge ?? ""));
  }
  throw new WampError("wamp.error.cannot_authenticate", [`unsupported authentication method '${method}'`]);
}

const ROLES = {
  caller: { features: {} },
  subscriber: { features: { pattern_based_subscription: true } },
  publisher: { features: { publisher_exclusion: true } },
};

/**
 * Opens a session. Resolves with a `Session` on WELCOME; rejects with a `WampError` on ABORT
 * (`.uri` is the reason), on a transport failure, or after `timeout` ms.
 *
 * options: url, realm, authmethods (default ["anonymous"]), authid, secret (ticket, or the
 * WAMP-CRA secret/password), authextra, timeout (ms, default 10000), onclose(info) — called
 * once when an established session ends, with { reason, message, details, code, wasClean,
 * byClient }; WebSocket (a constructor, for Node versions without a global one).
 */
export function connect(options) {
  const {
    url, realm, authmethods = ["anonymous"], authid, secret, authextra, timeout = 10000,
    onclose, WebSocket: WS = globalThis.WebSocket,
  } = options || {};
  return new Promise((resolve, reject) => {
    let ws;
    try {
      ws = new WS(url, ["wamp.2.json"]);
    } catch (e) {
      reject(new WampError(TRANSPORT_LOST, [`cannot open ${url}: ${e && e.message ? e.message : e}`]));
      return;
    }
    const session = new Session(ws, realm, onclose);
    let settled = false;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session._drop();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new WampError(TRANSPORT_LOST, [`no WELCOME from ${url} within ${timeout} ms`])),
      timeout,
    );
    session._joining = {
      secret,
      welcome(details) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(session);
      },
      fail,
    };
    ws.onopen = () => {
      if (ws.protocol && ws.protocol !== "wamp.2.json") {
        fail(new WampError(TRANSPORT_LOST, [`the server chose subprotocol '${ws.protocol}'`]));
        return;
      }
      const details = { roles: ROLES, authmethods, agent: "switchboard-wamp.js" };
      if (authid) details.authid = authid;
      if (authextra) details.authextra = authextra;
      session._send([HELLO, realm, details]);
    };
  });
}

/** A subscription: `id`, `topic`, and `unsubscribe()`. */
class Subscription {
  constructor(session, id, topic, handler) {
    this.session = session;
    this.id = id;
    this.topic = topic;
    this.handler = handler;
    this.active = true;
  }
  unsubscribe() {
    return this.session.unsubscribe(this);
  }
}

/** An established WAMP session (see `connect`). */
export class Session {
  constructor(ws, realm, onclose) {
    this._ws = ws;
    this._onclose = onclose;
    this._nextId = 1;
    this._pending = new Map(); // request id → { resolve, reject, kind, ... }
    this._subs = new Map(); // subscription id → Set<Subscription>
    this._closed = false;
    this._goodbyeSent = false;
    this._closeInfo = null;
    this._closeWaiters = [];
    /** The session id, realm and WELCOME.Details (authid, authrole, authmethod, roles, …). */
    this.id = null;
    this.realm = realm;
    this.details = {};
    ws.onmessage = (e) => this._receive(e.data);
    ws.onclose = (e) => this._transportClosed(e);
    ws.onerror = () => {}; // onclose follows with the code
  }

  /** Whether the session is established and not closing. */
  get isOpen() {
    return this.id !== null && !this._closed && !this._goodbyeSent;
  }

  /** CALLs `procedure`; resolves with { args, kwargs, details } on RESULT, rejects on ERROR. */
  call(procedure, args = [], kwargs = {}, options = {}) {
    return this._request(CALL, (id) => [CALL, id, options, procedure, args, kwargs]);
  }

  /** SUBSCRIBEs; `handler(args, kwargs, details)` gets each EVENT. Resolves with a Subscription. */
  subscribe(topic, handler, options = {}) {
    return this._request(SUBSCRIBE, (id) => [SUBSCRIBE, id, options, topic], { topic, handler });
  }

  /** Removes one subscription; the router is told once its last local handler is gone. */
  unsubscribe(subscription) {
    if (!subscription.active) return Promise.resolve();
    subscription.active = false;
    const set = this._subs.get(subscription.id);
    if (set) {
      set.delete(subscription);
      if (set.size > 0) return Promise.resolve();
      this._subs.delete(subscription.id);
    }
    return this._request(UNSUBSCRIBE, (id) => [UNSUBSCRIBE, id, subscription.id]).then(() => undefined);
  }

  /** PUBLISHes. With `options.acknowledge` it resolves on PUBLISHED (rejects on ERROR). */
  publish(topic, args = [], kwargs = {}, options = {}) {
    if (options.acknowledge) {
      return this._request(PUBLISH, (id) => [PUBLISH, id, options, topic, args, kwargs]);
    }
    if (!this.isOpen) return Promise.reject(this._notOpen());
    this._send([PUBLISH, this._newId(), options, topic, args, kwargs]);
    return Promise.resolve();
  }

  /**
   * Leaves with GOODBYE (`reason`, optional `message`) and closes the WebSocket once the
   * router answers (or after 2 s). Pending requests then fail with a WampError(`reason`).
   */
  close(reason = "wamp.close.close_realm", message) {
    if (this._closed) return Promise.resolve();
    if (!this._goodbyeSent) {
      this._goodbyeSent = true;
      this._closeInfo = { reason, message: message || "", byClient: true };
      this._send([GOODBYE, message ? { message } : {}, reason]);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => this._drop(), 2000);
      this._closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  // ---------- internals ----------

  _newId() {
    const id = this._nextId;
    this._nextId = id >= 2 ** 53 ? 1 : id + 1;
    return id;
  }

  _notOpen() {
    const info = this._closeInfo;
    return new WampError(info && info.reason ? info.reason : TRANSPORT_LOST, ["the session is closed"]);
  }

  _request(kind, build, extra = {}) {
    if (!this.isOpen) return Promise.reject(this._notOpen());
    const id = this._newId();
    return new Promise((resolve, reject) => {
      this._pending.set(id, { kind, resolve, reject, ...extra });
      this._send(build(id));
    });
  }

  _send(msg) {
    if (this._ws.readyState === 1) this._ws.send(JSON.stringify(msg));
  }

  async _receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      msg = null;
    }
    if (!Array.isArray(msg) || typeof msg[0] !== "number") {
      this._protocolError("the router sent something that is not a WAMP message");
      return;
    }
    const joining = this._joining;
    if (joining) {
      await this._handshake(msg, joining);
      return;
    }
    switch (msg[0]) {
      case EVENT: {
        const [, subId, , details, args, kwargs] = msg;
        for (const s of Array.from(this._subs.get(subId) || [])) {
          try {
            s.handler(args || [], kwargs || {}, details || {});
          } catch (e) {
            console.error("wamp.js: event handler failed", e);
          }
        }
        break;
      }
      case RESULT:
        this._settle(msg[1], CALL, (p) => p.resolve({ args: msg[3] || [], kwargs: msg[4] || {}, details: msg[2] || {} }));
        break;
      case SUBSCRIBED:
        this._settle(msg[1], SUBSCRIBE, (p) => {
          const sub = new Subscription(this, msg[2], p.topic, p.handler);
          if (!this._subs.has(sub.id)) this._subs.set(sub.id, new Set());
          this._subs.get(sub.id).add(sub);
          p.resolve(sub);
        });
        break;
      case UNSUBSCRIBED:
        this._settle(msg[1], UNSUBSCRIBE, (p) => p.resolve());
        break;
      case PUBLISHED:
        this._settle(msg[1], PUBLISH, (p) => p.resolve({ publication: msg[2] }));
        break;
      case ERROR: {
        const [, type, id, details, uri, args, kwargs] = msg;
        this._settle(id, type, (p) => p.reject(new WampError(uri, args, kwargs, details)));
        break;
      }
      case GOODBYE: {
        const [, details, reason] = msg;
        if (!this._goodbyeSent) {
          this._goodbyeSent = true;
          this._closeInfo = { reason, message: (details && details.message) || "", details, byClient: false };
          this._send([GOODBYE, {}, "wamp.close.goodbye_and_out"]);
        }
        this._drop();
        break;
      }
      case ABORT: {
        const [, details, reason] = msg;
        this._closeInfo = { reason, message: (details && details.message) || "", details, byClient: false };
        this._drop();
        break;
      }
      default:
        break; // INTERRUPT, INVOCATION, …: this client announced no role that receives them
    }
  }

  async _handshake(msg, joining) {
    const [type] = msg;
    if (type === WELCOME) {
      this._joining = null;
      this.id = msg[1];
      this.details = msg[2] || {};
      joining.welcome(this.details);
    } else if (type === ABORT) {
      const [, details, reason] = msg;
      this._joining = null;
      joining.fail(new WampError(reason, [], {}, details));
    } else if (type === CHALLENGE) {
      const [, method, extra] = msg;
      try {
        const signature = await answer(method, extra || {}, joining.secret);
        this._send([AUTHENTICATE, signature, {}]);
      } catch (e) {
        this._send([ABORT, { message: e.message }, "wamp.error.cannot_authenticate"]);
        this._joining = null;
        joining.fail(e instanceof WampError ? e : new WampError("wamp.error.cannot_authenticate", [String(e && e.message)]));
      }
    } else {
      this._joining = null;
      joining.fail(new WampError("wamp.error.protocol_violation", [`unexpected message ${type} before WELCOME`]));
    }
  }

  _settle(id, kind, fn) {
    const p = this._pending.get(id);
    if (!p || p.kind !== kind) return;
    this._pending.delete(id);
    fn(p);
  }

  _protocolError(message) {
    this._closeInfo = { reason: "wamp.error.protocol_violation", message, byClient: false };
    this._send([ABORT, { message }, "wamp.error.protocol_violation"]);
    this._drop();
  }

  /** Closes the WebSocket (if open) and ends the session. */
  _drop() {
    try {
      if (this._ws.readyState <= 1) this._ws.close(1000);
    } catch {
      /* already closed */
    }
    this._finish({ code: 1000, wasClean: true });
  }

  _transportClosed(e) {
    if (this._joining) {
      const joining = this._joining;
      this._joining = null;
      const why = e.reason ? `: ${e.reason}` : "";
      joining.fail(new WampError(TRANSPORT_LOST, [`connection closed (code ${e.code})${why}`]));
    }
    this._finish({ code: e.code, wasClean: e.wasClean, closeReason: e.reason });
  }

  _finish({ code, wasClean, closeReason }) {
    if (this._closed) return;
    this._closed = true;
    const info = this._closeInfo || {
      reason: TRANSPORT_LOST,
      message: closeReason ? `connection closed (${code}): ${closeReason}` : `connection closed (${code})`,
      byClient: false,
    };
    const err = new WampError(info.reason, [info.message || "the session is closed"]);
    for (const p of this._pending.values()) p.reject(err);
    this._pending.clear();
    for (const set of this._subs.values()) for (const s of set) s.active = false;
    this._subs.clear();
    for (const w of this._closeWaiters.splice(0)) w();
    if (this.id !== null && this._onclose) {
      try {
        this._onclose({ details: {}, ...info, code, wasClean: !!wasClean });
      } catch (e2) {
        console.error("wamp.js: onclose handler failed", e2);
      }
    }
  }
}
