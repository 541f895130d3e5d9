"""SnapshotManager: internal snapshots of domains (virsh's snapshot-* verbs).

A shut-off domain is snapshotted with `qemu-img snapshot` on every qcow2
disk it writes to. A running or paused one through QEMU's own jobs
(QMP snapshot-save / snapshot-load / snapshot-delete, qemu/jobs.py): they
store the disks and, in the first disk's image, the memory and device state,
so reverting to such a snapshot resumes the guest at that moment. Raw images
cannot hold internal snapshots; read-only disks and CD-ROMs are left out.

The metadata (the tree, the current one) is the snapshot catalog's
(snapshot_catalog.py). Every verb that changes images holds the domain's job
lock for its whole run; starting or stopping the domain inside it goes
through the domain manager's public held-lock operations. External
(disk-only) snapshots come in a later release.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol

from .. import faults
from ..errors import (
    AlreadyExists,
    InvalidArgument,
    OperationInvalid,
    PyvirtError,
    QemuError,
    UnsupportedConfig,
)
from ..model.domain import Disk, Domain
from ..model.domain_xml import format_domain_xml, parse_domain_xml
from ..model.snapshot_xml import (
    DomainSnapshot,
    SnapshotDisk,
    check_snapshot_name,
    format_snapshot_xml,
    parse_snapshot_xml,
)
from ..qemu import img, jobs
from ..qemu.argv_disks import DiskNames, disk_names
from .domain_table import DomainEntry, DomainTable, Job
from .results import SnapshotList, SnapshotReverted, SnapshotRow, SnapshotsDeleted
from .runner import Running
from .snapshot_catalog import SnapshotCatalog, Stored
from .states import State

log = logging.getLogger(__name__)

SETTLE_TIMEOUT = 5.0  # seconds for the domain's state to follow QEMU's STOP/RESUME events
LATER = "comes in a later release"


class Lifecycle(Protocol):
    """Starting and stopping a domain whose job lock the caller holds (the domain manager)."""

    async def start_held(self, job: Job, paused: bool) -> None:
        """Start it (paused or running)."""

    async def stop_held(self, job: Job) -> None:
        """Destroy it; returns once its end is recorded."""


async def _job_step(what: str, step: Callable[[], Awaitable[None]]) -> None:
    """Run one QEMU job; its failure says what pyvirt was doing."""
    try:
        await step()
    except QemuError as exc:
        raise QemuError(f"cannot {what}: {exc.message}", detail=exc.detail) from exc


class SnapshotManager:
    def __init__(self, table: DomainTable, catalog: SnapshotCatalog, lifecycle: Lifecycle) -> None:
        self.table = table
        self.catalog = catalog
        self.lifecycle = lifecycle

    def _row(self, entry: DomainEntry, name: str) -> SnapshotRow:
        return self.catalog.row(entry.uuid, entry.name, name)

    async def reconcile(self) -> None:
        """At the daemon's start: finish or undo the snapshots a killed daemon was taking.

        The images decide: a snapshot every covered disk holds gets its metadata (as if the daemon had
        lived); one only some disks hold is removed from them (offline; a running domain's images keep
        the tag, which a later snapshot of that name is told about)."""
        for uuid, stored in self.catalog.pending():
            entry = self.table.get(uuid)
            snap = stored.snap
            if entry is None or snap.name is None:
                continue
            disks = [d for d in _snapshot_domain(entry, snap).devices.disks
                     if _mode_of(snap, d) == "internal" and d.source]
            holding = await asyncio.to_thread(_holding, snap.name, disks)
            if disks and len(holding) == len(disks):
                self.catalog.set_current(uuid, None)
                self.catalog.put(uuid, stored)
                log.info("domain %s: snapshot %s was taken before the last daemon died; its metadata is kept",
                         entry.name, snap.name)
            elif holding and entry.running is None:
                await asyncio.to_thread(_delete_offline, entry.name, snap.name, holding)
                log.info("domain %s: half-taken snapshot %s removed from %d image(s)", entry.name, snap.name,
                         len(holding))
            elif holding:
                log.warning("domain %s: half-taken snapshot %s stays in %d image(s) of the running guest",
                            entry.name, snap.name, len(holding))
            self.catalog.drop_pending(uuid, stored)

    # --------------------------------------------------------------- queries
    def list_snapshots(self, ref: str) -> SnapshotList:
        """Every snapshot of a domain (by name), and the current one's name."""
        entry = self.table.lookup(ref)
        snaps = self.catalog.all(entry.uuid)
        rows = tuple(self._row(entry, n) for n in sorted(snaps, key=str.lower))
        return SnapshotList(rows, self.catalog.current(entry.uuid))

    def info(self, ref: str, name: str) -> SnapshotRow:
        entry = self.table.lookup(ref)
        stored = self.catalog.get(entry.uuid, entry.name, name)
        assert stored.snap.name is not None
        return self._row(entry, stored.snap.name)

    def get_xml(self, ref: str, name: str, security_info: bool = False) -> str:
        """snapshot-dumpxml: the domain inside without graphics passwords unless ``security_info``."""
        entry = self.table.lookup(ref)
        snap = self.catalog.get(entry.uuid, entry.name, name).snap
        if snap.domain_xml and not security_info:
            hidden = format_domain_xml(parse_domain_xml(snap.domain_xml), secure=False)
            if hidden != format_domain_xml(parse_domain_xml(snap.domain_xml)):  # it had a password
                snap = replace(snap, domain_xml=hidden)
        return format_snapshot_xml(snap)

    async def set_current(self, ref: str, name: str) -> SnapshotRow:
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "set the current snapshot of"):
            self.catalog.get(entry.uuid, entry.name, name)
            self.catalog.set_current(entry.uuid, name)
            return self._row(entry, name)

    # ---------------------------------------------------------------- create
    async def create(self, ref: str, xml: str | None = None, *, disk_only: bool = False, no_metadata: bool = False,
                     halt: bool = False, live: bool = False, atomic: bool = False, quiesce: bool = False,
                     reuse_external: bool = False) -> SnapshotRow:
        """Take an internal snapshot (snapshot-create / snapshot-create-as); returns its row.

        ``atomic`` changes nothing: a failure on one disk always removes the snapshot from the others.
        """
        entry = self.table.lookup(ref)
        spec = parse_snapshot_xml(xml) if xml and xml.strip() else DomainSnapshot()
        if disk_only or spec.state == "disk-snapshot":
            raise OperationInvalid(
                f"cannot snapshot domain '{entry.name}': disk-only (external) snapshots come in a later release; "
                "leave out --disk-only for an internal snapshot of the qcow2 disks (with the memory of a running "
                "guest)")
        if reuse_external:
            raise OperationInvalid("--reuse-external is for external snapshots, which come in a later release; "
                                   "leave it out")
        if quiesce:
            raise OperationInvalid(f"--quiesce needs the QEMU guest agent, which {LATER}; leave it out")
        async with self.table.job(entry, "take a snapshot of") as job:
            run = entry.running
            if run is not None and entry.state not in (State.RUNNING, State.PAUSED):
                raise OperationInvalid(f"cannot snapshot domain '{entry.name}' while it is {entry.state.value}; "
                                       "snapshots need it running, paused or shut off")
            if live:
                raise OperationInvalid(
                    "live snapshot creation is supported only with external memory snapshots, which come in a "
                    "later release; leave out --live: an internal snapshot pauses the guest while its memory is saved")
            memory = spec.memory or ("internal" if run is not None else "no")
            if memory == "external":
                raise OperationInvalid("external memory snapshots come in a later release; use "
                                       "<memory snapshot='internal'/>")
            if run is None and memory == "internal":
                raise InvalidArgument(f"domain '{entry.name}' is shut off: there is no memory state to save; "
                                      "use <memory snapshot='no'/> (or leave <memory> out)")
            if run is not None and memory == "no":
                raise OperationInvalid(
                    f"a snapshot of running domain '{entry.name}' without its memory is a disk-only (external) "
                    f"snapshot, which {LATER}; leave out <memory snapshot='no'/>")
            name = spec.name or str(int(time.time()))
            check_snapshot_name(name)
            snaps = self.catalog.all(entry.uuid)
            if name in snaps:
                raise AlreadyExists(f"domain snapshot '{name}' already exists for domain '{entry.name}'; choose "
                                    f"another name or delete it first (`pyvirt snapshot-delete {entry.name} {name}`)")
            domain = run.live if run is not None else entry.config
            chosen, listed = _plan_disks(entry.name, domain, spec.disks, live=run is not None)
            created = int(time.time())
            state = ("running" if entry.state is State.RUNNING else "paused") if run is not None else "shutoff"
            snap = DomainSnapshot(
                name=name, description=spec.description, state=state, creation_time=created, memory=memory,
                disks=listed, domain_xml=entry.xml, current=not no_metadata,
                parent=self.catalog.current(entry.uuid),
            )
            taking = Stored(str(uuidlib.uuid4()), snap)
            if not no_metadata:
                self.catalog.put_pending(entry.uuid, taking)
            try:
                if run is not None:
                    await self._save_live(entry, run, name, chosen)
                else:
                    await asyncio.to_thread(_create_offline, entry.name, name, chosen)
            except BaseException:
                self.catalog.drop_pending(entry.uuid, taking)
                raise
            faults.point("snapshot:images")
            if no_metadata:
                row = SnapshotRow(name, entry.name, snap.description, state, snap.parent, created, snap.location,
                                  False, memory, False, 0, 0, ())
            else:
                self.catalog.set_current(entry.uuid, None)
                self.catalog.put(entry.uuid, taking)
                self.catalog.drop_pending(entry.uuid, taking)
                row = self._row(entry, name)
            if halt and entry.running is not None:
                await self.lifecycle.stop_held(job)
            return row

    async def _save_live(self, entry: DomainEntry, run: Running, name: str, chosen: list[Disk]) -> None:
        nodes = _live_nodes(entry.name, run.live, chosen)
        if name in await jobs.snapshot_tags(run.monitor, nodes):
            raise AlreadyExists(f"a disk image of domain '{entry.name}' already holds an internal snapshot named "
                                f"'{name}' (one taken without metadata?); choose another name")
        want_running = entry.state is State.RUNNING
        await _job_step(f"save snapshot '{name}' of domain '{entry.name}'",
                        lambda: jobs.snapshot_save(run.monitor, name, nodes[0], nodes))
        await _settle(entry, run, want_running)

    # ---------------------------------------------------------------- revert
    async def revert(self, ref: str, name: str | None, *, running: bool = False, paused: bool = False,
                     force: bool = False) -> SnapshotReverted:
        """Make the domain what it was at the snapshot: disks, and memory and run state if it was running.

        ``force`` changes nothing: none of these reverts is risky in the way it is about (external files).
        """
        if running and paused:
            raise InvalidArgument("--running and --paused are mutually exclusive; give one of them")
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "revert") as job:
            stored = self.catalog.get(entry.uuid, entry.name, name)
            snap = stored.snap
            assert snap.name is not None
            if snap.location == "external":
                raise OperationInvalid(f"reverting to external snapshot '{snap.name}' {LATER}")
            then = _snapshot_domain(entry, snap)
            chosen = [d for d in then.devices.disks if _mode_of(snap, d) == "internal"]
            if not chosen:
                raise OperationInvalid(f"snapshot '{snap.name}' of domain '{entry.name}' covers no disk; "
                                       "there is nothing to revert")
            if snap.memory == "internal":
                await self._revert_live(job, snap, chosen, running=running, paused=paused)
            else:
                if any(not d.source for d in chosen):
                    raise OperationInvalid("reverting a shut-off snapshot of volume disks comes in a later release")
                if entry.running is not None:  # libvirt stops the guest to revert to a shut-off snapshot
                    await self.lifecycle.stop_held(job)
                self._restore_definition(entry, snap)
                await asyncio.to_thread(_apply_offline, entry.name, snap.name, chosen)
                if running or paused:
                    await self.lifecycle.start_held(job, paused)
            self.catalog.set_current(entry.uuid, snap.name)
            return SnapshotReverted(self._row(entry, snap.name), entry.state.value)

    async def _revert_live(self, job: Job, snap: DomainSnapshot, chosen: list[Disk], *,
                           running: bool, paused: bool) -> None:
        entry = job.entry
        assert snap.name is not None
        tag = snap.name
        started = False
        if entry.running is None:
            self._restore_definition(entry, snap)
            await self.lifecycle.start_held(job, True)
            started = True
        run = entry.running
        assert run is not None
        try:
            nodes = _live_nodes(entry.name, run.live, chosen)
            if entry.state is State.RUNNING:
                await run.monitor.stop()  # the guest must not run while its memory is replaced
            await _job_step(f"load snapshot '{tag}' into domain '{entry.name}'",
                            lambda: jobs.snapshot_load(run.monitor, tag, nodes[0], nodes))
        except BaseException:
            if started:
                await self.lifecycle.stop_held(job)
            raise
        if not started:
            self._restore_definition(entry, snap)
        want_running = running or (not paused and snap.state == "running")
        if want_running:
            await run.monitor.cont()
        await _settle(entry, run, want_running)

    def _restore_definition(self, entry: DomainEntry, snap: DomainSnapshot) -> None:
        """libvirt's revert also restores the definition the snapshot was taken of."""
        if not entry.persistent or not snap.domain_xml or snap.domain_xml == entry.xml:
            return
        domain = parse_domain_xml(snap.domain_xml)
        if domain.uuid != entry.uuid:
            raise OperationInvalid(f"snapshot '{snap.name}' holds a definition of another domain "
                                   f"(uuid {domain.uuid}); it cannot be reverted to")
        self.table.set_config(entry, domain)

    # ---------------------------------------------------------------- delete
    async def delete(self, ref: str, name: str | None, *, children: bool = False, children_only: bool = False,
                     metadata_only: bool = False) -> SnapshotsDeleted:
        """Delete a snapshot (and/or its descendants); its children move up to its parent."""
        if children and children_only:
            raise InvalidArgument("--children and --children-only are mutually exclusive; give one of them")
        entry = self.table.lookup(ref)
        uuid = entry.uuid
        async with self.table.job(entry, "delete a snapshot of"):
            target = self.catalog.get(uuid, entry.name, name).snap
            snaps = self.catalog.all(uuid)
            assert target.name is not None
            below = self.catalog.descendants(snaps, target.name)
            victims = below if children_only else [target.name] + (below if children else [])
            if not metadata_only:
                for victim in reversed(victims):  # leaves first
                    await self._delete_images(entry, snaps[victim].snap)
            current = self.catalog.current(uuid)
            orphans = self.catalog.children(snaps, target.name)
            for victim in victims:
                self.catalog.drop(uuid, victim)
            if not children and not children_only:
                for child in orphans:
                    moved = snaps[child]
                    self.catalog.put(uuid, Stored(moved.row, replace(moved.snap, parent=target.parent)))
            if current in victims:
                heir = target.name if children_only else target.parent
                self.catalog.set_current(uuid, heir if heir in self.catalog.all(uuid) else None)
            return SnapshotsDeleted(target.name, tuple(victims), children_only)

    async def _delete_images(self, entry: DomainEntry, snap: DomainSnapshot) -> None:
        assert snap.name is not None
        tag = snap.name
        then = _snapshot_domain(entry, snap)
        run = entry.running
        nodes: list[str] = []
        offline: list[Disk] = []
        for disk in (d for d in then.devices.disks if _mode_of(snap, d) == "internal"):
            match = _live_match(run.live, disk) if run is not None else None
            if match is not None and match[1].format_node is not None:
                nodes.append(match[1].format_node)
            elif disk.source:
                offline.append(disk)
            else:
                log.warning("domain %s: volume disk %s is not attached; snapshot %s stays in its image",
                            entry.name, disk.target_dev, tag)
        if run is not None and nodes:
            await _job_step(f"delete snapshot '{tag}' of domain '{entry.name}'",
                            lambda: jobs.snapshot_delete(run.monitor, tag, nodes))
        if offline:
            await asyncio.to_thread(_delete_offline, entry.name, tag, offline)


