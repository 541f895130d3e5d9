"""Guest disks on the host: pool volumes resolved before QEMU starts, one writer
per image, and the disk verbs (attach-disk, detach-disk, domblklist,
domblkinfo, domblkstat, change-media, blockresize) on running and defined
domains.

Hot-plug follows libvirt: blockdev-add of the storage and format nodes, then
device_add of the front-end; unplug is device_del, waiting for the guest to
let go (DEVICE_DELETED), then blockdev-del of both nodes. A CD-ROM changes
media through its tray: open, remove the medium and delete its nodes, add
the new nodes and insert them, close. Every node pair has its own number
(the disk's ``source_index``), so no disk's node names ever move to another.

A volume disk keeps <source pool= volume=> in the live XML; its path and
kind (file/block) ride along in the live domain only, and after a daemon
restart they are looked up again in the pool when needed.

No format is ever guessed from an image: a volume disk without <driver type>
takes its volume's recorded format, a file disk without one is raw. A qcow2
disk's backing chain is resolved here (from the records, or from the headers
of images the definer named, formats named) and handed to QEMU explicitly, so
a header a guest wrote never makes QEMU open a host file.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from typing import Protocol

from ..errors import (
    AlreadyExists,
    HostError,
    InvalidArgument,
    NotFound,
    OperationInvalid,
    PyvirtError,
    QemuError,
    UnsupportedConfig,
)
from ..model.domain import Disk, Domain
from ..model.domain_xml import parse_disk_xml
from ..model.storage import COW_FORMATS, ImageLayer
from ..model.validate import DISK_FORMATS, validate_domain
from ..qemu import media
from ..qemu.argv_common import Machine
from ..qemu.argv_disks import (
    DiskNames,
    blockdev_props,
    check_disk,
    device_add_props,
    disk_names,
    frontend,
    names_for,
    scsi_controller_index,
)
from ..qemu.img import info as image_info
from ..qemu.media import matches_qdev
from ..storage.base import block_size
from .domain_table import DomainEntry, DomainTable
from .hostfiles import HostFiles, hotplug_sets, open_disk
from .hotplug import hotplug_slot, machine_of
from .prechecks import check_disk_source, same_file
from .results import BlockInfo, BlockStats, DiskChange, DiskResize, DiskRow, MediaChange, VolumeInfo

log = logging.getLogger(__name__)

UNPLUG_TIMEOUT = 10.0
TRAY_TIMEOUT = 5.0
MEDIA_ACTIONS = ("eject", "insert", "update")
# query-blockstats counter -> virsh's domblkstat field (libvirt's VIR_DOMAIN_BLOCK_STATS_*)
STAT_FIELDS = (
    ("rd_operations", "rd_req"),
    ("rd_bytes", "rd_bytes"),
    ("wr_operations", "wr_req"),
    ("wr_bytes", "wr_bytes"),
    ("flush_operations", "flush_operations"),
    ("rd_total_time_ns", "rd_total_times"),
    ("wr_total_time_ns", "wr_total_times"),
    ("flush_total_time_ns", "flush_total_times"),
)


def writes(disk: Disk) -> bool:
    return not disk.readonly and disk.device != "cdrom"


def has_media(disk: Disk) -> bool:
    return disk.source is not None or disk.source_pool is not None


def source_text(disk: Disk) -> str | None:
    """What domblklist shows as the source: the path, or the volume name of a volume disk (as virsh)."""
    return disk.source_volume if disk.source_type == "volume" else disk.source


def _machine(domain: Domain) -> Machine:
    return Machine(machine_of(domain), domain.os.machine or "q35")


def _prefixed(exc: PyvirtError, prefix: str) -> PyvirtError:
    return type(exc)(f"{prefix}: {exc.message}", detail=exc.detail)


class VolumeResolver(Protocol):
    """What disks need of the storage pools: a volume disk's volume, and its path."""

    async def find(self, ref: str, pool: str | None = None) -> VolumeInfo:
        """A volume by name in ``pool`` (NotFound naming the pool or volume otherwise)."""

    def path_of(self, pool: str, name: str) -> str | None:
        """The path of a volume of an active pool, or None."""

    def chain(self, path: str, fmt: str, who: str) -> tuple[ImageLayer, ...]:
        """The backing layers QEMU is to open under ``path`` opened as ``fmt`` (blocking)."""


