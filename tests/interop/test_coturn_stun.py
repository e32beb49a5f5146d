"""coturn's own STUN client (`turnutils_stunclient`, Debian package coturn) against
Switchboard's STUN server: it must learn its reflexive address. tests/run.sh installs coturn."""

import re
import shutil
import socket
import subprocess

from conftest import Server


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_turnutils_stunclient_gets_its_reflexive_address():
    client = shutil.which("turnutils_stunclient")
    assert client, "turnutils_stunclient is missing: install Debian's coturn package (tests/run.sh does)"
    port = free_udp_port()
    s = Server("--stun-listen", f"127.0.0.1:{port}")
    try:
        r = subprocess.run([client, "-p", str(port), "127.0.0.1"], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stdout + r.stderr
        m = re.search(r"UDP reflexive addr: 127\.0\.0\.1:(\d+)", r.stdout)
        assert m and int(m.group(1)) > 0, r.stdout
    finally:
        s.stop()
