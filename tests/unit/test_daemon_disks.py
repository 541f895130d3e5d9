"""DiskManager's rules without QEMU: volume resolution at start, one writer per image,
media changes, node numbering and the sizes domblkinfo reports.

The domain table and the volume resolver are small stand-ins here (the real ones
need a store and active pools); tests/integration/test_disks.py runs the same
rules against real guests.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pyvirt.daemon import disks as dk
from pyvirt.daemon.devices import device_tag
from pyvirt.daemon.disks import DiskManager
from pyvirt.daemon.results import VolumeInfo
from pyvirt.errors import InvalidArgument, NotFound, OperationInvalid, UnsupportedConfig
from pyvirt.model.domain import OS, Devices, Disk, Domain
from pyvirt.model.storage import ImageLayer
from pyvirt.qemu.media import matches_qdev

UUID = "c7a5fdbd-edaf-9455-926a-d65c16db1809"


def dom(name: str, *disks: Disk) -> Domain:
    return Domain(name=name, uuid=UUID, memory_kib=65536, os=OS(machine="q35"), devices=Devices(disks=disks))


def entry(name: str, *disks: Disk, running: bool = True) -> Any:
    d = dom(name, *disks)
    return SimpleNamespace(name=name, config=d, running=SimpleNamespace(live=d) if running else None)


class FakeTable:
    """The domain table's running() over plain entries."""

    def __init__(self, entries: tuple[Any, ...]) -> None:
        self.entries = entries

    def running(self) -> Any:
        return ((e, e.running) for e in self.entries if e.running is not None)


def manager(*entries: Any, pools: Any = None) -> DiskManager:
    return DiskManager(FakeTable(entries), pools or FakePools({}))  # type: ignore[arg-type]


def vol(path: str, kind: str = "file", fmt: str | None = "raw") -> VolumeInfo:
    return VolumeInfo(os.path.basename(path), "default", kind, path, path, 4096, 4096, 4096, fmt, None)


class FakePools:
    """The volume resolver as VolumeManager answers it, for one pool 'default' (``chains``: recorded chains)."""

    def __init__(self, volumes: dict[str, VolumeInfo], chains: dict[str, tuple[ImageLayer, ...]] | None = None) -> None:
        self.volumes = volumes
        self.chains = chains or {}
        self.asked: list[tuple[str, str]] = []

    def chain(self, path: str, fmt: str, who: str) -> tuple[ImageLayer, ...]:
        self.asked.append((path, fmt))
        return self.chains.get(path, ())

    async def find(self, ref: str, pool: str | None = None) -> VolumeInfo:
        if pool != "default":
            raise NotFound(f"failed to get pool '{pool}': no storage pool with matching name or uuid")
        if ref not in self.volumes:
            raise NotFound(f"failed to get vol '{ref}': no storage volume in pool 'default'")
        return self.volumes[ref]

    def path_of(self, pool: str, name: str) -> str | None:
        found = self.volumes.get(name) if pool == "default" else None
        return found.path if found else None


def prepare(m: DiskManager, domain: Domain) -> Domain:
    async def run() -> Domain:
        async with contextlib.AsyncExitStack() as undo:
            return await m.prepare(domain.name, domain, undo)

    return asyncio.run(run())


def test_prepare_resolves_volumes_and_numbers_the_nodes(tmp_path: Path) -> None:
    image = tmp_path / "v.qcow2"
    image.write_bytes(b"\0" * 4096)
    pools = FakePools({"v.qcow2": vol(str(image), fmt="qcow2")})
    disks = (Disk("vda", "virtio", source_type="volume", source_pool="default", source_volume="v.qcow2"),
             Disk("sda", "sata", device="cdrom"),
             Disk("vdb", "virtio", source=str(tmp_path), readonly=True, format="raw", source_index=9))
    base = ImageLayer(str(tmp_path / "base.raw"), "raw")
    pools.chains[str(image)] = (base,)
    m = manager(pools=pools)
    live = prepare(m, dom("a", *disks))
    vda, sda, vdb = live.devices.disks
    assert (vda.source, vda.volume_type, vda.format, vda.source_index) == (str(image), "file", "qcow2", 1)
    assert (vda.source_pool, vda.source_volume) == ("default", "v.qcow2")  # the live XML keeps them
    assert sda.source_index is None and vdb.source_index == 3  # an empty cdrom has no nodes; numbers restart
    assert vda.backing_chain == (base,) and vdb.backing_chain == ()  # the recorded chain; raw has none
    assert pools.asked == [(str(image), "qcow2")]  # only a copy-on-write disk has a chain to look up


