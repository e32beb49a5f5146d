#!/usr/bin/env bash
# Provide `wstest` (Autobahn Testsuite, Python 2.7 code) on Debian 12.
#
# Debian 12 has no Python 2.7, so CPython 2.7.18 is taken from Debian 11
# (bullseye) packages, fetched with a PRIVATE apt configuration (the system's
# sources, package lists and dpkg status are never touched) and unpacked with
# `dpkg-deb -x` into a private root. pip is bootstrapped from wheels fetched by
# Python 3, then autobahntestsuite and a pinned, known-good set of dependencies
# are installed into that root.
#
# Result: ${SWITCHBOARD_TOOLS:-$HOME/.cache/switchboard-tools}/wstest/bin/wstest
# (a wrapper that sets the environment and runs wstest). Idempotent: a stamp
# file makes a re-run return at once. Needs: apt-get, dpkg-deb, python3 (pip
# optional), a C compiler (wsaccel, ujson), and access to a Debian mirror and PyPI.
#
# Environment:
#   SWITCHBOARD_TOOLS         cache root (default ~/.cache/switchboard-tools)
#   SWITCHBOARD_DEBIAN_MIRROR Debian mirror URL (default: from the system's apt
#                             sources, else http://deb.debian.org/debian)
#   WSTEST_REINSTALL=1        ignore the stamp and install again
set -euo pipefail

TOOLS="${SWITCHBOARD_TOOLS:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.cache/switchboard-tools}"
DEST="$TOOLS/wstest"
ROOT="$DEST/root"
WRAPPER="$DEST/bin/wstest"
STAMP="$DEST/.installed"
DL="$TOOLS/wstest-downloads"   # kept across reinstalls (debs, wheels)

PY27_VERSION="2.7.18-8+deb11u1"
DEBS=(
  "python2.7=$PY27_VERSION"
  "python2.7-minimal=$PY27_VERSION"
  "libpython2.7=$PY27_VERSION"
  "libpython2.7-minimal=$PY27_VERSION"
  "libpython2.7-stdlib=$PY27_VERSION"
  "libpython2.7-dev=$PY27_VERSION"
  "python2.7-dev=$PY27_VERSION"
  "libssl1.1=1.1.1w-0+deb11u1"
  "libffi7=3.3-6"
)
BOOTSTRAP=(pip==20.3.4 setuptools==44.1.1 wheel==0.37.1)
# Known-good set (see shared design notes, "Autobahn Testsuite").
# autobahntestsuite itself pins setuptools==44.0.0.
PINS=(
  autobahntestsuite==25.10.1 autobahn==0.10.9 Twisted==19.10.0 txaio==2.1.0
  cryptography==3.3.2 pyOpenSSL==19.1.0 service-identity==18.1.0 klein==17.10.0
  Werkzeug==1.0.1 Jinja2==2.11.3 MarkupSafe==1.1.1 zope.interface==4.6.0
  Automat==22.10.0 attrs==21.4.0 hyperlink==21.0.0 idna==2.10 incremental==16.10.1
  constantly==15.1.0 six==1.16.0 cffi==1.15.1 pycparser==2.21 enum34==1.1.10
  ipaddress==1.0.23 pyasn1==0.5.1 pyasn1-modules==0.3.0 PyHamcrest==1.10.1
  typing==3.10.0.0 ujson==2.0.3 wsaccel==0.6.6 unittest2==1.1.0 linecache2==1.0.0
  traceback2==1.4.0 setuptools==44.0.0
)
# The stamp holds the recipe: changing any pin triggers a reinstall.
RECIPE="v1 ${DEBS[*]} ${BOOTSTRAP[*]} ${PINS[*]}"

STEP="starting"
say() { STEP="$*"; echo "install-wstest: $*"; }
die() { echo "install-wstest: ERROR: $*" >&2; exit 1; }

installed() {
  [[ -x "$WRAPPER" && -f "$STAMP" && "$(cat "$STAMP" 2>/dev/null)" == "$RECIPE" ]]
}

if [[ "${WSTEST_REINSTALL:-0}" != 1 ]] && installed; then
  say "wstest ready: $WRAPPER"
  exit 0
fi

mkdir -p "$TOOLS" || die "cannot create $TOOLS"
# Serialise concurrent installs (e.g. parallel test runs).
exec 9>"$TOOLS/.wstest.lock"
if command -v flock >/dev/null; then
  flock -w 900 9 || die "timed out waiting for another install (lock $TOOLS/.wstest.lock)"
