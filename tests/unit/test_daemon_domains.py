"""The domain manager and its supervisor without QEMU: the sequence of states a start, a failed start,
a guest power-off, a crash (each on_crash value) and a reattach go through, and what a failed start undoes.

Why fakes: these paths need a QEMU that exits, panics or fails at a chosen step, which a real QEMU
does not do on demand. The fakes stand in for the host layers only (the QEMU launcher, its process
and monitor, the disk and NIC preparers, the host probe); the domain table, its SQLite store, the
event bus, the state table and the supervisor are the real ones. tests/integration/test_lifecycle.py
and test_supervision.py run the same paths against real guests.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pyvirt.config import Config
from pyvirt.daemon.domain_table import DomainTable
from pyvirt.daemon.domains import DomainManager
from pyvirt.daemon.eventbus import EventBus
from pyvirt.daemon.runner import Incoming, Running
from pyvirt.daemon.snapshot_catalog import SnapshotCatalog
from pyvirt.errors import NotFound, OperationBusy, OperationInvalid, QemuError
from pyvirt.model.domain import OS, Devices, Domain
from pyvirt.model.domain_xml import format_domain_xml
from pyvirt.qemu import events as ev
from pyvirt.qemu.argv import NicFds
from pyvirt.qemu.monitor import QmpEvent
from pyvirt.state.store import RuntimeRecord, Store

UUID = "5f3c1b52-7d43-4c1e-9a3e-2b7d0c4e8a11"


# ------------------------------------------------------------------- fakes
class FakeProcess:
    """A QEMU process: alive until exit() (or terminate) is called."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._exited = asyncio.Event()
        self.terminated = False

    def exit(self) -> None:
        self._exited.set()

    async def wait_exit(self, timeout: float | None = None) -> bool:
        await self._exited.wait()
        return True

    async def terminate(self, timeout: float = 10.0) -> None:
        self.terminated = True
        self.exit()


class FakeMonitor:
    """QMP: records the commands sent; events are fed by the test; the stream ends when QEMU exits."""

    def __init__(self, process: FakeProcess) -> None:
        self.process = process
        self.sent: list[str] = []
        self._events: asyncio.Queue[QmpEvent] = asyncio.Queue()

    def feed(self, name: str, **data: Any) -> None:
        self._events.put_nowait(QmpEvent(name, data))

    async def events(self) -> AsyncIterator[QmpEvent]:
        waiter = asyncio.ensure_future(self.process.wait_exit())
        try:
            while True:
                getter = asyncio.ensure_future(self._events.get())
                await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                    continue
                getter.cancel()
                yield QmpEvent(ev.MONITOR_CLOSED, {})
                return
        finally:
            waiter.cancel()

    def __getattr__(self, command: str) -> Callable[..., Awaitable[None]]:
        async def send(*args: Any, **kwargs: Any) -> None:
            self.sent.append(command)
            if command == "quit":
                self.process.exit()

        return send


