"""Real-browser test of the embedded status page.

Runs tests/browser/status.test.mjs (node's test runner + playwright-core driving
Debian's /usr/bin/chromium) against the real switchboard binary. Chromium is
installed by tests/browser/install-chromium.sh, which CI runs; a missing
chromium is a failure, not a skip.
"""

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "browser"
SCREENSHOT_DIR = REPO / "target" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")


def _run(cmd, timeout, env=None):
    return subprocess.run(
        cmd,
        cwd=BROWSER_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def test_status_page_in_chromium(server):
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
    env["SWITCHBOARD_URL"] = server.http_url
    env["SCREENSHOT_DIR"] = str(SCREENSHOT_DIR)
    result = _run(
        [node, "--test", "--test-reporter=spec", "status.test.mjs"],
        timeout=300,
        env=env,
    )
    print(result.stdout)
    assert result.returncode == 0, (
        f"browser test failed (exit {result.returncode}) against {server.http_url}:\n{result.stdout}"
    )
