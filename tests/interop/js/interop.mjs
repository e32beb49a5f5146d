// Autobahn|JS interop checks against a WAMP v2 router (Switchboard).
//
// Usage: node interop.mjs <ws-url> [serializers]
//   ws-url       e.g. ws://127.0.0.1:8080/ws (realm "realm1", anonymous, all permitted)
//   serializers  comma separated subset of json,msgpack,cbor (default: all three)
//
// Prints exactly one line starting with "INTEROP_RESULT " followed by JSON:
//   {"ok": bool, "node": "...", "autobahn": "...", "results": [{"check", "serializer", "ok", "ms", "error"}]}
// and exits 0 when every check passed, 1 when one failed, 2 on a global timeout.
//
// Every check has its own time bound (CHECK_MS) and the whole run another one
// (GLOBAL_MS), so a broken router fails fast instead of hanging.
//
// Binary payloads: msgpack and cbor carry Node Buffers natively. Autobahn|JS's
// JSON serializer has no binary support of its own, so it is given the WAMP
// spec's JSON binary convention (a string "\0" + base64) as replacer/reviver,
// the same convention Autobahn|Python and the router use.

import { createRequire } from 'node:module';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

const require = createRequire(import.meta.url);
const autobahn = require('autobahn');

const REALM = 'realm1';
const CHECK_MS = 10000;
const STEP_MS = 5000;
const GLOBAL_MS = 150000;

const url = process.argv[2];
const serializerNames = (process.argv[3] || 'json,msgpack,cbor').split(',').filter(Boolean);
if (!url) {
  console.error('usage: node interop.mjs <ws-url> [json,msgpack,cbor]');
  process.exit(64);
}

// ---------------------------------------------------------------------------- helpers

function jsonBinaryReplacer(key, value) {
  const orig = this[key];
  if (orig instanceof Uint8Array) {
    return '\u0000' + Buffer.from(orig.buffer, orig.byteOffset, orig.byteLength).toString('base64');
  }
  return value;
}

function jsonBinaryReviver(_key, value) {
  if (typeof value === 'string' && value.charCodeAt(0) === 0) {
    return Buffer.from(value.slice(1), 'base64');
  }
  return value;
}

function makeSerializer(name) {
  switch (name) {
    case 'json':
      return new autobahn.serializer.JSONSerializer(jsonBinaryReplacer, jsonBinaryReviver);
    case 'msgpack':
      return new autobahn.serializer.MsgpackSerializer();
    case 'cbor':
      return new autobahn.serializer.CBORSerializer();
    default:
      throw new Error(`unknown serializer ${name}`);
  }
}

// Native promises, plus progress notifications (used for progressive call results),
// so the checks do not depend on the optional "when" package.
function deferredWithProgress() {
  const d = {};
  d.promise = new Promise((resolve, reject) => {
    d.resolve = resolve;
    d.reject = reject;
  });
  const listeners = [];
  d.notify = (value) => listeners.forEach((fn) => fn(value));
  d.promise.progress = (fn) => {
    listeners.push(fn);
    return d.promise;
  };
  return d;
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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const uri = (kind) => `com.sbtest.js.${kind}.${randomUUID().replace(/-/g, '').slice(0, 12)}`;

function describeError(e) {
  if (e instanceof autobahn.Error) {
    return `${e.error} args=${JSON.stringify(e.args)} kwargs=${JSON.stringify(e.kwargs)}`;
  }
  if (e && e.stack) return e.stack;
  return String(e);
}

// Normalise payloads for comparison: byte strings of any flavour (Buffer,
// Uint8Array) become {$bytes: hex}, so Buffer-vs-Uint8Array doesn't matter
// but bytes-vs-string does.
function norm(v) {
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
  if (v instanceof autobahn.Result) return { $result: [norm(v.args), norm(v.kwargs)] };
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = norm(v[k]);
    return out;
  }
  return v;
}

function assertPayload(actual, expected, what) {
  assert.deepStrictEqual(norm(actual), norm(expected), what);
}

