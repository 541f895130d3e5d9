"""Directory pools: volumes are image files (raw or qcow2) in the target directory.

fs and netfs pools subclass this: once mounted they are a directory too.
qemu-img (``pyvirt.qemu.img``) creates, inspects, resizes and copies the
images. Every volume name goes through ``volume_path``, which refuses names
with '/', '.' and '..' and symlinks that lead out of the pool, so no request
touches a file outside it.

Allocation follows libvirt: <allocation> equal to the capacity preallocates
the whole file (qemu-img preallocation=falloc), a smaller non-zero one
preallocates that many bytes of a raw file (qcow2: metadata only), none or 0
leaves the file sparse.

A volume's format is never read from its content: it is recorded in the
FormatBook when pyvirt makes the volume (a file found in the pool that pyvirt
did not make is recorded raw, until its owner says otherwise with
``set_format``). A new or rewritten volume (create, copy, whole upload, qcow2
wipe) is written under a temporary name (``temp_name``) and renamed onto its
name when complete, after its record: a crash leaves a temporary file, which
the pool's next start removes, and never half a volume under its name. A
failed job removes its temporary file at once.
"""
from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import replace

from ..errors import AlreadyExists, InvalidArgument, NotFound, OperationInvalid, PyvirtError, QemuError
from ..model.storage import (
    VOLUME_FORMATS,
    BackingStore,
    FormatRecord,
    ImageLayer,
    Permissions,
    Pool,
    PoolInfo,
    Volume,
)
from ..model.storage_xml import check_volume_name
from ..qemu import img
from .base import (
    DEFAULT_POOL_MODE,
    DEFAULT_VOLUME_MODE,
    TEMP_PREFIX,
    FormatBook,
    MemoryBook,
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
    temp_name,
    zero_file,
)
from .chain import header_backing
from .infocache import ImageInfoCache

log = logging.getLogger(__name__)


def preallocation(fmt: str, capacity: int, allocation: int | None) -> tuple[str | None, int]:
    """(qemu-img preallocation option or None, bytes to fallocate afterwards for a partial raw file)."""
    if not allocation:
        return None, 0
    if allocation >= capacity:
        return "falloc", 0
    return ("metadata", 0) if fmt == "qcow2" else (None, allocation)


