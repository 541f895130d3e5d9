"""QMP jobs run to their end: start one, wait for it to conclude, read its error, dismiss it.

QEMU's long operations (internal snapshots with the VM state, block copies)
are jobs: the command returns at once and JOB_STATUS_CHANGE events follow.
``run`` turns that into one awaitable call that raises QemuError with QEMU's
own words when the job fails, QEMU goes away, or the time is up.
"""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

from ..errors import QemuError
from . import events as ev
from .monitor import Monitor, QmpEvent

JOB_TIMEOUT = 600.0  # seconds for one job (a snapshot copies the guest's memory)


async def run(monitor: Monitor, kind: str, start: Callable[[str], Awaitable[None]],
              timeout: float = JOB_TIMEOUT) -> None:
    """Start a job with ``start(job_id)`` and wait until it concludes; QemuError if it failed."""
    job_id = f"pyvirt-{kind}-{uuid.uuid4().hex[:8]}"
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_event(event: QmpEvent) -> None:
        if done.done():
            return
        if event.name == ev.JOB_STATUS_CHANGE and event.data.get("id") == job_id \
                and event.data.get("status") in ("concluded", "null"):
            done.set_result(None)
        elif event.name == ev.MONITOR_CLOSED:
            done.set_exception(QemuError("QEMU went away during the job"))

    unregister = monitor.on_event(on_event)
    try:
        await start(job_id)
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError as exc:
            raise QemuError(f"QEMU's {kind} job did not end within {timeout:g} s") from exc
    finally:
        unregister()
        if done.done() and not done.cancelled():
            done.exception()  # retrieved: no "never retrieved" warning when we left early
    mine = next((j for j in await monitor.query_jobs() if j.get("id") == job_id), {})
    with contextlib.suppress(QemuError):
        await monitor.job_dismiss(job_id)
    if mine.get("error"):
        raise QemuError(str(mine["error"]))


async def snapshot_save(monitor: Monitor, tag: str, vmstate: str, devices: list[str]) -> None:
    await run(monitor, "snapshot-save", lambda job: monitor.snapshot_save(job, tag, vmstate, devices))


async def snapshot_load(monitor: Monitor, tag: str, vmstate: str, devices: list[str]) -> None:
    await run(monitor, "snapshot-load", lambda job: monitor.snapshot_load(job, tag, vmstate, devices))


async def snapshot_delete(monitor: Monitor, tag: str, devices: list[str]) -> None:
    await run(monitor, "snapshot-delete", lambda job: monitor.snapshot_delete(job, tag, devices))


async def snapshot_tags(monitor: Monitor, nodes: list[str]) -> set[str]:
    """Names of the internal snapshots the given block nodes already hold."""
    tags: set[str] = set()
    for bdev in await monitor.query_named_block_nodes():
        if bdev.get("node-name") in nodes:
            tags.update(str(s.get("name")) for s in (bdev.get("image") or {}).get("snapshots", []))
    return tags