// Collects callback invocations; next() waits (bounded) for the next one.
class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
  }
  put(item) {
    const w = this.waiters.shift();
    if (w) w(item);
    else this.items.push(item);
  }
  next(ms = STEP_MS) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return withTimeout(new Promise((resolve) => this.waiters.push(resolve)), ms, 'waiting for event');
  }
  async until(pred, ms = STEP_MS) {
    const out = [];
    for (;;) {
      const item = await this.next(ms);
      out.push(item);
      if (pred(item)) return out;
    }
  }
}

class Harness {
  constructor() {
    this.conns = [];
  }

  connect(ser) {
    return withTimeout(
      new Promise((resolve, reject) => {
        const conn = new autobahn.Connection({
          url,
          realm: REALM,
          serializers: [makeSerializer(ser)],
          max_retries: 0,
          retry_if_unreachable: false,
          use_deferred: deferredWithProgress,
        });
        let opened = false;
        conn.onopen = (session, details) => {
          opened = true;
          session.closedReason = null;
          this.conns.push(conn);
          resolve(session);
        };
        conn.onclose = (reason, details) => {
          if (!opened) reject(new Error(`connect (${ser}) failed: ${reason} ${JSON.stringify(details)}`));
          else if (conn.session) conn.session.closedReason = `${reason} ${JSON.stringify(details)}`;
          return true; // no reconnect
        };
        conn.open();
      }),
      STEP_MS,
      `connect ${ser}`,
    );
  }

  async close() {
    for (const conn of this.conns) {
      try {
        if (conn.isOpen) conn.close();
      } catch (_) {
        // ignore
      }
    }
    this.conns = [];
    await sleep(20);
  }
}

function assertAlive(session, who) {
  assert.ok(session.isOpen, `${who} session closed: ${session.closedReason}`);
}

function expectError(promise, errorUri, what) {
  return withTimeout(
    promise.then(
      (res) => {
        throw new assert.AssertionError({ message: `${what}: expected ${errorUri}, got result ${JSON.stringify(norm(res))}` });
      },
      (err) => {
        if (err instanceof assert.AssertionError) throw err;
        assert.ok(err instanceof autobahn.Error, `${what}: expected autobahn.Error, got ${describeError(err)}`);
        assert.equal(err.error, errorUri, `${what}: wrong error URI (${describeError(err)})`);
        return err;
      },
    ),
    STEP_MS,
    what,
  );
}

const step = (p, what) => withTimeout(p, STEP_MS, what);

// ---------------------------------------------------------------------------- checks

const ARGS = [1, 'two', 3.5, true, null, [1, [2, 3]], { a: 'b' }, -42, 'ünïcødé ✓'];
const KWARGS = { x: 1, y: ['z', 2.25], nested: { k: [1, { q: null }] }, flag: false };

const checks = {};

