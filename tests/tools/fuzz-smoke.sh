#!/usr/bin/env bash
# Fuzz smoke test: builds the fuzz crate (fuzz/, its own workspace) and runs every target for a
# bounded time (FUZZ_SECS, default 10 s each) from its seed corpus. A crash fails the run and
# leaves the input in fuzz/artifacts/<target>/. Longer runs: see README "Fuzzing".
#
# cargo-fuzz needs nightly-only flags; on the stable toolchain RUSTC_BOOTSTRAP=1 allows them.
# The build uses no sanitizer (the crate forbids unsafe code; libFuzzer's coverage guidance and
# Rust's own checks, with debug assertions on, find the panics) and the dev profile, which
# compiles in about half the time of an optimised build. The build is kept outside the clone
# (FUZZ_TARGET_DIR, default ~/.cache/switchboard-tools/fuzz-target), like the other test tools:
# the first run on a machine builds every dependency (about 3 minutes on 2 cores), later runs
# only the switchboard crate and the targets.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECS="${FUZZ_SECS:-10}"
TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/switchboard-tools/fuzz-target}"
mkdir -p "$TARGET_DIR"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: installing it from crates.io"
    if ! cargo install --locked cargo-fuzz; then
        echo "SKIPPED: fuzz smoke — cargo-fuzz could not be installed (see the error above)"
        exit 0
    fi
fi

export RUSTC_BOOTSTRAP=1
flags=(--dev --sanitizer none --debug-assertions --target-dir "$TARGET_DIR")
cd fuzz
started=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz crate built in $(($(date +%s) - started)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in $(cargo fuzz list); do
    mkdir -p "$work/$target"
    # New inputs go to the scratch corpus (first dir); the committed seeds are only read.
    if cargo fuzz run "${flags[@]}" "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$SECS" -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$work/$target.log" 2>&1; then
        echo "fuzz $target: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target.log" | grep -o '[0-9]*$') runs in ${SECS} s, no crash"
    else
        echo "fuzz $target: FAILED"
        tail -40 "$work/$target.log"
        failed+=("$target")
    fi
done
echo "fuzz smoke done in $(($(date +%s) - started)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets that crashed: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
