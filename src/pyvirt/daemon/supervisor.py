"""Supervision of running domains: QMP events and process exits, the on_* policies, reattach.

Each running domain has two watchers: one on its QMP events (guest power-off,
reset, panic, pause/resume caused by the guest or by QEMU) and one on its
process's pidfd, so a QEMU that dies is seen at once, not by polling. What a
guest's power-off or crash leads to follows the domain's on_poweroff and
on_crash (destroy, restart, preserve). After a daemon restart, ``reattach``
finds the QEMU processes that outlived the last daemon and watches them again.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from .. import faults
from ..errors import PyvirtError, QemuError
from ..model.domain import Domain
from ..model.domain_xml import parse_domain_xml
from ..qemu import events as ev
from ..qemu.monitor import QmpEvent
from ..state.store import RuntimeRecord
from .domain_table import DomainEntry, DomainTable
from .runner import QemuLauncher, Running
from .states import State

log = logging.getLogger(__name__)

DESTROY_GRACE_SECONDS = 3.0
RESTART_POLICIES = ("restart", "coredump-restart")
# on_crash=restart backs off when a guest keeps crashing: a crash within STABLE_SECONDS of its start
# counts as "again", and the n-th such crash in a row waits RESTART_BASE * 2**(n-2) s (at most RESTART_MAX)
STABLE_SECONDS = 60.0
RESTART_BASE = 1.0
RESTART_MAX = 60.0


def restart_delay(crashes: int) -> float:
    """Seconds to wait before restarting after the ``crashes``-th quick crash in a row (the first: none)."""
    if crashes <= 1:
        return 0.0
    return min(RESTART_BASE * 2 ** (crashes - 2), RESTART_MAX)
# The event a state reached through a guest's own doing is reported as.
_EVENT_OF_STATE = {State.PAUSED: "suspended", State.RUNNING: "resumed", State.CRASHED: "crashed",
                   State.IN_SHUTDOWN: "shutdown"}


class Supervisor:
    def __init__(self, table: DomainTable, launcher: QemuLauncher, *, release: Callable[[Domain], None],
                 restart: Callable[[DomainEntry], Awaitable[object]]) -> None:
        """``release``: undo what outlives QEMU on the host (macvtap links) once it is gone.
        ``restart``: start a domain again (on_crash=restart), taking its job lock."""
        self.table = table
        self.launcher = launcher
        self._release = release
        self._restart = restart
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._quick_crashes: dict[str, int] = {}  # uuid -> crashes in a row, each soon after its start

    # ------------------------------------------------------------ lifecycle
    def watch(self, entry: DomainEntry) -> None:
        """Start watching a domain that just got its ``running``."""
        run = entry.running
        assert run is not None
        self.table.record_runtime(entry)
        self._spawn(self._watch_events(entry, run))
        self._spawn(self._watch_exit(entry, run))

    async def stop(self, run: Running, reason: str = "destroyed") -> None:
        """Destroy a domain's QEMU and return once its end is recorded (state, files, host side); ``reason``:
        the shut-off reason (``saved`` after a save)."""
        run.destroying, run.end_reason = True, reason
        await run.process.terminate(DESTROY_GRACE_SECONDS)
        faults.point("destroy:killed")
        await run.ended.wait()

    async def close(self) -> None:
        """Daemon shutdown: stop watching, leave every guest running."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for _, run in self.table.running():
            await run.monitor.close()

    # --------------------------------------------------------------- reattach
    async def reattach(self, entry: DomainEntry, record: RuntimeRecord) -> None:
        """Take over a QEMU that an earlier daemon started, or clean up after one that is gone."""
        live = parse_domain_xml(record.live_xml)
        found = await self.launcher.reattach(live, pid=record.pid, dom_id=record.id, argv=record.argv,
                                             accel=record.accel, started=record.started)
        if found is None:
            log.info("domain %s: QEMU pid %d is gone since the last daemon run", entry.name, record.pid)
            self.table.drop_runtime(entry)
            self.launcher.remove_runtime_files(live)
            self._release(live)
            entry.state, entry.reason = State.SHUTOFF, "daemon"
            if not entry.persistent:
                self.table.remove(entry)
            return
        running, status = found
        entry.running = running
        entry.state = State(record.state) if record.state in State._value2member_map_ else State.RUNNING
        entry.reason = record.reason
        self.watch(entry)
        if status == "shutdown":  # the guest powered off while no daemon was watching
            running.shutdown_seen = True
            self._spawn(self._quit(running))
        elif status in ("paused", "prelaunch") and entry.state is State.RUNNING:
            entry.state, entry.reason = State.PAUSED, "unknown"
        elif status == "running" and entry.state is State.PAUSED:
            entry.state, entry.reason = State.RUNNING, "unpaused"
        log.info("domain %s: reattached to QEMU pid %d (%s)", entry.name, record.pid, status)

    async def abandon_start(self, entry: DomainEntry, record: RuntimeRecord) -> None:
        """A start the last daemon did not finish (it died between its "starting" record and the running
        one): end the QEMU it may have spawned, undo the host side, and leave the domain shut off."""
        live = parse_domain_xml(record.live_xml)
        found = self.launcher.running_qemus().get(entry.uuid)
        if found is not None:
            log.info("domain %s: ending QEMU pid %d of a start the last daemon did not finish", entry.name, found)
            await self.launcher.end(entry.uuid, found)
        self.table.drop_runtime(entry)
        self.launcher.remove_runtime_files(live)
        self._release(live)
        entry.state, entry.reason = State.SHUTOFF, "failed"
        self.table.emit(entry, "stopped", "failed")
        if not entry.persistent:
            self.table.remove(entry)

    async def end_orphans(self) -> None:
        """QEMUs under our run directory that no domain owns (their runtime record is gone): end them, so
        that nothing runs unseen with a guest's disks open; then the directories no running guest owns."""
        owned = {entry.uuid for entry, _ in self.table.running()}
        for uuid, pid in self.launcher.running_qemus().items():
            if uuid not in owned:
                log.warning("QEMU pid %d (uuid %s) belongs to no domain; ending it", pid, uuid)
                await self.launcher.end(uuid, pid)
        self.launcher.remove_stray_dirs(owned)

    # ----------------------------------------------------------------- events
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_events(self, entry: DomainEntry, run: Running) -> None:
        async for event in run.monitor.events():
            if entry.running is not run:
                return
            try:
                await self._on_event(entry, run, event)
            except PyvirtError as exc:
                log.error("domain %s: handling %s failed: %s", entry.name, event.name, exc)

    async def _on_event(self, entry: DomainEntry, run: Running, event: QmpEvent) -> None:
        if event.name == ev.SHUTDOWN:
            run.shutdown_seen = True
            if run.destroying:
                return
            if run.rebooting:  # our ACPI reboot: the guest is down, boot it again
                run.rebooting, run.shutdown_seen = False, False
                await run.monitor.system_reset()
                await run.monitor.cont()
                self.table.set_state(entry, State.RUNNING, "booted", "rebooted", "rebooted")
                return
        if event.name == ev.RESET and not run.destroying:
            self.table.emit(entry, "rebooted", "guest reset")
        if event.name == ev.GUEST_PANICKED:
            run.panicked = True
        current = "shutoff" if entry.state is State.SHUTOFF else entry.state.value
        transition = ev.domain_transition(event.name, event.data, current)
        if transition is not None and not run.destroying:
            state = State.from_event_state(transition.state)
            self.table.set_state(entry, state, transition.reason, _EVENT_OF_STATE.get(state, "changed"),
                                 transition.cause or transition.reason)
        if event.name == ev.SHUTDOWN and not run.destroying:
            await self._after_guest_shutdown(entry, run)
        elif event.name == ev.GUEST_PANICKED and run.live.on_crash != "preserve":
            # Not a destroy: the exit that follows is a crash, and on_crash=restart starts it again.
            self._spawn(run.process.terminate(DESTROY_GRACE_SECONDS))

    async def _after_guest_shutdown(self, entry: DomainEntry, run: Running) -> None:
        """QEMU runs with -no-shutdown: the guest is off, apply on_poweroff."""
        policy = run.live.on_poweroff
        if policy == "restart" and entry.persistent:
            await run.monitor.system_reset()
            await run.monitor.cont()
            self.table.set_state(entry, State.RUNNING, "booted", "rebooted", "on_poweroff restart")
            run.shutdown_seen = False
        elif policy != "preserve":
            await run.monitor.quit()

    @staticmethod
    async def _quit(run: Running) -> None:
        with contextlib.suppress(QemuError):
            await run.monitor.quit()

    # ------------------------------------------------------------------- exit
    async def _watch_exit(self, entry: DomainEntry, run: Running) -> None:
        await run.process.wait_exit()
        if self._closing or entry.running is not run:
            return
        transition = ev.exit_transition(shutdown_seen=run.shutdown_seen, destroyed=run.destroying,
                                        panicked=run.panicked)
        if run.destroying:
            transition = ev.Transition(transition.state, run.end_reason)
        await run.monitor.close()
        entry.running = None
        self.table.drop_runtime(entry)
        self.launcher.remove_runtime_files(run.live)
        self._release(run.live)
        self.table.set_state(entry, State.SHUTOFF, transition.reason, "stopped", transition.reason)
        run.ended.set()
        if not entry.persistent:
            self.table.remove(entry)
            self.table.emit(entry, "undefined", "transient domain stopped")
            return
        crashed = transition.reason == "crashed"
        policy = run.live.on_crash if crashed else None
        if policy in RESTART_POLICIES:
            quick = time.time() - run.started < STABLE_SECONDS
            crashes = self._quick_crashes.get(entry.uuid, 0) + 1 if quick else 1
            self._quick_crashes[entry.uuid] = crashes
            delay = restart_delay(crashes)
            log.info("domain %s crashed (%d in a row soon after starting); on_crash=%s: starting it again%s",
                     entry.name, crashes, policy, f" in {delay:g} s" if delay else "")
            self._spawn(self._restart_logged(entry, delay))
        else:
            self._quick_crashes.pop(entry.uuid, None)

    async def _restart_logged(self, entry: DomainEntry, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
            if entry.running is not None or self.table.get(entry.uuid) is not entry:
                return  # started by hand meanwhile, or undefined
        try:
            await self._restart(entry)
        except PyvirtError as exc:
            log.error("domain %s: restart failed: %s", entry.name, exc)
