"""Real-browser end-to-end test of chat attachments (web/widget.js and web/inbox.js).

Creates a staff user with the CLI (before the server starts: the store allows one process),
starts the server with a config file that mirrors the zero-config default but has small file
limits (512 KiB per file, 1.5 MiB in all, 10 uploads per visitor and hour, so the refusals are
reachable), and runs tests/browser/files.test.mjs: node's test runner + playwright-core driving
Debian's /usr/bin/chromium, a visitor (the widget on a demo page of a second origin) and staff
(the inbox) in two browser contexts, attaching images, documents, an SVG, a file named like
markup, one over the size limit, one past the upload rate, one past the storage quota and one
that the network loses. Screenshots go to target/screenshots/files-*.png. A missing chromium is
a failure, not a skip.
"""

import json
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
MAX_FILE_BYTES = 512 * 1024
MAX_TOTAL_FILE_BYTES = 1536 * 1024
UPLOADS_PER_HOUR = 10
ALL = {"call": True, "register": True, "publish": True, "subscribe": True}


def config():
    """The zero-config default as a config file (src/config/mod.rs development()), with small
    file limits."""
    return {
        "version": 2,
        "workers": [{
            "type": "router",
            "realms": [{"name": "realm1", "roles": [
                {"name": "anonymous", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]},
                {"name": "staff", "permissions": [{"uri": "", "match": "prefix", "allow": ALL}]},
                {"name": "visitor", "permissions": []},
            ]}],
            "transports": [{
                "type": "web",
                "endpoint": {"type": "tcp", "port": 0, "interface": "127.0.0.1"},
                "paths": {
                    "ws": {"type": "websocket", "auth": {
                        "anonymous": {"type": "static", "role": "anonymous"},
                        "wampcra": {"type": "static"},  # the built-in store
                    }},
                    "chat": {"type": "websocket", "auth": {"ticket": {"type": "visitor"}}},
                },
            }],
            "chat": {
                "realm": "realm1",
                "staff_roles": ["staff"],
                "max_file_bytes": MAX_FILE_BYTES,
                "max_total_file_bytes": MAX_TOTAL_FILE_BYTES,
                "uploads_per_hour": UPLOADS_PER_HOUR,
            },
        }],
    }


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
def files_server():
    data_dir = tempfile.mkdtemp(prefix="sb-files-")
    added = _run(
        [str(binary_path()), "user", "add", STAFF[0], "--role", "staff", "--wampcra", "--data-dir", data_dir],
        timeout=60,
        cwd=REPO,
        stdin=STAFF[1] + "\n",
    )
    assert added.returncode == 0, f"switchboard user add failed:\n{added.stdout}"
    config_dir = tempfile.mkdtemp(prefix="sb-files-config-")
    path = Path(config_dir) / "node.json"
    path.write_text(json.dumps(config()))
    s = Server("--config", str(path), data_dir=data_dir)
    yield s
    s.stop()
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(config_dir, ignore_errors=True)


def test_attachments_in_chromium(files_server):
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
    env["SWITCHBOARD_URL"] = files_server.http_url
    env["STAFF_AUTHID"] = STAFF[0]
    env["STAFF_PASSWORD"] = STAFF[1]
    env["SCREENSHOT_DIR"] = str(SCREENSHOT_DIR)
    env["MAX_FILE_BYTES"] = str(MAX_FILE_BYTES)
    env["UPLOADS_PER_HOUR"] = str(UPLOADS_PER_HOUR)
    result = _run([node, "--test", "--test-reporter=spec", "files.test.mjs"], timeout=600, env=env)
    print(result.stdout)
    assert result.returncode == 0, (
        f"attachments browser test failed (exit {result.returncode}) against {files_server.http_url}:\n{result.stdout}"
    )
    for name in ["files-widget", "files-inbox", "files-widget-error", "files-inbox-error", "files-widget-phone"]:
        assert (SCREENSHOT_DIR / f"{name}.png").is_file(), f"screenshot {name}.png missing"