def test_a_volume_disk_takes_its_recorded_format_and_a_file_disk_is_raw(tmp_path: Path) -> None:
    image, other = tmp_path / "looks-like-qcow2.img", tmp_path / "also.img"
    for path in (image, other):
        path.write_bytes(b"QFI\xfb" + bytes(4092))  # what a guest can write onto its raw disk
    pools = FakePools({"v.img": vol(str(image), fmt="raw")})
    disks = (Disk("vda", "virtio", source_type="volume", source_pool="default", source_volume="v.img"),
             Disk("vdb", "virtio", source=str(other)))
    vda, vdb = prepare(manager(pools=pools), dom("a", *disks)).devices.disks
    assert vda.format == "raw" and vdb.format is None  # vdb: no <driver type>, opened as raw by argv
    assert pools.asked == []


def test_prepare_names_the_disk_of_a_missing_volume_or_pool() -> None:
    m = manager(pools=FakePools({}))
    for pool, why in (("default", "failed to get vol 'gone'"), ("other", "failed to get pool 'other'")):
        disk = Disk("vdc", "virtio", source_type="volume", source_pool=pool, source_volume="gone")
        with pytest.raises(NotFound) as info:
            prepare(m, dom("a", disk))
        assert str(info.value).startswith("cannot start domain 'a': disk vdc: ") and why in str(info.value)


def test_a_directory_volume_cannot_back_a_disk() -> None:
    m = manager(pools=FakePools({"d": vol("/x", kind="dir", fmt=None)}))
    disk = Disk("vda", "virtio", source_type="volume", source_pool="default", source_volume="d")
    with pytest.raises(UnsupportedConfig, match="is a dir volume"):
        asyncio.run(m.resolve(disk, "who"))


def test_a_second_writer_is_refused_naming_the_first(tmp_path: Path) -> None:
    image = str(tmp_path / "i.raw")
    Path(image).touch()
    first = entry("web", Disk("vda", "virtio", source=image))
    m = manager(first, entry("stopped", Disk("vda", "virtio", source=image), running=False))
    with pytest.raises(OperationInvalid, match="running domain 'web' writes to \\(its disk vda\\)"):
        m._check_writers("new", [Disk("vdb", "virtio", source=image)], 0, "cannot start domain 'new'")
    # by another name of the same file, too
    os.link(image, tmp_path / "hard.raw")
    with pytest.raises(OperationInvalid, match="'web'"):
        m._check_writers("new", [Disk("vdb", "virtio", source=str(tmp_path / "hard.raw"))], 0, "x")
    with pytest.raises(OperationInvalid, match="'web'"):  # shareable on one side only
        m._check_writers("new", [Disk("vdb", "virtio", source=image, shareable=True)], 0, "x")
    # readers together, or both shareable: fine; a domain may not open it twice itself
    reader = manager(entry("ro", Disk("vda", "virtio", source=image, readonly=True)))
    reader._check_writers("new", [Disk("sda", "sata", device="cdrom", source=image)], 0, "x")
    shared = manager(entry("sh", Disk("vda", "virtio", source=image, shareable=True)))
    shared._check_writers("new", [Disk("vdb", "virtio", source=image, shareable=True)], 0, "x")
    with pytest.raises(InvalidArgument, match="disks vda and vdb both use"):
        manager()._check_writers("new", [Disk("vda", "virtio", source=image), Disk("vdb", "virtio", source=image)],
                                 0, "x")


