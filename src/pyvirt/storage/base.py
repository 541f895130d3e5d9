"""What every pool backend offers (``PoolBackend``) and the pieces they share.

A backend is the host side of one pool: build/start/stop/delete map to
pool-build, pool-start, pool-destroy and pool-delete; the volume calls map to
vol-create, vol-create-from/vol-clone, vol-delete, vol-resize, vol-wipe,
vol-upload and vol-download. Backends hold no state of their own beyond the
``Pool`` they were made for: whether a pool counts as running is the
daemon's record, ``is_active`` only says what the host shows.

Shared here: the out-of-space error (one wording everywhere), free-space
figures from statvfs, <permissions> on files and directories, what blkid finds
on a device (and the refusal to build over it), chunked streaming into and out
of a volume, zeroing a block device or a file in place, and the record book
(``FormatBook``) that says which format each file volume has: the daemon
keeps it in its store, a backend made without one keeps it in memory. ``backend_for`` (storage/backends.py)
sits above the backends, which all build on this module.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import stat
import struct
from collections.abc import Callable
from typing import Protocol

from ..errors import HostError, InvalidArgument, OperationInvalid
from ..model.storage import FormatRecord, ImageLayer, Permissions, Pool, PoolInfo, Volume
from .run import run

CHUNK = 4 * 1024 * 1024  # bytes per read/write when streaming
ProgressCallback = Callable[[float], None]  # percent done, 0..100 (qemu.img uses the same)
DEFAULT_VOLUME_MODE = 0o600  # libvirt's default for new volumes
DEFAULT_POOL_MODE = 0o711  # libvirt's default for a pool directory it builds
_BLKZEROOUT = 0x127F  # _IO(0x12, 127): zero a byte range of a block device
_BLKGETSIZE64 = 0x80081272  # _IOR(0x12, 114, size_t)
#: Files (and LVs) being written under a name no listing shows; renamed onto the volume's name when
#: complete, so a crash never leaves half a volume under its name. A pool's start removes stale ones.
TEMP_PREFIX = ".pyvirt-tmp-"
_NAME_MAX = 255


def temp_name(name: str) -> str:
    """The temporary name a volume is written under (a digest when the name is too long to prefix)."""
    if len((TEMP_PREFIX + name).encode()) <= _NAME_MAX:
        return TEMP_PREFIX + name
    return TEMP_PREFIX + hashlib.sha256(name.encode()).hexdigest()


class FormatBook(Protocol):
    """Where the format of every file volume is recorded, keyed by the volume's real path.

    Written when pyvirt makes or imports a volume, before the file appears under its name; read by
    every later use. The content of an image never decides its format (FormatRecord says why).
    """

    def get(self, path: str) -> FormatRecord | None:
        """The record of the image at ``path``, or None when pyvirt has none."""

    def put(self, path: str, record: FormatRecord) -> None:
        """Record (or replace) what the image at ``path`` is."""

    def drop(self, path: str) -> None:
        """Forget ``path`` (its volume is deleted, or gone)."""

    def under(self, directory: str) -> list[str]:
        """Paths recorded directly inside ``directory`` (to forget files that went away)."""


def record_key(path: str) -> str:
    """The key of a record: the real path, so a symlinked pool directory finds the same records."""
    return os.path.realpath(path)


class MemoryBook:
    """A FormatBook in a dict: for a backend used without the daemon (tests, one-off tools)."""

    def __init__(self) -> None:
        self._records: dict[str, FormatRecord] = {}

    def get(self, path: str) -> FormatRecord | None:
        return self._records.get(record_key(path))

    def put(self, path: str, record: FormatRecord) -> None:
        self._records[record_key(path)] = record

    def drop(self, path: str) -> None:
        self._records.pop(record_key(path), None)

    def under(self, directory: str) -> list[str]:
        root = record_key(directory)
        return [p for p in self._records if os.path.dirname(p) == root]


class Reader(Protocol):
    def read(self, size: int, /) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...


class PoolBackend(Protocol):
    """The host side of one storage pool; every call raises a ``PyvirtError`` saying what went wrong."""

    pool: Pool

    def build(self, overwrite: bool = False) -> None:
        """pool-build: make the storage (directory, filesystem, VG, partition table).

        Without ``overwrite`` a device that already holds data is refused."""

    def start(self) -> None:
        """pool-start: make the pool usable (mount, activate the VG, check the target)."""

    def stop(self) -> None:
        """pool-destroy: undo start (unmount, deactivate); volumes are kept."""

    def delete(self) -> None:
        """pool-delete: remove what build made (directory, VG and PV labels, partition table)."""

    def is_active(self) -> bool:
        """Whether the host shows the pool as started (mounted, VG active, directory present)."""

    def info(self) -> PoolInfo:
        """Capacity, allocation and available bytes as the host reports them now."""

    def list_volumes(self) -> list[Volume]:
        """Every volume with its live facts (path, key, capacity, allocation, format), sorted by name."""

    def volume(self, name: str) -> Volume:
        """One volume's live facts; NotFound when the pool has no such volume."""

    def volume_path(self, name: str) -> str:
        """The host path of volume ``name``, checked to stay inside the pool (no '/', no escaping links)."""

    def create_volume(self, vol: Volume, progress: ProgressCallback | None = None) -> Volume:
        """vol-create: a new empty volume (or a linked clone when ``vol.backing`` is set)."""

    def create_volume_from(self, vol: Volume, source: ImageLayer, backing: tuple[ImageLayer, ...] = (),
                           progress: ProgressCallback | None = None) -> Volume:
        """vol-create-from / vol-clone: a new volume holding a full copy of ``source``.

        ``source`` carries its recorded format, ``backing`` its recorded backing chain (nearest first):
        the copy reads exactly that chain, never one named in a header."""

    def delete_volume(self, name: str) -> None:
        """vol-delete."""

    def resize_volume(self, name: str, capacity: int, shrink: bool = False) -> Volume:
        """vol-resize to ``capacity`` bytes; making it smaller needs ``shrink=True``."""

    def wipe_volume(self, name: str) -> None:
        """vol-wipe: the volume reads as zeros afterwards; its size and format stay."""

    def upload_volume(self, name: str, reader: Reader, length: int, offset: int = 0,
                      progress: ProgressCallback | None = None) -> int:
        """vol-upload: write ``length`` bytes read from ``reader`` at ``offset``; returns bytes written."""

    def download_volume(self, name: str, writer: Writer, offset: int = 0, length: int | None = None,
                        progress: ProgressCallback | None = None) -> int:
        """vol-download: send ``length`` bytes (default: to the end) from ``offset``; returns bytes sent."""

    def set_format(self, name: str, fmt: str, backing_format: str | None = None) -> Volume:
        """Record what an existing volume is, on its owner's word (a file copied into the pool)."""

    def remove_stale(self) -> list[str]:
        """Remove what interrupted jobs left (temporary volumes); returns their names. Run at pool start
        and when a restarted daemon finds the pool active (no job of this process is running then)."""


