"""WAMP-SCRAM with Autobahn|Python's own client (`AuthScram`), and the built-in principal store:
users made with `switchboard user add` log in with SCRAM (argon2id) and, when asked for, salted
WAMP-CRA; a SCRAM principal in the config comes from Autobahn's `derive_scram_credential`.
Autobahn verifies the router's `scram_server_signature` in WELCOME (mutual authentication)."""

import asyncio
import json
import subprocess

import pytest
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp import auth
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import ComponentConfig

from conftest import Server, binary_path

ALL = {"call": True, "register": True, "publish": True, "subscribe": True}


def config():
    return {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [
                {"name": "user", "permissions": [{"uri": "com.app.", "match": "prefix", "allow": ALL}]},
                {"name": "admin", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]},
            ]}],
            "transports": [{
                "type": "websocket",
                "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
                "auth": {
                    # carol lives in the config; everyone else in the built-in store.
                    "scram": {"type": "static", "principals": {
                        "carol": {"role": "admin", **auth.derive_scram_credential("carol", "carol-pw", salt=b"0123456789abcdef")},
                    }},
                    "wampcra": {"type": "static"},
                },
            }],
        }],
    }


def user(data_dir, *args, password=None):
    return subprocess.run(
        [str(binary_path()), "user", *args, "--data-dir", data_dir],
        input=(password + "\n") if password is not None else "",
        capture_output=True, text=True, timeout=60,
    )


@pytest.fixture(scope="module")
def scram_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("scram-data")
    for args, pw in [
        (("add", "alice", "--role", "user", "--realm", "realm1", "--wampcra"), "alice-pw"),
        (("add", "dave", "--role", "admin"), "dave-pw"),
    ]:
        r = user(str(data), *args, password=pw)
        assert r.returncode == 0, r.stderr
    listed = user(str(data), "list")
    assert "alice" in listed.stdout and "alice-pw" not in listed.stdout
    path = tmp_path_factory.mktemp("scram") / "node.json"
    path.write_text(json.dumps(config()))
    s = Server("--config", str(path), data_dir=str(data))
    s.ws_url = f"ws://{s.addr}/"
    yield s
    s.stop()


class ScramSession(ApplicationSession):
    def __init__(self, config, outcome, method, authid, password):
        super().__init__(config)
        self.outcome, self.method, self.authid_, self.password = outcome, method, authid, password
        self.scram = AuthScram(authid=authid, password=password) if method == "scram" else None
        self.server_signature_checked = False

    def onConnect(self):
        extra = self.scram.authextra if self.scram else None
        self.join(self.config.realm, authmethods=[self.method], authid=self.authid_, authextra=extra)

    def onChallenge(self, challenge):
        if self.scram:
            return self.scram.on_challenge(self, challenge)
        key = auth.derive_key(self.password.encode(), challenge.extra["salt"].encode(),
                              challenge.extra["iterations"], challenge.extra["keylen"])
        return auth.compute_wcs(key, challenge.extra["challenge"].encode()).decode()

    def onWelcome(self, welcome):
        if self.scram:
            # Autobahn checks the router's signature; a wrong one aborts the session.
            problem = self.scram.on_welcome(self, welcome.authextra)
            self.server_signature_checked = problem is None
            return problem
        return None

    async def onJoin(self, details):
        if not self.outcome.done():
            self.outcome.set_result((details, self.server_signature_checked))

    def onLeave(self, details):
        if not self.outcome.done():
            self.outcome.set_exception(RuntimeError(details.reason))
        super().onLeave(details)


# AuthScram lives in autobahn.wamp.auth; imported late so a missing "scram" extra fails loudly.
AuthScram = auth.AuthScram


async def attempt(server, method, authid, password, serializer=JsonSerializer):
    loop = asyncio.get_running_loop()
    outcome = loop.create_future()
    factory = WampWebSocketClientFactory(
        lambda: ScramSession(ComponentConfig("realm1"), outcome, method, authid, password),
        url=server.ws_url,
        serializers=[serializer()],
    )
    host, port = server.addr.rsplit(":", 1)
    await loop.create_connection(factory, host, int(port))
    return await asyncio.wait_for(outcome, 20)


@pytest.mark.parametrize("authid,password,role", [
    ("alice", "alice-pw", "user"),    # the store, bound to realm1
    ("dave", "dave-pw", "admin"),     # the store, any realm
    ("carol", "carol-pw", "admin"),   # the config (Autobahn-derived credential)
])
@pytest.mark.parametrize("serializer", [JsonSerializer, MsgPackSerializer], ids=["json", "msgpack"])
def test_scram_login(scram_server, authid, password, role, serializer):
    details, verified = asyncio.run(attempt(scram_server, "scram", authid, password, serializer))
    assert (details.authid, details.authrole, details.authmethod) == (authid, role, "scram")
    assert verified, "Autobahn verified the router's scram_server_signature"


@pytest.mark.parametrize("authid", ["alice", "carol"])
def test_scram_wrong_password(scram_server, authid):
    with pytest.raises(RuntimeError, match="wamp.error.not_authorized"):
        asyncio.run(attempt(scram_server, "scram", authid, "not-the-password"))


def test_scram_unknown_user(scram_server):
    with pytest.raises(RuntimeError, match="wamp.error.no_such_principal"):
        asyncio.run(attempt(scram_server, "scram", "mallory", "x"))


def test_store_wampcra_when_asked_for(scram_server):
    details, _ = asyncio.run(attempt(scram_server, "wampcra", "alice", "alice-pw"))
    assert (details.authid, details.authmethod) == ("alice", "wampcra")
    with pytest.raises(RuntimeError, match="wamp.error.not_authorized"):
        asyncio.run(attempt(scram_server, "wampcra", "alice", "wrong"))
    # dave was added without --wampcra: there is no WAMP-CRA key for him.
    with pytest.raises(RuntimeError, match="wamp.error.no_such_principal"):
        asyncio.run(attempt(scram_server, "wampcra", "dave", "dave-pw"))


def test_passwd_and_remove_take_effect_on_a_running_server(scram_server):
    """The server holds the store's lock, so `switchboard user` goes through its admin socket:
    a password change and a removal take effect at once, without a restart."""
    r = user(scram_server.data_dir, "passwd", "dave", password="new-pw")
    assert r.returncode == 0, r.stderr
    details, _ = asyncio.run(attempt(scram_server, "scram", "dave", "new-pw"))
    assert details.authid == "dave"
    with pytest.raises(RuntimeError, match="wamp.error.not_authorized"):
        asyncio.run(attempt(scram_server, "scram", "dave", "dave-pw"))
    r = user(scram_server.data_dir, "remove", "dave")
    assert r.returncode == 0, r.stderr
    with pytest.raises(RuntimeError, match="wamp.error.no_such_principal"):
        asyncio.run(attempt(scram_server, "scram", "dave", "new-pw"))
