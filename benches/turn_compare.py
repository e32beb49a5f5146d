#!/usr/bin/env python3
"""Switchboard's built-in TURN relay against coturn (`turnserver`), same load, same machine.

Each server runs alone on loopback with REST credentials (`--use-auth-secret`) and loopback
peers allowed (the peer is coturn's `turnutils_peer`, an echo on 127.0.0.1). The load is
coturn's own `turnutils_uclient`: -m clients each sending -n messages of -l bytes through
channels, every -z ms; the peer echoes each one, so every message crosses the relay twice.

Printed per server and message size: messages delivered back to the clients per second (wall
clock), the server's CPU seconds (the run time of all its threads from /proc/PID/task/*/schedstat,
in nanoseconds, before/after; utime+stime from /proc/PID/stat where that is missing) and
delivered messages per server CPU-second — and the ratio Switchboard/coturn. With --rounds N the
two servers take turns N times (coturn first in rounds 1, 3, 5…, Switchboard first in the
others, each started afresh), every round's ratio is printed and then the median and range of
the ratios.
Also the servers' idle RSS (VmRSS after start, no allocations) and what TURN adds to
Switchboard's idle RSS (the same binary started without TURN), and an estimate of the relayed
calls one core holds at 1.5 Mbit/s.

Usage: benches/turn_compare.py [--switchboard target/release/switchboard] [--clients 20]
       [--messages 3000] [--interval-ms 2] [--sizes 120,1000] [--rounds 1] [--tcp]
Needs Debian's coturn package (tests/tools/install-coturn.sh). Build with
`cargo build --release` first. Numbers from a shared 2-core machine are noisy: use several
rounds, and run it more than once.
"""

import argparse
import glob
import os
import re
import shutil
import socket
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

SECRET = "bench-secret"
REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


def cpu_seconds(pid):
    """CPU time of all of the process's threads: schedstat's nanoseconds (threads that ended are
    not counted: the servers' threads live as long as they do), else utime+stime in ticks."""
    total, seen = 0, False
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
                seen = True
        except (OSError, ValueError, IndexError):
            pass
    if seen:
        return total / 1e9
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime 15.
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_udp_ready(port, timeout=15):
    """Waits until a STUN Binding request on `port` is answered."""
    req = bytes([0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]) + os.urandom(12)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            s.sendto(req, ("127.0.0.1", port))
            try:
                s.recvfrom(2048)
                return
            except OSError:
                pass
        raise RuntimeError(f"nothing answers STUN on {port}")
    finally:
        s.close()


