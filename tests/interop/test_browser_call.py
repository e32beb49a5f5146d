"""Real-browser end-to-end test of calls from a chat (web/call.js in the widget and the inbox).

Creates a staff user with the CLI (before the server starts: the store allows one process),
starts the zero-config server on that data directory with a short ring timeout
(`--chat-ring-timeout 5`), and runs tests/browser/call.test.mjs: node's test runner +
playwright-core driving Debian's /usr/bin/chromium with a fake camera and microphone, a visitor
(the widget on a demo page of a second origin) and staff (the inbox) in two browser contexts.
Screenshots go to target/screenshots/call-*.png. A missing chromium is a failure, not a skip.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import Server, binary_path

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "browser"
SCREENSHOT_DIR = REPO / "target" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
STAFF = ("ann", "ann-staff-password-1")
RING_TIMEOUT_S = "5"


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


@pytest.fixture(scope="module")
def call_server():
    data_dir = tempfile.mkdtemp(prefix="sb-call-")
    added = _run(
        [str(binary_path()), "user", "add", STAFF[0], "--role", "staff", "--wampcra", "--data-dir", data_dir],
        timeout=60,
        cwd=REPO,
        stdin=STAFF[1] + "\n",
    )
    assert added.returncode == 0, f"switchboard user add failed:\n{added.stdout}"
    s = Server("--chat-ring-timeout", RING_TIMEOUT_S, data_dir=data_dir)
    yield s
    s.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


def test_calls_in_chromium(call_server):
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

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["SWITCHBOARD_URL"] = call_server.http_url
    env["STAFF_AUTHID"] = STAFF[0]
    env["STAFF_PASSWORD"] = STAFF[1]
    env["RING_TIMEOUT_S"] = RING_TIMEOUT_S
    env["SCREENSHOT_DIR"] = str(SCREENSHOT_DIR)
    result = _run([node, "--test", "--test-reporter=spec", "call.test.mjs"], timeout=600, env=env)
    print(result.stdout)
    assert result.returncode == 0, (
        f"call browser test failed (exit {result.returncode}) against {call_server.http_url}:\n{result.stdout}"
    )
    for name in ["call-inbox-ringing", "call-widget", "call-inbox", "call-widget-incoming", "call-widget-phone",
                 "call-widget-denied", "call-widget-history", "call-inbox-history"]:
        assert (SCREENSHOT_DIR / f"{name}.png").is_file(), f"screenshot {name}.png missing"
