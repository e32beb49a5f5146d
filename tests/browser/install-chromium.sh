#!/usr/bin/env bash
# Install Debian's Chromium for the browser test (and coturn's client utilities for the STUN
# interop test), if they are not there yet.
# Idempotent: does nothing when /usr/bin/chromium already exists.
set -euo pipefail

# coturn's client utilities (turnutils_stunclient) for the STUN interop test.
if [ ! -x /usr/bin/turnutils_stunclient ]; then
    SUDO_C=""
    [ "$(id -u)" -ne 0 ] && SUDO_C="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO_C apt-get update -qq
    $SUDO_C apt-get install -y -qq --no-install-recommends coturn >/dev/null
fi

if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo '/usr/bin/chromium')"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
# fonts-liberation gives readable text in screenshots; optional.
$SUDO apt-get install -y -qq --no-install-recommends fonts-liberation >/dev/null 2>&1 || true

if [ ! -x /usr/bin/chromium ]; then
    echo "install-chromium.sh: apt-get finished but /usr/bin/chromium is missing" >&2
    exit 1
fi
echo "chromium installed: $(/usr/bin/chromium --version 2>/dev/null || echo '/usr/bin/chromium')"
