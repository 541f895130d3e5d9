"""The image-format attack of issue 9 (libvirt's CVE-2010-2237/2238), done by a real guest.

A guest owns the bytes of its raw disk. If anything later guesses the disk's
format from those bytes, the guest can make it look like a qcow2 image whose
backing file is any host file, and read that file at its next start. The guest
here writes such a header onto its raw volume with printf and dd, is started
again, and must see its own bytes, never the host file's.
"""
from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml, ok

pytestmark = pytest.mark.integration

M = 1024 * 1024


def byte_runs(data: bytes, gap: int = 16) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) pieces covering every non-zero byte of ``data`` (zero gaps under ``gap`` kept)."""
    start = end = None
    for i, b in enumerate(data):
        if not b:
            continue
        if start is not None and end is not None and i - end > gap:
            yield start, data[start:end]
            start = None
        if start is None:
            start = i
        end = i + 1
    if start is not None and end is not None:
        yield start, data[start:end]


def guest_writes(d: DaemonHandle, name: str, device: str, data: bytes) -> None:
    """The guest writes ``data`` at offset 0 of ``device`` itself: printf of octal escapes into dd."""
    for offset, piece in byte_runs(data):
        for i in range(0, len(piece), 128):  # short lines: the serial console's line buffer is small
            chunk = piece[i:i + 128]
            escaped = "".join(f"\\{b:03o}" for b in chunk)
            status, out = d.guest_run(name, f"printf '{escaped}' | dd of={device} bs=1 seek={offset + i} "
                                            "conv=notrunc 2>/dev/null")
            assert status == 0, out
    status, out = d.guest_run(name, "sync")
    assert status == 0, out


@pytest.fixture
def secret(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A host file holding a marker the guest must never see."""
    marker = f"PYVIRT-HOST-SECRET-{uuid.uuid4().hex[:12]}"
    path = tmp_path / "host-secret.raw"
    with open(path, "wb") as f:
        f.write(marker.encode() * 64)
        f.truncate(M)
    yield path, marker


def test_a_guest_written_qcow2_header_never_opens_a_host_file(daemon: DaemonHandle, guest: GuestImage,
                                                               tmp_path: Path, secret: tuple[Path, str]) -> None:
    path, marker = secret
    header = tmp_path / "evil.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "-b", str(path), "-F",
                    "raw", str(header), "1M"], check=True)
    name, vol = "pvfa-victim", "pvfa-victim.img"
    ok(d := daemon, "vol-create-as", "default", vol, "4M")
    disk = (f"<disk type='volume' device='disk'><source pool='default' volume='{vol}'/>"
            "<target dev='vda' bus='virtio'/></disk>")
    xml = tmp_path / "victim.xml"
    xml.write_text(domain_xml(name, guest, extra_devices=disk))
    ok(d, "define", str(xml))
    try:
        ok(d, "start", name)
        d.wait_serial(name)
        guest_writes(d, name, "/dev/vda", header.read_bytes())
        ok(d, "destroy", name)
        start = d.serial_log(name).stat().st_size
        ok(d, "start", name)
        d.wait_serial(name, start=start)
        _, seen = d.guest_run(name, "dd if=/dev/vda bs=4096 count=1 2>/dev/null | grep -c PYVIRT-HOST")
        assert seen.strip().splitlines()[-1] == "0", f"the guest read the host file: {seen!r}"
        status, magic = d.guest_run(name, "dd if=/dev/vda bs=4 count=1 2>/dev/null | od -A n -c")
        assert status == 0, magic
        assert "Q   F   I" in magic, f"the guest should see the header bytes it wrote, saw {magic!r}"
        assert marker not in d.serial_log(name).read_text(errors="replace")
        assert "<format type='raw'/>" in ok(d, "vol-dumpxml", "--pool", "default", vol)
    finally:
        d.cli("destroy", name)
        d.cli("undefine", name)
        d.cli("vol-delete", "--pool", "default", vol)


def test_a_linked_clone_opens_its_recorded_backing_not_its_header(daemon: DaemonHandle, guest: GuestImage,
                                                                   tmp_path: Path, secret: tuple[Path, str]) -> None:
    """The header of an overlay is rewritten behind pyvirt's back (`qemu-img rebase -u` onto a host file):
    QEMU still gets the backing file pyvirt recorded when it made the clone."""
    path, marker = secret
    d, base, clone, name = daemon, "pvfa-base.img", "pvfa-clone.qcow2", "pvfa-linked"
    ok(d, "vol-create-as", "default", base, "1M")
    base_path = Path(ok(d, "vol-path", base, "--pool", "default").strip())
    with open(base_path, "r+b") as f:
        f.write(b"PYVIRT-BASE-DATA")
    ok(d, "vol-clone", base, clone, "--pool", "default", "--linked")
    clone_path = base_path.parent / clone
    subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", str(path), "-F", "raw", str(clone_path)],
                   check=True)
    disk = (f"<disk type='volume' device='disk'><source pool='default' volume='{clone}'/>"
            "<target dev='vda' bus='virtio'/></disk>")
    xml = tmp_path / "linked.xml"
    xml.write_text(domain_xml(name, guest, extra_devices=disk))
    try:
        ok(d, "create", str(xml))
        d.wait_serial(name)
        status, seen = d.guest_run(name, "dd if=/dev/vda bs=64 count=1 2>/dev/null")
        assert status == 0 and "PYVIRT-BASE-DATA" in seen, seen
        assert marker not in seen and "PYVIRT-HOST" not in seen
        xml_out = ok(d, "vol-dumpxml", "--pool", "default", clone)
        assert f"<path>{base_path}</path>" in xml_out  # the record, not the rewritten header
    finally:
        d.cli("destroy", name)
        d.cli("vol-delete", "--pool", "default", clone)
        d.cli("vol-delete", "--pool", "default", base)
