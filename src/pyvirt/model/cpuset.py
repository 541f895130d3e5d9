"""Host CPU lists in libvirt's syntax: ``0-3,^2,8`` (ranges, ``^`` takes a CPU out), ``r`` for all.

Used by vcpupin/emulatorpin and by ``<cputune><vcpupin cpuset=...>``. The
expression is read left to right, as libvirt does: ``0-15,^8`` is ``0-7,9-15``
but ``^8,0-15`` is ``0-15``. Formatting gives libvirt's canonical form
(ascending ranges joined by commas), so the XML round-trips stably.
"""
from __future__ import annotations

import re

from ..errors import InvalidArgument

_PART = re.compile(r"(\^)?(\d+)(?:-(\d+))?")
MAX_CPU = 4096  # far above any host; keeps '0-999999999' from allocating a huge set
SYNTAX = "give CPU numbers and ranges such as 0-3,^2 (^ leaves a CPU out), or r for every host CPU"


def parse_cpuset(text: str, host_cpus: int | None = None, *, what: str = "cpulist") -> tuple[int, ...]:
    """``text`` as a sorted tuple of CPU numbers; ``host_cpus`` (the host's CPU count) enables ``r`` and the
    range check. An empty result or a malformed part is an InvalidArgument naming it."""
    raw = text.strip()
    if raw == "r":
        if host_cpus is None:
            raise InvalidArgument(f"{what} 'r' (every host CPU) only works on a command line; list the CPUs")
        return tuple(range(host_cpus))
    chosen: set[int] = set()
    for part in raw.split(","):
        m = _PART.fullmatch(part.strip())
        if m is None:
            raise InvalidArgument(f"invalid {what} '{text}': '{part}' is not a CPU or a range; {SYNTAX}")
        negate, lo, hi = m.group(1), int(m.group(2)), int(m.group(3) or m.group(2))
        if negate and m.group(3):
            raise InvalidArgument(f"invalid {what} '{text}': '^' takes one CPU, not a range ('{part}'); {SYNTAX}")
        if hi < lo:
            raise InvalidArgument(f"invalid {what} '{text}': the range '{part}' ends before it starts; {SYNTAX}")
        if hi >= MAX_CPU:
            raise InvalidArgument(f"invalid {what} '{text}': CPU {hi} is beyond {MAX_CPU - 1}")
        if negate:
            chosen.discard(lo)
        else:
            chosen.update(range(lo, hi + 1))
    if not chosen:
        raise InvalidArgument(f"invalid {what} '{text}': it names no CPU; {SYNTAX}")
    cpus = tuple(sorted(chosen))
    if host_cpus is not None and cpus[-1] >= host_cpus:
        raise InvalidArgument(f"CPU {cpus[-1]} in {what} '{text}' is not on this host: it has CPUs 0-{host_cpus - 1}")
    return cpus


def format_cpuset(cpus: tuple[int, ...] | list[int] | frozenset[int] | set[int]) -> str:
    """Ascending ranges: (0, 1, 2, 5) -> '0-2,5'."""
    parts: list[str] = []
    run: list[int] = []
    for cpu in sorted(set(cpus)):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [cpu]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)