fi
if [[ "${WSTEST_REINSTALL:-0}" != 1 ]] && installed; then
  say "wstest ready: $WRAPPER"
  exit 0
fi

[[ "$(uname -m)" == x86_64 ]] || die "only x86_64 is supported (got $(uname -m))"
for tool in apt-get dpkg-deb python3; do
  command -v "$tool" >/dev/null || die "'$tool' not found"
done
command -v cc >/dev/null || command -v gcc >/dev/null \
  || die "no C compiler (cc/gcc) found; needed to build wsaccel and ujson (apt-get install gcc)"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r "$KEYRING" ]] || die "$KEYRING missing (package debian-archive-keyring)"

LOG="$TOOLS/wstest-install.log"
: >"$LOG"
# run CMD...: run quietly, output to the log; on failure show its tail and exit.
run() {
  echo "+ $*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    {
      echo "install-wstest: ERROR: step failed: $STEP"
      echo "install-wstest: command: $1 ... ${*: -1}; full log: $LOG"
      echo "---- last lines of the log ----"
      tail -n 15 "$LOG"
    } >&2
    exit 1
  fi
}

# ---------------------------------------------------------------- mirror ----
# First Debian archive URI (not debian-security, not a third-party repo) in the
# system's apt sources, in either one-line (.list) or deb822 (.sources) format.
discover_mirror() {
  local f uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r "$f" ]] || continue
    uri=$(sed -E 's/#.*//; s/\[[^]]*\]//' "$f" \
      | awk '$1 == "deb" && $2 ~ /^https?:\/\// && $2 ~ /\/debian\/?$/ { print $2; exit }')
    [[ -n "$uri" ]] && { echo "${uri%/}"; return; }
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r "$f" ]] || continue
    uri=$(sed -E 's/#.*//' "$f" | awk 'tolower($1) == "uris:" {
        for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\// && $i ~ /\/debian\/?$/) { print $i; exit } }')
    [[ -n "$uri" ]] && { echo "${uri%/}"; return; }
  done
}
MIRROR="${SWITCHBOARD_DEBIAN_MIRROR:-$(discover_mirror || true)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

# ------------------------------------------------------- python 2.7 debs ----
say "fetching CPython $PY27_VERSION (Debian bullseye, mirror $MIRROR)"
APTDIR="$DL/apt"
mkdir -p "$APTDIR/etc/sources.list.d" "$APTDIR/etc/preferences.d" \
  "$APTDIR/state/lists/partial" "$APTDIR/cache/archives/partial" "$DL/debs"