@pytest.mark.parametrize(("a", "b", "clash"), [
    (Disk("vda", "virtio", source="/i"), Disk("vdb", "virtio", source="/i"), True),
    (Disk("vda", "virtio", source="/i", readonly=True), Disk("vdb", "virtio", source="/i"), True),
    (Disk("vda", "virtio", source="/i", readonly=True), Disk("sda", "sata", device="cdrom", source="/i"), False),
    (Disk("vda", "virtio", source="/i", shareable=True), Disk("vdb", "virtio", source="/i"), True),
    (Disk("vda", "virtio", source="/i", shareable=True), Disk("vdb", "virtio", source="/i", shareable=True), False),
])
def test_clash(a: Disk, b: Disk, clash: bool) -> None:
    assert dk._clash(a, b) is clash and dk._clash(b, a) is clash


def test_new_media_follows_virshs_rules() -> None:
    e = SimpleNamespace(name="d")
    cd = Disk("sda", "sata", device="cdrom", source="/a.iso", source_index=2)
    empty = dk._new_media(e, cd, "eject", None, False)
    assert (empty.source, empty.source_index, empty.source_type) == (None, None, "file")
    assert dk._new_media(e, cd, "update", "/dev/sr0", True).source_type == "block"
    assert dk._new_media(e, cd, "update", None, False).source is None  # update without a source ejects
    with pytest.raises(OperationInvalid, match="doesn't have media"):
        dk._new_media(e, empty, "eject", None, False)
    with pytest.raises(OperationInvalid, match="already has media"):
        dk._new_media(e, cd, "insert", "/b.iso", False)
    with pytest.raises(OperationInvalid, match="not removable"):
        dk._new_media(e, Disk("vda", "virtio", source="/a"), "eject", None, False)
    volume_cd = Disk("sdb", "sata", device="cdrom", source_type="volume", source_pool="p", source_volume="v.iso")
    inserted = dk._new_media(e, dk._new_media(e, volume_cd, "eject", None, False), "insert", "/c.iso", False)
    assert (inserted.source_type, inserted.source, inserted.source_pool) == ("file", "/c.iso", None)


def test_pin_indexes_keeps_node_names_when_a_disk_goes() -> None:
    live = dom("d", Disk("vda", "virtio", source="/a"), Disk("sda", "sata", device="cdrom"),
               Disk("vdb", "virtio", source="/b"))
    pinned = dk._pin_indexes(live)
    assert [d.source_index for d in pinned.devices.disks] == [1, None, 3]
    assert DiskManager._next_index(pinned) == 4


def test_qdev_names() -> None:
    assert matches_qdev("/machine/peripheral/virtio-disk1/virtio-backend", "virtio-disk1")
    assert matches_qdev("sata0-0-0", "sata0-0-0")
    assert not matches_qdev("/machine/peripheral/virtio-disk10/virtio-backend", "virtio-disk1")


def test_host_sizes_of_a_sparse_raw_file(tmp_path: Path) -> None:
    path = tmp_path / "sparse.raw"
    with open(path, "wb") as f:
        f.write(b"x" * 8192)
        f.truncate(1 << 20)
    capacity, allocation, physical = dk._host_sizes("d", Disk("vda", "virtio", source=str(path), format="raw"),
                                                    str(path), None, None)
    assert (capacity, physical) == (1 << 20, 1 << 20)
    assert 8192 <= allocation < 1 << 20  # du, not ls


@pytest.mark.parametrize(("xml", "error"), [
    ("<hostdev/>", "<hostdev> device is not supported"),
    ("<disk", "not well-formed"),
])
def test_device_xml_must_be_a_disk_or_an_interface(xml: str, error: str) -> None:
    with pytest.raises(InvalidArgument, match=error):
        device_tag(xml)
    assert device_tag("<interface type='user'/>") == "interface"
