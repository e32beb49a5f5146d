"""install.sh, the service installer, into a scratch root (`--root`), file by file.

It installs twice with the binary under test and checks that the second run changes nothing
(same files, modes and contents: the config and its secrets are kept); the unit passes
`systemd-analyze verify` (when systemd's tools are installed); the generated config passes
`switchboard check-config` with no warning, and a server started from it (its ports moved to
127.0.0.1:0 and its socket into a temporary directory) admits a store user by SCRAM and
WAMP-CRA on /ws, a website visitor on /chat, a local worker on the Unix socket and signed HTTP
bridge requests — and refuses anonymous clients on /ws; an upgrade replaces the binary and keeps
the config; an existing config the new binary rejects stops the upgrade before anything
changes; `--uninstall` keeps the config and data, `--uninstall --purge` removes them.

Nothing outside the scratch root is touched: in `--root` mode install.sh prints the useradd,
chown and systemctl commands it would run. Starting the real service needs a systemd host; the
unit's run-time hardening is not exercised here (see the README, "Install as a service").
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import stat
import subprocess
import tomllib
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import pytest
from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp import auth
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer
from autobahn.wamp.types import ComponentConfig, PublishOptions

from conftest import REPO, Server, binary_path

INSTALL = REPO / "install.sh"
BIN = "usr/local/bin/switchboard"
CONF = "etc/switchboard/config.toml"
UNIT = "etc/systemd/system/switchboard.service"
DATA = "var/lib/switchboard"

# Every file and directory a fresh install creates under the root, with its mode.
EXPECTED = {
    "etc": 0o755, "etc/systemd": 0o755, "etc/systemd/system": 0o755, UNIT: 0o644,
    "etc/switchboard": 0o750, CONF: 0o640,
    "usr": 0o755, "usr/local": 0o755, "usr/local/bin": 0o755, BIN: 0o755,
    "var": 0o755, "var/lib": 0o755, DATA: 0o750,
}

UNIT_LINES = [
    "[Service]",
    "Type=exec",
    "User=switchboard",
    "Group=switchboard",
    "ExecStart=/usr/local/bin/switchboard --config /etc/switchboard/config.toml --data-dir /var/lib/switchboard",
    "ExecReload=/usr/local/bin/switchboard reload --data-dir /var/lib/switchboard",
    "Restart=on-failure",
    "LimitNOFILE=1048576",
    "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ReadWritePaths=/var/lib/switchboard",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "[Install]",
    "WantedBy=multi-user.target",
]


def install(root: Path, *args: str, binary: Path | None = None) -> subprocess.CompletedProcess:
    cmd = ["bash", str(INSTALL), "--root", str(root), *args]
    if "--uninstall" not in args:
        cmd += ["--binary", str(binary or binary_path())]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root: (kind, mode, sha256 of a file's content)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), None)
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A scratch root installed into twice; yields (root, first output, second output, snapshot)."""
    root = tmp_path_factory.mktemp("root")
    first = install(root)
    assert first.returncode == 0, first.stdout + first.stderr
    after_first = snapshot(root)
    second = install(root)
    assert second.returncode == 0, second.stdout + second.stderr
    assert snapshot(root) == after_first, "the second run changed files"
    return root, first.stdout, second.stdout, after_first


def copy_of(root: Path, tmp_path: Path) -> Path:
    """A copy of a scratch root; the binary is hard-linked (install.sh replaces it by rename,
    never in place, and a debug build is large)."""
    def copy(src, dst):
        if Path(src).name == "switchboard":
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)
    dst = tmp_path / "copy"
    shutil.copytree(root, dst, symlinks=True, copy_function=copy)
    return dst


# --- files ---------------------------------------------------------------------------------


def test_every_file_and_mode(installed):
    root, _, _, snap = installed
    assert {p: mode for p, (_, mode, _) in snap.items()} == EXPECTED
    assert (root / BIN).read_bytes() == binary_path().read_bytes()
    assert list((root / DATA).iterdir()) == []


