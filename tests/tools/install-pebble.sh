#!/usr/bin/env bash
# Install Debian's pebble (Let's Encrypt's ACME test server, with pebble-challtestsrv for mock
# DNS) for the ACME end-to-end test, if it is not there yet. Idempotent.
set -euo pipefail

if command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null; then
    echo "pebble already installed: $(dpkg-query -W -f='${Version}' pebble 2>/dev/null || echo '?')"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends pebble >/dev/null

if ! command -v pebble >/dev/null; then
    echo "install-pebble.sh: apt-get finished but pebble is missing" >&2
    exit 1
fi
echo "pebble installed: $(dpkg-query -W -f='${Version}' pebble)"
