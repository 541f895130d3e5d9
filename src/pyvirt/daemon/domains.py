"""DomainManager: the domain verbs (define, start, stop, ...), each under the domain's job lock.

It gets what it needs at construction, as narrow interfaces: the domain table
(entries, store, states, events), the host service (capabilities), a disk
preparer and a NIC preparer (which open the host side of a start), the QEMU
launcher and the snapshot catalog. A start owns one undo stack: the preparers
and the launcher push their undo steps on it, a failure unwinds it, success
pops it. Watching the running QEMU is the supervisor's job (supervisor.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from .. import faults
from ..config import Config
from ..errors import InvalidArgument, OperationInvalid, PyvirtError, QemuError
from ..model.domain import Domain
from ..model.domain_xml import LiveInfo, format_domain_xml, parse_domain_xml
from ..model.domain_xml_format import without_passwords
from ..model.ids import normalize
from ..qemu.argv import NicFds
from ..qemu.monitor import Monitor
from . import prechecks
from .domain_table import STARTING, DomainEntry, DomainTable, Job
from .hostinfo import HostService
from .objects import autostart_once
from .results import DomainInfo, DomainState, DomainSummary, ShutdownResult, Undefined
from .runner import Incoming, QemuLauncher, Running
from .states import State
from .supervisor import Supervisor

log = logging.getLogger(__name__)


class DiskPreparer(Protocol):
    async def prepare(self, name: str, domain: Domain, undo: contextlib.AsyncExitStack) -> Domain:
        """The domain with its disks resolved and checked for a start."""


class PreparedNics(Protocol):
    @property
    def domain(self) -> Domain:
        """The domain with its NICs' live form (host device names, aliases)."""

    @property
    def fds(self) -> dict[int, NicFds]:
        """The fds QEMU inherits, by NIC index."""

    def close_fds(self) -> None:
        """Close the daemon's copies of the taps once QEMU has its own (idempotent)."""


class NicPreparer(Protocol):
    async def prepare(self, name: str, domain: Domain, undo: contextlib.AsyncExitStack) -> PreparedNics:
        """Open the host side of every NIC (all or nothing); the release goes onto ``undo``."""

    def release_domain(self, live: Domain) -> None:
        """After QEMU is gone: remove what outlives it (macvtap links)."""


class SnapshotCatalog(Protocol):
    def count(self, uuid: str) -> int:
        """How many snapshots (with metadata) the domain has."""

    def forget(self, uuid: str) -> None:
        """Drop the domain's snapshot metadata (the images keep theirs)."""


class ResourcePlacer(Protocol):
    async def place(self, name: str, domain: Domain, pid: int, undo: contextlib.AsyncExitStack) -> list[str]:
        """Give the launched QEMU ``pid`` the domain's cgroup limits; notes where the host cannot."""

    def release(self, live: Domain) -> None:
        """After QEMU is gone: remove its cgroup."""


class ThreadPinner(Protocol):
    async def apply(self, name: str, domain: Domain, pid: int, monitor: Monitor) -> list[str]:
        """Put the domain's <vcpupin>/<emulatorpin> in force on the launched QEMU's threads."""


class ManagedImages(Protocol):
    def exists(self, uuid: str) -> bool:
        """Whether the domain has a managed save image."""

    def restore_of(self, uuid: str) -> tuple[Incoming, bool] | None:
        """The start that continues the domain's managed image, and whether its guest ran; None: no image."""

    def remove(self, uuid: str) -> bool:
        """Drop the domain's managed image."""