def test_second_run_is_an_upgrade_in_place(installed):
    _, first, second, _ = installed
    assert "wrote /etc/switchboard/config.toml (mode 0640) with new secrets" in first
    assert "kept the existing config /etc/switchboard/config.toml" in second
    assert "/usr/local/bin/switchboard is already this binary" in second
    assert "wrote /etc/systemd/system/switchboard.service" not in second


def test_system_actions_are_printed_not_run(installed):
    _, first, _, _ = installed
    for action in [
        "would run: useradd --system --user-group --home-dir /var/lib/switchboard",
        "would run: chown root:switchboard /etc/switchboard/config.toml",
        "would run: chown -R switchboard:switchboard /var/lib/switchboard",
        "would run: systemctl enable switchboard.service",
    ]:
        assert action in first
    # The next steps: where it listens and how to add the first administrator.
    assert re.search(r"Status page +http://\S+:8080/", first)
    assert "user add admin --role staff --wampcra --data-dir /var/lib/switchboard" in first


def test_unit_content(installed):
    root, _, _, _ = installed
    lines = [line for line in (root / UNIT).read_text().splitlines() if line and not line.startswith("#")]
    for want in UNIT_LINES:
        assert want in lines, f"{want!r} missing from the unit"
    # One reload command: `switchboard reload` through the admin socket (reports failures).
    assert sum(line.startswith("ExecReload") for line in lines) == 1