def raw_only(pool: str, vol: Volume, fmt: str, backing_format: str | None) -> Volume:
    """set_format of a block volume: it is raw by nature; anything else is refused."""
    if fmt != "raw" or backing_format:
        raise OperationInvalid(f"volume '{vol.name}' of pool '{pool}' is a block device, which pyvirt always opens "
                               "as raw; a qcow2 image belongs in a dir, fs or netfs pool")
    return vol


# ---------------------------------------------------------------- space
def out_of_space(pool: str, needed: int, available: int) -> HostError:
    """The one wording for a pool that cannot hold what is asked."""
    return HostError(f"out of space in pool '{pool}' (needed {needed} bytes, available {available} bytes); "
                     "free space in the pool, delete volumes, or use another pool")


def is_enospc(exc: BaseException) -> bool:
    """An OSError ENOSPC, or a tool's error whose text says the disk is full."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    text = f"{getattr(exc, 'message', '')} {getattr(exc, 'detail', '') or ''}"
    return "No space left on device" in text or "insufficient free space" in text


def statvfs_info(path: str) -> PoolInfo:
    """libvirt's figures for a filesystem pool: allocation is what the filesystem has in use."""
    st = os.statvfs(path)
    capacity = st.f_blocks * st.f_frsize
    return PoolInfo(capacity=capacity, allocation=(st.f_blocks - st.f_bfree) * st.f_frsize,
                    available=st.f_bavail * st.f_frsize)


# ---------------------------------------------------------------- permissions
def _mode(perms: Permissions | None, default: int) -> int:
    return int(perms.mode, 8) if perms is not None and perms.mode is not None else default


def apply_permissions(path: str, perms: Permissions | None, default_mode: int) -> None:
    """chmod (and chown when an owner/group is given) as the XML's <permissions> say."""
    os.chmod(path, _mode(perms, default_mode))
    if perms is not None and (perms.owner is not None or perms.group is not None):
        os.chown(path, -1 if perms.owner is None else perms.owner, -1 if perms.group is None else perms.group)


# ---------------------------------------------------------------- devices
def signature(device: str) -> str | None:
    """What blkid finds on ``device`` ('ext4', 'LVM2_member', 'dos' partition table...), or None if blank."""
    proc = run(["blkid", "-p", "-o", "export", device], ok=(0, 2), doing=f"probe '{device}' for data")
    if proc.returncode == 2:
        return None
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    if "TYPE" in values:
        return values["TYPE"]
    if "PTTYPE" in values:
        return f"{values['PTTYPE']} partition table"
    return values.get("USAGE") or "unknown data"


def refuse_if_used(pool: str, device: str, overwrite: bool, doing: str) -> None:
    """pool-build without overwrite must not destroy a device that holds something."""
    if overwrite:
        return
    found = signature(device)
    if found is not None:
        raise OperationInvalid(
            f"pool '{pool}': device '{device}' already holds {found} (found by blkid); {doing} would destroy "
            "it. Build with overwrite (pool-build --overwrite) to do that anyway, or just start the pool to "
            "use what is there"
        )


