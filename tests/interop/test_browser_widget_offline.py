"""Real-browser test of the chat widget's offline form: no staff member is online, the visitor
leaves a message with an email address, staff get it by email and in the inbox.

Starts an SMTP sink (aiosmtpd, on a free port), creates a staff user with the CLI (before the
server starts: the store allows one process), and starts the server with a Crossbar-style config
that mirrors the zero-config default (realm1 with roles anonymous/staff/visitor, a web transport
with `ws` for staff and `chat` for visitors, the embedded UI and /widget.js) plus the chat
service's `email` section pointing at the sink. Then runs tests/browser/widget-offline.test.mjs
(node's test runner + playwright-core driving Debian's /usr/bin/chromium), and afterwards checks
that the sink received exactly one email with the message verbatim and the visitor's address as
Reply-To, and that a staff member (WAMP-CRA, Autobahn|Python) finds the message once in the
visitor's thread. Screenshot: target/screenshots/widget-offline.png.
"""

import asyncio
import email
import email.policy
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp import auth
from autobahn.wamp.serializer import JsonSerializer
from autobahn.wamp.types import ComponentConfig

from conftest import Server, binary_path

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "browser"
SCREENSHOT_DIR = REPO / "target" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
STAFF = ("ann", "ann-staff-password-1")
VISITOR_EMAIL = "kari.nordmann@example.no"
VISITOR_NAME = "Kari"
# Markup on purpose: it must stay text in the widget, in the thread and in the email.
MESSAGE = (
    'Do you bake gluten-free cakes? <script>window.__pwned=1;alert("xss")</script>\n'
    "<img src=x onerror=alert(2)> & \"quotes\" — 2 kg, for Sunday"
)
STAFF_TO = "team@bakery.example"
ALL = {"call": True, "register": True, "publish": True, "subscribe": True}


class SmtpSink:
    """aiosmtpd in its own thread and event loop, on a port the OS picks; keeps every message."""

    def __init__(self):
        self.messages = []  # (envelope rcpt_tos, mail_from, raw bytes)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                self.loop.create_server(lambda: SMTP(self, hostname="sink.test"), "127.0.0.1", 0)
            )
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="smtp-sink", daemon=True)
        self.thread.start()
        assert ready.wait(10), "the SMTP sink did not start"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.mail_from, bytes(envelope.content)))
        return "250 Message accepted for delivery"

    def stop(self):
        def close():
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(close)
        self.thread.join(10)


def config(smtp_port):
    """The zero-config default as a config file (src/config/mod.rs development()), plus email."""
    return {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [
                {"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]},
                {"name": "staff", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]},
                {"name": "visitor", "permissions": []},
            ]}],
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
                "paths": {
                    "ws": {"type": "websocket", "auth": {
                        "anonymous": {"type": "static", "role": "anonymous"},
                        # no principals: the built-in store (`switchboard user add`)
                        "wampcra": {"type": "static"},
                        "scram": {"type": "static"},
                    }},
                    "chat": {"type": "websocket", "auth": {"ticket": {"type": "visitor"}}},
                },
            }],
            "chat": {
                "realm": "realm1",
                "staff_roles": ["staff"],
                "email": {
                    "smtp_host": "127.0.0.1",
                    "smtp_port": smtp_port,
                    "from": "Acme Bakery chat <chat@bakery.example>",
                    "to": [STAFF_TO],
                },
            },
        }],
    }


