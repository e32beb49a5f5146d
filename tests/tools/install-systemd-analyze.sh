#!/usr/bin/env bash
# Install Debian's systemd package for `systemd-analyze` (the install test verifies the unit that
# install.sh writes), if it is not there yet. Only the tool is used: systemd need not be running.
# Idempotent: does nothing when systemd-analyze already exists.
set -euo pipefail

if command -v systemd-analyze >/dev/null; then
    echo "systemd-analyze already installed: $(systemd-analyze --version | head -1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends systemd >/dev/null

if ! command -v systemd-analyze >/dev/null; then
    echo "install-systemd-analyze.sh: apt-get finished but systemd-analyze is missing" >&2
    exit 1
fi
echo "systemd-analyze installed: $(systemd-analyze --version | head -1)"
