#!/usr/bin/env python3
"""A Crossbar-style back-end worker: Autobahn|Python (asyncio) over WAMP RawSocket (TCP).

It is the classic deployment's "auth service": it connects to the router's RawSocket transport
(anonymous, static role `backend`), registers a dynamic authenticator and a dynamic authorizer
that check users against the worker's own table, and the application procedures that the
browser-side clients call to prove what they may do. Used by tests/interop/test_worker_pattern.py.

    python auth_worker.py rs://127.0.0.1:PORT [realm]

Prints `WORKER_READY` on stdout once every registration is in place; exits when the router
closes the connection.

Recording procedures (for the test to read what the router passed):
  com.example.last_details(authid)        -> {"realm", "authid", "details"} of the last
                                             authenticator call for that authid (None: no authid)
  com.example.authorize_count(uri, action) -> how often the authorizer ran for (uri, action)
  com.example.last_authorize(uri, action)  -> {"session", "uri", "action", "options"} of the last
                                             authorizer call for (uri, action)
  com.example.enable_late()                -> registers the authenticator also as
                                             com.example.authenticate_late (not registered at start)
"""

import asyncio
import sys

from autobahn.asyncio.wamp import ApplicationRunner, ApplicationSession
from autobahn.wamp.cryptosign import CryptosignKey
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer
from autobahn.wamp.types import RegisterOptions

# ----------------------------------------------------------------------------- the user store

# Seed of device1's Ed25519 key: the test derives the same key from the same seed.
DEVICE1_SEED = bytes([7] * 32)
DEVICE1_PUBKEY = CryptosignKey.from_bytes(DEVICE1_SEED).public_key()

# WAMP-Ticket users: authid -> (ticket, what the authenticator returns on success)
TICKET_USERS = {
    "joe": ("joe-ticket", "user"),  # a plain role string (Crossbar's "backwards compatible" form)
    "rita": ("rita-ticket", {"role": "reviewer", "extra": {"team": "qa", "level": 2}}),
    # the authenticator renames the principal: the session gets authid "renamed-tom"
    "tom": ("tom-ticket", {"role": "user", "authid": "renamed-tom"}),
    "late": ("late-ticket", "user"),
    "audrey": ("audrey-ticket", "auditor"),  # a role whose authorizer nobody registers
}

# WAMP-CRA users: what the authenticator returns (the router computes the challenge from it)
CRA_USERS = {
    "alice": {"secret": "alice-secret", "role": "user"},
    # salted: the router derives the key with PBKDF2 from "secret" and sends salt/iterations/keylen
    "bob": {"secret": "bob-secret", "role": "reviewer", "salt": "salt123", "iterations": 100, "keylen": 32},
}

# WAMP-Cryptosign users
CRYPTOSIGN_USERS = {
    "device1": {"pubkey": DEVICE1_PUBKEY, "role": "reviewer"},
}

# Misbehaving answers, keyed by authid, whatever the authmethod.
GARBAGE = {
    "garbage-number": 42,
    "garbage-role": {"role": 5},
    "ghost-role": {"role": "no-such-role"},
    "cra-nosecret": {"role": "user"},  # wampcra without "secret"; for ticket it is a valid answer
    "cs-nopubkey": {"role": "user"},  # cryptosign without "pubkey"
}


