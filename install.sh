#!/usr/bin/env bash
# Installs Switchboard as a systemd service on Debian or Ubuntu (any systemd Linux with useradd):
# the binary, a system user, /etc/switchboard/config.toml with generated secrets (only if there
# is none), a data directory and a hardened unit; then enables and starts the service.
#
#   sudo ./install.sh                          # build from source (cargo), install, start
#   sudo ./install.sh --binary ./switchboard   # install a binary built elsewhere
#   sudo ./install.sh --static                 # build a static binary (musl, else glibc +crt-static)
#   sudo ./install.sh --listen 0.0.0.0:80      # the generated config's public address (first install)
#   sudo ./install.sh                          # again: upgrade in place, config and data kept
#   sudo ./install.sh --uninstall [--purge]    # remove service and binary (--purge: config, data, user too)
#   ./install.sh --root /tmp/scratch --binary target/release/switchboard   # files only, into a scratch root
#
# Options:
#   --prefix DIR    the binary goes to DIR/bin/switchboard (default /usr/local)
#   --binary FILE   install FILE instead of building
#   --static        build a statically linked binary: the musl target if rustup can add it, else
#                   -C target-feature=+crt-static on the GNU target
#   --listen ADDR   public HTTP/WebSocket address of a newly generated config (default 0.0.0.0:8080;
#                   IP:PORT, [IPv6]:PORT or PORT); an existing config is never changed
#   --root DIR      install under DIR (every path prefixed): no user, ownership or systemctl
#                   actions — they are printed instead
#   --no-start      write everything, but neither enable, start nor restart the service
#   --uninstall     stop and disable the service, remove the unit and the binary; keeps the
#                   config, the data and the user unless --purge is given too
#   --purge         with --uninstall: also remove /etc/switchboard, /var/lib/switchboard and the user
set -euo pipefail

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

src_dir=$(cd "$(dirname "$0")" && pwd)
prefix=/usr/local
binary=""
root=""
static=0
listen=""
listen_given=0
no_start=0
uninstall=0
purge=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
        --binary) binary="${2:?--binary needs a file}"; shift 2 ;;
        --root) root="${2:?--root needs a directory}"; shift 2 ;;
        --listen) listen="${2:?--listen needs an address}"; listen_given=1; shift 2 ;;
        --static) static=1; shift ;;
        --no-start) no_start=1; shift ;;
        --uninstall) uninstall=1; shift ;;
        --purge) purge=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
