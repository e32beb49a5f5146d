"""Interop tests: Autobahn|Python (asyncio flavour) against the Switchboard router.

Every test drives real WAMP sessions over WebSocket with the json, msgpack and
cbor serializers. Expectations follow the WAMP v2 spec (basic + advanced
profile), not any particular router implementation; e.g. CALL.Options.timeout
is in milliseconds.

Set SWITCHBOARD_WS_URL (e.g. ws://127.0.0.1:8080/ws, realm "realm1", anonymous
auth, everything permitted) to run against an already running router instead
of the `server` fixture from conftest.py.

Each test is bounded: every awaited step has its own timeout (STEP) and the
whole test body another one (TEST), so a broken router fails fast instead of
hanging.
"""

import asyncio
import itertools
import os
import random
import time
import uuid
from collections import Counter
from urllib.parse import urlparse

import pytest
import txaio

txaio.use_asyncio()

from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp import message  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.request import Publication  # noqa: E402
from autobahn.wamp.serializer import (  # noqa: E402
    CBORSerializer,
    JsonSerializer,
    MsgPackSerializer,
)
from autobahn.wamp.types import (  # noqa: E402
    CallOptions,
    CallResult,
    ComponentConfig,
    PublishOptions,
    RegisterOptions,
    SubscribeOptions,
)

REALM = "realm1"
SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}
SER_NAMES = list(SERIALIZERS)
SER_PAIRS = [(a, b) for a, b in itertools.permutations(SER_NAMES, 2)]

STEP = 5.0  # bound for a single awaited step (join, event, call result, ...)
TEST = 25.0  # bound for a whole test body

MAX_ID = 2**53  # WAMP IDs are integers in [1, 2^53]

by_ser = pytest.mark.parametrize("ser", SER_NAMES)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ws_url(request):
    """URL of the router under test: $SWITCHBOARD_WS_URL, else conftest's `server`."""
    env = os.environ.get("SWITCHBOARD_WS_URL")
    if env:
        return env
    return request.getfixturevalue("server").ws_url


# --------------------------------------------------------------------------- harness


class Peer(ApplicationSession):
    """A WAMP session whose join / close can be awaited from outside."""

    def __init__(self, config, loop):
        super().__init__(config)
        self.joined = loop.create_future()
        self.closed = loop.create_future()
        self.welcome = None

    def onJoin(self, details):
        self.welcome = details
        if not self.joined.done():
            self.joined.set_result(details)

    def onLeave(self, details):
        if not self.joined.done():
            self.joined.set_exception(RuntimeError(f"session not joined: {details.reason} {details.message}"))
        return super().onLeave(details)

    def onDisconnect(self):
        if not self.joined.done():
            self.joined.set_exception(ConnectionError("transport closed before WELCOME"))
        if not self.closed.done():
            self.closed.set_result(None)
        return super().onDisconnect()


class Harness:
    def __init__(self, url):
        self.url = url
        self.peers = []  # (peer, asyncio transport)
        self.slow = []  # SlowCallee endpoints to release before closing

    def slow_callee(self, **kw):
        slow = SlowCallee(**kw)
        self.slow.append(slow)
        return slow

    async def connect(self, ser: str) -> Peer:
        loop = asyncio.get_running_loop()
        peer = Peer(ComponentConfig(realm=REALM), loop)
        factory = WampWebSocketClientFactory(
            lambda: peer, url=self.url, serializers=[SERIALIZERS[ser]()], loop=loop
        )
        u = urlparse(self.url)
        port = u.port or (443 if u.scheme == "wss" else 80)
        transport, _ = await asyncio.wait_for(loop.create_connection(factory, u.hostname, port), STEP)
        self.peers.append((peer, transport))
        await asyncio.wait_for(asyncio.shield(peer.joined), STEP)
        assert isinstance(peer.session_id, int) and 1 <= peer.session_id <= MAX_ID
        return peer

    async def close(self):
        # let endpoints that are still blocked finish (avoids sends on closed transports)
        if any(not s.release.is_set() for s in self.slow):
            for s in self.slow:
                s.release.set()
            await asyncio.sleep(0.05)
        for peer, transport in self.peers:
            try:
                if peer.is_attached():
                    peer.leave()
                await asyncio.wait_for(asyncio.shield(peer.closed), 2.0)
            except Exception:
                pass
            finally:
                transport.abort()


