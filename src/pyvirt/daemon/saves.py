"""SaveManager: save and restore a guest's memory and device state (virsh save/restore/managedsave).

``save`` writes a save image (save_files.py: header, the domain XML as
launched, then QEMU's migration stream to a descriptor the daemon opened) and
ends the domain (shut off, reason saved). ``restore`` starts QEMU with
``-incoming defer`` from the image's XML, hands it the image after the header,
and resumes the guest where it was. A managed save is the same image kept by
the daemon (save_images.py); ``start`` restores it.

A failed save (full disk, unwritable place, QEMU error) removes its partial
file and leaves the guest running. A daemon killed mid-save finds the save's
record at its next start (``reconcile``): a save whose stream was not complete
is undone (partial file removed, guest resumed); a complete one is finished
(renamed into place, guest ended), so an image never outlives a guest that
kept running after it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Protocol

from .. import faults
from ..errors import InvalidArgument, OperationInvalid, PyvirtError, QemuError
from ..model.abi import abi_differences
from ..model.domain import Domain
from ..model.domain_xml import format_domain_xml, parse_domain_xml
from ..qemu import statefile
from ..qemu.monitor import MigrationInfo
from ..state.store import Store
from . import save_files
from .domain_table import DomainEntry, DomainTable, Job
from .results import DomainSummary, SaveResult
from .runner import Incoming, Running
from .save_images import SaveImages, incoming
from .states import State

log = logging.getLogger(__name__)

SAVE_FD = "pyvirt-save"
PENDING = "save-pending"  # object_runtime kind of a save under way, by domain uuid
STREAMING, COMPLETE = "streaming", "complete"


class Lifecycle(Protocol):
    """Starting and ending a domain whose job lock the caller holds (the domain manager)."""

    async def start_held(self, job: Job, paused: bool, incoming: Incoming | None = None) -> None:
        """Start it; with ``incoming``, from a saved state."""

    async def stop_held(self, job: Job, reason: str = "destroyed") -> None:
        """End its QEMU; returns once the end is recorded with ``reason``."""


def _checked_xml(base: Domain, xml: str, verb: str) -> str:
    """An alternative XML for ``verb``: it must describe the same virtual hardware as ``base``."""
    other = parse_domain_xml(xml)
    diff = abi_differences(base, other)
    if diff:
        raise InvalidArgument(f"cannot {verb} with the given XML: it changes what the guest sees ("
                              f"{', '.join(diff)}); only host-side details (disk sources, NIC sources, "
                              "graphics, descriptions) may differ from the saved domain")
    return format_domain_xml(other)


class SaveManager:
    def __init__(self, table: DomainTable, lifecycle: Lifecycle, images: SaveImages, store: Store) -> None:
        self.table = table
        self.lifecycle = lifecycle
        self.images = images
        self.store = store

    # ------------------------------------------------------------------ save
    async def save(self, ref: str, path: str, *, xml: str | None = None, running: bool | None = None,
                   bypass_cache: bool = False) -> SaveResult:
        """virsh save: the guest's state into ``path``; the domain ends shut off (saved)."""
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "save") as job:
            return await self._save_held(job, Path(path), xml, running, bypass_cache)

    async def managed_save(self, ref: str, *, running: bool | None = None,
                           bypass_cache: bool = False) -> SaveResult:
        """virsh managedsave: the same, into the daemon's image of the domain; ``start`` restores it."""
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "managedsave") as job:
            if not entry.persistent:
                raise OperationInvalid(f"cannot do managed save for transient domain '{entry.name}'; use "
                                       f"`pyvirt save {entry.name} FILE`, or define it first")
            await asyncio.to_thread(self.images.make_dir)
            return await self._save_held(job, self.images.path(entry.uuid), None, running, bypass_cache)

    async def _save_held(self, job: Job, path: Path, xml: str | None, running: bool | None,
                         bypass_cache: bool) -> SaveResult:
        entry = job.entry
        run = self.table.need_running(entry, "save")
        if entry.state not in (State.RUNNING, State.PAUSED):
            raise OperationInvalid(f"cannot save domain '{entry.name}' while it is {entry.state.value}")
        began = time.monotonic()
        was_running = entry.state is State.RUNNING
        text = format_domain_xml(run.live) if xml is None else _checked_xml(run.live, xml, "save")
        writer = save_files.SaveWriter(path, text, was_running if running is None else running,
                                       bypass_cache=bypass_cache)
        self._record(entry, writer, was_running, STREAMING)
        try:
            fd = await asyncio.to_thread(writer.open)
            faults.point("save:opened")
            info = await statefile.save_to_fd(run.monitor, fd, SAVE_FD, progress=self._progress(entry, "save"))
            faults.point("save:streamed")
            self._record(entry, writer, was_running, COMPLETE)
            size = await asyncio.to_thread(writer.finish)
        except BaseException as exc:
            await asyncio.to_thread(writer.discard)
            self._drop_record(entry)
            await self._keep_running(entry, run, was_running)
            if isinstance(exc, QemuError):
                raise QemuError(f"cannot save domain '{entry.name}' to {path}: {exc.message}; no image was "
                                "written and the domain keeps running", detail=exc.detail) from exc
            if isinstance(exc, PyvirtError):
                raise type(exc)(f"{exc.message}; the domain keeps running", detail=exc.detail) from exc
            raise
        faults.point("save:written")
        await self.lifecycle.stop_held(job, reason="saved")
        self._drop_record(entry)
        self.table.emit(entry, "progress", "save 100%")
        return SaveResult(entry.name, str(path), size, round(time.monotonic() - began, 4), info.total_time_ms)

    def _progress(self, entry: DomainEntry, verb: str) -> statefile.Progress:
        """Progress as events on the domain's stream (virsh --verbose draws them as a bar)."""
        def report(info: MigrationInfo) -> None:
            if info.total:
                done = min(99, int(100 * (info.total - info.remaining) / info.total))
                self.table.emit(entry, "progress", f"{verb} {done}%")
        return report

    async def _keep_running(self, entry: DomainEntry, run: Running, was_running: bool) -> None:
        """After a failed save: QEMU resumes a guest it stopped for the stream; make sure of it."""
        if not was_running or not run.process.alive():
            return
        try:
            alive, status = await run.monitor.query_status()
            if not alive and status in ("paused", "postmigrate", "finish-migrate"):
                await run.monitor.cont()
        except QemuError as exc:
            log.error("domain %s: could not resume the guest after a failed save: %s", entry.name, exc)
            return
        self.table.set_state(entry, State.RUNNING, "unpaused", "resumed", "save failed")

    # ----------------------------------------------------- records (crash safety)
    def _record(self, entry: DomainEntry, writer: save_files.SaveWriter, was_running: bool, phase: str) -> None:
        self.store.put_object_runtime(PENDING, entry.uuid, {
            "partial": str(writer.partial), "target": str(writer.target), "running": was_running, "phase": phase})

    def _drop_record(self, entry: DomainEntry) -> None:
        self.store.delete_object_runtime(PENDING, entry.uuid)

    async def reconcile(self) -> None:
        """At the daemon's start (after reattach): finish or undo the saves a killed daemon was making."""
        await asyncio.to_thread(self.images.clean)
        for uuid, record in self.store.object_runtimes(PENDING).items():
            entry = self.table.get(uuid)
            partial, target = Path(str(record["partial"])), Path(str(record["target"]))
            try:
                if entry is not None:
                    await self._reconcile(entry, partial, target, bool(record["running"]), str(record["phase"]))
            except PyvirtError as exc:
                log.error("domain %s: the interrupted save to %s could not be settled: %s", uuid, target, exc)
            finally:
                await asyncio.to_thread(partial.unlink, missing_ok=True)
                self.store.delete_object_runtime(PENDING, uuid)

    async def _reconcile(self, entry: DomainEntry, partial: Path, target: Path, was_running: bool,
                         phase: str) -> None:
        complete = phase == COMPLETE and _whole(partial)
        if complete:
            os.replace(partial, target)
        if phase == COMPLETE and (complete or _whole(target)):
            async with self.table.job(entry, "finish the save of") as job:
                log.info("domain %s: finishing the save to %s the last daemon completed", entry.name, target)
                await self.lifecycle.stop_held(job, reason="saved")
            return
        log.info("domain %s: the save to %s did not finish; removing it, the guest keeps running", entry.name,
                 target)
        run = entry.running
        if run is not None:
            try:
                info = await run.monitor.query_migrate()
                if info.status in ("active", "setup"):
                    await run.monitor.migrate_cancel()
            except QemuError:
                pass
            await self._keep_running(entry, run, was_running)

    # ---------------------------------------------------------------- restore
    async def restore(self, path: str, *, xml: str | None = None, running: bool | None = None,
                      bypass_cache: bool = False) -> DomainSummary:
        """virsh restore: the guest continues from ``path``; a domain not defined here comes back transient."""
        image = await asyncio.to_thread(save_files.read_image, Path(path))
        saved = parse_domain_xml(image.xml)
        launch = image.xml if xml is None else _checked_xml(saved, xml, "restore")
        existing = self.table.check_free(saved.name, saved.uuid)
        entry = existing
        if entry is None:
            entry = DomainEntry(saved.uuid, saved.name, saved, format_domain_xml(saved), persistent=False)
            self.table.add(entry)
        try:
            async with self.table.job(entry, "restore") as job:
                if entry.active:
                    raise OperationInvalid(f"cannot restore domain '{entry.name}': it is already running; "
                                           f"destroy it first with `pyvirt destroy {entry.name}`")
                paused = not image.header.running if running is None else not running
                await self.lifecycle.start_held(job, paused, incoming(image, xml=launch, bypass_cache=bypass_cache))
        except BaseException:
            if existing is None:
                self.table.remove(entry)
            raise
        return entry.summary()

    # ------------------------------------------------------------ save images
    @staticmethod
    async def image_xml(path: str, security_info: bool = False) -> str:
        """save-image-dumpxml."""
        image = await asyncio.to_thread(save_files.read_image, Path(path))
        if security_info:
            return image.xml
        return format_domain_xml(parse_domain_xml(image.xml), secure=False)

    async def define_image_xml(self, path: str, xml: str, running: bool | None = None) -> None:
        """save-image-define: a new XML for the image (same virtual hardware), and its running/paused flag."""
        image = await asyncio.to_thread(save_files.read_image, Path(path))
        text = _checked_xml(parse_domain_xml(image.xml), xml, "define the save image")
        await asyncio.to_thread(save_files.rewrite_xml, Path(path), text, running)

    def managed_uuids(self) -> list[str]:
        """The domains that have a managed save image (list --managed-save)."""
        return sorted(e.uuid for e in self.table if self.images.exists(e.uuid))

    async def remove_managed(self, ref: str) -> bool:
        """managedsave-remove; False when the domain had no image."""
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "remove the managed save of"):
            return await asyncio.to_thread(self.images.remove, entry.uuid)


def _whole(path: Path) -> bool:
    try:
        save_files.read_image(path)
    except PyvirtError:
        return False
    return True
