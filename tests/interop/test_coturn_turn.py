"""coturn's TURN client (`turnutils_uclient`, Debian package coturn) against Switchboard's
built-in TURN relay, with coturn's `turnutils_peer` as the peer. Credentials are TURN REST
ones made by uclient itself from the shared secret (`-W`), as coturn's `use-auth-secret` does.

The peer runs on loopback, which the relay refuses by default (it is never an open relay), so
these runs pass `--turn-allow-loopback-peers` — a tests-only switch; the last test checks that
without it the same run relays nothing. `turns:` (TURN over TLS) is served on the HTTPS web
listener itself, told apart from HTTP by its first bytes: uclient -S reaches the relay there.
tests/run.sh installs coturn."""

import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import Server

SECRET = "interop-turn-secret"


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


def tool(name):
    path = shutil.which(name)
    assert path, f"{name} is missing: install Debian's coturn package (tests/run.sh does)"
    return path


@pytest.fixture(scope="module")
def peer():
    port = free_port()
    p = subprocess.Popen([tool("turnutils_peer"), "-p", str(port), "-L", "127.0.0.1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    yield port
    p.terminate()
    p.wait(timeout=10)


def start_relay(*extra):
    port = free_port()
    s = Server("--turn-listen", f"127.0.0.1:{port}", "--turn-secret", SECRET,
               "--turn-relay-ports", "50000-59999", *extra)
    return s, port


def uclient(port, peer_port, *flags, secret=SECRET, messages=50, clients=4):
    r = subprocess.run(
        [tool("turnutils_uclient"), *flags, "-W", secret, "-u", "alice", "-p", str(port),
         "-e", "127.0.0.1", "-r", str(peer_port), "-n", str(messages), "-m", str(clients),
         "-l", "120", "127.0.0.1"],
        capture_output=True, text=True, timeout=90)
    out = r.stdout + r.stderr
    sent = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", out)
    lost = re.search(r"Total lost packets (\d+)", out)
    return out, (tuple(map(int, sent[-1])) if sent else None), (int(lost.group(1)) if lost else None)


@pytest.mark.parametrize("flags", [[], ["-t"], ["-s"], ["-t", "-s"]],
                         ids=["udp-channels", "tcp-channels", "udp-send-indications", "tcp-send-indications"])
def test_uclient_relays_every_message(peer, flags):
    s, port = start_relay("--turn-allow-loopback-peers")
    try:
        out, counts, lost = uclient(port, peer, *flags)
        assert counts is not None, out
        sent, received = counts
        # -m 4 clients, 50 messages each (RTP; the RTCP allocations carry none).
        assert sent == 4 * 50 and received == sent, out
        assert lost == 0, out
        assert "error" not in out.lower(), out
    finally:
        s.stop()


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A self-signed certificate for localhost (uclient does not verify; browsers would)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("flags", [["-t", "-S"], ["-t", "-S", "-s"]],
                         ids=["tls-channels", "tls-send-indications"])
def test_uclient_over_tls_on_the_https_listener(peer, cert, flags):
    s, _ = start_relay("--turn-allow-loopback-peers", "--tls-cert", str(cert[0]),
                       "--tls-key", str(cert[1]))
    try:
        https_port = int(s.addr.rsplit(":", 1)[1])
        out, counts, lost = uclient(https_port, peer, *flags)
        assert counts is not None, out
        sent, received = counts
        assert sent == 4 * 50 and received == sent, out
        assert lost == 0, out
        # The same port still serves the web UI over HTTPS.
        import ssl, urllib.request
        ctx = ssl.create_default_context(cafile=str(cert[0]))
        body = urllib.request.urlopen(f"https://localhost:{https_port}/api/status",
                                      context=ctx, timeout=10).read()
        assert b"sessions" in body or b"pid" in body, body[:200]
    finally:
        s.stop()


def test_wrong_secret_is_refused(peer):
    s, port = start_relay("--turn-allow-loopback-peers")
    try:
        out, counts, _ = uclient(port, peer, secret="not-the-secret", messages=5, clients=1)
        assert counts is None or counts[1] == 0, out
        assert "Cannot complete Allocation" in out or "401" in out, out
    finally:
        s.stop()


def test_loopback_peer_is_refused_without_the_test_switch(peer):
    s, port = start_relay()
    try:
        out, counts, _ = uclient(port, peer, messages=5, clients=1)
        assert counts is None or counts[1] == 0, out
        assert "403" in out or "Forbidden" in out, out
    finally:
        s.stop()
