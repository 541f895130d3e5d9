"""The KSM tuner: ksmtuned's loop inside pyvirtd.

Every KSM_MONITOR_INTERVAL seconds, and at once when a guest starts or stops
(a ``started``/``stopped`` event on the bus), it reads the host's memory, the
resident memory of the running guests and KSM's pages_to_scan, asks the pure
``host.ksm_policy.decide`` what to do, logs the decision with its inputs and
writes it to sysfs. It runs only while the KSM mode is ``auto``; the KSM
manager (daemon/ksm.py) starts and stops it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from ..errors import PyvirtError
from ..host.ksm import KsmSysfs
from ..host.ksm_policy import Decision, MemoryReading, TunerSettings, decide
from .results import DomainEvent, KsmDecision

log = logging.getLogger(__name__)

WAKING_EVENTS = frozenset({"started", "stopped"})


class KsmTuner:
    def __init__(self, sysfs: KsmSysfs, *, settings: Callable[[], TunerSettings],
                 memory: Callable[[], MemoryReading], committed_kib: Callable[[], int],
                 events: Callable[[], AsyncIterator[DomainEvent]]) -> None:
        """``settings``: the tuner's settings now (they change with `ksm tune`); ``memory``: the host's
        memory reading; ``committed_kib``: resident memory of the running guests; ``events``: a
        subscription to the daemon's domain events (guest starts and stops wake the tuner)."""
        self.sysfs = sysfs
        self._settings = settings
        self._memory = memory
        self._committed = committed_kib
        self._events = events
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.last: KsmDecision | None = None
        self.decisions = 0

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def start(self) -> None:
        if self._tasks:
            return
        self._wake.set()  # decide at once
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._loop(), name="ksm-tuner"),
                       loop.create_task(self._follow(self._events()), name="ksm-tuner-events")]
        log.info("ksm tuner: started (%s)", self._settings())

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if tasks:
            log.info("ksm tuner: stopped")

    def wake(self) -> None:
        """Decide now rather than at the end of the interval (a guest started or stopped)."""
        self._wake.set()

    def step(self) -> Decision:
        """One decision: read, decide, log, write. Blocking file I/O of a few small files (< 1 ms)."""
        settings = self._settings()
        current = self.sysfs.read_int("pages_to_scan")
        decision = decide(settings, self._memory(), self._committed(), current)
        log.info("ksm tuner: %s", decision.describe())
        if decision.run:
            self.sysfs.write({"pages_to_scan": decision.pages_to_scan,
                              "sleep_millisecs": decision.sleep_millisecs, "run": 1})
        elif self.sysfs.read_int("run") == 1:
            self.sysfs.write({"run": 0})
        self.decisions += 1
        self.last = KsmDecision(time.time(), decision.action, decision.run, decision.pages_to_scan,
                                decision.sleep_millisecs, decision.threshold_kib, decision.total_kib,
                                decision.free_kib, decision.committed_kib)
        return decision

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings().monitor_interval)
            self._wake.clear()
            try:
                self.step()
            except (PyvirtError, OSError) as exc:  # a refused write: say so, try again next time
                log.error("ksm tuner: %s", exc)

    async def _follow(self, events: AsyncIterator[DomainEvent]) -> None:
        try:
            async for event in events:
                if event.event in WAKING_EVENTS:
                    self.wake()
        finally:
            aclose = getattr(events, "aclose", None)  # leave the bus at once, not when collected
            if aclose is not None:
                await aclose()
