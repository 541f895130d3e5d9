"""In-memory index of the daemon's domains: by uuid, name and running id."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import AlreadyExists, NotFound, OperationBusy
from ..model.domain import Domain
from .states import State

if TYPE_CHECKING:
    from .runner import Running

JOB_WAIT_SECONDS = 30.0


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
    running: "Running | None" = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def id(self) -> int | None:
        return self.running.id if self.running else None

    @property
    def active(self) -> bool:
        return self.running is not None

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "uuid": self.uuid,
            "state": self.state.value,
            "reason": self.reason,
            "persistent": self.persistent,
            "autostart": self.autostart,
        }


class Registry:
    def __init__(self) -> None:
        self._by_uuid: dict[str, DomainEntry] = {}
        self._by_name: dict[str, DomainEntry] = {}

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._by_uuid.values()))

    def add(self, entry: DomainEntry) -> None:
        self._by_uuid[entry.uuid] = entry
        self._by_name[entry.name] = entry

    def remove(self, entry: DomainEntry) -> None:
        self._by_uuid.pop(entry.uuid, None)
        if self._by_name.get(entry.name) is entry:
            del self._by_name[entry.name]

    def lookup(self, ref: str) -> DomainEntry:
        """Find a domain by name, then uuid, then running id, as virsh does."""
        entry = self._by_name.get(ref) or self._by_uuid.get(ref.lower())
        if entry is None and ref.isdigit():
            entry = next((e for e in self._by_uuid.values() if e.id == int(ref)), None)
        if entry is None:
            raise NotFound(f"failed to get domain '{ref}': no domain with matching name, uuid or id; see `pyvirt list --all`")
        return entry

    def check_free(self, name: str, uuid: str) -> DomainEntry | None:
        """Return the entry this (name, uuid) redefines, or raise if it clashes with another."""
        by_name = self._by_name.get(name)
        by_uuid = self._by_uuid.get(uuid)
        if by_name is not None and by_name.uuid != uuid:
            raise AlreadyExists(
                f"domain '{name}' already exists with uuid {by_name.uuid}; choose another name, "
                "or undefine it first"
            )
        if by_uuid is not None and by_uuid.name != name:
            raise AlreadyExists(
                f"domain '{by_uuid.name}' already exists with uuid {uuid}; give the new domain another "
                "uuid (or none, and one is generated)"
            )
        return by_uuid


async def acquire_job(entry: DomainEntry, job: str) -> None:
    """Take the domain's job lock; a job waiting too long gets a clear busy error."""
    try:
        await asyncio.wait_for(entry.lock.acquire(), JOB_WAIT_SECONDS)
    except TimeoutError as exc:
        raise OperationBusy(
            f"cannot {job} domain '{entry.name}': another job has held its lock for {JOB_WAIT_SECONDS:.0f} s; try again later"
        ) from exc


@contextlib.asynccontextmanager
async def job(entry: DomainEntry, verb: str) -> AsyncIterator[None]:
    """Hold the domain's job lock for one verb (acquire_job's wait and busy error)."""
    await acquire_job(entry, verb)
    try:
        yield
    finally:
        entry.lock.release()
