"""Sealed in-memory copies of the files QEMU reads whole (kernel, initrd, BIOS ROM), kept between starts.

QEMU runs unprivileged and may not open the user's kernel by path, and ``-kernel`` knows no fd sets:
the daemon copies the file into a memfd, seals it (nobody, QEMU included, can change a sealed memfd)
and QEMU reads ``/proc/self/fd/N``. Copying a 66 MB vmlinux takes ~60 ms; a start of the same guest
again, or of another guest on the same kernel, reuses the copy while the file is unchanged (the same
device, inode, size, mtime and ctime), so confinement costs a start nothing after the first. Guests
can share one copy because nobody can write it. A file changed less than ``settle`` seconds before it
is copied is not kept (git's "racy" rule): file times tick coarsely, so a rewrite within the same tick
would otherwise look unchanged. At most ``budget`` bytes are kept, the least recently
used copy going first; a budget of 0 keeps none.
"""
from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import OrderedDict

from ..errors import HostError

# fcntl's file seals (Linux): no one, QEMU included, can change a sealed memfd's content
F_ADD_SEALS = 1033
SEALS = 0x0001 | 0x0002 | 0x0004 | 0x0008  # seal, shrink, grow, write

Signature = tuple[int, int, int, int, int]


def _signature(st: os.stat_result) -> Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def sealed_copy(src: int, name: str) -> int:
    """A new sealed memfd holding what ``src`` holds now (a file that shrinks meanwhile: what was there)."""
    mfd = os.memfd_create(name or "image", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        size, offset = os.fstat(src).st_size, 0
        while offset < size:
            sent = os.sendfile(mfd, src, offset, size - offset)
            if sent == 0:
                break
            offset += sent
        fcntl.fcntl(mfd, F_ADD_SEALS, SEALS)
    except OSError:
        os.close(mfd)
        raise
    return mfd


class SealedImages:
    """The daemon's kept copies; ``fd_for`` may run in several worker threads at once."""

    def __init__(self, budget: int, settle: float = 1.0) -> None:
        self.budget = budget
        self.settle_ns = int(settle * 1e9)
        self._copies: OrderedDict[Signature, tuple[int, int]] = OrderedDict()  # signature -> (memfd, size)
        self._lock = threading.Lock()

    def fd_for(self, path: str) -> int:
        """A sealed memfd with the content of ``path``; the caller owns (and closes) the fd it gets."""
        try:
            src = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
        except OSError as exc:
            raise HostError(f"cannot open '{path}' for QEMU: {exc.strerror}") from exc
        try:
            before = _signature(os.fstat(src))
            with self._lock:
                kept = self._copies.get(before)
                if kept is not None:
                    self._copies.move_to_end(before)
                    return os.dup(kept[0])
            started = time.time_ns()
            mfd = sealed_copy(src, os.path.basename(path))
            settled = started - max(before[3], before[4]) >= self.settle_ns
            if settled and _signature(os.fstat(src)) == before:  # and unchanged while it was copied
                self._keep(before, mfd)
            return mfd
        except OSError as exc:
            raise HostError(f"cannot copy '{path}' for QEMU: {exc.strerror}") from exc
        finally:
            os.close(src)

    def _keep(self, signature: Signature, mfd: int) -> None:
        size = signature[2]
        if size > self.budget:
            return
        with self._lock:
            if signature in self._copies:
                return
            self._copies[signature] = (os.dup(mfd), size)
            while sum(s for _, s in self._copies.values()) > self.budget:
                _, (old, _) = self._copies.popitem(last=False)
                os.close(old)

    def close(self) -> None:
        with self._lock:
            for fd, _ in self._copies.values():
                os.close(fd)
            self._copies.clear()