[ "$purge" = 0 ] || [ "$uninstall" = 1 ] || die "--purge goes with --uninstall"
[ "$static" = 0 ] || [ -z "$binary" ] || die "--static builds the binary; it does not go with --binary"
case "$prefix" in /*) ;; *) die "--prefix must be an absolute path, got '$prefix'" ;; esac
prefix=${prefix%/}
if [ -n "$root" ]; then
    mkdir -p "$root"
    root=$(cd "$root" && pwd)
    [ "$root" != / ] || root=""
fi
# A relative --binary is relative to where install.sh was started, not to the source tree.
if [ -n "$binary" ]; then
    case "$binary" in /*) ;; *) binary="$PWD/$binary" ;; esac
fi

# Where things go on the target system; $root is put in front when writing.
user=switchboard
bin_path="$prefix/bin/switchboard"
conf_dir=/etc/switchboard
conf="$conf_dir/config.toml"
data_dir=/var/lib/switchboard
socket="$data_dir/backend.sock"
unit=/etc/systemd/system/switchboard.service

# In a scratch root nothing outside it is touched: system actions are printed, not run.
act() {
    if [ -n "$root" ]; then
        printf 'install.sh: would run:'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}
systemd_running() { [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

if [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo ./install.sh …), or into a scratch root with --root DIR"
fi

# ---------------------------------------------------------------------------------------------
# --uninstall [--purge]
if [ "$uninstall" = 1 ]; then
    if systemd_running; then
        systemctl disable --now switchboard.service 2>/dev/null || true
    elif [ -n "$root" ]; then
        act systemctl disable --now switchboard.service
    fi
    rm -f "$root$unit"
    [ "$purge" = 0 ] || rm -rf "$root$unit.d"
    if systemd_running; then
        systemctl daemon-reload
        systemctl reset-failed switchboard.service 2>/dev/null || true
    elif [ -n "$root" ]; then
        act systemctl daemon-reload
    fi
    rm -f "$root$bin_path" "$root$bin_path.new"
    say "removed the service ($unit) and the binary ($bin_path)"
    if [ "$purge" = 1 ]; then
        rm -rf "$root$conf_dir" "$root$data_dir"
        if [ -n "$root" ]; then
            act userdel "$user"
        elif getent passwd "$user" >/dev/null; then
            userdel "$user"
        fi
        if [ -z "$root" ] && getent group "$user" >/dev/null; then
            groupdel "$user"
        fi
        say "purged the config ($conf_dir), the data ($data_dir) and the user '$user'"
    else
        say "kept the config ($conf_dir), the data ($data_dir: users, chat history) and the user '$user';"
        say "remove them too with: ./install.sh --uninstall --purge"
    fi
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# The binary: given, or built here.
cargo_cmd() {
    # Under sudo, root usually has no Rust toolchain: build as the user who ran sudo.
    if command -v cargo >/dev/null; then
        cargo "$@"
    elif [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        local home
        home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        [ -x "$home/.cargo/bin/cargo" ] || die "cargo not found (for root nor $SUDO_USER): install Rust, or pass --binary FILE"
        runuser -u "$SUDO_USER" -- env HOME="$home" PATH="$home/.cargo/bin:$PATH" ${RUSTFLAGS:+RUSTFLAGS="$RUSTFLAGS"} cargo "$@"
    else
        die "cargo not found: install Rust (rustup), or build elsewhere and pass --binary FILE"
    fi
}
rustup_cmd() {
    if command -v rustup >/dev/null; then
        rustup "$@"
    elif [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        local home
        home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        [ -x "$home/.cargo/bin/rustup" ] || return 1
        runuser -u "$SUDO_USER" -- env HOME="$home" PATH="$home/.cargo/bin:$PATH" rustup "$@"
    else
        return 1
    fi
}

if [ -z "$binary" ]; then
    [ -f "$src_dir/Cargo.toml" ] || die "no --binary given and no source tree next to install.sh"
    cd "$src_dir"
    if [ "$static" = 1 ]; then
        arch=$(uname -m)
        musl="$arch-unknown-linux-musl"
        gnu="$arch-unknown-linux-gnu"
        say "static build: trying the $musl target"
        # ring (TLS) compiles C: the musl target needs a musl C compiler (Debian: musl-tools).
        musl_cc=""
        if command -v "$arch-linux-musl-gcc" >/dev/null 2>&1; then
            musl_cc="$arch-linux-musl-gcc"
        elif command -v musl-gcc >/dev/null 2>&1; then
            musl_cc="musl-gcc"
        fi
        if [ -n "$musl_cc" ] &&
            { { rustup_cmd target list --installed 2>/dev/null | grep -qx "$musl"; } ||
                rustup_cmd target add "$musl"; } &&
            (export "CC_$(echo "$musl" | tr '-' '_')=$musl_cc" &&
                cargo_cmd build --release --locked --target "$musl"); then
            binary="$src_dir/target/$musl/release/switchboard"
        else
            [ -n "$musl_cc" ] || say "no musl C compiler (install musl-tools for a musl build)"
            say "the musl target is not available; building with glibc and -C target-feature=+crt-static"
            # --target keeps the flag away from build scripts and proc macros (they must stay dynamic).
            RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" cargo_cmd build --release --locked --target "$gnu"
            binary="$src_dir/target/$gnu/release/switchboard"
        fi
    else
        say "building the release binary (cargo build --release --locked)"
        cargo_cmd build --release --locked
        binary="$src_dir/target/release/switchboard"
    fi
fi
{ [ -f "$binary" ] && [ -x "$binary" ]; } || die "'$binary' is not an executable file"
version=$("$binary" --version) || die "'$binary' does not run on this machine"

# ---------------------------------------------------------------------------------------------
# The generated config.

# 32 random bytes as 64 hex digits.
secret() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

# --listen ADDR → interface and port (IP:PORT, [IPv6]:PORT, :PORT or PORT).
listen=${listen:-0.0.0.0:8080}
case "$listen" in
    \[*\]:*) listen_ip=${listen%]:*}; listen_ip=${listen_ip#[}; listen_port=${listen##*]:} ;;
    *:*:*) die "--listen: write an IPv6 address in brackets, e.g. [::]:8080" ;;
    *:*) listen_ip=${listen%:*}; listen_port=${listen##*:} ;;
    *) listen_ip=""; listen_port=$listen ;;
esac
listen_ip=${listen_ip:-0.0.0.0}
case "$listen_port" in ''|*[!0-9]*) die "--listen: '$listen' has no port number" ;; esac
{ [ "$listen_port" -ge 1 ] && [ "$listen_port" -le 65535 ]; } || die "--listen: port $listen_port is out of range"

write_config() {
    cat <<EOF
# Switchboard's node configuration (Crossbar.io style, version 2, as TOML), written by install.sh.
# install.sh never overwrites it: re-running it (an upgrade) keeps this file as it is.
# After a change: switchboard check-config $conf && systemctl restart switchboard
#
# Secrets: the visitor JWT secret and the HTTP bridge's signing secret below. The file is
# readable by root and the group '$user' only (mode 0640).
#
# Who gets in:
#   /ws       people and apps with an account in the built-in user store, by WAMP-SCRAM or
#             WAMP-CRA:  sudo -u $user $bin_path user add NAME --role staff --wampcra --data-dir $data_dir
#             (stop the service while you do: the store allows one process at a time)
#   /chat     website visitors (the chat widget), as role 'visitor'
#   /publish, /call   the HTTP bridge for back ends, signed with the key and secret below
#   $socket   back-end workers on this machine (WAMP RawSocket, role 'backend')
#   /         the status page, /admin (log in as a staff user) and /widget.js
# No transport admits anonymous clients.

version = 2

[[workers]]
type = "router"

[[workers.realms]]
name = "realm1"

# No transport below admits anonymous clients; the role is here so that doing so is a deliberate
# edit, and it may do nothing.
[[workers.realms.roles]]
name = "anonymous"

# People: the business's staff (the chat inbox) and administrators. The meta API lets them use
# /admin (which can also kill sessions). Give them your application's URIs as you need.
[[workers.realms.roles]]
name = "staff"

[[workers.realms.roles.permissions]]
uri = "wamp."
match = "prefix"
allow = { call = true, subscribe = true }

# Website visitors. Under switchboard.chat. the chat service alone decides what they may do
# (their own conversations only); nothing else is granted.
[[workers.realms.roles]]
name = "visitor"

# Back-end workers (the Unix socket) and the HTTP bridge: everything, except what the chat
# service keeps to itself.
[[workers.realms.roles]]
name = "backend"

[[workers.realms.roles.permissions]]
uri = ""
match = "prefix"
allow = { call = true, register = true, publish = true, subscribe = true }

# The public listener: HTTP (status page, /admin, /widget.js), WAMP over WebSocket, the HTTP
# bridge. For https/wss give the endpoint  tls = { certificate = "…", key = "…" }  or
# tls = { acme = true }  (see the README's "HTTPS"), or put a reverse proxy in front.
[[workers.transports]]
type = "web"

[workers.transports.endpoint]
type = "tcp"
interface = "$listen_ip"
port = $listen_port

[workers.transports.paths.ws]
type = "websocket"

[workers.transports.paths.ws.auth.scram]
type = "static"

[workers.transports.paths.ws.auth.wampcra]
type = "static"

# The chat widget logs in here with a visitor token it makes itself, or with a JWT your web app
# signs (HS256 with this secret: sub, exp; optional name, email) for a logged-in customer.
[workers.transports.paths.chat]
type = "websocket"

[workers.transports.paths.chat.auth.ticket]
type = "visitor"
role = "visitor"
jwt_hs256_secret = "$(secret)"

# HTTP bridge: POST JSON to /publish or /call, signed with this key and secret (see the README's
# "HTTP bridge"). Add  require_ip = ["127.0.0.1"]  to take requests from this machine only.
[workers.transports.paths.publish]
type = "publisher"
realm = "realm1"
role = "backend"

[workers.transports.paths.publish.options]
key = "backend"
secret = "$bridge_secret"

[workers.transports.paths.call]
type = "caller"
realm = "realm1"
role = "backend"

[workers.transports.paths.call.options]
key = "backend"
secret = "$bridge_secret"

# Back-end workers on this machine: WAMP RawSocket on a Unix socket in the data directory, as
# role 'backend' without a password. Only root and the user '$user' can reach it (the
# service creates it with mode 0700): run workers as that user or as root.
[[workers.transports]]
type = "rawsocket"

[workers.transports.endpoint]
type = "unix"
path = "$socket"

[workers.transports.auth.anonymous]
type = "static"
role = "backend"

# The live chat service (threads, messages, presence) in realm1.
[workers.chat]
realm = "realm1"
visitor_role = "visitor"
staff_roles = ["staff"]
EOF
}

write_unit() {
    cat <<EOF
# Switchboard (WAMP router and live chat). Written by install.sh, which rewrites it on every run:
# put local changes in a drop-in (systemctl edit switchboard), which it keeps.
[Unit]
Description=Switchboard: WAMP router and live chat
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
User=$user
Group=$user
ExecStart=$bin_path --config $conf --data-dir $data_dir
# systemctl reload: the config and certificates again, sessions kept; fails (and keeps the
# running config) when the new one does not load.
ExecReload=$bin_path reload --data-dir $data_dir
# SIGTERM stops it in order: clients are closed with 1001 (they reconnect), the store is flushed.
Restart=on-failure
RestartSec=2s
TimeoutStopSec=30s
LimitNOFILE=1048576

# Its own user; the only privilege is binding ports below 1024 (80, 443, 3478).
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes

# The file system is read-only for it, except the data directory.
ProtectSystem=strict
ReadWritePaths=$data_dir
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
UMask=0077

# The kernel and the rest of the system.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
EOF
}

# ---------------------------------------------------------------------------------------------
# The config: generated once, kept afterwards. Either way it must load in the new binary before
# anything is changed.
conf_new=0
if [ -e "$root$conf" ]; then
    "$binary" check-config "$root$conf" ||
        die "the existing $conf does not load in $version (above); nothing was changed"
    [ "$listen_given" = 0 ] || say "--listen $listen ignored: it applies to a new config only (edit $conf)"
    # Where it listens, for the messages below (the first tcp endpoint: the public listener).
    listen_ip=$(sed -n 's/^interface *= *"\(.*\)".*/\1/p' "$root$conf" | head -1)
    listen_port=$(sed -n 's/^port *= *\([0-9][0-9]*\).*/\1/p' "$root$conf" | head -1)
