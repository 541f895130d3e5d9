"""Pool backends on the real tools: qemu-img, mkfs/mount on loop devices, LVM, parted.

Everything lives under pytest's tmp dirs; loop devices are detached, mounts
undone and volume groups (named pvts*) removed in fixtures' finally blocks,
so a failing test leaves nothing behind. NFS/CIFS cannot be served here, so
the netfs test checks the mount command built and the error of a failed
mount. A kernel without device-mapper cannot activate LVM volumes: the
logical test then checks that start says so (and the data calls refuse),
and otherwise that activation works.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.errors import AlreadyExists, HostError, InvalidArgument, NotFound, OperationInvalid
from pyvirt.model.storage import BackingStore, ImageLayer, Permissions, Pool, PoolSource, PoolTarget, Volume
from pyvirt.model.storage_xml import format_pool_xml, parse_pool_xml
from pyvirt.qemu import img
from pyvirt.storage import backend_for
from pyvirt.storage.base import CHUNK, signature
from pyvirt.storage.disk import DiskBackend
from pyvirt.storage.fs import FsBackend, mount_at
from pyvirt.storage.logical import LogicalBackend, dm_available
from pyvirt.storage.netfs import NetfsBackend

pytestmark = pytest.mark.integration

M = 1024**2
LVM_ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}
NO_DM = ["--config", "global { activation = 0 }"] if not dm_available() else []


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, env=LVM_ENV)


def lvm(tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh(tool, *NO_DM, *args, check=check)


def qemu_io(path: Path, fmt: str, cmd: str) -> None:
    sh("qemu-io", "-f", fmt, "-c", cmd, str(path))


class Progress:
    """Collects progress callbacks (percent) to check they rise to 100."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def __call__(self, pct: float) -> None:
        self.values.append(pct)

    def check(self) -> None:
        assert self.values, "no progress was reported"
        assert self.values == sorted(self.values)
        assert self.values[-1] == 100.0


# ---------------------------------------------------------------- fixtures
def _unmount_under(paths: list[str]) -> None:
    for _ in range(5):
        targets = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                mnt, src = left.split()[4], right.split()[1]
                if any(src == p or src.startswith(p + "p") or mnt.startswith(p) for p in paths):
                    targets.append(mnt)
        if not targets:
            return
        for mnt in reversed(targets):
            subprocess.run(["umount", "-l", mnt], capture_output=True)


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """attach(size, partscan=False) -> a loop device over a new sparse file; all detached at the end."""
    attached: list[str] = []

    def attach(size: int, partscan: bool = False, name: str | None = None) -> str:
        backing = tmp_path / (name or f"loop{len(attached)}.img")
        with open(backing, "wb") as f:
            f.truncate(size)
        argv = ["losetup", "--find", "--show", *(["--partscan"] if partscan else []), str(backing)]
        dev = sh(*argv).stdout.strip()
        attached.append(dev)
        return dev

    try:
        yield attach
    finally:
        _unmount_under([*attached, str(tmp_path)])
        for dev in attached:
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        for line in sh("losetup", "-a").stdout.splitlines():  # nothing of ours may stay attached
            assert str(tmp_path) not in line, f"loop device left attached: {line}"


@pytest.fixture
def vg_name(loops: Callable[..., str]) -> Iterator[str]:
    """A unique pvts* VG name; the VG and PV labels are removed before the loop devices go."""
    name = f"pvts{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        if lvm("vgs", name, check=False).returncode == 0:
            pvs = lvm("pvs", "--noheadings", "-o", "pv_name", "-S", f"vg_name={name}").stdout.split()
            if not NO_DM:
                lvm("vgchange", "-an", name, check=False)
            lvm("vgremove", "-f", "-y", name, check=False)
            for pv in pvs:
                lvm("pvremove", "-y", pv, check=False)


def dir_pool(path: Path, name: str = "pvts-dir", mode: str | None = None) -> Pool:
    perms = Permissions(mode=mode) if mode else None
    return Pool(name=name, type="dir", target=PoolTarget(path=str(path), permissions=perms))


@pytest.fixture
def dpool(tmp_path: Path):
    backend = backend_for(dir_pool(tmp_path / "pool"))
    backend.build()
    backend.start()
    return backend


# ---------------------------------------------------------------- dir pools
def test_dir_pool_build_info_and_delete(tmp_path: Path) -> None:
    target = tmp_path / "a" / "pool"
    backend = backend_for(dir_pool(target, mode="0750"))
    assert not backend.is_active()
    with pytest.raises(OperationInvalid, match="run pool-build"):
        backend.start()
    backend.build()
    assert target.is_dir() and (target.stat().st_mode & 0o777) == 0o750
    backend.start()
    assert backend.is_active()
    info = backend.info()
    assert 0 < info.available <= info.capacity and info.allocation <= info.capacity
    xml = format_pool_xml(backend.pool, info)
    assert f"<capacity unit='bytes'>{info.capacity}</capacity>" in xml
    backend.create_volume(Volume(name="v.img", capacity=M))
    with pytest.raises(OperationInvalid, match="still holds 1 entries"):
        backend.delete()
    backend.delete_volume("v.img")
    backend.delete()
    assert not target.exists()
    default = backend_for(dir_pool(tmp_path / "b"))
    default.build()
    assert ((tmp_path / "b").stat().st_mode & 0o777) == 0o711  # libvirt's default pool mode