def run(url, body, timeout=TEST):
    """Run `body(harness)` on a fresh event loop, bounded by `timeout` seconds."""

    async def main():
        txaio.config.loop = asyncio.get_running_loop()
        h = Harness(url)
        try:
            await asyncio.wait_for(body(h), timeout)
        finally:
            await h.close()
            txaio.config.loop = None

    asyncio.run(main())


class Inbox:
    """Collects callback invocations; `get` waits (bounded) for the next one."""

    def __init__(self):
        self.q = asyncio.Queue()

    def put(self, item):
        self.q.put_nowait(item)

    async def get(self, timeout=STEP):
        return await asyncio.wait_for(self.q.get(), timeout)

    async def get_until(self, pred, timeout=STEP):
        """Items received up to and including the first one matching `pred`."""
        out = []
        while True:
            item = await self.get(timeout)
            out.append(item)
            if pred(item):
                return out

    def pending(self):
        items = []
        while not self.q.empty():
            items.append(self.q.get_nowait())
        return items


def uri(kind: str) -> str:
    return f"com.sbtest.{kind}.{uuid.uuid4().hex[:12]}"


async def subscribe_inbox(peer, topic, **opts):
    inbox = Inbox()

    def on_event(*args, details=None, **kwargs):
        inbox.put((args, kwargs, details))

    sub = await asyncio.wait_for(peer.subscribe(on_event, topic, options=SubscribeOptions(details=True, **opts)), STEP)
    return inbox, sub


def with_extra_options(peer, **extra):
    """Make `peer` add `extra` to the Options of every CALL / PUBLISH it sends.

    Autobahn|Python (>= 24) no longer exposes `disclose_me`, but it is part of
    the WAMP spec (caller / publisher identification), so inject it on the wire.
    """
    transport = peer._transport
    orig_send = transport.send
    patched = {}

    def patched_class(cls):
        if cls not in patched:

            class WithExtra(cls):
                __slots__ = ()

                def marshal_options(self):
                    opts = super().marshal_options()
                    opts.update(extra)
                    return opts

            patched[cls] = WithExtra
        return patched[cls]

    def send(msg):
        if type(msg) in (message.Call, message.Publish):
            msg.__class__ = patched_class(type(msg))
        return orig_send(msg)

    transport.send = send


def request_id_of(peer, fut):
    for rid, req in peer._call_reqs.items():
        if req.on_reply is fut:
            return rid
    raise AssertionError("call request not pending")


async def expect_error(aw, uri_, timeout=STEP):
    with pytest.raises(ApplicationError) as ei:
        await asyncio.wait_for(aw, timeout)
    assert ei.value.error == uri_, f"expected {uri_}, got {ei.value.error}: {ei.value}"
    return ei.value


# --------------------------------------------------------------------------- session


@by_ser
def test_welcome_announces_features(ws_url, ser):
    async def body(h):
        p = await h.connect(ser)
        assert p.welcome.realm == REALM
        assert p.welcome.serializer == ser
        roles = p._router_roles
        assert "broker" in roles and "dealer" in roles
        broker, dealer = roles["broker"], roles["dealer"]
        for feat in (
            "publisher_exclusion",
            "subscriber_blackwhite_listing",
            "publisher_identification",
            "pattern_based_subscription",
        ):
            assert getattr(broker, feat) is True, f"broker feature {feat} not announced"
        for feat in (
            "progressive_call_results",
            "call_timeout",
            "call_canceling",
            "caller_identification",
            "pattern_based_registration",
            "shared_registration",
        ):
            assert getattr(dealer, feat) is True, f"dealer feature {feat} not announced"
        q = await h.connect(ser)
        assert q.session_id != p.session_id

    run(ws_url, body)


# --------------------------------------------------------------------------- pub/sub

PAYLOAD_ARGS = [1, "two", 3.5, True, None, [1, [2, 3]], {"a": "b"}, -42, "ünïcødé ✓"]
PAYLOAD_KWARGS = {"x": 1, "y": ["z", 2.25], "nested": {"k": [1, {"q": None}]}, "flag": False}


@by_ser
def test_pubsub_args_kwargs(ws_url, ser):
    async def body(h):
        sub, pub = await h.connect(ser), await h.connect(ser)
        topic = uri("pubsub")
        inbox, _ = await subscribe_inbox(sub, topic)

        p = await asyncio.wait_for(
            pub.publish(topic, *PAYLOAD_ARGS, options=PublishOptions(acknowledge=True), **PAYLOAD_KWARGS), STEP
        )
        args, kwargs, details = await inbox.get()
        assert list(args) == PAYLOAD_ARGS
        assert kwargs == PAYLOAD_KWARGS
        assert details.publication == p.id

        pub.publish(topic, "only", "args")
        args, kwargs, _ = await inbox.get()
        assert args == ("only", "args") and kwargs == {}

        pub.publish(topic, only="kwargs")
        args, kwargs, _ = await inbox.get()
        assert args == () and kwargs == {"only": "kwargs"}

        pub.publish(topic)
        args, kwargs, _ = await inbox.get()
        assert args == () and kwargs == {}

    run(ws_url, body)


