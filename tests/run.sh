#!/usr/bin/env bash
# Switchboard's whole test run — the README's test command, and what CI runs.
# On a fresh machine it installs everything it needs itself: Debian's chromium (browser test),
# systemd (systemd-analyze, for the install test), pebble (ACME test server), coturn (its
# TURN/STUN client tools),
# a Python venv with Autobahn|Python (interop), npm packages (Autobahn|JS, playwright-core),
# and a private Python 2.7 with the Autobahn Testsuite (WebSocket conformance).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "system packages (chromium for the browser test, systemd-analyze for the install test, pebble for the ACME test)"
bash tests/browser/install-chromium.sh
bash tests/tools/install-systemd-analyze.sh
bash tests/tools/install-pebble.sh
bash tests/tools/install-coturn.sh

# One build per run: incremental caches would only fill the disk.
export CARGO_INCREMENTAL=0

step "formatting and lints"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings

step "Rust unit and integration tests"
cargo test --locked

step "fuzz smoke: every cargo-fuzz target for ${FUZZ_SECS:-10} s (tests/tools/fuzz-smoke.sh)"
bash tests/tools/fuzz-smoke.sh

step "Python venv for the interop tests"
if [ ! -x .venv/bin/pytest ] || ! cmp -s tests/interop/requirements.txt .venv/.requirements; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
    cp tests/interop/requirements.txt .venv/.requirements
fi

step "interop and conformance: Autobahn|Python, Autobahn|JS, Chromium, Autobahn Testsuite"
export SWITCHBOARD_BIN="$PWD/target/debug/switchboard"
exec .venv/bin/pytest tests/interop -p no:cacheprovider -rfE