def test_create_raw_qcow2_and_allocation(dpool) -> None:
    p = Progress()
    sparse = dpool.create_volume(Volume(name="sparse.img", capacity=16 * M), progress=p)
    p.check()
    assert (sparse.format, sparse.capacity, sparse.type) == ("raw", 16 * M, "file")
    assert sparse.allocation is not None and sparse.allocation < M
    assert sparse.key == sparse.path == os.path.join(dpool.target, "sparse.img")
    assert sparse.permissions == Permissions(mode="0600", owner=0, group=0)  # libvirt's default volume mode

    full = dpool.create_volume(Volume(name="full.img", capacity=8 * M, allocation=8 * M))
    assert full.allocation is not None and full.allocation >= 8 * M
    part = dpool.create_volume(Volume(name="part.img", capacity=16 * M, allocation=4 * M, format="raw",
                                      permissions=Permissions(mode="0640")))
    assert part.allocation is not None and 4 * M <= part.allocation < 16 * M
    assert part.permissions is not None and part.permissions.mode == "0640"

    q = dpool.create_volume(Volume(name="d.qcow2", capacity=64 * M, format="qcow2"))
    assert (q.format, q.capacity) == ("qcow2", 64 * M)
    assert q.physical is not None and q.physical < M
    qf = dpool.create_volume(Volume(name="f.qcow2", capacity=8 * M, allocation=8 * M, format="qcow2"))
    assert qf.allocation is not None and qf.allocation >= 8 * M

    assert [v.name for v in dpool.list_volumes()] == ["d.qcow2", "f.qcow2", "full.img", "part.img", "sparse.img"]
    assert dpool.volume("d.qcow2") == q
    with pytest.raises(AlreadyExists, match="already exists in pool 'pvts-dir'"):
        dpool.create_volume(Volume(name="d.qcow2", capacity=M))
    with pytest.raises(InvalidArgument, match="format 'vmdk' is not supported"):
        dpool.create_volume(Volume(name="x.vmdk", capacity=M, format="vmdk"))
    with pytest.raises(NotFound, match="has no volume 'nope'"):
        dpool.volume("nope")


def test_linked_clone_leaves_the_base_unchanged(dpool, tmp_path: Path) -> None:
    base = dpool.create_volume(Volume(name="base.img", capacity=4 * M))
    qemu_io(Path(base.path), "raw", "write -P 0x11 0 1M")
    before = digest(base.path)
    clone = dpool.create_volume(Volume(name="clone.qcow2", capacity=0,
                                       backing=BackingStore(path=base.path, format="raw")))
    assert clone.format == "qcow2" and clone.capacity == 4 * M  # capacity 0: the backing file's size
    assert clone.backing == BackingStore(path=base.path, format="raw")
    qemu_io(Path(clone.path), "qcow2", "write -P 0x22 0 512k")
    assert digest(base.path) == before
    flat = tmp_path / "flat.raw"
    img.convert(clone.path, flat, src_fmt="qcow2", dst_fmt="raw")
    data = flat.read_bytes()
    assert data[:512 * 1024] == b"\x22" * (512 * 1024)
    assert data[512 * 1024:M] == b"\x11" * (512 * 1024)  # the rest still comes from the base
    bigger = dpool.create_volume(Volume(name="big.qcow2", capacity=8 * M, backing=BackingStore(path=base.path)))
    assert bigger.capacity == 8 * M and bigger.backing is not None and bigger.backing.format == "raw"
    with pytest.raises(InvalidArgument, match="raw volume cannot have a backing store"):
        dpool.create_volume(Volume(name="r.img", capacity=M, format="raw", backing=BackingStore(path=base.path)))
    with pytest.raises(NotFound, match="backing store"):
        dpool.create_volume(Volume(name="n.qcow2", capacity=M, backing=BackingStore(path=str(tmp_path / "no"))))
    assert digest(base.path) == before


def test_resize_grow_and_shrink(dpool) -> None:
    dpool.create_volume(Volume(name="r.img", capacity=8 * M))
    assert dpool.resize_volume("r.img", 16 * M).capacity == 16 * M
    with pytest.raises(InvalidArgument, match="shrinks it"):
        dpool.resize_volume("r.img", 4 * M)
    assert dpool.volume("r.img").capacity == 16 * M
    assert dpool.resize_volume("r.img", 4 * M, shrink=True).capacity == 4 * M
    dpool.create_volume(Volume(name="q.qcow2", capacity=8 * M, format="qcow2"))
    assert dpool.resize_volume("q.qcow2", 32 * M).capacity == 32 * M
    with pytest.raises(InvalidArgument, match="above zero"):
        dpool.resize_volume("q.qcow2", 0)


