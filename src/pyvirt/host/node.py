"""The host's live figures: memory, CPU time, NUMA cells and huge page pools.

What ``virsh nodeinfo``, ``nodememstats``, ``nodecpustats``, ``freecell``,
``freepages`` and ``allocpages`` show. The parsers are pure functions of the
kernel's text (/proc/meminfo, /proc/stat, /sys/devices/system/node); ``NodeFs``
does the reading and the one write (a huge page pool's size) under a root
path, so tests give it a directory of their own.
"""
from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import HostError, InvalidArgument

USER_HZ = os.sysconf("SC_CLK_TCK")
BASE_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
_NODE_RE = re.compile(r"^node(\d+)$")
_POOL_RE = re.compile(r"^hugepages-(\d+)kB$")


# -- pure parsers ------------------------------------------------------------------------------------------


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo (or a node's meminfo, ``Node 0 MemFree: ...``) as {field: kB, or a count}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        words = rest.split()
        if words and words[0].isdigit():
            out[key.split()[-1]] = int(words[0])
    return out


CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def parse_proc_stat(text: str) -> dict[str, dict[str, int]]:
    """The ``cpu``/``cpuN`` lines of /proc/stat as {"cpu": {...}, "cpu0": {...}} in nanoseconds."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        words = line.split()
        if not words or not words[0].startswith("cpu"):
            continue
        ticks = [int(w) for w in words[1:1 + len(CPU_FIELDS)]]
        out[words[0]] = {name: t * 1_000_000_000 // USER_HZ for name, t in zip(CPU_FIELDS, ticks, strict=False)}
    return out


def parse_cpulist(text: str) -> tuple[int, ...]:
    """``0-3,8,10-11`` -> (0, 1, 2, 3, 8, 10, 11)."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return tuple(out)


def parse_cpu_mhz(cpuinfo: str) -> int:
    """The first ``cpu MHz`` of /proc/cpuinfo, rounded; 0 where the kernel does not say."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "cpu MHz":
            try:
                return round(float(value))
            except ValueError:
                return 0
    return 0


def parse_cpu_flags(cpuinfo: str) -> tuple[str, ...]:
    """The first ``flags`` line of /proc/cpuinfo, in the kernel's order."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return tuple(value.split())
    return ()


# -- the facts as data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HugePool:
    """One huge page size's pool: its pages in all, free ones (per cell, or the host's)."""

    size_kib: int
    total: int
    free: int


@dataclass(frozen=True)
class CpuInfoRow:
    id: int
    socket_id: int
    die_id: int
    core_id: int
    siblings: str


@dataclass(frozen=True)
class Cell:
    """One NUMA node: its memory, its CPUs, its huge page pools, its distances to the others."""

    id: int
    memory_kib: int
    free_kib: int
    cpus: tuple[CpuInfoRow, ...]
    pools: tuple[HugePool, ...]
    distances: tuple[int, ...]


# -- the reader ----------------------------------------------------------------------------------------


class NodeFs:
    """The host's /proc and /sys under ``root`` ("/" on a host; a temporary tree in tests)."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = Path(root)

    def _text(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def meminfo(self) -> dict[str, int]:
        try:
            return parse_meminfo(self._text("proc/meminfo"))
        except OSError as exc:
            raise HostError(f"cannot read /proc/meminfo: {exc.strerror}; is /proc mounted?") from exc

    def cpu_stats(self) -> dict[str, dict[str, int]]:
        try:
            return parse_proc_stat(self._text("proc/stat"))
        except OSError as exc:
            raise HostError(f"cannot read /proc/stat: {exc.strerror}; is /proc mounted?") from exc

    def cpuinfo(self) -> str:
        try:
            return self._text("proc/cpuinfo")
        except OSError:
            return ""

    def _cpu_row(self, cpu: int) -> CpuInfoRow:
        topo = f"sys/devices/system/cpu/cpu{cpu}/topology"

        def number(name: str) -> int:
            try:
                return int(self._text(f"{topo}/{name}"))
            except (OSError, ValueError):
                return 0

        try:
            siblings = self._text(f"{topo}/thread_siblings_list").strip()
        except OSError:
            siblings = str(cpu)
        return CpuInfoRow(cpu, number("physical_package_id"), number("die_id"), number("core_id"), siblings)

    def _pools(self, rel: str) -> tuple[HugePool, ...]:
        base = self.root / rel
        pools = []
        try:
            entries = sorted(base.iterdir(), key=lambda p: p.name)
        except OSError:
            return ()
        for entry in entries:
            m = _POOL_RE.match(entry.name)
            if not m:
                continue
            try:
                total = int((entry / "nr_hugepages").read_text())
                free = int((entry / "free_hugepages").read_text())
            except (OSError, ValueError):
                continue
            pools.append(HugePool(int(m.group(1)), total, free))
        return tuple(sorted(pools, key=lambda p: p.size_kib))

    def host_pools(self) -> tuple[HugePool, ...]:
        """The host's huge page pools (/sys/kernel/mm/hugepages), smallest size first."""
        return self._pools("sys/kernel/mm/hugepages")

    def cells(self) -> tuple[Cell, ...]:
        """Every NUMA node; one cell with every CPU and the host's memory where the kernel has no NUMA."""
        base = self.root / "sys/devices/system/node"
        ids: list[int] = []
        with contextlib.suppress(OSError):
            ids = sorted(int(m.group(1)) for p in base.iterdir() if (m := _NODE_RE.match(p.name)))
        if not ids:
            mem = self.meminfo()
            cpus = tuple(self._cpu_row(c) for c in range(os.cpu_count() or 1))
            return (Cell(0, mem.get("MemTotal", 0), mem.get("MemFree", 0), cpus, self.host_pools(), (10,)),)
        out = []
        for n in ids:
            rel = f"sys/devices/system/node/node{n}"
            try:
                mem = parse_meminfo(self._text(f"{rel}/meminfo"))
            except OSError:
                mem = {}
            try:
                cpu_ids = parse_cpulist(self._text(f"{rel}/cpulist"))
            except OSError:
                cpu_ids = ()
            try:
                distances = tuple(int(d) for d in self._text(f"{rel}/distance").split())
            except (OSError, ValueError):
                distances = ()
            out.append(Cell(n, mem.get("MemTotal", 0), mem.get("MemFree", 0),
                            tuple(self._cpu_row(c) for c in cpu_ids), self._pools(f"{rel}/hugepages"),
                            distances))
        return tuple(out)

    def set_pool(self, size_kib: int, count: int, cell: int | None) -> None:
        """Ask the kernel for ``count`` pages of ``size_kib`` (on ``cell``, or spread over the host)."""
        rel = (f"sys/devices/system/node/node{cell}/hugepages" if cell is not None else "sys/kernel/mm/hugepages")
        path = self.root / rel / f"hugepages-{size_kib}kB" / "nr_hugepages"
        if not path.exists():
            where = f"NUMA cell {cell}" if cell is not None else "this host"
            sizes = ", ".join(f"{p.size_kib}" for p in self.host_pools()) or "none"
            raise InvalidArgument(f"{where} has no pool of {size_kib} KiB pages; page sizes here (KiB): {sizes}")
        try:
            path.write_text(f"{count}\n")
        except OSError as exc:
            raise HostError(f"the kernel refused {count} pages of {size_kib} KiB ({path}): "
                            f"{exc.strerror or exc}") from exc

    def pool_total(self, size_kib: int, cell: int | None) -> int:
        pools = self.host_pools() if cell is None else next(
            (c.pools for c in self.cells() if c.id == cell), ())
        return next((p.total for p in pools if p.size_kib == size_kib), 0)


def process_rss_kib(pid: int, proc: Path = Path("/proc")) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS of /proc/PID/status); 0 once it is gone."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return 0
    return parse_meminfo(text).get("VmRSS", 0)


