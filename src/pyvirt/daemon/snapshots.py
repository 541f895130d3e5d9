"""SnapshotManager: internal snapshots of domains (virsh's snapshot-* verbs) and their metadata.

A shut-off domain is snapshotted with `qemu-img snapshot` on every qcow2
disk it writes to. A running or paused one through QEMU's own jobs
(QMP snapshot-save / snapshot-load / snapshot-delete): they store the disks
and, in the first disk's image, the memory and device state, so reverting
to such a snapshot resumes the guest at that moment. Raw images cannot hold
internal snapshots; read-only disks and CD-ROMs are left out.

Metadata (libvirt's: name, description, parent, creation time, state, the
definition at the time, memory yes/no, which snapshot is current) lives in
the store's objects table, kind ``snapshot:<domain uuid>``, as libvirt's
internal <domainsnapshot> XML. Snapshots form a tree through their parent
names; deleting one hands its children to its parent, as libvirt does.

Every verb that changes images holds the domain's job lock for its whole
run. External (disk-only) snapshots come in a later release.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid as uuidlib
from dataclasses import dataclass, replace
from typing import Any

from ..config import Config
from ..errors import (
    AlreadyExists, InvalidArgument, NotFound, OperationInvalid, PyvirtError, QemuError, UnsupportedConfig,
)
from ..model.domain import Disk, Domain
from ..model.domain_xml import parse_domain_xml
from ..model.snapshot_xml import (
    DomainSnapshot, SnapshotDisk, check_snapshot_name, format_snapshot_xml, parse_snapshot_xml,
)
from ..qemu import events as ev
from ..qemu import img
from ..qemu.argv_disks import DiskNames, disk_names
from ..state.store import ObjectRow, Store
from .domains import DomainManager
from .registry import DomainEntry, job as _job
from .runner import Running
from .states import State

log = logging.getLogger(__name__)

JOB_TIMEOUT = 600.0  # seconds for one QEMU snapshot job (it copies the guest's memory)
SETTLE_TIMEOUT = 5.0  # seconds for the domain's state to follow QEMU's STOP/RESUME events
LATER = "comes in a later release"


@dataclass
class _Stored:
    """One snapshot's metadata and the key of its row in the store."""

    row: str
    snap: DomainSnapshot


