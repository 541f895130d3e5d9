"""Issue 9 through the real CLI and daemon: hostile names in every field that reaches QEMU's argv,
dnsmasq's files, mount or a path are refused with a clear error and nothing is stored; deep XML is
refused; a VNC password really locks the display (RFB security type 2, the right password admitted);
dumpxml hides it without --security-info; SPICE listens on a unix socket; every change is audited."""
from __future__ import annotations

import json
import os
import re
import socket
import struct
import time
from pathlib import Path

import pytest

from pyvirt.config import Config

from .conftest import DaemonHandle, domain_xml, fails, ok

pytestmark = pytest.mark.integration


def listed(d: DaemonHandle) -> dict[str, set[str]]:
    """Every object the daemon has, by kind: what an attack must leave as it was."""
    return {
        "domains": set(ok(d, "list", "--all", "--name").split()),
        "networks": set(ok(d, "net-list", "--all", "--name").split()),
        "pools": set(ok(d, "pool-list", "--all", "--name").split()),
        "volumes": set(ok(d, "vol-list", "default").split()),
    }


def dom(guest, extra: str = "", **kw: str) -> str:  # type: ignore[no-untyped-def]
    xml = domain_xml(kw.pop("name", "atk"), guest, extra_devices=extra)
    for old, new in kw.items():
        xml = xml.replace(old, new)
    return xml


def net(ip: str = "<ip address='10.209.0.1' prefix='24'/>", name: str = "atknet", bridge: str = "pvatk0") -> str:
    return f"<network><name>{name}</name><bridge name='{bridge}'/>{ip}</network>"


def pool(source: str, name: str = "atkpool", ptype: str = "netfs", target: str = "/tmp/pvatk") -> str:
    return (f"<pool type='{ptype}'><name>{name}</name><source>{source}</source>"
            f"<target><path>{target}</path></target></pool>")