checks.pubsub = async (h, ser) => {
  const sub = await h.connect(ser);
  const pub = await h.connect(ser);
  const topic = uri('pubsub');
  const inSub = new Inbox();
  const inPub = new Inbox();
  await step(sub.subscribe(topic, (args, kwargs, details) => inSub.put({ args, kwargs, details })), 'subscribe');
  await step(pub.subscribe(topic, (args, kwargs, details) => inPub.put({ args, kwargs, details })), 'subscribe (publisher)');

  const p1 = await step(pub.publish(topic, ARGS, KWARGS, { acknowledge: true }), 'publish acknowledged');
  assert.ok(p1 instanceof autobahn.Publication, 'acknowledged publish resolves to a Publication');
  assert.ok(Number.isInteger(p1.id) && p1.id >= 1 && p1.id <= 2 ** 53, `publication id ${p1.id}`);
  let ev = await inSub.next();
  assertPayload(ev.args, ARGS, 'event args');
  assertPayload(ev.kwargs, KWARGS, 'event kwargs');
  assert.equal(ev.details.publication, p1.id, 'EVENT publication id equals PUBLISHED id');

  // exclude_me defaults to true: the publisher only gets the exclude_me=false event
  await step(pub.publish(topic, ['second'], {}, { acknowledge: true, exclude_me: false }), 'publish exclude_me=false');
  ev = await inPub.next();
  assert.deepStrictEqual(ev.args, ['second'], 'publisher receives only its exclude_me=false event');
  ev = await inSub.next();
  assert.deepStrictEqual(ev.args, ['second']);

  // eligible / exclude by session id
  const third = await h.connect(ser);
  const inThird = new Inbox();
  await step(third.subscribe(topic, (args) => inThird.put(args)), 'subscribe (third)');
  await step(pub.publish(topic, ['not-sub'], {}, { acknowledge: true, exclude: [sub.id] }), 'publish exclude');
  await step(pub.publish(topic, ['only-sub'], {}, { acknowledge: true, eligible: [sub.id] }), 'publish eligible');
  await step(pub.publish(topic, ['end'], {}, { acknowledge: true }), 'publish end');
  const gotSub = (await inSub.until((e) => e.args[0] === 'end')).map((e) => e.args[0]);
  const gotThird = (await inThird.until((a) => a[0] === 'end')).map((a) => a[0]);
  assert.deepStrictEqual(gotSub, ['only-sub', 'end'], 'subscriber (excluded, then eligible)');
  assert.deepStrictEqual(gotThird, ['not-sub', 'end'], 'third subscriber');
};

checks.rpc = async (h, ser) => {
  const callee = await h.connect(ser);
  const caller = await h.connect(ser);
  const proc = uri('rpc');
  const seen = [];
  await step(
    callee.register(proc, (args, kwargs, details) => {
      seen.push({ args, kwargs });
      if (kwargs.mode === 'single') return args.reduce((a, b) => a + b, 0);
      if (kwargs.mode === 'fail') throw new autobahn.Error('com.example.error.custom', ['bad', 42], { reason: 'because' });
      return new autobahn.Result([...args].reverse(), { echoed: kwargs, n: args.length });
    }),
    'register',
  );

  const res = await step(caller.call(proc, ARGS, KWARGS), 'call');
  assert.ok(res instanceof autobahn.Result, 'multi-value result is an autobahn.Result');
  assertPayload(res.args, [...ARGS].reverse(), 'result args');
  assertPayload(res.kwargs, { echoed: KWARGS, n: ARGS.length }, 'result kwargs');
  assertPayload(seen[0], { args: ARGS, kwargs: KWARGS }, 'invocation args/kwargs');

  assert.equal(await step(caller.call(proc, [1, 2, 3.5], { mode: 'single' }), 'call single'), 6.5);

  const err = await expectError(caller.call(proc, [], { mode: 'fail' }), 'com.example.error.custom', 'callee error');
  assert.deepStrictEqual(err.args, ['bad', 42]);
  assert.deepStrictEqual(err.kwargs, { reason: 'because' });

  await expectError(caller.call(uri('nope'), [1]), 'wamp.error.no_such_procedure', 'unknown procedure');
};

checks.progressive = async (h, ser) => {
  const callee = await h.connect(ser);
  const caller = await h.connect(ser);
  const proc = uri('progress');
  await step(
    callee.register(proc, async (args, kwargs, details) => {
      assert.ok(details.progress, 'callee got no progress function although the caller asked for progress');
      for (let i = 0; i < args[0]; i++) {
        details.progress([i], { step: `s${i}` });
        await sleep(10);
      }
      return new autobahn.Result(['done'], { total: args[0] });
    }),
    'register',
  );
  const progress = [];
  const call = caller.call(proc, [4], {}, { receive_progress: true });
  call.progress((p) => progress.push(norm(p)));
  const res = await step(call, 'progressive call');
  assert.deepStrictEqual(
    progress,
    [0, 1, 2, 3].map((i) => ({ $result: [[i], { step: `s${i}` }] })),
    'progressive results',
  );
  assertPayload(res, new autobahn.Result(['done'], { total: 4 }), 'final result');
};