# ------------------------------------------------------------------ disks
def _file_driver(disk: Disk) -> str:
    block = disk.source_type == "block" or (disk.source_type == "volume" and disk.volume_type == "block")
    return "host_device" if block else "file"


def _default_mode(disk: Disk) -> str:
    return "no" if disk.device == "cdrom" or disk.readonly or disk.source is None else "internal"


def _mode_of(snap: DomainSnapshot, disk: Disk) -> str:
    for d in snap.disks:
        if d.name in (disk.target_dev, disk.source):
            return d.snapshot or _default_mode(disk)
    return "no"


def _plan_disks(domain_name: str, domain: Domain, spec: tuple[SnapshotDisk, ...],
                live: bool) -> tuple[list[Disk], tuple[SnapshotDisk, ...]]:
    """The disks to snapshot, and the <disks> list of the metadata (every disk with its mode)."""
    disks = domain.devices.disks
    wanted: dict[str, str | None] = {}
    for d in spec:
        disk = next((x for x in disks if d.name in (x.target_dev, x.source)), None)
        if disk is None:
            have = ", ".join(x.target_dev for x in disks) or "none"
            raise InvalidArgument(f"the snapshot XML names disk '{d.name}', which domain '{domain_name}' does not "
                                  f"have (its disks: {have})")
        wanted[disk.target_dev] = d.snapshot
    chosen: list[Disk] = []
    listed: list[SnapshotDisk] = []
    for disk in disks:
        mode = wanted.get(disk.target_dev) or _default_mode(disk)
        who = f"disk {disk.target_dev}"
        if mode in ("external", "manual"):
            raise UnsupportedConfig(f"{who}: snapshot='{mode}' {LATER}; use 'internal' or 'no'")
        if mode == "internal":
            if disk.device == "cdrom" or disk.readonly or disk.source is None:
                raise InvalidArgument(f"{who} is read-only (or an empty CD-ROM): it cannot take an internal "
                                      f"snapshot; set <disk name='{disk.target_dev}' snapshot='no'/>")
            if (disk.format or "raw") != "qcow2":
                raise OperationInvalid(
                    f"cannot take an internal snapshot of domain '{domain_name}': {who} ('{disk.source}') is "
                    f"{disk.format or 'raw'}, and only qcow2 images can hold internal snapshots; convert it with "
                    f"`pyvirt img convert -f raw -O qcow2 {disk.source} NEW.qcow2` and point the disk at the new image "
                    f"(<driver type='qcow2'/>), or leave it out with <disk name='{disk.target_dev}' snapshot='no'/>"
                )
            if not live and disk.source_type == "volume" and disk.volume_type is None:
                raise OperationInvalid(
                    f"{who} is volume '{disk.source_volume}' of pool '{disk.source_pool}': snapshots of a shut-off "
                    "domain's volume disks come in a later release; start the domain and snapshot it running")
            chosen.append(disk)
        listed.append(SnapshotDisk(disk.target_dev, mode))
    if not chosen:
        raise OperationInvalid(
            f"domain '{domain_name}' has no writable qcow2 disk to hold an internal snapshot; add one, or convert "
            "a raw disk with `pyvirt img convert -f raw -O qcow2 SRC NEW.qcow2` and point the disk at it")
    return chosen, tuple(listed)


