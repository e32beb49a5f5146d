#!/usr/bin/env python3
"""Side by side with Crossbar.io: the same `switchboard bench` scenarios against both routers,
in one run, on this machine. Installs Crossbar.io from PyPI into a private venv, starts it with
a config equivalent to Switchboard's zero-config default (realm1, anonymous may do everything,
WebSocket with json/msgpack/cbor), starts the release Switchboard, runs the scenarios against
each in turn and prints both figures and the ratio.

    python3 benches/compare_crossbar.py [--quick] [--json target/compare.json]

Memory and CPU are read from /proc for the router's worker process (Crossbar runs a controller
and a router worker; both are reported). Nothing here leaves loopback.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = Path(os.environ.get("SWITCHBOARD_TOOLS", Path.home() / ".cache" / "switchboard-tools"))
CROSSBAR_VERSION = os.environ.get("CROSSBAR_VERSION", "26.10.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def crossbar_bin() -> Path:
    venv = TOOLS / f"crossbar-{CROSSBAR_VERSION}"
    exe = venv / "bin" / "crossbar"
    if not exe.exists():
        print(f"installing crossbar {CROSSBAR_VERSION} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"crossbar=={CROSSBAR_VERSION}"], check=True)
    return exe


def crossbar_config(port: int) -> dict:
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{
                "name": "realm1",
                "roles": [{
                    "name": "anonymous",
                    "permissions": [{
                        "uri": "", "match": "prefix",
                        "allow": {"call": True, "register": True, "publish": True, "subscribe": True},
                        "disclose": {"caller": False, "publisher": False}, "cache": True,
                    }],
                }],
            }],
            "transports": [{
                "type": "websocket",
                "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": port},
                "serializers": ["json", "msgpack", "cbor"],
                "options": {"max_message_size": 1048576},
            }],
        }],
    }


def children(pid: int) -> list:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Router:
    def __init__(self, name, proc, port, worker_pid, all_pids):
        self.name, self.proc, self.port, self.worker_pid, self.all_pids = name, proc, port, worker_pid, all_pids

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/ws"

    def total_rss(self):
        return sum(rss(p) for p in self.all_pids() if Path(f"/proc/{p}").exists())

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def start_switchboard(tmp: Path) -> Router:
    exe = REPO / "target" / "release" / "switchboard"
    port = free_port()
    proc = subprocess.Popen([str(exe), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp / "sb-data")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(port)
    return Router("switchboard", proc, port, proc.pid, lambda: [proc.pid])


def start_crossbar(tmp: Path) -> Router:
    exe = crossbar_bin()
    port = free_port()
    cbdir = tmp / ".crossbar"
    cbdir.mkdir()
    (cbdir / "config.json").write_text(json.dumps(crossbar_config(port), indent=2))
    proc = subprocess.Popen([str(exe), "start", "--cbdir", str(cbdir), "--loglevel", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=tmp)
    wait_port(port, timeout=120)
    time.sleep(2)

    def all_pids():
        pids, todo = [], [proc.pid]
        while todo:
            p = todo.pop()
            pids.append(p)
            todo.extend(children(p))
        return pids

    # The router worker is the child process with the largest RSS (the one that holds sessions).
    workers = [p for p in all_pids() if p != proc.pid]
    worker = max(workers, key=rss) if workers else proc.pid
    return Router("crossbar", proc, port, worker, all_pids)


def bench(router: Router, args: list, out: Path) -> dict:
    exe = REPO / "target" / "release" / "switchboard"
    cmd = [str(exe), "bench", *args, "--url", router.url, "--pid", str(router.worker_pid), "--json", str(out), "--max-secs", "300"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write("    " + r.stdout.replace("\n", "\n    ").rstrip() + "\n")
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout).strip()[-300:]}
    return json.loads(out.read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller, shorter runs")
    ap.add_argument("--json", help="write all figures to this file")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    q = a.quick
    scenarios = [
        ("idle sessions", ["connections", "-n", "2000" if q else "10000", "--rate", "1000", "--hold", "3"]),
        ("fan-out 1000 subs × 100 B, 20 pub/s", ["fanout", "-s", "1000", "-r", "20", "-b", "100", "-t", "5" if q else "10"]),
        ("fan-out 1000 subs × 100 B, max rate", ["fanout", "-s", "1000", "-r", "0", "-b", "100", "-t", "5" if q else "10"]),
        ("rpc 10 callers × 10 outstanding", ["rpc", "-c", "10", "-w", "10", "-t", "5" if q else "10"]),
        ("churn", ["churn", "-c", "16", "-t", "6" if q else "9"]),
    ]
    results = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for start in (start_switchboard, start_crossbar):
            sub = tmp / start.__name__
            sub.mkdir()
            router = start(sub)
            try:
                idle = router.total_rss()
                print(f"== {router.name}: idle RSS {idle / 2**20:.1f} MiB (all processes)", flush=True)
                results[router.name] = {"idle_rss_all_processes": idle}
                for i, (label, args) in enumerate(scenarios):
                    print(f"  -- {label}", flush=True)
                    results[router.name][label] = bench(router, args, sub / f"{i}.json")
            finally:
                router.stop()

    def fig(name, label, key):
        v = results.get(name, {}).get(label, {})
        return v.get(key) if isinstance(v, dict) else None

    rows = [
        ("idle RSS, all processes (MiB)", lambda n: results[n]["idle_rss_all_processes"] / 2**20),
        ("RSS per idle subscribed session (KiB)", lambda n: (fig(n, "idle sessions", "rss_per_session") or 0) / 1024),
        ("fan-out at max rate: events/s", lambda n: fig(n, "fan-out 1000 subs × 100 B, max rate", "events_per_sec")),
        ("fan-out at max rate: p99 ms", lambda n: (fig(n, "fan-out 1000 subs × 100 B, max rate", "latency") or {}).get("p99_us", 0) / 1000),
        ("fan-out: events per router CPU-second", lambda n: fig(n, "fan-out 1000 subs × 100 B, max rate", "events_per_server_cpu_second")),
        ("RPC calls/s", lambda n: fig(n, "rpc 10 callers × 10 outstanding", "calls_per_sec")),
        ("RPC p99 ms", lambda n: (fig(n, "rpc 10 callers × 10 outstanding", "latency") or {}).get("p99_us", 0) / 1000),
        ("RPC calls per router CPU-second", lambda n: fig(n, "rpc 10 callers × 10 outstanding", "calls_per_server_cpu_second")),
        ("churn cycles/s", lambda n: fig(n, "churn", "cycles_per_sec")),
    ]
    print()
    print(f"| figure | switchboard | crossbar {CROSSBAR_VERSION} | ratio |")
    print("|---|---|---|---|")
    table = []
    for label, f in rows:
        try:
            s, c = f("switchboard"), f("crossbar")
        except (KeyError, TypeError):
            s, c = None, None
        ratio = (s / c) if (s and c) else None
        table.append({"figure": label, "switchboard": s, "crossbar": c, "ratio": ratio})
        fmt = lambda v: "n/a" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.2f}")
        print(f"| {label} | {fmt(s)} | {fmt(c)} | {'n/a' if ratio is None else f'{ratio:.2f}×'} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"table": table, "raw": results}, indent=2))


if __name__ == "__main__":
    main()
