"""setmem and setmaxmem: how much memory a guest has (virtio balloon) and may have (<memory>).

A running guest's memory moves through its virtio balloon (QMP ``balloon``):
the guest's driver gives pages back or takes them again, up to the maximum it
was started with, which QEMU fixes at start. So the maximum changes only in the
definition (--config), for the next start, as with libvirt's QEMU driver.
"""
from __future__ import annotations

import logging
from dataclasses import replace

from ..errors import InvalidArgument, OperationInvalid
from ..model.domain import Domain
from ..model.validate import validate_domain
from . import prechecks
from .domain_table import DomainEntry, DomainTable
from .results_cpu import MemoryChange, MemorySizes
from .scope import resolve

log = logging.getLogger(__name__)


def sizes(d: Domain) -> MemorySizes:
    return MemorySizes(d.memory_kib, d.effective_memory_kib)


def has_balloon(d: Domain) -> bool:
    return d.devices.memballoon is not None and d.devices.memballoon.model != "none"


def _check_size(kib: int, what: str) -> None:
    if kib <= 0:
        raise InvalidArgument(f"{what} {kib} KiB is not a size; give one above 0, e.g. 512M")


def _within(entry: DomainEntry, d: Domain, kib: int, where: str) -> None:
    if kib > d.memory_kib:
        raise InvalidArgument(
            f"cannot set the memory of domain '{entry.name}' ({where}) to {kib} KiB: that is above its maximum of "
            f"{d.memory_kib} KiB; give at most {d.memory_kib} KiB, or raise the maximum first with "
            f"`pyvirt setmaxmem {entry.name} SIZE --config` (applies from the next start)")


class MemoryManager:
    def __init__(self, table: DomainTable) -> None:
        self.table = table

    async def set_memory(self, ref: str, kib: int, *, live: bool, config: bool) -> MemoryChange:
        """setmem: the balloon target of the running guest (live) and <currentMemory> (config)."""
        entry = self.table.lookup(ref)
        _check_size(kib, "memory")
        async with self.table.job(entry, "set the memory of"):
            live, config = resolve(entry, live, config)
            new_config = None
            if config:
                _within(entry, entry.config, kib, "its definition")
                new_config = replace(entry.config, current_memory_kib=kib)
                validate_domain(new_config)
            run = entry.running
            if live:
                assert run is not None
                _within(entry, run.live, kib, "running")
                if not has_balloon(run.live):
                    raise OperationInvalid(
                        f"cannot change the memory of running domain '{entry.name}': it has no memory balloon; add "
                        "<memballoon model='virtio'/> to its definition and restart it (or use --config)")
                await run.monitor.balloon(kib * 1024)
                run.live = replace(run.live, current_memory_kib=kib)
                self.table.record_runtime(entry)
                log.info("domain %s: balloon target %d KiB", entry.name, kib)
            if new_config is not None:
                self.table.set_config(entry, new_config)
        return MemoryChange(sizes(run.live) if live and run else None, sizes(entry.config) if config else None)

    async def set_max_memory(self, ref: str, kib: int, *, live: bool, config: bool) -> MemoryChange:
        """setmaxmem: <memory> of the definition; a running QEMU's maximum is fixed, so live is refused."""
        entry = self.table.lookup(ref)
        _check_size(kib, "maximum memory")
        async with self.table.job(entry, "set the maximum memory of"):
            live, config = resolve(entry, live, config)
            if live:
                raise OperationInvalid(
                    f"cannot change the maximum memory of running domain '{entry.name}': QEMU fixes it at start; "
                    f"use --config (applies from the next start), and setmem to change what the guest has now")
            d = entry.config
            if d.max_memory_kib is not None and kib > d.max_memory_kib:
                raise InvalidArgument(
                    f"cannot set the maximum memory of domain '{entry.name}' to {kib} KiB: that is above its "
                    f"<maxMemory> of {d.max_memory_kib} KiB (the memory hot-plug limit); raise <maxMemory> first")
            current = min(d.effective_memory_kib, kib) if d.current_memory_kib is not None else None
            new = replace(d, memory_kib=kib, current_memory_kib=current)
            prechecks.check_memory_fits_host(new)
            validate_domain(new)
            self.table.set_config(entry, new)
        return MemoryChange(None, sizes(entry.config))