@by_ser
def test_publish_acknowledge(ws_url, ser):
    async def body(h):
        pub = await h.connect(ser)
        topic = uri("ack")
        # no subscriber: acknowledged publish still succeeds
        p1 = await asyncio.wait_for(pub.publish(topic, 1, options=PublishOptions(acknowledge=True)), STEP)
        assert isinstance(p1, Publication)
        assert isinstance(p1.id, int) and 1 <= p1.id <= MAX_ID
        sub = await h.connect(ser)
        inbox, _ = await subscribe_inbox(sub, topic)
        p2 = await asyncio.wait_for(pub.publish(topic, 2, options=PublishOptions(acknowledge=True)), STEP)
        assert isinstance(p2, Publication) and p2.id != p1.id
        args, _, details = await inbox.get()
        assert args == (2,) and details.publication == p2.id
        # unacknowledged publish returns nothing
        assert pub.publish(topic, 3) is None
        args, _, _ = await inbox.get()
        assert args == (3,)

    run(ws_url, body)


@by_ser
def test_publisher_exclusion(ws_url, ser):
    async def body(h):
        a, b = await h.connect(ser), await h.connect(ser)
        topic = uri("exclme")
        inbox_a, _ = await subscribe_inbox(a, topic)
        inbox_b, _ = await subscribe_inbox(b, topic)

        await asyncio.wait_for(a.publish(topic, "default", options=PublishOptions(acknowledge=True)), STEP)
        await asyncio.wait_for(
            a.publish(topic, "exclude_me_true", options=PublishOptions(acknowledge=True, exclude_me=True)), STEP
        )
        await asyncio.wait_for(
            a.publish(topic, "exclude_me_false", options=PublishOptions(acknowledge=True, exclude_me=False)), STEP
        )
        # the publisher itself only sees the exclude_me=False event
        assert (await inbox_a.get())[0] == ("exclude_me_false",)
        # the other subscriber sees all three, in order
        got_b = [(await inbox_b.get())[0] for _ in range(3)]
        assert got_b == [("default",), ("exclude_me_true",), ("exclude_me_false",)]
        await asyncio.sleep(0.1)
        assert inbox_a.pending() == [] and inbox_b.pending() == []

    run(ws_url, body)


@by_ser
def test_subscriber_black_white_listing(ws_url, ser):
    async def body(h):
        a, b, c = [await h.connect(ser) for _ in range(3)]
        pub = await h.connect(ser)
        topic = uri("bwlist")
        inboxes = {}
        for name, peer in (("a", a), ("b", b), ("c", c)):
            inboxes[name], _ = await subscribe_inbox(peer, topic)

        ack = dict(acknowledge=True)
        await asyncio.wait_for(pub.publish(topic, "ex_b", options=PublishOptions(exclude=[b.session_id], **ack)), STEP)
        await asyncio.wait_for(
            pub.publish(topic, "el_ac", options=PublishOptions(eligible=[a.session_id, c.session_id], **ack)), STEP
        )
        await asyncio.wait_for(
            pub.publish(
                topic, "el_ab_ex_a", options=PublishOptions(eligible=[a.session_id, b.session_id], exclude=[a.session_id], **ack)
            ),
            STEP,
        )
        await asyncio.wait_for(pub.publish(topic, "el_none", options=PublishOptions(eligible=[pub.session_id], **ack)), STEP)
        # barrier: events from one publisher arrive in publication order
        await asyncio.wait_for(pub.publish(topic, "end", options=PublishOptions(**ack)), STEP)

        def got(name):
            return inboxes[name].get_until(lambda item: item[0] == ("end",))

        assert [x[0][0] for x in await got("a")] == ["ex_b", "el_ac", "end"]
        assert [x[0][0] for x in await got("b")] == ["el_ab_ex_a", "end"]
        assert [x[0][0] for x in await got("c")] == ["ex_b", "el_ac", "end"]

    run(ws_url, body)


