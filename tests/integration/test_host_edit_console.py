"""Host commands, `edit` through $EDITOR, and the interactive console on a real pty."""
from __future__ import annotations

import os
import pty
import re
import select
import stat
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from .conftest import PYVIRT, DaemonHandle, domain_xml

pytestmark = pytest.mark.integration


def test_host_commands(daemon: DaemonHandle) -> None:
    caps = daemon.cli("capabilities", check=True).stdout
    root = ET.fromstring(caps)
    assert root.tag == "capabilities"
    machines = {m.text for m in root.iter("machine")}
    assert {"q35", "microvm"} <= machines or any(m and m.startswith("pc-q35") for m in machines), machines
    assert re.search(r"Compiled against library: pyvirt \d+\.\d+\.\d+", daemon.cli("version", check=True).stdout)
    assert daemon.cli("uri", check=True).stdout.strip() == daemon.uri
    assert daemon.cli("hostname", check=True).stdout.strip() == os.uname().nodename
    r = daemon.cli("host-validate")
    assert "Checking if KVM is usable" in r.stdout and "Checking if device /dev/net/tun exists" in r.stdout, r.stdout
    assert re.search(r"QEMU: Checking for hardware virtualization\s+: (PASS|WARN|FAIL)", r.stdout)
    helptext = daemon.cli("help", check=True).stdout
    for command in ("define", "start", "shutdown", "console", "dominfo", "host-validate"):
        assert re.search(rf"^\s+{re.escape(command)}\s", helptext, re.M), command
    assert "--paused" in daemon.cli("help", "start", check=True).stdout
    r = daemon.cli("frobnicate")
    assert r.returncode == 1 and "unknown command: 'frobnicate'" in r.stderr, r.stderr


def test_edit_keeps_old_definition_on_error(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ed.xml"
    path.write_text(domain_xml("ed1", guest))
    daemon.cli("define", str(path), check=True)
    before = daemon.cli("dumpxml", "ed1", check=True).stdout

    # an editor that breaks the XML: the edit fails (no tty: no retry) and nothing changes
    breaker = tmp_path / "break.sh"
    breaker.write_text("#!/bin/sh\nsed -i 's/<memory/<memoryx/' \"$1\"\n")
    breaker.chmod(breaker.stat().st_mode | stat.S_IEXEC)
    r = subprocess.run([PYVIRT, "-c", daemon.uri, "edit", "ed1"], capture_output=True, text=True,
                       env={**os.environ, "EDITOR": str(breaker)}, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "not well-formed" in r.stderr, r.stderr
    assert daemon.cli("dumpxml", "ed1", check=True).stdout == before

    # an editor that changes the memory: the new definition is stored
    grower = tmp_path / "grow.sh"
    grower.write_text("#!/bin/sh\nsed -i \"s/<memory unit='KiB'>131072</<memory unit='KiB'>196608</\" \"$1\"\n"
                      "sed -i \"s/<currentMemory unit='KiB'>131072</<currentMemory unit='KiB'>196608</\" \"$1\"\n")
    grower.chmod(grower.stat().st_mode | stat.S_IEXEC)
    r = subprocess.run([PYVIRT, "-c", daemon.uri, "edit", "ed1"], capture_output=True, text=True,
                       env={**os.environ, "EDITOR": str(grower)}, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "Domain 'ed1' XML configuration edited." in r.stdout, r.stdout + r.stderr
    assert re.search(r"^Max memory:\s+196608 KiB$", daemon.cli("dominfo", "ed1", check=True).stdout, re.M)

    r = subprocess.run([PYVIRT, "-c", daemon.uri, "edit", "ed1"], capture_output=True, text=True,
                       env={**os.environ, "EDITOR": "true"}, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and "not changed" in r.stdout, r.stdout
    daemon.cli("undefine", "ed1", check=True)


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_interactive_console_on_a_tty(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "tty.xml"
    path.write_text(domain_xml("tty1", guest))
    daemon.cli("define", str(path), check=True)
    pid, fd = pty.fork()
    if pid == 0:  # the child: `pyvirt start --console` on a real terminal
        os.execv(PYVIRT, [PYVIRT, "-c", daemon.uri, "start", "tty1", "--console"])
    try:
        out = _read_until(fd, b"PYVIRT-GUEST-READY", 60)
        assert b"PYVIRT-GUEST-READY" in out, out[-800:]
        assert b"Connected to domain 'tty1'" in out, out[-500:]
        assert b"Escape character is ^]" in out
        time.sleep(0.5)
        os.write(fd, b"echo tty$((20+22))ok\r")
        out = _read_until(fd, b"tty42ok", 20)
        assert b"tty42ok" in out, out[-500:]
        os.write(fd, b"\x1d")  # Ctrl-]
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    # the guest still runs after the console detached
    assert daemon.cli("domstate", "tty1", check=True).stdout.strip() == "running"
    daemon.cli("destroy", "tty1", check=True)
    daemon.cli("undefine", "tty1", check=True)


def test_list_filters(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name in ("flt-a", "flt-b"):
        (tmp_path / f"{name}.xml").write_text(domain_xml(name, guest))
        daemon.cli("define", str(tmp_path / f"{name}.xml"), check=True)
    daemon.cli("start", "flt-a", "--paused", check=True)
    names = lambda *a: set(daemon.cli("list", *a, "--name", check=True).stdout.split())  # noqa: E731
    assert "flt-a" in names() and "flt-b" not in names()
    assert "flt-b" in names("--inactive") and "flt-a" not in names("--inactive")
    assert "flt-a" in names("--all", "--state-paused") and "flt-b" not in names("--all", "--state-paused")
    assert "flt-b" in names("--all", "--state-shutoff")
    uuids = daemon.cli("list", "--all", "--uuid", check=True).stdout.split()
    assert daemon.cli("domuuid", "flt-b", check=True).stdout.strip() in uuids
    daemon.cli("destroy", "flt-a", check=True)
    for name in ("flt-a", "flt-b"):
        daemon.cli("undefine", name, check=True)
