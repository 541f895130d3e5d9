"""Start, watch, reattach to and kill QEMU processes.

How QEMU is started, and why not ``-daemonize``: QEMU is started as our child
but in a session of its own (``setsid``), stdin on /dev/null, stdout and
stderr appended to the per-VM log. A child in its own session does not die
with the daemon: nothing signals it when pyvirtd exits or is killed, and it
is re-parented to PID 1. We tried ``-daemonize``: after start-up QEMU points
its stderr at /dev/null, so the log would lose everything QEMU says later
("terminating on signal 15 from pid N", runtime warnings), and ``-D`` to
keep it truncates the log. Start-up failure is just as clear this way: QEMU
prints its reason and exits with status 1, and we watch for that on its pidfd
while waiting for the socket, so a failure is reported the moment it happens,
with the tail of QEMU's output from the log. QEMU binds its QMP socket before
it parses the devices, so it may also fail after the socket accepts: the
caller then turns what its monitor saw into the same error with
``start_failed`` (which waits for QEMU's exit, so its last words are in the log).

Exit is watched with a pidfd (readable as soon as the process exits, even
while it is a zombie nobody reaped yet: PID 1 here reaps orphans about a
second late), never by polling /proc. Liveness after a daemon restart comes
from the process itself: /proc/PID/cmdline must carry ``-uuid UUID``.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import select
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import InvalidArgument, OperationInvalid, QemuError
from ..model.domain import Domain
from .diagnose import start_error

#: Lines of QEMU's own output a start-up error carries.
ERROR_TAIL_LINES = 10
#: Period of the readiness probe of the QMP socket while QEMU initialises.
_PROBE_PERIOD = 0.002
#: How long a QEMU whose monitor failed may take to exit by itself (so its reason reaches the log).
EXIT_GRACE = 2.0


@dataclass(frozen=True)
class LogSpan:
    """Where one start of QEMU begins in its log: a start-up error quotes only what follows."""

    path: Path
    start: int

    def tail(self, lines: int = ERROR_TAIL_LINES) -> str:
        return _log_tail(self.path, self.start, lines)


class QemuProcess:
    """A running (or just exited) QEMU process, watched through a pidfd.

    ``popen`` is set when we started QEMU in this daemon: then we reap it and
    know its exit status. After a reattach QEMU is not our child; PID 1 reaps
    it and ``returncode`` stays None. ``log`` is where this start's output
    begins in the domain's log (None after a reattach).
    """

    def __init__(self, pid: int, pidfd: int, *, popen: subprocess.Popen[bytes] | None = None,
                 log: LogSpan | None = None) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self._popen = popen
        self.log = log
        self._exited: asyncio.Future[None] | None = None
        self._reader_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"<QemuProcess pid={self.pid} {'alive' if self.alive() else 'exited'}>"

    @property
    def returncode(self) -> int | None:
        """Exit status (negative: killed by that signal) when we are QEMU's parent."""
        if self._popen is None:
            return None
        return self._popen.poll()

    def alive(self) -> bool:
        """True while the process has not exited (a zombie counts as exited)."""
        if self.pidfd < 0:
            return False
        readable, _, _ = select.select([self.pidfd], [], [], 0)
        if readable:
            self._reap()
            return False
        return True

    async def wait_exit(self, timeout: float | None = None) -> bool:
        """Wait until the process is gone; False if ``timeout`` passed first."""
        if not self.alive():
            return True
        loop = asyncio.get_running_loop()
        if self._exited is None or self._reader_loop is not loop:
            self._exited = loop.create_future()
            self._reader_loop = loop
            loop.add_reader(self.pidfd, self._on_exit)
        try:
            await asyncio.wait_for(asyncio.shield(self._exited), timeout)
        except TimeoutError:
            return False
        return True

    def _on_exit(self) -> None:
        if self._reader_loop is not None:
            self._reader_loop.remove_reader(self.pidfd)
        self._reap()
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(None)

    def _reap(self) -> None:
        if self._popen is not None:
            self._popen.poll()

    def send_signal(self, signum: int) -> None:
        """Signal through the pidfd (cannot hit a recycled pid); no-op once exited."""
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def terminate(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if QEMU is still there after ``timeout`` s."""
        if not self.alive():
            return
        self.send_signal(signal.SIGTERM)
        if await self.wait_exit(timeout):
            return
        self.kill()
        if not await self.wait_exit(5.0):
            raise QemuError(f"QEMU process {self.pid} did not exit after SIGKILL (stuck in the kernel?)")

    def close(self) -> None:
        """Release the pidfd (QEMU keeps running)."""
        if self._reader_loop is not None and self.pidfd >= 0:
            with contextlib.suppress(Exception):
                self._reader_loop.remove_reader(self.pidfd)
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


# -- spawning -----------------------------------------------------------------


async def spawn(
    argv: list[str],
    *,
    log_path: Path,
    pidfile: Path,
    qmp_socket: Path,
    pass_fds: Iterable[int] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    user: tuple[int, int, tuple[int, ...]] | None = None,
    domain: Domain | None = None,
) -> QemuProcess:
    """Start QEMU from ``argv`` and return once its QMP socket accepts.

    ``argv`` must open a QMP server on ``qmp_socket`` (``-qmp
    unix:PATH,server=on,wait=off``) and must not contain ``-daemonize``.
    ``-pidfile`` is added if absent: QEMU locks it, so a second QEMU for the
    same VM fails at once instead of sharing its disks. On failure nothing
    is left running and QemuError carries QEMU's last lines of output (and,
    given the ``domain``, what to change in it when pyvirt knows the message).
    ``user`` (uid, gid, supplementary gids): QEMU runs as that user from its
    first instruction (exec'd after setgroups/setgid/setuid), never as root.
    """
    argv = _checked_argv(argv, pidfile)
    _clear_stale_socket(qmp_socket)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        os.write(log_fd, _log_header(argv, env).encode())
        log_start = os.lseek(log_fd, 0, os.SEEK_END)
        try:
            popen = subprocess.Popen(  # noqa: ASYNC220 - fork+exec is quick; a pidfd, not the loop, watches QEMU
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                pass_fds=tuple(pass_fds),
                env=dict(env) if env is not None else None,
                start_new_session=True,
                close_fds=True,
                user=user[0] if user else None,
                group=user[1] if user else None,
                extra_groups=list(user[2]) if user else None,
            )
        except OSError as exc:
            raise QemuError(f"cannot run QEMU binary {argv[0]}: {exc.strerror}; is QEMU installed?") from exc
    finally:
        os.close(log_fd)
    proc = QemuProcess(popen.pid, os.pidfd_open(popen.pid), popen=popen, log=LogSpan(log_path, log_start))
    try:
        await _wait_ready(proc, qmp_socket, timeout, domain)
    except BaseException:
        proc.kill()
        await proc.wait_exit(5.0)
        proc.close()
        raise
    return proc


def _checked_argv(argv: list[str], pidfile: Path) -> list[str]:
    if not argv:
        raise InvalidArgument("QEMU argv is empty; it must start with the QEMU binary")
    if "-daemonize" in argv:
        raise InvalidArgument("QEMU argv contains -daemonize; spawn() keeps QEMU in its own session, drop it")
    if "-pidfile" not in argv:
        return [*argv, "-pidfile", str(pidfile)]
    return list(argv)


def _clear_stale_socket(path: Path) -> None:
    """Remove a QMP socket left by a dead QEMU; refuse if a live one answers.

    Without this the readiness probe could connect to another QEMU that
    still listens there (the same VM started twice).
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)
            return
    raise OperationInvalid(
        f"a QEMU process is already listening on {path}; is this VM running already? "
        "Stop it (or remove the socket if you are sure no QEMU owns it)"
    )