# (command, document maker, what the error must say): a comma, a slash, a newline or '..' in each field
ATTACKS = {
    "domain name with /": ("define", lambda g: dom(g, name="a/b"), "invalid domain name 'a/b': it contains '/'"),
    "domain name ..": ("define", lambda g: dom(g, name=".."), "invalid domain name '..': it is '..'"),
    "domain name with newline": ("define", lambda g: dom(g, name="a&#10;b"), "control character '\\n'"),
    "cpu model with comma": ("define", lambda g: dom(g).replace("<vcpu>", "<cpu mode='custom'><model>qemu64,pmu=on"
                                                                           "</model></cpu><vcpu>"),
                             "CPU model 'qemu64,pmu=on' is not a QEMU name"),
    "cpu feature with comma": ("define", lambda g: dom(g).replace(
        "<vcpu>", "<cpu mode='custom'><model>qemu64</model><feature policy='require' name='avx,pmu=on'/></cpu><vcpu>"),
        "feature name 'avx,pmu=on' is not a QEMU name"),
    "vnc listen with comma": ("define", lambda g: dom(g, "<graphics type='vnc' listen='127.0.0.1,password=off'/>"),
                              "listen address '127.0.0.1,password=off' is refused: it is not an IP address"),
    "spice listen with newline": ("define", lambda g: dom(g, "<graphics type='spice' listen='::1&#10;x'/>"),
                                  "listen address '::1\\nx' is refused"),
    "tap name with ..": ("define", lambda g: dom(g, "<interface type='ethernet'><target dev='../x'/></interface>"),
                         "target dev '../x' is not a valid interface name"),
    "bridge with comma": ("define", lambda g: dom(g, "<interface type='bridge'><source bridge='br0 ,x'/></interface>"),
                          "source bridge 'br0 ,x' is not a valid interface name"),
    "disk serial with newline": ("define", lambda g: dom(
        g, "<disk type='file' device='disk'><source file='/tmp/x.img'/><target dev='vda'/>"
           "<serial>a&#10;b</serial></disk>"), "serial 'a\\nb' contains the control character"),
    "kernel path with newline": ("define", lambda g: dom(g, **{str(g.kernel): f"{g.kernel}&#10;x"}),
                                 "contains the control character '\\n'"),
    "channel name with ..": ("define", lambda g: dom(
        g, "<channel type='unix'><target type='virtio' name='../../evil'/></channel>"), "not a plain file name"),
    "network name with /": ("net-define", lambda g: net(name="a/b"), "invalid network name 'a/b'"),
    "bridge name with /": ("net-define", lambda g: net(bridge="br/0"), "bridge name 'br/0'"),
    "ipv6 scope id with newline": ("net-define", lambda g: net(
        "<ip family='ipv6' address='fd00:9::1%eth0&#10;dhcp-host=x' prefix='64'/>"), "carries an IPv6 scope id"),
    "dhcp host name with comma": ("net-define", lambda g: net(
        "<ip address='10.209.0.1' prefix='24'><dhcp><host mac='52:54:00:00:00:09' name='a,b' ip='10.209.0.9'/>"
        "</dhcp></ip>"), "name 'a,b' is not a valid DNS name"),
    "dns name with newline": ("net-define", lambda g: net(
        "<ip address='10.209.0.1' prefix='24'/><dns><host ip='10.209.0.5'><hostname>a&#10;b</hostname></host></dns>"),
        "is not a valid DNS name"),
    "pool name ..": ("pool-define", lambda g: pool("", "..", "dir"), "invalid pool name"),
    "netfs host starting with -": ("pool-define", lambda g: pool("<host name='-oremount'/><dir path='/e'/>"),
                                   "source host '-oremount' is refused: it starts with '-'"),
    "netfs export not absolute": ("pool-define", lambda g: pool("<host name='nfs'/><dir path='../e'/>"),
                                  "source directory '../e' is not an absolute path"),
    "pool target with newline": ("pool-define", lambda g: pool("", ptype="dir", target="/tmp/a&#10;b"),
                                 "contains the control character"),
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_hostile_names_in_every_field_are_refused_and_nothing_is_stored(daemon: DaemonHandle, guest,  # type: ignore[no-untyped-def]
                                                                        tmp_path: Path, attack: str) -> None:
    command, make, message = ATTACKS[attack]
    before = listed(daemon)
    path = tmp_path / "attack.xml"
    path.write_text(make(guest))
    err = fails(daemon, command, str(path))
    assert message in err, err
    assert listed(daemon) == before


@pytest.mark.parametrize("name", ["a/b", "..", "a,b/../c"])
def test_hostile_volume_names_are_refused_and_nothing_is_made(daemon: DaemonHandle, name: str) -> None:
    images = daemon.root / "var/lib/pyvirt/images"
    before, files = listed(daemon), sorted(p.name for p in images.iterdir())
    err = fails(daemon, "vol-create-as", "default", name, "1M")
    assert f"invalid volume name {name!r}" in err, err
    assert listed(daemon) == before and sorted(p.name for p in images.iterdir()) == files
    assert not (daemon.root / "var/lib/pyvirt/c").exists()


def test_fifty_thousand_nested_elements_through_define(daemon: DaemonHandle, tmp_path: Path) -> None:
    before = listed(daemon)
    deep = tmp_path / "deep.xml"
    deep.write_text("<domain type='qemu'><name>deep</name><memory>65536</memory><metadata>"
                    + "<a>" * 50_000 + "</a>" * 50_000 + "</metadata></domain>")
    err = fails(daemon, "define", str(deep))
    assert "domain XML nests elements more than 256 levels deep (at <a>)" in err, err
    assert listed(daemon) == before


# ---------------------------------------------------------------- VNC password (RFB)
def _recv(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"VNC server closed the connection after {data!r}")
        data += chunk
    return data


def _vnc_response(password: str, challenge: bytes) -> bytes:
    """RFB's VNC authentication: DES of the challenge, keyed by the password with each byte's bits reversed."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    key = bytes(int(f"{b:08b}"[::-1], 2) for b in password.encode()[:8].ljust(8, b"\0"))
    enc = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # K1=K2=K3: single DES
    return enc.update(challenge) + enc.finalize()


def rfb_login(path: Path, password: str) -> tuple[list[int], int]:
    """Connect, offer RFB 3.8, read the security types, answer VNC authentication; (types, result)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        assert _recv(s, 12).startswith(b"RFB 003.")
        s.sendall(b"RFB 003.008\n")
        count = _recv(s, 1)[0]
        types = list(_recv(s, count))
        if 2 not in types:
            return types, -1
        s.sendall(bytes([2]))
        s.sendall(_vnc_response(password, _recv(s, 16)))
        (result,) = struct.unpack(">I", _recv(s, 4))
        return types, result


def wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_a_vnc_password_locks_the_display_and_admits_the_right_password(daemon: DaemonHandle, guest,  # type: ignore[no-untyped-def]
                                                                         tmp_path: Path) -> None:
    xml = tmp_path / "vnc.xml"
    xml.write_text(dom(guest, "<graphics type='vnc' passwd='s3cr&amp;t'/>", name="pvvnc"))
    ok(daemon, "define", str(xml))
    try:
        assert "passwd" not in ok(daemon, "dumpxml", "pvvnc")
        assert "passwd='s3cr&amp;t'" in ok(daemon, "dumpxml", "--security-info", "pvvnc")
        ok(daemon, "start", "pvvnc")
        uuid = ok(daemon, "domuuid", "pvvnc").strip()
        sock = Config.for_root(daemon.root).paths.vnc_socket(uuid)
        wait_for(sock)
        types, result = rfb_login(sock, "wrong")
        assert types == [2], f"the display offers {types}, not only VNC authentication (2)"
        assert result == 1  # refused
        assert rfb_login(sock, "s3cr&t") == ([2], 0)  # admitted
        live = ok(daemon, "dumpxml", "pvvnc")
        assert "passwd" not in live and "s3cr" not in live
        assert "passwd='s3cr&amp;t'" in ok(daemon, "dumpxml", "--security-info", "pvvnc")
        qemu_log = (daemon.root / "var/log/pyvirt/qemu/pvvnc.log").read_text()
        assert "s3cr" not in qemu_log and "s3cr" not in (daemon.root / "var/log/pyvirt/pyvirtd.log").read_text()
    finally:
        daemon.cli("destroy", "pvvnc")
        daemon.cli("undefine", "pvvnc")


def test_spice_listens_on_a_unix_socket_in_the_guests_directory(daemon: DaemonHandle, guest,  # type: ignore[no-untyped-def]
                                                                 tmp_path: Path) -> None:
    caps = json.loads((daemon.root / "var/lib/pyvirt/cache/host-caps.json").read_text())
    if not caps.get("has_spice"):
        pytest.skip("this host's QEMU has no SPICE support (Debian: qemu-system-modules-spice)")
    xml = tmp_path / "spice.xml"
    xml.write_text(dom(guest, "<graphics type='spice' autoport='yes'/>", name="pvspice",
                       **{"type='x86_64' machine='microvm'": "type='x86_64' machine='q35'"}))
    ok(daemon, "define", str(xml))
    try:
        ok(daemon, "start", "pvspice")
        uuid = ok(daemon, "domuuid", "pvspice").strip()
        sock = Config.for_root(daemon.root).paths.channel_dir(uuid) / "spice.sock"
        wait_for(sock)
        pid = int((Config.for_root(daemon.root).paths.qemu_pidfile(uuid)).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        spice = cmdline[cmdline.index(b"-spice") + 1].decode()
        assert spice.startswith(f"unix=on,addr={sock},"), spice
        listening = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text()
        inodes = {os.stat(f"/proc/{pid}/fd/{fd}").st_ino for fd in os.listdir(f"/proc/{pid}/fd")}
        tcp = [row for row in (line.split() for line in listening.splitlines()) if row[9:10]
               and row[9].isdigit() and int(row[9]) in inodes and row[3] == "0A"]  # 0A: LISTEN
        assert tcp == [], f"QEMU listens on TCP: {tcp}"
    finally:
        daemon.cli("destroy", "pvspice")
        daemon.cli("undefine", "pvspice")


# ---------------------------------------------------------------- audit
def test_every_change_is_audited_with_the_callers_uid(daemon: DaemonHandle, guest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    xml = tmp_path / "aud.xml"
    xml.write_text(dom(guest, "<graphics type='vnc' passwd='topsecret'/>", name="pvaudit"))
    ok(daemon, "define", str(xml))
    fails(daemon, "shutdown", "pvaudit")
    ok(daemon, "undefine", "pvaudit")
    log = (daemon.root / "var/log/pyvirt/pyvirtd.log").read_text()
    lines = [line.split("pyvirt.audit: ", 1)[1] for line in log.splitlines() if "pyvirt.audit: " in line]
    mine = [line for line in lines if "pvaudit" in line]
    pattern = r"uid=0 pid=\d+ "
    assert re.fullmatch(pattern + r'POST /v1/domains domain="pvaudit" -> 201', mine[0]), mine
    assert re.fullmatch(pattern + r"POST /v1/domains/pvaudit/shutdown domain=pvaudit -> 409 operation-invalid",
                        mine[1]), mine
    assert re.fullmatch(pattern + r"DELETE /v1/domains/pvaudit domain=pvaudit -> 200", mine[2]), mine
    assert len(mine) == 3 and "topsecret" not in log
    assert not any(" GET " in line for line in lines)  # reads are not audited