class DomainManager:
    def __init__(self, config: Config, table: DomainTable, host: HostService, *, disks: DiskPreparer,
                 nics: NicPreparer, launcher: QemuLauncher, snapshots: SnapshotCatalog,
                 resources: ResourcePlacer | None = None, pinner: ThreadPinner | None = None,
                 images: ManagedImages | None = None) -> None:
        self.config = config
        self.table = table
        self.host = host
        self.disks = disks
        self.nics = nics
        self.launcher = launcher
        self.snapshots = snapshots
        self.resources = resources
        self.pinner = pinner
        self.images = images
        self.supervisor = Supervisor(table, launcher, release=self._release, restart=self._restart)

    def _release(self, live: Domain) -> None:
        self.nics.release_domain(live)
        if self.resources is not None:
            self.resources.release(live)

    # ------------------------------------------------------------------ load
    async def load(self) -> None:
        """Read definitions, reattach to QEMUs that outlived the last daemon."""
        runtimes = self.table.runtimes()
        for row in self.table.rows():
            try:
                config = parse_domain_xml(row.xml)
            except PyvirtError:
                log.exception("stored definition of domain %s no longer parses; skipping it", row.name)
                continue
            entry = DomainEntry(row.uuid, row.name, config, row.xml, row.persistent, row.autostart)
            self.table.load(entry)
            record = runtimes.get(row.uuid)
            if record is not None and record.state == STARTING:
                await self.supervisor.abandon_start(entry, record)
            elif record is not None:
                await self.supervisor.reattach(entry, record)
            elif not row.persistent:
                self.table.remove(entry)  # a transient domain whose QEMU is gone
        await self.supervisor.end_orphans()

    async def autostart(self) -> None:
        """Start autostart domains, once per host boot (the marker lives in the run dir)."""
        await autostart_once(self.config.paths.run / "autostarted", "domain", self.table,
                             lambda e: e.active, lambda e: self.start(e.uuid))

    async def close(self) -> None:
        """Daemon shutdown: stop watching, leave every guest running."""
        await self.supervisor.close()

    # --------------------------------------------------------------- queries
    def list_all(self) -> list[DomainSummary]:
        """Running domains by id, then the others by name (virsh list --all)."""
        rows = sorted((e.summary() for e in self.table),
                      key=lambda s: (s.id is None, s.id or 0, "" if s.id is not None else s.name))
        return rows

    def summary(self, ref: str) -> DomainSummary:
        return self.table.lookup(ref).summary()

    def state(self, ref: str) -> DomainState:
        entry = self.table.lookup(ref)
        return DomainState(entry.state.value, entry.reason)

    def uuid(self, ref: str) -> str:
        return self.table.lookup(ref).uuid

    async def info(self, ref: str) -> DomainInfo:
        entry = self.table.lookup(ref)
        run = entry.running
        dom = entry.view()
        used = dom.effective_memory_kib
        cpu_ns = 0
        if run is not None:
            cpu_ns = run.cpu_time_ns()
            with contextlib.suppress(QemuError):
                if dom.devices.memballoon is not None and dom.devices.memballoon.model != "none":
                    used = await run.monitor.query_balloon() // 1024
        caps = await self.host.capabilities()
        accel = run.accel if run else self.host.accel_for(dom, caps, check=False)
        return DomainInfo(
            **vars(entry.summary()), os_type=dom.os.type, vcpus=dom.vcpu_current or dom.vcpus, cpu_time_ns=cpu_ns,
            max_memory_kib=dom.memory_kib, used_memory_kib=used if run else dom.effective_memory_kib,
            managed_save=self.images is not None and self.images.exists(entry.uuid), security_model="none",
            security_doi="0", accel=accel,
            cpu_note="; ".join(run.notes) if run else "",
        )

    def get_xml(self, ref: str, inactive: bool = False, security_info: bool = False) -> str:
        """dumpxml: graphics passwords only with ``security_info`` (virsh's --security-info)."""
        entry = self.table.lookup(ref)
        if entry.running is not None and not inactive:
            return format_domain_xml(entry.running.live, live=LiveInfo(id=entry.running.id), secure=security_info)
        if security_info or without_passwords(entry.config) is entry.config:
            return entry.xml
        return format_domain_xml(entry.config, secure=False)

    # ----------------------------------------------------------- definitions
    def _allowed_emulators(self) -> tuple[str, ...]:
        settings = self.config.settings
        return (settings.qemu_binary, *settings.emulators)

    def _parse(self, xml: str) -> Domain:
        domain = normalize(parse_domain_xml(xml), taken_macs=self.table.macs_in_use())
        prechecks.check_memory_fits_host(domain)
        prechecks.check_emulator(domain, self._allowed_emulators(), self.config.paths.settings_file)
        return domain

    async def define(self, xml: str) -> DomainSummary:
        domain = self._parse(xml)
        existing = self.table.check_free(domain.name, domain.uuid)
        if existing is None:
            entry = DomainEntry(domain.uuid, domain.name, domain, format_domain_xml(domain), persistent=True)
            self.table.add(entry)
            self.table.emit(entry, "defined", "added")
            return entry.summary()
        async with self.table.job(existing, "define"):
            existing.persistent = True
            self.table.set_config(existing, domain)
        self.table.emit(existing, "defined", "updated")
        return existing.summary()

    async def set_xml(self, ref: str, xml: str) -> DomainSummary:
        """Replace a definition (virsh edit): same uuid, and the new XML must validate first."""
        entry = self.table.lookup(ref)
        domain = self._parse(xml)
        if domain.uuid != entry.uuid:
            raise InvalidArgument(
                f"domain '{entry.name}': the edited XML has uuid {domain.uuid}, not {entry.uuid}; "
                "the uuid of a domain cannot change"
            )
        if domain.name != entry.name:
            raise InvalidArgument(
                f"domain '{entry.name}': renaming to '{domain.name}' through edit is not supported; "
                "keep <name> unchanged"
            )
        return await self.define(xml)

    async def create(self, xml: str, paused: bool = False) -> DomainSummary:
        """Start a transient domain: it exists only while it runs."""
        domain = self._parse(xml)
        if self.table.check_free(domain.name, domain.uuid) is not None:
            raise OperationInvalid(
                f"domain '{domain.name}' is already defined; start it with `pyvirt start {domain.name}`"
            )
        entry = DomainEntry(domain.uuid, domain.name, domain, format_domain_xml(domain), persistent=False)
        self.table.add(entry)
        try:
            async with self.table.job(entry, "create") as job:
                await self.start_held(job, paused)
        except BaseException:
            self.table.remove(entry)
            raise
        return entry.summary()

    async def undefine(self, ref: str, snapshots_metadata: bool = False, managed_save: bool = False) -> Undefined:
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "undefine"):
            if not entry.persistent:
                raise OperationInvalid(f"cannot undefine transient domain '{entry.name}'; destroy it instead")
            if self.images is not None and self.images.exists(entry.uuid):
                if not managed_save:
                    raise OperationInvalid(
                        f"Refusing to undefine while domain managed save image exists: domain '{entry.name}' has "
                        f"one; pass --managed-save to remove it too, or `pyvirt start {entry.name}` to resume it")
                self.images.remove(entry.uuid)
            snapshots = self.snapshots.count(entry.uuid)
            if snapshots and not entry.active and not snapshots_metadata:
                raise OperationInvalid(
                    f"cannot undefine domain '{entry.name}': it has {snapshots} snapshot(s); delete them with "
                    f"`pyvirt snapshot-delete {entry.name} NAME`, or pass --snapshots-metadata to drop only their "
                    "metadata (the disk images keep the internal snapshots)"
                )
            if snapshots and snapshots_metadata:
                self.snapshots.forget(entry.uuid)
            if entry.active:
                entry.persistent, entry.autostart = False, False
                self.table.save(entry)
            else:
                self.table.remove(entry)
                self.launcher.forget(entry.uuid)
            self.table.emit(entry, "undefined", "removed")
        return Undefined(entry.name, transient=entry.active)

    async def set_autostart(self, ref: str, enabled: bool) -> DomainSummary:
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "set autostart of"):
            if not entry.persistent:
                raise OperationInvalid(f"cannot set autostart for transient domain '{entry.name}'; define it first")
            entry.autostart = enabled
            self.table.save(entry)
        return entry.summary()

    # ------------------------------------------------------------- lifecycle
    async def start(self, ref: str, paused: bool = False, force_boot: bool = False) -> DomainSummary:
        """Boot the domain, or continue it from its managed save image (removed once the guest is back);
        ``force_boot``: discard that image and boot."""
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "start") as job:
            if self.images is not None and not entry.active and self.images.exists(entry.uuid):
                if force_boot:
                    self.images.remove(entry.uuid)
                else:
                    await self._start_managed(job, self.images, paused)
                    return entry.summary()
            await self.start_held(job, paused)
        return entry.summary()

    async def _start_managed(self, job: Job, images: ManagedImages, paused: bool) -> None:
        """Continue the guest from its managed image; a failure keeps the image and says how to boot instead."""
        try:
            managed = images.restore_of(job.entry.uuid)
            if managed is None:  # removed meanwhile
                await self.start_held(job, paused)
                return
            incoming, ran = managed
            await self.start_held(job, paused or not ran, incoming)
        except PyvirtError as exc:
            name = job.entry.name
            raise type(exc)(f"{exc.message}; the managed save image stays: `pyvirt start --force-boot {name}` "
                            f"boots afresh (discarding it), `pyvirt managedsave-remove {name}` removes it",
                            detail=exc.detail) from exc
        images.remove(job.entry.uuid)

    async def _restart(self, entry: DomainEntry) -> None:
        await self.start(entry.uuid)

    async def start_held(self, job: Job, paused: bool, incoming: Incoming | None = None) -> None:
        """Start the domain whose job lock the caller holds (``job``); undone whole if any step fails.

        ``incoming``: QEMU waits for the guest's state (``-incoming defer``), launched from ``incoming.domain``
        when given, and ``incoming.receive`` hands the state over before the start counts as done; then the
        guest continues (``cont``) unless ``paused``."""
        entry = job.entry
        if entry.active:
            raise OperationInvalid(f"domain '{entry.name}' is already active; stop it first with "
                                   f"`pyvirt destroy {entry.name}`")
        domain = incoming.domain if incoming is not None and incoming.domain is not None else entry.config
        caps = await self.host.capabilities()
        accel = self.host.accel_for(domain, caps, check=True)
        prechecks.check_emulator(domain, self._allowed_emulators(), self.config.paths.settings_file)
        prechecks.check_paths(domain)
        self.launcher.check_helpers(domain)
        prechecks.check_machine(domain, self.host.machine_names(caps))
        prechecks.check_memory_available(domain)
        self.config.paths.qemu_log.mkdir(parents=True, exist_ok=True)
        dom_id = self.table.next_id()
        async with contextlib.AsyncExitStack() as undo:
            domain = await self.disks.prepare(entry.name, domain, undo)
            nics = await self.nics.prepare(entry.name, domain, undo)
            live = nics.domain
            self.table.record_starting(entry, dom_id, live, accel)
            undo.callback(self.table.drop_runtime, entry)
            faults.point("start:recorded")
            try:
                running = await self.launcher.launch(
                    live, dom_id=dom_id, accel=accel, caps=caps, paused=paused, nic_fds=nics.fds, undo=undo,
                    on_spawned=lambda pid: self.table.record_starting(entry, dom_id, live, accel, pid),
                    incoming=incoming is not None)
            except PyvirtError:
                self.table.emit(entry, "stopped", "failed")
                raise
            finally:
                nics.close_fds()  # QEMU holds its own copies now (or never started)
            if self.resources is not None:
                running.notes += await self.resources.place(entry.name, running.live, running.process.pid, undo)
            if self.pinner is not None:
                running.notes += await self.pinner.apply(entry.name, running.live, running.process.pid,
                                                         running.monitor)
            if incoming is not None:
                await self._receive(entry, running, incoming, paused)
            faults.point("start:running")
            undo.pop_all()
        entry.running = running
        how = incoming.reason if incoming is not None else "booted"
        self.table.set_state(entry, State.PAUSED if paused else State.RUNNING, "user" if paused else how,
                             "started", how)
        self.supervisor.watch(entry)

    async def _receive(self, entry: DomainEntry, running: Running, incoming: Incoming, paused: bool) -> None:
        """The guest's state into the waiting QEMU, then its CPUs on (unless it stays paused)."""
        try:
            await incoming.receive(running)
            if not paused:
                await running.monitor.cont()
        except PyvirtError:
            self.table.emit(entry, "stopped", "failed")
            raise

    async def stop_held(self, job: Job, reason: str = "destroyed") -> None:
        """Destroy the running domain whose job lock the caller holds; returns once its end is recorded
        (shut off with ``reason``: destroyed, or saved after a save)."""
        if job.entry.running is not None:
            await self.supervisor.stop(job.entry.running, reason)

    async def shutdown(self, ref: str, timeout: float | None = None) -> ShutdownResult:
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "shut down"):
            run = self.table.need_running(entry, "shut down")
            self._require_acpi(entry, run, "shut down")
            await run.monitor.system_powerdown()
        if not timeout:
            return ShutdownResult(entry.state.value, destroyed=False)
        try:
            await asyncio.wait_for(run.process.wait_exit(), timeout)
            await run.ended.wait()
            return ShutdownResult(entry.state.value, destroyed=False)
        except TimeoutError:
            log.info("domain %s did not power off within %s s; destroying it", entry.name, timeout)
        await self.destroy(entry.uuid)
        return ShutdownResult(entry.state.value, destroyed=True)

    @staticmethod
    def _require_acpi(entry: DomainEntry, run: Running, verb: str) -> None:
        if not run.live.features.acpi and (run.live.os.machine or "q35") != "microvm":
            raise OperationInvalid(
                f"cannot {verb} domain '{entry.name}' through ACPI: its definition has no <acpi/> feature, so the "
                f"guest cannot see a power button; use `pyvirt destroy {entry.name}`, or add <features><acpi/>"
                "</features> and restart it"
            )

    async def reboot(self, ref: str) -> DomainSummary:
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "reboot"):
            run = self.table.need_running(entry, "reboot")
            self._require_acpi(entry, run, "reboot")
            run.rebooting = True
            await run.monitor.system_powerdown()
        return entry.summary()

    async def reset(self, ref: str) -> DomainSummary:
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "reset"):
            await self.table.need_running(entry, "reset").monitor.system_reset()
            self.table.emit(entry, "reset", "reset")
        return entry.summary()

    async def suspend(self, ref: str) -> DomainSummary:
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "suspend"):
            run = self.table.need_running(entry, "suspend")
            if entry.state is State.PAUSED:
                raise OperationInvalid(f"domain '{entry.name}' is already paused")
            await run.monitor.stop()
            self.table.set_state(entry, State.PAUSED, "user", "suspended", "paused")
        return entry.summary()

    async def resume(self, ref: str) -> DomainSummary:
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "resume"):
            run = self.table.need_running(entry, "resume")
            if entry.state is not State.PAUSED:
                raise OperationInvalid(f"domain '{entry.name}' is not paused (it is {entry.state.value})")
            await run.monitor.cont()
            self.table.set_state(entry, State.RUNNING, "unpaused", "resumed", "unpaused")
        return entry.summary()

    async def destroy(self, ref: str) -> DomainSummary:
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "destroy") as job:
            self.table.need_running(entry, "destroy")
            await self.stop_held(job)
        return entry.summary()