def _log_header(argv: list[str], env: Mapping[str, str] | None) -> str:
    now = datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")
    env_words = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted((env or {}).items()))
    return f"{now}: starting up\n{env_words + ' ' if env_words else ''}{shlex.join(argv)}\n"


async def _wait_ready(proc: QemuProcess, qmp_socket: Path, timeout: float, domain: Domain | None) -> None:
    """Wait until the QMP socket accepts, or fail the moment QEMU exits."""
    assert proc.log is not None
    deadline = time.monotonic() + timeout
    while True:
        if _accepts(qmp_socket):
            return
        if await proc.wait_exit(_PROBE_PERIOD):
            raise start_error(when="before opening its monitor", tail=proc.log.tail(), log_path=str(proc.log.path),
                              domain=domain, status=proc.returncode)
        if time.monotonic() >= deadline:
            raise start_error(
                when="before opening its monitor", tail=proc.log.tail(), log_path=str(proc.log.path), domain=domain,
                exited=False, cause=f"it did not open its QMP socket {qmp_socket} within {timeout:g} s (hung, or "
                "too slow for qemu_start_timeout in pyvirt.toml)")


async def start_failed(proc: QemuProcess, when: str, cause: QemuError, domain: Domain | None = None) -> QemuError:
    """The error of a start that failed ``when`` (a step after the QMP socket accepted) with ``cause``.

    A monitor that hangs up mid-handshake means QEMU is on its way out with a reason on
    stderr: give it EXIT_GRACE seconds to finish, then quote the log. A QEMU still there after
    that (hung, or it refused a command) is the caller's to kill; the error says so.
    """
    exited = await proc.wait_exit(EXIT_GRACE)
    log = proc.log
    return start_error(when=when, tail=log.tail() if log else "", log_path=str(log.path) if log else "its log",
                       domain=domain, exited=exited, status=proc.returncode, cause=cause.message)


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN):
                return False
            raise
        return True


def _log_tail(log_path: Path, start: int, lines: int = ERROR_TAIL_LINES) -> str:
    try:
        with open(log_path, "rb") as f:
            f.seek(start)
            text = f.read(256 * 1024).decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:]) if text.strip() else ""


# -- after a daemon restart -----------------------------------------------------


def read_pidfile(path: Path) -> int | None:
    """The pid in a QEMU pidfile, or None if it is missing or garbled.

    A pid from here is only a hint: check it with ``reattach``.
    """
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def reattach(pid: int, uuid: str) -> QemuProcess | None:
    """Watch a QEMU started before a daemon restart, if it is still that VM's.

    The pidfd is opened first and the process checked after, so a pid that
    was recycled between the check and the open cannot slip through.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        if _is_qemu_of(pid, uuid) and not select.select([pidfd], [], [], 0)[0]:
            return QemuProcess(pid, pidfd)
    except OSError:
        pass
    os.close(pidfd)
    return None


def _is_qemu_of(pid: int, uuid: str) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    state = stat[stat.rindex(")") + 2:].split(" ", 1)[0]
    if state in ("Z", "X"):
        return False
    words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    want = uuid.lower().encode()
    return any(
        w in (b"-uuid", b"--uuid") and words[i + 1].lower() == want for i, w in enumerate(words[:-1])
    )


def qemus_with(marker: bytes) -> dict[str, int]:
    """uuid -> pid of the live processes whose command line holds ``marker`` and a ``-uuid``."""
    found: dict[str, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            words = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not any(marker in w for w in words):
            continue
        for i, w in enumerate(words[:-1]):
            if w in (b"-uuid", b"--uuid"):
                found[words[i + 1].decode(errors="replace").lower()] = int(entry)
    return found