def start_coturn(port, tmp):
    args = [shutil.which("turnserver") or "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls",
            "-L", "127.0.0.1", "-E", "127.0.0.1", "-p", str(port), "--allow-loopback-peers",
            "--use-auth-secret", "--static-auth-secret", SECRET, "-r", "switchboard",
            "--min-port", "50000", "--max-port", "59999", "--no-stdout-log",
            "--log-file", os.path.join(tmp, "coturn.log"), "--simple-log",
            "--pidfile", os.path.join(tmp, "coturn.pid")]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_switchboard(binary, port, tmp, turn=True):
    args = [binary, "--listen", "127.0.0.1:0", "--data-dir", tempfile.mkdtemp(dir=tmp)]
    if turn:
        args += ["--turn-listen", f"127.0.0.1:{port}", "--turn-secret", SECRET,
                 "--turn-allow-loopback-peers", "--turn-relay-ports", "50000-59999",
                 "--turn-max-bps", "0", "--turn-total-quota", "100000",
                 "--turn-user-quota", "100000"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_load(port, peer_port, clients, messages, size, interval, tcp=False):
    cmd = ["turnutils_uclient", "-W", SECRET, "-u", "bench", "-p", str(port), "-e", "127.0.0.1",
           "-r", str(peer_port), "-m", str(clients), "-n", str(messages), "-l", str(size),
           "-z", str(interval), "-c", "127.0.0.1"] + (["-t"] if tcp else [])
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.time() - t0
    out = r.stdout + r.stderr
    m = re.findall(r"tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", out)
    lost = re.search(r"Total lost packets (\d+) \(([\d.]+)%\)", out)
    t = re.search(r"Total transmit time is (\d+)", out)
    if not m:
        raise RuntimeError("uclient reported nothing:\n" + out[-2000:])
    sent, recv = map(int, m[-1])
    return {"sent": sent, "recv": recv, "wall": wall,
            "transmit_s": int(t.group(1)) if t else None,
            "lost_pct": float(lost.group(2)) if lost else None}


def measure(name, size, peer_port, args, tmp):
    """One load of `size`-byte messages on a freshly started server (uclient leaves its
    allocations behind, and a later uclient on the same ports would meet them): its idle RSS
    and the row of figures."""
    port = free_port()
    proc = start_coturn(port, tmp) if name == "coturn" else \
        start_switchboard(args.switchboard, port, tmp)
    try:
        wait_udp_ready(port)
        time.sleep(1.0)
        idle = rss_kib(proc.pid)
        c0 = cpu_seconds(proc.pid)
        r = run_load(port, peer_port, args.clients, args.messages, size, args.interval_ms,
                     args.tcp)
        c1 = cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    r["cpu"] = c1 - c0
    r["size"] = size
    r["per_cpu"] = r["recv"] / r["cpu"] if r["cpu"] > 0 else float("inf")
    r["per_s"] = r["recv"] / r["wall"]
    print(f"  {name:11} {size:5d} B: {r['recv']:7d}/{r['sent']:7d} delivered "
          f"(lost {r['lost_pct']}%), {r['per_s']:9.0f} msg/s wall, server CPU "
          f"{r['cpu']:6.2f} s → {r['per_cpu']:9.0f} msg per CPU-s", flush=True)
    return idle, r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--switchboard", default=str(REPO / "target/release/switchboard"))
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--interval-ms", type=int, default=2)
    ap.add_argument("--sizes", default="120,1000")
    ap.add_argument("--tcp", action="store_true",
                    help="clients reach the relay over TCP (uclient -t); peers stay on UDP")
    ap.add_argument("--rounds", type=int, default=1,
                    help="turns each server takes (alternating who goes first)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    for tool in ("turnserver", "turnutils_uclient", "turnutils_peer"):
        if not shutil.which(tool):
            sys.exit(f"{tool} missing: bash tests/tools/install-coturn.sh")
    tmp = tempfile.mkdtemp(prefix="turn-bench-")
    peer_port = free_port()
    peer = subprocess.Popen(["turnutils_peer", "-p", str(peer_port), "-L", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = {"coturn": {}, "switchboard": {}}  # name → size → rows, one per round
    idle = {}
    try:
        print(f"load: turnutils_uclient -m {args.clients} -n {args.messages} -z {args.interval_ms} "
              f"-c (channels), echo peer turnutils_peer; sizes {sizes}; {args.rounds} round(s)",
              flush=True)
        # Switchboard's idle RSS without TURN, for what TURN adds.
        p = start_switchboard(args.switchboard, 0, tmp, turn=False)
        time.sleep(2.0)
        sb_plain = rss_kib(p.pid)
        p.terminate()
        p.wait(timeout=10)
        for r in range(args.rounds):
            order = ("coturn", "switchboard") if r % 2 == 0 else ("switchboard", "coturn")
            if args.rounds > 1:
                print(f"round {r + 1}:", flush=True)
            for size in sizes:
                for name in order:
                    rss, row = measure(name, size, peer_port, args, tmp)
                    idle.setdefault(name, rss)
                    runs[name].setdefault(size, []).append(row)
                if args.rounds > 1:
                    c, s = runs["coturn"][size][-1], runs["switchboard"][size][-1]
                    print(f"  {size:5d} B ratio {s['per_cpu'] / c['per_cpu']:.2f}×", flush=True)
    finally:
        peer.terminate()
        peer.wait(timeout=10)
    c_idle, s_idle = idle["coturn"], idle["switchboard"]
    print()
    print(f"idle RSS: coturn {c_idle / 1024:.1f} MiB, switchboard with TURN {s_idle / 1024:.1f} MiB, "
          f"without TURN {sb_plain / 1024:.1f} MiB → TURN adds {(s_idle - sb_plain) / 1024:.2f} MiB")
    med = statistics.median
    c_rows, s_rows = [], []
    for size in sizes:
        cs = [row["per_cpu"] for row in runs["coturn"][size]]
        ss = [row["per_cpu"] for row in runs["switchboard"][size]]
        ratios = [s / c for c, s in zip(cs, ss)]
        cw = [row["per_s"] for row in runs["coturn"][size]]
        sw = [row["per_s"] for row in runs["switchboard"][size]]
        if len(ratios) == 1:
            print(f"{size:5d} B: delivered msg per server CPU-s: coturn {cs[0]:.0f}, "
                  f"switchboard {ss[0]:.0f} → ratio {ratios[0]:.2f}×; "
                  f"msg/s wall: coturn {cw[0]:.0f}, switchboard {sw[0]:.0f}")
        else:
            print(f"{size:5d} B: delivered msg per server CPU-s, median (range) of {len(ratios)}: "
                  f"coturn {med(cs):.0f} ({min(cs):.0f}–{max(cs):.0f}), switchboard {med(ss):.0f} "
                  f"({min(ss):.0f}–{max(ss):.0f}) → ratio {med(ratios):.2f}× "
                  f"({min(ratios):.2f}–{max(ratios):.2f}); msg/s wall: coturn {med(cw):.0f}, "
                  f"switchboard {med(sw):.0f}")
        c_rows.append({"size": size, "per_cpu": med(cs)})
        s_rows.append({"size": size, "per_cpu": med(ss)})
    # A relayed call: two participants at 1.5 Mbit/s each way, ~1000-byte packets → each
    # direction 1.5e6/8/1000 ≈ 188 packets/s; through the relay both ways = 375 packets/s
    # relayed, i.e. 188 uclient round trips (each delivered message is two relayed packets).
    big = [(c, s) for c, s in zip(c_rows, s_rows) if c["size"] >= 1000] or list(zip(c_rows, s_rows))
    c, s = big[-1]
    per_call = 1.5e6 / 8 / c["size"]  # delivered messages (round trips) per second per call
    print(f"one core at 1.5 Mbit/s per participant ({c['size']} B packets): "
          f"coturn ≈ {c['per_cpu'] / per_call:.0f} calls, switchboard ≈ {s['per_cpu'] / per_call:.0f} calls")


if __name__ == "__main__":
    main()
