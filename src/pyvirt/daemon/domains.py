"""DomainManager: every domain verb, each under the domain's job lock.

Definitions live in the store; a running domain is a ``Running`` (runner.py)
watched by two tasks, one on QMP events and one on the process's pidfd, so a
QEMU that dies is seen at once. States move only through ``_set_state``.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..errors import InvalidArgument, OperationInvalid, PyvirtError, QemuError
from ..model.domain import Domain
from ..model.domain_xml import LiveInfo, format_domain_xml, parse_domain_xml
from ..model.ids import normalize
from ..qemu import events as ev
from ..qemu.monitor import QmpEvent
from ..state.store import DomainRow, RuntimeRecord, Store
from . import prechecks, runner
from .eventbus import EventBus
from .hostinfo import HostService
from .disks import DiskManager
from .nics import NicManager
from .registry import DomainEntry, Registry, job as _job
from .states import State, check_transition

log = logging.getLogger(__name__)

DESTROY_GRACE_SECONDS = 3.0
RESTART_POLICIES = ("restart", "coredump-restart")


class DomainManager:
    def __init__(self, config: Config, store: Store, bus: EventBus, host: HostService) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self.host = host
        self.domains = Registry()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.nics: NicManager | None = None  # set by the daemon once networks exist
        self.disks: DiskManager | None = None  # set by the daemon once pools exist
        # Set by the daemon's SnapshotManager: how many snapshots (with metadata) a domain has, and
        # dropping that metadata; undefine refuses an inactive domain that still has snapshots.
        self.snapshot_count: Callable[[DomainEntry], int] = lambda e: 0
        self.snapshot_forget: Callable[[DomainEntry], None] = lambda e: None

    # ------------------------------------------------------------------ load
    async def load(self) -> None:
        """Read definitions, reattach to QEMUs that outlived the last daemon."""
        runtimes = self.store.runtimes()
        for row in self.store.domains():
            try:
                config = parse_domain_xml(row.xml)
            except PyvirtError:
                log.exception("stored definition of domain %s no longer parses; skipping it", row.name)
                continue
            entry = DomainEntry(row.uuid, row.name, config, row.xml, row.persistent, row.autostart)
            self.domains.add(entry)
            record = runtimes.get(row.uuid)
            if record is not None:
                await self._reattach(entry, record)
            elif not row.persistent:
                self.store.delete_domain(row.uuid)  # a transient domain whose QEMU is gone
                self.domains.remove(entry)

    async def _reattach(self, entry: DomainEntry, record: RuntimeRecord) -> None:
        live = parse_domain_xml(record.live_xml)
        found = await runner.reattach(
            self.config, live, pid=record.pid, dom_id=record.id, argv=record.argv, accel=record.accel,
            started=record.started,
        )
        if found is None:
            log.info("domain %s: QEMU pid %d is gone since the last daemon run", entry.name, record.pid)
            self.store.delete_runtime(entry.uuid)
            runner.remove_runtime_files(self.config, live)
            self._release_host_side(live)
            entry.state, entry.reason = State.SHUTOFF, "daemon"
            if not entry.persistent:
                self.store.delete_domain(entry.uuid)
                self.domains.remove(entry)
            return
        running, status = found
        entry.running = running
        entry.state = State(record.state) if record.state in State._value2member_map_ else State.RUNNING
        entry.reason = record.reason
        self._watch(entry)
        if status == "shutdown":  # the guest powered off while no daemon was watching
            running.shutdown_seen = True
            self._spawn(self._quit_after_shutdown(entry))
        elif status in ("paused", "prelaunch") and entry.state is State.RUNNING:
            entry.state, entry.reason = State.PAUSED, "unknown"
        elif status == "running" and entry.state is State.PAUSED:
            entry.state, entry.reason = State.RUNNING, "unpaused"
        log.info("domain %s: reattached to QEMU pid %d (%s)", entry.name, record.pid, status)

    async def autostart(self) -> None:
        """Start autostart domains, once per host boot (the marker lives in the run dir)."""
        marker = self.config.paths.run / "autostarted"
        if marker.exists():
            return
        marker.touch()
        for entry in self.domains:
            if entry.autostart and not entry.active:
                try:
                    await self.start(entry.uuid)
                except PyvirtError as exc:
                    log.error("autostart of domain %s failed: %s", entry.name, exc)

    async def close(self) -> None:
        """Daemon shutdown: stop watching, leave every guest running."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for entry in self.domains:
            if entry.running is not None:
                await entry.running.monitor.close()

    # --------------------------------------------------------------- queries
    def list(self) -> list[dict[str, object]]:
        entries = list(self.domains)
        active = sorted((e for e in entries if e.active), key=lambda e: e.id or 0)
        inactive = sorted((e for e in entries if not e.active), key=lambda e: e.name)
        return [e.summary() for e in active + inactive]

    def lookup(self, ref: str) -> DomainEntry:
        return self.domains.lookup(ref)

    async def info(self, ref: str) -> dict[str, object]:
        entry = self.lookup(ref)
        dom = entry.running.live if entry.running else entry.config
        used = dom.effective_memory_kib
        cpu_ns = 0
        if entry.running is not None:
            cpu_ns = entry.running.cpu_time_ns()
            with contextlib.suppress(QemuError):
                if dom.devices.memballoon is not None and dom.devices.memballoon.model != "none":
                    used = await entry.running.monitor.query_balloon() // 1024
        caps = await self.host.capabilities()
        accel = entry.running.accel if entry.running else self.host.accel_for(dom, caps, check=False)
        info = entry.summary() | {
            "os_type": dom.os.type,
            "vcpus": dom.vcpu_current or dom.vcpus,
            "cpu_time_ns": cpu_ns,
            "max_memory_kib": dom.memory_kib,
            "used_memory_kib": used if entry.active else dom.effective_memory_kib,
            "managed_save": False,
            "security_model": "none",
            "security_doi": "0",
            "accel": accel,
            "cpu_note": "; ".join(entry.running.notes) if entry.running else "",
        }
        return info

    def get_xml(self, ref: str, inactive: bool = False) -> str:
        entry = self.lookup(ref)
        if entry.running is not None and not inactive:
            return format_domain_xml(entry.running.live, live=LiveInfo(id=entry.running.id))
        return entry.xml

    # ----------------------------------------------------------- definitions
    def macs_in_use(self) -> set[str]:
        """Every NIC MAC of every domain, defined or running: a new MAC must avoid them all."""
        macs = set()
        for e in self.domains:
            for d in (e.config, e.running.live if e.running else None):
                if d is not None:
                    macs.update(n.mac for n in d.devices.interfaces if n.mac)
        return macs

    def _parse(self, xml: str) -> Domain:
        domain = normalize(parse_domain_xml(xml), taken_macs=self.macs_in_use())
        prechecks.check_memory_fits_host(domain)
        return domain

    async def define(self, xml: str) -> DomainEntry:
        domain = self._parse(xml)
        existing = self.domains.check_free(domain.name, domain.uuid)
        text = format_domain_xml(domain)
        if existing is None:
            entry = DomainEntry(domain.uuid, domain.name, domain, text, persistent=True)
            self.store.put_domain(DomainRow(entry.uuid, entry.name, text, True, False))
            self.domains.add(entry)
            self._emit(entry, "defined", "added")
            return entry
        async with _job(existing, "define"):
            self.store.put_domain(DomainRow(existing.uuid, existing.name, text, True, existing.autostart))
            existing.config, existing.xml, existing.persistent = domain, text, True
        self._emit(existing, "defined", "updated")
        return existing

    async def set_xml(self, ref: str, xml: str) -> DomainEntry:
        """Replace a definition (virsh edit): same uuid, and the new XML must validate first."""
        entry = self.lookup(ref)
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

    async def create(self, xml: str, paused: bool = False) -> DomainEntry:
        """Start a transient domain: it exists only while it runs."""
        domain = self._parse(xml)
        existing = self.domains.check_free(domain.name, domain.uuid)
        if existing is not None:
            raise OperationInvalid(
                f"domain '{domain.name}' is already defined; start it with `pyvirt start {domain.name}`"
            )
        text = format_domain_xml(domain)
        entry = DomainEntry(domain.uuid, domain.name, domain, text, persistent=False)
        self.domains.add(entry)
        try:
            async with _job(entry, "create"):
                self.store.put_domain(DomainRow(entry.uuid, entry.name, text, False, False))
                await self._start_locked(entry, paused)
        except BaseException:
            self.domains.remove(entry)
            self.store.delete_domain(entry.uuid)
            raise
        return entry

    async def undefine(self, ref: str, snapshots_metadata: bool = False) -> dict[str, object]:
        entry = self.lookup(ref)
        async with _job(entry, "undefine"):
            if not entry.persistent:
                raise OperationInvalid(f"cannot undefine transient domain '{entry.name}'; destroy it instead")
            snapshots = self.snapshot_count(entry)
            if snapshots and not entry.active and not snapshots_metadata:
                raise OperationInvalid(
                    f"cannot undefine domain '{entry.name}': it has {snapshots} snapshot(s); delete them with "
                    f"`pyvirt snapshot-delete {entry.name} NAME`, or pass --snapshots-metadata to drop only their "
                    "metadata (the disk images keep the internal snapshots)"
                )
            if snapshots and snapshots_metadata:
                self.snapshot_forget(entry)
            if entry.active:
                entry.persistent = False
                entry.autostart = False
                self.store.put_domain(DomainRow(entry.uuid, entry.name, entry.xml, False, False))
            else:
                self.store.delete_domain(entry.uuid)
                self.domains.remove(entry)
            self._emit(entry, "undefined", "removed")
        return {"name": entry.name, "transient": entry.active}

    async def set_autostart(self, ref: str, enabled: bool) -> DomainEntry:
        entry = self.lookup(ref)
        async with _job(entry, "set autostart of"):
            if not entry.persistent:
                raise OperationInvalid(f"cannot set autostart for transient domain '{entry.name}'; define it first")
            entry.autostart = enabled
            self.store.put_domain(DomainRow(entry.uuid, entry.name, entry.xml, True, enabled))
        return entry

    # ------------------------------------------------------------- lifecycle
    async def start(self, ref: str, paused: bool = False) -> DomainEntry:
        entry = self.lookup(ref)
        async with _job(entry, "start"):
            await self._start_locked(entry, paused)
        return entry

    async def _start_locked(self, entry: DomainEntry, paused: bool) -> None:
        if entry.active:
            raise OperationInvalid(f"domain '{entry.name}' is already active; stop it first with `pyvirt destroy {entry.name}`")
        domain = entry.config
        caps = await self.host.capabilities()
        accel = self.host.accel_for(domain, caps, check=True)
        prechecks.check_paths(domain)
        prechecks.check_machine(domain, self.host.machine_names(caps))
        prechecks.check_memory_available(domain)
        self.config.paths.qemu_log.mkdir(parents=True, exist_ok=True)
        dom_id = self.store.next_domain_id()
        domain = await self.disks.prepare(entry, domain) if self.disks else domain
        prepared = await self.nics.prepare(entry, domain) if self.nics else None
        try:
            running = await runner.launch(
                self.config, prepared.domain if prepared else domain, dom_id=dom_id, accel=accel, caps=caps,
                paused=paused, nic_fds=prepared.nic_fds if prepared else None)
        except BaseException as exc:
            if prepared is not None:
                prepared.undo()
            if isinstance(exc, PyvirtError):
                self._emit(entry, "stopped", "failed")
            raise
        finally:
            if prepared is not None:
                prepared.close_fds()  # QEMU holds its own copies now
        entry.running = running
        self._set_state(entry, State.PAUSED if paused else State.RUNNING, "user" if paused else "booted",
                        "started", "booted")
        self._watch(entry)

    def store_config(self, entry: DomainEntry, domain: Domain) -> None:
        """Replace the persistent definition after a --config device change (validated by the caller)."""
        text = format_domain_xml(domain)
        self.store.put_domain(DomainRow(entry.uuid, entry.name, text, entry.persistent, entry.autostart))
        entry.config, entry.xml = domain, text

    def record_runtime(self, entry: DomainEntry) -> None:
        self._record_runtime(entry)

    def _release_host_side(self, live: Domain) -> None:
        if self.nics is not None:
            self.nics.release_domain(live)

    def _record_runtime(self, entry: DomainEntry) -> None:
        run = entry.running
        if run is None:
            return
        self.store.put_runtime(entry.uuid, RuntimeRecord(
            pid=run.process.pid, id=run.id, started=run.started,
            live_xml=format_domain_xml(run.live), argv=run.argv, accel=run.accel,
            state=entry.state.value, reason=entry.reason,
        ))

    def _running(self, entry: DomainEntry, verb: str) -> runner.Running:
        if entry.running is None:
            raise OperationInvalid(f"cannot {verb} domain '{entry.name}': it is not running; start it with `pyvirt start {entry.name}`")
        return entry.running

    async def shutdown(self, ref: str, timeout: float | None = None) -> dict[str, object]:
        entry = self.lookup(ref)
        async with _job(entry, "shut down"):
            run = self._running(entry, "shut down")
            self._require_acpi(entry, run, "shut down")
            await run.monitor.system_powerdown()
        if not timeout:
            return {"state": entry.state.value, "destroyed": False}
        try:
            await asyncio.wait_for(run.process.wait_exit(), timeout)
            await self._settled(entry, run)
            return {"state": entry.state.value, "destroyed": False}
        except TimeoutError:
            log.info("domain %s did not power off within %s s; destroying it", entry.name, timeout)
        await self.destroy(entry.uuid)
        return {"state": entry.state.value, "destroyed": True}

    def _require_acpi(self, entry: DomainEntry, run: runner.Running, verb: str) -> None:
        if not run.live.features.acpi and (run.live.os.machine or "q35") != "microvm":
            raise OperationInvalid(
                f"cannot {verb} domain '{entry.name}' through ACPI: its definition has no <acpi/> feature, so the "
                f"guest cannot see a power button; use `pyvirt destroy {entry.name}`, or add <features><acpi/>"
                "</features> and restart it"
            )

    async def reboot(self, ref: str) -> DomainEntry:
        entry = self.lookup(ref)
        async with _job(entry, "reboot"):
            run = self._running(entry, "reboot")
            self._require_acpi(entry, run, "reboot")
            run.rebooting = True
            await run.monitor.system_powerdown()
        return entry

    async def reset(self, ref: str) -> DomainEntry:
        entry = self.lookup(ref)
        async with _job(entry, "reset"):
            await self._running(entry, "reset").monitor.system_reset()
            self._emit(entry, "reset", "reset")
        return entry

    async def suspend(self, ref: str) -> DomainEntry:
        entry = self.lookup(ref)
        async with _job(entry, "suspend"):
            run = self._running(entry, "suspend")
            if entry.state is State.PAUSED:
                raise OperationInvalid(f"domain '{entry.name}' is already paused")
            await run.monitor.stop()
            self._set_state(entry, State.PAUSED, "user", "suspended", "paused")
        return entry

    async def resume(self, ref: str) -> DomainEntry:
        entry = self.lookup(ref)
        async with _job(entry, "resume"):
            run = self._running(entry, "resume")
            if entry.state is not State.PAUSED:
                raise OperationInvalid(f"domain '{entry.name}' is not paused (it is {entry.state.value})")
            await run.monitor.cont()
            self._set_state(entry, State.RUNNING, "unpaused", "resumed", "unpaused")
        return entry

    async def destroy(self, ref: str) -> DomainEntry:
        entry = self.lookup(ref)
        async with _job(entry, "destroy"):
            run = self._running(entry, "destroy")
            await self._kill(run)
            await self._settled(entry, run)
        return entry

    async def _kill(self, run: runner.Running) -> None:
        run.destroying = True
        await run.process.terminate(DESTROY_GRACE_SECONDS)

    async def _settled(self, entry: DomainEntry, run: runner.Running) -> None:
        """Wait until the exit watcher has recorded the end of ``run``."""
        await run.ended.wait()

    # --------------------------------------------------------------- watching
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _watch(self, entry: DomainEntry) -> None:
        run = entry.running
        assert run is not None
        self._record_runtime(entry)
        self._spawn(self._watch_events(entry, run))
        self._spawn(self._watch_exit(entry, run))

    async def _watch_events(self, entry: DomainEntry, run: runner.Running) -> None:
        async for event in run.monitor.events():
            if entry.running is not run:
                return
            try:
                await self._on_event(entry, run, event)
            except PyvirtError as exc:
                log.error("domain %s: handling %s failed: %s", entry.name, event.name, exc)

    async def _on_event(self, entry: DomainEntry, run: runner.Running, event: QmpEvent) -> None:
        if event.name == ev.SHUTDOWN:
            run.shutdown_seen = True
            if run.destroying:
                return
            if run.rebooting:  # our ACPI reboot: the guest is down, boot it again
                run.rebooting, run.shutdown_seen = False, False
                await run.monitor.system_reset()
                await run.monitor.cont()
                self._set_state(entry, State.RUNNING, "booted", "rebooted", "rebooted")
                return
        if event.name == ev.RESET and not run.destroying:
            self._emit(entry, "rebooted", "guest reset")
        if event.name == ev.GUEST_PANICKED:
            run.panicked = True
        current = "shutoff" if entry.state is State.SHUTOFF else entry.state.value
        transition = ev.domain_transition(event.name, event.data, current)
        if transition is not None and not run.destroying:
            event_name = {State.PAUSED: "suspended", State.RUNNING: "resumed", State.CRASHED: "crashed",
                          State.IN_SHUTDOWN: "shutdown"}.get(State.from_event_state(transition.state), "changed")
            self._set_state(entry, State.from_event_state(transition.state), transition.reason, event_name,
                            transition.cause or transition.reason)
        if event.name == ev.SHUTDOWN and not run.destroying:
            await self._after_guest_shutdown(entry, run)
        elif event.name == ev.GUEST_PANICKED and run.live.on_crash != "preserve":
            self._spawn(self._kill(run))

    async def _after_guest_shutdown(self, entry: DomainEntry, run: runner.Running) -> None:
        """QEMU runs with -no-shutdown: the guest is off, apply on_poweroff."""
        policy = run.live.on_poweroff
        if policy == "restart" and entry.persistent:
            await run.monitor.system_reset()
            await run.monitor.cont()
            self._set_state(entry, State.RUNNING, "booted", "rebooted", "on_poweroff restart")
            run.shutdown_seen = False
        elif policy != "preserve":
            await run.monitor.quit()

    async def _quit_after_shutdown(self, entry: DomainEntry) -> None:
        run = entry.running
        if run is not None:
            with contextlib.suppress(QemuError):
                await run.monitor.quit()

    async def _watch_exit(self, entry: DomainEntry, run: runner.Running) -> None:
        await run.process.wait_exit()
        if self._closing or entry.running is not run:
            return
        transition = ev.exit_transition(shutdown_seen=run.shutdown_seen, destroyed=run.destroying,
                                        panicked=run.panicked)
        await run.monitor.close()
        entry.running = None
        self.store.delete_runtime(entry.uuid)
        runner.remove_runtime_files(self.config, run.live)
        self._release_host_side(run.live)
        self._set_state(entry, State.SHUTOFF, transition.reason, "stopped", transition.reason)
        run.ended.set()
        if not entry.persistent:
            self.store.delete_domain(entry.uuid)
            self.domains.remove(entry)
            self._emit(entry, "undefined", "transient domain stopped")
            return
        crashed = transition.reason == "crashed"
        policy = run.live.on_crash if crashed else None
        if policy in RESTART_POLICIES:
            log.info("domain %s crashed; on_crash=%s: starting it again", entry.name, policy)
            self._spawn(self._restart(entry))

    async def _restart(self, entry: DomainEntry) -> None:
        try:
            await self.start(entry.uuid)
        except PyvirtError as exc:
            log.error("domain %s: restart failed: %s", entry.name, exc)

    # ------------------------------------------------------------------ state
    def _set_state(self, entry: DomainEntry, state: State, reason: str, event: str, detail: str) -> None:
        """Move to (state, reason) once: a verb and the QMP event it causes both report it."""
        if (entry.state, entry.reason) == (state, reason) and event != "rebooted":
            return
        check_transition(entry.name, entry.state, state)
        entry.state, entry.reason = state, reason
        if entry.running is not None:
            self._record_runtime(entry)
        self._emit(entry, event, detail)

    def _emit(self, entry: DomainEntry, event: str, detail: str) -> None:
        self.bus.emit(domain=entry.name, uuid=entry.uuid, event=event, detail=detail,
                      state=entry.state.value, reason=entry.reason)