checks.pattern_subscription = async (h, ser) => {
  const sub = await h.connect(ser);
  const pub = await h.connect(ser);
  const base = uri('pattern');
  const inPrefix = new Inbox();
  const inWild = new Inbox();
  await step(sub.subscribe(base, (args, kw, d) => inPrefix.put([args[0], d.topic]), { match: 'prefix' }), 'prefix subscribe');
  await step(sub.subscribe(`${base}..update`, (args, kw, d) => inWild.put([args[0], d.topic]), { match: 'wildcard' }), 'wildcard subscribe');

  const topics = [`${base}.a.update`, `${base}.b.c`, `${base}.a.b.update`, `${base}.z.update`];
  for (const t of topics) await step(pub.publish(t, [t], {}, { acknowledge: true }), `publish ${t}`);
  await step(pub.publish(`${base}.end.update`, ['end'], {}, { acknowledge: true }), 'publish end');

  const gotPrefix = await inPrefix.until((e) => e[0] === 'end');
  assert.deepStrictEqual(gotPrefix, [...topics.map((t) => [t, t]), ['end', `${base}.end.update`]], 'prefix events');
  const gotWild = await inWild.until((e) => e[0] === 'end');
  assert.deepStrictEqual(
    gotWild,
    [[`${base}.a.update`, `${base}.a.update`], [`${base}.z.update`, `${base}.z.update`], ['end', `${base}.end.update`]],
    'wildcard events',
  );
};

checks.shared_roundrobin = async (h, ser) => {
  const proc = uri('rr');
  for (const name of ['A', 'B']) {
    const callee = await h.connect(ser);
    await step(callee.register(proc, () => name, { invoke: 'roundrobin' }), `register ${name}`);
  }
  const caller = await h.connect(ser);
  const got = [];
  for (let i = 0; i < 6; i++) got.push(await step(caller.call(proc), `call ${i}`));
  assert.equal(got.filter((x) => x === 'A').length, 3, `roundrobin distribution ${got}`);
  assert.equal(got.filter((x) => x === 'B').length, 3, `roundrobin distribution ${got}`);
  for (let i = 1; i < got.length; i++) assert.notEqual(got[i], got[i - 1], `not alternating: ${got}`);
};

checks.call_cancel = async (h, ser) => {
  // Autobahn|JS callees do not announce call_canceling, so per the spec the dealer
  // must treat the cancel as "skip" for them: no INTERRUPT (which Autobahn|JS would
  // treat as a protocol violation), ERROR wamp.error.canceled to the caller at once,
  // and the callee's late result is discarded. "kill" is used because Autobahn|JS
  // keeps the call pending only in that mode and so really sees the router's ERROR.
  const callee = await h.connect(ser);
  const caller = await h.connect(ser);
  const proc = uri('cancel');
  let started;
  const startedP = new Promise((resolve) => (started = resolve));
  const RELEASE_MS = 1500;
  let releasedAt = null;
  await step(
    callee.register(proc, () => {
      started();
      return sleep(RELEASE_MS).then(() => {
        releasedAt = Date.now();
        return 'finished';
      });
    }),
    'register',
  );
  const call = caller.call(proc, ['work']);
  await step(startedP, 'invocation reached the callee');
  call.cancel({ mode: 'kill' });
  await expectError(call, 'wamp.error.canceled', 'canceled call');
  assert.equal(releasedAt, null, 'caller got its ERROR only after the callee had finished');
  await sleep(RELEASE_MS + 300); // the callee's late YIELD must be discarded by the router
  assertAlive(caller, 'caller');
  assertAlive(callee, 'callee');
  const proc2 = uri('aftercancel');
  await step(callee.register(proc2, () => 'ok'), 'register 2');
  assert.equal(await step(caller.call(proc2), 'call after cancel'), 'ok');
};