else
    bridge_secret=$(secret)
    staging=$(mktemp -d)
    trap 'rm -rf "$staging"' EXIT
    # The loader reads TOML by the file's extension.
    (umask 0137 && write_config >"$staging/config.toml")
    "$binary" check-config "$staging/config.toml" >/dev/null ||
        die "the generated config does not load (above; is --listen $listen an IP address and port?); nothing was changed"
    conf_new=1
fi

# ---------------------------------------------------------------------------------------------
# Install.
say "installing $version"

# The user and group the service runs as.
if [ -n "$root" ]; then
    act useradd --system --user-group --home-dir "$data_dir" --no-create-home \
        --shell /usr/sbin/nologin --comment "Switchboard service" "$user"
elif ! getent passwd "$user" >/dev/null; then
    useradd --system --user-group --home-dir "$data_dir" --no-create-home \
        --shell /usr/sbin/nologin --comment "Switchboard service" "$user"
    say "created the system user '$user'"
fi

# Directories: the config readable by the service's group only, the data its own.
install -d -m 0755 "$root$prefix/bin" "$root/etc/systemd/system"
install -d -m 0750 "$root$conf_dir" "$root$data_dir"
act chown "root:$user" "$conf_dir"
# Also repairs files that a command run as root (switchboard user add …) left in the data dir.
act chown -R "$user:$user" "$data_dir"

