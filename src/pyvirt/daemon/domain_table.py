"""The daemon's domains: their entries, persistence, states and events, in one place.

Every manager that works on domains (lifecycle, disks, NICs, snapshots,
supervision) and the ones that ask about them (networks: who is plugged in;
volumes: who uses an image) get this table at construction. It is the only
place that writes a domain's rows in the store, moves its state, or emits its
events, so each of those happens one way.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import OperationInvalid, PyvirtError
from ..model.domain import Domain
from ..model.domain_xml import format_domain_xml
from ..state.store import DomainRow, RuntimeRecord, Store
from .eventbus import EventBus
from .objects import Kind, Registry
from .results import DomainSummary
from .states import DOMAIN_STATES, State

if TYPE_CHECKING:
    from .runner import Running

DOMAINS = Kind("domain", "domain", "pyvirt list --all", by_id=True)
STARTING = "starting"  # the state of a runtime record written before QEMU runs


@dataclass(eq=False)
class DomainEntry:
    """One domain the daemon knows: its definition, and its QEMU while it runs."""

    uuid: str
    name: str
    config: Domain  # the persistent definition (or the transient one)
    xml: str  # config rendered as libvirt XML
    persistent: bool
    autostart: bool = False
    state: State = State.SHUTOFF
    reason: str = "unknown"
    running: Running | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    moved: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # set (and replaced) at each move

    @property
    def id(self) -> int | None:
        return self.running.id if self.running else None

    @property
    def active(self) -> bool:
        return self.running is not None

    def view(self, inactive: bool = False) -> Domain:
        """The running definition, or the persistent one (``inactive``, or when shut off)."""
        return self.running.live if self.running is not None and not inactive else self.config

    def summary(self) -> DomainSummary:
        run = self.running  # read once: `list --all` builds a thousand of these per call
        return DomainSummary(run.id if run else None, self.name, self.uuid, self.state, self.reason,
                             self.persistent, self.autostart)


@dataclass(frozen=True)
class Job:
    """Proof that the caller holds ``entry``'s job lock (operations that need it take one)."""

    entry: DomainEntry
    verb: str


