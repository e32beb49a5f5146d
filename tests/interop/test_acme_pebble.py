"""ACME end to end against pebble (Let's Encrypt's test CA, Debian package `pebble`).

pebble-challtestsrv answers DNS for every name with 127.0.0.1, so pebble's validation authority
really validates (no PEBBLE_VA_ALWAYS_VALID): HTTP-01 fetches
http://sb.test:<port>/.well-known/acme-challenge/<token> from Switchboard's redirect listener;
TLS-ALPN-01 opens TLS with ALPN acme-tls/1 to Switchboard's HTTPS port. Switchboard trusts pebble's
API certificate through --acme-root-cert (a CA made here). The test waits until Switchboard
serves HTTPS for sb.test with a certificate issued by pebble's intermediate, joins a realm over
wss://, then restarts Switchboard without pebble: the stored certificate is served at once.
"""

import base64
import datetime
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import binary_path

pytestmark = pytest.mark.skipif(
    shutil.which("pebble") is None or shutil.which("pebble-challtestsrv") is None,
    reason="pebble is not installed (tests/tools/install-pebble.sh)",
)

DOMAIN = "sb.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_ca_and_server_cert(d: Path):
    """A CA and a certificate for 127.0.0.1/localhost signed by it (pebble's API listener)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble API test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (d / "ca.pem").write_bytes(ca.public_bytes(pem))
    (d / "api-cert.pem").write_bytes(cert.public_bytes(pem))
    (d / "api-key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def fetch(url: str, cafile: Path) -> bytes:
    import urllib.request

    ctx = ssl.create_default_context(cafile=str(cafile))
    with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
        return r.read()


def wait_port(port: int, proc: subprocess.Popen, what: str):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


def start_switchboard(data_dir: str, listen: str, *args: str):
    proc = subprocess.Popen(
        [str(binary_path()), "--listen", listen, "--data-dir", data_dir, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("switchboard listening on https://"), line
    addr = line.strip().rsplit("/", 1)[1]
    return proc, int(addr.rsplit(":", 1)[1])


def stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err or ""


def tls_connect(port: int, roots: Path) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(roots))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=DOMAIN)


def wait_for_https(port: int, roots: Path, timeout: float) -> dict:
    """The peer certificate of the first TLS handshake that verifies against `roots`."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            with tls_connect(port, roots) as s:
                return s.getpeercert()
        except (ssl.SSLError, OSError) as e:
            last = e
            time.sleep(0.3)
    raise AssertionError(f"no verified HTTPS on {port} within {timeout}s: {last}")


def wss_hello(port: int, roots: Path) -> list:
    """A hand-written WebSocket client over TLS: upgrade, HELLO, read WELCOME."""
    s = tls_connect(port, roots)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {DOMAIN}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    rest = head.split(b"\r\n\r\n", 1)[1]
    payload = json.dumps([1, "realm1", {"roles": {"subscriber": {}}}]).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    buf = rest
    while True:
        if len(buf) >= 2:
            n = buf[1] & 0x7F
            off = 2
            if n == 126:
                n = struct.unpack(">H", buf[2:4])[0]
                off = 4
            if len(buf) >= off + n:
                msg = json.loads(buf[off : off + n])
                s.close()
                return msg
        chunk = s.recv(4096)
        assert chunk
        buf += chunk


@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"])
def test_acme_certificate_from_pebble(challenge):
    work = Path(tempfile.mkdtemp(prefix="sb-acme-"))
    make_ca_and_server_cert(work)
    acme_port, mgmt_port, dns_port, http_port, https_port = (free_port() for _ in range(5))
    (work / "pebble.json").write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{acme_port}",
                    "managementListenAddress": f"127.0.0.1:{mgmt_port}",
                    "certificate": str(work / "api-cert.pem"),
                    "privateKey": str(work / "api-key.pem"),
                    "httpPort": http_port,
                    "tlsPort": https_port,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    dns = subprocess.Popen(
        [
            "pebble-challtestsrv",
            "-defaultIPv4", "127.0.0.1",
            "-defaultIPv6", "",
            "-dns01", f"127.0.0.1:{dns_port}",
            "-http01", "",
            "-https01", "",
            "-tlsalpn01", "",
            "-management", f"127.0.0.1:{free_port()}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
    pebble_log = open(work / "pebble.log", "w")
    pebble = subprocess.Popen(
        ["pebble", "-config", str(work / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns_port}"],
        stdout=pebble_log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    sb = None
    try:
        wait_port(acme_port, pebble, "pebble")
        data_dir = str(work / "data")
        args = [
            "--acme-domain", DOMAIN,
            "--acme-email", "ops@sb.test",
            "--acme-directory", f"https://127.0.0.1:{acme_port}/dir",
            "--acme-root-cert", str(work / "ca.pem"),
            "--acme-challenge", challenge,
        ]
        if challenge == "http-01":
            # HTTP-01 is answered on the plain-HTTP (redirect) listener; TLS-ALPN-01 needs none.
            args += ["--http-redirect-listen", f"127.0.0.1:{http_port}"]
        listen = f"127.0.0.1:{https_port}"
        sb, port = start_switchboard(data_dir, listen, *args)
        # pebble's roots and intermediates change per run: fetch them from its management API.
        root_pem = fetch(f"https://127.0.0.1:{mgmt_port}/roots/0", work / "ca.pem")
        inter_pem = fetch(f"https://127.0.0.1:{mgmt_port}/intermediates/0", work / "ca.pem")
        (work / "pebble-roots.pem").write_bytes(root_pem)
        try:
            cert = wait_for_https(port, work / "pebble-roots.pem", 60)
        except AssertionError:
            err = stop(sb)
            sb = None
            log = (work / "pebble.log").read_text()
            raise AssertionError(f"switchboard:\n{err[-3000:]}\npebble:\n{log[-3000:]}")

        from cryptography import x509

        intermediate = x509.load_pem_x509_certificate(inter_pem)
        inter_cn = intermediate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        issuer = dict(x[0] for x in cert["issuer"])
        assert issuer.get("commonName") == inter_cn, (cert["issuer"], inter_cn)
        assert ("DNS", DOMAIN) in cert["subjectAltName"]

        welcome = wss_hello(port, work / "pebble-roots.pem")
        assert welcome[0] == 2, welcome

        acme_dir = Path(data_dir) / "acme"
        for f in ("account.json", "account.directory", "order", "cert.pem", "key.pem"):
            assert (acme_dir / f).exists(), f
            assert (acme_dir / f).stat().st_mode & 0o077 == 0, f"{f} is private"
        err = stop(sb)
        sb = None
        assert "ACME: new certificate installed" in err, err
        if challenge == "http-01":
            assert "answering an HTTP-01 challenge" in err, err
        else:
            assert "answered a TLS-ALPN-01 validation" in err, err

        # Restart without pebble: the stored certificate is served at once.
        pebble.terminate()
        pebble.wait(timeout=10)
        sb, port = start_switchboard(data_dir, listen, *args)
        again = wait_for_https(port, work / "pebble-roots.pem", 5)
        assert again["serialNumber"] == cert["serialNumber"]
    finally:
        if sb is not None:
            stop(sb)
        if pebble.poll() is None:
            pebble.terminate()
            pebble.wait(timeout=10)
        dns.terminate()
        dns.wait(timeout=10)
        pebble_log.close()
        shutil.rmtree(work, ignore_errors=True)
