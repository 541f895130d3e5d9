"""Lifecycle events: stored in SQLite and fanned out to streaming clients."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator

from ..state.store import Store
from .results import DomainEvent

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
_FIELDS = tuple(f.name for f in dataclasses.fields(DomainEvent))


class EventBus:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._subscribers: set[asyncio.Queue[DomainEvent]] = set()

    def emit(self, *, domain: str, uuid: str, event: str, detail: str, state: str, reason: str) -> DomainEvent:
        record = DomainEvent(time.time(), domain, uuid, event, detail, state, reason)
        log.info("domain %s: event %s (%s) -> %s (%s)", domain, event, detail, state, reason)
        self._store.add_event(dataclasses.asdict(record))
        for queue in list(self._subscribers):
            if queue.qsize() < QUEUE_LIMIT:  # a client that stopped reading loses events, not our memory
                queue.put_nowait(record)
        return record

    def subscribe(self, domain: str | None = None) -> AsyncIterator[DomainEvent]:
        """Register now and return the events that follow, until the consumer stops iterating."""
        queue: asyncio.Queue[DomainEvent] = asyncio.Queue()
        self._subscribers.add(queue)

        async def follow() -> AsyncIterator[DomainEvent]:
            try:
                while True:
                    record = await queue.get()
                    if domain is None or domain in (record.domain, record.uuid):
                        yield record
            finally:
                self._subscribers.discard(queue)

        return follow()

    def history(self, domain: str | None = None, limit: int = 1000) -> list[DomainEvent]:
        return [_event(row) for row in self._store.events(domain, limit)]


def _event(row: dict[str, object]) -> DomainEvent:
    """A stored event row (JSON) back as a DomainEvent; fields an older daemon left out are empty."""
    text = {k: str(row.get(k, "")) for k in _FIELDS if k != "time"}
    return DomainEvent(time=float(str(row.get("time", 0))), **text)