@by_ser
def test_publisher_disclosure(ws_url, ser):
    async def body(h):
        sub, pub = await h.connect(ser), await h.connect(ser)
        topic = uri("disclose")
        inbox, _ = await subscribe_inbox(sub, topic)
        with_extra_options(pub, disclose_me=True)
        await asyncio.wait_for(pub.publish(topic, "hi", options=PublishOptions(acknowledge=True)), STEP)
        args, _, details = await inbox.get()
        assert args == ("hi",)
        assert details.publisher == pub.session_id

    run(ws_url, body)


@by_ser
def test_prefix_subscription(ws_url, ser):
    async def body(h):
        sub, pub = await h.connect(ser), await h.connect(ser)
        base = uri("prefix")
        inbox, _ = await subscribe_inbox(sub, base, match="prefix")
        topics = [base, f"{base}.a", f"{base}.b.c", f"{base}-suffix"]
        for t in topics:
            pub.publish(t, t)
        pub.publish(base.replace("prefix", "prefiy"), "no match")  # different branch
        pub.publish(f"{base}.end", "end")
        got = await inbox.get_until(lambda item: item[0] == ("end",))
        assert [(x[0][0], x[2].topic) for x in got] == [(t, t) for t in topics] + [("end", f"{base}.end")]

    run(ws_url, body)


@by_ser
def test_wildcard_subscription(ws_url, ser):
    async def body(h):
        sub, pub = await h.connect(ser), await h.connect(ser)
        base = uri("wild")
        inbox, _ = await subscribe_inbox(sub, f"{base}..update", match="wildcard")
        pub.publish(f"{base}.x.update", 1)  # match
        pub.publish(f"{base}.x.y.update", 2)  # too many components
        pub.publish(f"{base}.x.delete", 3)  # last component differs
        pub.publish(f"{base}.update", 4)  # too few components
        pub.publish(f"{base}.zz.update", 5)  # match
        got = [await inbox.get(), await inbox.get()]
        assert [(x[0], x[2].topic) for x in got] == [((1,), f"{base}.x.update"), ((5,), f"{base}.zz.update")]
        # barrier to prove that the non-matching events were not delivered
        pub.publish(f"{base}.end.update", "end")
        assert (await inbox.get())[0] == ("end",)
        assert inbox.pending() == []

    run(ws_url, body)


@by_ser
def test_event_delivered_once_per_matching_subscription(ws_url, ser):
    async def body(h):
        sub, pub = await h.connect(ser), await h.connect(ser)
        base = uri("multi")
        topic = f"{base}.item.update"
        inbox_exact, s1 = await subscribe_inbox(sub, topic)
        inbox_prefix, s2 = await subscribe_inbox(sub, base, match="prefix")
        inbox_wild, s3 = await subscribe_inbox(sub, f"{base}..update", match="wildcard")
        assert len({s1.id, s2.id, s3.id}) == 3
        p = await asyncio.wait_for(pub.publish(topic, "x", options=PublishOptions(acknowledge=True)), STEP)
        pub.publish(topic, "end")
        for inbox in (inbox_exact, inbox_prefix, inbox_wild):
            got = await inbox.get_until(lambda item: item[0] == ("end",))
            assert [x[0] for x in got] == [("x",), ("end",)]
            assert got[0][2].publication == p.id

    run(ws_url, body)


# --------------------------------------------------------------------------- RPC


@by_ser
def test_rpc_args_kwargs(ws_url, ser):
    async def body(h):
        callee, caller = await h.connect(ser), await h.connect(ser)
        proc = uri("rpc")
        seen = []

        def endpoint(*args, **kwargs):
            seen.append((args, kwargs))
            if kwargs.get("mode") == "single":
                return {"sum": sum(a for a in args if isinstance(a, (int, float)))}
            if kwargs.get("mode") == "none":
                return None
            return CallResult(*reversed(args), echoed=kwargs, n=len(args))

        await asyncio.wait_for(callee.register(endpoint, proc), STEP)

        res = await asyncio.wait_for(caller.call(proc, *PAYLOAD_ARGS, **PAYLOAD_KWARGS), STEP)
        assert isinstance(res, CallResult)
        assert list(res.results) == list(reversed(PAYLOAD_ARGS))
        assert res.kwresults == {"echoed": PAYLOAD_KWARGS, "n": len(PAYLOAD_ARGS)}
        assert seen[-1] == (tuple(PAYLOAD_ARGS), PAYLOAD_KWARGS)

        res = await asyncio.wait_for(caller.call(proc, 1, 2, 3.5, mode="single"), STEP)
        assert res == {"sum": 6.5}

        res = await asyncio.wait_for(caller.call(proc, mode="none"), STEP)
        assert res is None

        # no args / kwargs at all
        res = await asyncio.wait_for(caller.call(proc), STEP)
        assert isinstance(res, CallResult) and list(res.results) == [] and res.kwresults == {"echoed": {}, "n": 0}
        assert seen[-1] == ((), {})

    run(ws_url, body)


