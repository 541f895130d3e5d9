"""Save images without QEMU: the header codec, the file writer and reader (temp name, rename, cleanup,
every refusal), the in-place XML rewrite, and the ABI check that guards --xml.

The stream itself is only bytes here (QEMU writes the real one in tests/integration/test_save_restore.py).
"""
from __future__ import annotations

import os
import stat
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.daemon import save_files
from pyvirt.errors import HostError, InvalidArgument, NotFound
from pyvirt.model import save_image as fmt
from pyvirt.model.abi import abi_differences
from pyvirt.model.domain import OS, Devices, Disk, Domain, Interface

XML = "<domain type='qemu'><name>d</name></domain>"


def write_image(path: Path, stream: bytes = b"QEVM" + bytes(5000), xml: str = XML, running: bool = True) -> Path:
    """What a save does, with ``stream`` standing in for what QEMU writes through the fd."""
    w = save_files.SaveWriter(path, xml, running)
    fd = w.open()
    os.write(fd, stream)
    w.finish()
    return path


def test_header_round_trip_and_layout() -> None:
    head = fmt.new_header(XML.encode(), running=True)
    assert head.data_offset % fmt.ALIGN == 0 and head.data_offset >= fmt.HEADER_SIZE + len(XML) + fmt.XML_ROOM
    done = replace(head, stream_len=1234)
    raw = done.encode()
    assert len(raw) == fmt.HEADER_SIZE and raw.startswith(fmt.MAGIC)
    assert fmt.decode_header(raw, "f") == done
    assert fmt.decode_xml(done, XML.encode(), "f") == XML


def test_writer_renames_a_private_complete_image_into_place(tmp_path: Path) -> None:
    path = write_image(tmp_path / "s.img", running=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["s.img"]  # no temporary file stays
    image = save_files.read_image(path)
    assert image.xml == XML and not image.header.running and image.header.stream_len == 5004
    fd = save_files.open_stream(image)
    try:
        assert os.read(fd, 4) == b"QEVM"
    finally:
        os.close(fd)


def test_a_discarded_save_leaves_nothing_and_keeps_an_older_image(tmp_path: Path) -> None:
    old = write_image(tmp_path / "s.img", stream=b"OLD" + bytes(100))
    w = save_files.SaveWriter(old, XML, True)
    os.write(w.open(), b"half")
    assert w.partial.exists() and w.partial.name.endswith(save_files.PARTIAL_SUFFIX)
    w.discard()
    assert [p.name for p in tmp_path.iterdir()] == ["s.img"]
    assert save_files.read_image(old).header.stream_len == 103


def test_nothing_written_by_qemu_is_no_image(tmp_path: Path) -> None:
    w = save_files.SaveWriter(tmp_path / "e.img", XML, True)
    w.open()
    with pytest.raises(HostError, match="wrote no state"):
        w.finish()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda b: b[: len(b) // 2], "is truncated"),
    (lambda b: b"XXXX" + b[4:], "is not a pyvirt save image"),
    (lambda b: b[:16] + struct.pack("<I", fmt.FORMAT_VERSION + 1) + b[20:], "written by a newer pyvirt"),
    (lambda b: b[:40] + bytes(8) + b[48:], "incomplete save image"),
    (lambda b: b[:fmt.HEADER_SIZE] + b"X" + b[fmt.HEADER_SIZE + 1:], "damaged domain XML"),
    (lambda b: b[:10], "only 10 bytes long"),
])
def test_bad_images_are_refused_by_what_is_wrong(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    good = write_image(tmp_path / "g.img").read_bytes()
    bad = tmp_path / "b.img"
    bad.write_bytes(mutate(good))
    with pytest.raises(InvalidArgument, match=message):
        save_files.read_image(bad)


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        save_files.read_image(tmp_path / "nope.img")
    with pytest.raises(InvalidArgument, match="is a directory"):
        save_files.SaveWriter(tmp_path, XML, True)
    with pytest.raises(InvalidArgument, match="absolute path"):
        save_files.SaveWriter(Path("rel.img"), XML, True)
    with pytest.raises(HostError, match="does not exist; create it first"):
        save_files.SaveWriter(tmp_path / "no" / "x.img", XML, True).open()


def test_rewrite_xml_in_place_keeps_the_stream(tmp_path: Path) -> None:
    path = write_image(tmp_path / "s.img", stream=b"STREAM" + bytes(10))
    longer = XML.replace("</domain>", "<description>" + "x" * 3000 + "</description></domain>")
    save_files.rewrite_xml(path, longer, running=False)
    image = save_files.read_image(path)
    assert image.xml == longer and not image.header.running and image.header.stream_len == 16
    fd = save_files.open_stream(image)
    try:
        assert os.read(fd, 6) == b"STREAM"
    finally:
        os.close(fd)
    with pytest.raises(InvalidArgument, match="does not fit"):
        save_files.rewrite_xml(path, XML.replace("</domain>", "<description>" + "y" * 9000 + "</description></domain>"),
                               running=None)


def test_partials_left_by_a_killed_daemon_are_removed(tmp_path: Path) -> None:
    w = save_files.SaveWriter(tmp_path / "s.img", XML, True)
    w.open()
    (tmp_path / "keep.img").write_bytes(b"mine")
    assert save_files.remove_partials(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["keep.img"]


def _dom(**kw: object) -> Domain:
    disk = Disk(target_dev="vda", bus="virtio", source="/a.qcow2", format="qcow2")
    nic = Interface(type="network", mac="52:54:00:00:00:01", model="virtio", source=(("network", "default"),),
                    target_dev="vnet3")
    base = Domain(name="d", uuid="5f3c1b52-7d43-4c1e-9a3e-2b7d0c4e8a11", memory_kib=131072, os=OS(machine="q35"),
                  devices=Devices(disks=(disk,), interfaces=(nic,)))
    return replace(base, **kw)  # type: ignore[arg-type]


def test_abi_allows_host_side_changes_and_names_guest_visible_ones() -> None:
    base = _dom()
    moved = replace(base, description="moved", devices=replace(
        base.devices, disks=(replace(base.devices.disks[0], source="/b.qcow2"),),
        interfaces=(replace(base.devices.interfaces[0], source=(("bridge", "br0"),), target_dev=None),)))
    assert abi_differences(base, moved) == []
    assert abi_differences(base, replace(base, memory_kib=262144)) == ["<memory_kib>"]
    assert abi_differences(base, replace(base, vcpus=2)) == ["<vcpus>"]
    other_mac = replace(base.devices.interfaces[0], mac="52:54:00:00:00:02")
    assert abi_differences(base, replace(base, devices=replace(base.devices, interfaces=(other_mac,)))) == [
        "the <devices> interfaces"]
    assert abi_differences(base, replace(base, name="e"))[0].startswith("the name")