: >"$APTDIR/state/status"
echo "deb [signed-by=$KEYRING] $MIRROR bullseye main" >"$APTDIR/etc/sources.list"
APT_OPTS=(
  -o "Dir::Etc::sourcelist=$APTDIR/etc/sources.list"
  -o "Dir::Etc::sourceparts=$APTDIR/etc/sources.list.d"
  -o "Dir::Etc::preferences=$APTDIR/etc/preferences"
  -o "Dir::Etc::preferencesparts=$APTDIR/etc/preferences.d"
  -o "Dir::State=$APTDIR/state"
  -o "Dir::State::status=$APTDIR/state/status"
  -o "Dir::Cache=$APTDIR/cache"
  -o "APT::Sandbox::User=root"
  -o "Acquire::Languages=none"
  -o "Acquire::Retries=3"
  -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
  -q
)
have_debs=1
for spec in "${DEBS[@]}"; do
  name=${spec%%=*} ver=${spec#*=}
  ls "$DL/debs/${name}_${ver//:/%3a}_"*.deb >/dev/null 2>&1 || have_debs=0
done
if [[ $have_debs == 0 ]]; then
  run apt-get "${APT_OPTS[@]}" --error-on=any update
  (cd "$DL/debs" && run apt-get "${APT_OPTS[@]}" download "${DEBS[@]}")
fi

say "unpacking into $ROOT"
rm -rf "$DEST"
mkdir -p "$ROOT" "$DEST/bin"
for spec in "${DEBS[@]}"; do
  name=${spec%%=*} ver=${spec#*=}
  deb=$(ls "$DL/debs/${name}_${ver//:/%3a}_"*.deb | head -n 1)
  run dpkg-deb -x "$deb" "$ROOT"
done

PY="$ROOT/usr/bin/python2.7"
[[ -x "$PY" ]] || die "python2.7 missing after unpacking"
LIBDIR="$ROOT/usr/lib/x86_64-linux-gnu"
py27() {
  env -u PYTHONPATH -u PYTHONSTARTUP PYTHONNOUSERSITE=1 \
    LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONHOME="$ROOT/usr" \
    "$PY" "$@"
}
run py27 -c 'import ssl, ctypes, zlib, hashlib; print(ssl.OPENSSL_VERSION)'

# ---------------------------------------------------------- pip bootstrap ----
say "bootstrapping pip for Python 2.7"
WHEELS="$DL/wheels"
mkdir -p "$WHEELS"
have_wheels=1
for w in "${BOOTSTRAP[@]}"; do
  ls "$WHEELS/${w%%==*}-${w#*==}-"*.whl >/dev/null 2>&1 || have_wheels=0
done
if [[ $have_wheels == 0 ]]; then
  if python3 -m pip --version >/dev/null 2>&1; then
    run python3 -m pip download --no-deps --only-binary=:all: --python-version 2.7 \
      -d "$WHEELS" "${BOOTSTRAP[@]}"
  else
    # No pip for python3: fetch the universal wheels from the package index's
    # simple API (what pip itself reads), checking their sha256.
    run python3 - "$WHEELS" "${BOOTSTRAP[@]}" <<'EOF'
import hashlib, os, re, sys, urllib.parse, urllib.request
index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/") + "/"
dest = sys.argv[1]
for spec in sys.argv[2:]:
    name, version = spec.split("==")
    page_url = urllib.parse.urljoin(index, name.lower() + "/")
    with urllib.request.urlopen(page_url, timeout=60) as r:
        page = r.read().decode("utf-8", "replace")
    want = re.compile(r"^%s-%s-py2(\.py3)?-none-any\.whl$" % (re.escape(name), re.escape(version)))
    for href in re.findall(r'href="([^"]+)"', page):
        url, _, frag = urllib.parse.urljoin(page_url, href.replace("&amp;", "&")).partition("#")
        fname = urllib.parse.unquote(url.rsplit("/", 1)[-1])
        if want.match(fname):
            break
    else:
        sys.exit("no universal wheel %s==%s at %s" % (name, version, page_url))
    with urllib.request.urlopen(url, timeout=120) as r:
        data = r.read()
    m = re.search(r"sha256=([0-9a-f]{64})", frag)
    if m and hashlib.sha256(data).hexdigest() != m.group(1):
        sys.exit("sha256 mismatch for " + fname)
    with open(os.path.join(dest, fname), "wb") as f:
        f.write(data)
    print("downloaded", fname)
EOF
  fi
fi
PIPWHL=$(ls "$WHEELS"/pip-20.3.4-*.whl | head -n 1)
run py27 "$PIPWHL/pip" install --no-index --find-links "$WHEELS" --no-warn-script-location \
  "${BOOTSTRAP[@]}"
run py27 -m pip --version

# ---------------------------------------------------- autobahntestsuite ----
say "installing autobahntestsuite and pinned dependencies (builds wsaccel, ujson)"
export CFLAGS="-I$ROOT/usr/include/python2.7 -I$ROOT/usr/include -I$ROOT/usr/include/x86_64-linux-gnu/python2.7 ${CFLAGS:-}"
export LDFLAGS="-L$LIBDIR ${LDFLAGS:-}"
export PIP_CACHE_DIR="$DL/pip-cache"
run py27 -m pip install --no-warn-script-location "${PINS[@]}"

# Locate the installed console script (Debian's python installs under
# <prefix>/local/bin; be tolerant of other schemes).
SCRIPT=""
for c in "$ROOT/usr/local/bin/wstest" "$ROOT/usr/bin/wstest"; do
  [[ -f "$c" ]] && { SCRIPT="$c"; break; }
done
[[ -n "$SCRIPT" ]] || die "wstest script not found under $ROOT after pip install"

cat >"$WRAPPER" <<EOF
#!/bin/sh
# Generated by tests/tools/install-wstest.sh: runs wstest on the private Python 2.7.
ROOT='$ROOT'
unset PYTHONPATH PYTHONSTARTUP
export PYTHONNOUSERSITE=1 PYTHONHOME="\$ROOT/usr"
export LD_LIBRARY_PATH="\$ROOT/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "\$ROOT/usr/bin/python2.7" '$SCRIPT' "\$@"
EOF
chmod +x "$WRAPPER"

say "checking wstest"
run "$WRAPPER" --help
run py27 -c 'import wsaccel, ujson, twisted, autobahn, autobahntestsuite; print(autobahn.__version__)'

printf '%s' "$RECIPE" >"$STAMP"
say "wstest ready: $WRAPPER"