@dataclass
class FakeLauncher:
    """Launches fake QEMUs; ``fail_at`` makes the launch fail after that many of its undo steps."""

    fail_at: int | None = None
    undone: list[str] = field(default_factory=list)
    launched: list[Running] = field(default_factory=list)
    reattach_answer: tuple[str, int] | None = None  # (QEMU run state, pid) or None: gone
    removed_files: int = 0
    orphans: dict[str, int] = field(default_factory=dict)  # what /proc would show: uuid -> pid
    ended: list[int] = field(default_factory=list)
    kept_dirs: list[set[str]] = field(default_factory=list)  # the owned uuids of each remove_stray_dirs
    forgotten: list[str] = field(default_factory=list)
    incoming: list[bool] = field(default_factory=list)  # per launch: did QEMU wait for a state

    def running_qemus(self) -> dict[str, int]:
        return dict(self.orphans)

    async def end(self, uuid: str, pid: int) -> None:
        self.ended.append(pid)
        self.orphans.pop(uuid, None)

    def remove_stray_dirs(self, owned: set[str]) -> None:
        self.kept_dirs.append(set(owned))

    def check_helpers(self, domain: Domain) -> None:
        pass

    def forget(self, uuid: str) -> None:
        self.forgotten.append(uuid)

    def remove_runtime_files(self, domain: Domain) -> None:
        self.removed_files += 1

    def _running(self, domain: Domain, dom_id: int, pid: int) -> Running:
        process = FakeProcess(pid)
        return Running(id=dom_id, process=process, monitor=FakeMonitor(process), live=domain,  # type: ignore[arg-type]
                       argv=["qemu"], accel="tcg", started=time.time())

    async def launch(self, domain: Domain, *, dom_id: int, accel: str, caps: Any, paused: bool,
                     nic_fds: dict[int, NicFds], undo: contextlib.AsyncExitStack,
                     on_spawned: Callable[[int], None], incoming: bool = False) -> Running:
        self.incoming.append(incoming)
        for n, step in enumerate(("runtime files", "process", "monitor")):
            if n == self.fail_at:
                raise QemuError(f"QEMU failed at {step}")
            undo.callback(self.undone.append, step)
            if step == "process":
                on_spawned(1000 + dom_id)
        run = self._running(domain, dom_id, 1000 + dom_id)
        self.launched.append(run)
        return run

    async def reattach(self, domain: Domain, *, pid: int, dom_id: int, argv: list[str], accel: str,
                       started: float) -> tuple[Running, str] | None:
        if self.reattach_answer is None:
            return None
        status, _ = self.reattach_answer
        return self._running(domain, dom_id, pid), status


class FakeNics:
    """Opens one real pipe per NIC as its 'tap', so a test can see whether the fds were closed."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.fail_on = fail_on
        self.released: list[int] = []
        self.released_domains: list[str] = []
        self.fds: list[int] = []

    async def prepare(self, name: str, domain: Domain, undo: contextlib.AsyncExitStack) -> Any:
        prepared = SimpleNamespace(domain=domain, fds={}, close_fds=lambda: None)
        opened: list[int] = []

        def close() -> None:
            for fd in opened:
                with contextlib.suppress(OSError):
                    os.close(fd)

        def release() -> None:
            close()
            self.released.extend(opened)

        undo.callback(release)
        for i in range(2):
            if i == self.fail_on:
                raise OperationInvalid(f"interface {i}: no such bridge")
            r, w = os.pipe()
            os.close(w)
            opened.append(r)
            self.fds.append(r)
            prepared.fds[i] = NicFds((r,), ())
        prepared.close_fds = close
        return prepared

    def release_domain(self, live: Domain) -> None:
        self.released_domains.append(live.name)


class FakeDisks:
    def __init__(self) -> None:
        self.undone = False

    async def prepare(self, name: str, domain: Domain, undo: contextlib.AsyncExitStack) -> Domain:
        undo.callback(setattr, self, "undone", True)
        return domain


class FakeHost:
    async def capabilities(self) -> Any:
        return SimpleNamespace(machine_types=[])

    @staticmethod
    def accel_for(domain: Domain, caps: Any, *, check: bool) -> str:
        return "tcg"

    @staticmethod
    def machine_names(caps: Any) -> set[str]:
        return {"q35", "pc", "microvm"}


@dataclass
class World:
    manager: DomainManager
    table: DomainTable
    launcher: FakeLauncher
    nics: FakeNics
    disks: FakeDisks
    store: Store

    def events(self, name: str = "d") -> list[tuple[str, str, str]]:
        """(event, state, reason) of every event of the domain, in order."""
        return [(e.event, e.state, e.reason) for e in self.manager.table.bus.history(name)]


def world(tmp_path: Path, *, launcher: FakeLauncher | None = None, nics: FakeNics | None = None) -> World:
    config = Config.for_root(tmp_path)
    config.paths.make_dirs()
    store = Store(config.paths.database)
    catalog = SnapshotCatalog(store)
    table = DomainTable(store, EventBus(store), on_removed=(catalog.forget,))
    launcher = launcher or FakeLauncher()
    nics = nics or FakeNics()
    disks = FakeDisks()
    manager = DomainManager(config, table, FakeHost(), disks=disks, nics=nics,  # type: ignore[arg-type]
                            launcher=launcher, snapshots=catalog)  # type: ignore[arg-type]
    return World(manager, table, launcher, nics, disks, store)


def domain(**kw: Any) -> Domain:
    return Domain(name="d", uuid=UUID, type="qemu", memory_kib=65536,
                  os=OS(machine="microvm", kernel="/nonexistent-is-not-checked-here"),
                  devices=Devices(), **kw)


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro_fn())


async def settle(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def fd_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


@pytest.fixture(autouse=True)
def _no_path_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake domains name no real kernel or disk: the host's path and memory checks are for real starts."""
    from pyvirt.daemon import prechecks

    monkeypatch.setattr(prechecks, "check_paths", lambda d: None)
    monkeypatch.setattr(prechecks, "check_memory_available", lambda d: None)


