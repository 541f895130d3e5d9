"""A vCPU thread's state as vcpuinfo and domstats name it (libvirt's virVcpuState), from /proc's letter.

A sleeping vCPU thread is an idle vCPU, still available to the guest: running,
as libvirt reports it; one waiting on I/O in the kernel is blocked; a thread
that is gone is offline.
"""
from __future__ import annotations

THREAD_STATES = {"R": "running", "S": "running", "D": "blocked", "Z": "offline", "X": "offline"}
STATE_CODES = {"offline": 0, "running": 1, "blocked": 2}
