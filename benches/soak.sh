#!/usr/bin/env bash
# Bounded soak: a release server under mixed load for N minutes — durable chat sends, pub/sub
# fan-out, RPC, and connect/subscribe/publish/disconnect churn, all from `switchboard bench`
# at once — sampling the server's RSS and open file descriptors every few seconds. Prints a
# table and a verdict on growth after the warm-up, then checks that the descriptors return to
# the idle count once the load has stopped.
#
#   benches/soak.sh [MINUTES]       (default 5; env: INTERVAL=5 seconds, WARMUP=120 seconds,
#                                    PORT=18480, BIN=target/release/switchboard,
#                                    LOADS="chat fanout rpc churn" — leave one out to tell
#                                    whose growth it is, SERVER_ARGS="--cache-mb 4" — extra
#                                    server flags, PREFILL_SECS=60 — durable chat as fast as it
#                                    goes before sampling, so sled's page cache has reached its
#                                    bound: a cache filling up is warm-up, not growth; 0: none)
#
# Loopback only; every load process is bounded by its duration and --max-secs, and the server
# and loads are stopped by pid when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-5}"
INTERVAL="${INTERVAL:-5}"
WARMUP="${WARMUP:-120}"
PREFILL_SECS="${PREFILL_SECS:-60}"
PORT="${PORT:-18480}"
LOADS="${LOADS:-chat fanout rpc churn}"
BIN="${BIN:-target/release/switchboard}"
DURATION=$((MINUTES * 60))
[ -x "$BIN" ] || cargo build --release --locked

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
"$BIN" --listen "127.0.0.1:$PORT" --data-dir "$work/data" --chat-messages-per-minute 1000000 ${SERVER_ARGS:-} \
    >"$work/server.out" 2>"$work/server.err" &
server=$!
for _ in $(seq 100); do grep -q "listening" "$work/server.out" 2>/dev/null && break; sleep 0.1; done
grep -q "listening" "$work/server.out" || { cat "$work/server.err"; exit 1; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$server/status"; }
fds() { find "/proc/$server/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
threads() { awk '/^Threads:/ {print $2}' "/proc/$server/status"; }

idle_fds=$(fds)
idle_rss=$(rss_kib)
url="ws://127.0.0.1:$PORT"
if [ "$PREFILL_SECS" -gt 0 ]; then
    echo "prefill: ${PREFILL_SECS} s of durable chat messages as fast as they are acknowledged"
    "$BIN" bench chat --url "$url/chat" -n 50 -r 0 -t "$PREFILL_SECS" --pid "$server" \
        --max-secs $((PREFILL_SECS + 60)) >"$work/prefill.log" 2>&1 || true
    grep -E "^chat:" "$work/prefill.log" || true
    echo "after prefill: RSS $(($(rss_kib) / 1024)) MiB"
fi
common=(--pid "$server" --max-secs $((DURATION + 60)))
# Rates are chosen so that the loads together keep both cores busy but not saturated.
load() { case " $LOADS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
if load chat; then
    "$BIN" bench chat --url "$url/chat" -n 20 -r 100 -t "$DURATION" "${common[@]}" --json "$work/chat.json" >"$work/chat.log" 2>&1 &
    pids+=($!)
fi
if load fanout; then
    "$BIN" bench fanout --url "$url/ws" -s 100 -p 2 -r 100 -t "$DURATION" "${common[@]}" --json "$work/fanout.json" >"$work/fanout.log" 2>&1 &
    pids+=($!)
fi
if load rpc; then
    "$BIN" bench rpc --url "$url/ws" -k 2 -c 2 -w 1 -t "$DURATION" "${common[@]}" --json "$work/rpc.json" >"$work/rpc.log" 2>&1 &
    pids+=($!)
fi
if load churn; then
    "$BIN" bench churn --url "$url/ws" -c 2 -t "$DURATION" "${common[@]}" --json "$work/churn.json" >"$work/churn.log" 2>&1 &
    pids+=($!)
fi

printf 'soak: %s min of [%s] against %s (pid %s); idle: %s KiB RSS, %s fds\n' \
    "$MINUTES" "$LOADS" "$BIN" "$server" "$idle_rss" "$idle_fds"
printf '%8s %12s %8s %8s\n' "t (s)" "RSS (MiB)" "fds" "threads"
samples="$work/samples"
start=$(date +%s)
while :; do
    t=$(($(date +%s) - start))
    [ "$t" -gt "$DURATION" ] && break
    kill -0 "$server" 2>/dev/null || { echo "server died"; cat "$work/server.err" | tail -20; exit 1; }
    r=$(rss_kib); f=$(fds); th=$(threads)
    echo "$t $r $f $th" >>"$samples"
    printf '%8s %12s %8s %8s\n' "$t" "$(awk -v r="$r" 'BEGIN { printf "%.1f", r / 1024 }')" "$f" "$th"
    sleep "$INTERVAL"
done
for p in "${pids[@]}"; do wait "$p" || echo "a load process exited with $?"; done
pids=()
sleep 5
after_fds=$(fds)
after_rss=$(rss_kib)

echo
for s in $LOADS; do
    echo "--- $s"; tail -n 6 "$work/$s.log"
done
echo
awk -v warm="$WARMUP" -v idle_fds="$idle_fds" -v after_fds="$after_fds" -v after_rss="$after_rss" '
    $1 >= warm { n++; t[n] = $1; r[n] = $2; f[n] = $3 }
    END {
        if (n < 6) { print "verdict: too few samples after the warm-up"; exit 2 }
        k = int(n / 3)
        for (i = 1; i <= k; i++) { a += r[i]; fa += f[i] }
        for (i = n - k + 1; i <= n; i++) { b += r[i]; fb += f[i] }
        a /= k; b /= k; fa /= k; fb /= k
        # least-squares slope of RSS over time after the warm-up, in KiB per minute
        for (i = 1; i <= n; i++) { st += t[i]; sr += r[i] }
        mt = st / n; mr = sr / n
        for (i = 1; i <= n; i++) { num += (t[i] - mt) * (r[i] - mr); den += (t[i] - mt) ^ 2 }
        slope = den > 0 ? num / den * 60 : 0
        growth = b - a
        printf "after warm-up (%d s): RSS first third %.1f MiB, last third %.1f MiB (%+.1f MiB, %+.1f%%), trend %+.0f KiB/min\n", warm, a / 1024, b / 1024, growth / 1024, 100 * growth / a, slope
        printf "fds under load: first third %.0f, last third %.0f; idle before %d, 5 s after the load %d; RSS after the load %.1f MiB\n", fa, fb, idle_fds, after_fds, after_rss / 1024
        ok = (growth < 2048 || growth < 0.05 * a) && after_fds <= idle_fds + 2
        print (ok ? "verdict: no growth (RSS within max(2 MiB, 5%) after warm-up, descriptors back to idle)" : "verdict: GROWTH — investigate")
        exit ok ? 0 : 1
    }' "$samples"