class SnapshotManager:
    def __init__(self, domains: DomainManager, store: Store, config: Config) -> None:
        self.domains = domains
        self.store = store
        self.config = config
        self._cache: dict[str, dict[str, _Stored]] = {}  # domain uuid -> snapshot name -> metadata
        self._follower: asyncio.Task[None] | None = None
        domains.snapshot_count = self.count
        domains.snapshot_forget = self.forget

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Follow domain events: a domain that is gone (undefined, a transient one stopped) loses its metadata."""
        if self._follower is None:
            self._follower = asyncio.get_running_loop().create_task(self._follow(), name="snapshot-follower")

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None

    async def _follow(self) -> None:
        async for record in self.domains.bus.subscribe():
            if record.get("event") != "undefined":
                continue
            uuid = str(record.get("uuid"))
            if not any(e.uuid == uuid for e in self.domains.domains):
                self._forget_uuid(uuid)

    # -------------------------------------------------------------- metadata
    @staticmethod
    def _kind(uuid: str) -> str:
        return f"snapshot:{uuid}"

    def _all(self, entry: DomainEntry) -> dict[str, _Stored]:
        snaps = self._cache.get(entry.uuid)
        if snaps is None:
            snaps = {}
            for row in self.store.objects(self._kind(entry.uuid)):
                try:
                    snaps[row.name] = _Stored(row.uuid, parse_snapshot_xml(row.xml, internal=True))
                except PyvirtError:
                    log.exception("domain %s: stored snapshot %s no longer parses; skipping it", entry.name, row.name)
            self._cache[entry.uuid] = snaps
        return snaps

    def _put(self, entry: DomainEntry, stored: _Stored) -> None:
        snap = stored.snap
        assert snap.name is not None
        self.store.put_object(ObjectRow(self._kind(entry.uuid), stored.row, snap.name,
                                        format_snapshot_xml(snap, internal=True), True, False))
        self._all(entry)[snap.name] = stored

    def _drop(self, entry: DomainEntry, name: str) -> None:
        stored = self._all(entry).pop(name, None)
        if stored is not None:
            self.store.delete_object(self._kind(entry.uuid), stored.row)

    def _get(self, entry: DomainEntry, name: str | None) -> _Stored:
        """A snapshot by name; None means the current one."""
        snaps = self._all(entry)
        if name is None:
            current = next((s for s in snaps.values() if s.snap.current), None)
            if current is None:
                raise NotFound(f"domain '{entry.name}' has no current snapshot; name one "
                               f"(see `pyvirt snapshot-list {entry.name}`)")
            return current
        stored = snaps.get(name)
        if stored is None:
            raise NotFound(f"no domain snapshot with matching name '{name}' in domain '{entry.name}'; "
                           f"see `pyvirt snapshot-list {entry.name}`")
        return stored

    def _set_current(self, entry: DomainEntry, name: str | None) -> None:
        for stored in list(self._all(entry).values()):
            want = stored.snap.name == name
            if stored.snap.current != want:
                self._put(entry, _Stored(stored.row, replace(stored.snap, current=want)))

    def count(self, entry: DomainEntry) -> int:
        return len(self._all(entry))

    def forget(self, entry: DomainEntry) -> None:
        """Drop every snapshot's metadata of ``entry`` (undefine --snapshots-metadata); images keep theirs."""
        self._forget_uuid(entry.uuid)

    def _forget_uuid(self, uuid: str) -> None:
        kind = self._kind(uuid)
        for row in self.store.objects(kind):
            self.store.delete_object(kind, row.uuid)
        self._cache.pop(uuid, None)

    @staticmethod
    def _children(snaps: dict[str, _Stored], name: str) -> list[str]:
        return sorted((n for n, s in snaps.items() if s.snap.parent == name), key=str.lower)

    def _descendants(self, snaps: dict[str, _Stored], name: str) -> list[str]:
        """Every descendant of ``name``, parents before their children."""
        out: list[str] = []
        todo = self._children(snaps, name)
        while todo:
            child = todo.pop(0)
            if child in out:  # a loop in hand-edited metadata must not hang the daemon
                continue
            out.append(child)
            todo += self._children(snaps, child)
        return out

    def _row(self, entry: DomainEntry, snaps: dict[str, _Stored], stored: _Stored) -> dict[str, Any]:
        s = stored.snap
        assert s.name is not None
        return {
            "name": s.name, "domain": entry.name, "description": s.description, "state": s.state,
            "parent": s.parent, "creation_time": s.creation_time, "location": s.location,
            "current": s.current, "memory": s.memory, "metadata": True,
            "children": len(self._children(snaps, s.name)),
            "descendants": len(self._descendants(snaps, s.name)),
            "disks": [{"name": d.name, "snapshot": d.snapshot} for d in s.disks],
        }

    # --------------------------------------------------------------- queries
    def list(self, ref: str) -> dict[str, Any]:
        """Every snapshot of a domain (by name), and the current one's name."""
        entry = self.domains.lookup(ref)
        snaps = self._all(entry)
        rows = [self._row(entry, snaps, snaps[n]) for n in sorted(snaps, key=str.lower)]
        current = next((r["name"] for r in rows if r["current"]), None)
        return {"snapshots": rows, "current": current}

    def info(self, ref: str, name: str) -> dict[str, Any]:
        entry = self.domains.lookup(ref)
        return self._row(entry, self._all(entry), self._get(entry, name))

    def get_xml(self, ref: str, name: str) -> str:
        entry = self.domains.lookup(ref)
        return format_snapshot_xml(self._get(entry, name).snap)

    async def set_current(self, ref: str, name: str) -> dict[str, Any]:
        entry = self.domains.lookup(ref)
        async with _job(entry, "set the current snapshot of"):
            self._get(entry, name)
            self._set_current(entry, name)
            snaps = self._all(entry)
            return self._row(entry, snaps, snaps[name])

    # ---------------------------------------------------------------- create
    async def create(self, ref: str, xml: str | None = None, *, disk_only: bool = False, no_metadata: bool = False,
                     halt: bool = False, live: bool = False, atomic: bool = False, quiesce: bool = False,
                     reuse_external: bool = False) -> dict[str, Any]:
        """Take an internal snapshot (snapshot-create / snapshot-create-as); returns its row.

        ``atomic`` changes nothing: a failure on one disk always removes the snapshot from the others.
        """
        entry = self.domains.lookup(ref)
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
        async with _job(entry, "take a snapshot of"):
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
            snaps = self._all(entry)
            if name in snaps:
                raise AlreadyExists(f"domain snapshot '{name}' already exists for domain '{entry.name}'; choose "
                                    f"another name or delete it first (`pyvirt snapshot-delete {entry.name} {name}`)")
            domain = run.live if run is not None else entry.config
            chosen, listed = _plan_disks(entry.name, domain, spec.disks, live=run is not None)
            created = int(time.time())
            state = ("running" if entry.state is State.RUNNING else "paused") if run is not None else "shutoff"
            if run is not None:
                await self._save_live(entry, run, name, chosen)
            else:
                await asyncio.to_thread(_create_offline, entry.name, name, chosen)
            snap = DomainSnapshot(
                name=name, description=spec.description, state=state, creation_time=created, memory=memory,
                disks=listed, domain_xml=entry.xml, current=True,
                parent=next((n for n, s in snaps.items() if s.snap.current), None),
            )
            row = {"name": name, "domain": entry.name, "metadata": not no_metadata, "state": state}
            if not no_metadata:
                self._set_current(entry, None)
                self._put(entry, _Stored(str(uuidlib.uuid4()), snap))
                row = self._row(entry, self._all(entry), self._all(entry)[name])
            if halt and entry.running is not None:
                await self._stop(entry)
            return row

    async def _save_live(self, entry: DomainEntry, run: Running, name: str, chosen: list[Disk]) -> None:
        nodes = _live_nodes(entry.name, run.live, chosen)
        taken = await _live_tags(run, nodes)
        if name in taken:
            raise AlreadyExists(f"a disk image of domain '{entry.name}' already holds an internal snapshot named "
                                f"'{name}' (one taken without metadata?); choose another name")
        want_running = entry.state is State.RUNNING
        await _qmp_job(entry, run, "snapshot-save", {"tag": name, "vmstate": nodes[0], "devices": nodes},
                       f"save snapshot '{name}' of")
        await _settle(entry, run, want_running)

    # ---------------------------------------------------------------- revert
    async def revert(self, ref: str, name: str | None, *, running: bool = False, paused: bool = False,
                     force: bool = False) -> dict[str, Any]:
        """Make the domain what it was at the snapshot: disks, and memory and run state if it was running.

        ``force`` changes nothing: none of these reverts is risky in the way it is about (external files).
        """
        if running and paused:
            raise InvalidArgument("--running and --paused are mutually exclusive; give one of them")
        entry = self.domains.lookup(ref)
        async with _job(entry, "revert"):
            stored = self._get(entry, name)
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
                await self._revert_live(entry, snap, chosen, running=running, paused=paused)
            else:
                if any(not d.source for d in chosen):
                    raise OperationInvalid("reverting a shut-off snapshot of volume disks comes in a later release")
                if entry.running is not None:  # libvirt stops the guest to revert to a shut-off snapshot
                    await self._stop(entry)
                self._restore_definition(entry, snap)
                await asyncio.to_thread(_apply_offline, entry.name, snap.name, chosen)
                if running or paused:
                    await self.domains._start_locked(entry, paused)  # noqa: SLF001 - we hold the job lock
            self._set_current(entry, snap.name)
            snaps = self._all(entry)
            return self._row(entry, snaps, snaps[snap.name]) | {"domain_state": entry.state.value}

    async def _revert_live(self, entry: DomainEntry, snap: DomainSnapshot, chosen: list[Disk], *,
                           running: bool, paused: bool) -> None:
        assert snap.name is not None
        started = False
        if entry.running is None:
            self._restore_definition(entry, snap)
            await self.domains._start_locked(entry, True)  # noqa: SLF001 - we hold the job lock
            started = True
        run = entry.running
        assert run is not None
        try:
            nodes = _live_nodes(entry.name, run.live, chosen)
            if entry.state is State.RUNNING:
                await run.monitor.stop()  # the guest must not run while its memory is replaced
            await _qmp_job(entry, run, "snapshot-load", {"tag": snap.name, "vmstate": nodes[0], "devices": nodes},
                           f"load snapshot '{snap.name}' into")
        except BaseException:
            if started:
                await self._stop(entry)
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
        self.domains.store_config(entry, domain)

    async def _stop(self, entry: DomainEntry) -> None:
        run = entry.running
        if run is not None:
            await self.domains._kill(run)  # noqa: SLF001 - we hold the job lock
            await self.domains._settled(entry, run)  # noqa: SLF001

    # ---------------------------------------------------------------- delete
    async def delete(self, ref: str, name: str | None, *, children: bool = False, children_only: bool = False,
                     metadata_only: bool = False) -> dict[str, Any]:
        """Delete a snapshot (and/or its descendants); its children move up to its parent."""
        if children and children_only:
            raise InvalidArgument("--children and --children-only are mutually exclusive; give one of them")
        entry = self.domains.lookup(ref)
        async with _job(entry, "delete a snapshot of"):
            stored = self._get(entry, name)
            snaps = self._all(entry)
            target = stored.snap
            assert target.name is not None
            below = self._descendants(snaps, target.name)
            victims = below if children_only else [target.name] + (below if children else [])
            if not metadata_only:
                for victim in reversed(victims):  # leaves first
                    await self._delete_images(entry, snaps[victim].snap)
            current = next((n for n, s in snaps.items() if s.snap.current), None)
            for victim in victims:
                self._drop(entry, victim)
            if not children and not children_only:
                for child in self._children(snaps, target.name):
                    moved = snaps[child]
                    self._put(entry, _Stored(moved.row, replace(moved.snap, parent=target.parent)))
            if current in victims:
                heir = target.name if children_only else target.parent
                self._set_current(entry, heir if heir in self._all(entry) else None)
            return {"name": target.name, "deleted": victims, "children_only": children_only}

    async def _delete_images(self, entry: DomainEntry, snap: DomainSnapshot) -> None:
        assert snap.name is not None
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
                            entry.name, disk.target_dev, snap.name)
        if run is not None and nodes:
            await _qmp_job(entry, run, "snapshot-delete", {"tag": snap.name, "devices": nodes},
                           f"delete snapshot '{snap.name}' of")
        if offline:
            await asyncio.to_thread(_delete_offline, entry.name, snap.name, offline)


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
                    f"`pyvirt img convert -O qcow2 {disk.source} NEW.qcow2` and point the disk at the new image "
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
            "a raw disk with `pyvirt img convert -O qcow2 SRC NEW.qcow2` and point the disk at it")
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
    for d, names in zip(live.devices.disks, disk_names(live)):
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


