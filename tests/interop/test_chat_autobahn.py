"""The chat API from third-party clients: Autobahn|Python (a visitor with a visitor token, and a
staff member logging in with WAMP-CRA as a user made by `switchboard user add`) and Autobahn|JS
(a visitor, through tests/interop/js/auth_client.mjs) against the zero-config server."""

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp import auth
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import ComponentConfig

from conftest import Server, binary_path

JS_DIR = Path(__file__).parent / "js"
STEP = 5


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("chat-data")
    r = subprocess.run(
        [str(binary_path()), "user", "add", "ann", "--role", "staff", "--wampcra", "--data-dir", str(data)],
        input="ann-password\n", capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    s = Server(data_dir=str(data))
    yield s
    s.stop()


class Peer(ApplicationSession):
    """A session that logs in with a ticket (visitor) or WAMP-CRA (staff)."""

    def __init__(self, config, joined, method, authid, secret):
        super().__init__(config)
        self.joined, self.method, self.authid_, self.secret = joined, method, authid, secret
        self.events = asyncio.Queue()

    def onConnect(self):
        self.join(self.config.realm, authmethods=[self.method], authid=self.authid_)

    def onChallenge(self, challenge):
        if challenge.method == "ticket":
            return self.secret
        extra = challenge.extra
        key = auth.derive_key(self.secret.encode(), extra["salt"].encode(), extra["iterations"], extra["keylen"])
        return auth.compute_wcs(key, extra["challenge"].encode()).decode()

    async def onJoin(self, details):
        self.joined.set_result(self)

    def onLeave(self, details):
        if not self.joined.done():
            self.joined.set_exception(RuntimeError(details.reason))
        super().onLeave(details)


async def connect(server, path, method, authid, secret, serializer=JsonSerializer):
    loop = asyncio.get_running_loop()
    joined = loop.create_future()
    factory = WampWebSocketClientFactory(
        lambda: Peer(ComponentConfig("realm1"), joined, method, authid, secret),
        url=f"ws://{server.addr}{path}",
        serializers=[serializer()],
    )
    host, port = server.addr.rsplit(":", 1)
    await loop.create_connection(factory, host, int(port))
    return await asyncio.wait_for(joined, STEP)


async def next_event(peer, kind):
    while True:
        ev = await asyncio.wait_for(peer.events.get(), STEP)
        if ev.get("type") == kind:
            return ev


def test_python_visitor_and_staff(chat_server):
    async def body():
        staff = await connect(chat_server, "/ws", "wampcra", "ann", "ann-password", MsgPackSerializer)
        await staff.subscribe(lambda **kw: staff.events.put_nowait(kw), "switchboard.chat.inbox")
        visitor = await connect(chat_server, "/chat", "ticket", None, "python-visitor-token-0123456789")
        assert visitor._session_id
        thread = await visitor.call("switchboard.chat.open", name="Pat")
        tid = thread["thread"]
        assert thread["status"] == "open" and thread["visitor_name"] == "Pat"
        await visitor.subscribe(lambda **kw: visitor.events.put_nowait(kw), f"switchboard.chat.thread.{tid}")
        first = await visitor.call("switchboard.chat.send", tid, "Hello from Python", client_id="p-1")
        retry = await visitor.call("switchboard.chat.send", tid, "Hello from Python", client_id="p-1")
        assert first == retry and first["seq"] == 1, (first, retry)
        note = await next_event(staff, "thread")
        assert note["thread"]["thread"] == tid
        msg = await next_event(staff, "message")
        assert (msg["text"], msg["sender_name"]) == ("Hello from Python", "Pat")
        # Staff answer; the visitor receives it on the thread topic.
        await staff.call("switchboard.chat.send", tid, "Hi Pat")
        reply = await next_event(visitor, "message")
        while reply["sender"] != "ann":
            reply = await next_event(visitor, "message")
        assert (reply["seq"], reply["sender_role"]) == (2, "staff")
        history = await visitor.call("switchboard.chat.history", tid, after=0)
        assert [m["seq"] for m in history] == [1, 2]
        # A raw subscription to someone else's thread is refused by the router.
        other = await connect(chat_server, "/chat", "ticket", None, "another-visitor-token-98765")
        with pytest.raises(ApplicationError) as e:
            await other.subscribe(lambda **kw: None, f"switchboard.chat.thread.{tid}")
        assert e.value.error == "wamp.error.not_authorized"
        with pytest.raises(ApplicationError) as e:
            await other.call("switchboard.chat.history", tid)
        assert e.value.error == "switchboard.chat.error.no_such_thread"
        for s in (staff, visitor, other):
            s.leave()

    asyncio.run(body())


def test_js_visitor(chat_server):
    async def open_staff():
        return await connect(chat_server, "/ws", "wampcra", "ann", "ann-password")

    spec = {
        "url": f"ws://{chat_server.addr}/chat",
        "realm": "realm1",
        "authmethod": "ticket",
        "authid": None,
        "secret": "javascript-visitor-token-42424242",
        "actions": [
            {"op": "call", "uri": "switchboard.chat.threads", "args": []},
            {"op": "call", "uri": "switchboard.chat.open", "args": []},
        ],
    }
    proc = subprocess.run(["node", "auth_client.mjs", json.dumps(spec)], cwd=JS_DIR, capture_output=True, text=True, timeout=60)
    line = next(l for l in proc.stdout.splitlines() if l.startswith("AUTH_RESULT "))
    res = json.loads(line[len("AUTH_RESULT "):])
    assert res["joined"], res
    assert res["details"]["authrole"] == "visitor"
    assert res["details"]["authid"].startswith("visitor:")
    threads, opened = res["actions"]
    # Autobahn|JS hands a single positional result over as itself.
    assert threads["ok"] and threads["result"] == [], threads
    assert opened["ok"], opened
    tid = opened["result"]["thread"]
    # The same visitor (same token) sends from JS; staff see it.
    spec["actions"] = [
        {"op": "subscribe", "uri": f"switchboard.chat.thread.{tid}"},
        {"op": "call", "uri": "switchboard.chat.send", "args": [tid, "Hello from JavaScript"]},
        {"op": "call", "uri": "switchboard.chat.history", "args": [tid]},
    ]
    proc = subprocess.run(["node", "auth_client.mjs", json.dumps(spec)], cwd=JS_DIR, capture_output=True, text=True, timeout=60)
    line = next(l for l in proc.stdout.splitlines() if l.startswith("AUTH_RESULT "))
    res = json.loads(line[len("AUTH_RESULT "):])
    sub, sent, history = res["actions"]
    assert sub["ok"] and sent["ok"] and history["ok"], res["actions"]
    assert sent["result"]["seq"] == 1, sent
    assert [m["text"] for m in history["result"]] == ["Hello from JavaScript"], history

    async def staff_sees_it():
        staff = await open_staff()
        threads = await staff.call("switchboard.chat.threads")
        mine = [t for t in threads if t["thread"] == tid]
        assert mine and mine[0]["unread"] >= 1, threads
        staff.leave()

    asyncio.run(staff_sees_it())
