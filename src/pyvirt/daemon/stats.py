"""Domain statistics: domstats, dommemstat, and the samples /metrics and `pyvirt top` are made of.

A sample of a running domain costs one QMP round trip: the commands its
groups need (query-blockstats, query-block, query-balloon, the balloon's
guest-stats, query-cpus-fast) are sent together and answered in one go, and the
domains of one request are sampled side by side. The rest comes from /proc: the
QEMU process's CPU time and resident memory, its vCPU threads' CPU time, and
every tap's counters from one read of /proc/net/dev.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Iterable
from dataclasses import replace
from typing import Any

from ..errors import InvalidArgument, OperationInvalid, QemuError
from ..host.node import net_dev, process_rss_kib, thread_cpu_ns
from ..host.threads import Threads
from ..qemu.argv import disk_names
from ..qemu.media import matches_qdev
from ..qemu.monitor import BalloonGuestStats
from .domain_table import DomainEntry, DomainTable
from .results import BlockSample, GuestSample, MemoryStats, NetSample, StatsRecord
from .stats_fields import GROUPS, LISTS, flatten, pick
from .vcpu_states import STATE_CODES, THREAD_STATES

BALLOON_PATH = "/machine/peripheral/balloon0"  # qemu/argv_devices.py names the balloon device balloon0
# QEMU's guest-stats names -> dommemstat's (bytes become KiB, counts stay counts)
GUEST_MEMORY = (("stat-swap-in", "swap_in", 1024), ("stat-swap-out", "swap_out", 1024),
                ("stat-major-faults", "major_fault", 1), ("stat-minor-faults", "minor_fault", 1),
                ("stat-free-memory", "unused", 1024), ("stat-total-memory", "available", 1024),
                ("stat-available-memory", "usable", 1024), ("stat-disk-caches", "disk_caches", 1024),
                ("stat-htlb-pgalloc", "hugetlb_pgalloc", 1), ("stat-htlb-pgfail", "hugetlb_pgfail", 1))
STATS_TIMEOUT = 5.0


def has_balloon(entry: DomainEntry) -> bool:
    balloon = entry.view().devices.memballoon
    return balloon is not None and balloon.model != "none"


class StatsManager:
    def __init__(self, table: DomainTable, threads: Threads | None = None) -> None:
        self.table = table
        self.threads = threads or Threads()
        self._periods_set: set[int] = set()  # ids of running domains whose balloon polling we turned on

    # ------------------------------------------------------------- samples
    async def samples(self, entries: Iterable[DomainEntry], groups: Iterable[str] = GROUPS) -> list[GuestSample]:
        """One sample per entry, the running ones taken side by side."""
        wanted = frozenset(groups)
        nets = net_dev() if "interface" in wanted else {}
        return list(await asyncio.gather(*(self._sample(e, wanted, nets) for e in entries)))

    async def _sample(self, entry: DomainEntry, groups: frozenset[str], nets: dict[str, dict[str, int]]
                      ) -> GuestSample:
        dom = entry.view()
        run = entry.running
        base = GuestSample(
            name=entry.name, uuid=entry.uuid, id=entry.id, state=entry.state.value, reason=entry.reason,
            persistent=entry.persistent, time=time.time(), vcpus_max=dom.vcpus,
            vcpus_current=dom.vcpu_current or dom.vcpus, memory_max_kib=dom.memory_kib, balloon_kib=None,
            rss_kib=None, cpu_user_ns=None, cpu_system_ns=None, vcpu_times_ns=(), guest_memory={}, blocks=(),
            nets=())
        if run is None:
            return base
        monitor, pid = run.monitor, run.process.pid
        calls: dict[str, Awaitable[Any]] = {}
        balloon = has_balloon(entry)
        if "block" in groups and dom.devices.disks:
            calls["blockstats"] = monitor.query_blockstats()
            calls["block"] = monitor.query_block()
        if "balloon" in groups and balloon:
            calls["balloon"] = monitor.query_balloon()
            calls["guest"] = monitor.balloon_guest_stats(BALLOON_PATH)
        if "vcpu" in groups:
            calls["vcpus"] = monitor.query_cpus_fast()
        answers: dict[str, Any] = {}
        if calls:  # one round trip: every command is on the wire before the first answer is read
            results = await asyncio.wait_for(asyncio.gather(*calls.values(), return_exceptions=True), STATS_TIMEOUT)
            for key, value in zip(calls, results, strict=True):
                if isinstance(value, QemuError):
                    continue  # a group QEMU cannot answer now (the guest is going away) is left out
                if isinstance(value, BaseException):
                    raise value
                answers[key] = value
        cpu = thread_cpu_ns(pid) if groups & {"cpu-total"} else None
        sample = replace(base, cpu_user_ns=cpu[0] if cpu else None, cpu_system_ns=cpu[1] if cpu else None)
        if "balloon" in groups:
            actual = answers.get("balloon")
            guest: BalloonGuestStats | None = answers.get("guest")
            sample = replace(sample, balloon_kib=actual // 1024 if actual is not None else dom.effective_memory_kib,
                             rss_kib=process_rss_kib(pid), guest_memory=_guest_memory(guest))
        if "vcpus" in answers:
            tids = answers["vcpus"]
            times = [thread_cpu_ns(pid, tid) for tid in tids]
            stats = [self.threads.stat(pid, tid) for tid in tids]
            sample = replace(sample, vcpu_times_ns=tuple(sum(t) if t else 0 for t in times),
                             vcpu_states=tuple(STATE_CODES.get(THREAD_STATES.get(st.state, ""), 1) if st else 0
                                               for st in stats),
                             vcpu_waits_ns=tuple(self.threads.wait_ns(pid, tid) for tid in tids),
                             vcpu_delays_ns=tuple(self.threads.delay_ns(pid, tid) for tid in tids))
        if "blockstats" in answers:
            sample = replace(sample, blocks=_blocks(dom, answers["blockstats"], answers.get("block", [])))
        if "interface" in groups:
            sample = replace(sample, nets=_nets(run.live, nets))
        return sample

    async def every_sample(self) -> list[GuestSample]:
        """Every domain, every group (what /metrics reports)."""
        return await self.samples(pick(list(self.table), []), GROUPS)

    # -------------------------------------------------------------- domstats
    async def domstats(self, refs: list[str], groups: list[str], lists: list[str]) -> list[StatsRecord]:
        """virsh domstats: the named domains (all, or those of the --list-* filters), the asked groups
        (all without any)."""
        for g in groups:
            if g not in GROUPS:
                raise InvalidArgument(f"unknown statistics group '{g}'; use {', '.join(GROUPS)}")
        for f in lists:
            if f not in LISTS:
                raise InvalidArgument(f"unknown domain filter '{f}'; use {', '.join(LISTS)}")
        if refs and lists:
            raise InvalidArgument("give domain names or --list-* filters, not both")
        entries = [self.table.lookup(r) for r in refs] if refs else pick(list(self.table), lists)
        wanted = groups or list(GROUPS)
        samples = await self.samples(entries, wanted)
        return [StatsRecord(s.name, s.uuid, flatten(s, wanted)) for s in samples]

    # --------------------------------------------------------------- memory
    async def memstats(self, ref: str) -> MemoryStats:
        """dommemstat: the balloon's figures (the guest's own where its driver reports them) and QEMU's rss."""
        entry = self.table.lookup(ref)
        run = entry.running
        if run is None:
            raise OperationInvalid(f"domain '{entry.name}' is not running; memory statistics exist only while "
                                   f"it runs (start it with `pyvirt start {entry.name}`)")
        dom = entry.view()
        if has_balloon(entry):
            period = dom.devices.memballoon.stats_period if dom.devices.memballoon else None
            if period and run.id not in self._periods_set:
                with contextlib.suppress(QemuError):
                    await run.monitor.set_balloon_stats_period(BALLOON_PATH, period)
                    self._periods_set.add(run.id)
        [sample] = await self.samples([entry], ["balloon"])
        mem = sample.guest_memory
        return MemoryStats(
            actual=sample.balloon_kib or dom.effective_memory_kib, swap_in=mem.get("swap_in"),
            swap_out=mem.get("swap_out"), major_fault=mem.get("major_fault"), minor_fault=mem.get("minor_fault"),
            unused=mem.get("unused"), available=mem.get("available"), usable=mem.get("usable"),
            last_update=mem.get("last_update"), disk_caches=mem.get("disk_caches"),
            hugetlb_pgalloc=mem.get("hugetlb_pgalloc"), hugetlb_pgfail=mem.get("hugetlb_pgfail"),
            rss=sample.rss_kib)

    async def set_memstats_period(self, ref: str, period: int, *, live: bool, config: bool) -> MemoryStats | None:
        """dommemstat --period: how often the guest's balloon driver reports (live), kept in <stats period>
        (config)."""
        entry = self.table.lookup(ref)
        if period < 0:
            raise InvalidArgument(f"period {period} is negative; give seconds, 0 to stop the reports")
        if not has_balloon(entry):
            raise OperationInvalid(f"domain '{entry.name}' has no memory balloon (<memballoon model='virtio'/>); "
                                   "only a balloon reports the guest's memory statistics")
        async with self.table.job(entry, "set the memory statistics period of"):
            if live:
                run = self.table.need_running(entry, "set the memory statistics period of")
                await run.monitor.set_balloon_stats_period(BALLOON_PATH, period)
                self._periods_set.add(run.id)
            if config:
                if not entry.persistent:
                    raise OperationInvalid(f"domain '{entry.name}' is transient: it has no definition; "
                                           "leave out --config")
                balloon = entry.config.devices.memballoon
                assert balloon is not None
                devices = replace(entry.config.devices, memballoon=replace(balloon, stats_period=period))
                self.table.set_config(entry, replace(entry.config, devices=devices))
        return await self.memstats(ref) if entry.running is not None else None


