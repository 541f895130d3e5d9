"""Lifecycle events: stored in SQLite and fanned out to streaming clients.

A guest can cause events without end (a reset loop, a flapping pause); each
would be a row in the store and a line in the log. Per domain, a token
bucket lets ``per_second`` through to the store and the log (bursts of ten
times that); the rest is counted and said in one log line when the domain is
let through again. Streaming clients still get every event (their queues are
bounded in memory).
"""
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


class _Bucket:
    """Tokens refill at ``rate`` per second up to ``burst``; each stored event takes one."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, now
        self.dropped = 0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.dropped += 1
        return False


class EventBus:
    def __init__(self, store: Store, per_second: float = 10.0) -> None:
        self._store = store
        self._subscribers: set[asyncio.Queue[DomainEvent]] = set()
        self._rate = per_second
        self._buckets: dict[str, _Bucket] = {}

    def _let_through(self, uuid: str, domain: str, now: float) -> bool:
        bucket = self._buckets.get(uuid)
        if bucket is None:
            bucket = self._buckets[uuid] = _Bucket(self._rate, self._rate * 10, now)
        if not bucket.take(now):
            return False
        if bucket.dropped:
            log.warning("domain %s: %d events came faster than %g a second and were not stored", domain,
                        bucket.dropped, self._rate)
            bucket.dropped = 0
        return True

    def emit(self, *, domain: str, uuid: str, event: str, detail: str, state: str, reason: str) -> DomainEvent:
        record = DomainEvent(time.time(), domain, uuid, event, detail, state, reason)
        if self._let_through(uuid, domain, time.monotonic()):
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
