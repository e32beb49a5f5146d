#!/usr/bin/env bash
# Install Debian's coturn package for its client tools (turnutils_stunclient, turnutils_uclient,
# turnutils_peer: the STUN/TURN interop tests) and turnserver (benches/turn_compare.sh), if they
# are not there yet. Idempotent.
set -euo pipefail

if command -v turnutils_uclient >/dev/null && command -v turnserver >/dev/null; then
    echo "coturn already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends coturn >/dev/null

if ! command -v turnutils_uclient >/dev/null; then
    echo "install-coturn.sh: apt-get finished but turnutils_uclient is missing" >&2
    exit 1
fi
echo "coturn installed"
