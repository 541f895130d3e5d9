"""Directory pools: volumes are image files (raw or qcow2) in the target directory.

fs and netfs pools subclass this: once mounted they are a directory too.
qemu-img (``pyvirt.qemu.img``) creates, inspects, resizes and copies the
images. Every volume name goes through ``volume_path``, which refuses names
with '/', '.' and '..' and symlinks that lead out of the pool, so no request
touches a file outside it.

Allocation follows libvirt: <allocation> equal to the capacity preallocates
the whole file (qemu-img preallocation=falloc), a smaller non-zero one
preallocates that many bytes of a raw file (qcow2: metadata only), none or 0
leaves the file sparse. A failed create or copy removes the file it started.
"""
from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import replace

from ..errors import AlreadyExists, InvalidArgument, NotFound, OperationInvalid, PyvirtError, QemuError
from ..model.storage import VOLUME_FORMATS, BackingStore, Permissions, Pool, PoolInfo, Volume
from ..model.storage_xml import check_volume_name
from ..qemu import img
from .base import (
    DEFAULT_POOL_MODE,
    DEFAULT_VOLUME_MODE,
    ProgressCallback,
    Reader,
    Writer,
    apply_permissions,
    check_range,
    is_enospc,
    out_of_space,
    statvfs_info,
    stream_in,
    stream_out,
)
from .infocache import ImageInfoCache

log = logging.getLogger(__name__)
TEMP_PREFIX = ".pyvirt-tmp-"  # files being rebuilt (wipe); never listed as volumes


def preallocation(fmt: str, capacity: int, allocation: int | None) -> tuple[str | None, int]:
    """(qemu-img preallocation option or None, bytes to fallocate afterwards for a partial raw file)."""
    if not allocation:
        return None, 0
    if allocation >= capacity:
        return "falloc", 0
    return ("metadata", 0) if fmt == "qcow2" else (None, allocation)


