"""`qemu-img info` answers of a pool's image files, reused while a file is unchanged.

Why: vol-list ran qemu-img once per volume on every call, and vol-info once or
twice (~10 ms each here): most of those commands' time, where virsh answers in
~20 ms. An answer is reused only while the file's signature (device, inode,
size, mtime, ctime), taken before qemu-img read it, is still the file's: any
write, truncate, resize or replacement changes it.

Timestamps move in clock ticks (a few ms; seconds on some filesystems), so a
change made within the same tick as the read would keep the signature. As git
does with its "racily clean" index entries, an answer is kept only for a file
whose timestamps were at least RACY_NS old when it was read: a file changed
lately (a running guest's disk, an image just made) is read afresh every time.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable

from ..qemu.img import ImageInfo

RACY_NS = 2_000_000_000  # FAT and old filesystems keep 1-2 s timestamps; others a clock tick

Signature = tuple[int, int, int, int, int]


def signature(st: os.stat_result) -> Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ImageInfoCache:
    """path -> (signature, format, ImageInfo); safe to use from the daemon's worker threads."""

    def __init__(self, racy_ns: int = RACY_NS) -> None:
        self.racy_ns = racy_ns
        self._entries: dict[str, tuple[Signature, str, ImageInfo]] = {}
        self._lock = threading.Lock()

    def get(self, path: str, fmt: str, read: Callable[[], ImageInfo]) -> ImageInfo:
        """The answer for ``path`` read as ``fmt``: the kept one while the file is unchanged (and its
        recorded format the same), else ``read()``'s."""
        st = os.stat(path)
        sig = signature(st)
        with self._lock:
            kept = self._entries.get(path)
        if kept is not None and kept[:2] == (sig, fmt):
            return kept[2]
        info = read()
        settled = max(st.st_mtime_ns, st.st_ctime_ns) < time.time_ns() - self.racy_ns
        with self._lock:
            if settled:
                self._entries[path] = (sig, fmt, info)
            else:
                self._entries.pop(path, None)
        return info

    def retain(self, paths: Iterable[str]) -> None:
        """Forget every file but ``paths`` (the pool's files now): deleted volumes leave nothing behind."""
        keep = set(paths)
        with self._lock:
            for path in [p for p in self._entries if p not in keep]:
                del self._entries[path]
