"""QEMU's migration stream to and from a file descriptor the daemon opened (save, restore).

QEMU may open no host file itself (it runs confined), so the daemon opens the
save image and passes the descriptor over QMP (SCM_RIGHTS + ``getfd``); QEMU
then migrates to ``fd:NAME`` or receives from it (``migrate-incoming``). Both
share the file offset with the daemon's descriptor: the daemon positions it
after its header first, and reads it back to learn how long the stream was.

The bandwidth limit (QEMU's default is meant for a network link) is lifted:
a save writes as fast as the disk takes it. QEMU 7.2 has no ``mapped-ram``
(QEMU 9.0), so the stream is the sequential one a live migration sends.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ..errors import QemuError
from . import events as ev
from .monitor import MigrationInfo, Monitor, QmpEvent

#: No limit worth the name: QEMU takes bytes per second up to INT64_MAX.
UNLIMITED = 2**62
#: How often progress is read while the stream runs.
PROGRESS_PERIOD = 0.1
#: Longest a save or a restore may take (seconds); a stuck disk should not hold the domain forever.
STREAM_TIMEOUT = 3600.0
_ENDS = ("completed", "failed", "cancelled")

Progress = Callable[[MigrationInfo], None]


async def save_to_fd(monitor: Monitor, fd: int, name: str, *, progress: Progress | None = None,
                     timeout: float = STREAM_TIMEOUT) -> MigrationInfo:
    """Write the VM's state (RAM, devices) to ``fd``; QEMU stops the guest at the end (STOP).

    Returns QEMU's figures; raises QemuError with QEMU's reason when the stream fails (a full disk: QEMU
    resumes a guest that was running). Cancelled: the migration is cancelled before the error propagates.
    """
    await monitor.migrate_set_capabilities({"events": True})
    await monitor.migrate_set_parameters(max_bandwidth=UNLIMITED)
    await monitor.send_fd(fd, name)
    return await _follow(monitor, lambda: monitor.migrate(f"fd:{name}"), progress, timeout, outgoing=True)


async def load_from_fd(monitor: Monitor, fd: int, name: str, *, timeout: float = STREAM_TIMEOUT) -> MigrationInfo:
    """Read the VM's state from ``fd`` into a QEMU started with ``-incoming defer``; it stays paused."""
    await monitor.migrate_set_capabilities({"events": True})
    await monitor.send_fd(fd, name)
    return await _follow(monitor, lambda: monitor.migrate_incoming(f"fd:{name}"), None, timeout, outgoing=False)


async def _follow(monitor: Monitor, start: Callable[[], object], progress: Progress | None, timeout: float,
                  *, outgoing: bool) -> MigrationInfo:
    ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_event(event: QmpEvent) -> None:
        if ended.done():
            return
        if event.name == ev.MIGRATION and event.data.get("status") in _ENDS:
            ended.set_result(str(event.data["status"]))
        elif event.name == ev.MONITOR_CLOSED:
            ended.set_exception(QemuError("QEMU exited while its state was being "
                                          f"{'written' if outgoing else 'read'}"))

    unregister = monitor.on_event(on_event)
    try:
        await start()  # type: ignore[misc]
        status = await _wait(monitor, ended, progress, timeout)
    except BaseException:
        if outgoing and not ended.done():
            with contextlib.suppress(QemuError):
                await monitor.migrate_cancel()
        raise
    finally:
        unregister()
        if ended.done() and not ended.cancelled():
            ended.exception()  # retrieved
    info = await monitor.query_migrate()
    if status != "completed":
        why = info.error or f"the migration stream was {status}"
        raise QemuError(why)
    return info


async def _wait(monitor: Monitor, ended: asyncio.Future[str], progress: Progress | None, timeout: float) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise QemuError(f"QEMU's state stream did not finish within {timeout:g} s")
        period = min(left, PROGRESS_PERIOD) if progress is not None else left
        try:
            return await asyncio.wait_for(asyncio.shield(ended), period)
        except TimeoutError:
            if progress is not None and not ended.done():
                progress(await monitor.query_migrate())
