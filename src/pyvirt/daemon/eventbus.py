"""Lifecycle events: stored in SQLite and fanned out to streaming clients."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from ..state.store import Store

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000


class EventBus:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._subscribers: set[asyncio.Queue[dict[str, object]]] = set()

    def emit(self, *, domain: str, uuid: str, event: str, detail: str, state: str, reason: str) -> dict[str, object]:
        record: dict[str, object] = {
            "time": time.time(),
            "domain": domain,
            "uuid": uuid,
            "event": event,
            "detail": detail,
            "state": state,
            "reason": reason,
        }
        log.info("domain %s: event %s (%s) -> %s (%s)", domain, event, detail, state, reason)
        self._store.add_event(record)
        for queue in list(self._subscribers):
            if queue.qsize() < QUEUE_LIMIT:
                queue.put_nowait(record)
        return record

    def subscribe(self, domain: str | None = None) -> AsyncIterator[dict[str, object]]:
        """Register now and return the events that follow, until the consumer stops iterating."""
        queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        self._subscribers.add(queue)

        async def follow() -> AsyncIterator[dict[str, object]]:
            try:
                while True:
                    record = await queue.get()
                    if domain is None or record["domain"] == domain or record["uuid"] == domain:
                        yield record
            finally:
                self._subscribers.discard(queue)

        return follow()

    def history(self, domain: str | None = None, limit: int = 1000) -> list[dict[str, object]]:
        return self._store.events(domain, limit)