# ------------------------------------------------------------------- tests
def test_start_then_guest_power_off(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain()))
        await w.manager.start("d")
        assert w.manager.state("d").state == "running"
        assert UUID in w.store.runtimes()  # what a restarted daemon reattaches from
        assert all(fd_closed(fd) for fd in w.nics.fds)  # QEMU holds its own copies; ours are closed
        assert w.nics.released == [] and not w.disks.undone and w.launcher.undone == []
        mon = w.launcher.launched[0].monitor
        mon.feed(ev.SHUTDOWN, guest=True, reason="guest-shutdown")  # on_poweroff=destroy: quit
        await settle(lambda: w.manager.state("d").state == "shut off", "the domain to stop")
        assert "quit" in mon.sent
        assert w.events() == [("defined", "shut off", "unknown"), ("started", "running", "booted"),
                              ("shutdown", "in shutdown", "user"), ("stopped", "shut off", "shutdown")]
        assert UUID not in w.store.runtimes() and w.nics.released_domains == ["d"]

    run(scenario)


@pytest.mark.parametrize("fail_at", [0, 1, 2])
def test_failed_launch_undoes_every_step(tmp_path: Path, fail_at: int) -> None:
    async def scenario() -> None:
        w = world(tmp_path, launcher=FakeLauncher(fail_at=fail_at))
        await w.manager.define(format_domain_xml(domain()))
        with pytest.raises(QemuError, match="QEMU failed at"):
            await w.manager.start("d")
        done = ["runtime files", "process", "monitor"][:fail_at]
        assert w.launcher.undone == list(reversed(done))  # the launcher's own steps, last first
        assert len(w.nics.released) == 2 and all(fd_closed(fd) for fd in w.nics.fds)  # taps released
        assert w.disks.undone
        assert w.manager.state("d").state == "shut off" and UUID not in w.store.runtimes()
        assert w.events()[-1] == ("stopped", "shut off", "unknown")  # "failed": the start never ran
        assert [e[0] for e in w.events()] == ["defined", "stopped"]

    run(scenario)


def test_failed_nic_releases_the_nics_opened_before(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = world(tmp_path, nics=FakeNics(fail_on=1))
        await w.manager.define(format_domain_xml(domain()))
        with pytest.raises(OperationInvalid, match="no such bridge"):
            await w.manager.start("d")
        assert len(w.nics.fds) == 1 and w.nics.released == w.nics.fds and fd_closed(w.nics.fds[0])
        assert w.disks.undone and w.launcher.launched == []
        assert [e[0] for e in w.events()] == ["defined"]  # nothing started, nothing to report stopped

    run(scenario)


def test_failed_create_leaves_no_transient_domain(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = world(tmp_path, launcher=FakeLauncher(fail_at=1))
        with pytest.raises(QemuError):
            await w.manager.create(format_domain_xml(domain()))
        with pytest.raises(NotFound):
            w.manager.state("d")
        assert w.store.domains() == []

    run(scenario)


@pytest.mark.parametrize(("on_crash", "after"), [
    ("destroy", "shut off"), ("restart", "running"), ("preserve", "crashed"),
])
def test_guest_panic_follows_on_crash(tmp_path: Path, on_crash: str, after: str) -> None:
    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain(on_crash=on_crash)))
        await w.manager.start("d")
        first = w.launcher.launched[0]
        first.monitor.feed(ev.GUEST_PANICKED, action="pause")
        if on_crash == "restart":
            await settle(lambda: len(w.launcher.launched) == 2 and w.manager.state("d").state == "running",
                         "the restart")
            assert w.launcher.launched[1].process is not first.process
        else:
            await settle(lambda: w.manager.state("d").state == after, f"state {after}")
        states = [(e[1], e[2]) for e in w.events()]
        assert ("crashed", "panicked") in states
        if on_crash == "preserve":
            assert not first.process.terminated and states[-1] == ("crashed", "panicked")
        else:
            assert first.process.terminated
            assert ("shut off", "crashed") in states  # a crash, not a destroy: on_crash decides what follows
        if on_crash == "restart":
            assert states[-1] == ("running", "booted")

    run(scenario)