async def _live_tags(run: Running, nodes: list[str]) -> set[str]:
    """Names of the internal snapshots the given block nodes already hold."""
    tags: set[str] = set()
    for bdev in await run.monitor.execute("query-named-block-nodes", {"flat": True}):
        if bdev.get("node-name") in nodes:
            tags.update(str(s.get("name")) for s in (bdev.get("image") or {}).get("snapshots", []))
    return tags


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


# ------------------------------------------------------------------ QEMU jobs
async def _qmp_job(entry: DomainEntry, run: Running, command: str, args: dict[str, Any], doing: str) -> None:
    """Run a QMP job to its end: wait for JOB_STATUS_CHANGE 'concluded', read its error, dismiss it."""
    job_id = f"pyvirt-{command}-{uuidlib.uuid4().hex[:8]}"
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_event(event: Any) -> None:
        if done.done():
            return
        if event.name == ev.JOB_STATUS_CHANGE and event.data.get("id") == job_id \
                and event.data.get("status") in ("concluded", "null"):
            done.set_result(None)
        elif event.name == ev.MONITOR_CLOSED:
            done.set_exception(QemuError(f"cannot {doing} domain '{entry.name}': QEMU went away during the job"))

    unregister = run.monitor.on_event(on_event)
    try:
        await run.monitor.execute(command, {"job-id": job_id, **args})
        try:
            await asyncio.wait_for(asyncio.shield(done), JOB_TIMEOUT)
        except TimeoutError as exc:
            raise QemuError(f"cannot {doing} domain '{entry.name}': QEMU's {command} job did not end within "
                            f"{JOB_TIMEOUT:g} s") from exc
    finally:
        unregister()
        if done.done() and not done.cancelled():
            done.exception()  # retrieved: no "never retrieved" warning when we left early
    jobs = await run.monitor.execute("query-jobs")
    mine = next((j for j in jobs if j.get("id") == job_id), {})
    with contextlib.suppress(QemuError):
        await run.monitor.execute("job-dismiss", {"id": job_id})
    if mine.get("error"):
        raise QemuError(f"cannot {doing} domain '{entry.name}': {mine['error']}")


async def _settle(entry: DomainEntry, run: Running, running: bool) -> None:
    """Wait until the daemon has seen QEMU's STOP/RESUME events, so the answer shows the new state."""
    want = State.RUNNING if running else State.PAUSED
    for _ in range(3):  # the event watcher drains its queue as soon as it runs
        await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT
    while entry.running is run and entry.state is not want and loop.time() < deadline:
        await asyncio.sleep(0.01)
