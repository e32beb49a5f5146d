// One browser-style Autobahn|JS client that authenticates and then tries a few actions.
// Run by tests/interop/test_worker_pattern.py.
//
// Usage: node auth_client.mjs '<spec json>'
//   spec = {
//     url, realm,
//     authmethod: "ticket" | "wampcra" | "cryptosign",
//     authid,                 // may be null (cryptosign: the router identifies the key)
//     secret,                 // ticket, or WAMP-CRA password (salted: derived with the CHALLENGE's salt)
//     seed,                   // cryptosign: hex of the 32-byte Ed25519 seed
//     actions: [              // run in order after joining; each reports ok/result or error URI
//       {op: "call", uri, args},
//       {op: "subscribe", uri},
//       {op: "publish", uri, args},   // acknowledged, exclude_me false; waits for its own event
//                                     // when a subscription on uri exists
//     ],
//     join_timeout_ms,        // how long to wait for a session (default 5000)
//     retry,                  // null: no reconnect; {max_retries, initial_retry_delay}: Autobahn's
//                             // own reconnect (which an ABORT switches off)
//   }
//
// Prints one line `AUTH_RESULT {json}`:
//   {joined, details: {session, authid, authrole, authmethod, authprovider, authextra},
//    actions: [{op, uri, ok, result?, error?, message?}],
//    closes: [{reason, abort_reason, abort_message, will_retry, ms}],   // every Connection.onclose
//    abort: {reason, message} | null,   // the first ABORT the client received (before joining)
//    challenge: {method, extra} | null, // the last CHALLENGE
//    error: null | string}
// Exits 0 whenever it could report (the test judges the outcome).

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const autobahn = require('autobahn');
const nacl = autobahn.nacl;

const STEP_MS = 5000;
const spec = JSON.parse(process.argv[2] || '{}');
const started = Date.now();
const out = { joined: false, details: null, actions: [], closes: [], abort: null, challenge: null, error: null };

function report(code = 0) {
  process.stdout.write('AUTH_RESULT ' + JSON.stringify(out) + '\n', () => process.exit(code));
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function describe(e) {
  if (e instanceof autobahn.Error) return { error: e.error, message: e.args && e.args[0] };
  if (e && e.error) return { error: e.error, message: e.args && e.args[0] };
  return { error: 'client.exception', message: e && e.stack ? e.stack : String(e) };
}

function plain(v) {
  if (v instanceof autobahn.Result) return { args: v.args, kwargs: v.kwargs };
  return v === undefined ? null : v;
}

function onchallenge(session, method, extra) {
  out.challenge = { method, extra };
  if (method === 'ticket') return spec.secret;
  if (method === 'wampcra') {
    let key = spec.secret;
    if (extra.salt) key = autobahn.auth_cra.derive_key(spec.secret, extra.salt, extra.iterations, extra.keylen);
    return autobahn.auth_cra.sign(key, extra.challenge);
  }
  if (method === 'cryptosign') return autobahn.auth_cryptosign.sign_challenge(keyPair(), extra);
  throw new Error(`no credentials for ${method}`);
}

function keyPair() {
  return nacl.sign.keyPair.fromSeed(Uint8Array.from(Buffer.from(spec.seed, 'hex')));
}

async function runActions(session) {
  const events = new Map(); // uri -> resolver of the next event
  for (const a of spec.actions || []) {
    const rec = { op: a.op, uri: a.uri };
    try {
      if (a.op === 'call') {
        rec.result = plain(await withTimeout(session.call(a.uri, a.args || []), STEP_MS, `call ${a.uri}`));
      } else if (a.op === 'subscribe') {
        const holder = { waiters: [], items: [] };
        events.set(a.uri, holder);
        await withTimeout(
          session.subscribe(a.uri, (args, kwargs, details) => {
            const item = { args, publisher: details.publisher ?? null, publisher_authid: details.publisher_authid ?? null };
            const w = holder.waiters.shift();
            if (w) w(item);
            else holder.items.push(item);
          }),
          STEP_MS,
          `subscribe ${a.uri}`,
        );
        rec.result = null;
      } else if (a.op === 'publish') {
        await withTimeout(
          session.publish(a.uri, a.args || [], {}, { acknowledge: true, exclude_me: false }),
          STEP_MS,
          `publish ${a.uri}`,
        );
        const holder = events.get(a.uri);
        if (holder) {
          rec.result = await withTimeout(
            holder.items.length ? Promise.resolve(holder.items.shift()) : new Promise((r) => holder.waiters.push(r)),
            STEP_MS,
            `event on ${a.uri}`,
          );
        } else {
          rec.result = null;
        }
      } else {
        throw new Error(`unknown op ${a.op}`);
      }
      rec.ok = true;
    } catch (e) {
      rec.ok = false;
      Object.assign(rec, describe(e));
    }
    out.actions.push(rec);
  }
}

async function main() {
  const retry = spec.retry || null;
  const opts = {
    url: spec.url,
    realm: spec.realm || 'realm1',
    authmethods: [spec.authmethod],
    onchallenge,
    max_retries: retry ? retry.max_retries : 0,
    initial_retry_delay: retry ? retry.initial_retry_delay : 1.5,
    retry_delay_growth: 1,
    retry_delay_jitter: 0,
    retry_if_unreachable: !!retry,
  };
  if (spec.authid !== null && spec.authid !== undefined) opts.authid = spec.authid;
  if (spec.authmethod === 'cryptosign') {
    opts.authextra = { pubkey: Buffer.from(keyPair().publicKey).toString('hex') };
  }
  if (spec.authextra) opts.authextra = Object.assign(opts.authextra || {}, spec.authextra);

  const conn = new autobahn.Connection(opts);
  const joined = new Promise((resolve, reject) => {
    conn.onopen = (session, details) => {
      out.joined = true;
      out.details = {
        session: session.id,
        authid: details.authid ?? null,
        authrole: details.authrole ?? null,
        authmethod: details.authmethod ?? null,
        authprovider: details.authprovider ?? null,
        authextra: details.authextra ?? null,
      };
      resolve(session);
    };
    conn.onclose = (reason, details) => {
      const c = {
        reason,
        abort_reason: details.reason ?? null,
        abort_message: details.message ?? null,
        will_retry: !!details.will_retry,
        ms: Date.now() - started,
      };
      out.closes.push(c);
      // Before a session exists, a close that carries a WAMP reason came from ABORT
      if (!out.joined && c.abort_reason && !out.abort) out.abort = { reason: c.abort_reason, message: c.abort_message };
      if (!out.joined && !c.will_retry) reject(new Error('closed'));
      return false; // let Autobahn decide whether to reconnect
    };
  });
  conn.open();
  let session;
  try {
    session = await withTimeout(joined, spec.join_timeout_ms || STEP_MS, 'join');
  } catch (e) {
    if (!String(e.message).startsWith('closed')) out.error = String(e.message);
    try {
      conn.close();
    } catch (_) {
      // already closed
    }
    return report();
  }
  await runActions(session);
  try {
    conn.close();
  } catch (_) {
    // already closed
  }
  report();
}

setTimeout(() => {
  out.error = 'global timeout';
  report(2);
}, (spec.join_timeout_ms || STEP_MS) + 30000).unref();

main().catch((e) => {
  out.error = e && e.stack ? e.stack : String(e);
  report(1);
});
