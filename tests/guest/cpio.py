"""A writer for the cpio "newc" format, the one the Linux initramfs reads.

Written here rather than calling cpio(1) so the archive can hold root-owned
entries and device nodes (/dev/console must exist before devtmpfs is mounted)
without running as root, and so the bytes are the same on every build
(fixed mtime, owner and inode numbers).
"""
from __future__ import annotations

import stat
from typing import BinaryIO

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


class NewcWriter:
    """Append entries to a newc archive; call ``close()`` to write the trailer."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._ino = 0
        self._names: set[str] = set()
        self._closed = False

    def _entry(self, name: str, mode: int, data: bytes = b"", *,
               nlink: int = 1, rdev: tuple[int, int] = (0, 0)) -> None:
        if self._closed:
            raise ValueError(f"cpio archive is closed; cannot add {name!r}")
        name = name.strip("/") or "."
        if name != TRAILER:
            if name in self._names:
                raise ValueError(f"cpio entry {name!r} added twice")
            self._names.add(name)
            self._ino += 1
        raw_name = name.encode() + b"\0"
        fields = (
            self._ino if name != TRAILER else 0,  # ino
            mode, 0, 0, nlink,                    # mode, uid, gid, nlink
            0, len(data),                         # mtime, filesize
            0, 0, rdev[0], rdev[1],               # dev major/minor, rdev major/minor
            len(raw_name), 0,                     # namesize, check
        )
        header = MAGIC + b"".join(b"%08X" % value for value in fields)
        self._out.write(header + raw_name + _pad(len(header) + len(raw_name)))
        self._out.write(data + _pad(len(data)))

    def add_dir(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm, nlink=2)

    def add_file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def add_symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def add_char_device(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def close(self) -> None:
        """Write the trailer entry; the stream itself stays open."""
        self._entry(TRAILER, 0)
        self._closed = True