class AuthWorker(ApplicationSession):
    def __init__(self, config):
        super().__init__(config)
        self.last_details = {}
        self.authorize_counts = {}
        self.last_authorize = {}

    # ------------------------------------------------------------------------- authenticator

    def authenticate(self, realm, authid, details):
        self.last_details[authid or ""] = {"realm": realm, "authid": authid, "details": details}
        method = details.get("authmethod")
        if authid == "crasher":
            raise ValueError("the user store is on fire")  # not an ApplicationError
        if authid in GARBAGE:
            return GARBAGE[authid]
        if method == "ticket":
            if authid not in TICKET_USERS:
                raise ApplicationError("com.example.no_such_user", f"no user {authid!r}")
            ticket, principal = TICKET_USERS[authid]
            if details.get("ticket") != ticket:
                raise ApplicationError("com.example.invalid_ticket", f"wrong ticket for {authid!r}")
            return principal
        if method == "wampcra":
            if authid not in CRA_USERS:
                raise ApplicationError("com.example.no_such_user", f"no user {authid!r}")
            return dict(CRA_USERS[authid])
        if method == "cryptosign":
            pubkey = (details.get("authextra") or {}).get("pubkey")
            if authid is None:
                # identify the principal by the public key the client announced
                for name, user in CRYPTOSIGN_USERS.items():
                    if user["pubkey"] == pubkey:
                        return {"authid": name, **user}
                raise ApplicationError("com.example.no_such_user", f"no user with key {pubkey}")
            if authid not in CRYPTOSIGN_USERS:
                raise ApplicationError("com.example.no_such_user", f"no user {authid!r}")
            return dict(CRYPTOSIGN_USERS[authid])
        raise ApplicationError("com.example.unsupported_method", f"authmethod {method!r}")

    # ------------------------------------------------------------------------- authorizer

    def authorize(self, session, uri, action, options=None):
        key = f"{uri} {action}"
        self.authorize_counts[key] = self.authorize_counts.get(key, 0) + 1
        self.last_authorize[key] = {"session": session, "uri": uri, "action": action, "options": options}
        if session.get("authrole") != "reviewer":
            return False
        rules = {
            ("com.review.data", "call"): {"allow": True, "disclose": True, "cache": True},
            ("com.review.hidden", "call"): {"allow": True, "disclose": False, "cache": True},
            ("com.review.nocache", "call"): {"allow": True, "disclose": True},
            ("com.review.cached", "call"): {"allow": True, "cache": True},
            ("com.review.denied", "call"): False,
            ("com.review.denied_cached", "call"): {"allow": False, "cache": True},
            ("com.review.feed", "subscribe"): True,
            ("com.review.boolfeed", "subscribe"): True,
            ("com.review.feed", "publish"): {"allow": True, "disclose": True},
            ("com.review.bad", "call"): {"allow": "yes"},
        }
        if uri == "com.review.boom":
            raise ApplicationError("com.example.authorizer_broke", "the authorizer raised")
        return rules.get((uri, action), False)

    # ------------------------------------------------------------------------- application

    @staticmethod
    def who(details):
        return {"caller": details.caller, "caller_authid": details.caller_authid, "caller_authrole": details.caller_authrole}

    async def onJoin(self, details):
        reg = self.register
        await reg(self.authenticate, "com.example.authenticate")
        await reg(self.authorize, "com.example.authorize")
        await reg(lambda authid=None: self.last_details.get(authid or ""), "com.example.last_details")
        await reg(lambda uri, action: self.authorize_counts.get(f"{uri} {action}", 0), "com.example.authorize_count")
        await reg(lambda uri, action: self.last_authorize.get(f"{uri} {action}"), "com.example.last_authorize")

        async def enable_late():
            await reg(self.authenticate, "com.example.authenticate_late")
            return True

        await reg(enable_late, "com.example.enable_late")

        await reg(lambda *args, **kwargs: list(args), "com.app.echo")
        await reg(lambda: "reset done", "com.app.admin.reset")
        with_details = RegisterOptions(details_arg="details")
        for name in ("data", "hidden", "nocache", "cached", "denied", "denied_cached", "boom", "bad"):
            await reg(lambda details: self.who(details), f"com.review.{name}", options=with_details)
        print("WORKER_READY", flush=True)

    def onDisconnect(self):
        asyncio.get_event_loop().stop()


def main():
    url = sys.argv[1]
    realm = sys.argv[2] if len(sys.argv) > 2 else "realm1"
    ApplicationRunner(url, realm, serializers=[JsonSerializer()]).run(AuthWorker)


if __name__ == "__main__":
    main()
