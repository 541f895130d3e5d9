"""Unix socket paths over 107 bytes are refused before anything is made, naming the path and its length."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.guest.build import GuestImage

from .conftest import PYVIRTD, DaemonHandle, domain_xml, fails

pytestmark = pytest.mark.integration


def test_a_long_root_is_refused_before_anything_is_made() -> None:
    base = Path(tempfile.mkdtemp(prefix="pvsock", dir="/tmp"))
    try:
        root = base / ("r" * (100 - len(str(base))))
        done = subprocess.run([PYVIRTD, "--root", str(root)], capture_output=True, text=True, timeout=30)
        print(f"\n{done.stderr}")
        assert done.returncode == 1
        serial = f"{root}/run/pyvirt/qemu/00000000-0000-0000-0000-000000000000/serial"
        size = len(serial)
        assert done.stderr == (
            f"error: root {root} is too long: a guest's serial socket would be {serial} ({size} bytes), over the "
            f"107 bytes a unix socket path can have; use a --root of at most {len(str(root)) - (size - 107)} "
            "bytes\n")
        assert not root.exists()  # nothing made under it
    finally:
        os.rmdir(base)


def test_a_long_channel_name_is_refused_at_start(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    name = "org.example." + "x" * 60
    channel = (f"<channel type='unix'><target type='virtio' name='{name}'/></channel>"
               "<controller type='virtio-serial' index='0'/>")
    xml = tmp_path / "d.xml"
    xml.write_text(domain_xml("sock-chan", guest, machine="pc", extra_devices=channel,
                              uuid="50c40000-0000-4000-8000-0000000000c1"))
    daemon.cli("define", str(xml), check=True)
    try:
        uuid = daemon.cli("domuuid", "sock-chan", check=True).stdout.strip()
        path = daemon.root / f"run/pyvirt/qemu/{uuid}/ch/{name}"
        err = fails(daemon, "start", "sock-chan")
        print(f"\n{err}")
        assert err == (
            f"error: cannot start domain 'sock-chan': the unix socket of channel0 ({name}) would be {path} "
            f"({len(str(path))} bytes), over the 107 bytes a unix socket path can have; use a shorter channel name "
            "(<target name=.../>), give the channel a short <source path=.../>, or start pyvirtd with a shorter "
            "--root\n")
        assert daemon.cli("domstate", "sock-chan", check=True).stdout.strip() == "shut off"
        assert not (daemon.root / "var/log/pyvirt/qemu/sock-chan.log").exists()  # QEMU never ran
        assert [p.name for p in (daemon.root / "run/pyvirt/qemu").iterdir() if p.name.startswith(uuid)] == []
        short = tmp_path / "ga.sock"  # the way out the message names: a short <source path>
        xml.write_text(xml.read_text().replace("<channel type='unix'>",
                                               f"<channel type='unix'><source mode='bind' path='{short}'/>"))
        daemon.cli("define", str(xml), check=True)
        daemon.cli("start", "sock-chan", check=True)
        assert short.is_socket()
        daemon.cli("destroy", "sock-chan", check=True)
    finally:
        daemon.cli("destroy", "sock-chan")
        daemon.cli("undefine", "sock-chan")