def test_qemu_dying_is_a_crash_and_restart_follows_on_crash(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain(on_crash="restart")))
        await w.manager.start("d")
        w.launcher.launched[0].process.exit()  # kill -9 from outside
        await settle(lambda: len(w.launcher.launched) == 2, "the restart")
        await settle(lambda: w.manager.state("d").state == "running", "running again")
        assert [(e[0], e[1], e[2]) for e in w.events()][-2:] == [("stopped", "shut off", "crashed"),
                                                                  ("started", "running", "booted")]

    run(scenario)


def test_destroy_is_not_a_crash(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain(on_crash="restart")))
        await w.manager.start("d")
        await w.manager.destroy("d")
        assert w.manager.state("d").state == "shut off" and w.manager.state("d").reason == "destroyed"
        await asyncio.sleep(0.05)
        assert len(w.launcher.launched) == 1  # on_crash=restart does not apply to a destroy

    run(scenario)


@pytest.mark.parametrize(("status", "state"), [("running", "running"), ("paused", "paused"),
                                                ("shutdown", "shut off"), (None, "shut off")])
def test_reattach_after_a_daemon_restart(tmp_path: Path, status: str | None, state: str) -> None:
    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain()))
        w.store.put_runtime(UUID, RuntimeRecord(pid=4321, id=7, started=1.0, live_xml=format_domain_xml(domain()),
                                                argv=["qemu"], accel="tcg", state="running", reason="booted"))
        # a new daemon over the same store
        launcher = FakeLauncher(reattach_answer=(status, 4321) if status else None)
        nics = FakeNics()
        config = Config.for_root(tmp_path)
        catalog = SnapshotCatalog(w.store)
        table = DomainTable(w.store, EventBus(w.store), on_removed=(catalog.forget,))
        manager = DomainManager(config, table, FakeHost(), disks=FakeDisks(), nics=nics,  # type: ignore[arg-type]
                                launcher=launcher, snapshots=catalog)  # type: ignore[arg-type]
        await manager.load()
        entry = table.lookup("d")
        if status is None:  # QEMU is gone: shut off, its runtime row and host side cleaned
            assert (entry.state.value, entry.reason) == ("shut off", "daemon")
            assert UUID not in w.store.runtimes() and nics.released_domains == ["d"]
            assert launcher.removed_files == 1
            return
        assert entry.running is not None and entry.running.process.pid == 4321 and entry.id == 7
        if status == "shutdown":  # powered off while no daemon watched: QEMU is told to quit
            await settle(lambda: entry.state.value == "shut off", "the powered-off guest's end")
            assert "quit" in entry.running.monitor.sent if entry.running else True
            assert UUID not in w.store.runtimes()
        else:
            assert entry.state.value == state
        await manager.close()

    run(scenario)


def test_job_lock_serializes_and_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyvirt.daemon import objects

    monkeypatch.setattr(objects, "JOB_WAIT_SECONDS", 0.05)

    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain()))
        entry = w.table.lookup("d")
        async with w.table.job(entry, "hold"):
            with pytest.raises(OperationBusy, match="cannot start domain 'd': another job has held its lock"):
                await w.manager.start("d")
        assert w.launcher.launched == []

    run(scenario)


