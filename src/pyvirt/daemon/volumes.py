"""VolumeManager: every vol-* verb of pyvirtd, and finding a volume by name, key or path.

Each verb registers itself as a job on its volume with the pool manager
(``PoolManager.volume_job``) and then runs in a worker thread through the
pool's backend, outside the pool's lock, so a long copy does not block the
pool. Deleting a volume a domain uses is refused: who uses what is read from
the domain table.

Formats come from the FormatBook (what pyvirt recorded when it made or
imported a volume), never from an image's content: a copy reads its source as
recorded, backing chain included, and ``set_format`` is how an owner records
a file pyvirt did not make (it is raw until then).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace

from ..errors import AlreadyExists, InvalidArgument, NotFound, OperationInvalid, PyvirtError
from ..model.storage import BackingStore, ImageLayer, Volume
from ..model.storage_xml import format_volume_xml, parse_volume_xml, sanitize_path, volume_name_problem
from ..storage.base import FormatBook, Reader, Writer, block_size
from ..storage.chain import chain_of
from .domain_table import DomainTable
from .pools import PoolEntry, PoolManager
from .prechecks import same_file
from .results import BackingInfo, VolumeInfo

log = logging.getLogger(__name__)

WIPE_ALGORITHMS = ("zero", "nnsa", "dod", "bsi", "gutmann", "schneier", "pfitzner7", "pfitzner33", "random",
                   "trim")
# Pools whose volume key is not the volume path (found by listing volumes).
_KEYED = ("logical", "disk", "iscsi")


def volume_info(pool: str, vol: Volume) -> VolumeInfo:
    """A volume as the API answers it (sizes in bytes)."""
    backing = BackingInfo(vol.backing.path, vol.backing.format) if vol.backing else None
    return VolumeInfo(vol.name, pool, vol.type, vol.path, vol.key, vol.capacity, vol.allocation, vol.physical,
                      vol.format, backing)


class VolumeManager:
    def __init__(self, pools: PoolManager, domains: DomainTable, book: FormatBook) -> None:
        self.pools = pools
        self.domains = domains
        self.book = book

    def chain(self, path: str, fmt: str, who: str) -> tuple[ImageLayer, ...]:
        """The backing layers QEMU is to open under ``path`` opened as ``fmt`` (blocking: a worker thread).

        From the record when pyvirt made or imported the image, else from its header read as ``fmt``."""
        return chain_of(self.book, path, fmt, who=who, qemu_img=self.pools.config.settings.qemu_img)

    def users(self, pool: str, vol: Volume) -> list[str]:
        """Domains whose defined or running disks use the volume (as a volume disk, or by its path)."""
        found = set()
        for entry in self.domains:
            disks = list(entry.config.devices.disks)
            if entry.running is not None:
                disks += list(entry.running.live.devices.disks)
            for disk in disks:
                named = disk.source_type == "volume" and (disk.source_pool, disk.source_volume) == (pool, vol.name)
                by_path = disk.source is not None and vol.path is not None and \
                    (disk.source == vol.path or same_file(disk.source, vol.path))
                if named or by_path:
                    found.add(entry.name)
        return sorted(found)

    def path_of(self, pool: str, name: str) -> str | None:
        """The path of a volume of an active pool, or None (no such pool or volume, or inactive)."""
        entry = self.pools.pools.get(pool)
        if entry is None or entry.backend is None:
            return None
        try:
            return entry.backend.volume(name).path
        except (PyvirtError, OSError):
            return None

    async def list_volumes(self, ref: str) -> list[VolumeInfo]:
        entry = self.pools.lookup(ref)
        backend = self.pools.need_active(entry)
        vols = await asyncio.to_thread(backend.list_volumes)
        return [volume_info(entry.name, v) for v in vols]

    async def info(self, ref: str, name: str) -> VolumeInfo:
        entry = self.pools.lookup(ref)
        vol = await asyncio.to_thread(self.pools.need_active(entry).volume, name)
        return volume_info(entry.name, vol)

    async def get_xml(self, ref: str, name: str) -> str:
        entry = self.pools.lookup(ref)
        return format_volume_xml(await asyncio.to_thread(self.pools.need_active(entry).volume, name))

    async def create(self, ref: str, xml: str) -> VolumeInfo:
        vol = parse_volume_xml(xml)
        async with self.pools.volume_job(ref, vol.name, "create", exclusive=True) as (entry, backend):
            if vol.backing is not None:
                vol = await asyncio.to_thread(self._resolve_backing, vol, self.pools.active())
            made = await asyncio.to_thread(backend.create_volume, vol)
        log.info("pool %s: volume %s created", entry.name, vol.name)
        return volume_info(entry.name, made)

    def _resolve_backing(self, vol: Volume, active: list[PoolEntry]) -> Volume:
        """A backing store must be a volume pyvirt knows, with its format filled in."""
        assert vol.backing is not None
        try:
            _, base = self._find_sync(vol.backing.path, None, active)
        except NotFound:
            raise NotFound(f"backing store '{vol.backing.path}' of volume '{vol.name}' is not a volume of any "
                           "active pool; give the path of an existing volume (see `pyvirt vol-list POOL`)") from None
        recorded = base.format or "raw"
        if vol.backing.format not in (None, recorded):
            raise InvalidArgument(f"backing store '{vol.backing.path}' of volume '{vol.name}' is recorded as "
                                  f"{recorded}, not {vol.backing.format}; leave its <format> out or write {recorded} "
                                  "(`pyvirt vol-set-format` records another format)")
        return replace(vol, backing=BackingStore(path=base.path or vol.backing.path, format=recorded))

    async def create_from(self, ref: str, xml: str | None, source_pool: str, source: str, *,
                                 new_name: str | None = None, linked: bool = False) -> VolumeInfo:
        """vol-create-from (``xml``) and vol-clone (``new_name``): a full copy, or with ``linked`` a qcow2
        overlay whose backing store is the source (the source is never written)."""
        src_entry = self.pools.lookup(source_pool)
        src_backend = self.pools.need_active(src_entry)
        src = await asyncio.to_thread(src_backend.volume, source)
        if xml is not None:
            vol = parse_volume_xml(_with_capacity(xml, src.capacity))
        elif new_name is not None:
            vol = Volume(name=new_name, capacity=src.capacity, format=None if linked else src.format)
        else:
            raise InvalidArgument("a volume copy needs the new volume's XML or its name")
        if linked:
            if src.type != "file" or src.path is None:
                raise InvalidArgument(f"volume '{src.name}' of pool '{src_entry.name}' is a {src.type} volume; a "
                                      "linked clone needs a file volume as its base (make a full copy instead)")
            if vol.format not in (None, "qcow2"):
                raise InvalidArgument(f"a linked clone is a qcow2 overlay, not {vol.format}; leave the format "
                                      "out or write qcow2")
            vol = replace(vol, format="qcow2", backing=BackingStore(path=src.path, format=src.format or "raw"),
                          capacity=max(vol.capacity, src.capacity))
        same = src_entry.name == self.pools.lookup(ref).name
        if same and vol.name == src.name:
            raise AlreadyExists(f"volume '{vol.name}' already exists in pool '{src_entry.name}'; give the copy "
                                "another name")
        async with contextlib.AsyncExitStack() as stack:
            if not same or vol.name != src.name:
                await stack.enter_async_context(self.pools.volume_job(source_pool, src.name, "copy", exclusive=False))
            job = self.pools.volume_job(ref, vol.name, "create", exclusive=True)
            entry, backend = await stack.enter_async_context(job)
            if linked:
                made = await asyncio.to_thread(backend.create_volume, vol)
            else:
                image = ImageLayer(src.path or "", src.format or "raw", block=src.type == "block")
                who = f"cannot copy volume '{src.name}' of pool '{src_entry.name}'"
                chain = await asyncio.to_thread(self.chain, image.path, image.format, who)
                made = await asyncio.to_thread(backend.create_volume_from, vol, image, chain)
        log.info("pool %s: volume %s %s from %s/%s", entry.name, vol.name, "linked" if linked else "copied",
                 src_entry.name, src.name)
        return volume_info(entry.name, made)

    async def delete(self, ref: str, name: str) -> VolumeInfo:
        async with self.pools.volume_job(ref, name, "delete", exclusive=True) as (entry, backend):
            vol = await asyncio.to_thread(backend.volume, name)
            users = self.users(entry.name, vol)
            if users:
                raise OperationInvalid(f"volume '{name}' of pool '{entry.name}' ({vol.path}) is used by "
                                       f"domain{'s' if len(users) > 1 else ''} {', '.join(users)}; remove the disk "
                                       f"from {'them' if len(users) > 1 else 'it'} (or undefine "
                                       f"{'them' if len(users) > 1 else 'it'}) before deleting the volume")
            await asyncio.to_thread(backend.delete_volume, name)
        log.info("pool %s: volume %s deleted", entry.name, name)
        return volume_info(entry.name, vol)

    async def resize(self, ref: str, name: str, capacity: int, *, delta: bool = False,
                            shrink: bool = False) -> VolumeInfo:
        """vol-resize as libvirt: with ``delta`` the size changes by ``capacity`` (down with ``shrink``)."""
        if capacity < 0:
            raise InvalidArgument(f"the new capacity of volume '{name}' is negative ({capacity}); give a size in "
                                  "bytes (a negative change needs --shrink)")
        async with self.pools.volume_job(ref, name, "resize", exclusive=True) as (entry, backend):
            current = await asyncio.to_thread(backend.volume, name)
            if delta:
                new = current.capacity - min(capacity, current.capacity) if shrink else current.capacity + capacity
            else:
                new = capacity
            if new <= 0:
                raise InvalidArgument(f"volume '{name}' would be {new} bytes after the resize; its size must stay "
                                      "above zero")
            if new < current.capacity and not shrink:
                raise InvalidArgument(f"resizing volume '{name}' from {current.capacity} to {new} bytes shrinks it "
                                      f"and loses the data past the new end; pass --shrink if that is intended")
            resized = await asyncio.to_thread(backend.resize_volume, name, new, shrink)
        log.info("pool %s: volume %s resized to %d bytes", entry.name, name, resized.capacity)
        return volume_info(entry.name, resized)

    async def wipe(self, ref: str, name: str, algorithm: str | None = None) -> VolumeInfo:
        if algorithm not in (None, "zero"):
            if algorithm in WIPE_ALGORITHMS:
                raise InvalidArgument(f"wipe algorithm '{algorithm}' is not supported; pyvirt wipes with zeros "
                                      "(leave --algorithm out or give zero)")
            raise InvalidArgument(f"unknown wipe algorithm '{algorithm}'; use zero")
        async with self.pools.volume_job(ref, name, "wipe", exclusive=True) as (entry, backend):
            await asyncio.to_thread(backend.wipe_volume, name)
            vol = await asyncio.to_thread(backend.volume, name)
        log.info("pool %s: volume %s wiped", entry.name, name)
        return volume_info(entry.name, vol)

    async def set_format(self, ref: str, name: str, fmt: str, backing_format: str | None = None) -> VolumeInfo:
        """vol-set-format: record what a volume is, on its owner's word (a file copied into the pool is raw
        until then). Refused while a running domain has the volume open."""
        async with self.pools.volume_job(ref, name, "set-format", exclusive=True) as (entry, backend):
            # by name and path only: the volume's current record may be what is wrong (a file replaced
            # behind pyvirt's back no longer reads as its recorded format)
            vol = Volume(name=name, capacity=0, path=await asyncio.to_thread(backend.volume_path, name))
            running = [u for u in self.users(entry.name, vol) if self.domains.lookup(u).running is not None]
            if running:
                raise OperationInvalid(f"volume '{name}' of pool '{entry.name}' is open in running domain"
                                       f"{'s' if len(running) > 1 else ''} {', '.join(running)}; shut "
                                       f"{'them' if len(running) > 1 else 'it'} off before recording another format")
            made = await asyncio.to_thread(backend.set_format, name, fmt, backing_format)
        log.info("pool %s: volume %s recorded as %s%s", entry.name, name, made.format or "raw",
                 f" on {made.backing.path} ({made.backing.format})" if made.backing else "")
        return volume_info(entry.name, made)

    async def upload(self, ref: str, name: str, reader: Reader, length: int, offset: int = 0) -> int:
        """vol-upload: ``reader`` is read from a worker thread (the API bridges it to the request body)."""
        _check_offsets(offset, length)
        async with self.pools.volume_job(ref, name, "upload", exclusive=True) as (entry, backend):
            written = await asyncio.to_thread(backend.upload_volume, name, reader, length, offset)
        log.info("pool %s: %d bytes uploaded to volume %s at offset %d", entry.name, written, name, offset)
        return written

    async def download(self, ref: str, name: str, offset: int, length: int | None,
                       start: Callable[[int], Awaitable[Writer]]) -> int:
        """vol-download: checks the range, then ``await start(n)`` gives the writer for n bytes (the API
        sends its response head there), then the backend writes from a worker thread."""
        _check_offsets(offset, length or 0)
        async with self.pools.volume_job(ref, name, "download", exclusive=False) as (_entry, backend):
            vol = await asyncio.to_thread(backend.volume, name)
            size = await asyncio.to_thread(block_size, vol.path or "")
            count = size - offset if length is None else length
            if offset > size or count < 0 or offset + count > size:
                asked = f"{count} bytes at offset {offset} run" if length else f"offset {offset} runs"
                raise InvalidArgument(f"cannot download from volume '{name}': {asked} past its end ({size} bytes); "
                                      "give a smaller --offset/--length")
            writer = await start(count)
            return await asyncio.to_thread(backend.download_volume, name, writer, offset, count)

    # ---------------------------------------------------------------- lookup
    async def find(self, ref: str, pool: str | None = None) -> VolumeInfo:
        """A volume by name in ``pool``, else by key, else by path (virsh's vol lookup)."""
        entry = self.pools.lookup(pool) if pool is not None else None
        if entry is not None:
            self.pools.need_active(entry)
        active = self.pools.active()  # taken here, on the loop: the worker thread reads no shared dict

        def find() -> VolumeInfo:
            found, vol = self._find_sync(ref, entry, active)
            return volume_info(found.name, vol)

        return await asyncio.to_thread(find)

    async def find_by(self, *, path: str | None = None, key: str | None = None) -> VolumeInfo:
        active = self.pools.active()

        def find() -> VolumeInfo:
            if path is not None:
                found = self._by_path(path, active)
                if found is None:
                    raise NotFound(f"no storage volume with matching path '{path}' in any active pool; "
                                   "see `pyvirt vol-list POOL`")
            else:
                found = self._by_key(key or "", active)
                if found is None:
                    raise NotFound(f"no storage volume with matching key '{key}' in any active pool")
            return volume_info(found[0].name, found[1])

        return await asyncio.to_thread(find)

    def _find_sync(self, ref: str, entry: PoolEntry | None, active: list[PoolEntry]) -> tuple[PoolEntry, Volume]:
        """Runs in a worker thread: uses only ``entry`` and the ``active`` snapshot, never self.pools."""
        if entry is not None and entry.backend is not None and volume_name_problem(ref) is None:
            try:
                return entry, entry.backend.volume(ref)
            except (NotFound, InvalidArgument):
                pass
        found = self._by_key(ref, active) or self._by_path(ref, active)
        if found is None:
            where = f"in pool '{entry.name}'" if entry else "with that key or path in any active pool"
            hint = "see `pyvirt vol-list POOL`" if entry else "give its pool (--pool) to find it by name"
            raise NotFound(f"failed to get vol '{ref}': no storage volume {where}; {hint}")
        if entry is not None and found[0] is not entry:
            raise InvalidArgument(f"requested volume '{ref}' is not in pool '{entry.name}' (it is in pool "
                                  f"'{found[0].name}')")
        return found

    def _by_path(self, path: str, active: list[PoolEntry]) -> tuple[PoolEntry, Volume] | None:
        if "/" not in path:
            return None
        parent, name = os.path.split(sanitize_path(path))
        parents = {parent, os.path.realpath(parent)}
        for entry in active:
            backend = entry.backend
            target = entry.live.target.path
            if backend is not None and {target, os.path.realpath(target)} & parents \
                    and volume_name_problem(name) is None:
                try:
                    return entry, backend.volume(name)
                except (NotFound, InvalidArgument):
                    continue
        return None

    def _by_key(self, key: str, active: list[PoolEntry]) -> tuple[PoolEntry, Volume] | None:
        found = self._by_path(key, active) if "/" in key else None  # file volumes: the key is the path
        if found is not None and found[1].key == key:
            return found
        for entry in active:
            backend = entry.backend
            if backend is None or entry.live.type not in _KEYED:
                continue
            try:
                vols = backend.list_volumes()
            except PyvirtError as exc:
                log.warning("pool %s: cannot list volumes: %s", entry.name, exc)
                continue
            for vol in vols:
                if vol.key == key:
                    return entry, vol
        return None


def _check_offsets(offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise InvalidArgument(f"offset {offset} and length {length} must not be negative")


def _with_capacity(xml: str, capacity: int) -> str:
    """vol-create-from may leave <capacity> out (the copy takes the source's); the parser needs it."""
    from ..model.xml_util import parse_xml

    root, _ = parse_xml(xml, "volume XML")
    if root.tag != "volume" or root.find("capacity") is not None:
        return xml
    import xml.etree.ElementTree as ET

    cap = ET.SubElement(root, "capacity", {"unit": "bytes"})
    cap.text = str(capacity)
    return ET.tostring(root, encoding="unicode")
