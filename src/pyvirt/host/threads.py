"""The host side of a guest's CPUs: QEMU's threads, where they run, and which CPUs they may use.

vcpuinfo, vcpupin and emulatorpin read and set what the kernel knows about
each thread of the QEMU process: /proc/PID/task/TID/stat (state, last CPU,
CPU time), .../schedstat and .../sched (time spent waiting to run), and the
scheduler affinity (sched_getaffinity/sched_setaffinity on the thread id).
The parsers are pure functions of the kernel's text; the readers take a
``proc`` root so tests can give them a directory of their own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import HostError, InvalidArgument
from ..model.cpuset import format_cpuset
from .node import USER_HZ, parse_cpulist

SYS_CPU = Path("/sys/devices/system/cpu")
_TICK_NS = 1_000_000_000 // USER_HZ
_WAIT_KEYS = ("se.statistics.wait_sum", "se.wait_sum", "stats.wait_sum", "wait_sum")


@dataclass(frozen=True)
class ThreadStat:
    """One thread as /proc/PID/task/TID/stat has it."""

    state: str  # the kernel's letter: R running, S sleeping, D waiting on I/O, T stopped, ...
    cpu: int  # the CPU it ran on last
    cpu_time_ns: int  # user + system


def parse_thread_stat(text: str) -> ThreadStat:
    """/proc/.../stat: the fields after the command name (which may hold spaces and parentheses)."""
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 of proc(5): state; utime 14, stime 15, processor 39
    return ThreadStat(fields[0], int(fields[36]), (int(fields[11]) + int(fields[12])) * _TICK_NS)


def parse_wait_ns(sched: str) -> int:
    """/proc/.../sched: wait_sum (milliseconds with a fraction, only with schedstats on) in ns; 0 without."""
    for line in sched.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in _WAIT_KEYS:
            whole, _, frac = value.strip().partition(".")
            return int(whole) * 1_000_000 + int((frac + "000000")[:6])
    return 0


def parse_delay_ns(schedstat: str) -> int:
    """/proc/.../schedstat: 'run_ns wait_ns timeslices'; the time spent runnable but not running."""
    fields = schedstat.split()
    return int(fields[1]) if len(fields) > 1 else 0


class Threads:
    """Reads and sets the threads of processes under a /proc root."""

    def __init__(self, proc: Path = Path("/proc"), sys_cpu: Path = SYS_CPU) -> None:
        self.proc = proc
        self.sys_cpu = sys_cpu

    def host_cpus(self) -> int:
        """How many CPUs the host has (the length of an affinity map: the highest present CPU + 1)."""
        try:
            present = parse_cpulist((self.sys_cpu / "present").read_text())
        except (OSError, ValueError):
            present = ()
        return (max(present) + 1) if present else (os.cpu_count() or 1)

    def online_cpus(self) -> tuple[int, ...]:
        try:
            return parse_cpulist((self.sys_cpu / "online").read_text())
        except (OSError, ValueError):
            return tuple(range(self.host_cpus()))

    def tids(self, pid: int) -> list[int]:
        """Every thread of ``pid`` (its main thread first); empty once it is gone."""
        try:
            return sorted(int(t) for t in os.listdir(self.proc / str(pid) / "task"))
        except OSError:
            return []

    def _read(self, pid: int, tid: int, name: str) -> str | None:
        try:
            return (self.proc / str(pid) / "task" / str(tid) / name).read_text()
        except OSError:
            return None

    def stat(self, pid: int, tid: int) -> ThreadStat | None:
        text = self._read(pid, tid, "stat")
        try:
            return parse_thread_stat(text) if text else None
        except (IndexError, ValueError):
            return None

    def wait_ns(self, pid: int, tid: int) -> int:
        return parse_wait_ns(self._read(pid, tid, "sched") or "")

    def delay_ns(self, pid: int, tid: int) -> int:
        return parse_delay_ns(self._read(pid, tid, "schedstat") or "")

    @staticmethod
    def affinity(tid: int) -> tuple[int, ...]:
        """The CPUs thread ``tid`` may run on; () once it is gone."""
        try:
            return tuple(sorted(os.sched_getaffinity(tid)))
        except OSError:
            return ()

    def set_affinity(self, tid: int, cpus: tuple[int, ...], who: str) -> None:
        """Let thread ``tid`` run on ``cpus`` only. A CPU that is offline is an InvalidArgument (the kernel
        answers EINVAL when no CPU of the set can run it); a thread that has gone is skipped."""
        online = set(self.online_cpus())
        if not online & set(cpus):
            raise InvalidArgument(f"cannot pin {who}: none of CPUs {_show(cpus)} is online on this host "
                                  f"(online: {_show(tuple(sorted(online)))})")
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            return
        except OSError as exc:
            raise HostError(f"cannot pin {who} (thread {tid}) to CPUs {_show(cpus)}: {exc.strerror}") from exc


def _show(cpus: tuple[int, ...]) -> str:
    return format_cpuset(cpus) or "none"
