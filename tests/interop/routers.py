"""Start a router from a Crossbar node config (version 2, one router worker): Switchboard by
default, Crossbar.io when SB_TEST_ROUTER=crossbar.

The same config file is meant to work for both. Listening ports are picked by the test (bind
port 0, read it, close) and written into the config, so nothing depends on what a router prints.

    router = start_router(config, tmp_dir, ports=[ws_port, raw_port])
    ...
    router.stop()

Crossbar is taken from $CROSSBAR_BIN, else $SWITCHBOARD_TOOLS/crossbar-$CROSSBAR_VERSION/bin/crossbar
(the venv benches/compare_crossbar.py installs; default ~/.cache/switchboard-tools, 26.10.1).
Its log goes to <tmp>/crossbar.log.
"""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from conftest import Server

ROUTER = os.environ.get("SB_TEST_ROUTER", "switchboard").strip().lower() or "switchboard"
IS_CROSSBAR = ROUTER == "crossbar"
if ROUTER not in ("switchboard", "crossbar"):
    raise RuntimeError(f"SB_TEST_ROUTER must be 'switchboard' or 'crossbar', not {ROUTER!r}")

TOOLS = Path(os.environ.get("SWITCHBOARD_TOOLS", Path.home() / ".cache" / "switchboard-tools"))
CROSSBAR_VERSION = os.environ.get("CROSSBAR_VERSION", "26.10.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc=None) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"router exited with code {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def crossbar_bin() -> Path:
    env = os.environ.get("CROSSBAR_BIN")
    exe = Path(env) if env else TOOLS / f"crossbar-{CROSSBAR_VERSION}" / "bin" / "crossbar"
    if not exe.exists():
        raise RuntimeError(
            f"Crossbar.io not found at {exe}: set CROSSBAR_BIN, or install it with "
            f"`python3 -m venv {exe.parent.parent} && {exe.parent}/pip install crossbar=={CROSSBAR_VERSION}`"
        )
    return exe


class Router:
    """A running router: `name`, `stop()`, and `log()` (Crossbar's log text, for failures)."""

    def __init__(self, name, stop, log=lambda: ""):
        self.name, self._stop, self.log = name, stop, log

    def stop(self):
        self._stop()


def _start_switchboard(config: dict, tmp: Path, ports) -> Router:
    path = tmp / "node.json"
    path.write_text(json.dumps(config, indent=2))
    server = Server("--config", str(path))
    try:
        for p in ports:
            wait_port(p, 10, server.proc)
    except Exception:
        server.stop()
        raise
    return Router("switchboard", server.stop)


def _start_crossbar(config: dict, tmp: Path, ports) -> Router:
    cbdir = tmp / ".crossbar"
    cbdir.mkdir(parents=True, exist_ok=True)
    config = dict(config)
    config.setdefault("controller", {})
    (cbdir / "config.json").write_text(json.dumps(config, indent=2))
    log_path = tmp / "crossbar.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [str(crossbar_bin()), "start", "--cbdir", str(cbdir), "--loglevel", "info"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=tmp,
    )

    def stop():
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        else:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()

    try:
        for p in ports:
            wait_port(p, 90, proc)
    except Exception as e:
        stop()
        raise RuntimeError(f"{e}\n--- crossbar.log ---\n{log_path.read_text()[-5000:]}") from None
    return Router("crossbar", stop, lambda: log_path.read_text())


def start_router(config: dict, tmp: Path, ports) -> Router:
    """Start the router under test with `config` (a Crossbar node config dict) in `tmp`, and
    wait until it accepts TCP connections on every port in `ports`."""
    tmp = Path(tmp)
    if IS_CROSSBAR:
        return _start_crossbar(config, tmp, ports)
    return _start_switchboard(config, tmp, ports)
