"""The save manager's recovery after a daemon killed mid-save, without QEMU: a record of a stream that was
not complete is undone (partial file removed, the stream cancelled, the guest resumed), one whose image was
complete is finished (renamed into place, the guest ended as saved). The real thing: the crash tests in
tests/integration/test_save_restore.py.
"""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from pyvirt.config import Config
from pyvirt.daemon import save_files
from pyvirt.daemon.domain_table import DomainEntry, DomainTable, Job
from pyvirt.daemon.eventbus import EventBus
from pyvirt.daemon.runner import Incoming, Running
from pyvirt.daemon.save_images import SaveImages
from pyvirt.daemon.saves import COMPLETE, PENDING, STREAMING, SaveManager
from pyvirt.daemon.states import State
from pyvirt.model.domain import OS, Devices, Domain
from pyvirt.model.domain_xml import format_domain_xml
from pyvirt.qemu.monitor import MigrationInfo
from pyvirt.state.store import Store

UUID = "5f3c1b52-7d43-4c1e-9a3e-2b7d0c4e8a11"


class FakeMonitor:
    """A QEMU whose outgoing stream is ``status`` and whose guest is stopped (postmigrate)."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.sent: list[str] = []

    async def query_migrate(self) -> MigrationInfo:
        return MigrationInfo(self.status)

    async def migrate_cancel(self) -> None:
        self.sent.append("migrate_cancel")

    async def query_status(self) -> tuple[bool, str]:
        return "cont" in self.sent, "running" if "cont" in self.sent else "postmigrate"

    async def cont(self) -> None:
        self.sent.append("cont")


class FakeProcess:
    pid = 4242

    def alive(self) -> bool:
        return True


class FakeLifecycle:
    def __init__(self) -> None:
        self.stopped: list[str] = []

    async def start_held(self, job: Job, paused: bool, incoming: Incoming | None = None) -> None:
        raise AssertionError("recovery starts nothing")

    async def stop_held(self, job: Job, reason: str = "destroyed") -> None:
        self.stopped.append(reason)
        job.entry.running = None


def setup(tmp_path: Path, phase: str, migrating: str) -> tuple[SaveManager, DomainEntry, FakeLifecycle, Path,
                                                                save_files.SaveWriter]:
    config = Config.for_root(tmp_path / "root")
    config.paths.make_dirs()
    store = Store(config.paths.database)
    table = DomainTable(store, EventBus(store))
    dom = Domain(name="d", uuid=UUID, type="qemu", memory_kib=65536, os=OS(machine="microvm"), devices=Devices())
    entry = DomainEntry(UUID, "d", dom, format_domain_xml(dom), persistent=True, state=State.RUNNING,
                        reason="booted")
    table.add(entry)
    entry.running = Running(id=1, process=FakeProcess(), monitor=FakeMonitor(migrating),  # type: ignore[arg-type]
                            live=dom, argv=[], accel="tcg", started=time.time())
    lifecycle = FakeLifecycle()
    saves = SaveManager(table, lifecycle, SaveImages(config), store)
    target = tmp_path / "s.img"
    writer = save_files.SaveWriter(target, format_domain_xml(dom), True)
    os.write(writer.open(), b"QEVM" + bytes(100))
    store.put_object_runtime(PENDING, UUID, {"partial": str(writer.partial), "target": str(target),
                                             "running": True, "phase": phase})
    return saves, entry, lifecycle, target, writer


@pytest.mark.parametrize("migrating", ["active", "completed"])
def test_an_unfinished_save_is_undone(tmp_path: Path, migrating: str) -> None:
    saves, entry, lifecycle, target, writer = setup(tmp_path, STREAMING, migrating)
    asyncio.run(saves.reconcile())
    assert not writer.partial.exists() and not target.exists()
    monitor: Any = entry.running.monitor  # type: ignore[union-attr]
    assert monitor.sent == (["migrate_cancel", "cont"] if migrating == "active" else ["cont"])
    assert (entry.state, entry.reason) == (State.RUNNING, "unpaused") and lifecycle.stopped == []
    assert saves.store.object_runtimes(PENDING) == {}


def test_a_complete_save_is_finished(tmp_path: Path) -> None:
    saves, entry, lifecycle, target, writer = setup(tmp_path, COMPLETE, "completed")
    writer.finish()  # complete and synced; the daemon died before the rename: as it would have left it
    os.replace(target, writer.partial)
    asyncio.run(saves.reconcile())
    assert target.exists() and not writer.partial.exists()
    assert save_files.read_image(target).header.stream_len == 104
    assert lifecycle.stopped == ["saved"] and entry.running is None