@by_ser
def test_rpc_application_error(ws_url, ser):
    async def body(h):
        callee, caller = await h.connect(ser), await h.connect(ser)
        proc = uri("err")

        def endpoint(kind):
            if kind == "args":
                raise ApplicationError("com.example.error.custom", "bad", 42, [1, 2])
            if kind == "kwargs":
                raise ApplicationError("com.example.error.other", "why", reason="because", code=7)
            raise ApplicationError("com.example.error.bare")

        await asyncio.wait_for(callee.register(endpoint, proc), STEP)
        e = await expect_error(caller.call(proc, "args"), "com.example.error.custom")
        assert list(e.args) == ["bad", 42, [1, 2]]
        assert not e.kwargs
        e = await expect_error(caller.call(proc, "kwargs"), "com.example.error.other")
        assert list(e.args) == ["why"]
        assert e.kwargs == {"reason": "because", "code": 7}
        e = await expect_error(caller.call(proc, "bare"), "com.example.error.bare")
        assert not e.args and not e.kwargs
        # the callee is still usable after raising
        with pytest.raises(ApplicationError):
            await asyncio.wait_for(caller.call(proc, "args"), STEP)

    run(ws_url, body)


@by_ser
def test_no_such_procedure(ws_url, ser):
    async def body(h):
        caller = await h.connect(ser)
        await expect_error(caller.call(uri("nope"), 1, 2), "wamp.error.no_such_procedure")
        # a registration that went away
        callee = await h.connect(ser)
        proc = uri("gone")
        reg = await asyncio.wait_for(callee.register(lambda: "here", proc), STEP)
        assert await asyncio.wait_for(caller.call(proc), STEP) == "here"
        await asyncio.wait_for(reg.unregister(), STEP)
        await expect_error(caller.call(proc), "wamp.error.no_such_procedure")

    run(ws_url, body)


@by_ser
def test_progressive_results(ws_url, ser):
    async def body(h):
        callee, caller = await h.connect(ser), await h.connect(ser)
        proc = uri("progress")

        async def endpoint(n, details=None):
            assert details.progress is not None, "caller asked for progress but callee got no progress callable"
            for i in range(n):
                details.progress(i, step=f"s{i}")
                await asyncio.sleep(0.01)
            return CallResult("done", total=n)

        await asyncio.wait_for(callee.register(endpoint, proc, options=RegisterOptions(details=True)), STEP)
        progress = []

        def on_progress(*args, **kwargs):
            progress.append((args, kwargs))

        res = await asyncio.wait_for(caller.call(proc, 4, options=CallOptions(on_progress=on_progress)), STEP)
        assert progress == [((i,), {"step": f"s{i}"}) for i in range(4)]
        assert list(res.results) == ["done"] and res.kwresults == {"total": 4}

    run(ws_url, body)


@by_ser
def test_caller_disclosure(ws_url, ser):
    async def body(h):
        callee, caller = await h.connect(ser), await h.connect(ser)
        proc = uri("whocalls")

        def endpoint(details=None):
            return [details.caller, details.procedure]

        await asyncio.wait_for(callee.register(endpoint, proc, options=RegisterOptions(details=True)), STEP)
        with_extra_options(caller, disclose_me=True)
        who, _ = await asyncio.wait_for(caller.call(proc), STEP)
        assert who == caller.session_id

    run(ws_url, body)


# --------------------------------------------------------------------------- pattern registrations


@by_ser
def test_prefix_and_wildcard_registration(ws_url, ser):
    async def body(h):
        callee, caller = await h.connect(ser), await h.connect(ser)
        pbase, wbase = uri("regprefix"), uri("regwild")

        def endpoint(*args, details=None):
            return [details.procedure, list(args)]

        opts = dict(details=True)
        await asyncio.wait_for(callee.register(endpoint, pbase, options=RegisterOptions(match="prefix", **opts)), STEP)
        await asyncio.wait_for(
            callee.register(endpoint, f"{wbase}..get", options=RegisterOptions(match="wildcard", **opts)), STEP
        )
        for proc in (f"{pbase}.a", f"{pbase}.a.b.c", pbase):
            assert await asyncio.wait_for(caller.call(proc, 1), STEP) == [proc, [1]]
        for proc in (f"{wbase}.item.get", f"{wbase}.other.get"):
            assert await asyncio.wait_for(caller.call(proc, 2), STEP) == [proc, [2]]
        for proc in (f"{wbase}.item.x.get", f"{wbase}.get", f"{wbase}.item.put"):
            await expect_error(caller.call(proc), "wamp.error.no_such_procedure")

    run(ws_url, body)


