"""Real-browser end-to-end test of a call relayed by Switchboard's built-in TURN relay.

Creates a staff user with the CLI (before the server starts: the store allows one process),
starts the zero-config server on that data directory with the relay on loopback
(`--turn --turn-listen 127.0.0.1:0 --turn-allow-loopback-peers`: UDP and TCP on one free port,
relay sockets on 127.0.0.1, so `ice_servers()` hands out `turn:127.0.0.1:PORT` URIs with REST
credentials; the browsers' relayed addresses are loopback peers, which the relay refuses
without the switch), and runs tests/browser/call-relay.test.mjs: Debian's chromium via
playwright-core, both pages with `?sb_ice_policy=relay`, a video call each way whose selected
candidate pair must be relay to relay, with the relay's byte and packet counters growing in
/metrics. Screenshot: target/screenshots/call-relay.png. A missing chromium is a failure.
"""

import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from conftest import Server, binary_path

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "browser"
SCREENSHOT_DIR = REPO / "target" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
STAFF = ("ann", "ann-staff-password-1")


def _run(cmd, timeout, env=None, cwd=BROWSER_DIR, stdin=None):
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def _relayed_bytes(url):
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    return sum(float(m.group(1)) for m in re.finditer(r"^switchboard_turn_relayed_bytes_total\{[^}]*\}\s+(\S+)", text, re.M))


@pytest.fixture(scope="module")
def relay_server():
    data_dir = tempfile.mkdtemp(prefix="sb-call-relay-")
    added = _run(
        [str(binary_path()), "user", "add", STAFF[0], "--role", "staff", "--wampcra", "--data-dir", data_dir],
        timeout=60,
        cwd=REPO,
        stdin=STAFF[1] + "\n",
    )
    assert added.returncode == 0, f"switchboard user add failed:\n{added.stdout}"
    s = Server("--turn", "--turn-listen", "127.0.0.1:0", "--turn-allow-loopback-peers", data_dir=data_dir)
    yield s
    s.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_call_relayed_by_switchboard_in_chromium(relay_server):
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} not found: the browser test needs Debian's chromium. "
        "Install it with: bash tests/browser/install-chromium.sh"
    )
    node = shutil.which("node")
    npm = shutil.which("npm")
    assert node and npm, "node and npm are needed for the browser test (tests/browser)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        npm_ci = _run([npm, "ci", "--no-audit", "--no-fund"], timeout=300)
        assert npm_ci.returncode == 0, f"npm ci failed in {BROWSER_DIR}:\n{npm_ci.stdout}"

    assert _relayed_bytes(relay_server.http_url) == 0, "nothing relayed before the calls"
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOT_DIR / "call-relay.png"
    shot.unlink(missing_ok=True)
    env = dict(os.environ)
    env["SWITCHBOARD_URL"] = relay_server.http_url
    env["STAFF_AUTHID"] = STAFF[0]
    env["STAFF_PASSWORD"] = STAFF[1]
    env["SCREENSHOT_DIR"] = str(SCREENSHOT_DIR)
    result = _run([node, "--test", "--test-reporter=spec", "call-relay.test.mjs"], timeout=400, env=env)
    print(result.stdout)
    assert result.returncode == 0, (
        f"relayed-call browser test failed (exit {result.returncode}) against {relay_server.http_url}:\n{result.stdout}"
    )
    assert _relayed_bytes(relay_server.http_url) > 0
    assert shot.is_file(), "screenshot call-relay.png missing"
