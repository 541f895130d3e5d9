"""Block node and removable-media sequences over QMP: a disk's two nodes, a CD-ROM's tray.

A disk is two block nodes, storage (file/host_device) and format (raw/qcow2)
on top; ``add_nodes`` opens both or neither. A drive changes media through its
tray: open (the guest may hold it locked and must agree), remove the medium,
insert another, close.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from ..errors import QemuError
from .monitor import Monitor, QmpEvent

log = logging.getLogger(__name__)


def matches_qdev(qdev: str, device_id: str) -> bool:
    """query-block/-blockstats name a front-end by its id, or by a QOM path under it (virtio's backend)."""
    peripheral = f"/machine/peripheral/{device_id}"
    return qdev in (device_id, peripheral) or qdev.startswith(peripheral + "/")


async def add_nodes(monitor: Monitor, storage: Mapping[str, Any], fmt: Mapping[str, Any]) -> None:
    """Open the storage node, then the format node on it; on failure the storage node is closed again."""
    await monitor.blockdev_add(storage)
    try:
        await monitor.blockdev_add(fmt)
    except BaseException:
        with contextlib.suppress(QemuError):
            await monitor.blockdev_del(str(storage["node-name"]))
        raise


async def del_nodes(monitor: Monitor, nodes: list[str], who: str) -> None:
    """Close nodes, top first; a failure leaves a node open in QEMU (logged), the rest are still closed."""
    for node in nodes:
        try:
            await monitor.blockdev_del(node)
        except QemuError as exc:
            log.warning("%s: cannot close block node %s: %s", who, node, exc)


async def tray_open(monitor: Monitor, device_id: str) -> bool:
    for row in await monitor.query_block():
        if matches_qdev(str(row.get("qdev", "")), device_id):
            return bool(row.get("tray_open"))
    return False


async def open_tray(monitor: Monitor, device_id: str, *, force: bool, timeout: float) -> bool:
    """Open a drive's tray; without ``force`` a guest that locked it is asked and gets ``timeout`` seconds.

    False when the tray stayed closed."""
    moved: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def on_event(event: QmpEvent) -> None:
        if event.name == "DEVICE_TRAY_MOVED" and event.data.get("id") == device_id \
                and event.data.get("tray-open") and not moved.done():
            moved.set_result(True)

    unregister = monitor.on_event(on_event)
    try:
        await monitor.blockdev_open_tray(device_id, force=force)
        if await tray_open(monitor, device_id):
            return True
        try:
            await asyncio.wait_for(moved, timeout)
        except TimeoutError:
            return False
        return True
    finally:
        unregister()
