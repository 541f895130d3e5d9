"""vCPUs of a domain: setvcpus (CPU hot-plug), vcpucount, vcpuinfo, vcpupin and emulatorpin.

A running guest gains vCPUs by ``device_add`` of its CPU type into the empty
slots ``query-hotpluggable-cpus`` lists (q35 and pc: ACPI CPU hot-plug; the
guest onlines them), up to the maximum QEMU was started with. It loses only
those: the vCPUs of ``-smp`` are built in and QEMU cannot take them out.

Pinning is the affinity of the real host threads: a vCPU's thread id comes
from ``query-cpus-fast``, QEMU's other threads (main loop, I/O, RCU) are the
rest of /proc/PID/task. ``<cputune><vcpupin>/<emulatorpin>`` are put in force
right after launch (``apply``), and a hot-plugged vCPU gets its own pin (or
every host CPU) instead of inheriting the emulator's.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import Protocol

from ..errors import HostError, InvalidArgument, OperationInvalid, QemuError, UnsupportedConfig
from ..host.threads import Threads
from ..model.cpuset import parse_cpuset
from ..model.domain import CpuTune, Domain, VcpuPin
from ..model.validate import validate_domain
from ..qemu.monitor import Monitor
from .domain_table import DomainEntry, DomainTable
from .hotplug import machine_of
from .results_cpu import EmulatorPinInfo, VcpuCount, VcpuInfo, VcpuPinInfo, VcpuPinRow, VcpuRow
from .runner import Running
from .scope import resolve
from .vcpu_states import THREAD_STATES

log = logging.getLogger(__name__)

# seconds the guest gets to release a vCPU (ACPI eject: 12 s and more for the tiny guest under TCG on a busy host)
UNPLUG_TIMEOUT = 60.0
UNPLUG_POLL = 0.25


def current(d: Domain) -> int:
    return d.vcpu_current or d.vcpus


def with_count(d: Domain, count: int) -> Domain:
    return replace(d, vcpu_current=count if count != d.vcpus else None)


def pins_of(d: Domain) -> dict[int, tuple[int, ...]]:
    return {p.vcpu: p.cpuset for p in d.cputune.vcpupins} if d.cputune else {}


def with_pin(d: Domain, vcpu: int, cpus: tuple[int, ...]) -> Domain:
    tune = d.cputune or CpuTune()
    pins = tuple(sorted((*(p for p in tune.vcpupins if p.vcpu != vcpu), VcpuPin(vcpu, cpus)), key=lambda p: p.vcpu))
    return replace(d, cputune=replace(tune, vcpupins=pins))


def with_emulator_pin(d: Domain, cpus: tuple[int, ...]) -> Domain:
    return replace(d, cputune=replace(d.cputune or CpuTune(), emulatorpin=cpus))


class LimitRefresher(Protocol):
    def refresh(self, entry: DomainEntry) -> None:
        """Rewrite the running domain's per-vCPU CPU limits (cgroup cpu.max) for its vCPU count now."""