def test_lookup_by_name_uuid_and_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain()))
        await w.manager.start("d")
        dom_id = w.table.lookup("d").id
        assert w.table.lookup(UUID.upper()).name == "d" and w.table.lookup(str(dom_id)).name == "d"
        with pytest.raises(NotFound, match=r"failed to get domain 'x': no domain with matching name, uuid or id; "
                                           r"see `pyvirt list --all`"):
            w.table.lookup("x")
        await w.manager.destroy("d")

    run(scenario)


def test_undefine_drops_snapshot_metadata_with_the_domain(tmp_path: Path) -> None:
    from pyvirt.daemon.snapshot_catalog import Stored
    from pyvirt.model.snapshot_xml import DomainSnapshot

    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain()))
        catalog = w.manager.snapshots
        assert isinstance(catalog, SnapshotCatalog)
        catalog.put(UUID, Stored("row1", DomainSnapshot(name="s1", state="shutoff")))
        with pytest.raises(OperationInvalid, match="it has 1 snapshot"):
            await w.manager.undefine("d")
        await w.manager.undefine("d", snapshots_metadata=True)
        assert w.store.objects(f"snapshot:{UUID}") == [] and w.store.domains() == []

    run(scenario)


def test_state_table_refuses_illegal_moves() -> None:
    from pyvirt.daemon.states import NETWORK_STATES, POOL_STATES, NetState, PoolState
    from pyvirt.errors import InternalError

    net = SimpleNamespace(name="n", state=NetState.INACTIVE)
    NETWORK_STATES.move(net, NetState.ACTIVE, "test")
    with pytest.raises(InternalError, match="network 'n': illegal state change active -> active"):
        NETWORK_STATES.move(net, NetState.ACTIVE, "again")
    pool = SimpleNamespace(name="p", state=PoolState.INACTIVE)
    with pytest.raises(InternalError, match="pool 'p': illegal state change inactive -> inactive"):
        POOL_STATES.move(pool, PoolState.INACTIVE, "stop a stopped pool")


def test_replace_keeps_the_domain_valid() -> None:
    # the fakes above build domains with replace(); a guard that the model accepts what they build
    assert replace(domain(), on_crash="preserve").on_crash == "preserve"


def second_daemon(w: World, launcher: FakeLauncher, tmp_path: Path) -> tuple[DomainManager, DomainTable, FakeNics]:
    """A new daemon over the same store (the first one was killed)."""
    nics = FakeNics()
    catalog = SnapshotCatalog(w.store)
    table = DomainTable(w.store, EventBus(w.store), on_removed=(catalog.forget,))
    manager = DomainManager(Config.for_root(tmp_path), table, FakeHost(), disks=FakeDisks(),  # type: ignore[arg-type]
                            nics=nics, launcher=launcher, snapshots=catalog)  # type: ignore[arg-type]
    return manager, table, nics


@pytest.mark.parametrize("spawned", [False, True])
def test_a_start_the_last_daemon_did_not_finish_is_ended(tmp_path: Path, spawned: bool) -> None:
    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain()))
        entry = w.table.lookup("d")
        w.table.record_starting(entry, 3, domain(), "tcg", pid=4242 if spawned else 0)  # then the daemon died
        launcher = FakeLauncher(orphans={UUID: 4242} if spawned else {})
        manager, table, nics = second_daemon(w, launcher, tmp_path)
        await manager.load()
        entry = table.lookup("d")
        assert (entry.state.value, entry.reason, entry.running) == ("shut off", "failed", None)
        assert launcher.ended == ([4242] if spawned else [])  # its QEMU, if it got that far, is gone
        assert UUID not in w.store.runtimes() and nics.released_domains == ["d"]

    run(scenario)


