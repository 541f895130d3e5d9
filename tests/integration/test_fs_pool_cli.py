"""An fs pool through the CLI on an ext4 loop device: build, start, a guest's volume,
`img convert -p` into it with progress, and running out of space there."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml

pytestmark = pytest.mark.integration

M = 1024**2
PYVIRT = str(Path(sys.executable).parent / "pyvirt")


@pytest.fixture()
def loop(tmp_path: Path) -> Iterator[str]:
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(48 * M)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "mnt")], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fs_pool_on_a_loop_device(daemon: DaemonHandle, guest: GuestImage, loop: str, tmp_path: Path) -> None:
    d = daemon
    mnt = tmp_path / "mnt"
    d.cli("pool-define-as", "pvsfs", "fs", "--source-dev", loop, "--source-format", "ext4", "--target", str(mnt),
          check=True)
    try:
        assert "Pool pvsfs built" in d.cli("pool-build", "pvsfs", check=True).stdout
        d.cli("pool-start", "pvsfs", check=True)
        assert f"{loop} {mnt} ext4" in Path("/proc/mounts").read_text()
        d.cli("vol-create-as", "pvsfs", "disk.qcow2", "16M", "--format", "qcow2", check=True)
        disk = ("<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
                "<source pool='pvsfs' volume='disk.qcow2'/><target dev='vda' bus='virtio'/></disk>")
        (tmp_path / "g.xml").write_text(domain_xml("fsguest", guest, extra_devices=disk))
        d.cli("create", str(tmp_path / "g.xml"), check=True)
        d.wait_serial("fsguest")
        status, out = d.guest_run("fsguest", "cat /sys/block/vda/size")
        assert status == 0 and str(16 * M // 512) in out
        d.cli("destroy", "fsguest", check=True)

        src = tmp_path / "src.raw"
        src.write_bytes(os.urandom(8 * M))
        r = subprocess.run([PYVIRT, "img", "convert", "-p", "-f", "raw", "-O", "qcow2", str(src),
                            str(mnt / "copy.qcow2")], capture_output=True, text=True)
        assert r.returncode == 0 and "100.00%" in r.stderr, r.stderr
        big = tmp_path / "big.raw"
        big.write_bytes(os.urandom(64 * M))  # random: qemu-img cannot skip it as zeroes
        before = sha(big)
        r = subprocess.run([PYVIRT, "img", "convert", "-f", "raw", "-O", "raw", str(big), str(mnt / "big.raw")],
                           capture_output=True, text=True)
        assert r.returncode == 1 and "could not convert" in r.stderr
        assert not (mnt / "big.raw").exists()  # the partial output went
        assert sha(big) == before  # the source is untouched
        d.cli("pool-refresh", "pvsfs", check=True)
        names = d.cli("vol-list", "pvsfs", check=True).stdout
        assert "disk.qcow2" in names and "copy.qcow2" in names and "big.raw" not in names
        d.cli("pool-destroy", "pvsfs", check=True)
        assert str(mnt) not in Path("/proc/mounts").read_text()
    finally:
        d.cli("destroy", "fsguest")
        d.cli("pool-destroy", "pvsfs")
        d.cli("pool-undefine", "pvsfs")
