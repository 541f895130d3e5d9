"""The daemon opens a disk's image and every recorded backing layer; QEMU is told only fd sets.

Real files in a temporary directory and real descriptors: no QEMU is needed to see what it would
be handed (the integration tests start one as pyvirt-qemu, which could open none of these paths)."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from pyvirt.daemon.hostfiles import HostFiles, hotplug_sets, open_disk, open_host_files
from pyvirt.model.domain import OS, Devices, Disk, Domain
from pyvirt.model.storage import ImageLayer
from pyvirt.qemu.argv import build_argv

from .argv_cases import UUID, base_ctx


def chained_disk(tmp_path: Path) -> Disk:
    for name in ("top.qcow2", "mid.qcow2", "base.raw"):
        (tmp_path / name).write_bytes(b"\0" * 512)
    chain = (ImageLayer(str(tmp_path / "mid.qcow2"), "qcow2"), ImageLayer(str(tmp_path / "base.raw"), "raw"))
    return Disk(source=str(tmp_path / "top.qcow2"), target_dev="vda", bus="virtio", format="qcow2",
                backing_chain=chain)


def blockdevs(argv: list[str]) -> list[dict[str, object]]:
    return [json.loads(argv[i + 1]) for i, a in enumerate(argv) if a == "-blockdev"]


def test_every_backing_layer_is_opened_read_only_and_named_by_its_fd_set(tmp_path: Path) -> None:
    disk = chained_disk(tmp_path)
    files = HostFiles()
    try:
        top = open_disk(files, disk)
        sets = {files.paths[layer.path] for layer in disk.backing_chain}
        assert top == "/dev/fdset/1" and sets == {"/dev/fdset/2", "/dev/fdset/3"}
        # the image: a read-write and a read-only fd; each backing layer: read-only only
        access: dict[int, list[int]] = {p.set: [] for p in files.add_fds}
        for p in files.add_fds:
            access[p.set].append(_accmode(p.fd))
        assert sorted(access[1]) == sorted([os.O_RDWR, os.O_RDONLY])
        assert access[2] == [os.O_RDONLY] and access[3] == [os.O_RDONLY]
    finally:
        files.close()


def _accmode(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE


def test_argv_names_no_host_path_of_the_chain(tmp_path: Path) -> None:
    disk = chained_disk(tmp_path)
    dom = Domain(name="vm1", uuid=UUID, type="qemu", memory_kib=131072, vcpus=1, os=OS(machine="q35"),
                 devices=Devices(disks=(disk,)))
    files = open_host_files(dom, str(tmp_path / "serial.log"))
    try:
        cmd = build_argv(dom, base_ctx(host_paths=dict(files.paths), add_fds=tuple(files.add_fds)))
        argv = list(cmd.argv)
    finally:
        files.close()
    opened_by_path = [a for a in argv if str(tmp_path) in a and not a.startswith("fd=")]  # -add-fd opaques name them
    assert opened_by_path == [], opened_by_path
    fmt = next(b for b in blockdevs(argv) if b.get("driver") == "qcow2")
    mid = fmt["backing"]
    assert isinstance(mid, dict) and mid["file"] == {"driver": "file", "filename": "/dev/fdset/2"}
    assert mid["backing"]["file"]["filename"] == "/dev/fdset/3" and mid["read-only"] is True


def test_hot_plugged_disks_have_set_ranges_of_their_own() -> None:
    a, b = hotplug_sets(1), hotplug_sets(2)
    assert a.stop == b.start and len(a) > 16 + 1  # an image and the deepest chain storage allows


def test_a_disk_without_chain_gets_one_set(tmp_path: Path) -> None:
    disk = replace(chained_disk(tmp_path), backing_chain=(), format="raw")
    files = HostFiles()
    try:
        assert open_disk(files, disk) == "/dev/fdset/1" and set(files.paths) == {disk.source}
    finally:
        files.close()


def test_sealed_copies_are_kept_while_the_file_is_unchanged(tmp_path: Path) -> None:
    """A second start on the same kernel reuses its sealed copy; a changed kernel gets a new one, with the
    new content; the budget bounds what is kept."""
    import fcntl

    from pyvirt.daemon.sealed_images import SEALS, SealedImages

    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"A" * 4096)
    fresh = SealedImages(budget=8192)  # a file written just now is not kept: its times may not tick yet
    a, b = fresh.fd_for(str(kernel)), fresh.fd_for(str(kernel))
    assert os.fstat(a).st_ino != os.fstat(b).st_ino
    for fd in (a, b):
        os.close(fd)
    fresh.close()
    cache = SealedImages(budget=8192, settle=0)
    first, second = cache.fd_for(str(kernel)), cache.fd_for(str(kernel))
    try:
        assert os.fstat(first).st_ino == os.fstat(second).st_ino  # one copy, two descriptors
        assert fcntl.fcntl(first, 1034) & SEALS == SEALS  # F_GET_SEALS: nobody can change it
        (tmp_path / "new").write_bytes(b"B" * 4096)
        os.replace(tmp_path / "new", kernel)  # a new kernel (times may not have ticked: the inode differs)
        third = cache.fd_for(str(kernel))
        assert os.fstat(third).st_ino != os.fstat(first).st_ino and os.pread(third, 1, 0) == b"B"
        os.close(third)
        big = tmp_path / "big"
        big.write_bytes(b"C" * 16384)  # over the budget: copied, not kept
        a, b = cache.fd_for(str(big)), cache.fd_for(str(big))
        assert os.fstat(a).st_ino != os.fstat(b).st_ino
        os.close(a)
        os.close(b)
    finally:
        os.close(first)
        os.close(second)
        cache.close()