def test_a_qemu_no_domain_owns_is_ended_at_load(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = world(tmp_path)
        stray = "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
        launcher = FakeLauncher(orphans={stray: 777})
        manager, _, _ = second_daemon(w, launcher, tmp_path)
        await manager.load()
        assert launcher.ended == [777]
        assert launcher.kept_dirs == [set()]  # then every guest directory goes: none is running

    run(scenario)


def test_guest_directories_of_no_running_domain_are_removed(tmp_path: Path) -> None:
    """A daemon killed after QEMU ended but before the guest's directory went leaves it; the next one
    removes it (and keeps the directory of a guest it reattached to)."""
    from pyvirt.config import Config
    from pyvirt.daemon.runner import QemuLauncher

    config = Config.for_root(tmp_path)
    config.paths.make_dirs()
    kept, stray = config.paths.vm_dir("a" * 8), config.paths.vm_dir("b" * 8)
    for d in (kept, stray):
        (d / "ch").mkdir(parents=True)
    (config.paths.qemu_run / "not-a-dir").write_text("")
    QemuLauncher(config).remove_stray_dirs({"a" * 8})
    assert kept.is_dir() and not stray.exists() and (config.paths.qemu_run / "not-a-dir").exists()


def test_restart_backs_off_when_a_guest_keeps_crashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyvirt.daemon import supervisor

    assert [supervisor.restart_delay(n) for n in (1, 2, 3, 4, 9, 50)] == [0, 1, 2, 4, 60, 60]
    monkeypatch.setattr(supervisor, "RESTART_BASE", 0.3)

    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain(on_crash="restart")))
        await w.manager.start("d")
        w.launcher.launched[0].process.exit()  # the first crash: restarted at once
        await settle(lambda: len(w.launcher.launched) == 2, "the first restart")
        w.launcher.launched[1].process.exit()  # again, soon after its start: 0.3 s later
        await asyncio.sleep(0.15)
        assert len(w.launcher.launched) == 2 and w.manager.state("d").state == "shut off"
        await settle(lambda: len(w.launcher.launched) == 3, "the delayed restart")
        w.launcher.launched[2].process.exit()  # a third time: 0.6 s
        await asyncio.sleep(0.45)
        assert len(w.launcher.launched) == 3
        await w.manager.start("d")  # started by hand meanwhile: the pending restart does nothing
        await asyncio.sleep(0.3)
        assert len(w.launcher.launched) == 4 and w.manager.state("d").state == "running"

    run(scenario)


@pytest.mark.parametrize("paused", [False, True])
def test_an_incoming_start_takes_the_state_before_it_counts(tmp_path: Path, paused: bool) -> None:
    """Restore and a migration's destination: QEMU waits, receive() hands it the state, then cont (unless
    paused); the domain runs from the given definition, and the state says where it came from."""
    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain()))
        received: list[list[str]] = []

        async def receive(running: Running) -> None:
            received.append(list(running.monitor.sent))  # type: ignore[attr-defined]

        saved = replace(domain(), vcpus=2)
        entry = w.table.lookup("d")
        async with w.table.job(entry, "restore") as job:
            await w.manager.start_held(job, paused, Incoming(receive, "restored", saved))
        mon = w.launcher.launched[0].monitor
        assert w.launcher.incoming == [True] and received == [[]]  # nothing sent before the state is in
        assert mon.sent == ([] if paused else ["cont"])
        assert w.launcher.launched[0].live.vcpus == 2 and entry.config.vcpus == 1
        state = ("paused", "user") if paused else ("running", "restored")
        assert w.events()[-1] == ("started", *state)

    run(scenario)


def test_an_incoming_start_whose_state_fails_is_undone(tmp_path: Path) -> None:
    async def scenario() -> None:
        w = world(tmp_path)
        await w.manager.define(format_domain_xml(domain()))

        async def receive(running: Running) -> None:
            raise QemuError("the stream ended early")

        entry = w.table.lookup("d")
        with pytest.raises(QemuError, match="ended early"):
            async with w.table.job(entry, "restore") as job:
                await w.manager.start_held(job, False, Incoming(receive, "restored"))
        assert w.launcher.undone == ["monitor", "process", "runtime files"]
        assert len(w.nics.released) == 2 and w.disks.undone
        assert w.manager.state("d").state == "shut off" and UUID not in w.store.runtimes()
        assert "cont" not in w.launcher.launched[0].monitor.sent  # type: ignore[attr-defined]
        assert w.events()[-1][0] == "stopped"

    run(scenario)
