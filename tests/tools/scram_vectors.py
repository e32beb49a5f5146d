#!/usr/bin/env python3
"""WAMP-SCRAM test vectors for src/auth/scram.rs, produced by an independent implementation.

Runs Autobahn|Python's own SCRAM client (`autobahn.wamp.auth.AuthScram`) and credential
derivation (`derive_scram_credential`) with fixed nonces and salts and prints the values the
Rust tests hard-code. Needs Autobahn's "scram" extra (argon2-cffi, passlib):

    python3 -m venv .venv && .venv/bin/pip install -r tests/interop/requirements.txt
    .venv/bin/python tests/tools/scram_vectors.py

Autobahn|Python 26.10's PBKDF2 branch of AuthScram raises ValueError (it passes the base64 salt
*string* to a function that requires bytes), so the PBKDF2 vector is computed here with hashlib
and hmac straight from the WAMP spec's pseudocode (salt base64-decoded, 32-byte output, the
RFC 5802 AuthMessage with "c=biws"); the script checks that pseudocode against RFC 7677's
published SCRAM-SHA-256 vector first.
"""

import base64
import binascii
import hashlib
import hmac

from autobahn.wamp.auth import AuthScram, derive_scram_credential
from autobahn.wamp.types import Challenge


class _Log:
    def info(self, *a, **kw):
        pass

    def error(self, *a, **kw):
        pass


class _Session:
    log = _Log()


def autobahn_exchange(authid, password, client_nonce, server_nonce, salt, iterations, memory):
    """One exchange through AuthScram; returns (proof, server signature, salted password)."""
    client = AuthScram(authid=authid, password=password)
    client._client_nonce = client_nonce  # fixed instead of os.urandom(16)
    assert client.authextra == {"nonce": client_nonce}
    extra = {
        "nonce": client_nonce + server_nonce,
        "salt": base64.b64encode(salt).decode("ascii"),
        "kdf": "argon2id-13",
        "iterations": iterations,
        "memory": memory,
    }
    proof = client.on_challenge(_Session(), Challenge("scram", extra)).decode("ascii")
    salted = client._salted_password
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    sig = base64.b64encode(
        hmac.new(server_key, client._auth_message, hashlib.sha256).digest()
    ).decode("ascii")
    # The client itself accepts this signature (and rejects another one).
    assert client.on_welcome(_Session(), {"scram_server_signature": sig}) is None
    assert client.on_welcome(_Session(), {"scram_server_signature": base64.b64encode(b"x" * 32).decode()})
    return proof, sig, salted, client._auth_message.decode("ascii")


def spec_pbkdf2(authid, password, client_nonce, nonce, salt_b64, iterations):
    """The WAMP spec's pseudocode with PBKDF2 and the RFC 5802 AuthMessage."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt_b64), iterations, 32)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    escaped = authid.replace("=", "=3D").replace(",", "=2C")
    auth_message = (
        f"n={escaped},r={client_nonce},r={nonce},s={salt_b64},i={iterations},"
        f"c={base64.b64encode(b'n,,').decode()},r={nonce}"
    ).encode()
    sig = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    server_sig = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    return (
        base64.b64encode(proof).decode(),
        base64.b64encode(server_sig).decode(),
        stored_key.hex(),
        server_key.hex(),
    )


def main():
    # Sanity check of spec_pbkdf2 against RFC 7677 section 3.
    proof, sig, _, _ = spec_pbkdf2(
        "user", "pencil", "rOprNGfwEbeRWgbNEkqO",
        "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096,
    )
    assert proof == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", proof
    assert sig == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", sig

    # V1: a Crossbar-style credential from derive_scram_credential (t=4096, m=512; the salt of
    # Autobahn's own test vector), then a login through AuthScram.
    salt = binascii.a2b_hex("ae1f0d2f422757809077785e660b62c6")
    cred = derive_scram_credential("foobar@example.com", "secret123", salt)
    print("# V1 credential (derive_scram_credential):", cred)
    proof, sig, _, msg = autobahn_exchange(
        "joe", "secret123", "Y2xpZW50LW5vbmNlLTAwMQ==", "c2VydmVyLW5vbmNlLTAwMQ==",
        salt, cred["iterations"], cred["memory"],
    )
    print("# V1 AuthMessage:", msg)
    print(f'const V1_PROOF: &str = "{proof}";')
    print(f'const V1_SERVER_SIG: &str = "{sig}";')

    # V2: small argon2 parameters and an authid with '=' and ',' (Autobahn does not escape
    # them); the keys come from AuthScram's own salted password.
    salt2 = bytes(range(16))
    proof, sig, salted, msg = autobahn_exchange(
        "user=1,x", "pässwörd", "AAECAwQFBgcICQoLDA0ODw==", "EBESExQVFhcYGRobHB0eHw==",
        salt2, 3, 64,
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    print("# V2 AuthMessage:", msg)
    print(f'const V2_SALT: &str = "{salt2.hex()}";')
    print(f'const V2_STORED: &str = "{hashlib.sha256(client_key).hexdigest()}";')
    print(f'const V2_SERVER: &str = "{hmac.new(salted, b"Server Key", hashlib.sha256).hexdigest()}";')
    print(f'const V2_PROOF: &str = "{proof}";')
    print(f'const V2_SERVER_SIG: &str = "{sig}";')

    # V3: PBKDF2 per the spec (see the module docstring for why not through AuthScram).
    try:
        c = AuthScram(authid="joe", password="pw")
        c._client_nonce = "x"
        c.on_challenge(_Session(), Challenge("scram", {"nonce": "xy", "kdf": "pbkdf2", "salt": "AAAAAAAAAAA=", "iterations": 1}))
        print("# note: AuthScram's PBKDF2 branch works in this Autobahn version")
    except ValueError as e:
        print(f"# note: AuthScram's PBKDF2 branch fails in this Autobahn version: {e}")
    salt3 = base64.b64encode(b"pbkdf2-salt-0003").decode()
    cn3, sn3 = "cGJrZGYyLWNsaWVudA==", "cGJrZGYyLXNlcnZlcg=="
    proof, sig, stored, server = spec_pbkdf2("ann", "correct horse", cn3, cn3 + sn3, salt3, 4096)
    print(f'const V3_SALT: &str = "{base64.b64decode(salt3).hex()}";')
    print(f'const V3_STORED: &str = "{stored}";')
    print(f'const V3_SERVER: &str = "{server}";')
    print(f'const V3_PROOF: &str = "{proof}";')
    print(f'const V3_SERVER_SIG: &str = "{sig}";')


if __name__ == "__main__":
    main()
