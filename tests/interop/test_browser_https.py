"""Real-browser test of the web UI over HTTPS (tests/browser/https.test.mjs): Switchboard with a
self-signed certificate made here (--tls-cert/--tls-key); Chromium loads every page with no CSP
violation and joins a realm over wss:// from a page. A missing chromium is a failure."""

import datetime
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from conftest import binary_path

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "browser"
CHROMIUM = Path("/usr/bin/chromium")


def self_signed(d: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (d / "cert.pem").write_bytes(cert.public_bytes(pem))
    (d / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def test_web_ui_over_https_in_chromium():
    assert CHROMIUM.exists(), "install Debian's chromium: bash tests/browser/install-chromium.sh"
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed for the browser test (tests/browser)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        ci = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR,
                            capture_output=True, text=True, timeout=300)
        assert ci.returncode == 0, ci.stdout + ci.stderr
    work = Path(tempfile.mkdtemp(prefix="sb-https-"))
    self_signed(work)
    proc = subprocess.Popen(
        [str(binary_path()), "--listen", "127.0.0.1:0", "--data-dir", str(work / "data"),
         "--tls-cert", str(work / "cert.pem"), "--tls-key", str(work / "key.pem")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("switchboard listening on https://"), line
        port = line.strip().rsplit(":", 1)[1]
        env = dict(os.environ, SWITCHBOARD_URL=f"https://localhost:{port}")
        result = subprocess.run(
            [node, "--test", "--test-reporter=spec", "https.test.mjs"],
            cwd=BROWSER_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=300,
        )
        print(result.stdout)
        assert result.returncode == 0, result.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)
