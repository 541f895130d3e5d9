"""virtiofsd, the server behind a <filesystem><driver type='virtiofs'/> share: started by the daemon for
each share before QEMU, ended with the guest.

The daemon binds a listening socket in a private directory of its own,
connects to it (QEMU gets that connected end as its chardev fd: no path),
removes the path, and hands the listening socket to virtiofsd (``--fd``),
which accepts the waiting connection. virtiofsd runs as root in its own
namespace sandbox, as it must to serve the files with their owners, and
exits when QEMU closes the connection.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..errors import HostError
from ..model.domain import Domain, Filesystem
from . import helper_procs

PACKAGE = "virtiofsd"
LEGACY = "/usr/lib/qemu/virtiofsd"  # QEMU 7.2's C virtiofsd in qemu-system-common: no read-only export
CANDIDATES = ("/usr/libexec/virtiofsd", LEGACY)


def binary(config: Config) -> str | None:
    """The virtiofsd to run: the setting, else Debian's virtiofsd package, else qemu-system-common's copy."""
    configured = config.settings.virtiofsd_binary
    for path in (configured,) if configured else CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return None


def shares(domain: Domain) -> list[tuple[int, Filesystem]]:
    return [(i, fs) for i, fs in enumerate(domain.devices.filesystems) if fs.driver_type == "virtiofs"]


def missing(config: Config, domain: Domain) -> str | None:
    """Why this host cannot serve the domain's virtiofs shares (None: it can, or there are none)."""
    if not shares(domain):
        return None
    if binary(config) is None:
        where = config.settings.virtiofsd_binary or " or ".join(CANDIDATES)
        return (f"its virtiofs shares need virtiofsd, and {where} is not there; install the Debian package "
                f"{PACKAGE} (apt-get install {PACKAGE}), or remove the <filesystem>")
    for _, fs in shares(domain):
        if not os.path.isdir(fs.source_dir):
            return f"the shared directory {fs.source_dir} (<filesystem> '{fs.target_dir}') does not exist"
        if fs.readonly and binary(config) == LEGACY:
            return (f"the read-only share '{fs.target_dir}' needs the Debian package {PACKAGE} (its virtiofsd has "
                    f"--readonly; {LEGACY} has not); install it, or remove <readonly/>")
    return None


def argv(exe: str, fd: int, fs: Filesystem) -> list[str]:
    """virtiofsd's command line: QEMU 7.2's C virtiofsd takes -o options, the Rust one (package virtiofsd) flags."""
    if exe == LEGACY:
        return [exe, f"--fd={fd}", "-o", f"source={fs.source_dir}", "-o", "sandbox=namespace", "-o", "cache=auto"]
    return [exe, f"--fd={fd}", f"--shared-dir={fs.source_dir}", "--sandbox=namespace", "--cache=auto",
            *(["--readonly"] if fs.readonly else [])]


@dataclass
class Virtiofs:
    """One start's virtiofsd connections: QEMU's ends by share index, virtiofsd's listening sockets."""

    config: Config
    domain: Domain
    qemu_fds: dict[int, int] = field(default_factory=dict)
    listen_fds: dict[int, int] = field(default_factory=dict)

    @classmethod
    def prepare(cls, config: Config, domain: Domain) -> Virtiofs | None:
        if not shares(domain):
            return None
        problem = missing(config, domain)
        if problem is not None:
            raise HostError(f"cannot start domain '{domain.name}': {problem}")
        out = cls(config, domain)
        try:
            for i, _ in shares(domain):
                out.listen_fds[i], out.qemu_fds[i] = _connected_pair(config.paths.run)
        except BaseException:
            out.close()
            raise
        return out

    def close(self) -> None:
        for fds in (self.qemu_fds, self.listen_fds):
            for fd in fds.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            fds.clear()

    def spawn(self) -> None:
        """Start one virtiofsd per share; each pid goes to the daemon's helper directory."""
        exe = binary(self.config)
        assert exe is not None
        paths = self.config.paths
        for i, fs in shares(self.domain):
            listen_fd = self.listen_fds.pop(i)
            log_path = paths.qemu_log / f"{self.domain.name}.virtiofsd-fs{i}.log"
            log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                proc = subprocess.Popen(argv(exe, listen_fd, fs), stdin=subprocess.DEVNULL, stdout=log_fd,
                                        stderr=subprocess.STDOUT, pass_fds=(listen_fd,), start_new_session=True,
                                        close_fds=True)
            except OSError as exc:
                raise HostError(f"cannot run virtiofsd ({exe}) for domain '{self.domain.name}': "
                                f"{exc.strerror}") from exc
            finally:
                os.close(log_fd)
                os.close(listen_fd)
            helper_procs.record(paths.helper_dir(self.domain.uuid) / f"virtiofsd-fs{i}.pid", proc.pid)
            time.sleep(0.05)
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise HostError(f"virtiofsd for share '{fs.target_dir}' of domain '{self.domain.name}' exited at "
                                f"once ({proc.returncode}): " + (" | ".join(tail) or "no output") + f"; see {log_path}")



def _connected_pair(run_dir: Path) -> tuple[int, int]:
    """(listening fd, connected client fd) of a unix socket whose path is gone again."""
    where = tempfile.mkdtemp(prefix="vfs", dir=run_dir)  # 0700, the daemon's
    path = os.path.join(where, "s")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        server.listen(1)
        client.connect(path)
    except OSError as exc:
        server.close()
        client.close()
        raise HostError(f"cannot make the virtiofsd connection: {exc.strerror}") from exc
    finally:
        shutil.rmtree(where, ignore_errors=True)
    return server.detach(), client.detach()


def stop(config: Config, uuid: str) -> None:
    """End the guest's virtiofsd processes (they end by themselves when QEMU goes)."""
    with contextlib.suppress(OSError):
        for pidfile in sorted(config.paths.helper_dir(uuid).glob("virtiofsd-fs*.pid")):
            helper_procs.stop(pidfile)