const BIN_ARGS = () => [
  Buffer.from([0, 1, 2, 254, 255]),
  {
    blob: Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    text: 'héllo ✓',
    n: -7,
    f: 2.5,
    list: [Buffer.alloc(0), Buffer.from([0]), null, true],
  },
  Buffer.alloc(0),
  'plain string',
];
const BIN_KWARGS = () => ({
  raw: Buffer.from('\u0000\u0000\u0000abc', 'latin1'),
  empty: Buffer.alloc(0),
  nested: { deep: [Buffer.from('deadbeef', 'hex'), { k: Buffer.alloc(40, 0x7f) }] },
  big: Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256)),
});

// A session with serializer `ser` publishes / calls with binary payloads; sessions
// with every serializer receive / serve them and must see identical values.
checks.binary_roundtrip = async (h, ser) => {
  const pub = await h.connect(ser);
  const topic = uri('binps');
  const inboxes = {};
  const callees = {};
  for (const other of ['json', 'msgpack', 'cbor']) {
    const s = await h.connect(other);
    inboxes[other] = new Inbox();
    await step(s.subscribe(topic, (args, kwargs) => inboxes[other].put({ args, kwargs })), `subscribe ${other}`);
    callees[other] = s;
  }
  await step(pub.publish(topic, BIN_ARGS(), BIN_KWARGS(), { acknowledge: true }), 'publish binary');
  for (const other of Object.keys(inboxes)) {
    const ev = await inboxes[other].next();
    assertPayload(ev.args, BIN_ARGS(), `${ser} -> ${other}: event args`);
    assertPayload(ev.kwargs, BIN_KWARGS(), `${ser} -> ${other}: event kwargs`);
  }

  for (const [other, callee] of Object.entries(callees)) {
    const proc = uri(`binrpc.${other}`);
    const seen = [];
    await step(
      callee.register(proc, (args, kwargs) => {
        seen.push({ args, kwargs });
        return new autobahn.Result(args, { ...kwargs, digest: Buffer.from([...kwargs.raw].reverse()) });
      }),
      `register ${other}`,
    );
    const res = await step(pub.call(proc, BIN_ARGS(), BIN_KWARGS()), `call ${other}`);
    assertPayload(seen[0], { args: BIN_ARGS(), kwargs: BIN_KWARGS() }, `${ser} caller -> ${other} callee: invocation`);
    assertPayload(
      res,
      new autobahn.Result(BIN_ARGS(), { ...BIN_KWARGS(), digest: Buffer.from('cba\u0000\u0000\u0000', 'latin1') }),
      `${other} callee -> ${ser} caller: result`,
    );
  }
};

// ---------------------------------------------------------------------------- runner

const results = [];
let finished = false;

function report(code) {
  if (finished) return;
  finished = true;
  const ok = code === 0;
  process.stdout.write(
    'INTEROP_RESULT ' + JSON.stringify({ ok, node: process.version, autobahn: autobahn.version, url, results }) + '\n',
    () => process.exit(code),
  );
}

const watchdog = setTimeout(() => {
  results.push({ check: '<global>', serializer: null, ok: false, ms: GLOBAL_MS, error: `global timeout ${GLOBAL_MS} ms` });
  report(2);
}, GLOBAL_MS);

process.on('unhandledRejection', (e) => {
  // autobahn may reject promises nobody waits for any more (e.g. after a timeout)
  console.error('unhandled rejection:', describeError(e));
});

async function main() {
  for (const ser of serializerNames) {
    for (const [name, fn] of Object.entries(checks)) {
      const h = new Harness();
      const t0 = Date.now();
      let error = null;
      try {
        await withTimeout(fn(h, ser), CHECK_MS, `${name}[${ser}]`);
      } catch (e) {
        error = describeError(e);
      } finally {
        await h.close();
      }
      results.push({ check: name, serializer: ser, ok: error === null, ms: Date.now() - t0, error });
      console.error(`${error === null ? 'PASS' : 'FAIL'} ${name}[${ser}] ${Date.now() - t0} ms${error ? '\n' + error : ''}`);
    }
  }
  clearTimeout(watchdog);
  report(results.every((r) => r.ok) ? 0 : 1);
}

main().catch((e) => {
  results.push({ check: '<runner>', serializer: null, ok: false, ms: 0, error: describeError(e) });
  report(1);
});
