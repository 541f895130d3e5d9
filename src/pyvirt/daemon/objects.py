"""The daemon's named objects (domains, networks, pools): one registry, one job lock, one autostart.

Each kind keeps its own entries (what a domain, a network or a pool holds
differs), but finding one by name or uuid, refusing a clashing definition,
taking its job lock and starting the autostart ones once per host boot are
the same for all three, with the same words and the same error classes.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from ..errors import AlreadyExists, NotFound, OperationBusy, PyvirtError

log = logging.getLogger(__name__)

JOB_WAIT_SECONDS = 30.0


class Named(Protocol):
    """What every registered object has."""

    uuid: str
    name: str
    persistent: bool
    autostart: bool
    lock: asyncio.Lock


E = TypeVar("E", bound=Named)


@dataclass(frozen=True)
class Kind:
    """How users name one kind of object in messages."""

    word: str  # "domain", "network", "pool" (as virsh's "failed to get pool ...")
    noun: str  # "domain", "network", "storage pool"
    list_command: str  # where to see them all, e.g. "pyvirt net-list --all"
    by_id: bool = False  # domains are also found by their running id


class Registry(Generic[E]):
    """Objects of one kind by name and uuid, each with its job lock."""

    def __init__(self, kind: Kind, running_id: Callable[[E], int | None] | None = None) -> None:
        self.kind = kind
        self._running_id = running_id
        self._by_uuid: dict[str, E] = {}
        self._by_name: dict[str, E] = {}

    def __iter__(self) -> Iterator[E]:
        return iter(list(self._by_uuid.values()))

    def __len__(self) -> int:
        return len(self._by_uuid)

    def by_name(self) -> list[E]:
        return sorted(self._by_uuid.values(), key=lambda e: e.name)

    def get(self, name: str) -> E | None:
        return self._by_name.get(name)

    def add(self, entry: E) -> None:
        self._by_uuid[entry.uuid] = entry
        self._by_name[entry.name] = entry

    def remove(self, entry: E) -> None:
        if self._by_uuid.get(entry.uuid) is entry:
            del self._by_uuid[entry.uuid]
        if self._by_name.get(entry.name) is entry:
            del self._by_name[entry.name]

    def lookup(self, ref: str) -> E:
        """By name, then uuid (then running id for domains), as virsh looks objects up."""
        entry = self._by_name.get(ref) or self._by_uuid.get(ref.lower())
        if entry is None and self._running_id is not None and ref.isdigit():
            entry = next((e for e in self._by_uuid.values() if self._running_id(e) == int(ref)), None)
        if entry is None:
            keys = "name, uuid or id" if self.kind.by_id else "name or uuid"
            raise NotFound(f"failed to get {self.kind.word} '{ref}': no {self.kind.noun} with matching {keys}; "
                           f"see `{self.kind.list_command}`")
        return entry

    def check_free(self, name: str, uuid: str | None) -> E | None:
        """The entry that (name, uuid) redefines, if any; AlreadyExists if it clashes with another one.

        ``uuid`` None: the definition has none yet, so only the name decides."""
        by_name = self._by_name.get(name)
        by_uuid = self._by_uuid.get(uuid) if uuid else None
        word = self.kind.word
        if by_name is not None and uuid and by_name.uuid != uuid:
            raise AlreadyExists(f"{word} '{name}' already exists with uuid {by_name.uuid}; choose another name, "
                                "or undefine it first")
        if by_uuid is not None and by_uuid.name != name:
            raise AlreadyExists(f"{word} '{by_uuid.name}' already exists with uuid {uuid}; give the new {word} "
                                "another uuid (or none, and one is generated)")
        return by_name or by_uuid

    @contextlib.asynccontextmanager
    async def job(self, entry: E, verb: str) -> AsyncIterator[E]:
        """Hold ``entry``'s job lock for one verb; a verb waiting too long gets OperationBusy."""
        try:
            await asyncio.wait_for(entry.lock.acquire(), JOB_WAIT_SECONDS)
        except TimeoutError as exc:
            raise OperationBusy(
                f"cannot {verb} {self.kind.word} '{entry.name}': another job has held its lock for "
                f"{JOB_WAIT_SECONDS:.0f} s; try again later"
            ) from exc
        try:
            yield entry
        finally:
            entry.lock.release()


async def autostart_once(marker: Path, word: str, entries: Iterable[E], active: Callable[[E], bool],
                         start: Callable[[E], Awaitable[object]]) -> None:
    """Start the autostart objects that are not active, once per host boot.

    The marker lives in the run directory (a tmpfs on a real host): a daemon
    restarted later in the same boot does not start again what a user stopped."""
    if not _first_time(marker):
        return
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.autostart and not active(entry):
            try:
                await start(entry)
            except PyvirtError as exc:
                log.error("autostart of %s %s failed: %s", word, entry.name, exc)


def _first_time(marker: Path) -> bool:
    """Create ``marker``; False if it was there already (a tmpfs file: nothing to wait for)."""
    try:
        with open(marker, "x"):
            return True
    except FileExistsError:
        return False