def test_wipe_keeps_size_and_format(dpool, tmp_path: Path) -> None:
    raw = dpool.create_volume(Volume(name="w.img", capacity=4 * M, allocation=4 * M))
    qemu_io(Path(raw.path), "raw", "write -P 0x5a 0 4M")
    inode = os.stat(raw.path).st_ino
    dpool.wipe_volume("w.img")
    assert os.stat(raw.path).st_ino == inode  # zeroed in place, never truncated and refilled
    after = dpool.volume("w.img")
    assert after.capacity == 4 * M and after.format == "raw"
    assert after.allocation is not None and after.allocation >= 4 * M  # preallocation kept
    assert Path(raw.path).read_bytes() == bytes(4 * M)
    sparse = dpool.create_volume(Volume(name="s.img", capacity=4 * M))
    qemu_io(Path(sparse.path), "raw", "write -P 0x5a 1M 1M")
    dpool.wipe_volume("s.img")
    assert Path(sparse.path).read_bytes() == bytes(4 * M) and dpool.volume("s.img").allocation < M  # holes again

    q = dpool.create_volume(Volume(name="w.qcow2", capacity=8 * M, format="qcow2",
                                   permissions=Permissions(mode="0640")))
    qemu_io(Path(q.path), "qcow2", "write -P 0x5a 0 2M")
    assert dpool.volume("w.qcow2").allocation > 2 * M
    dpool.wipe_volume("w.qcow2")  # a fresh image under a temporary name, renamed over the volume
    wiped = dpool.volume("w.qcow2")
    assert (wiped.format, wiped.capacity) == ("qcow2", 8 * M)
    assert wiped.permissions is not None and wiped.permissions.mode == "0640"
    assert wiped.allocation is not None and wiped.allocation < M
    flat = tmp_path / "flat.raw"
    img.convert(q.path, flat, src_fmt="qcow2", dst_fmt="raw")
    assert flat.read_bytes() == bytes(8 * M)
    assert not [n for n in os.listdir(dpool.target) if n.startswith(".pyvirt")]


def test_delete_volume(dpool) -> None:
    dpool.create_volume(Volume(name="d.img", capacity=M))
    dpool.delete_volume("d.img")
    assert dpool.list_volumes() == []
    with pytest.raises(NotFound):
        dpool.delete_volume("d.img")


def test_volume_paths_cannot_escape_the_pool(dpool, tmp_path: Path) -> None:
    outside = tmp_path / "secret.img"
    outside.write_bytes(b"keep me")
    for bad in ("../secret.img", "a/b", "..", ".", ""):
        with pytest.raises(InvalidArgument, match="invalid volume name"):
            dpool.volume_path(bad)
    with pytest.raises(InvalidArgument, match="invalid volume name"):
        dpool.create_volume(Volume(name="../secret.img", capacity=M))
    os.symlink(outside, os.path.join(dpool.target, "link.img"))
    os.symlink("../secret.img", os.path.join(dpool.target, "rel.img"))
    for name in ("link.img", "rel.img"):
        with pytest.raises(InvalidArgument, match="outside the pool directory"):
            dpool.volume_path(name)
        with pytest.raises(InvalidArgument, match="outside the pool directory"):
            dpool.delete_volume(name)
        with pytest.raises(InvalidArgument, match="outside the pool directory"):
            dpool.upload_volume(name, io.BytesIO(b"x"), 1)
        with pytest.raises(InvalidArgument, match="outside the pool directory"):
            dpool.wipe_volume(name)
    assert outside.read_bytes() == b"keep me"
    assert dpool.list_volumes() == []  # escaping links are not volumes
    dpool.create_volume(Volume(name="in.img", capacity=M))
    os.symlink("in.img", os.path.join(dpool.target, "alias.img"))
    assert dpool.volume_path("alias.img") == os.path.join(dpool.target, "alias.img")
    assert [v.name for v in dpool.list_volumes()] == ["alias.img", "in.img"]


