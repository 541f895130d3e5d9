"""Helper processes a guest's devices need beside QEMU (swtpm, virtiofsd): recorded and ended with the guest.

Each runs in a session of its own (it outlives a daemon restart, as QEMU
does) and normally ends by itself when QEMU closes its connection. The
daemon records its pid and start time in a directory of its own (Paths.helper_dir); ``stop``
waits briefly for it, kills what is left and reaps it when it is the
daemon's child. The start time means a recycled pid is never signalled.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

GRACE = 2.0  # seconds a helper may take to finish (swtpm writes its state) after QEMU is gone


def start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def record(pidfile: Path, pid: int) -> None:
    pidfile.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pidfile.write_text(f"{pid} {start_time(pid)}\n")


def _reap(pid: int) -> int | None:
    """The exit status once our child ``pid`` is gone; None while it runs (a stranger's pid: None)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return status if done == pid else None


def stop(pidfile: Path) -> None:
    """End the helper recorded in ``pidfile`` (if it is still that process) and remove the record."""
    try:
        pid_text, stamp = pidfile.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + GRACE
    killed = False
    while start_time(pid) == stamp and _reap(pid) is None:
        if time.monotonic() > deadline:
            if killed:
                break
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + GRACE
        time.sleep(0.01)
    with contextlib.suppress(OSError):
        pidfile.unlink()
    with contextlib.suppress(OSError):
        pidfile.parent.rmdir()  # the guest's record directory, once its last helper is gone