if [ "$conf_new" = 1 ]; then
    install -m 0640 "$staging/config.toml" "$root$conf_dir/.config.toml.new"
    mv -f "$root$conf_dir/.config.toml.new" "$root$conf"
    say "wrote $conf (mode 0640) with new secrets; it listens on $listen_ip:$listen_port"
else
    say "kept the existing config $conf"
fi
act chown "root:$user" "$conf"

# The binary: replaced atomically (a running service keeps the old file until it restarts).
bin_changed=0
if [ -e "$root$bin_path" ] && cmp -s "$binary" "$root$bin_path"; then
    say "$bin_path is already this binary"
else
    install -m 0755 "$binary" "$root$bin_path.new"
    mv -f "$root$bin_path.new" "$root$bin_path"
    bin_changed=1
    say "installed $bin_path"
fi

# The unit: always ours; rewritten when it differs.
unit_changed=0
if ! write_unit | cmp -s - "$root$unit" 2>/dev/null; then
    write_unit >"$root$unit.new"
    chmod 0644 "$root$unit.new"
    mv -f "$root$unit.new" "$root$unit"
    unit_changed=1
    say "wrote $unit"
fi

# ---------------------------------------------------------------------------------------------
# Start (or restart after an upgrade).
started=0
setup_link=""
if [ "$no_start" = 1 ]; then
    say "--no-start: the service was neither enabled nor (re)started"
