"""The host files a QEMU needs, opened by the daemon and handed over as file descriptors.

QEMU runs unprivileged and may open nothing of the host's by path: the
daemon (root) opens every disk, firmware, kernel, initrd, NVRAM, serial log
and serial file, and QEMU gets the descriptors. What QEMU's block layer and
chardevs open goes through an fd set (``-add-fd``, then ``/dev/fdset/N``); a
server socket at a path of the user's is bound by the daemon and passed as a
listening fd:
QEMU dups the fd whose access mode matches, so a writable disk's set holds a
read-write and a read-only fd. The kernel, initrd and a BIOS ROM are read by
plain ``fopen``, which knows no fd sets; they are copied into sealed memfds
QEMU opens as ``/proc/self/fd/N``. No owner or mode of any file changes.
"""
from __future__ import annotations

import contextlib
import os
import socket
import stat
from dataclasses import dataclass, field

from ..errors import HostError
from ..model.domain import CharDev, Disk, Domain
from ..qemu.argv_common import AddFd
from .sealed_images import SealedImages, sealed_copy

FIRST_SET = 1  # fd sets of a start count from here; hot-plugged ones from HOTPLUG_SET
HOTPLUG_SET = 1000
SETS_PER_HOTPLUG = 32  # a hot-plugged disk's image and its backing layers (storage/chain.py: at most 16)


def hotplug_sets(source_index: int) -> range:
    """The fd set ids of the hot-plugged disk with node number ``source_index``: its own range, so
    a detach removes exactly its sets."""
    first = HOTPLUG_SET + source_index * SETS_PER_HOTPLUG
    return range(first, first + SETS_PER_HOTPLUG)


@dataclass
class HostFiles:
    """Files opened for one QEMU: what QEMU is told instead of each path, and the fds it inherits."""

    paths: dict[str, str] = field(default_factory=dict)  # host path -> /dev/fdset/N or /proc/self/fd/N
    add_fds: list[AddFd] = field(default_factory=list)
    sockets: dict[str, int] = field(default_factory=dict)  # socket path -> listening fd bound by the daemon
    fds: list[int] = field(default_factory=list)  # every fd QEMU inherits (the fd sets' and the memfds)
    next_set: int = FIRST_SET
    sealed: SealedImages | None = None  # the daemon's kept copies of kernels and initrds (None: copy each time)

    def close(self) -> None:
        """Close the daemon's copies (QEMU holds its own once it runs); idempotent."""
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []

    def fd_set(self, path: str, writable: bool, opaque_path: str | None = None) -> str:
        """Open ``path`` read-only (and read-write when ``writable``) into a new fd set; /dev/fdset/N."""
        if path in self.paths:
            return self.paths[path]
        set_id = self.next_set
        self.next_set += 1
        modes = ((os.O_RDWR, "rw"), (os.O_RDONLY, "ro")) if writable else ((os.O_RDONLY, "ro"),)
        for flags, how in modes:
            fd = _open(path, flags)
            self.fds.append(fd)
            self.add_fds.append(AddFd(fd, set_id, f"{how}:{opaque_path or path}"))
        self.paths[path] = f"/dev/fdset/{set_id}"
        return self.paths[path]

    def log_set(self, path: str) -> str:
        """A file QEMU writes (serial log, <serial type='file'>): created 0600 if missing, never read.

        QEMU applies its own O_APPEND or O_TRUNC to the fd it dups from the set."""
        if path in self.paths:
            return self.paths[path]
        set_id = self.next_set
        self.next_set += 1
        fd = _open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        self.fds.append(fd)
        self.add_fds.append(AddFd(fd, set_id, f"wo:{path}"))
        self.paths[path] = f"/dev/fdset/{set_id}"
        return self.paths[path]

    def listen(self, path: str) -> int:
        """Bind a unix socket at ``path`` for a server chardev QEMU could not bind itself (a directory of
        the user's); 0600, the daemon's. A socket file already there is replaced only if nothing listens."""
        if path in self.sockets:
            return self.sockets[path]
        _clear_dead_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(8)
        except OSError as exc:
            sock.close()
            raise HostError(f"cannot listen on '{path}' for QEMU: {exc.strerror}") from exc
        fd = sock.detach()
        self.fds.append(fd)
        self.sockets[path] = fd
        return fd

    def sealed_copy(self, path: str) -> str:
        """A sealed in-memory copy of a file QEMU reads whole (kernel, initrd, BIOS); /proc/self/fd/N."""
        if path in self.paths:
            return self.paths[path]
        if self.sealed is not None:
            mfd = self.sealed.fd_for(path)
        else:
            src = _open(path, os.O_RDONLY)
            try:
                mfd = sealed_copy(src, os.path.basename(path))
            except OSError as exc:
                raise HostError(f"cannot copy '{path}' for QEMU: {exc.strerror}") from exc
            finally:
                os.close(src)
        self.fds.append(mfd)
        self.paths[path] = f"/proc/self/fd/{mfd}"
        return self.paths[path]