def _snapshot_domain(entry: DomainEntry, snap: DomainSnapshot) -> Domain:
    """The definition the snapshot was taken of (the current one if it holds none)."""
    if snap.domain_xml:
        try:
            return parse_domain_xml(snap.domain_xml)
        except PyvirtError as exc:
            raise OperationInvalid(f"the definition stored with snapshot '{snap.name}' of domain '{entry.name}' "
                                   f"no longer parses: {exc}") from exc
    return entry.config


def _live_match(live: Domain, disk: Disk) -> tuple[Disk, DiskNames] | None:
    """The running QEMU's disk that is ``disk``: same target, and same path when ``disk`` names one."""
    for d, names in zip(live.devices.disks, disk_names(live), strict=True):
        if d.target_dev == disk.target_dev and names.format_node and (not disk.source or d.source == disk.source):
            return d, names
    return None


def _live_nodes(domain_name: str, live: Domain, chosen: list[Disk]) -> list[str]:
    """QMP format node names of ``chosen`` in the running QEMU (matched by target and path)."""
    nodes = []
    for disk in chosen:
        found = _live_match(live, disk)
        if found is None or found[1].format_node is None:
            raise OperationInvalid(
                f"disk {disk.target_dev} ('{disk.source}') of the snapshot is not attached to running domain "
                f"'{domain_name}' as it was; shut the domain off (`pyvirt destroy {domain_name}`) and try again")
        nodes.append(found[1].format_node)
    return nodes


