"""Save image files on the host: written privately and whole, read back with every check first.

A save is written to a hidden temporary file beside the target (mode 0600:
it holds the guest's memory), synced, and renamed over the target only once
QEMU's stream is complete, so a failed or interrupted save never leaves a
partial image under the user's name, nor replaces a good one. Temporary
files a killed daemon left are recognised by their name and removed at its
next start (``remove_partials``). The header format is model/save_image.py.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ..errors import HostError, InvalidArgument, NotFound
from ..model import save_image as fmt

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".pyvirt-partial"
#: Directories a killed daemon may have left partial images in (its managed-save directory, and the
#: directories of saves under way, recorded while they run).
_READ_LIMIT = 16 * 1024 * 1024  # longest XML read from an image


def _os_error(what: str, path: Path, exc: OSError) -> HostError:
    hint = {errno.ENOSPC: "free space on that file system or save elsewhere",
            errno.EDQUOT: "the disk quota is used up; free space or save elsewhere",
            errno.EACCES: "the daemon may not write there; pick another directory",
            errno.EROFS: "that file system is read-only; save elsewhere",
            errno.ENOENT: "the directory does not exist; create it first"}.get(exc.errno or 0, "")
    return HostError(f"cannot {what} {path}: {exc.strerror or exc}" + (f"; {hint}" if hint else ""))


class SaveWriter:
    """One save image being written (see the module docstring); ``fd`` is what QEMU writes to."""

    def __init__(self, target: Path, xml: str, running: bool, *, bypass_cache: bool = False) -> None:
        if not target.is_absolute():
            raise InvalidArgument(f"save file {target} must be an absolute path")
        if target.is_dir():
            raise InvalidArgument(f"save file {target} is a directory; name a file in it")
        self.target = target
        self.bypass_cache = bypass_cache
        self._xml = xml.encode()
        self.header = fmt.new_header(self._xml, running)
        self.partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")
        self.fd = -1

    def open(self) -> int:
        """Create the temporary file with header and XML; the fd is left at the stream's offset."""
        try:
            self.fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            os.fchmod(self.fd, 0o600)  # whatever the umask: it holds the guest's memory
            head = self.header.encode() + self._xml
            os.write(self.fd, head + bytes(self.header.data_offset - len(head)))
        except OSError as exc:
            self.discard()
            raise _os_error("write the save image", self.target, exc) from exc
        return self.fd

    def finish(self) -> int:
        """The stream is complete: record its length, sync, rename into place; returns the image's size."""
        try:
            size = os.fstat(self.fd).st_size
            stream_len = size - self.header.data_offset
            if stream_len <= 0:
                raise HostError(f"QEMU wrote no state into {self.target}; nothing was saved")
            final = fmt.SaveHeader(self.header.running, self.header.xml_len, self.header.data_offset, stream_len,
                                   self.header.xml_crc)
            os.pwrite(self.fd, final.encode(), 0)
            os.fsync(self.fd)
            if self.bypass_cache:  # do not leave the guest's memory in the host's page cache
                os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.rename(self.partial, self.target)
            _sync_dir(self.target.parent)
        except OSError as exc:
            self.discard()
            raise _os_error("complete the save image", self.target, exc) from exc
        except BaseException:
            self.discard()
            raise
        self._close()
        return size

    def discard(self) -> None:
        """The save failed: no partial file stays."""
        self._close()
        with contextlib.suppress(OSError):  # never made (read-only, no such directory), or gone already
            os.unlink(self.partial)

    def _close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class SaveImage:
    """A complete save image on disk: its header and the domain XML inside."""

    path: Path
    header: fmt.SaveHeader
    xml: str


def read_image(path: Path) -> SaveImage:
    """Read and check an image's header and XML, and that the file holds the whole stream."""
    where = str(path)
    try:
        with open(path, "rb") as f:
            header = fmt.decode_header(f.read(fmt.HEADER_SIZE), where)
            if header.xml_len > _READ_LIMIT:
                raise InvalidArgument(f"{where} has a damaged save header (an XML of {header.xml_len} bytes)")
            xml = fmt.decode_xml(header, f.read(header.xml_len), where)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError as exc:
        raise NotFound(f"save image {where} does not exist") from exc
    except IsADirectoryError as exc:
        raise InvalidArgument(f"{where} is a directory, not a save image") from exc
    except OSError as exc:
        raise _os_error("read the save image", path, exc) from exc
    want = header.data_offset + header.stream_len
    if size < want:
        raise InvalidArgument(f"{where} is truncated: it has {size} bytes, its header says {want}; the saved "
                              "state is incomplete and cannot be restored")
    return SaveImage(path, header, xml)


def open_stream(image: SaveImage, *, bypass_cache: bool = False) -> int:
    """An fd on the image positioned at QEMU's stream (the caller closes it)."""
    try:
        fd = os.open(image.path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise _os_error("read the save image", image.path, exc) from exc
    os.lseek(fd, image.header.data_offset, os.SEEK_SET)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    if bypass_cache:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_NOREUSE)
    return fd


def drop_cache(path: Path) -> None:
    """After a restore with bypass-cache: the image's pages leave the page cache."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def rewrite_xml(path: Path, xml: str, running: bool | None) -> None:
    """save-image-define: a new XML (and optionally the running/paused flag) into the image, in place.

    The stream does not move, so the XML must fit the room before it (a few KiB more than the original)."""
    image = read_image(path)
    raw = xml.encode()
    head = image.header
    if fmt.HEADER_SIZE + len(raw) > head.data_offset:
        raise InvalidArgument(f"the new XML ({len(raw)} bytes) does not fit in {path}: it has room for "
                              f"{head.xml_room} bytes; shorten it (descriptions, metadata)")
    new = fmt.new_header(raw, head.running if running is None else running, head.data_offset)
    final = fmt.SaveHeader(new.running, new.xml_len, new.data_offset, head.stream_len, new.xml_crc)
    block = final.encode() + raw
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.pwrite(fd, block + bytes(head.data_offset - len(block)), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _os_error("rewrite the save image", path, exc) from exc


def remove_partials(directory: Path) -> int:
    """Remove the temporary files of saves a killed daemon did not finish; how many."""
    removed = 0
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(PARTIAL_SUFFIX):
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed += 1
                    log.info("removed %s, the partial image of a save that did not finish", entry)
    return removed