class DomainTable:
    def __init__(self, store: Store, bus: EventBus,
                 on_removed: tuple[Callable[[str], None], ...] = ()) -> None:
        """``on_removed``: called with the uuid of a domain that is gone for good (undefined, or a
        transient one that stopped), e.g. to drop its snapshot metadata."""
        self.store = store
        self.bus = bus
        self._registry: Registry[DomainEntry] = Registry(DOMAINS, running_id=lambda e: e.id)
        self._on_removed = on_removed

    # --------------------------------------------------------------- lookup
    def __iter__(self) -> Iterator[DomainEntry]:
        return iter(self._registry)

    def __len__(self) -> int:
        return len(self._registry)

    def lookup(self, ref: str) -> DomainEntry:
        return self._registry.lookup(ref)

    def get(self, uuid: str) -> DomainEntry | None:
        """The entry of ``uuid`` if the domain still exists."""
        try:
            return self._registry.lookup(uuid)
        except PyvirtError:
            return None

    def running(self) -> Iterator[tuple[DomainEntry, Running]]:
        for entry in self._registry:
            if entry.running is not None:
                yield entry, entry.running

    def check_free(self, name: str, uuid: str) -> DomainEntry | None:
        return self._registry.check_free(name, uuid)

    def macs_in_use(self) -> set[str]:
        """Every NIC MAC of every domain, defined or running: a new MAC must avoid them all."""
        macs: set[str] = set()
        for e in self._registry:
            for d in (e.config, e.running.live if e.running else None):
                if d is not None:
                    macs.update(n.mac for n in d.devices.interfaces if n.mac)
        return macs

    @contextlib.asynccontextmanager
    async def job(self, entry: DomainEntry, verb: str) -> AsyncIterator[Job]:
        """Hold the domain's job lock for one verb: two clients never interleave a start and an undefine."""
        async with self._registry.job(entry, verb):
            yield Job(entry, verb)

    @staticmethod
    def need_running(entry: DomainEntry, verb: str) -> Running:
        if entry.running is None:
            raise OperationInvalid(f"cannot {verb} domain '{entry.name}': it is not running; start it with "
                                   f"`pyvirt start {entry.name}`")
        return entry.running

    # ---------------------------------------------------------- persistence
    def add(self, entry: DomainEntry) -> None:
        """A new domain: into the table, and into the store."""
        self._registry.add(entry)
        self.save(entry)

    def load(self, entry: DomainEntry) -> None:
        """A domain read from the store at start-up."""
        self._registry.add(entry)

    def save(self, entry: DomainEntry) -> None:
        self.store.put_domain(DomainRow(entry.uuid, entry.name, entry.xml, entry.persistent, entry.autostart))

    def set_config(self, entry: DomainEntry, domain: Domain) -> None:
        """Replace the persistent definition (validated by the caller)."""
        entry.config, entry.xml = domain, format_domain_xml(domain)
        self.save(entry)

    def remove(self, entry: DomainEntry) -> None:
        """The domain is gone for good: out of the table and the store."""
        self._registry.remove(entry)
        self.store.delete_domain(entry.uuid)
        for hook in self._on_removed:
            hook(entry.uuid)

    def record_runtime(self, entry: DomainEntry) -> None:
        """The runtime record of a running domain (what reattach reads after a daemon restart)."""
        run = entry.running
        if run is None:
            return
        self.store.put_runtime(entry.uuid, RuntimeRecord(
            pid=run.process.pid, id=run.id, started=run.started,
            live_xml=format_domain_xml(run.live), argv=run.argv, accel=run.accel,
            state=entry.state.value, reason=entry.reason,
        ))

    def record_starting(self, entry: DomainEntry, dom_id: int, live: Domain, accel: str, pid: int = 0) -> None:
        """A start under way (before QEMU exists, then with its pid): a daemon killed in between finds the
        record at its next start and ends what the start left (abandon_start), instead of an orphan."""
        self.store.put_runtime(entry.uuid, RuntimeRecord(
            pid=pid, id=dom_id, started=time.time(), live_xml=format_domain_xml(live), argv=[], accel=accel,
            state=STARTING, reason="starting",
        ))

    def drop_runtime(self, entry: DomainEntry) -> None:
        self.store.delete_runtime(entry.uuid)

    def runtimes(self) -> dict[str, RuntimeRecord]:
        return self.store.runtimes()

    def rows(self) -> list[DomainRow]:
        return self.store.domains()

    def next_id(self) -> int:
        return self.store.next_domain_id()

    # ---------------------------------------------------------------- state
    def set_state(self, entry: DomainEntry, state: State, reason: str, event: str, detail: str) -> None:
        """Move to (state, reason) once: a verb and the QMP event it causes both report it."""
        if (entry.state, entry.reason) == (state, reason) and event != "rebooted":
            return
        DOMAIN_STATES.check(entry.name, entry.state, state)
        entry.state, entry.reason = state, reason
        self.record_runtime(entry)
        self.emit(entry, event, detail)
        entry.moved.set()
        entry.moved = asyncio.Event()

    @staticmethod
    async def wait_state(entry: DomainEntry, state: State, run: Running, timeout: float) -> bool:
        """Wait until ``entry`` (still running ``run``) is in ``state``; False after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while entry.running is run and entry.state is not state:
            try:
                await asyncio.wait_for(entry.moved.wait(), deadline - loop.time())
            except TimeoutError:
                return False
        return entry.state is state

    def emit(self, entry: DomainEntry, event: str, detail: str) -> None:
        self.bus.emit(domain=entry.name, uuid=entry.uuid, event=event, detail=detail,
                      state=entry.state.value, reason=entry.reason)