def _create_offline(domain_name: str, name: str, disks: list[Disk]) -> None:
    """qemu-img snapshot -c on every disk; a failure removes it again from the disks done so far."""
    for disk in disks:
        assert disk.source is not None
        if any(s.name == name for s in img.snapshot_list(disk.source, file_driver=_file_driver(disk))):
            raise AlreadyExists(f"disk {disk.target_dev} of domain '{domain_name}' ('{disk.source}') already holds "
                                f"an internal snapshot named '{name}' (one taken without metadata?); choose another "
                                "name")
    done: list[Disk] = []
    try:
        for disk in disks:
            assert disk.source is not None
            img.snapshot_create(disk.source, name, file_driver=_file_driver(disk))
            done.append(disk)
            faults.point("snapshot:one-image")
    except BaseException:
        for disk in done:
            assert disk.source is not None
            try:
                img.snapshot_delete(disk.source, name, file_driver=_file_driver(disk))
            except PyvirtError:
                log.exception("domain %s: cannot remove half-made snapshot %s from %s", domain_name, name,
                              disk.source)
        raise


def _apply_offline(domain_name: str, name: str, disks: list[Disk]) -> None:
    """qemu-img snapshot -a on every disk, after checking that each one holds the snapshot."""
    for disk in disks:
        assert disk.source is not None
        if not any(s.name == name for s in img.snapshot_list(disk.source, file_driver=_file_driver(disk))):
            raise OperationInvalid(f"disk {disk.target_dev} of domain '{domain_name}' ('{disk.source}') does not "
                                   f"hold internal snapshot '{name}' (was the image replaced?); cannot revert")
    for disk in disks:
        assert disk.source is not None
        img.snapshot_apply(disk.source, name, file_driver=_file_driver(disk))


