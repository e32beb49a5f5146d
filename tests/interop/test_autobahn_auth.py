"""Autobahn|Python authenticating with static ticket and WAMP-CRA (unsalted, and salted in both
meanings of the stored secret) against a Crossbar-style config."""

import asyncio
import json

import pytest
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp import auth
from autobahn.wamp.cryptosign import CryptosignKey
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import ComponentConfig

from conftest import Server

DERIVED = auth.derive_key(b"secret123", b"salt123", 100, 32).decode()

CONFIG = {
    "version": 2,
    "workers": [{
        "type": "router",
        "realms": [{"name": "realm1", "roles": [
            {"name": "user", "permissions": [{"uri": "com.app.*", "allow": {"call": True, "register": True, "publish": True, "subscribe": True}}]},
            {"name": "admin", "permissions": [{"uri": "*", "allow": {"call": True, "register": True, "publish": True, "subscribe": True}}]},
        ]}],
        "transports": [{
            "type": "web",
            "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
            "paths": {"ws": {"type": "websocket", "auth": {
                "ticket": {"type": "static", "principals": {"joe": {"ticket": "joe-ticket", "role": "user"}}},
                "wampcra": {"type": "static", "users": {
                    "alice": {"secret": "alice-secret", "role": "admin"},
                    "bob": {"secret": "secret123", "role": "user", "salt": "salt123", "iterations": 100, "keylen": 32},
                    "carol": {"secret": DERIVED, "role": "user", "salt": "salt123", "iterations": 100, "keylen": 32},
                }},
                "cryptosign": {"type": "static", "principals": {
                    "device1": {"role": "user", "authorized_keys": [CryptosignKey.from_bytes(bytes([7] * 32)).public_key()]},
                }},
            }}},
        }],
    }],
}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "node.json"
    path.write_text(json.dumps(CONFIG))
    s = Server("--config", str(path))
    yield s
    s.stop()


class AuthSession(ApplicationSession):
    def __init__(self, config, outcome, method, authid, secret):
        super().__init__(config)
        self.outcome, self.method, self.authid_, self.secret = outcome, method, authid, secret

    def onConnect(self):
        if self.method == "cryptosign":
            self.key = CryptosignKey.from_bytes(self.secret)
            self.join(self.config.realm, authmethods=["cryptosign"], authid=self.authid_, authextra={"pubkey": self.key.public_key()})
        else:
            self.join(self.config.realm, authmethods=[self.method], authid=self.authid_)

    def onChallenge(self, challenge):
        if challenge.method == "cryptosign":
            return self.key.sign_challenge(challenge)
        if challenge.method == "ticket":
            return self.secret
        key = self.secret.encode()
        if "salt" in challenge.extra:
            key = auth.derive_key(key, challenge.extra["salt"].encode(), challenge.extra["iterations"], challenge.extra["keylen"])
        return auth.compute_wcs(key, challenge.extra["challenge"].encode()).decode()

    async def onJoin(self, details):
        if not self.outcome.done():
            self.outcome.set_result(details)

    def onLeave(self, details):
        if not self.outcome.done():
            self.outcome.set_exception(RuntimeError(details.reason))
        super().onLeave(details)


async def attempt(server, method, authid, secret, serializer=JsonSerializer):
    loop = asyncio.get_running_loop()
    outcome = loop.create_future()
    factory = WampWebSocketClientFactory(
        lambda: AuthSession(ComponentConfig("realm1"), outcome, method, authid, secret),
        url=server.ws_url,
        serializers=[serializer()],
    )
    host, port = server.addr.rsplit(":", 1)
    await loop.create_connection(factory, host, int(port))
    return await asyncio.wait_for(outcome, 5)


@pytest.mark.parametrize(
    "method,authid,secret,role",
    [
        ("ticket", "joe", "joe-ticket", "user"),
        ("wampcra", "alice", "alice-secret", "admin"),
        ("wampcra", "bob", "secret123", "user"),  # salted; config holds the password
        ("wampcra", "carol", "secret123", "user"),  # salted; config holds the derived key
    ],
)
@pytest.mark.parametrize("serializer", [JsonSerializer, MsgPackSerializer], ids=["json", "msgpack"])
def test_autobahn_authenticates(auth_server, method, authid, secret, role, serializer):
    details = asyncio.run(attempt(auth_server, method, authid, secret, serializer))
    assert details.authid == authid
    assert details.authrole == role
    assert details.authmethod == method


@pytest.mark.parametrize("method,authid", [("ticket", "joe"), ("wampcra", "alice"), ("wampcra", "bob")])
def test_wrong_credentials_are_refused(auth_server, method, authid):
    with pytest.raises(RuntimeError, match="wamp.error.not_authorized"):
        asyncio.run(attempt(auth_server, method, authid, "not-the-secret"))


def test_unknown_principal_is_refused(auth_server):
    with pytest.raises(RuntimeError, match="wamp.error.no_such_principal"):
        asyncio.run(attempt(auth_server, "wampcra", "mallory", "x"))


@pytest.mark.parametrize("authid", ["device1", None])
def test_cryptosign(auth_server, authid):
    details = asyncio.run(attempt(auth_server, "cryptosign", authid, bytes([7] * 32)))
    assert details.authid == "device1"
    assert details.authmethod == "cryptosign"
    assert details.authrole == "user"


def test_cryptosign_unknown_key_is_refused(auth_server):
    with pytest.raises(RuntimeError, match="wamp.error"):
        asyncio.run(attempt(auth_server, "cryptosign", "device1", bytes([9] * 32)))
