"""swtpm, the TPM emulator behind a guest's <tpm>: started by the daemon before QEMU, ended with it.

swtpm runs as the QEMU user in a session of its own (it outlives a daemon
restart, as QEMU does). It opens nothing by path either: its state directory
(``Paths.swtpm_state``, 0700 and the QEMU user's, under the daemon's private
lib dir) is a directory fd it reaches as /proc/self/fd/N, its log is an fd of
the daemon's, and its control channel is one end of a socket pair whose other
end QEMU gets (qemu/argv_tpm.py). When QEMU exits, the connection closes and
swtpm writes its state and exits; ``stop`` (called when the guest's runtime
files go) waits for that briefly and kills what is left. Its pid and start
time are kept in the daemon's own helper directory (not the guest's, which
QEMU could write), so a recycled pid is never signalled (helper_procs.py).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

from ..config import Config
from ..errors import HostError
from ..host.qemu_user import QemuIdentity
from ..model.domain import Domain
from . import helper_procs

PACKAGE = "swtpm"


def missing(config: Config) -> str | None:
    """Why this host cannot emulate a TPM (None: it can)."""
    binary = config.settings.swtpm_binary
    if os.access(binary, os.X_OK):
        return None
    return (f"TPM emulation needs swtpm, and {binary} is not there; install the Debian package {PACKAGE} "
            f"(apt-get install {PACKAGE}), or remove <tpm> from the domain")


@dataclass
class Swtpm:
    """One start's swtpm: the socket pair, then the process."""

    config: Config
    domain: Domain
    qemu_fd: int
    swtpm_fd: int
    made_state: bool = False

    @classmethod
    def prepare(cls, config: Config, domain: Domain) -> Swtpm | None:
        """The socket pair for the domain's TPM (None without one); HostError naming the package if swtpm is
        missing, before anything is made."""
        if not domain.devices.tpms:
            return None
        problem = missing(config)
        if problem is not None:
            raise HostError(f"cannot start domain '{domain.name}': {problem}")
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(config, domain, qemu_fd=b.detach(), swtpm_fd=a.detach())

    def close(self) -> None:
        """Close the daemon's ends (the processes keep theirs); idempotent."""
        for name in ("qemu_fd", "swtpm_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, -1)

    def _state_dir(self, who: QemuIdentity) -> int:
        state = self.config.paths.swtpm_state(self.domain.uuid)
        state.parent.mkdir(mode=0o700, exist_ok=True)
        if not state.exists():
            state.mkdir(mode=0o700)
            self.made_state = True
        os.chown(state, who.uid, who.gid)
        os.chmod(state, 0o700)
        return os.open(state, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def spawn(self, who: QemuIdentity) -> None:
        """Start swtpm as ``who`` on its end of the pair; its pid goes to the daemon's helper directory."""
        paths = self.config.paths
        tpm = self.domain.devices.tpms[0]
        dir_fd = self._state_dir(who)
        log_path = paths.qemu_log / f"{self.domain.name}.swtpm.log"
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        argv = [self.config.settings.swtpm_binary, "socket",
                "--tpmstate", f"dir=/proc/self/fd/{dir_fd},mode=0600",
                "--ctrl", f"type=unixio,clientfd={self.swtpm_fd}",
                "--log", f"fd={log_fd},level=1", "--terminate"]
        if tpm.backend_version != "1.2":
            argv.insert(2, "--tpm2")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=subprocess.STDOUT,
                                    pass_fds=(dir_fd, log_fd, self.swtpm_fd), start_new_session=True,
                                    close_fds=True, user=who.uid, group=who.gid, extra_groups=list(who.groups))
        except OSError as exc:
            raise HostError(f"cannot run swtpm ({argv[0]}) for domain '{self.domain.name}': {exc.strerror}; "
                            f"reinstall the Debian package {PACKAGE}") from exc
        finally:
            os.close(dir_fd)
            os.close(log_fd)
        with contextlib.suppress(OSError):
            os.close(self.swtpm_fd)
        self.swtpm_fd = -1
        helper_procs.record(paths.swtpm_pidfile(self.domain.uuid), proc.pid)
        time.sleep(0.05)
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise HostError(f"swtpm for domain '{self.domain.name}' exited at once ({proc.returncode}): "
                            + (" | ".join(tail) or "no output") + f"; see {log_path}")


def stop(config: Config, uuid: str) -> None:
    """End the guest's swtpm (it normally ends by itself once QEMU is gone) and reap it if it is our child."""
    helper_procs.stop(config.paths.swtpm_pidfile(uuid))


def forget(config: Config, uuid: str) -> None:
    """At undefine: the guest's TPM state goes with it (as libvirt's undefine without --keep-tpm)."""
    shutil.rmtree(config.paths.swtpm_state(uuid), ignore_errors=True)
