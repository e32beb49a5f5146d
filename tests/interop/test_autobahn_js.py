"""Interop tests: Autobahn|JS (Node, package `autobahn` pinned in js/package.json).

Runs js/interop.mjs once per module against the router and turns each of its
per-check results into a pytest test. The script prints one line
`INTEROP_RESULT {json}` and exits non-zero when a check failed.

Installs js/node_modules with `npm ci` (from the committed package-lock.json)
when it is missing. Set SWITCHBOARD_WS_URL to test an already running router
instead of the `server` fixture from conftest.py.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "interop.mjs"
SERIALIZERS = ["json", "msgpack", "cbor"]
CHECKS = [
    "pubsub",
    "rpc",
    "progressive",
    "pattern_subscription",
    "shared_roundrobin",
    "call_cancel",
    "binary_roundtrip",
]
NPM_TIMEOUT = 600
NODE_TIMEOUT = 240  # the script has its own global bound (150 s); this is the backstop


@pytest.fixture(scope="module")
def ws_url(request):
    env = os.environ.get("SWITCHBOARD_WS_URL")
    if env:
        return env
    return request.getfixturevalue("server").ws_url


def _ensure_node_modules():
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are required for the Autobahn|JS interop tests"
    if (JS_DIR / "node_modules" / "autobahn" / "package.json").exists():
        return
    cmd = [npm, "ci"] if (JS_DIR / "package-lock.json").exists() else [npm, "install"]
    cmd += ["--no-audit", "--no-fund"]
    proc = subprocess.run(cmd, cwd=JS_DIR, capture_output=True, text=True, timeout=NPM_TIMEOUT)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"


class JsRun:
    def __init__(self, proc):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.report = None
        for line in proc.stdout.splitlines():
            if line.startswith("INTEROP_RESULT "):
                self.report = json.loads(line[len("INTEROP_RESULT ") :])
        self.by_key = {}
        if self.report:
            for r in self.report["results"]:
                self.by_key[(r["check"], r["serializer"])] = r

    def output(self, limit=20000):
        text = f"exit code {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        return text if len(text) <= limit else text[:2000] + "\n...\n" + text[-(limit - 2000) :]


@pytest.fixture(scope="module")
def js_run(ws_url):
    _ensure_node_modules()
    try:
        proc = subprocess.run(
            ["node", str(SCRIPT), ws_url, ",".join(SERIALIZERS)],
            cwd=JS_DIR,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"node interop script did not finish in {NODE_TIMEOUT}s:\n{e.stdout}\n{e.stderr}")
    return JsRun(proc)


def test_js_script_reported(js_run):
    assert js_run.report is not None, "node script printed no INTEROP_RESULT line\n" + js_run.output()
    reported = set(js_run.by_key)
    expected = {(c, s) for c in CHECKS for s in SERIALIZERS}
    assert reported == expected, f"unexpected set of checks: missing {expected - reported}, extra {reported - expected}"
    all_ok = all(r["ok"] for r in js_run.report["results"])
    assert js_run.report["ok"] == all_ok
    assert (js_run.returncode == 0) == all_ok, js_run.output()


@pytest.mark.parametrize("ser", SERIALIZERS)
@pytest.mark.parametrize("check", CHECKS)
def test_autobahn_js(js_run, check, ser):
    assert js_run.report is not None, "node script printed no INTEROP_RESULT line\n" + js_run.output()
    r = js_run.by_key.get((check, ser))
    assert r is not None, f"check {check}[{ser}] not reported\n" + js_run.output()
    assert r["ok"], f"Autobahn|JS check {check}[{ser}] failed: {r['error']}\n\n" + js_run.output()
