"""Resource tuning of domains: <cputune>, <memtune>, <blkiotune> as cgroup v2 limits (schedinfo,
memtune, blkiotune).

At start, a guest with any of them gets a cgroup of its own and its QEMU is moved
in (``place``, called by the domain manager on the start's undo stack). Where the
host has no writable cgroup v2 tree with the cpu, memory and io controllers, the
settings stay in the definition and the start says so in a note (dominfo's CPU
note and the QEMU log); changing them --live is then refused with the reason.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..errors import HostError, InvalidArgument, OperationInvalid
from ..host.cgroup import CgroupV2, limit_files, partition_dir
from ..host.node import process_rss_kib
from ..model.domain import BlkioTune, CpuTune, Domain, MemTune
from ..model.tuning_xml import BLKIO_WEIGHT, PERIOD, QUOTA, SHARES
from ..model.validate import validate_domain
from .domain_table import DomainEntry, DomainTable
from .results import BlkioTuneInfo, MemTuneInfo, SchedInfo

log = logging.getLogger(__name__)

SCHED_PARAMS = {"cpu_shares": ("shares", SHARES), "vcpu_period": ("period", PERIOD), "vcpu_quota": ("quota", QUOTA)}


def _tuning(d: Domain) -> dict[str, str]:
    return limit_files(d.cputune, d.memtune, d.blkiotune, d.vcpu_current or d.vcpus)


def _placed(d: Domain) -> bool:
    """The guest gets a cgroup of its own: it has limits, or a resource partition to sit in."""
    return bool(_tuning(d)) or d.resource_partition is not None


def _parent(d: Domain) -> str | None:
    return partition_dir(d.resource_partition) if d.resource_partition is not None else None


class TuningManager:
    def __init__(self, table: DomainTable, cgroups: CgroupV2) -> None:
        self.table = table
        self.cgroups = cgroups

    # ------------------------------------------------------------ placement
    async def place(self, name: str, domain: Domain, pid: int, undo: contextlib.AsyncExitStack) -> list[str]:
        """Put a just-launched QEMU in a cgroup with the domain's limits; notes for the user when none applies."""
        files = _tuning(domain)
        if not _placed(domain):
            return []
        support = self.cgroups.support()
        if not support.usable:
            notes = []
            if files:
                notes.append(f"the limits of <cputune>/<memtune>/<blkiotune> are not applied: {support.reason}")
            if domain.resource_partition is not None:
                notes.append(f"<resource><partition>{domain.resource_partition}</partition> is not applied (QEMU "
                             f"stays in the daemon's cgroup): {support.reason.split('; <cputune>')[0]}")
            for note in notes:
                log.warning("domain %s: %s", name, note)
            return notes
        group = self.cgroups.create(name, _parent(domain))
        undo.callback(self.cgroups.remove, group)
        self.cgroups.write(group, files)
        self.cgroups.attach(group, pid)
        log.info("domain %s: QEMU pid %d in cgroup %s (%s)", name, pid, group,
                 ", ".join(f"{k}={v}" for k, v in files.items()))
        return []

    def release(self, live: Domain) -> None:
        """After QEMU is gone: remove its (now empty) cgroup."""
        if _placed(live) and self.cgroups.support().usable:
            self.cgroups.remove(self.cgroups.path(live.name, _parent(live)))

    def refresh(self, entry: DomainEntry) -> None:
        """After the running guest's vCPUs changed: <period>/<quota> are per vCPU, so cpu.max follows the count."""
        run = entry.running
        files = _tuning(run.live) if run is not None else {}
        if "cpu.max" not in files or not self.cgroups.support().usable:
            return
        group = self.cgroups.path(entry.name)
        if group.exists():
            self.cgroups.write(group, {"cpu.max": files["cpu.max"]})

    def _applied(self, entry: DomainEntry) -> tuple[bool, str]:
        run = entry.running
        if run is None:
            return False, "the domain is not running: these are the values of its definition"
        if not _tuning(run.live):
            return True, ""  # no limits: nothing to put in force
        support = self.cgroups.support()
        if not support.usable:
            return False, support.reason
        group = self.cgroups.path(entry.name, _parent(run.live))
        procs = self.cgroups.read(group, "cgroup.procs") or ""
        if str(run.process.pid) not in procs.split():
            return False, "the domain was started without limits; they apply from its next start"
        return True, ""

    def _group(self, entry: DomainEntry, verb: str) -> Path:
        """The running domain's cgroup, for a live change; HostError with the reason where there is none."""
        support = self.cgroups.support()
        if not support.usable:
            raise HostError(f"cannot {verb} domain '{entry.name}' live: {support.reason.split('; <cputune>')[0]}; "
                            "change its definition with --config instead (applied where the host has a cgroup v2 "
                            "tree)")
        assert entry.running is not None
        parent = _parent(entry.running.live)
        group = self.cgroups.path(entry.name, parent)
        if not group.exists():
            group = self.cgroups.create(entry.name, parent)
            self.cgroups.attach(group, entry.running.process.pid)
        return group

    @staticmethod
    def _scope(entry: DomainEntry, live: bool, config: bool) -> tuple[bool, bool]:
        """virsh's --current (neither flag): live while running, else the definition."""
        if not live and not config:
            live, config = entry.running is not None, entry.running is None
        if live and entry.running is None:
            raise OperationInvalid(f"domain '{entry.name}' is not running; use --config to change its definition")
        if config and not entry.persistent:
            raise OperationInvalid(f"domain '{entry.name}' is transient: it has no definition; leave out --config")
        return live, config

    async def _change(self, entry: DomainEntry, live: bool, config: bool, verb: str,
                      change: Callable[[Domain], Domain]) -> None:
        async with self.table.job(entry, verb):
            live, config = self._scope(entry, live, config)
            new_config = change(entry.config) if config else None
            if new_config is not None:
                validate_domain(new_config)
            if live:
                run = entry.running
                assert run is not None
                new_live = change(run.live)
                group = self._group(entry, verb)
                self.cgroups.write(group, _tuning(new_live))
                run.live = new_live
                self.table.record_runtime(entry)
            if new_config is not None:
                self.table.set_config(entry, new_config)

    # ------------------------------------------------------------- schedinfo
    def schedinfo(self, ref: str, inactive: bool = False) -> SchedInfo:
        entry = self.table.lookup(ref)
        tune = entry.view(inactive).cputune or CpuTune()
        applied, note = self._applied(entry) if not inactive else (False, "the values of the definition")
        return SchedInfo("posix", tune.shares, tune.period, tune.quota, applied, note)

    async def set_schedinfo(self, ref: str, params: dict[str, object], *, live: bool, config: bool) -> SchedInfo:
        entry = self.table.lookup(ref)
        if not params:
            raise InvalidArgument(f"give a parameter to set: {', '.join(SCHED_PARAMS)}")
        changes: dict[str, int | None] = {}
        for key, raw in params.items():
            if key not in SCHED_PARAMS:
                raise InvalidArgument(f"'{key}' is not a scheduler parameter; use {', '.join(SCHED_PARAMS)}")
            field, (lo, hi) = SCHED_PARAMS[key]
            value = _int(key, raw)
            if not (lo <= value <= hi or (key == "vcpu_quota" and value == -1)):
                raise InvalidArgument(f"{key}={value} is out of range; give {lo} to {hi}"
                                      + (" (or -1: no limit)" if key == "vcpu_quota" else ""))
            changes[field] = value

        def change(d: Domain) -> Domain:
            tune = d.cputune or CpuTune()
            return replace(d, cputune=replace(tune, shares=changes.get("shares", tune.shares),
                                              period=changes.get("period", tune.period),
                                              quota=changes.get("quota", tune.quota)))

        await self._change(entry, live, config, "set the scheduler parameters of", change)
        return self.schedinfo(ref, inactive=not live and config)

    # --------------------------------------------------------------- memtune
    def memtune(self, ref: str, inactive: bool = False) -> MemTuneInfo:
        entry = self.table.lookup(ref)
        tune = entry.view(inactive).memtune or MemTune()
        applied, note = self._applied(entry) if not inactive else (False, "the values of the definition")
        return MemTuneInfo(tune.hard_limit_kib, tune.soft_limit_kib, applied, note)

    async def set_memtune(self, ref: str, hard_kib: int | None, soft_kib: int | None, *, live: bool,
                          config: bool) -> MemTuneInfo:
        """-1 removes a limit (unlimited); a hard limit under what the guest uses now is refused."""
        entry = self.table.lookup(ref)
        if hard_kib is None and soft_kib is None:
            raise InvalidArgument("give --hard-limit or --soft-limit (KiB, -1 for unlimited)")
        for name, value in (("hard_limit", hard_kib), ("soft_limit", soft_kib)):
            if value is not None and value < -1:
                raise InvalidArgument(f"{name} {value} is negative; give KiB, or -1 for unlimited")
        if hard_kib is not None and hard_kib >= 0:
            dom = entry.view()
            rss = process_rss_kib(entry.running.process.pid) if entry.running is not None else 0
            use = max(rss, dom.effective_memory_kib)
            if hard_kib < use:
                what = (f"QEMU holds {rss} KiB now and the guest has {dom.effective_memory_kib} KiB of memory"
                        if rss else f"the guest has {dom.effective_memory_kib} KiB of memory")
                raise InvalidArgument(
                    f"hard_limit {hard_kib} KiB is below what domain '{entry.name}' uses ({what}): the kernel would "
                    f"kill the guest; give at least {use} KiB, or -1 for unlimited")

        def change(d: Domain) -> Domain:
            old = d.memtune or MemTune()
            hard = old.hard_limit_kib if hard_kib is None else (None if hard_kib < 0 else hard_kib)
            soft = old.soft_limit_kib if soft_kib is None else (None if soft_kib < 0 else soft_kib)
            if hard is not None and soft is not None and soft > hard:
                raise InvalidArgument(f"soft_limit {soft} KiB is above hard_limit {hard} KiB; make it at most "
                                      "the hard limit")
            return replace(d, memtune=MemTune(hard, soft) if hard is not None or soft is not None else None)

        await self._change(entry, live, config, "set the memory limits of", change)
        return self.memtune(ref, inactive=not live and config)

    # ------------------------------------------------------------- blkiotune
    def blkiotune(self, ref: str, inactive: bool = False) -> BlkioTuneInfo:
        entry = self.table.lookup(ref)
        tune = entry.view(inactive).blkiotune or BlkioTune()
        applied, note = self._applied(entry) if not inactive else (False, "the values of the definition")
        return BlkioTuneInfo(tune.weight, applied, note)

    async def set_blkiotune(self, ref: str, weight: int, *, live: bool, config: bool) -> BlkioTuneInfo:
        entry = self.table.lookup(ref)
        lo, hi = BLKIO_WEIGHT
        if not lo <= weight <= hi:
            raise InvalidArgument(f"weight {weight} is out of range; give {lo} to {hi}")

        def change(d: Domain) -> Domain:
            return replace(d, blkiotune=BlkioTune(weight))

        await self._change(entry, live, config, "set the block I/O weight of", change)
        return self.blkiotune(ref, inactive=not live and config)


def _int(key: str, raw: object) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
        return int(raw.strip())
    raise InvalidArgument(f"{key}={raw!r}: the value must be a whole number")