class VcpuManager:
    def __init__(self, table: DomainTable, threads: Threads, limits: LimitRefresher | None = None) -> None:
        self.table = table
        self.threads = threads
        self.limits = limits

    def _all_cpus(self) -> tuple[int, ...]:
        return tuple(range(self.threads.host_cpus()))

    def _cpus(self, cpulist: str) -> tuple[int, ...]:
        return parse_cpuset(cpulist, self.threads.host_cpus())

    @staticmethod
    def _query_scope(entry: DomainEntry, live: bool, config: bool) -> bool:
        """True: read the running domain; False: its definition."""
        if live and config:
            raise InvalidArgument("give --live or --config to read, not both")
        return resolve(entry, live, config)[0]

    # ---------------------------------------------------------------- counts
    def _sync(self, entry: DomainEntry, run: Running, present: int) -> None:
        """The live count follows what QEMU has (an unplug the guest finished after its timeout)."""
        if present and present != current(run.live):
            run.live = with_count(run.live, present)
            self.table.record_runtime(entry)

    async def count(self, ref: str) -> VcpuCount:
        """vcpucount: maximum and current, of the definition and of the running guest (as QEMU has it)."""
        entry = self.table.lookup(ref)
        if entry.running is not None:
            with contextlib.suppress(QemuError):
                self._sync(entry, entry.running, len(await entry.running.monitor.query_vcpus()))
        conf = entry.config if entry.persistent else None
        live = entry.running.live if entry.running else None
        return VcpuCount(conf.vcpus if conf else None, live.vcpus if live else None,
                         current(conf) if conf else None, current(live) if live else None)

    async def set_count(self, ref: str, count: int, *, live: bool, config: bool, maximum: bool = False,
                        guest: bool = False) -> VcpuCount:
        """setvcpus: the vCPUs the guest has (live: hot-plug), or will have (config), or may have (--maximum)."""
        entry = self.table.lookup(ref)
        if guest:
            raise UnsupportedConfig("setvcpus --guest changes CPUs inside the guest through the QEMU guest agent, "
                                    "which pyvirt does not use; online or offline them in the guest (echo 1 > "
                                    "/sys/devices/system/cpu/cpuN/online)")
        if count < 1:
            raise InvalidArgument(f"cannot give domain '{entry.name}' {count} vCPUs; give at least 1")
        if maximum and live:
            raise InvalidArgument("the maximum of vCPUs is fixed while QEMU runs: use --maximum with --config only")
        async with self.table.job(entry, "set the vCPUs of"):
            live, config = resolve(entry, live, config or maximum)
            new_config = None
            if config:
                new_config = self._config_count(entry, count, maximum)
                validate_domain(new_config)
            if live:
                run = entry.running
                assert run is not None
                if count > run.live.vcpus:
                    raise InvalidArgument(
                        f"cannot give running domain '{entry.name}' {count} vCPUs: its maximum is {run.live.vcpus}; "
                        f"raise it with `pyvirt setvcpus {entry.name} {count} --maximum --config` (applies from "
                        "the next start)")
                await self._hotplug(entry, run, count)
            if new_config is not None:
                self.table.set_config(entry, new_config)
        return await self.count(entry.uuid)

    @staticmethod
    def _config_count(entry: DomainEntry, count: int, maximum: bool) -> Domain:
        d = entry.config
        if not maximum:
            if count > d.vcpus:
                raise InvalidArgument(
                    f"cannot give domain '{entry.name}' {count} vCPUs: its maximum is {d.vcpus}; raise it with "
                    f"`pyvirt setvcpus {entry.name} {count} --maximum --config`")
            return with_count(d, count)
        topo = d.cpu.topology if d.cpu else None
        if topo is not None and topo.sockets * topo.dies * topo.cores * topo.threads != count:
            raise InvalidArgument(
                f"cannot make the maximum of domain '{entry.name}' {count} vCPUs: its <cpu><topology> has "
                f"{topo.sockets * topo.dies * topo.cores * topo.threads} (sockets*dies*cores*threads); change the "
                f"topology with `pyvirt edit {entry.name}`")
        now = min(current(d), count)
        tune = d.cputune
        if tune is not None:  # pins of vCPUs that no longer exist go with them
            tune = replace(tune, vcpupins=tuple(p for p in tune.vcpupins if p.vcpu < count))
        return replace(d, vcpus=count, vcpu_current=now if now != count else None, cputune=tune)

    async def _hotplug(self, entry: DomainEntry, run: Running, count: int) -> None:
        """Add or remove vCPUs one at a time; the live definition follows each step, so a step that fails
        leaves the record true to what the guest has."""
        if machine_of(run.live) == "microvm":
            if count == current(run.live):
                return
            raise OperationInvalid(f"cannot change the vCPUs of running domain '{entry.name}': machine 'microvm' "
                                   "has no CPU hot-plug; use --config and restart it, or use machine type q35")
        slots = await run.monitor.query_hotpluggable_cpus()
        if any(s.vcpus_count != 1 for s in slots):
            raise OperationInvalid(f"cannot change the vCPUs of running domain '{entry.name}': its CPUs are "
                                   "hot-plugged in groups, which pyvirt does not do; use --config")
        present = [s for s in slots if s.qom_path]
        run.live = with_count(run.live, len(present))  # an unplug that timed out earlier may have ended since
        try:
            if count > len(present):
                for slot in [s for s in slots if not s.qom_path][:count - len(present)]:
                    index = slots.index(slot)
                    await run.monitor.device_add(driver=slot.type, id=f"vcpu{index}", **slot.props)
                    run.live = with_count(run.live, current(run.live) + 1)
                    await self._pin_new(entry, run, index)
                    log.info("domain %s: vCPU %d plugged", entry.name, index)
            elif count < len(present):
                plugged = [s for s in present if (s.qom_path or "").startswith("/machine/peripheral/")]
                fixed = len(present) - len(plugged)
                if count < fixed:
                    raise OperationInvalid(
                        f"cannot take running domain '{entry.name}' down to {count} vCPUs: the {fixed} it started "
                        f"with are built in and QEMU cannot unplug them; give at least {fixed}, or use --config "
                        "and restart it")
                for slot in reversed(plugged[count - fixed:]):
                    device = (slot.qom_path or "").rsplit("/", 1)[1]
                    if not await self._unplug(run, device, slot.qom_path or ""):
                        raise OperationInvalid(
                            f"the guest of domain '{entry.name}' did not release vCPU {device} within "
                            f"{UNPLUG_TIMEOUT:g} s (does its kernel handle ACPI CPU hot-unplug?); it has "
                            f"{current(run.live)} vCPUs now, and the request stays with it: see `pyvirt vcpucount "
                            f"{entry.name}` later")
                    run.live = with_count(run.live, current(run.live) - 1)
                    log.info("domain %s: vCPU %s unplugged", entry.name, device)
        finally:
            self.table.record_runtime(entry)
            if self.limits is not None:
                try:
                    self.limits.refresh(entry)
                except HostError as exc:  # the vCPUs did change: say so in the log, not as the request's error
                    log.warning("domain %s: CPU limits not updated for %d vCPUs: %s", entry.name,
                                current(run.live), exc)

    @staticmethod
    async def _unplug(run: Running, device: str, qom_path: str) -> bool:
        """device_del of a vCPU, then wait until QEMU no longer lists it. QEMU 7.2 sends no DEVICE_DELETED for
        the CPU itself (only for its lapic), so the answer is query-cpus-fast's."""
        await run.monitor.device_del(device)
        deadline = time.monotonic() + UNPLUG_TIMEOUT
        while time.monotonic() < deadline:
            await asyncio.sleep(UNPLUG_POLL)
            if all(v.qom_path != qom_path for v in await run.monitor.query_vcpus()):
                return True
        return False

    async def _pin_new(self, entry: DomainEntry, run: Running, index: int) -> None:
        """A new vCPU thread inherits the main loop's affinity (the emulator pin): give it its own."""
        thread = next((v for v in await run.monitor.query_vcpus() if v.index == index), None)
        if thread is not None:
            cpus = pins_of(run.live).get(index) or self._all_cpus()
            self.threads.set_affinity(thread.thread_id, cpus, f"vCPU {index} of domain '{entry.name}'")

    # ------------------------------------------------------------------ info
    async def info(self, ref: str) -> VcpuInfo:
        """vcpuinfo: each vCPU's thread as the host sees it (or the definition's, shut off)."""
        entry = self.table.lookup(ref)
        host = self.threads.host_cpus()
        run = entry.running
        if run is None:
            pins = pins_of(entry.config)
            return VcpuInfo(host, tuple(VcpuRow(i, None, "N/A", None, pins.get(i) or self._all_cpus())
                                        for i in range(current(entry.config))))
        rows = []
        vcpus = await run.monitor.query_vcpus()
        self._sync(entry, run, len(vcpus))
        for v in vcpus:
            stat = self.threads.stat(run.process.pid, v.thread_id)
            state = THREAD_STATES.get(stat.state, "no state") if stat else "offline"
            rows.append(VcpuRow(v.index, stat.cpu if stat else None, state, stat.cpu_time_ns if stat else None,
                                self.threads.affinity(v.thread_id)))
        return VcpuInfo(host, tuple(rows))

    # --------------------------------------------------------------- pinning
    async def pinning(self, ref: str, *, live: bool = False, config: bool = False) -> VcpuPinInfo:
        """vcpupin without a cpulist: the running threads' affinity, or the definition's pins."""
        entry = self.table.lookup(ref)
        host = self.threads.host_cpus()
        if self._query_scope(entry, live, config):
            run = entry.running
            assert run is not None
            rows = tuple(VcpuPinRow(v.index, self.threads.affinity(v.thread_id))
                         for v in await run.monitor.query_vcpus())
            return VcpuPinInfo(host, rows)
        pins = pins_of(entry.config)
        return VcpuPinInfo(host, tuple(VcpuPinRow(i, pins.get(i) or self._all_cpus())
                                       for i in range(current(entry.config))))

    async def pin_vcpu(self, ref: str, vcpu: int, cpulist: str, *, live: bool, config: bool) -> VcpuPinInfo:
        """vcpupin VCPU CPULIST: the thread's affinity now (live) and <vcpupin> (config)."""
        entry = self.table.lookup(ref)
        if vcpu < 0:
            raise InvalidArgument(f"vCPU {vcpu} does not exist: vCPUs count from 0")
        cpus = self._cpus(cpulist)
        async with self.table.job(entry, "pin the vCPUs of"):
            live, config = resolve(entry, live, config)
            if config and vcpu >= entry.config.vcpus:
                raise InvalidArgument(f"vCPU {vcpu} of domain '{entry.name}' does not exist: its definition has "
                                      f"vCPUs 0-{entry.config.vcpus - 1}")
            if live:
                run = entry.running
                assert run is not None
                thread = next((v for v in await run.monitor.query_vcpus() if v.index == vcpu), None)
                if thread is None:
                    raise InvalidArgument(f"vCPU {vcpu} of running domain '{entry.name}' is not present: it has "
                                          f"{current(run.live)} vCPUs (0-{current(run.live) - 1})")
                self.threads.set_affinity(thread.thread_id, cpus, f"vCPU {vcpu} of domain '{entry.name}'")
                run.live = with_pin(run.live, vcpu, cpus)
                self.table.record_runtime(entry)
            if config:
                self.table.set_config(entry, with_pin(entry.config, vcpu, cpus))
        return await self.pinning(entry.uuid, live=live and not config, config=config and not live)

    async def emulator_pinning(self, ref: str, *, live: bool = False, config: bool = False) -> EmulatorPinInfo:
        entry = self.table.lookup(ref)
        host = self.threads.host_cpus()
        if self._query_scope(entry, live, config):
            run = entry.running
            assert run is not None
            return EmulatorPinInfo(host, self.threads.affinity(run.process.pid))
        tune = entry.config.cputune
        return EmulatorPinInfo(host, (tune.emulatorpin if tune else None) or self._all_cpus())

    async def pin_emulator(self, ref: str, cpulist: str, *, live: bool, config: bool) -> EmulatorPinInfo:
        """emulatorpin CPULIST: every QEMU thread that is not a vCPU (live) and <emulatorpin> (config)."""
        entry = self.table.lookup(ref)
        cpus = self._cpus(cpulist)
        async with self.table.job(entry, "pin the emulator threads of"):
            live, config = resolve(entry, live, config)
            if live:
                run = entry.running
                assert run is not None
                await self._pin_emulator(entry.name, run.process.pid, run.monitor, cpus)
                run.live = with_emulator_pin(run.live, cpus)
                self.table.record_runtime(entry)
            if config:
                self.table.set_config(entry, with_emulator_pin(entry.config, cpus))
        return await self.emulator_pinning(entry.uuid, live=live and not config, config=config and not live)

    async def _pin_emulator(self, name: str, pid: int, monitor: Monitor, cpus: tuple[int, ...]) -> None:
        vcpu_tids = {v.thread_id for v in await monitor.query_vcpus()}
        for tid in self.threads.tids(pid):
            if tid not in vcpu_tids:
                self.threads.set_affinity(tid, cpus, f"the emulator threads of domain '{name}'")

    # ----------------------------------------------------------------- start
    async def apply(self, name: str, domain: Domain, pid: int, monitor: Monitor) -> list[str]:
        """Right after launch: put <vcpupin> and <emulatorpin> in force on QEMU's threads."""
        tune = domain.cputune
        if tune is None or (not tune.vcpupins and tune.emulatorpin is None):
            return []
        if tune.emulatorpin is not None:
            await self._pin_emulator(name, pid, monitor, tune.emulatorpin)
        pins = pins_of(domain)
        try:
            vcpus = await monitor.query_vcpus()
        except QemuError as exc:
            raise OperationInvalid(f"cannot pin the vCPUs of domain '{name}': {exc}") from exc
        for v in vcpus:
            if v.index in pins:
                self.threads.set_affinity(v.thread_id, pins[v.index], f"vCPU {v.index} of domain '{name}'")
        log.info("domain %s: pinned %d vCPU(s)%s", name, len(pins), ", emulator" if tune.emulatorpin else "")
        return []