@by_ser
def test_registration_match_precedence(ws_url, ser):
    async def body(h):
        callee, caller = await h.connect(ser), await h.connect(ser)
        b = uri("prec")

        def labelled(label):
            def endpoint(details=None):
                return [label, details.procedure]

            return endpoint

        regs = [
            ("exact", f"{b}.a.b", "exact"),
            ("prefix_long", f"{b}.a", "prefix"),
            ("prefix_short", b, "prefix"),
            ("wild_long", f"{b}.w.x..d", "wildcard"),
            ("wild_short", f"{b}.w...d", "wildcard"),
        ]
        for label, proc, match in regs:
            await asyncio.wait_for(
                callee.register(labelled(label), proc, options=RegisterOptions(match=match, details=True)), STEP
            )

        expect = [
            (f"{b}.a.b", "exact"),  # exact beats both prefixes
            (f"{b}.a.b.c", "prefix_long"),  # longest prefix wins
            (f"{b}.a.z", "prefix_long"),
            (f"{b}.z", "prefix_short"),
            (f"{b}.w.x.c.d", "prefix_short"),  # prefix beats wildcard
        ]
        for proc, label in expect:
            got = await asyncio.wait_for(caller.call(proc), STEP)
            assert got == [label, proc], f"call {proc}: expected {label}, got {got}"

        # wildcard only (no prefix registration covers this branch)
        w = uri("precw")
        for label, proc in (("w_long", f"{w}.a..c"), ("w_short", f"{w}...c")):
            await asyncio.wait_for(
                callee.register(labelled(label), proc, options=RegisterOptions(match="wildcard", details=True)), STEP
            )
        assert await asyncio.wait_for(caller.call(f"{w}.a.b.c"), STEP) == ["w_long", f"{w}.a.b.c"]
        assert await asyncio.wait_for(caller.call(f"{w}.z.b.c"), STEP) == ["w_short", f"{w}.z.b.c"]

    run(ws_url, body)


# --------------------------------------------------------------------------- shared registrations


async def _shared_callees(h, ser, proc, invoke, names=("A", "B")):
    peers = {}
    for name in names:
        peer = await h.connect(ser)
        await asyncio.wait_for(
            peer.register(lambda name=name: name, proc, options=RegisterOptions(invoke=invoke)), STEP
        )
        peers[name] = peer
    return peers


@by_ser
def test_shared_registration_roundrobin(ws_url, ser):
    async def body(h):
        proc = uri("rr")
        await _shared_callees(h, ser, proc, "roundrobin")
        caller = await h.connect(ser)
        got = [await asyncio.wait_for(caller.call(proc), STEP) for _ in range(6)]
        assert Counter(got) == {"A": 3, "B": 3}, got
        assert all(x != y for x, y in zip(got, got[1:])), f"not alternating: {got}"

    run(ws_url, body)


@by_ser
@pytest.mark.parametrize("invoke", ["first", "last"])
def test_shared_registration_first_last(ws_url, ser, invoke):
    async def body(h):
        proc = uri(invoke)
        peers = await _shared_callees(h, ser, proc, invoke, names=("A", "B", "C"))
        caller = await h.connect(ser)
        want, then = ("A", "B") if invoke == "first" else ("C", "B")
        got = [await asyncio.wait_for(caller.call(proc), STEP) for _ in range(4)]
        assert got == [want] * 4
        # the chosen callee leaves: the next one in line takes over
        await peers[want].leave()
        await asyncio.wait_for(asyncio.shield(peers[want].closed), STEP)
        got = [await asyncio.wait_for(caller.call(proc), STEP) for _ in range(3)]
        assert got == [then] * 3

    run(ws_url, body)


@by_ser
def test_shared_registration_random(ws_url, ser):
    async def body(h):
        proc = uri("random")
        await _shared_callees(h, ser, proc, "random")
        caller = await h.connect(ser)
        got = [await asyncio.wait_for(caller.call(proc), STEP) for _ in range(40)]
        assert set(got) == {"A", "B"}, Counter(got)

    run(ws_url, body)


