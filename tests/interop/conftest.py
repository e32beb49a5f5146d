"""Shared fixtures for the third-party interop tests.

Every test here drives the real `switchboard` binary. The binary is taken from
$SWITCHBOARD_BIN, else target/debug/switchboard, else target/release/switchboard
(the test script builds it before pytest runs). The server is started on an
ephemeral port with a fresh data directory; it prints one line
`switchboard listening on http://HOST:PORT` on stdout once it accepts connections.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"switchboard listening on https?://(\S+)")
RAW_READY = re.compile(r"switchboard rawsocket on tcp://(\S+)")


def binary_path() -> Path:
    env = os.environ.get("SWITCHBOARD_BIN")
    if env:
        return Path(env)
    for profile in ("debug", "release"):
        p = REPO / "target" / profile / "switchboard"
        if p.exists():
            return p
    raise RuntimeError("switchboard binary not built; run cargo build first")


class Server:
    def __init__(self, *extra_args: str, data_dir: str | None = None):
        # A data dir made here is removed by stop(); one passed in belongs to the caller.
        self.owns_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="sb-interop-")
        args = [str(binary_path()), "--listen", "127.0.0.1:0", "--data-dir", self.data_dir, *extra_args]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 30
        self.addr = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = READY.search(line)
            if m:
                self.addr = m.group(1)
                break
        if self.addr is None:
            self.proc.kill()
            raise RuntimeError("switchboard did not report readiness")
        self.http_url = f"http://{self.addr}"
        self.ws_url = f"ws://{self.addr}/ws"
        self.rawsocket_addr = None
        if "--rawsocket-listen" in extra_args:
            line = self.proc.stdout.readline()
            m = RAW_READY.search(line)
            if not m:
                self.proc.kill()
                raise RuntimeError(f"switchboard did not report its RawSocket address: {line!r}")
            self.rawsocket_addr = m.group(1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def raw_server(tmp_path_factory):
    sock = tmp_path_factory.mktemp("raw") / "wamp.sock"
    s = Server("--rawsocket-listen", "127.0.0.1:0", "--rawsocket-unix", str(sock))
    s.unix_path = str(sock)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def echo_server():
    s = Server("--ws-echo-path", "/echo", "--max-message-size", "33554432")
    yield s
    s.stop()