elif [ -n "$root" ]; then
    act systemctl daemon-reload
    act systemctl enable switchboard.service
    act systemctl restart switchboard.service
elif ! systemd_running; then
    say "systemd is not running here: the service was not started (run $bin_path --config $conf --data-dir $data_dir)"
else
    probe=$listen_ip
    case "$probe" in ''|0.0.0.0) probe=127.0.0.1 ;; ::) probe=::1 ;; esac
    port_open() { [ -n "$listen_port" ] && (exec 3<>"/dev/tcp/$probe/$listen_port") 2>/dev/null; }
    systemctl daemon-reload
    systemctl enable --quiet switchboard.service
    since=$(date +%s)
    if systemctl is-active --quiet switchboard.service; then
        if [ "$bin_changed" = 1 ] || [ "$unit_changed" = 1 ]; then
            systemctl restart switchboard.service
            say "restarted the service"
        fi
    else
        # Otherwise another program's listener would pass for ours below.
        ! port_open || die "something else already listens on $probe:$listen_port (ss -ltnp); change the port in $conf or stop it"
        systemctl start switchboard.service
    fi
    # Up means: still active, and the public port accepts connections (or, when the config's
    # port cannot be read, still active after 3 s).
    for i in $(seq 50); do
        if ! systemctl is-active --quiet switchboard.service; then break; fi
        if port_open; then
            started=1
            break
        fi
        if [ -z "$listen_port" ] && [ "$i" -ge 15 ]; then
            started=1
            break
        fi
        sleep 0.2
    done
    if [ "$started" = 0 ]; then
        journalctl -u switchboard.service -n 30 --no-pager >&2 || true
        die "the service did not come up (its log is above; systemctl status switchboard)"
    fi
    say "the service is running (systemctl status switchboard; journalctl -u switchboard)"
    # A server that has no staff account yet may print a one-time setup link on start
    # ("switchboard setup: … /setup?token=…"); show it with the public address.
    if systemctl is-active --quiet switchboard.service; then
        for _ in $(seq 10); do
            token=$(journalctl -u switchboard.service -o cat --no-pager --since "@$since" 2>/dev/null |
                sed -n 's|^switchboard setup: .*/setup?token=\([0-9A-Za-z_-]*\).*|\1|p' | tail -1)
            [ -z "$token" ] || break
            sleep 0.2
        done
        [ -z "$token" ] || setup_link="/setup?token=$token"
    fi
fi

# ---------------------------------------------------------------------------------------------
# What to do next.
host=$listen_ip
case "$host" in
    0.0.0.0|::) host=$( (hostname -I 2>/dev/null || true) | awk '{print $1}'); host=${host:-$(hostname)} ;;
esac
case "$host" in *:*) host="[$host]" ;; esac
if [ -n "$setup_link" ]; then
    setup_text="First administrator: open this one-time link and create the staff account
  http://$host:$listen_port$setup_link"
else
    sudo_u="sudo -u $user"
    command -v sudo >/dev/null || sudo_u="runuser -u $user --"
    setup_text="First administrator (the store allows one process at a time, so stop the service meanwhile;
--wampcra lets the browser pages log in, which do not speak SCRAM):
  systemctl stop switchboard
  $sudo_u $bin_path user add admin --role staff --wampcra --data-dir $data_dir
  systemctl start switchboard
then log in at /admin with \"wampcra\", Auth ID admin and that password."
fi
if [ "$conf_new" = 1 ] || [ -n "$root" ]; then
    cat <<EOF

Switchboard is installed.
  Status page   http://$host:$listen_port/
  Admin view    http://$host:$listen_port/admin   (WebSocket /ws, realm realm1)
  Chat widget   <script src="http://$host:$listen_port/widget.js" async data-name="Your business"></script>
  Config        $conf     Data  $data_dir     Back-end socket  $socket

$setup_text

For https/wss put a reverse proxy in front (Caddy, nginx); Switchboard's listeners have no TLS.
Upgrade: run install.sh again. Remove: install.sh --uninstall [--purge].
EOF
else
    if [ "$bin_changed" = 1 ] || [ "$unit_changed" = 1 ]; then
        say "upgraded in place; config and data kept. Status page: http://$host:$listen_port/"
    else
        say "already up to date; config and data kept. Status page: http://$host:$listen_port/"
    fi
    [ -z "$setup_link" ] || printf '%s\n' "$setup_text"
fi