def _guest_memory(guest: BalloonGuestStats | None) -> dict[str, int]:
    if guest is None:
        return {}
    out = {name: guest.stats[key] // unit for key, name, unit in GUEST_MEMORY if key in guest.stats}
    if guest.last_update:
        out["last_update"] = guest.last_update
    return out


def _blocks(dom: Any, stats: list[dict[str, Any]], block: list[dict[str, Any]]) -> tuple[BlockSample, ...]:
    names = disk_names(dom)
    out = []
    for i, disk in enumerate(dom.devices.disks):
        dev_id = names[i].device_id
        row = next((r for r in stats if matches_qdev(str(r.get("qdev", "")), dev_id)), None)
        if row is None:
            continue
        s = row.get("stats") or {}
        image = next(((r.get("inserted") or {}).get("image") or {} for r in block
                      if matches_qdev(str(r.get("qdev", "")), dev_id)), {})
        physical = None
        if disk.source and disk.source_type == "file":
            with contextlib.suppress(OSError):
                physical = os.stat(disk.source).st_size
        out.append(BlockSample(
            name=disk.target_dev, path=disk.source, rd_reqs=int(s.get("rd_operations", 0)),
            rd_bytes=int(s.get("rd_bytes", 0)), rd_times=int(s.get("rd_total_time_ns", 0)),
            wr_reqs=int(s.get("wr_operations", 0)), wr_bytes=int(s.get("wr_bytes", 0)),
            wr_times=int(s.get("wr_total_time_ns", 0)), fl_reqs=int(s.get("flush_operations", 0)),
            fl_times=int(s.get("flush_total_time_ns", 0)),
            allocation=int(image["actual-size"]) if "actual-size" in image else None,
            capacity=int(image["virtual-size"]) if "virtual-size" in image else None, physical=physical))
    return tuple(out)


def _nets(live: Any, counters: dict[str, dict[str, int]]) -> tuple[NetSample, ...]:
    out = []
    for nic in live.devices.interfaces:
        host = counters.get(nic.target_dev or "")
        if host is None:
            continue
        # the host sees the tap from the other end: what it transmits, the guest receives
        out.append(NetSample(nic.target_dev, rx_bytes=host["tx_bytes"], rx_pkts=host["tx_packets"],
                             rx_errs=host["tx_errs"], rx_drop=host["tx_drop"], tx_bytes=host["rx_bytes"],
                             tx_pkts=host["rx_packets"], tx_errs=host["rx_errs"], tx_drop=host["rx_drop"]))
    return tuple(out)