NET_DEV_FIELDS = ("rx_bytes", "rx_packets", "rx_errs", "rx_drop", "tx_bytes", "tx_packets", "tx_errs", "tx_drop")
_NET_COLUMNS = {"rx_bytes": 0, "rx_packets": 1, "rx_errs": 2, "rx_drop": 3,
                "tx_bytes": 8, "tx_packets": 9, "tx_errs": 10, "tx_drop": 11}


def parse_net_dev(text: str) -> dict[str, dict[str, int]]:
    """/proc/net/dev: every link's counters as the host counts them, in one read (no netlink round trip)."""
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        numbers = rest.split()
        if not sep or len(numbers) < 16:
            continue
        out[name.strip()] = {key: int(numbers[col]) for key, col in _NET_COLUMNS.items()}
    return out


def net_dev(proc: Path = Path("/proc")) -> dict[str, dict[str, int]]:
    try:
        return parse_net_dev((proc / "net/dev").read_text())
    except OSError:
        return {}


def thread_cpu_ns(pid: int, tid: int | None = None, proc: Path = Path("/proc")) -> tuple[int, int] | None:
    """(user, system) nanoseconds of a process, or of one of its threads; None once it is gone."""
    where = proc / str(pid) / ("stat" if tid is None else f"task/{tid}/stat")
    try:
        fields = where.read_text().rsplit(")", 1)[1].split()
        tick = 1_000_000_000 // USER_HZ
        return int(fields[11]) * tick, int(fields[12]) * tick
    except (OSError, IndexError, ValueError):
        return None