class DiskManager:
    def __init__(self, table: DomainTable, volumes: VolumeResolver) -> None:
        self.table = table
        self.volumes = volumes

    # ------------------------------------------------------------ resolution
    async def resolve(self, disk: Disk, who: str) -> Disk:
        """A volume disk with the path and kind of its volume (and the volume's format if none is given)."""
        if disk.source_type != "volume" or disk.source_pool is None:
            return disk
        try:
            vol = await self.volumes.find(disk.source_volume or "", disk.source_pool)
        except PyvirtError as exc:
            raise _prefixed(exc, f"{who}: disk {disk.target_dev}") from None
        if vol.type not in ("file", "block"):
            raise UnsupportedConfig(
                f"{who}: disk {disk.target_dev}: volume '{disk.source_volume}' of pool '{disk.source_pool}' is a "
                f"{vol.type} volume; only file and block volumes can back a disk")
        fmt = disk.format or (vol.format if vol.format in DISK_FORMATS else "raw")
        return replace(disk, source=vol.path, volume_type=vol.type, format=fmt)

    async def with_chain(self, disk: Disk, who: str) -> Disk:
        """A disk with the backing chain QEMU is to be given (empty unless a copy-on-write image has one)."""
        fmt = disk.format or "raw"
        if disk.source is None or fmt not in COW_FORMATS:
            return replace(disk, backing_chain=())
        chain = await asyncio.to_thread(self.volumes.chain, disk.source, fmt, f"{who}: disk {disk.target_dev}")
        return replace(disk, backing_chain=chain)

    def path_of(self, disk: Disk) -> str | None:
        """The host path a disk opens: its source, or (a volume not resolved in this daemon's life) the pool's."""
        if disk.source is not None:
            return disk.source
        if disk.source_type != "volume" or disk.source_pool is None:
            return None
        return self.volumes.path_of(disk.source_pool, disk.source_volume or "")

    async def prepare(self, name: str, domain: Domain, undo: contextlib.AsyncExitStack) -> Domain:
        """Before QEMU starts: volumes resolved and checked, node numbers given, no second writer anywhere.

        Nothing is opened here yet, so nothing goes onto the start's ``undo`` stack."""
        who = f"cannot start domain '{name}'"
        disks = []
        for n, disk in enumerate(domain.devices.disks, start=1):
            if disk.source_type == "volume":
                disk = await self.resolve(disk, who)
                await asyncio.to_thread(check_disk_source, disk, who)
            disk = await self.with_chain(disk, who)
            disks.append(replace(disk, source_index=n if disk.source is not None else None))
        self._check_writers(name, disks, 0, who)
        return replace(domain, devices=replace(domain.devices, disks=tuple(disks)))

    def _open_disks(self, exclude: str) -> Iterator[tuple[str, Disk, str]]:
        """(domain, disk, path) of every disk a running domain other than ``exclude`` has open."""
        for other, run in self.table.running():
            if other.name == exclude:
                continue
            for disk in run.live.devices.disks:
                path = self.path_of(disk)
                if path is not None:
                    yield other.name, disk, path

    def _check_writers(self, name: str, disks: list[Disk], first_new: int, who: str) -> None:
        """``disks[first_new:]`` are about to be opened: refuse an image another disk has open, unless both
        disks only read it or both are <shareable/> (QEMU would refuse too, with its image lock)."""
        for i in range(first_new, len(disks)):
            disk = disks[i]
            if disk.source is None:
                continue
            for j, mine in enumerate(disks):
                path = self.path_of(mine) if j != i else None
                if path is not None and _clash(disk, mine) and same_file(disk.source, path):
                    one, two = sorted((i, j))
                    raise InvalidArgument(
                        f"{who}: disks {disks[one].target_dev} and {disks[two].target_dev} both use '{disk.source}' "
                        "and one of them writes to it; use the image once, or mark both disks <shareable/>")
            for other, theirs, path in self._open_disks(name):
                if _clash(disk, theirs) and same_file(disk.source, path):
                    doing = "writes to" if writes(theirs) else "reads"
                    raise OperationInvalid(
                        f"{who}: disk {disk.target_dev} would use '{disk.source}', which running domain '{other}' "
                        f"{doing} (its disk {theirs.target_dev}); two domains may share an image only if both disks "
                        f"are <shareable/> (or both <readonly/>): stop '{other}' or use another image")

    # --------------------------------------------------------------- queries
    def _find(self, entry: DomainEntry, domain: Domain, ref: str) -> tuple[int, Disk]:
        """A disk by target name, else by source path (virsh's rule for detach-disk, change-media, ...)."""
        for i, disk in enumerate(domain.devices.disks):
            if disk.target_dev == ref:
                return i, disk
        for i, disk in enumerate(domain.devices.disks):
            path = disk.source
            if path is not None and "/" in ref and (path == ref or same_file(path, ref)):
                return i, disk
        raise NotFound(f"No disk found whose source path or target is {ref} in domain '{entry.name}'; see "
                       f"`pyvirt domblklist {entry.name}`")

    def list_disks(self, ref: str, inactive: bool = False) -> list[DiskRow]:
        """domblklist rows: type, device, target, source (a volume disk shows its volume, as virsh)."""
        entry = self.table.lookup(ref)
        return [DiskRow(disk.source_type, disk.device, disk.target_dev, source_text(disk), disk.bus, disk.format,
                        disk.source_pool, disk.source)
                for disk in entry.view(inactive).devices.disks]

    async def block_info(self, ref: str, target: str | None) -> list[BlockInfo]:
        """domblkinfo: capacity (guest-visible), allocation (host bytes used) and physical (host size), in bytes."""
        entry = self.table.lookup(ref)
        domain = entry.view()
        picked = [self._find(entry, domain, target)] if target else list(enumerate(domain.devices.disks))
        virtual: dict[str, int] = {}
        highest: dict[str, int] = {}
        run = entry.running
        if run is not None:
            for row in await run.monitor.query_block():
                image = (row.get("inserted") or {}).get("image") or {}
                if "virtual-size" in image:
                    virtual[str(row.get("qdev"))] = int(image["virtual-size"])
            for row in await run.monitor.query_blockstats():
                highest[str(row.get("qdev"))] = int((row.get("stats") or {}).get("wr_highest_offset", 0))
        names = disk_names(domain)
        out = []
        for i, disk in picked:
            if disk.source is None and disk.source_type == "volume" and disk.source_pool is not None:
                disk = await self.resolve(disk, f"domain '{entry.name}'")  # its path, and its recorded format
            path = disk.source
            dev_id = names[i].device_id
            capacity = next((v for q, v in virtual.items() if matches_qdev(q, dev_id)), None)
            wr_high = next((v for q, v in highest.items() if matches_qdev(q, dev_id)), None)
            sizes = (0, 0, 0) if path is None else await asyncio.to_thread(
                _host_sizes, entry.name, disk, path, capacity, wr_high)
            out.append(BlockInfo(disk.target_dev, *sizes))
        return out

    async def block_stats(self, ref: str, target: str | None) -> BlockStats:
        """domblkstat: I/O counters of one disk, or summed over every disk when ``target`` is None."""
        entry = self.table.lookup(ref)
        run = entry.running
        if run is None:
            raise OperationInvalid(f"domain '{entry.name}' is not running; block statistics exist only while it runs")
        domain = run.live
        names = disk_names(domain)
        picked = [self._find(entry, domain, target)] if target else list(enumerate(domain.devices.disks))
        rows = await run.monitor.query_blockstats()
        totals = {field: 0 for _, field in STAT_FIELDS}
        for i, disk in picked:
            row = next((r for r in rows if matches_qdev(str(r.get("qdev", "")), names[i].device_id)), None)
            if row is None:
                if target:
                    raise NotFound(f"QEMU reports no statistics for disk {disk.target_dev} of domain '{entry.name}'")
                continue
            stats = row.get("stats") or {}
            for qemu_key, field in STAT_FIELDS:
                totals[field] += int(stats.get(qemu_key, 0))
        return BlockStats(device=target or "", **totals)

    # --------------------------------------------------------------- changes
    def _scope(self, entry: DomainEntry, live: bool, config: bool, verb: str) -> tuple[bool, bool]:
        if not live and not config:
            raise InvalidArgument(f"nothing to {verb}: give --live, --config or both")
        if live and entry.running is None:
            if not config:
                raise OperationInvalid(f"domain '{entry.name}' is not running; use --config to {verb} in its "
                                       "definition")
            live = False
        if config and not entry.persistent:
            raise OperationInvalid(f"domain '{entry.name}' is transient: it has no definition to {verb} in; "
                                   "leave out --config")
        return live, config

    async def attach(self, ref: str, xml: str, *, live: bool, config: bool) -> DiskChange:
        """attach-disk / attach-device of a <disk>: hot-plug over QMP and/or add to the definition."""
        entry = self.table.lookup(ref)
        disk = replace(parse_disk_xml(xml), source_index=None, volume_type=None)
        async with self.table.job(entry, "attach a disk to"):
            live, config = self._scope(entry, live, config, "attach the disk")
            new_config = self._with_disk(entry, entry.config, disk) if config else None
            path = (await self._hotplug(entry, disk)).source if live else None
            if new_config is not None:
                self.table.set_config(entry, new_config)
        return DiskChange(disk.target_dev, source_text(disk), live, config, path)

    def _with_disk(self, entry: DomainEntry, domain: Domain, disk: Disk) -> Domain:
        if any(d.target_dev == disk.target_dev for d in domain.devices.disks):
            raise AlreadyExists(f"domain '{entry.name}' already has a disk with target {disk.target_dev}; choose "
                                f"another target (see `pyvirt domblklist {entry.name}`)")
        new = replace(domain, devices=replace(domain.devices, disks=(*domain.devices.disks, disk)))
        validate_domain(new)
        return new

    async def detach(self, ref: str, target: str, *, live: bool, config: bool) -> DiskChange:
        """detach-disk (by target or source path) / detach-device of a <disk> (by its target)."""
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "detach a disk from"):
            live, config = self._scope(entry, live, config, "detach the disk")
            found: Disk | None = None
            if config:
                self._find(entry, entry.config, target)  # before any change: all or nothing
            if live:
                run = entry.running
                assert run is not None
                index_live, disk = self._find(entry, run.live, target)
                await self._unplug(entry, index_live, disk)
                found = disk
            if config:
                index, conf_disk = self._find(entry, entry.config, target)
                disks = tuple(d for i, d in enumerate(entry.config.devices.disks) if i != index)
                self.table.set_config(entry, replace(entry.config, devices=replace(entry.config.devices,
                                                                                   disks=disks)))
                found = found or conf_disk
        assert found is not None  # _scope made live or config true
        return DiskChange(found.target_dev, source_text(found), live, config)

    async def change_media(self, ref: str, target: str, action: str, source: str | None = None, *, live: bool,
                           config: bool, force: bool = False, block: bool = False) -> MediaChange:
        """change-media: eject, insert or update the medium of a CD-ROM (live through its tray, and/or config)."""
        if action not in MEDIA_ACTIONS:
            raise InvalidArgument(f"media action '{action}' is unknown; use one of {', '.join(MEDIA_ACTIONS)}")
        if action == "insert" and not source:
            raise InvalidArgument("inserting media needs a source (the path of the image or device)")
        if action == "eject" and source:
            raise InvalidArgument("--eject takes no source; use --update to change the media")
        if source is not None and not source.startswith("/"):
            raise InvalidArgument(f"media source '{source}' is not an absolute path; write the full path")
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "change the media of"):
            live, config = self._scope(entry, live, config, "change the media")
            changes: list[tuple[Domain, int, Disk, Disk]] = []
            for domain in ([entry.running.live] if live and entry.running else []) + ([entry.config] if config else []):
                index, disk = self._find(entry, domain, target)
                changes.append((domain, index, disk, _new_media(entry, disk, action, source, block)))
            if config:
                _, index, _, new = changes[-1]
                validate_domain(self._replace_disk(entry.config, index, new))
            if live:
                _, index, old, new = changes[0]
                await self._swap_media(entry, index, old, new, force)
            if config:
                _, index, _, new = changes[-1]
                self.table.set_config(entry, self._replace_disk(entry.config, index, new))
        new = changes[0][3]
        return MediaChange(new.target_dev, action, source_text(new), live, config)

    async def resize(self, ref: str, target: str, size: int) -> DiskResize:
        """blockresize: grow the image of a running domain's disk; the guest sees the new capacity."""
        entry = self.table.lookup(ref)
        if size <= 0:
            raise InvalidArgument(f"new size {size} must be positive")
        async with self.table.job(entry, "resize a disk of"):
            run = entry.running
            if run is None:
                raise OperationInvalid(f"domain '{entry.name}' is not running; resize the image itself with "
                                       "`pyvirt vol-resize` or `pyvirt img resize`")
            index, disk = self._find(entry, run.live, target)
            names = disk_names(run.live)[index]
            if names.format_node is None:
                raise OperationInvalid(f"disk {disk.target_dev} of domain '{entry.name}' has no media to resize")
            if disk.device == "cdrom" or disk.readonly:
                raise OperationInvalid(f"disk {disk.target_dev} of domain '{entry.name}' is read-only; it cannot be "
                                       "resized")
            size = -(-size // 512) * 512  # QEMU takes whole sectors
            current = next((int(((r.get("inserted") or {}).get("image") or {}).get("virtual-size", 0))
                            for r in await run.monitor.query_block()
                            if matches_qdev(str(r.get("qdev", "")), names.device_id)), 0)
            if current and size < current:
                raise InvalidArgument(
                    f"disk {disk.target_dev} of domain '{entry.name}' is {current} bytes; shrinking it to {size} "
                    "under a running guest would cut off its data, so pyvirt only grows disks")
            await run.monitor.block_resize(names.format_node, size)
        return DiskResize(disk.target_dev, size)

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _replace_disk(domain: Domain, index: int, disk: Disk | None) -> Domain:
        disks = list(domain.devices.disks)
        if disk is None:
            del disks[index]
        else:
            disks[index] = disk
        return replace(domain, devices=replace(domain.devices, disks=tuple(disks)))

    def _update_live(self, entry: DomainEntry, index: int | None, disk: Disk | None) -> None:
        """Replace (index, disk), append (None, disk) or remove (index, None) a disk of the live domain."""
        run = entry.running
        assert run is not None
        live = _pin_indexes(run.live)
        if index is None:
            assert disk is not None
            live = replace(live, devices=replace(live.devices, disks=(*live.devices.disks, disk)))
        else:
            live = self._replace_disk(live, index, disk)
        run.live = live
        self.table.record_runtime(entry)

    @staticmethod
    def _next_index(live: Domain) -> int:
        used = [int(n.storage_node.split("-")[1]) for n in disk_names(live) if n.storage_node is not None]
        return max(used, default=0) + 1

    async def _open_medium(self, entry: DomainEntry, disk: Disk, who: str) -> Disk:
        """The disk with a resolved, checked source, its own node number, and no clash with another writer."""
        run = entry.running
        assert run is not None
        disk = await self.resolve(disk, who)
        await asyncio.to_thread(check_disk_source, disk, who)
        disk = await self.with_chain(disk, who)
        disks = [*run.live.devices.disks, disk]
        self._check_writers(entry.name, disks, len(disks) - 1, who)
        return replace(disk, source_index=self._next_index(run.live) if disk.source is not None else None)

    async def _add_nodes(self, entry: DomainEntry, disk: Disk, names: DiskNames) -> None:
        """Open the disk's image and backing layers here and hand QEMU the fds (it may not open host
        paths), then its nodes."""
        run = entry.running
        assert run is not None and disk.source is not None and disk.source_index is not None
        sets = hotplug_sets(disk.source_index)
        files = HostFiles(next_set=sets.start)
        try:
            filename = await asyncio.to_thread(open_disk, files, disk)
            try:
                for passed in files.add_fds:
                    await run.monitor.add_fd(passed.fd, passed.set, passed.opaque)
                await media.add_nodes(run.monitor, *blockdev_props(disk, names, filename,
                                                                   lambda path: files.paths[path]))
            except BaseException:
                await self._remove_fd_sets(entry, range(sets.start, files.next_set))
                raise
        finally:
            files.close()  # QEMU holds its own copies

    async def _del_nodes(self, entry: DomainEntry, names: DiskNames, disk: Disk) -> None:
        """Close a disk's nodes; a failure leaves them open in QEMU (logged), the disk is gone all the same."""
        run = entry.running
        assert run is not None
        nodes = [n for n in (names.format_node, names.storage_node) if n is not None]
        await media.del_nodes(run.monitor, nodes, f"domain {entry.name}")
        if names.storage_node is not None:  # the fds of a hot-plugged disk (a started one's sets stay, unused)
            first = hotplug_sets(int(names.storage_node.split("-")[1])).start
            await self._remove_fd_sets(entry, range(first, first + 1 + len(disk.backing_chain)))

    async def _remove_fd_sets(self, entry: DomainEntry, sets: range) -> None:
        run = entry.running
        assert run is not None
        for set_id in sets:
            with contextlib.suppress(QemuError):  # a set QEMU never got, or already gave up
                await run.monitor.remove_fd(set_id)

    async def _hotplug(self, entry: DomainEntry, disk: Disk) -> Disk:
        run = entry.running
        assert run is not None
        who = f"cannot attach disk {disk.target_dev} to domain '{entry.name}'"
        self._with_disk(entry, run.live, disk)  # target free, and the disk valid in the live domain
        if disk.bus in ("sata", "ide", "nvme"):
            ctrl = {"sata": "AHCI", "ide": "IDE", "nvme": "NVMe"}[disk.bus]
            raise OperationInvalid(f"{who}: {disk.bus.upper()} disks cannot be hot-plugged (QEMU's "
                                   f"{ctrl} controller has no hot-plug); use "
                                   "bus virtio or scsi, or --config and restart the domain")
        if disk.address is not None:
            raise UnsupportedConfig(f"{who}: a hot-plugged disk takes no <address>: pyvirt picks a free place; "
                                    "remove it, or use --config")
        check_disk(disk, _machine(run.live))
        disk = await self._open_medium(entry, disk, who)
        placement: list[tuple[str, str]] = []
        if disk.bus == "virtio":
            placement, address = hotplug_slot(run.live, who)
            disk = replace(disk, address=address)
        else:
            await self._need_scsi_controller(entry, disk, who)
        names = names_for(disk, 0)
        front = frontend(disk, names, "virtio-blk-pci", tuple(placement))
        if disk.source is not None:
            await self._add_nodes(entry, disk, names)
        try:
            await run.monitor.device_add(**device_add_props(front))
        except BaseException:
            await self._del_nodes(entry, names, disk)
            raise
        self._update_live(entry, None, disk)
        return disk

    async def _need_scsi_controller(self, entry: DomainEntry, disk: Disk, who: str) -> None:
        run = entry.running
        assert run is not None
        ctrl = f"scsi{scsi_controller_index(disk)}"
        present = {str(p.get("name")) for p in await run.monitor.qom_list("/machine/peripheral")}
        if ctrl not in present:
            raise OperationInvalid(f"{who}: the domain has no SCSI controller {ctrl} to plug the disk into; add "
                                   "<controller type='scsi' model='virtio-scsi'/> to its definition and restart it, "
                                   "or use bus virtio")

    async def _unplug(self, entry: DomainEntry, index: int, disk: Disk) -> None:
        run = entry.running
        assert run is not None
        if disk.bus in ("sata", "ide", "nvme"):
            raise OperationInvalid(f"cannot detach disk {disk.target_dev} from running domain '{entry.name}': "
                                   f"{disk.bus.upper()} disks cannot be hot-unplugged; use --config and restart it")
        names = disk_names(run.live)[index]
        if not await run.monitor.unplug(names.device_id, UNPLUG_TIMEOUT):
            raise OperationInvalid(
                f"domain '{entry.name}': the guest did not release disk {disk.target_dev} within "
                f"{UNPLUG_TIMEOUT:g} s (does it support hot-unplug?); it may still go later")
        self._update_live(entry, index, None)
        await self._del_nodes(entry, names, disk)

    async def _swap_media(self, entry: DomainEntry, index: int, old: Disk, new: Disk, force: bool) -> None:
        run = entry.running
        assert run is not None
        who = f"cannot change the media of disk {old.target_dev} of domain '{entry.name}'"
        old_names = disk_names(run.live)[index]
        if has_media(new):
            new = await self._open_medium(entry, new, who)
        new_names = names_for(new, 0)
        if old_names.format_node is None and new_names.format_node is None:
            return  # an empty drive stays empty
        await self._open_tray(entry, old_names.device_id, force, who)
        if old_names.format_node is not None:
            await run.monitor.blockdev_remove_medium(old_names.device_id)
            self._update_live(entry, index, _emptied(old))
            await self._del_nodes(entry, old_names, old)
        if new_names.format_node is not None:
            await self._add_nodes(entry, new, new_names)
            try:
                await run.monitor.blockdev_insert_medium(new_names.device_id, new_names.format_node)
            except BaseException:
                await self._del_nodes(entry, new_names, new)
                raise
        with contextlib.suppress(QemuError):  # an already closed tray is fine
            await run.monitor.blockdev_close_tray(new_names.device_id)
        self._update_live(entry, index, new)

    async def _open_tray(self, entry: DomainEntry, device_id: str, force: bool, who: str) -> None:
        """Open the tray; without ``force`` a guest that locked it is asked and gets TRAY_TIMEOUT to agree."""
        run = entry.running
        assert run is not None
        if not await media.open_tray(run.monitor, device_id, force=force, timeout=TRAY_TIMEOUT):
            raise OperationInvalid(f"{who}: the guest keeps the tray locked and did not open it within "
                                   f"{TRAY_TIMEOUT:g} s; eject the media in the guest, or use --force")


def _clash(a: Disk, b: Disk) -> bool:
    """Two disks on one image conflict when one of them writes, unless both are <shareable/>."""
    return (writes(a) or writes(b)) and not (a.shareable and b.shareable)


def _pin_indexes(live: Domain) -> Domain:
    """Give every disk with media its current node number, so removing one disk renames no other."""
    disks = tuple(replace(d, source_index=int(n.storage_node.split("-")[1]))
                  if n.storage_node is not None and d.source_index is None else d
                  for d, n in zip(live.devices.disks, disk_names(live), strict=True))
    return replace(live, devices=replace(live.devices, disks=disks))


def _new_media(entry: DomainEntry, disk: Disk, action: str, source: str | None, block: bool) -> Disk:
    """The CD-ROM after eject/insert/update (virsh's rules and messages)."""
    if disk.device != "cdrom":
        raise OperationInvalid(f"The disk device '{disk.target_dev}' of domain '{entry.name}' is not removable; "
                               "only a cdrom changes media")
    present = has_media(disk)
    if action == "eject" and not present:
        raise OperationInvalid(f"The disk device '{disk.target_dev}' doesn't have media")
    if action == "insert" and present:
        raise OperationInvalid(f"The disk device '{disk.target_dev}' already has media; use --update to change it")
    empty = _emptied(disk)
    if source is None:
        return empty
    return replace(empty, source_type="block" if block else "file", source=source)


def _emptied(disk: Disk) -> Disk:
    return replace(disk, source=None, source_pool=None, source_volume=None, volume_type=None, source_index=None)


def _host_sizes(name: str, disk: Disk, path: str, capacity: int | None, wr_high: int | None) -> tuple[int, int, int]:
    """(capacity, allocation, physical) as libvirt's virDomainGetBlockInfo: the guest's size, the host bytes
    in use (du; for a qcow2 on a block device its highest written offset), the container's size (ls)."""
    try:
        st = os.stat(path)
        is_block = stat.S_ISBLK(st.st_mode)
        physical = block_size(path) if is_block else st.st_size
    except OSError as exc:
        raise HostError(f"domain '{name}': cannot read disk {disk.target_dev} source '{path}': "
                        f"{exc.strerror}") from None
    if is_block:
        allocation = wr_high if disk.format == "qcow2" and wr_high else physical
    else:
        allocation = st.st_blocks * 512
    if capacity is None:
        capacity = physical
        if disk.format not in (None, "raw"):
            capacity = image_info(path, disk.format, force_share=True).virtual_size
    return capacity, allocation, physical