def systemd_root(root: Path, tmp_path: Path) -> Path:
    """A copy of the scratch root with the host's own units, which verify needs (sysinit.target…)."""
    r = copy_of(root, tmp_path)
    units = Path("/usr/lib/systemd/system")
    shutil.copytree(units, r / "usr/lib/systemd/system", symlinks=True)
    return r


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (Debian package systemd)")
def test_unit_passes_systemd_analyze_verify(installed, tmp_path):
    r = systemd_root(installed[0], tmp_path)
    # verify also checks that ExecStart's binary exists and is executable (inside --root).
    out = subprocess.run(["systemd-analyze", "verify", f"--root={r}", "/etc/systemd/system/switchboard.service"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    # Unknown keys and unparsable values are only warnings: there must be none.
    assert out.stdout + out.stderr == ""
    sec = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={r}",
                          "/etc/systemd/system/switchboard.service"], capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for switchboard.service: ([\d.]+)", sec.stdout + sec.stderr)
    assert m, sec.stdout + sec.stderr
    assert float(m.group(1)) <= 2.0, sec.stdout


# --- the generated config ------------------------------------------------------------------


def test_config_passes_check_config(installed):
    root, _, _, _ = installed
    out = subprocess.run([str(binary_path()), "check-config", str(root / CONF)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 warning(s)" in out.stdout, out.stdout
    assert "listeners [tcp://0.0.0.0:8080, unix:///var/lib/switchboard/backend.sock]" in out.stdout


def test_config_shape(installed):
    cfg = tomllib.loads((installed[0] / CONF).read_text())
    worker = cfg["workers"][0]
    realm = worker["realms"][0]
    assert realm["name"] == "realm1"
    roles = {r["name"]: r.get("permissions", []) for r in realm["roles"]}
    assert set(roles) == {"anonymous", "staff", "visitor", "backend"}
    assert roles["anonymous"] == [] and roles["visitor"] == []
    web, raw = worker["transports"]
    assert web["endpoint"] == {"type": "tcp", "interface": "0.0.0.0", "port": 8080}
    paths = web["paths"]
    # /ws: the built-in store only (static, no principals), never anonymous.
    assert paths["ws"]["auth"] == {"scram": {"type": "static"}, "wampcra": {"type": "static"}}
    assert paths["chat"]["auth"]["ticket"]["type"] == "visitor"
    assert re.fullmatch(r"[0-9a-f]{64}", paths["chat"]["auth"]["ticket"]["jwt_hs256_secret"])
    assert re.fullmatch(r"[0-9a-f]{64}", paths["publish"]["options"]["secret"])
    assert raw["endpoint"] == {"type": "unix", "path": "/var/lib/switchboard/backend.sock"}
    assert raw["auth"] == {"anonymous": {"type": "static", "role": "backend"}}
    assert worker["chat"] == {"realm": "realm1", "visitor_role": "visitor", "staff_roles": ["staff"]}


def test_secrets_differ_between_installs(installed, tmp_path):
    other = tmp_path / "other"
    assert install(other).returncode == 0
    a = tomllib.loads((installed[0] / CONF).read_text())["workers"][0]["transports"][0]["paths"]
    b = tomllib.loads((other / CONF).read_text())["workers"][0]["transports"][0]["paths"]
    assert a["chat"]["auth"]["ticket"]["jwt_hs256_secret"] != b["chat"]["auth"]["ticket"]["jwt_hs256_secret"]
    assert a["publish"]["options"]["secret"] != b["publish"]["options"]["secret"]


@pytest.mark.parametrize("listen,interface,port", [
    ("127.0.0.1:9000", "127.0.0.1", 9000),
    ("[::]:80", "::", 80),
    ("8443", "0.0.0.0", 8443),
])
def test_listen_option(tmp_path, listen, interface, port):
    r = install(tmp_path, "--listen", listen)
    assert r.returncode == 0, r.stderr
    endpoint = tomllib.loads((tmp_path / CONF).read_text())["workers"][0]["transports"][0]["endpoint"]
    assert (endpoint["interface"], endpoint["port"]) == (interface, port)


@pytest.mark.parametrize("listen", ["localhost", "1.2.3.4:99999", "::1:80", "localhost:8080", "999.1.1.1:80"])
def test_bad_listen_changes_nothing(tmp_path, listen):
    r = install(tmp_path / "root", "--listen", listen)
    assert r.returncode != 0
    assert not (tmp_path / "root" / "etc").exists()


# --- the generated config, running -----------------------------------------------------------


def runnable_config(root: Path, tmp: Path) -> Path:
    """The installed config with its TCP listener on 127.0.0.1:0 and its socket under tmp."""
    text = (root / CONF).read_text()
    text = text.replace('interface = "0.0.0.0"\nport = 8080', 'interface = "127.0.0.1"\nport = 0')
    text = text.replace('path = "/var/lib/switchboard/backend.sock"', f'path = "{tmp / "backend.sock"}"')
    assert 'port = 0' in str(text) and str(tmp) in text
    out = tmp / "config.toml"
    out.write_text(text)
    return out


class Client(ApplicationSession):
    """Joins with the given method; `ready` resolves to the session, or fails with the ABORT."""

    def __init__(self, config, ready, method, authid=None, secret=None):
        super().__init__(config)
        self.ready, self.method, self.authid_, self.secret = ready, method, authid, secret
        self.scram = auth.AuthScram(authid=authid, password=secret) if method == "scram" else None

    def onConnect(self):
        extra = self.scram.authextra if self.scram else None
        self.join(self.config.realm, authmethods=[self.method], authid=self.authid_, authextra=extra)

    def onChallenge(self, challenge):
        if self.method == "scram":
            return self.scram.on_challenge(self, challenge)
        if self.method == "ticket":
            return self.secret
        key = auth.derive_key(self.secret.encode(), challenge.extra["salt"].encode(),
                              challenge.extra["iterations"], challenge.extra["keylen"])
        return auth.compute_wcs(key, challenge.extra["challenge"].encode()).decode()

    def onWelcome(self, welcome):
        return self.scram.on_welcome(self, welcome.authextra) if self.scram else None

    async def onJoin(self, details):
        self.details = details
        if not self.ready.done():
            self.ready.set_result(self)

    def onLeave(self, details):
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(details.reason))
        super().onLeave(details)


async def ws_join(server, path, method, authid=None, secret=None):
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    factory = WampWebSocketClientFactory(
        lambda: Client(ComponentConfig("realm1"), ready, method, authid, secret),
        url=f"ws://{server.addr}{path}", serializers=[JsonSerializer()])
    host, port = server.addr.rsplit(":", 1)
    await loop.create_connection(factory, host, int(port))
    return await asyncio.wait_for(ready, 20)


async def unix_join(socket_path):
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    factory = WampRawSocketClientFactory(lambda: Client(ComponentConfig("realm1"), ready, "anonymous"),
                                         serializer=JsonSerializer())
    await loop.create_unix_connection(factory, str(socket_path))
    return await asyncio.wait_for(ready, 20)


def bridge_post(server, path, body: dict, secret: str | None) -> tuple[int, dict]:
    data = json.dumps(body).encode()
    url = f"http://{server.addr}{path}"
    if secret is not None:
        ts = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        seq, nonce = "1", str(int.from_bytes(os.urandom(6), "big"))
        mac = hmac.new(secret.encode(), ("backend" + ts + seq + nonce).encode() + data, hashlib.sha256)
        url += "?" + urlencode({"key": "backend", "timestamp": ts, "seq": seq, "nonce": nonce,
                                "signature": base64.urlsafe_b64encode(mac.digest()).decode()})
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def running(installed, tmp_path_factory):
    root = installed[0]
    tmp = tmp_path_factory.mktemp("run")
    data = tmp / "data"
    for name, role in [("ann", "staff"), ("app", "backend")]:
        r = subprocess.run([str(binary_path()), "user", "add", name, "--role", role, "--wampcra", "--data-dir", str(data)],
                           input=f"{name}-pw\n", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    s = Server("--config", str(runnable_config(root, tmp)), data_dir=str(data))
    s.socket = tmp / "backend.sock"
    s.bridge_secret = tomllib.loads((root / CONF).read_text())["workers"][0]["transports"][0]["paths"]["publish"]["options"]["secret"]
    yield s
    s.stop()


def test_store_users_log_in_on_ws(running):
    async def main():
        for method in ("scram", "wampcra"):
            s = await ws_join(running, "/ws", method, "ann", "ann-pw")
            assert (s.details.authid, s.details.authrole, s.details.authmethod) == ("ann", "staff", method)
            # staff may use the meta API (the admin view).
            assert await s.call("wamp.session.count") >= 1
            s.leave()
    asyncio.run(main())


def test_ws_refuses_anonymous_and_wrong_passwords(running):
    async def main():
        with pytest.raises(RuntimeError, match="wamp.error.no_auth_method"):
            await ws_join(running, "/ws", "anonymous")
        with pytest.raises(RuntimeError, match="wamp.error.not_authorized"):
            await ws_join(running, "/ws", "scram", "ann", "wrong")
        with pytest.raises(RuntimeError, match="wamp.error.no_such_principal"):
            await ws_join(running, "/ws", "wampcra", "nobody", "x")
    asyncio.run(main())


def test_visitor_chats_and_staff_sees_it(running):
    async def main():
        v = await ws_join(running, "/chat", "ticket", None, "visitor-token-" + os.urandom(8).hex())
        assert v.details.authrole == "visitor" and v.details.authid.startswith("visitor:")
        thread = await v.call("switchboard.chat.open", name="Vera")
        tid = thread["thread"]
        sent = await v.call("switchboard.chat.send", tid, "hello from the website")
        assert sent["seq"] >= 1
        # a visitor may do nothing outside the chat service
        with pytest.raises(ApplicationError, match="not_authorized"):
            await v.publish("com.example.news", 1, options=PublishOptions(acknowledge=True))
        staff = await ws_join(running, "/ws", "scram", "ann", "ann-pw")
        threads = await staff.call("switchboard.chat.threads")
        assert any(t["thread"] == tid and t["visitor"] == v.details.authid for t in threads)
        v.leave()
        staff.leave()
    asyncio.run(main())


def test_local_worker_on_the_unix_socket_and_the_http_bridge(running):
    async def main():
        worker = await unix_join(running.socket)
        assert worker.details.authrole == "backend"
        await worker.register(lambda a, b: a + b, "com.example.add2")
        events = []
        await worker.subscribe(lambda x: events.append(x), "com.example.orders")
        loop = asyncio.get_running_loop()
        status, body = await loop.run_in_executor(
            None, bridge_post, running, "/call", {"procedure": "com.example.add2", "args": [2, 3]}, running.bridge_secret)
        assert (status, body) == (200, {"args": [5]})
        status, body = await loop.run_in_executor(
            None, bridge_post, running, "/publish", {"topic": "com.example.orders", "args": [42]}, running.bridge_secret)
        assert status == 200 and "id" in body
        for _ in range(100):
            if events:
                break
            await asyncio.sleep(0.05)
        assert events == [42]
        # unsigned or wrongly signed requests are refused
        status, _ = await loop.run_in_executor(None, bridge_post, running, "/publish", {"topic": "com.example.orders"}, None)
        assert status == 401
        status, _ = await loop.run_in_executor(None, bridge_post, running, "/publish", {"topic": "com.example.orders"}, "0" * 64)
        assert status == 401
        worker.leave()
    asyncio.run(main())


# --- upgrade and uninstall -------------------------------------------------------------------


def test_upgrade_replaces_the_binary_and_keeps_config_and_data(installed, tmp_path):
    root = copy_of(installed[0], tmp_path)
    (root / DATA / "db").write_text("data")
    conf = (root / CONF).read_bytes()
    newer = tmp_path / "switchboard"
    # Another build of the same program: trailing bytes do not change how an ELF file runs.
    newer.write_bytes(binary_path().read_bytes() + b"\0upgrade")
    newer.chmod(0o755)
    r = install(root, binary=newer)
    assert r.returncode == 0, r.stderr
    assert "installed /usr/local/bin/switchboard" in r.stdout
    assert (root / BIN).read_bytes() == newer.read_bytes()
    assert stat.S_IMODE((root / BIN).stat().st_mode) == 0o755
    assert (root / CONF).read_bytes() == conf
    assert (root / DATA / "db").read_text() == "data"
    assert not list((root / "usr/local/bin").glob("*.new"))


def test_a_config_the_new_binary_rejects_stops_the_upgrade(installed, tmp_path):
    root = copy_of(installed[0], tmp_path)
    (root / CONF).write_text('version = 2\n[[workers]]\ntype = "router"\n')
    newer = tmp_path / "switchboard"
    newer.write_bytes(binary_path().read_bytes() + b"\0upgrade")
    newer.chmod(0o755)
    before = snapshot(root)
    r = install(root, binary=newer)
    assert r.returncode != 0
    assert "does not load" in r.stderr
    assert snapshot(root) == before


def test_uninstall_keeps_config_and_data_then_purge_removes_them(installed, tmp_path):
    root = copy_of(installed[0], tmp_path)
    (root / DATA / "db").write_text("data")
    conf = (root / CONF).read_bytes()
    r = install(root, "--uninstall")
    assert r.returncode == 0, r.stderr
    assert "would run: systemctl disable --now switchboard.service" in r.stdout
    assert not (root / UNIT).exists() and not (root / BIN).exists()
    assert (root / CONF).read_bytes() == conf
    assert (root / DATA / "db").read_text() == "data"
    r = install(root, "--uninstall", "--purge")
    assert r.returncode == 0, r.stderr
    assert "would run: userdel switchboard" in r.stdout
    assert not (root / "etc/switchboard").exists() and not (root / DATA).exists()
    assert not (root / UNIT).exists() and not (root / BIN).exists()
