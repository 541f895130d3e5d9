"""Guests' serial logs stay bounded: rotated by size, as virtlogd does (2 MiB x 3 by default).

QEMU writes a guest's first serial port to NAME.serial.log through an
O_APPEND descriptor the daemon gave it. A guest that prints without end must
not fill the host's disk, so the daemon checks the size of every running
guest's log once a second and, past the limit, copies it to NAME.serial.log.1
(shifting older copies up to the number kept) and truncates it: QEMU's next
append lands at the new end of the same file. Output written between the copy
and the truncation is lost (at most a second's worth; logrotate's
"copytruncate" has the same gap); while no daemon runs, nothing rotates.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from pathlib import Path

from ..config import Config
from .domain_table import DomainTable

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0


def rotate(path: Path, max_bytes: int, backups: int) -> bool:
    """Rotate ``path`` if it is past ``max_bytes``; True when it did."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    for n in range(backups, 1, -1):
        older = path.with_name(f"{path.name}.{n - 1}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{n}"))
    if backups >= 1:
        with open(path, "rb") as src, open(path.with_name(f"{path.name}.1"), "wb") as dst:
            os.fchmod(dst.fileno(), 0o600)
            shutil.copyfileobj(src, dst, 1 << 20)
    with open(path, "r+b") as f:
        f.truncate(0)
    return True


class SerialLogs:
    """The loop that keeps every running guest's serial log under its limit."""

    def __init__(self, config: Config, table: DomainTable) -> None:
        self.config = config
        self.table = table
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="serial-logs")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        settings = self.config.settings
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            paths = [self.config.paths.serial_log(entry.name) for entry, _ in self.table.running()]
            for path in paths:
                try:
                    if await asyncio.to_thread(rotate, path, settings.serial_log_max_bytes,
                                               settings.serial_log_backups):
                        log.info("serial log %s rotated at %d bytes", path, settings.serial_log_max_bytes)
                except OSError as exc:
                    log.warning("cannot rotate serial log %s: %s", path, exc)