@by_ser
@pytest.mark.parametrize("explicit", [False, True])
def test_single_registration_refuses_second(ws_url, ser, explicit):
    async def body(h):
        proc = uri("single")
        a, b = await h.connect(ser), await h.connect(ser)
        opts = RegisterOptions(invoke="single") if explicit else None
        await asyncio.wait_for(a.register(lambda: "A", proc, options=opts), STEP)
        await expect_error(b.register(lambda: "B", proc, options=opts), "wamp.error.procedure_already_exists")
        # the same session cannot register it twice either
        await expect_error(a.register(lambda: "A2", proc, options=opts), "wamp.error.procedure_already_exists")
        caller = await h.connect(ser)
        assert await asyncio.wait_for(caller.call(proc), STEP) == "A"

    run(ws_url, body)


@by_ser
def test_shared_registration_policy_mismatch_refused(ws_url, ser):
    async def body(h):
        proc = uri("mismatch")
        a, b = await h.connect(ser), await h.connect(ser)
        await asyncio.wait_for(a.register(lambda: "A", proc, options=RegisterOptions(invoke="roundrobin")), STEP)
        with pytest.raises(ApplicationError):
            await asyncio.wait_for(b.register(lambda: "B", proc, options=RegisterOptions(invoke="first")), STEP)
        with pytest.raises(ApplicationError):
            await asyncio.wait_for(b.register(lambda: "B", proc), STEP)  # default policy is "single"

    run(ws_url, body)


# --------------------------------------------------------------------------- cancel / timeout


class SlowCallee:
    """Endpoint that blocks until released or interrupted; records what happened."""

    def __init__(self, respond_delay=0.0):
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.interrupted = asyncio.Event()
        self.responded_at = None
        self.respond_delay = respond_delay

    async def __call__(self, *args):
        self.started.set()
        try:
            await self.release.wait()
            self.responded_at = time.monotonic()
            return "finished"
        except asyncio.CancelledError:
            self.interrupted.set()
            if self.respond_delay:
                await asyncio.sleep(self.respond_delay)
            self.responded_at = time.monotonic()
            raise ApplicationError("wamp.error.canceled", "interrupted")


@by_ser
@pytest.mark.parametrize("mode", ["kill", "killnowait", "skip"])
def test_call_cancel_modes(ws_url, ser, mode):
    async def body(h):
        callee, caller = await h.connect(ser), await h.connect(ser)
        proc = uri("cancel")
        slow = h.slow_callee(respond_delay=0.5)
        await asyncio.wait_for(callee.register(slow, proc), STEP)

        fut = caller.call(proc, "work")
        await asyncio.wait_for(slow.started.wait(), STEP)
        caller._transport.send(message.Cancel(request_id_of(caller, fut), mode=mode))
        await expect_error(fut, "wamp.error.canceled")
        error_at = time.monotonic()

        if mode == "skip":
            # no INTERRUPT: the callee keeps running; its late result is discarded
            await asyncio.sleep(0.3)
            assert not slow.interrupted.is_set(), "skip mode must not interrupt the callee"
            slow.release.set()
            await asyncio.sleep(0.2)
        else:
            await asyncio.wait_for(slow.interrupted.wait(), STEP)
            if mode == "kill":
                # ERROR is only returned after the callee answered the INTERRUPT
                assert slow.responded_at is not None and error_at >= slow.responded_at
            else:
                # killnowait: ERROR goes out immediately, not after the callee's answer
                assert slow.responded_at is None or error_at < slow.responded_at
                await asyncio.sleep(0.7)  # the late callee ERROR must be discarded

        # both sessions keep working afterwards (no stray RESULT/ERROR reached the caller)
        slow2 = h.slow_callee()
        slow2.release.set()
        proc2 = uri("aftercancel")
        await asyncio.wait_for(callee.register(slow2, proc2), STEP)
        assert await asyncio.wait_for(caller.call(proc2), STEP) == "finished"
        assert caller.is_attached() and callee.is_attached()

    run(ws_url, body)