def _holding(name: str, disks: list[Disk]) -> list[Disk]:
    """The disks whose image holds internal snapshot ``name`` (read shared: a running guest may use them)."""
    out = []
    for disk in disks:
        assert disk.source is not None
        if not os.path.exists(disk.source):
            continue
        try:
            tags = img.snapshot_list(disk.source, file_driver=_file_driver(disk), force_share=True)
        except PyvirtError as exc:
            log.warning("cannot list the snapshots of %s: %s", disk.source, exc)
            continue
        if any(s.name == name for s in tags):
            out.append(disk)
    return out


def _delete_offline(domain_name: str, name: str, disks: list[Disk]) -> None:
    """qemu-img snapshot -d on every disk that still holds the snapshot (a missing image is skipped)."""
    for disk in disks:
        assert disk.source is not None
        if not os.path.exists(disk.source):
            log.warning("domain %s: image %s of snapshot %s is gone; nothing to delete there", domain_name,
                        disk.source, name)
            continue
        if any(s.name == name for s in img.snapshot_list(disk.source, file_driver=_file_driver(disk))):
            img.snapshot_delete(disk.source, name, file_driver=_file_driver(disk))


async def _settle(entry: DomainEntry, run: Running, running: bool) -> None:
    """Wait until the daemon has seen QEMU's STOP/RESUME events, so the answer shows the new state."""
    want = State.RUNNING if running else State.PAUSED
    await DomainTable.wait_state(entry, want, run, SETTLE_TIMEOUT)
