"""Real-browser end-to-end test of chat attachments (web/widget.js and web/inbox.js).

Creates a staff user with the CLI (before the server starts: the store allows one process),
starts the zero-config server on that data directory (default limits: 5 MiB per file), and runs
tests/browser/files.test.mjs: node's test runner + playwright-core driving Debian's
/usr/bin/chromium, a visitor (the widget on a demo page of a second origin) and staff (the
inbox) in two browser contexts, attaching images, documents, an SVG, a file named like markup
and one over the limit. Screenshots go to target/screenshots/files-*.png. A missing chromium is
a failure, not a skip.
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
    s = Server(data_dir=data_dir)
    yield s
    s.stop()
    shutil.rmtree(data_dir, ignore_errors=True)


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
    result = _run([node, "--test", "--test-reporter=spec", "files.test.mjs"], timeout=600, env=env)
    print(result.stdout)
    assert result.returncode == 0, (
        f"attachments browser test failed (exit {result.returncode}) against {files_server.http_url}:\n{result.stdout}"
    )
    for name in ["files-widget", "files-inbox", "files-widget-error", "files-inbox-error"]:
        assert (SCREENSHOT_DIR / f"{name}.png").is_file(), f"screenshot {name}.png missing"