def test_upload_download_round_trip(dpool) -> None:
    vol = dpool.create_volume(Volume(name="u.img", capacity=2 * CHUNK + M))
    data = os.urandom(2 * CHUNK + 12345)
    up = Progress()
    assert dpool.upload_volume("u.img", io.BytesIO(data), len(data), offset=4096, progress=up) == len(data)
    up.check()
    assert len(up.values) == 3  # one callback per 4 MiB chunk
    raw = Path(vol.path).read_bytes()
    assert raw[:4096] == bytes(4096) and raw[4096:4096 + len(data)] == data
    out, down = io.BytesIO(), Progress()
    assert dpool.download_volume("u.img", out, offset=4096, length=len(data), progress=down) == len(data)
    down.check()
    assert out.getvalue() == data
    whole = io.BytesIO()
    dpool.download_volume("u.img", whole)
    assert whole.getvalue() == raw and len(raw) == 2 * CHUNK + M
    with pytest.raises(InvalidArgument, match="run past its end"):
        dpool.upload_volume("u.img", io.BytesIO(bytes(10)), 10, offset=2 * CHUNK + M - 5)
    with pytest.raises(InvalidArgument, match="run past its end"):
        dpool.download_volume("u.img", io.BytesIO(), offset=2 * CHUNK + M, length=1)
    with pytest.raises(InvalidArgument, match="ended after 3 of 10 bytes"):
        dpool.upload_volume("u.img", io.BytesIO(b"abc"), 10)
    q = dpool.create_volume(Volume(name="q.qcow2", capacity=8 * M, format="qcow2"))
    with pytest.raises(InvalidArgument, match="replaced whole"):
        dpool.upload_volume("q.qcow2", io.BytesIO(b"x"), 1, offset=512)
    # a whole qcow2 image uploaded over a qcow2 volume: the file becomes that image
    src = Path(dpool.target).parent / "src.qcow2"
    img.create(src, "qcow2", 16 * M)
    blob = src.read_bytes()
    dpool.upload_volume("q.qcow2", io.BytesIO(blob), len(blob))
    assert Path(q.path).read_bytes() == blob and dpool.volume("q.qcow2").capacity == 16 * M