def block_size(path: str) -> int:
    """Size in bytes of a block device (or of a regular file)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if stat.S_ISBLK(os.fstat(fd).st_mode):
            buf = fcntl.ioctl(fd, _BLKGETSIZE64, b"\0" * 8)
            return int(struct.unpack("Q", buf)[0])
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def zero_device(path: str) -> None:
    """Make a whole block device read as zeros: BLKZEROOUT, or plain zero writes where unsupported."""
    size = block_size(path)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.ioctl(fd, _BLKZEROOUT, struct.pack("QQ", 0, size))
        except OSError:
            zeros = bytes(CHUNK)
            done = 0
            while done < size:
                done += os.pwrite(fd, zeros[: min(CHUNK, size - done)], done)
        os.fsync(fd)
    finally:
        os.close(fd)


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_FALLOC_FL_ZERO_RANGE = 0x10


def _fallocate(fd: int, mode: int, offset: int, length: int) -> bool:
    """fallocate(2) with flags (os.posix_fallocate has none); False where the filesystem cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    if libc.fallocate(fd, mode, offset, length) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err))


def zero_file(path: str) -> None:
    """Make a regular file read as zeros where it stands: its size, name and allocation stay.

    A preallocated file keeps its blocks (FALLOC_FL_ZERO_RANGE), a sparse one gives them back
    (PUNCH_HOLE); a filesystem with neither gets zeros written. The file is never truncated, so a
    crash in the middle leaves a volume of the right size, partly zeroed, and never a short one.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        size = st.st_size
        if st.st_blocks * 512 >= size:  # preallocated: zero the blocks, keep them
            done = _fallocate(fd, _FALLOC_FL_ZERO_RANGE, 0, size) if size else True
        else:
            done = _fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, 0, size)
        if not done:
            zeros = bytes(min(CHUNK, size))
            written = 0
            while written < size:
                written += os.pwrite(fd, zeros[: min(CHUNK, size - written)], written)
        os.fsync(fd)
    finally:
        os.close(fd)


def zero_range(path: str, offset: int, length: int) -> None:
    """Write zeros over ``length`` bytes at ``offset`` (partition tables at a disk's ends)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        zeros = bytes(min(CHUNK, length))
        done = 0
        while done < length:
            done += os.pwrite(fd, zeros[: min(CHUNK, length - done)], offset + done)
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- streaming
def check_range(name: str, size: int, offset: int, length: int, doing: str) -> None:
    if offset < 0 or length < 0:
        raise InvalidArgument(f"cannot {doing} volume '{name}': offset {offset} and length {length} "
                              "must not be negative")
    if offset + length > size:
        raise InvalidArgument(f"cannot {doing} volume '{name}': {length} bytes at offset {offset} run past its "
                              f"end ({size} bytes); resize the volume first or send less")


def _report(progress: ProgressCallback | None, done: int, total: int) -> None:
    if progress is not None:
        progress(100.0 if total == 0 else done * 100.0 / total)


def stream_in(path: str, reader: Reader, length: int, offset: int, *, pool: str, volume: str,
              available: Callable[[], int], progress: ProgressCallback | None = None,
              in_place: bool = True) -> int:
    """Write ``length`` bytes from ``reader`` into the existing ``path`` at ``offset``, in CHUNK pieces.

    ENOSPC becomes ``out_of_space``. Written ``in_place`` into the volume, what was written so far
    stays (the volume existed before, so it is not removed); otherwise ``path`` is the caller's
    temporary file and the volume is untouched. A reader that ends early is an error naming how
    much arrived.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    done = 0
    try:
        while done < length:
            want = min(CHUNK, length - done)
            data = reader.read(want)
            if not data:
                state = "the volume holds partial data" if in_place else "the volume is unchanged"
                raise InvalidArgument(f"upload to volume '{volume}' in pool '{pool}' ended after {done} of "
                                      f"{length} bytes; {state}: upload it again")
            if len(data) > want:
                raise InvalidArgument(f"upload stream for volume '{volume}' gave {len(data)} bytes when "
                                      f"{want} were asked for")
            view = memoryview(data)
            pos = offset + done
            try:
                while view:
                    n = os.pwrite(fd, view, pos)
                    view, pos = view[n:], pos + n
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise out_of_space(pool, length - done, available()) from exc
                raise HostError(f"cannot write volume '{volume}' in pool '{pool}': {exc.strerror}") from None
            done += len(data)
            _report(progress, done, length)
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise out_of_space(pool, length, available()) from exc
            raise
        if length == 0:
            _report(progress, 0, 0)
    finally:
        os.close(fd)
    return done


def stream_out(path: str, writer: Writer, offset: int, length: int, *,
               progress: ProgressCallback | None = None) -> int:
    """Send ``length`` bytes of ``path`` from ``offset`` to ``writer`` in CHUNK pieces."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    done = 0
    try:
        while done < length:
            data = os.pread(fd, min(CHUNK, length - done), offset + done)
            if not data:
                raise HostError(f"'{path}' ended after {done} of {length} bytes while reading it; "
                                "it shrank during the download")
            writer.write(data)
            done += len(data)
            _report(progress, done, length)
        if length == 0:
            _report(progress, 0, 0)
    finally:
        os.close(fd)
    return done
