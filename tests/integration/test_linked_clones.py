"""Linked clones: two guests boot with qcow2 overlays of one base volume; the base stays unchanged."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml

pytestmark = pytest.mark.integration


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_guests_on_linked_clones_leave_the_base_unchanged(daemon: DaemonHandle, guest: GuestImage,
                                                              tmp_path: Path) -> None:
    daemon.cli("vol-create-as", "default", "lcbase.qcow2", "16M", "--format", "qcow2", check=True)
    base = Path(daemon.cli("vol-path", "lcbase.qcow2", "--pool", "default", check=True).stdout.strip())
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 512", str(base)], check=True, capture_output=True)
    before = sha(base)
    try:
        for n in (1, 2):
            r = daemon.cli("vol-clone", "lcbase.qcow2", f"lc{n}.qcow2", "--pool", "default", "--linked", check=True)
            assert f"lc{n}.qcow2" in r.stdout
            info = subprocess.run(["qemu-img", "info", "--output=json", str(base.parent / f"lc{n}.qcow2")],
                                  capture_output=True, text=True, check=True).stdout
            assert str(base) in info  # an overlay on the base, not a copy
            disk = ("<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
                    f"<source pool='default' volume='lc{n}.qcow2'/><target dev='vda' bus='virtio'/></disk>")
            (tmp_path / f"lc{n}.xml").write_text(domain_xml(f"lcguest{n}", guest, extra_devices=disk))
            daemon.cli("create", str(tmp_path / f"lc{n}.xml"), check=True)
        for n in (1, 2):
            daemon.wait_serial(f"lcguest{n}")
            status, out = daemon.guest_run(f"lcguest{n}", "dd if=/dev/vda bs=1 count=1 2>/dev/null")
            assert status == 0 and "a" in out  # each guest sees the base's data
            status, _ = daemon.guest_run(f"lcguest{n}", f"echo guest{n} | dd of=/dev/vda bs=512 count=1 conv=sync "
                                                        "2>/dev/null && sync")
            assert status == 0
        for n in (1, 2):
            daemon.cli("destroy", f"lcguest{n}", check=True)
        assert sha(base) == before  # both guests wrote only into their overlays
        for n in (1, 2):
            raw = tmp_path / f"lc{n}.raw"
            clone = base.parent / f"lc{n}.qcow2"
            subprocess.run(["qemu-img", "convert", "-O", "raw", str(clone), str(raw)], check=True)
            assert raw.read_bytes().startswith(f"guest{n}".encode())
    finally:
        for n in (1, 2):
            daemon.cli("destroy", f"lcguest{n}")
            daemon.cli("vol-delete", f"lc{n}.qcow2", "--pool", "default")
        daemon.cli("vol-delete", "lcbase.qcow2", "--pool", "default")