def test_create_from_is_a_full_copy(dpool, tmp_path: Path) -> None:
    src = tmp_path / "src.qcow2"
    img.create(src, "qcow2", 8 * M)
    qemu_io(src, "qcow2", "write -P 0x77 1M 2M")
    before = digest(src)
    p = Progress()
    copy = dpool.create_volume_from(Volume(name="copy.img", capacity=0, format="raw"), ImageLayer(str(src), "qcow2"),
                                 progress=p)
    p.check()
    assert (copy.format, copy.capacity, copy.backing) == ("raw", 8 * M, None)
    sh("qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(src), copy.path)
    grown = dpool.create_volume_from(Volume(name="grown.qcow2", capacity=32 * M), ImageLayer(str(src), "qcow2"))
    assert (grown.format, grown.capacity, grown.backing) == ("qcow2", 32 * M, None)
    with pytest.raises(InvalidArgument, match="smaller than"):
        dpool.create_volume_from(Volume(name="small.img", capacity=M), ImageLayer(str(src), "qcow2"))
    assert not os.path.exists(os.path.join(dpool.target, "small.img"))
    with pytest.raises(AlreadyExists):
        dpool.create_volume_from(Volume(name="copy.img", capacity=0), ImageLayer(str(src), "qcow2"))
    assert digest(src) == before


# ---------------------------------------------------------------- out of space (tiny fs pool)
@pytest.fixture
def tiny_pool(loops, tmp_path: Path) -> Iterator[FsBackend]:
    """An 8 MiB ext4 (no reserved blocks) on a loop device, mounted as an fs pool."""
    dev = loops(8 * M)
    sh("mkfs.ext4", "-q", "-F", "-m", "0", dev)
    pool = Pool(name="pvts-tiny", type="fs", target=PoolTarget(path=str(tmp_path / "tiny")),
                source=PoolSource(devices=(dev,), format="ext4"))
    backend = backend_for(pool)
    assert isinstance(backend, FsBackend)
    os.makedirs(backend.target)
    backend.start()
    try:
        yield backend
    finally:
        backend.stop()


def test_out_of_space_is_refused_and_cleaned_up(tiny_pool: FsBackend, tmp_path: Path) -> None:
    free = tiny_pool.info().available
    assert free < 8 * M
    with pytest.raises(HostError, match=r"out of space in pool 'pvts-tiny' \(needed 20971520 bytes, available"):
        tiny_pool.create_volume(Volume(name="big.img", capacity=20 * M, allocation=20 * M))
    assert not os.path.exists(os.path.join(tiny_pool.target, "big.img"))

    tiny_pool.create_volume(Volume(name="sparse.img", capacity=20 * M))  # sparse: fits
    with pytest.raises(HostError, match="out of space in pool 'pvts-tiny'"):
        tiny_pool.upload_volume("sparse.img", io.BytesIO(bytes(20 * M)), 20 * M)
    assert tiny_pool.volume("sparse.img").allocation < M  # refused before writing anything

    # a full copy that does not fit: qemu-img hits ENOSPC, the partial file goes, the source stays
    src = tmp_path / "random.raw"
    src.write_bytes(os.urandom(12 * M))
    before = digest(src)
    with pytest.raises(HostError, match="out of space in pool 'pvts-tiny'") as info:
        tiny_pool.create_volume_from(Volume(name="copy.img", capacity=0), ImageLayer(str(src), "raw"))
    assert "needed" in str(info.value) and "available" in str(info.value)
    assert not os.path.exists(os.path.join(tiny_pool.target, "copy.img"))
    assert digest(src) == before
    assert tiny_pool.info().available >= free - 64 * 1024  # the space came back


def fill(path: str) -> None:
    """Another writer: append to ``path`` until the filesystem is full."""
    with open(path, "ab") as f:
        try:
            while True:
                f.write(bytes(M))
                f.flush()
        except OSError:
            pass


def test_out_of_space_after_the_check_removes_what_the_create_made(tiny_pool: FsBackend,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The pre-check passes, then another writer takes the space: qemu-img (falloc) or the partial
    fallocate fails after the file exists, and the cleanup must remove it."""
    filler = os.path.join(tiny_pool.target, "filler")
    checked = tiny_pool.available

    def available_then_filled() -> int:
        free = checked()
        fill(filler)  # right after the check
        return free

    monkeypatch.setattr(tiny_pool, "available", available_then_filled)
    free = checked()
    for name, allocation in (("falloc.img", 6 * M), ("partial.img", 5 * M)):
        with pytest.raises(HostError, match="out of space in pool 'pvts-tiny'"):
            tiny_pool.create_volume(Volume(name=name, capacity=6 * M, allocation=allocation, format="raw"))
        assert not os.path.exists(os.path.join(tiny_pool.target, name))
        os.unlink(filler)
    assert checked() >= free - 64 * 1024  # the space came back


class RacingReader:
    """Random bytes; on the first read, another writer fills the filesystem ``filler`` is on."""

    def __init__(self, filler: str) -> None:
        self.filler = filler
        self.calls = 0

    def read(self, n: int) -> bytes:
        self.calls += 1
        if self.calls == 1:
            fill(self.filler)
        return os.urandom(n)


def test_out_of_space_in_the_middle_of_an_upload(tiny_pool: FsBackend) -> None:
    """Space taken by another writer after the check: the write itself hits ENOSPC. An upload that
    replaces the whole volume goes to a temporary file, so the volume keeps its old bytes and the
    temporary goes (its space comes back); a range written into a raw volume keeps the volume,
    whose other bytes are the user's."""
    filler = os.path.join(tiny_pool.target, "filler")
    free = tiny_pool.info().available
    tiny_pool.create_volume(Volume(name="up.img", capacity=6 * M))
    with pytest.raises(HostError, match=r"out of space in pool 'pvts-tiny' \(needed \d+ bytes, available \d+"):
        tiny_pool.upload_volume("up.img", RacingReader(filler), 6 * M)
    with open(os.path.join(tiny_pool.target, "up.img"), "rb") as f:
        assert f.read() == bytes(6 * M)  # the volume as it was
    assert [n for n in os.listdir(tiny_pool.target) if n.startswith(".pyvirt-tmp")] == []
    os.unlink(filler)
    assert tiny_pool.info().available >= free - 64 * 1024

    tiny_pool.create_volume(Volume(name="part.img", capacity=6 * M))
    with pytest.raises(HostError, match="out of space in pool 'pvts-tiny'") as info:
        tiny_pool.upload_volume("part.img", RacingReader(filler), 4 * M, offset=M)
    assert "removed" not in str(info.value)
    assert tiny_pool.volume("part.img").capacity == 6 * M  # the volume itself stays
    os.unlink(filler)


# ---------------------------------------------------------------- fs pools
def test_fs_pool_build_start_stop(loops, tmp_path: Path) -> None:
    dev = loops(32 * M)
    target = tmp_path / "fsmnt"
    xml = (f"<pool type='fs'><name>pvts-fs</name><source><device path='{dev}'/><format type='ext4'/></source>"
           f"<target><path>{target}</path></target></pool>")
    backend = backend_for(parse_pool_xml(xml))
    assert isinstance(backend, FsBackend)
    backend.build()
    assert signature(dev) == "ext4" and target.is_dir()
    first_uuid = sh("blkid", "-p", "-s", "UUID", "-o", "value", dev).stdout.strip()
    with pytest.raises(OperationInvalid, match=f"device '{dev}' already holds ext4"):
        backend.build()
    assert sh("blkid", "-p", "-s", "UUID", "-o", "value", dev).stdout.strip() == first_uuid  # untouched
    backend.build(overwrite=True)
    assert sh("blkid", "-p", "-s", "UUID", "-o", "value", dev).stdout.strip() != first_uuid  # reformatted
    assert not backend.is_active()
    with pytest.raises(OperationInvalid, match="not mounted"):
        backend.info()
    backend.start()
    try:
        assert mount_at(str(target)) == (dev, "ext4")
        assert backend.is_active()
        backend.start()  # already mounted: nothing to do
        info = backend.info()
        assert 20 * M < info.capacity <= 32 * M
        vol = backend.create_volume(Volume(name="v.qcow2", capacity=64 * M, format="qcow2"))
        assert vol.path == str(target / "v.qcow2")
        with pytest.raises(OperationInvalid, match="is mounted"):
            backend.build(overwrite=True)
        with pytest.raises(OperationInvalid, match="still mounted"):
            backend.delete()
    finally:
        backend.stop()
    assert mount_at(str(target)) is None and not backend.is_active()
    assert not (target / "v.qcow2").exists()  # the volume lives on the unmounted filesystem
    backend.start()
    assert [v.name for v in backend.list_volumes()] == ["v.qcow2"]
    backend.stop()
    backend.delete()
    assert not target.exists()


def test_fs_pool_on_an_image_file_is_loop_mounted(tmp_path: Path) -> None:
    image = tmp_path / "fs.img"
    with open(image, "wb") as f:
        f.truncate(16 * M)
    target = tmp_path / "mnt"
    pool = Pool(name="pvts-fsfile", type="fs", target=PoolTarget(path=str(target)),
                source=PoolSource(devices=(str(image),), format="ext4"))
    backend = FsBackend(pool)
    auto = FsBackend(Pool(name="pvts-auto", type="fs", target=pool.target,
                          source=PoolSource(devices=(str(image),), format="auto")))
    with pytest.raises(InvalidArgument, match="needs a filesystem type"):
        auto.build()
    backend.build()
    assert backend.mount_argv() == ["mount", "-t", "ext4", "-o", "loop", str(image), str(target)]
    assert auto.mount_argv() == ["mount", "-o", "loop", str(image), str(target)]
    try:
        auto.start()  # mount finds the type itself
        assert backend.is_active() and mount_at(str(target))[1] == "ext4"
    finally:
        backend.stop()
    assert not backend.is_active()
    assert str(image) not in sh("losetup", "-a").stdout  # umount freed the loop device


def test_fs_start_on_a_blank_device_fails_with_mounts_words(loops, tmp_path: Path) -> None:
    dev = loops(8 * M)
    target = tmp_path / "blank"
    target.mkdir()
    backend = FsBackend(Pool(name="pvts-blank", type="fs", target=PoolTarget(path=str(target)),
                             source=PoolSource(devices=(dev,), format="ext4")))
    with pytest.raises(HostError) as info:
        backend.start()
    assert f"cannot mount '{dev}' on '{target}' for pool 'pvts-blank': mount failed: mount: " in info.value.message
    assert "wrong fs type" in info.value.message or "bad superblock" in info.value.message
    assert info.value.detail is not None and f"command: mount -t ext4 {dev} {target}" in info.value.detail
    assert not backend.is_active()


def test_fs_build_refuses_a_missing_device(tmp_path: Path) -> None:
    pool = Pool(name="pvts-nodev", type="fs", target=PoolTarget(path=str(tmp_path / "m")),
                source=PoolSource(devices=(str(tmp_path / "nodev"),), format="ext4"))
    with pytest.raises(NotFound, match="does not exist"):
        backend_for(pool).build()
    with pytest.raises(OperationInvalid, match="run pool-build"):
        backend_for(pool).start()


# ---------------------------------------------------------------- netfs pools
def test_netfs_mount_command_and_failed_mount(tmp_path: Path) -> None:
    """No NFS/CIFS server can run here: check the command, and that a failed mount is a clear error."""
    target = tmp_path / "nfs"

    def pool(fmt: str, host: str = "127.0.0.1", port: int | None = None) -> NetfsBackend:
        backend = backend_for(Pool(name="pvts-nfs", type="netfs", target=PoolTarget(path=str(target)),
                                   source=PoolSource(host=host, port=port, dir="/export/vms", format=fmt)))
        assert isinstance(backend, NetfsBackend)
        return backend

    assert pool("nfs").mount_argv() == ["mount", "-t", "nfs", "127.0.0.1:/export/vms", str(target)]
    assert pool("auto").mount_argv() == ["mount", "127.0.0.1:/export/vms", str(target)]
    assert pool("nfs", port=2049).mount_argv()[-2:] == ["-o", "port=2049"]
    assert pool("nfs", host="::1").mount_argv()[3] == "[::1]:/export/vms"
    assert pool("cifs", host="fileserver").mount_argv() == [
        "mount", "-t", "cifs", "//fileserver/export/vms", str(target), "-o", "guest"]
    nfs = pool("nfs")
    with pytest.raises(OperationInvalid, match="run pool-build"):
        nfs.start()
    nfs.build()
    assert target.is_dir()
    if shutil.which("mount.nfs", path="/usr/sbin:/sbin:" + os.environ.get("PATH", "")) is None:
        with pytest.raises(HostError, match=r"mount.nfs is not installed; install Debian's nfs-common"):
            nfs.start()
        # 'auto' leaves the type to mount, which then fails for want of the helper: its words are shown
        with pytest.raises(HostError) as info:
            pool("auto").start()
        message = str(info.value)
        assert "cannot mount '127.0.0.1:/export/vms' on" in message and "mount failed: mount:" in message
        assert "command: mount 127.0.0.1:/export/vms" in message  # the detail shows the command
    # (with nfs-common installed, mount.nfs would retry an absent server for minutes: not run here)
    assert not nfs.is_active() and mount_at(str(target)) is None
    nfs.delete()
    assert not target.exists()


# ---------------------------------------------------------------- logical pools
def test_logical_pool_on_two_loop_devices(loops, vg_name: str) -> None:
    a, b = loops(64 * M), loops(64 * M)
    sh("mkfs.ext4", "-q", "-F", b)  # b holds a filesystem: build must not destroy it unasked
    xml = (f"<pool type='logical'><name>pvtspool</name><source><device path='{a}'/><device path='{b}'/>"
           f"<name>{vg_name}</name></source></pool>")
    backend = backend_for(parse_pool_xml(xml))
    assert isinstance(backend, LogicalBackend) and backend.target == f"/dev/{vg_name}"
    with pytest.raises(OperationInvalid, match=f"device '{b}' already holds ext4"):
        backend.build()
    assert lvm("vgs", vg_name, check=False).returncode != 0 and signature(a) is None  # nothing done
    backend.build(overwrite=True)
    assert signature(a) == signature(b) == "LVM2_member"
    with pytest.raises(AlreadyExists):
        backend.build()

    info = backend.info()
    assert 120 * M <= info.capacity <= 128 * M and info.allocation == 0 and info.available == info.capacity
    p = Progress()
    lv1 = backend.create_volume(Volume(name="lv1", capacity=8 * M), progress=p)
    p.check()
    lv2 = backend.create_volume(Volume(name="lv2", capacity=10 * M))
    assert (lv1.capacity, lv2.capacity) == (8 * M, 12 * M)  # rounded up to 4 MiB extents
    assert lv1.path == f"/dev/{vg_name}/lv1" and lv1.type == "block" and lv1.format is None
    assert lv1.key and lv1.key != lv2.key  # LV UUIDs
    assert [v.name for v in backend.list_volumes()] == ["lv1", "lv2"]
    assert backend.volume("lv1") == lv1
    assert backend.info().allocation == 20 * M

    assert backend.resize_volume("lv1", 16 * M).capacity == 16 * M
    with pytest.raises(InvalidArgument, match="shrinks it"):
        backend.resize_volume("lv1", 4 * M)
    assert backend.resize_volume("lv1", 4 * M, shrink=True).capacity == 4 * M
    with pytest.raises(InvalidArgument, match="raw volumes only"):
        backend.create_volume(Volume(name="q", capacity=M, format="qcow2"))
    with pytest.raises(InvalidArgument, match="invalid volume name 'bad name'"):
        backend.create_volume(Volume(name="bad name", capacity=M))
    with pytest.raises(InvalidArgument, match="reserved"):
        backend.create_volume(Volume(name="snapshot1", capacity=M))
    with pytest.raises(AlreadyExists):
        backend.create_volume(Volume(name="lv2", capacity=M))
    with pytest.raises(HostError, match=rf"out of space in pool 'pvtspool' \(needed {1024 * M} bytes"):
        backend.create_volume(Volume(name="huge", capacity=1024 * M))
    with pytest.raises(HostError, match="out of space"):
        backend.resize_volume("lv2", 1024 * M)

    if dm_available():
        backend.start()
        assert os.path.exists(f"/dev/{vg_name}/lv2") and backend.is_active()
        data = os.urandom(M)
        backend.upload_volume("lv2", io.BytesIO(data), len(data), offset=M)
        out = io.BytesIO()
        backend.download_volume("lv2", out, offset=M, length=M)
        assert out.getvalue() == data
        backend.wipe_volume("lv2")
        out = io.BytesIO()
        backend.download_volume("lv2", out)
        assert out.getvalue() == bytes(12 * M)
        backend.stop()
        assert not backend.is_active() and not os.path.exists(f"/dev/{vg_name}/lv2")
        backend.start()
        assert backend.is_active()
        backend.stop()
    else:
        # This kernel has no device-mapper: LVM can keep metadata but cannot activate volumes.
        with pytest.raises(HostError, match="no device-mapper"):
            backend.start()
        assert not backend.is_active()
        backend.stop()  # nothing active: stop is a no-op
        with pytest.raises(HostError, match="is not active"):
            backend.wipe_volume("lv2")
        with pytest.raises(HostError, match="is not active"):
            backend.upload_volume("lv2", io.BytesIO(b"x"), 1)

    backend.delete_volume("lv2")
    assert [v.name for v in backend.list_volumes()] == ["lv1"]
    with pytest.raises(NotFound):
        backend.delete_volume("lv2")
    backend.delete()  # vgremove -f takes lv1 along, then the PV labels go
    assert lvm("vgs", vg_name, check=False).returncode != 0
    assert signature(a) is None and signature(b) is None
    with pytest.raises(OperationInvalid, match="run pool-build"):
        backend.info()


# ---------------------------------------------------------------- disk pools
needs_parted = pytest.mark.skipif(shutil.which("parted") is None, reason="parted is not installed")


@needs_parted
def test_disk_pool_partitions(loops, tmp_path: Path) -> None:
    dev = loops(64 * M, partscan=True)
    disk = os.path.basename(dev)
    pool = parse_pool_xml(f"<pool type='disk'><name>pvts-disk</name><source><device path='{dev}'/>"
                          "</source><target><path>/dev</path></target></pool>")
    backend = backend_for(pool)
    assert isinstance(backend, DiskBackend)
    with pytest.raises(OperationInvalid, match="no partition table"):
        backend.start()
    backend.build()
    assert signature(dev) == "dos partition table"
    with pytest.raises(OperationInvalid, match="already holds dos partition table"):
        backend.build()
    backend.start()
    assert backend.is_active() and backend.list_volumes() == []

    with pytest.raises(InvalidArgument, match=f"the next one on '{dev}' is '{disk}p1'"):
        backend.create_volume(Volume(name="data", capacity=8 * M))
    for bad in (f"{disk}1", f"{disk}p01", f"{disk}p", "sda1"):
        with pytest.raises(InvalidArgument, match="named like"):
            backend.volume_path(bad)
    p1 = backend.create_volume(Volume(name=f"{disk}p1", capacity=8 * M))
    assert (p1.path, p1.capacity, p1.type) == (f"/dev/{disk}p1", 8 * M, "block")
    assert os.path.exists(p1.path)
    p2 = backend.create_volume(Volume(name=f"{disk}p2", capacity=16 * M + 100))  # rounded to a sector
    assert p2.capacity == 16 * M + 512
    assert [v.name for v in backend.list_volumes()] == [f"{disk}p1", f"{disk}p2"]
    info = backend.info()
    assert info.capacity == 64 * M and info.allocation == 24 * M + 512 and 0 < info.available < 40 * M

    data = os.urandom(3 * M)
    backend.upload_volume(f"{disk}p1", io.BytesIO(data), len(data), offset=M)
    out = io.BytesIO()
    backend.download_volume(f"{disk}p1", out, offset=M, length=len(data))
    assert out.getvalue() == data
    backend.wipe_volume(f"{disk}p1")
    out = io.BytesIO()
    backend.download_volume(f"{disk}p1", out)
    assert out.getvalue() == bytes(8 * M)

    with pytest.raises(HostError, match="out of space in pool 'pvts-disk'"):
        backend.create_volume(Volume(name=f"{disk}p3", capacity=60 * M))
    with pytest.raises(OperationInvalid, match="cannot resize partitions"):
        backend.resize_volume(f"{disk}p1", 16 * M)
    with pytest.raises(InvalidArgument, match="raw"):
        backend.create_volume(Volume(name=f"{disk}p3", capacity=M, format="qcow2"))
    backend.delete_volume(f"{disk}p1")
    assert [v.name for v in backend.list_volumes()] == [f"{disk}p2"]
    assert not os.path.exists(p1.path)
    again = backend.create_volume(Volume(name=f"{disk}p1", capacity=4 * M))  # the lowest free number
    assert again.capacity == 4 * M

    src = tmp_path / "src.qcow2"
    img.create(src, "qcow2", 2 * M)
    qemu_io(src, "qcow2", "write -P 0x3c 0 1M")
    copy = backend.create_volume_from(Volume(name=f"{disk}p3", capacity=0), ImageLayer(str(src), "qcow2"))
    assert copy.capacity == 2 * M
    sh("qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(src), copy.path)

    backend.delete()
    assert DiskBackend(pool).layout() is None and signature(dev) is None

    gpt = backend_for(replace_format(pool, "gpt"))
    gpt.build()
    assert signature(dev) == "gpt partition table"
    gpt.start()
    with pytest.raises(OperationInvalid, match="holds a gpt partition table, the pool wants msdos"):
        backend.start()
    g1 = gpt.create_volume(Volume(name=f"{disk}p1", capacity=4 * M))
    assert g1.capacity == 4 * M and os.path.exists(g1.path)
    gpt.delete_volume(f"{disk}p1")


def replace_format(pool: Pool, fmt: str) -> Pool:
    return replace(pool, source=replace(pool.source, format=fmt))


def test_runner_turns_failures_into_host_errors() -> None:
    from pyvirt.storage.run import run

    with pytest.raises(HostError, match="pvts-no-such-tool is not installed; install Debian's pvts-no-such-tool"):
        run(["pvts-no-such-tool"])
    with pytest.raises(HostError, match="cannot probe it: sh failed: the reason") as info:
        run(["sh", "-c", "echo noise >&2; echo the reason >&2; exit 3"], doing="probe it")
    assert info.value.detail is not None and "exit status: 3" in info.value.detail
    assert "command: sh -c 'echo noise" in info.value.detail
    assert run(["sh", "-c", "exit 2"], ok=(0, 2)).returncode == 2
    with pytest.raises(HostError, match=r"did not finish in 0\.3s and was killed"):
        run(["sleep", "10"], timeout=0.3)
    with pytest.raises(HostError, match="lvm2"):
        run(["/nonexistent/lvcreate"])


def test_iscsi_needs_open_iscsi() -> None:
    pool = parse_pool_xml("<pool type='iscsi'><name>pvts-iscsi</name><source><host name='127.0.0.1'/>"
                          "<device path='iqn.2024-01.org.example:t'/></source>"
                          "<target><path>/dev/disk/by-path</path></target></pool>")
    if shutil.which("iscsiadm"):
        assert backend_for(pool).pool == pool
    else:
        with pytest.raises(HostError, match=r"iscsi pools need open-iscsi \(iscsiadm\): apt-get install open-iscsi"):
            backend_for(pool)