@by_ser
def test_call_cancel_via_future(ws_url, ser):
    """Autobahn's own cancel path: cancelling the call future sends CANCEL."""

    async def body(h):
        callee, caller = await h.connect(ser), await h.connect(ser)
        proc = uri("cancelfut")
        slow = h.slow_callee()
        await asyncio.wait_for(callee.register(slow, proc), STEP)
        fut = caller.call(proc)
        await asyncio.wait_for(slow.started.wait(), STEP)
        fut.cancel()
        await asyncio.wait_for(slow.interrupted.wait(), STEP)
        await asyncio.sleep(0.2)
        assert caller.is_attached() and callee.is_attached()
        slow.release.set()
        slow2 = h.slow_callee()
        slow2.release.set()
        await asyncio.wait_for(callee.register(slow2, proc + ".2"), STEP)
        assert await asyncio.wait_for(caller.call(proc + ".2"), STEP) == "finished"

    run(ws_url, body)


@by_ser
def test_call_timeout(ws_url, ser):
    """CALL.Options.timeout is in milliseconds (WAMP spec)."""

    async def body(h):
        callee, caller = await h.connect(ser), await h.connect(ser)
        proc = uri("timeout")
        slow = h.slow_callee()
        await asyncio.wait_for(callee.register(slow, proc), STEP)
        t0 = time.monotonic()
        await expect_error(caller.call(proc, options=CallOptions(timeout=400)), "wamp.error.timeout")
        elapsed = time.monotonic() - t0
        assert 0.3 <= elapsed < 3.0, f"timeout=400ms fired after {elapsed:.3f}s"
        assert slow.started.is_set()
        # a call that finishes within its timeout is unaffected
        fast = h.slow_callee()
        fast.release.set()
        await asyncio.wait_for(callee.register(fast, proc + ".fast"), STEP)
        assert await asyncio.wait_for(caller.call(proc + ".fast", options=CallOptions(timeout=3000)), STEP) == "finished"

    run(ws_url, body)


# --------------------------------------------------------------------------- cross-serializer binary

BINARY_ARGS = [
    b"\x00\x01\x02\xfe\xff",
    {"blob": bytes(range(256)), "text": "héllo ✓", "n": -7, "f": 2.5, "list": [b"", b"\x00", None, True]},
    b"",
    "plain string",
]
BINARY_KWARGS = {
    "raw": b"\x00\x00\x00abc",
    "empty": b"",
    "nested": {"deep": [b"\xde\xad\xbe\xef", {"k": b"\x7f" * 40}]},
    "big": random.Random(7).randbytes(4096),
}


@pytest.mark.parametrize("pub_ser,sub_ser", SER_PAIRS)
def test_binary_pubsub_across_serializers(ws_url, pub_ser, sub_ser):
    async def body(h):
        sub, pub = await h.connect(sub_ser), await h.connect(pub_ser)
        topic = uri("binps")
        inbox, _ = await subscribe_inbox(sub, topic)
        await asyncio.wait_for(
            pub.publish(topic, *BINARY_ARGS, options=PublishOptions(acknowledge=True), **BINARY_KWARGS), STEP
        )
        args, kwargs, _ = await inbox.get()
        assert list(args) == BINARY_ARGS
        assert kwargs == BINARY_KWARGS
        assert type(args[0]) is bytes and type(kwargs["nested"]["deep"][0]) is bytes

    run(ws_url, body)


@pytest.mark.parametrize("caller_ser,callee_ser", SER_PAIRS)
def test_binary_rpc_across_serializers(ws_url, caller_ser, callee_ser):
    async def body(h):
        callee, caller = await h.connect(callee_ser), await h.connect(caller_ser)
        proc = uri("binrpc")
        seen = []

        def echo(*args, **kwargs):
            seen.append((list(args), kwargs))
            return CallResult(*args, digest=bytes(reversed(kwargs["raw"])), **kwargs)

        await asyncio.wait_for(callee.register(echo, proc), STEP)
        res = await asyncio.wait_for(caller.call(proc, *BINARY_ARGS, **BINARY_KWARGS), STEP)
        assert seen == [(BINARY_ARGS, BINARY_KWARGS)]
        assert list(res.results) == BINARY_ARGS
        assert res.kwresults == dict(BINARY_KWARGS, digest=b"cba\x00\x00\x00")

        # binary in an error payload too
        def fail():
            raise ApplicationError("com.example.error.binary", b"\x00\xff", detail={"b": b"\x01\x02"})

        await asyncio.wait_for(callee.register(fail, proc + ".fail"), STEP)
        e = await expect_error(caller.call(proc + ".fail"), "com.example.error.binary")
        assert list(e.args) == [b"\x00\xff"] and e.kwargs == {"detail": {"b": b"\x01\x02"}}

    run(ws_url, body)
