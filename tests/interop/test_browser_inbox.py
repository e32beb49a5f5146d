"""Real-browser test of the staff inbox (/inbox).

Creates a staff user in the built-in store with the CLI (`switchboard user add ann --role staff
--wampcra`, password on stdin), starts the zero-config development default on that data
directory (chat service on realm1: staff on /ws, visitors on /chat), then runs
tests/browser/inbox.test.mjs: node's test runner + playwright-core driving Debian's
/usr/bin/chromium, with website visitors played by Autobahn|JS sessions logging in on /chat with
visitor tokens. Screenshots go to target/screenshots/inbox-*.png. A missing chromium is a
failure, not a skip.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Server, binary_path

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "browser"
JS_DIR = REPO / "tests" / "interop" / "js"
SCREENSHOT_DIR = REPO / "target" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")

STAFF = "ann"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def inbox_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("inbox-data")
    added = subprocess.run(
        [str(binary_path()), "user", "add", STAFF, "--role", "staff", "--wampcra", "--data-dir", str(data)],
        input=f"{PASSWORD}\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, f"switchboard user add failed:\n{added.stdout}"
    # The test sends 80 messages from one visitor in a second: above the default 60 per minute.
    s = Server("--chat-messages-per-minute", "1000", data_dir=str(data))
    yield s
    s.stop()


def _run(cmd, cwd, timeout, env=None):
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def _npm_ci(npm, directory, marker):
    if (directory / "node_modules" / marker).is_dir():
        return
    done = _run([npm, "ci", "--no-audit", "--no-fund"], cwd=directory, timeout=300)
    assert done.returncode == 0, f"npm ci failed in {directory}:\n{done.stdout}"


def test_staff_inbox_in_chromium(inbox_server):
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} not found: the browser test needs Debian's chromium. "
        "Install it with: bash tests/browser/install-chromium.sh"
    )
    node = shutil.which("node")
    npm = shutil.which("npm")
    assert node and npm, "node and npm are needed for the browser test (tests/browser)"
    _npm_ci(npm, BROWSER_DIR, "playwright-core")
    _npm_ci(npm, JS_DIR, "autobahn")

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["SWITCHBOARD_URL"] = inbox_server.http_url
    env["STAFF_AUTHID"] = STAFF
    env["STAFF_PASSWORD"] = PASSWORD
    env["SCREENSHOT_DIR"] = str(SCREENSHOT_DIR)
    started = time.monotonic()
    result = _run(
        [node, "--test", "--test-reporter=spec", "inbox.test.mjs"],
        cwd=BROWSER_DIR,
        timeout=600,
        env=env,
    )
    print(result.stdout)
    print(f"inbox browser test took {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, (
        f"inbox browser test failed (exit {result.returncode}) against {inbox_server.http_url}:\n{result.stdout}"
    )
    names = ["inbox-login", "inbox-desktop", "inbox-history", "inbox-phone-list", "inbox-phone-thread"]
    if "# search not available" not in result.stdout:
        names.append("inbox-search")
    for name in names:
        assert (SCREENSHOT_DIR / f"{name}.png").is_file(), f"screenshot {name}.png missing"