class DirBackend:
    """A pool whose volumes are files in ``pool.target.path``."""

    def __init__(self, pool: Pool, qemu_img: str | None = None) -> None:
        self.pool = pool
        self.qemu_img = qemu_img
        self.target = pool.target.path
        self._infos = ImageInfoCache()  # vol-list / vol-info without a qemu-img per unchanged volume

    # ------------------------------------------------------------ pool
    def build(self, overwrite: bool = False) -> None:
        """Create the target directory (and parents) with the pool's permissions."""
        os.makedirs(self.target, exist_ok=True)
        apply_permissions(self.target, self.pool.target.permissions, DEFAULT_POOL_MODE)

    def start(self) -> None:
        self._need_dir()

    def stop(self) -> None:
        """Nothing to undo for a plain directory."""

    def delete(self) -> None:
        """Remove the (empty) target directory; a directory that still holds files is refused."""
        if not os.path.isdir(self.target):
            return
        left = sorted(os.listdir(self.target))
        if left:
            shown = ", ".join(left[:5]) + (", ..." if len(left) > 5 else "")
            raise OperationInvalid(f"cannot delete pool '{self.pool.name}': its directory '{self.target}' still "
                                   f"holds {len(left)} entries ({shown}); delete the volumes first")
        os.rmdir(self.target)

    def is_active(self) -> bool:
        return os.path.isdir(self.target)

    def info(self) -> PoolInfo:
        self._need_dir()
        return statvfs_info(self.target)

    def available(self) -> int:
        return statvfs_info(self.target).available

    def _need_dir(self) -> None:
        if not os.path.isdir(self.target):
            raise OperationInvalid(f"pool '{self.pool.name}': target directory '{self.target}' does not exist; "
                                   "run pool-build to create it")

    # ------------------------------------------------------------ paths
    def volume_path(self, name: str) -> str:
        """``target/name``, refused when the name or a symlink would lead outside the pool."""
        check_volume_name(name)
        path = os.path.join(self.target, name)
        root = os.path.realpath(self.target)
        real = os.path.realpath(path)
        if real == root or os.path.commonpath([root, real]) != root:
            raise InvalidArgument(f"volume '{name}' in pool '{self.pool.name}' resolves to '{real}', outside the "
                                  f"pool directory '{self.target}' (a symlink leads out); pyvirt will not use it")
        return path

    def _existing(self, name: str) -> str:
        path = self.volume_path(name)
        if not os.path.lexists(path):
            raise NotFound(f"pool '{self.pool.name}' has no volume '{name}'; see vol-list")
        if not os.path.isfile(path):
            raise InvalidArgument(f"'{path}' in pool '{self.pool.name}' is not a regular file, so not a volume")
        return path

    def _new(self, name: str) -> str:
        path = self.volume_path(name)
        if os.path.lexists(path):
            raise AlreadyExists(f"volume '{name}' already exists in pool '{self.pool.name}' ({path}); "
                                "choose another name or delete it first")
        return path

    # ------------------------------------------------------------ listing
    def list_volumes(self) -> list[Volume]:
        self._need_dir()
        vols = []
        names = list(self._names())
        for name in names:
            try:
                vols.append(self.volume(name))
            except PyvirtError as exc:  # one unreadable file must not hide the others
                log.warning("pool %s: skipping %s: %s", self.pool.name, name, exc)
        self._infos.retain(os.path.join(self.target, name) for name in names)
        return vols

    def _names(self) -> Iterator[str]:
        for entry in sorted(os.scandir(self.target), key=lambda e: e.name):
            if entry.name.startswith(TEMP_PREFIX) or not entry.is_file():
                continue
            yield entry.name

    def image_info(self, path: str) -> img.ImageInfo:
        """`qemu-img info` of a volume's file, kept while the file is unchanged (storage/infocache.py)."""
        return self._infos.get(path, lambda: img.info(path, force_share=True, qemu_img=self.qemu_img))

    def volume(self, name: str) -> Volume:
        path = self._existing(name)
        info = self.image_info(path)
        st = os.stat(path)
        backing = None
        if info.backing_filename:
            backing = BackingStore(path=info.full_backing_filename or info.backing_filename,
                                   format=info.backing_format)
        return Volume(
            name=name, capacity=info.virtual_size, allocation=st.st_blocks * 512, format=info.format,
            backing=backing, key=path, path=path, type="file", physical=st.st_size,
            permissions=Permissions(mode=f"0{stat.S_IMODE(st.st_mode):o}", owner=st.st_uid, group=st.st_gid),
        )

    # ------------------------------------------------------------ create
    def _format(self, vol: Volume, default: str = "raw") -> str:
        fmt = vol.format or ("qcow2" if vol.backing else default)
        if fmt not in VOLUME_FORMATS:
            raise InvalidArgument(f"volume '{vol.name}': format '{fmt}' is not supported; use raw or qcow2")
        return fmt

    def create_volume(self, vol: Volume, progress: ProgressCallback | None = None) -> Volume:
        """A new image file; with ``vol.backing`` a qcow2 overlay on it (a linked clone)."""
        self._need_dir()
        path = self._new(vol.name)
        fmt = self._format(vol)
        backing = backing_fmt = None
        options: dict[str, str] = {}
        partial = 0
        if vol.backing is not None:
            if fmt != "qcow2":
                raise InvalidArgument(f"volume '{vol.name}': a {fmt} volume cannot have a backing store; "
                                      "use <format type='qcow2'/>")
            backing = vol.backing.path
            if not os.path.isfile(backing):
                raise NotFound(f"backing store '{backing}' of volume '{vol.name}' does not exist; check the path")
            backing_fmt = vol.backing.format or img.info(backing, force_share=True, qemu_img=self.qemu_img).format
        else:
            if vol.capacity <= 0:
                raise InvalidArgument(f"volume '{vol.name}': capacity must be above zero")
            prealloc, partial = preallocation(fmt, vol.capacity, vol.allocation)
            if prealloc:
                options["preallocation"] = prealloc
            needed = vol.capacity if prealloc == "falloc" else partial
            available = self.available()
            if needed > available:
                raise out_of_space(self.pool.name, needed, available)
        if progress is not None:
            progress(0.0)
        try:
            img.create(path, fmt, vol.capacity or None, backing=backing, backing_fmt=backing_fmt,
                       options=options or None, qemu_img=self.qemu_img)
            if partial:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.posix_fallocate(fd, 0, partial)
                finally:
                    os.close(fd)
            apply_permissions(path, vol.permissions, DEFAULT_VOLUME_MODE)
        except BaseException as exc:
            self._remove_partial(path)
            if is_enospc(exc):
                raise out_of_space(self.pool.name, vol.allocation or vol.capacity, self.available()) from None
            raise
        if progress is not None:
            progress(100.0)
        return self.volume(vol.name)

    def create_volume_from(self, vol: Volume, source_path: str, source_format: str | None = None,
                           progress: ProgressCallback | None = None) -> Volume:
        """A full copy of ``source_path`` (qemu-img convert), grown to ``vol.capacity`` when that is larger."""
        self._need_dir()
        path = self._new(vol.name)
        if not os.path.exists(source_path):
            raise NotFound(f"source volume '{source_path}' does not exist; check the path")
        src = img.info(source_path, force_share=True, qemu_img=self.qemu_img)
        src_fmt = source_format or src.format
        fmt = vol.format or (src_fmt if src_fmt in VOLUME_FORMATS else "raw")
        if vol.backing is not None:
            raise InvalidArgument(f"volume '{vol.name}': a full copy has no backing store; for a linked clone "
                                  "create the volume with <backingStore> instead")
        fmt = self._format(replace(vol, format=fmt))
        if vol.capacity and vol.capacity < src.virtual_size:
            raise InvalidArgument(f"volume '{vol.name}': capacity {vol.capacity} bytes is smaller than the "
                                  f"{src.virtual_size} bytes of '{source_path}'; give at least that much")
        capacity = max(vol.capacity, src.virtual_size)
        prealloc, partial = preallocation(fmt, capacity, vol.allocation)
        options = {"preallocation": prealloc} if prealloc else None
        needed, available = (capacity if prealloc == "falloc" else partial), self.available()
        if needed > available:
            raise out_of_space(self.pool.name, needed, available)
        try:
            img.convert(source_path, path, src_fmt=src_fmt, dst_fmt=fmt, options=options,
                        progress_cb=progress, qemu_img=self.qemu_img)
            if capacity > src.virtual_size:
                img.resize(path, str(capacity), qemu_img=self.qemu_img)
            apply_permissions(path, vol.permissions, DEFAULT_VOLUME_MODE)
        except BaseException as exc:
            self._remove_partial(path)
            if is_enospc(exc):
                needed = max(needed, src.actual_size or src.virtual_size)
                raise out_of_space(self.pool.name, needed, self.available()) from None
            raise
        return self.volume(vol.name)

    @staticmethod
    def _remove_partial(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    # ------------------------------------------------------------ change
    def delete_volume(self, name: str) -> None:
        os.unlink(self._existing(name))

    def resize_volume(self, name: str, capacity: int, shrink: bool = False) -> Volume:
        path = self._existing(name)
        if capacity <= 0:
            raise InvalidArgument(f"volume '{name}': the new capacity must be above zero, not {capacity}")
        try:
            img.resize(path, str(capacity), shrink=shrink, qemu_img=self.qemu_img)
        except QemuError as exc:
            if is_enospc(exc):
                raise out_of_space(self.pool.name, capacity, self.available()) from None
            raise
        return self.volume(name)

    def wipe_volume(self, name: str) -> None:
        """raw: drop the data and keep size and preallocation; qcow2: a fresh empty image of the same size.

        A qcow2 overlay keeps its backing store, so afterwards it shows the
        backing image again (its own writes are gone).
        """
        path = self._existing(name)
        info = img.info(path, force_share=True, qemu_img=self.qemu_img)
        st = os.stat(path)
        if info.format == "raw":
            preallocated = st.st_blocks * 512 >= st.st_size > 0
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, 0)
                os.ftruncate(fd, st.st_size)
                if preallocated:
                    os.posix_fallocate(fd, 0, st.st_size)
                os.fsync(fd)
            finally:
                os.close(fd)
            return
        if info.format != "qcow2":
            raise OperationInvalid(f"cannot wipe volume '{name}': its format is {info.format}; pyvirt wipes raw "
                                   "and qcow2 volumes (delete and recreate it instead)")
        tmp = os.path.join(os.path.dirname(path), f"{TEMP_PREFIX}{os.path.basename(path)}")
        self._remove_partial(tmp)
        try:
            backing = info.full_backing_filename or info.backing_filename
            img.create(tmp, "qcow2", info.virtual_size, backing=backing,
                       backing_fmt=info.backing_format if backing else None, qemu_img=self.qemu_img)
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            os.chown(tmp, st.st_uid, st.st_gid)
            os.replace(tmp, path)
        finally:
            self._remove_partial(tmp)

    # ------------------------------------------------------------ data
    def upload_volume(self, name: str, reader: Reader, length: int, offset: int = 0,
                      progress: ProgressCallback | None = None) -> int:
        """Write the bytes of the file itself: a raw volume within its size; another format whole (offset 0).

        Refused up front when the pool certainly cannot hold the new data.
        """
        path = self._existing(name)
        info = img.info(path, force_share=True, qemu_img=self.qemu_img)
        st = os.stat(path)
        if info.format == "raw":
            check_range(name, st.st_size, offset, length, "upload to")
        elif offset != 0:
            raise InvalidArgument(f"cannot upload to {info.format} volume '{name}' at offset {offset}: a "
                                  f"{info.format} file is replaced whole; upload the complete image at offset 0")
        needed = length - st.st_blocks * 512  # at least this much must be newly allocated
        available = self.available()
        if needed > available:
            raise out_of_space(self.pool.name, needed, available)
        written = stream_in(path, reader, length, offset, pool=self.pool.name, volume=name,
                            available=self.available, progress=progress)
        if info.format != "raw":
            os.truncate(path, length)
        return written

    def download_volume(self, name: str, writer: Writer, offset: int = 0, length: int | None = None,
                        progress: ProgressCallback | None = None) -> int:
        path = self._existing(name)
        size = os.stat(path).st_size
        if length is None:
            length = max(size - offset, 0)
        check_range(name, size, offset, length, "download from")
        return stream_out(path, writer, offset, length, progress=progress)
