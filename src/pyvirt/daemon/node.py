"""The host's facts for virsh's host commands: nodeinfo, nodememstats, nodecpustats, freecell,
freepages, allocpages, capabilities (with live NUMA cells) and domcapabilities.

The probed capabilities (per boot, HostService) say what QEMU can do; the
figures here are read from /proc and /sys at each call (host/node.py).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from ..errors import HostError, InvalidArgument
from ..host.caps import HostCapabilities, LiveCell, LiveCpu, LiveFacts, capabilities_data, capabilities_xml
from ..host.domcaps import check_request, domcapabilities_xml, pick_machine
from ..host.node import BASE_PAGE_KIB, Cell, NodeFs, parse_cpu_flags, parse_cpu_mhz
from .results import CellInfo, NodeCpu, NodeInfo, NodeMemory, PagePool, PagesAllocated

log = logging.getLogger(__name__)


class Capabilities(Protocol):
    async def capabilities(self) -> HostCapabilities:
        """The host's probed capabilities (waits for the first probe)."""


def _pools(cell: Cell) -> tuple[PagePool, ...]:
    base = PagePool(BASE_PAGE_KIB, cell.memory_kib // BASE_PAGE_KIB, cell.free_kib // BASE_PAGE_KIB)
    return (base, *(PagePool(p.size_kib, p.total, p.free) for p in cell.pools))


class NodeManager:
    def __init__(self, host: Capabilities, node: NodeFs | None = None) -> None:
        self.host = host
        self.node = node or NodeFs()
        self._pages_lock = asyncio.Lock()

    async def info(self) -> NodeInfo:
        caps = await self.host.capabilities()
        topo = caps.cpu_topology
        cells = self.node.cells()
        return NodeInfo(caps.arch, caps.cpu_count, parse_cpu_mhz(self.node.cpuinfo()), topo.sockets, topo.cores,
                        topo.threads, len(cells), self.node.meminfo().get("MemTotal", caps.memory_kib))

    def _cell(self, cell: int) -> Cell:
        cells = self.node.cells()
        found = next((c for c in cells if c.id == cell), None)
        if found is None:
            raise InvalidArgument(f"NUMA cell {cell} does not exist; this host has cell(s) "
                                  f"{', '.join(str(c.id) for c in cells)}")
        return found

    def memory(self, cell: int | None = None) -> NodeMemory:
        if cell is not None:
            c = self._cell(cell)
            return NodeMemory(c.memory_kib, c.free_kib, None, None)
        m = self.node.meminfo()
        return NodeMemory(m.get("MemTotal", 0), m.get("MemFree", 0), m.get("Buffers", 0), m.get("Cached", 0))

    def cpu(self, cpu: int | None = None) -> NodeCpu:
        stats = self.node.cpu_stats()
        key = "cpu" if cpu is None else f"cpu{cpu}"
        row = stats.get(key)
        if row is None:
            count = sum(1 for k in stats if k != "cpu")
            raise InvalidArgument(f"CPU {cpu} does not exist; this host has CPUs 0 to {count - 1}")
        return NodeCpu(row["user"] + row["nice"], row["system"] + row["irq"] + row["softirq"], row["idle"],
                       row["iowait"])

    def cpu_count(self) -> int:
        return sum(1 for key in self.node.cpu_stats() if key != "cpu")

    def pools(self) -> tuple[PagePool, ...]:
        """The host's huge page pools (all cells together)."""
        return tuple(PagePool(p.size_kib, p.total, p.free) for p in self.node.host_pools())

    def cells(self) -> list[CellInfo]:
        return [CellInfo(c.id, c.memory_kib, c.free_kib, tuple(p.id for p in c.cpus), _pools(c))
                for c in self.node.cells()]

    async def allocate_pages(self, size_kib: int, count: int, cell: int | None, add: bool) -> PagesAllocated:
        """Resize a huge page pool (allocpages); all or nothing: a pool the kernel could only partly fill goes back
        to its old size."""
        if size_kib <= 0 or count < 0:
            raise InvalidArgument(f"page size {size_kib} KiB and count {count} must be positive")
        if size_kib == BASE_PAGE_KIB:
            raise InvalidArgument(f"{BASE_PAGE_KIB} KiB pages are the base pages: the kernel manages them; give a "
                                  "huge page size (2048 KiB, 1048576 KiB)")
        async with self._pages_lock:
            before = self.node.pool_total(size_kib, cell)
            wanted = before + count if add else count
            memory = self._cell(cell).memory_kib if cell is not None else self.node.meminfo().get("MemTotal", 0)
            if wanted * size_kib > memory:
                where = f"NUMA cell {cell}" if cell is not None else "this host"
                raise InvalidArgument(
                    f"{wanted} pages of {size_kib} KiB are {wanted * size_kib} KiB, more than the {memory} KiB of "
                    f"memory {where} has; ask for at most {memory // size_kib} pages")
            await asyncio.to_thread(self.node.set_pool, size_kib, wanted, cell)
            got = self.node.pool_total(size_kib, cell)
            if got < wanted:
                await asyncio.to_thread(self.node.set_pool, size_kib, before, cell)
                raise HostError(f"the kernel could reserve only {got} of {wanted} pages of {size_kib} KiB (free "
                                "memory is too small or too fragmented); the pool was left at "
                                f"{self.node.pool_total(size_kib, cell)} pages")
        log.info("huge pages: %d pages of %d KiB%s (was %d)", got, size_kib,
                 f" on cell {cell}" if cell is not None else "", before)
        return PagesAllocated(size_kib, cell, wanted, got)

    def _live(self) -> LiveFacts:
        cells = self.node.cells()
        sizes = sorted({BASE_PAGE_KIB} | {p.size_kib for p in self.node.host_pools()})
        return LiveFacts(
            cpu_features=parse_cpu_flags(self.node.cpuinfo()),
            page_sizes_kib=tuple(sizes),
            cells=tuple(LiveCell(c.id, c.memory_kib, tuple((p.size_kib, p.total) for p in _pools(c)),
                                 tuple(LiveCpu(p.id, p.socket_id, p.die_id, p.core_id, p.siblings) for p in c.cpus),
                                 c.distances) for c in cells))

    async def capabilities(self) -> tuple[str, dict[str, Any]]:
        """The <capabilities> XML and the same facts as data."""
        caps = await self.host.capabilities()
        live = self._live()
        return capabilities_xml(caps, live), capabilities_data(caps, live)

    async def domcapabilities(self, virttype: str | None, emulatorbin: str | None, arch: str | None,
                              machine: str | None) -> str:
        caps = await self.host.capabilities()
        dtype = check_request(caps, virttype, emulatorbin, arch)
        return domcapabilities_xml(caps, dtype, pick_machine(caps, machine))
