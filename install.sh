#!/usr/bin/env bash
# Builds the release binary and installs it under a prefix.
#   ./install.sh                       # builds, installs to /usr/local/bin/switchboard
#   ./install.sh --prefix /opt/sb      # installs to /opt/sb/bin/switchboard
#   ./install.sh --binary ./switchboard --prefix /tmp/x   # installs a given binary
# Re-running upgrades in place. (Service setup — user, config, systemd unit — comes later.)
set -euo pipefail
cd "$(dirname "$0")"

prefix=/usr/local
binary=""
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --binary) binary="$2"; shift 2 ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

if [ -z "$binary" ]; then
    echo "install.sh: building the release binary (cargo build --release --locked)"
    cargo build --release --locked
    binary=target/release/switchboard
fi
[ -x "$binary" ] || { echo "install.sh: '$binary' is not an executable" >&2; exit 1; }

install -d "$prefix/bin"
install -m 0755 "$binary" "$prefix/bin/switchboard.new"
mv -f "$prefix/bin/switchboard.new" "$prefix/bin/switchboard"
echo "install.sh: installed $("$prefix/bin/switchboard" --version) at $prefix/bin/switchboard"
