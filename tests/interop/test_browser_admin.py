"""Real-browser test of the admin view (/admin) and web/wamp.js.

Runs tests/browser/admin.test.mjs (node's test runner + playwright-core driving Debian's
/usr/bin/chromium) against two real switchboard servers: the zero-config development default
(anonymous may use the meta API) and a config where anonymous and a ticket user get a role
without `wamp.` permissions while WAMP-CRA users (salted and plain) are admins. The WAMP
clients the page must show, and kill, are Autobahn|JS sessions opened by the node script.
Screenshots go to target/screenshots/admin-*.png. A missing chromium is a failure, not a skip.
"""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Server

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "browser"
JS_DIR = REPO / "tests" / "interop" / "js"
SCREENSHOT_DIR = REPO / "target" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")

ALL = {"call": True, "register": True, "publish": True, "subscribe": True}

# The credentials are repeated in admin.test.mjs (CREDS).
CONFIG = {
    "version": 2,
    "workers": [{
        "type": "router",
        "realms": [{"name": "realm1", "roles": [
            {"name": "viewer", "permissions": [{"uri": "com.", "match": "prefix", "allow": ALL}]},
            # What README's "Admin view" section tells an operator to grant.
            {"name": "admin", "permissions": [
                {"uri": "wamp.", "match": "prefix", "allow": {"call": True, "subscribe": True}},
            ]},
        ]}],
        "transports": [{
            "type": "web",
            "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
            "paths": {"ws": {"type": "websocket", "auth": {
                "anonymous": {"type": "static", "role": "viewer"},
                "ticket": {"type": "static", "principals": {
                    "viewer": {"ticket": "viewer-ticket", "role": "viewer"},
                }},
                "wampcra": {"type": "static", "users": {
                    "admin": {"secret": "admin-password", "role": "admin",
                              "salt": "admin-salt", "iterations": 1000, "keylen": 32},
                    "root": {"secret": "root-secret", "role": "admin"},
                }},
            }}},
        }],
    }],
}


@pytest.fixture(scope="module")
def restricted_server(tmp_path_factory):
    path = tmp_path_factory.mktemp("admin") / "node.json"
    path.write_text(json.dumps(CONFIG))
    s = Server("--config", str(path))
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


def test_admin_view_in_chromium(server, restricted_server):
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
    env["SWITCHBOARD_URL"] = server.http_url
    env["SWITCHBOARD_RESTRICTED_URL"] = restricted_server.http_url
    env["SCREENSHOT_DIR"] = str(SCREENSHOT_DIR)
    started = time.monotonic()
    result = _run(
        [node, "--test", "--test-reporter=spec", "admin.test.mjs"],
        cwd=BROWSER_DIR,
        timeout=300,
        env=env,
    )
    print(result.stdout)
    print(f"admin browser test took {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, (
        f"admin browser test failed (exit {result.returncode}) against {server.http_url} "
        f"and {restricted_server.http_url}:\n{result.stdout}"
    )
    for name in ("admin-login", "admin-live", "admin-killed", "admin-mobile", "admin-not-authorized"):
        assert (SCREENSHOT_DIR / f"{name}.png").is_file(), f"screenshot {name}.png missing"