class DirBackend:
    """A pool whose volumes are files in ``pool.target.path``; their formats are in ``book``."""

    def __init__(self, pool: Pool, qemu_img: str | None = None, book: FormatBook | None = None) -> None:
        self.pool = pool
        self.qemu_img = qemu_img
        self.book: FormatBook = book if book is not None else MemoryBook()
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

    def remove_stale(self) -> list[str]:
        """Temporary files of jobs a crash interrupted: nothing else names them, so they go."""
        if not os.path.isdir(self.target):
            return []
        gone = []
        for entry in os.scandir(self.target):
            if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                gone.append(entry.name)
        return sorted(gone)

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

    def _temp(self, name: str) -> str:
        """A fresh temporary path for volume ``name`` (a leftover of an earlier failure is removed)."""
        tmp = os.path.join(self.target, temp_name(name))
        self._remove_partial(tmp)
        return tmp

    def _publish(self, tmp: str, path: str, record: FormatRecord) -> None:
        """The record first, then the rename: the name never shows a file without its format."""
        self.book.put(path, record)
        try:
            os.rename(tmp, path)
        except BaseException:
            self.book.drop(path)
            raise

    def _record(self, path: str) -> FormatRecord:
        """The volume's recorded format; a file pyvirt did not make is raw until its owner says otherwise."""
        record = self.book.get(path)
        if record is None:
            record = FormatRecord("raw")
            self.book.put(path, record)
        return record

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
        for path in self.book.under(self.target):  # records of files that went away
            in_flight = os.path.join(os.path.dirname(path), temp_name(os.path.basename(path)))
            if not os.path.lexists(path) and not os.path.lexists(in_flight):  # (not one being published)
                self.book.drop(path)
        self._infos.retain(os.path.join(self.target, name) for name in names)
        return vols

    def _names(self) -> Iterator[str]:
        for entry in sorted(os.scandir(self.target), key=lambda e: e.name):
            if entry.name.startswith(TEMP_PREFIX) or not entry.is_file():
                continue
            yield entry.name

    def image_info(self, path: str, fmt: str) -> img.ImageInfo:
        """`qemu-img info -f FMT` of a volume's file, kept while the file is unchanged (storage/infocache.py)."""
        return self._infos.get(path, fmt, lambda: img.info(path, fmt, force_share=True, qemu_img=self.qemu_img))

    def volume(self, name: str) -> Volume:
        path = self._existing(name)
        record = self._record(path)
        st = os.stat(path)
        if record.format == "raw":
            capacity = st.st_size
        else:
            capacity = self.image_info(path, record.format).virtual_size
        return Volume(
            name=name, capacity=capacity, allocation=st.st_blocks * 512, format=record.format,
            backing=record.backing, key=path, path=path, type="file", physical=st.st_size,
            permissions=Permissions(mode=f"0{stat.S_IMODE(st.st_mode):o}", owner=st.st_uid, group=st.st_gid),
        )

    # ------------------------------------------------------------ create
    def _format(self, vol: Volume, default: str = "raw") -> str:
        fmt = vol.format or ("qcow2" if vol.backing else default)
        if fmt not in VOLUME_FORMATS:
            raise InvalidArgument(f"volume '{vol.name}': format '{fmt}' is not supported; use raw or qcow2")
        return fmt

    def create_volume(self, vol: Volume, progress: ProgressCallback | None = None) -> Volume:
        """A new image file; with ``vol.backing`` a qcow2 overlay on it (a linked clone).

        The backing file's format is the one given, else the one recorded for it, else raw."""
        self._need_dir()
        path = self._new(vol.name)
        fmt = self._format(vol)
        backing: BackingStore | None = None
        options: dict[str, str] = {}
        partial = 0
        if vol.backing is not None:
            if fmt != "qcow2":
                raise InvalidArgument(f"volume '{vol.name}': a {fmt} volume cannot have a backing store; "
                                      "use <format type='qcow2'/>")
            img.refuse_pseudo_filename(vol.backing.path, f"backing store of volume '{vol.name}'")
            if not os.path.isfile(vol.backing.path):
                raise NotFound(f"backing store '{vol.backing.path}' of volume '{vol.name}' does not exist; "
                               "check the path")
            known = self.book.get(vol.backing.path)
            backing = BackingStore(vol.backing.path, vol.backing.format or (known.format if known else "raw"))
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
        tmp = self._temp(vol.name)
        try:
            img.create(tmp, fmt, vol.capacity or None, backing=backing.path if backing else None,
                       backing_fmt=backing.format if backing else None, options=options or None,
                       qemu_img=self.qemu_img)
            if partial:
                fd = os.open(tmp, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.posix_fallocate(fd, 0, partial)
                finally:
                    os.close(fd)
            apply_permissions(tmp, vol.permissions, DEFAULT_VOLUME_MODE)
            self._publish(tmp, path, FormatRecord(fmt, backing))
        except BaseException as exc:
            self._remove_partial(tmp)
            if is_enospc(exc):
                raise out_of_space(self.pool.name, vol.allocation or vol.capacity, self.available()) from None
            raise
        if progress is not None:
            progress(100.0)
        return self.volume(vol.name)

    def create_volume_from(self, vol: Volume, source: ImageLayer, backing: tuple[ImageLayer, ...] = (),
                           progress: ProgressCallback | None = None) -> Volume:
        """A full copy of ``source`` (qemu-img convert), grown to ``vol.capacity`` when that is larger.

        The source is read as recorded: its format, and under a qcow2 source exactly ``backing``."""
        self._need_dir()
        path = self._new(vol.name)
        if not os.path.exists(source.path):
            raise NotFound(f"source volume '{source.path}' does not exist; check the path")
        if vol.backing is not None:
            raise InvalidArgument(f"volume '{vol.name}': a full copy has no backing store; for a linked clone "
                                  "create the volume with <backingStore> instead")
        fmt = self._format(replace(vol, format=vol.format or (source.format if source.format in VOLUME_FORMATS
                                                              else "raw")))
        size = img.virtual_size(source.path, source.format, qemu_img=self.qemu_img)
        if vol.capacity and vol.capacity < size:
            raise InvalidArgument(f"volume '{vol.name}': capacity {vol.capacity} bytes is smaller than the "
                                  f"{size} bytes of '{source.path}'; give at least that much")
        capacity = max(vol.capacity, size)
        prealloc, partial = preallocation(fmt, capacity, vol.allocation)
        options = {"preallocation": prealloc} if prealloc else None
        needed, available = (capacity if prealloc == "falloc" else partial), self.available()
        if needed > available:
            raise out_of_space(self.pool.name, needed, available)
        tmp = self._temp(vol.name)
        try:
            img.convert(source.path, tmp, src_fmt=source.format, backing=backing, src_block=source.block,
                        dst_fmt=fmt, options=options, progress_cb=progress, qemu_img=self.qemu_img)
            if capacity > size:
                img.resize(tmp, str(capacity), fmt=fmt, qemu_img=self.qemu_img)
            apply_permissions(tmp, vol.permissions, DEFAULT_VOLUME_MODE)
            self._publish(tmp, path, FormatRecord(fmt))
        except BaseException as exc:
            self._remove_partial(tmp)
            if is_enospc(exc):
                needed = max(needed, size)
                raise out_of_space(self.pool.name, needed, self.available()) from None
            raise
        return self.volume(vol.name)

    @staticmethod
    def _remove_partial(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    # ------------------------------------------------------------ change
    def delete_volume(self, name: str) -> None:
        path = self._existing(name)
        os.unlink(path)
        if not os.path.lexists(path):
            self.book.drop(path)

    def resize_volume(self, name: str, capacity: int, shrink: bool = False) -> Volume:
        path = self._existing(name)
        if capacity <= 0:
            raise InvalidArgument(f"volume '{name}': the new capacity must be above zero, not {capacity}")
        try:
            img.resize(path, str(capacity), fmt=self._record(path).format, shrink=shrink, qemu_img=self.qemu_img)
        except QemuError as exc:
            if is_enospc(exc):
                raise out_of_space(self.pool.name, capacity, self.available()) from None
            raise
        return self.volume(name)

    def wipe_volume(self, name: str) -> None:
        """raw: zeros in place, size and preallocation kept; qcow2: a fresh empty image of the same size.

        A qcow2 overlay keeps its recorded backing store, so afterwards it shows the
        backing image again (its own writes are gone).
        """
        path = self._existing(name)
        record = self._record(path)
        if record.format == "raw":
            zero_file(path)
            return
        if record.format != "qcow2":
            raise OperationInvalid(f"cannot wipe volume '{name}': its format is {record.format}; pyvirt wipes raw "
                                   "and qcow2 volumes (delete and recreate it instead)")
        st = os.stat(path)
        size = img.virtual_size(path, record.format, qemu_img=self.qemu_img)
        tmp = self._temp(name)
        try:
            backing = record.backing
            img.create(tmp, "qcow2", size, backing=backing.path if backing else None,
                       backing_fmt=backing.format if backing else None, qemu_img=self.qemu_img)
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            os.chown(tmp, st.st_uid, st.st_gid)
            os.replace(tmp, path)
        finally:
            self._remove_partial(tmp)

    def set_format(self, name: str, fmt: str, backing_format: str | None = None) -> Volume:
        """Record what an existing file is, on its owner's word: raw, or a qcow2 image whose header is read
        (with the format named, no backing file opened) for its backing file, which must name its format
        (or be given ``backing_format``) and exist."""
        path = self._existing(name)
        if fmt not in VOLUME_FORMATS:
            raise InvalidArgument(f"volume format '{fmt}' is not supported; use raw or qcow2")
        backing: BackingStore | None = None
        if fmt == "qcow2":
            backing = header_backing(path, fmt, backing_format=backing_format, qemu_img=self.qemu_img)
            if backing is None and backing_format:
                raise InvalidArgument(f"volume '{name}' has no backing file, so it takes no backing format")
            if backing is not None and not os.path.exists(backing.path):
                raise NotFound(f"volume '{name}' names backing file '{backing.path}', which does not exist")
        elif backing_format:
            raise InvalidArgument("a raw volume has no backing file; leave the backing format out")
        self.book.put(path, FormatRecord(fmt, backing))
        return self.volume(name)

    # ------------------------------------------------------------ data
    def upload_volume(self, name: str, reader: Reader, length: int, offset: int = 0,
                      progress: ProgressCallback | None = None) -> int:
        """Write the bytes of the file itself: a raw volume within its size; another format whole (offset 0).

        A whole upload (a qcow2 image, or a raw one of the volume's exact size at offset 0) goes to a
        temporary file renamed onto the volume when complete; an uploaded qcow2 image must be one, keep
        the recorded backing file and have no external data file. A part of a raw volume is written in
        place. Refused up front when the pool certainly cannot hold the new data.
        """
        path = self._existing(name)
        record = self._record(path)
        st = os.stat(path)
        if record.format == "raw":
            check_range(name, st.st_size, offset, length, "upload to")
        elif offset != 0:
            raise InvalidArgument(f"cannot upload to {record.format} volume '{name}' at offset {offset}: a "
                                  f"{record.format} file is replaced whole; upload the complete image at offset 0")
        whole = offset == 0 and (record.format != "raw" or length == st.st_size)
        needed = length if whole else length - st.st_blocks * 512  # at least this much is newly allocated
        available = self.available()
        if needed > available:
            raise out_of_space(self.pool.name, needed, available)
        if not whole:
            return stream_in(path, reader, length, offset, pool=self.pool.name, volume=name,
                             available=self.available, progress=progress)
        tmp = self._temp(name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, stat.S_IMODE(st.st_mode))
            try:
                os.ftruncate(fd, length)
                os.fchown(fd, st.st_uid, st.st_gid)
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
            finally:
                os.close(fd)
            written = stream_in(tmp, reader, length, 0, pool=self.pool.name, volume=name,
                                available=self.available, progress=progress, in_place=False)
            if record.format != "raw":
                self._check_uploaded(name, tmp, record)
            os.replace(tmp, path)
        finally:
            self._remove_partial(tmp)
        return written

    def _check_uploaded(self, name: str, tmp: str, record: FormatRecord) -> None:
        """An uploaded image replaces a volume only if it is what the record says, backing included."""
        try:
            backing = header_backing(tmp, record.format, qemu_img=self.qemu_img)
        except QemuError as exc:
            raise InvalidArgument(f"the data uploaded to volume '{name}' is not a {record.format} image "
                                  f"({exc.detail or exc.message}); the volume is unchanged") from None
        except InvalidArgument as exc:
            raise InvalidArgument(f"the image uploaded to volume '{name}' is refused: {exc.message}; the volume "
                                  "is unchanged") from None
        want = record.backing.path if record.backing else None
        got = backing.path if backing else None
        if (want and got and not _same_path(want, got)) or bool(want) != bool(got):
            raise InvalidArgument(f"the image uploaded to volume '{name}' names backing file {got or 'none'}, "
                                  f"but the volume's is {want or 'none'}; the volume is unchanged (upload an "
                                  "image on the same backing file, or a flat one to a volume without)")

    def download_volume(self, name: str, writer: Writer, offset: int = 0, length: int | None = None,
                        progress: ProgressCallback | None = None) -> int:
        path = self._existing(name)
        size = os.stat(path).st_size
        if length is None:
            length = max(size - offset, 0)
        check_range(name, size, offset, length, "download from")
        return stream_out(path, writer, offset, length, progress=progress)


def _same_path(a: str, b: str) -> bool:
    return a == b or os.path.realpath(a) == os.path.realpath(b)
