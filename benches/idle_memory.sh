#!/usr/bin/env bash
# Server memory per idle subscribed session (README "Measured figures").
# Starts the release server, opens N sessions (HELLO + one SUBSCRIBE each, each on its own
# topic) with `switchboard bench connections`, reads the server's RSS from /proc before and
# while they are held, then has every session publish one message of MSG bytes and measures
# again. Usage: benches/idle_memory.sh [N] [MSG] [SERIALIZER]
# It first prints the idle RSS right after start (startup's code pages released), then runs a
# short warm-up (100 sessions that subscribe and publish) so the session-handling code is
# resident again before the measurement: what the per-session figure counts is then memory
# that grows with sessions, not code faulted back in once.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-15000}
msg=${2:-60000}
ser=${3:-json}
cargo build --release --locked --quiet
bin=target/release/switchboard
data=$(mktemp -d)
port_file=$(mktemp)
"$bin" --listen 127.0.0.1:0 --data-dir "$data" --max-message-size 1048576 >"$port_file" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$data" "$port_file"' EXIT
for _ in $(seq 100); do grep -q listening "$port_file" && break; sleep 0.1; done
addr=$(sed -n 's/^switchboard listening on http:\/\///p' "$port_file")
sleep 1
echo "idle RSS after start: $(grep VmRSS /proc/$pid/status | awk '{print $2, $3}')"
"$bin" bench connections --url "ws://$addr/ws" -n 100 --rate 1000 --hold 1 --serializer "$ser" \
    --message-bytes 100 >/dev/null
sleep 1
echo "idle RSS after a 100-session warm-up: $(grep VmRSS /proc/$pid/status | awk '{print $2, $3}')"
"$bin" bench connections --url "ws://$addr/ws" -n "$n" --rate 3000 --hold 3 --pid "$pid" \
    --serializer "$ser" --message-bytes "$msg" --json target/idle-memory.json