def _run(cmd, timeout, env=None, cwd=BROWSER_DIR, stdin=None):
    return subprocess.run(
        cmd, cwd=cwd, env=env, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def offline_setup(tmp_path_factory):
    sink = SmtpSink()
    data_dir = tempfile.mkdtemp(prefix="sb-widget-offline-")
    added = _run(
        [str(binary_path()), "user", "add", STAFF[0], "--role", "staff", "--wampcra", "--data-dir", data_dir],
        timeout=60, cwd=REPO, stdin=STAFF[1] + "\n",
    )
    assert added.returncode == 0, f"switchboard user add failed:\n{added.stdout}"
    path = tmp_path_factory.mktemp("widget-offline") / "node.json"
    path.write_text(json.dumps(config(sink.port)))
    server = Server("--config", str(path), data_dir=data_dir)
    yield server, sink, tmp_path_factory.mktemp("widget-offline-out")
    server.stop()
    sink.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


class Staff(ApplicationSession):
    def __init__(self, config, joined):
        super().__init__(config)
        self.joined = joined

    def onConnect(self):
        self.join(self.config.realm, authmethods=["wampcra"], authid=STAFF[0])

    def onChallenge(self, challenge):
        extra = challenge.extra
        key = auth.derive_key(STAFF[1].encode(), extra["salt"].encode(), extra["iterations"], extra["keylen"])
        return auth.compute_wcs(key, extra["challenge"].encode()).decode()

    async def onJoin(self, details):
        self.joined.set_result((self, details))

    def onLeave(self, details):
        if not self.joined.done():
            self.joined.set_exception(RuntimeError(details.reason))
        super().onLeave(details)


async def staff_view(server, visitor):
    """Logs in as staff with WAMP-CRA; returns (authrole, the visitor's threads, their messages)."""
    loop = asyncio.get_running_loop()
    joined = loop.create_future()
    factory = WampWebSocketClientFactory(
        lambda: Staff(ComponentConfig("realm1"), joined), url=f"ws://{server.addr}/ws", serializers=[JsonSerializer()]
    )
    host, port = server.addr.rsplit(":", 1)
    await loop.create_connection(factory, host, int(port))
    session, details = await asyncio.wait_for(joined, 10)
    threads = [t for t in await session.call("switchboard.chat.threads") if t["visitor"] == visitor]
    history = [await session.call("switchboard.chat.history", t["thread"], after=0, limit=500) for t in threads]
    session.leave()
    return details.authrole, threads, history


def test_offline_message_in_chromium_reaches_staff_by_email_and_inbox(offline_setup):
    server, sink, out = offline_setup
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} not found: the browser test needs Debian's chromium. "
        "Install it with: bash tests/browser/install-chromium.sh"
    )
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed for the browser test (tests/browser)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        npm_ci = _run([npm, "ci", "--no-audit", "--no-fund"], timeout=300)
        assert npm_ci.returncode == 0, f"npm ci failed in {BROWSER_DIR}:\n{npm_ci.stdout}"

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    result_file = out / "result.json"
    env = dict(os.environ)
    env.update({
        "SWITCHBOARD_URL": server.http_url,
        "OFFLINE_EMAIL": VISITOR_EMAIL,
        "OFFLINE_NAME": VISITOR_NAME,
        "OFFLINE_MESSAGE": MESSAGE,
        "RESULT_FILE": str(result_file),
        "SCREENSHOT_DIR": str(SCREENSHOT_DIR),
    })
    result = _run([node, "--test", "--test-reporter=spec", "widget-offline.test.mjs"], timeout=300, env=env)
    print(result.stdout)
    assert result.returncode == 0, f"widget offline browser test failed (exit {result.returncode}):\n{result.stdout}"
    got = json.loads(result_file.read_text())
    assert [c["fate"] for c in got["leave_calls"]] == ["swallowed", "forwarded"], got
    assert (SCREENSHOT_DIR / "widget-offline.png").is_file()

    # The email: exactly one (the retries sent nothing twice), plain text, the message verbatim,
    # Reply-To the visitor. Any second one would come right behind the first: wait a little.
    deadline = time.time() + 10
    while not sink.messages and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    assert len(sink.messages) == 1, f"{len(sink.messages)} emails: {sink.messages}"
    rcpt, mail_from, raw = sink.messages[0]
    assert rcpt == [STAFF_TO] and mail_from == "chat@bakery.example", (rcpt, mail_from)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert [a.addr_spec for a in msg["Reply-To"].addresses] == [VISITOR_EMAIL], msg["Reply-To"]
    assert msg["Subject"] == f"Chat message from {VISITOR_NAME}", msg["Subject"]
    assert msg.get_content_type() == "text/plain"
    body = msg.get_content().replace("\r\n", "\n")
    assert MESSAGE in body, body
    assert VISITOR_EMAIL in body, body

    # Staff find it once in the visitor's thread, with the note saying how to answer.
    visitor = "visitor:" + hashlib.sha256(got["token"].encode()).hexdigest()[:16]
    role, threads, history = asyncio.run(staff_view(server, visitor))
    assert role == "staff"
    assert len(threads) == 1, threads
    texts = [(m["sender"], m["text"]) for m in history[0]]
    assert texts == [
        (visitor, MESSAGE),
        ("switchboard", f"Left while no one was online; answer by email to {VISITOR_EMAIL}"),
    ], texts
    assert history[0][0]["sender_name"] == VISITOR_NAME