def _clear_dead_socket(path: str) -> None:
    """Remove a stale socket file at ``path``; refuse one that a live process listens on."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise HostError(f"cannot listen on '{path}' for QEMU: a file that is not a socket is there; "
                        "remove it or give the channel another <source path=.../>")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # nobody listens: left by a guest that is gone
            return
    raise HostError(f"cannot listen on '{path}' for QEMU: another process listens there; give the channel "
                    "another <source path=.../>")


def remove_sockets(domain: Domain) -> None:
    """After QEMU: the sockets the daemon bound at the guest's explicit paths (if nothing listens)."""
    for dev in _chardevs(domain):
        if dev.type == "unix" and dev.source_mode != "connect" and dev.source_path:
            with contextlib.suppress(HostError, OSError):
                _clear_dead_socket(dev.source_path)


def _open(path: str, flags: int, mode: int = 0o600) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC | os.O_NOCTTY, mode)
    except OSError as exc:
        raise HostError(f"cannot open '{path}' for QEMU: {exc.strerror}") from exc


def _writes(disk: Disk) -> bool:
    return not disk.readonly and disk.device != "cdrom"


def open_disk(files: HostFiles, disk: Disk) -> str:
    """The disk's image (read-write unless it is read-only) and every layer of its recorded backing
    chain (read-only) into fd sets; what QEMU opens instead of the image's path."""
    assert disk.source is not None
    filename = files.fd_set(disk.source, _writes(disk))
    for layer in disk.backing_chain:
        files.fd_set(layer.path, writable=False)
    return filename


def _chardevs(domain: Domain) -> list[CharDev]:
    d = domain.devices
    return [*d.serials, *d.consoles, *d.channels]


class PlannedFiles(HostFiles):
    """The same plan with nothing opened (domxml-to-native): fd numbers counted from ``first_fd``, so the
    printed argv is stable from one run to the next."""

    def __init__(self, first_fd: int) -> None:
        super().__init__()
        self._next_fd = first_fd

    def _fd(self) -> int:
        self._next_fd += 1
        self.fds.append(self._next_fd - 1)
        return self._next_fd - 1

    def close(self) -> None:
        self.fds = []

    def fd_set(self, path: str, writable: bool, opaque_path: str | None = None) -> str:
        if path not in self.paths:
            set_id = self.next_set
            self.next_set += 1
            for how in ("rw", "ro") if writable else ("ro",):
                self.add_fds.append(AddFd(self._fd(), set_id, f"{how}:{opaque_path or path}"))
            self.paths[path] = f"/dev/fdset/{set_id}"
        return self.paths[path]

    def log_set(self, path: str) -> str:
        if path not in self.paths:
            set_id = self.next_set
            self.next_set += 1
            self.add_fds.append(AddFd(self._fd(), set_id, f"wo:{path}"))
            self.paths[path] = f"/dev/fdset/{set_id}"
        return self.paths[path]

    def listen(self, path: str) -> int:
        if path not in self.sockets:
            self.sockets[path] = self._fd()
        return self.sockets[path]

    def sealed_copy(self, path: str) -> str:
        if path not in self.paths:
            self.paths[path] = f"/proc/self/fd/{self._fd()}"
        return self.paths[path]


def open_host_files(domain: Domain, serial_log: str, files: HostFiles | None = None) -> HostFiles:
    """Open everything ``domain`` makes QEMU read or write on the host (all or nothing).

    ``serial_log`` is the daemon's per-VM log of the first serial port; ``files`` a HostFiles with the
    daemon's kept copies of kernels and initrds (``sealed``), or a PlannedFiles to only plan the opens
    (domxml-to-native)."""
    files = HostFiles() if files is None else files
    try:
        for disk in domain.devices.disks:
            if disk.source is not None:
                open_disk(files, disk)
        os_ = domain.os
        for image in (os_.kernel, os_.initrd):
            if image:
                files.sealed_copy(image)
        loader = os_.loader
        if loader is not None:
            if loader.type in (None, "rom"):
                files.sealed_copy(loader.path)
            else:
                files.fd_set(loader.path, writable=loader.readonly is False)
                if loader.nvram:
                    files.fd_set(loader.nvram, writable=True)
        files.log_set(serial_log)
        for dev in _chardevs(domain):
            if dev.log_file:
                files.log_set(dev.log_file)
            if dev.type == "file" and dev.source_path:
                files.log_set(dev.source_path)
            if dev.type == "unix" and dev.source_mode != "connect" and dev.source_path:
                files.listen(dev.source_path)
    except BaseException:
        files.close()
        raise
    return files
