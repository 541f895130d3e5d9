"""PoolManager: every pool-* and vol-* verb of pyvirtd.

Definitions live in the store (kind "pool"); an active pool has a runtime
record holding the definition it was started with, so a restarted daemon
reattaches when the host still shows the pool (directory present, filesystem
mounted, VG active) and shows it inactive otherwise. The host work is done by
the pool backends (``pyvirt.storage``), always in a worker thread.

Concurrency: each pool has one lock, held for pool-level changes (define,
build, start, destroy, delete, undefine) and while a volume job is being
registered. Volume jobs (create, copy, resize, wipe, upload, download) then
run outside the lock, recorded in ``PoolEntry.jobs`` so that a pool is not
stopped under a running copy and one volume is not written by two jobs.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..config import Config
from ..errors import AlreadyExists, InvalidArgument, NotFound, OperationBusy, OperationInvalid, PyvirtError
from ..model.ids import new_uuid
from ..model.storage import BackingStore, Pool, PoolInfo, PoolTarget, Volume
from ..model.storage_xml import (
    format_pool_xml,
    format_volume_xml,
    parse_pool_xml,
    parse_volume_xml,
    sanitize_path,
    volume_name_problem,
)
from ..state.store import ObjectRow, Store
from ..storage.base import PoolBackend, Reader, Writer, backend_for, block_size

log = logging.getLogger(__name__)

KIND = "pool"
LOCK_WAIT_SECONDS = 30.0
DEFAULT_CREATED = "default_pool_defined"
DEFAULT_POOL = "default"
WIPE_ALGORITHMS = ("zero", "nnsa", "dod", "bsi", "gutmann", "schneier", "pfitzner7", "pfitzner33", "random",
                   "trim")
# Pools whose target path is their own (a directory or /dev/VG): two pools may not share one.
_OWN_TARGET = ("dir", "fs", "netfs", "logical")
# Pools whose volume key is not the volume path (found by listing volumes).
_KEYED = ("logical", "disk", "iscsi")
# Volume domain users: path -> names of the domains whose disks use it.
UsersFn = Callable[[str], list[str]]


@dataclass(eq=False)
class PoolEntry:
    uuid: str
    name: str
    config: Pool  # the persistent (or transient) definition
    persistent: bool
    autostart: bool = False
    backend: PoolBackend | None = None  # set while active, made from the definition it was started with
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    jobs: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # volume -> [(verb, exclusive)]

    @property
    def active(self) -> bool:
        return self.backend is not None

    @property
    def live(self) -> Pool:
        return self.backend.pool if self.backend is not None else self.config

    def summary(self, info: PoolInfo | None = None, state: str | None = None) -> dict[str, Any]:
        return {
            "name": self.name, "uuid": self.uuid, "type": self.live.type, "active": self.active,
            "state": state or ("running" if self.active else "inactive"), "persistent": self.persistent,
            "autostart": self.autostart, "target": self.live.target.path,
            "capacity": info.capacity if info else None, "allocation": info.allocation if info else None,
            "available": info.available if info else None,
        }


def volume_dict(pool: str, vol: Volume) -> dict[str, Any]:
    """A volume as the API answers it (sizes in bytes)."""
    backing = {"path": vol.backing.path, "format": vol.backing.format} if vol.backing else None
    return {"name": vol.name, "pool": pool, "type": vol.type, "path": vol.path, "key": vol.key,
            "capacity": vol.capacity, "allocation": vol.allocation, "physical": vol.physical,
            "format": vol.format, "backing": backing}



class PoolManager:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.pools: dict[str, PoolEntry] = {}
        self.users: UsersFn = lambda path: []

    def _backend(self, pool: Pool) -> PoolBackend:
        return backend_for(pool, self.config.settings.qemu_img)

    # ------------------------------------------------------------------ load
    async def load(self) -> None:
        runtimes = self.store.object_runtimes(KIND)
        for row in self.store.objects(KIND):
            try:
                pool = parse_pool_xml(row.xml)
            except PyvirtError:
                log.exception("stored definition of pool %s no longer parses; skipping it", row.name)
                continue
            entry = PoolEntry(row.uuid, row.name, pool, row.persistent, row.autostart)
            self.pools[entry.name] = entry
            data = runtimes.get(row.uuid)
            if data is not None:
                await self._reattach(entry, data)
            elif not entry.persistent:
                self._forget(entry)
        if self.config.settings.extra.get("default_pool", True) and self.store.get_meta(DEFAULT_CREATED) is None:
            await self._define_default()

    async def _reattach(self, entry: PoolEntry, data: dict[str, Any]) -> None:
        try:
            live = parse_pool_xml(str(data["live_xml"])) if data.get("live_xml") else entry.config
            backend = self._backend(live)
            active = await asyncio.to_thread(backend.is_active)
        except PyvirtError as exc:
            log.error("pool %s: cannot check it on the host: %s; it is shown inactive", entry.name, exc)
            active = False
        if not active:
            log.info("pool %s: not active on the host since the last daemon run; marked inactive", entry.name)
            self.store.delete_object_runtime(KIND, entry.uuid)
            if not entry.persistent:
                self._forget(entry)
            return
        entry.backend = backend
        log.info("pool %s: reattached (%s)", entry.name, live.target.path)

    async def _define_default(self) -> None:
        """The `default` dir pool at the images directory: defined, built, started, autostarted."""
        target = str(self.config.paths.images)
        taken = self._target_user(target, exclude=None)
        if DEFAULT_POOL not in self.pools and taken is None:
            pool = Pool(name=DEFAULT_POOL, type="dir", target=PoolTarget(path=target), uuid=new_uuid())
            entry = PoolEntry(pool.uuid, pool.name, pool, persistent=True, autostart=True)
            self.pools[entry.name] = entry
            self._store(entry)
            log.info("pool %s: defined at %s", entry.name, target)
            try:
                async with _lock(entry, "start"):
                    await self._build_locked(entry, overwrite=False)
                    await self._start_locked(entry)
            except PyvirtError as exc:
                log.error("pool %s: cannot start it: %s", entry.name, exc)
        elif taken is not None:
            log.info("the images directory %s is already pool '%s'; no default pool defined", target, taken)
        self.store.set_meta(DEFAULT_CREATED, "1")

    async def autostart(self) -> None:
        """Start autostart pools once per host boot (before domains' autostart: their disks live here)."""
        marker = self.config.paths.run / "pool-autostarted"
        if marker.exists():
            return
        marker.touch()
        for entry in list(self.pools.values()):
            if entry.autostart and not entry.active:
                try:
                    await self.start(entry.name)
                except PyvirtError as exc:
                    log.error("autostart of pool %s failed: %s", entry.name, exc)

    # --------------------------------------------------------------- queries
    def lookup(self, ref: str) -> PoolEntry:
        entry = self.pools.get(ref) or next((e for e in self.pools.values() if e.uuid == ref.lower()), None)
        if entry is None:
            raise NotFound(f"failed to get pool '{ref}': no storage pool with matching name or uuid; "
                           "see `pyvirt pool-list --all`")
        return entry

    def _need_active(self, entry: PoolEntry) -> PoolBackend:
        if entry.backend is None:
            raise OperationInvalid(f"storage pool '{entry.name}' is not active; start it with "
                                   f"`pyvirt pool-start {entry.name}`")
        return entry.backend

    @staticmethod
    def _info_or_state(entry: PoolEntry) -> tuple[PoolInfo | None, str | None]:
        if entry.backend is None:
            return None, None
        try:
            return entry.backend.info(), None
        except PyvirtError as exc:
            log.warning("pool %s: cannot read its sizes: %s", entry.name, exc)
            return None, "inaccessible"
        except OSError as exc:
            log.warning("pool %s: cannot read its sizes: %s", entry.name, exc)
            return None, "inaccessible"

    async def list(self) -> list[dict[str, Any]]:
        entries = sorted(self.pools.values(), key=lambda e: e.name)

        def collect() -> list[dict[str, Any]]:
            return [e.summary(*self._info_or_state(e)) for e in entries]

        return await asyncio.to_thread(collect)

    async def info(self, ref: str) -> dict[str, Any]:
        entry = self.lookup(ref)
        info, state = await asyncio.to_thread(self._info_or_state, entry)
        return entry.summary(info, state)

    async def get_xml(self, ref: str, inactive: bool = False) -> str:
        entry = self.lookup(ref)
        if inactive or not entry.active:
            return format_pool_xml(entry.config)
        info, _ = await asyncio.to_thread(self._info_or_state, entry)
        return format_pool_xml(entry.live, info)

    # ------------------------------------------------------------ definition
    def _target_user(self, path: str, exclude: str | None) -> str | None:
        """The pool (other than ``exclude``) whose target is ``path``, if any."""
        want = {sanitize_path(path), os.path.realpath(path)}
        for e in self.pools.values():
            if e.name == exclude:
                continue
            for pool in {id(e.config): e.config, id(e.live): e.live}.values():
                if pool.type in _OWN_TARGET and {pool.target.path, os.path.realpath(pool.target.path)} & want:
                    return e.name
        return None

    def _check_conflicts(self, pool: Pool) -> None:
        if pool.type in _OWN_TARGET:
            other = self._target_user(pool.target.path, exclude=pool.name)
            if other is not None:
                raise AlreadyExists(f"target path '{pool.target.path}' of pool '{pool.name}' is already used by pool "
                                    f"'{other}'; give the new pool another <target><path> (pool-define-as "
                                    "--target DIR)")
        mine = {os.path.realpath(d) for d in pool.source.devices}
        for e in self.pools.values():
            if e.name == pool.name:
                continue
            shared = mine & {os.path.realpath(d) for p in (e.config, e.live) for d in p.source.devices}
            if shared:
                raise AlreadyExists(f"source device '{sorted(shared)[0]}' of pool '{pool.name}' is already used by "
                                    f"pool '{e.name}'; one device can belong to one pool only")

    def _check_free(self, pool: Pool) -> PoolEntry | None:
        by_name = self.pools.get(pool.name)
        by_uuid = next((e for e in self.pools.values() if pool.uuid and e.uuid == pool.uuid), None)
        if by_name is not None and pool.uuid and by_name.uuid != pool.uuid:
            raise AlreadyExists(f"pool '{pool.name}' already exists with uuid {by_name.uuid}; choose another name, "
                                "or undefine it first")
        if by_uuid is not None and by_uuid.name != pool.name:
            raise AlreadyExists(f"pool '{by_uuid.name}' already exists with uuid {pool.uuid}; give the new pool "
                                "another uuid (or none, and one is generated)")
        return by_name

    async def define(self, xml: str) -> PoolEntry:
        pool = parse_pool_xml(xml)
        existing = self._check_free(pool)
        pool = replace(pool, uuid=pool.uuid or (existing.uuid if existing else new_uuid()))
        self._check_conflicts(pool)
        if existing is not None:
            async with _lock(existing, "define"):
                if existing.active and existing.live.type != pool.type:
                    raise OperationInvalid(f"pool '{pool.name}' is active as a {existing.live.type} pool; destroy "
                                           f"it before redefining it as a {pool.type} pool")
                existing.config, existing.persistent = pool, True
                self._store(existing)
            log.info("pool %s: definition updated", pool.name)
            return existing
        entry = PoolEntry(pool.uuid, pool.name, pool, persistent=True)
        self.pools[entry.name] = entry
        self._store(entry)
        log.info("pool %s: defined (%s at %s)", entry.name, pool.type, pool.target.path)
        return entry

    async def create(self, xml: str, build: bool = False, overwrite: bool = False) -> PoolEntry:
        """pool-create: a transient pool, started at once (built first with ``build``)."""
        pool = parse_pool_xml(xml)
        if self._check_free(pool) is not None:
            raise AlreadyExists(f"pool '{pool.name}' already exists; start it with `pyvirt pool-start {pool.name}`")
        pool = replace(pool, uuid=pool.uuid or new_uuid())
        self._check_conflicts(pool)
        entry = PoolEntry(pool.uuid, pool.name, pool, persistent=False)
        self.pools[entry.name] = entry
        try:
            async with _lock(entry, "create"):
                if build:
                    await self._build_locked(entry, overwrite)
                await self._start_locked(entry)
                self._store(entry)
        except BaseException:
            self._forget(entry)
            raise
        return entry

    async def set_xml(self, ref: str, xml: str) -> PoolEntry:
        """pool-edit: replace the definition (an active pool runs on with the one it started with)."""
        entry = self.lookup(ref)
        pool = parse_pool_xml(xml)
        if pool.name != entry.name:
            raise InvalidArgument(f"pool-edit cannot rename pool '{entry.name}' to '{pool.name}'; define a new "
                                  "pool instead")
        if pool.uuid and pool.uuid != entry.uuid:
            raise InvalidArgument(f"pool-edit cannot change the uuid of pool '{entry.name}'")
        return await self.define(format_pool_xml(replace(pool, uuid=entry.uuid)))

    async def undefine(self, ref: str) -> PoolEntry:
        entry = self.lookup(ref)
        async with _lock(entry, "undefine"):
            if entry.active:
                raise OperationInvalid(f"storage pool '{entry.name}' is still active; stop it first with "
                                       f"`pyvirt pool-destroy {entry.name}`")
            if not entry.persistent:
                raise OperationInvalid(f"pool '{entry.name}' is transient; it goes away when destroyed")
            self._forget(entry)
        log.info("pool %s: undefined", entry.name)
        return entry

    async def set_autostart(self, ref: str, enabled: bool) -> PoolEntry:
        entry = self.lookup(ref)
        if not entry.persistent:
            raise OperationInvalid(f"cannot set autostart for transient pool '{entry.name}'; define it first "
                                   "with `pyvirt pool-define`")
        async with _lock(entry, "autostart"):
            entry.autostart = enabled
            self._store(entry)
        return entry

    # ------------------------------------------------------------- lifecycle
    async def build(self, ref: str, overwrite: bool = False) -> PoolEntry:
        entry = self.lookup(ref)
        async with _lock(entry, "build"):
            await self._build_locked(entry, overwrite)
        return entry

    async def _build_locked(self, entry: PoolEntry, overwrite: bool) -> None:
        if entry.active:
            raise OperationInvalid(f"storage pool '{entry.name}' is already active; pool-build works on an "
                                   "inactive pool")
        await asyncio.to_thread(self._backend(entry.config).build, overwrite)
        log.info("pool %s: built", entry.name)

    async def start(self, ref: str, build: bool = False, overwrite: bool = False) -> PoolEntry:
        entry = self.lookup(ref)
        async with _lock(entry, "start"):
            if build:
                await self._build_locked(entry, overwrite)
            await self._start_locked(entry)
        return entry

    async def _start_locked(self, entry: PoolEntry) -> None:
        if entry.active:
            raise OperationInvalid(f"storage pool '{entry.name}' is already active")
        backend = self._backend(entry.config)
        await asyncio.to_thread(backend.start)
        entry.backend = backend
        self._record(entry)
        log.info("pool %s: started", entry.name)

    async def destroy(self, ref: str) -> PoolEntry:
        entry = self.lookup(ref)
        async with _lock(entry, "destroy"):
            backend = self._need_active(entry)
            self._need_idle(entry, "destroy")
            await asyncio.to_thread(backend.stop)
            entry.backend = None
            self.store.delete_object_runtime(KIND, entry.uuid)
            log.info("pool %s: stopped", entry.name)
            if not entry.persistent:
                self._forget(entry)
        return entry

    async def delete(self, ref: str) -> PoolEntry:
        """pool-delete: remove what pool-build made (the pool stays defined)."""
        entry = self.lookup(ref)
        async with _lock(entry, "delete"):
            if entry.active:
                raise OperationInvalid(f"storage pool '{entry.name}' is still active; stop it first with "
                                       f"`pyvirt pool-destroy {entry.name}`")
            await asyncio.to_thread(self._backend(entry.config).delete)
        log.info("pool %s: deleted", entry.name)
        return entry

    async def refresh(self, ref: str) -> PoolEntry:
        """pool-refresh: volumes are read live; this checks the pool is still there on the host."""
        entry = self.lookup(ref)
        async with _lock(entry, "refresh"):
            backend = self._need_active(entry)
            if not await asyncio.to_thread(backend.is_active):
                if not entry.jobs:
                    entry.backend = None
                    self.store.delete_object_runtime(KIND, entry.uuid)
                    if not entry.persistent:
                        self._forget(entry)
                raise OperationInvalid(f"pool '{entry.name}' is no longer there on the host (its target "
                                       f"{entry.live.target.path} is gone or unmounted); it is marked inactive: "
                                       f"start it again with `pyvirt pool-start {entry.name}`")
            await asyncio.to_thread(backend.info)
        return entry

    # --------------------------------------------------------------- volumes
    async def list_volumes(self, ref: str) -> list[dict[str, Any]]:
        entry = self.lookup(ref)
        backend = self._need_active(entry)
        vols = await asyncio.to_thread(backend.list_volumes)
        return [volume_dict(entry.name, v) for v in vols]

    async def volume_info(self, ref: str, name: str) -> dict[str, Any]:
        entry = self.lookup(ref)
        vol = await asyncio.to_thread(self._need_active(entry).volume, name)
        return volume_dict(entry.name, vol)

    async def volume_xml(self, ref: str, name: str) -> str:
        entry = self.lookup(ref)
        return format_volume_xml(await asyncio.to_thread(self._need_active(entry).volume, name))

    async def create_volume(self, ref: str, xml: str) -> dict[str, Any]:
        vol = parse_volume_xml(xml)
        async with self._job(ref, vol.name, "create", exclusive=True) as (entry, backend):
            if vol.backing is not None:
                vol = await asyncio.to_thread(self._resolve_backing, vol, self._active())
            made = await asyncio.to_thread(backend.create_volume, vol)
        log.info("pool %s: volume %s created", entry.name, vol.name)
        return volume_dict(entry.name, made)

    def _resolve_backing(self, vol: Volume, active: list[PoolEntry]) -> Volume:
        """A backing store must be a volume pyvirt knows, with its format filled in."""
        assert vol.backing is not None
        try:
            _, base = self._find_sync(vol.backing.path, None, active)
        except NotFound:
            raise NotFound(f"backing store '{vol.backing.path}' of volume '{vol.name}' is not a volume of any "
                           "active pool; give the path of an existing volume (see `pyvirt vol-list POOL`)") from None
        fmt = vol.backing.format or base.format or "raw"
        return replace(vol, backing=BackingStore(path=base.path or vol.backing.path, format=fmt))

    async def create_volume_from(self, ref: str, xml: str | None, source_pool: str, source: str, *,
                                 new_name: str | None = None, linked: bool = False) -> dict[str, Any]:
        """vol-create-from (``xml``) and vol-clone (``new_name``): a full copy, or with ``linked`` a qcow2
        overlay whose backing store is the source (the source is never written)."""
        src_entry = self.lookup(source_pool)
        src_backend = self._need_active(src_entry)
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
        same = src_entry.name == self.lookup(ref).name
        if same and vol.name == src.name:
            raise AlreadyExists(f"volume '{vol.name}' already exists in pool '{src_entry.name}'; give the copy "
                                "another name")
        async with contextlib.AsyncExitStack() as stack:
            if not same or vol.name != src.name:
                await stack.enter_async_context(self._job(source_pool, src.name, "copy", exclusive=False))
            entry, backend = await stack.enter_async_context(self._job(ref, vol.name, "create", exclusive=True))
            if linked:
                made = await asyncio.to_thread(backend.create_volume, vol)
            else:
                made = await asyncio.to_thread(backend.create_volume_from, vol, src.path or "", src.format)
        log.info("pool %s: volume %s %s from %s/%s", entry.name, vol.name, "linked" if linked else "copied",
                 src_entry.name, src.name)
        return volume_dict(entry.name, made)

    async def delete_volume(self, ref: str, name: str) -> dict[str, Any]:
        async with self._job(ref, name, "delete", exclusive=True) as (entry, backend):
            vol = await asyncio.to_thread(backend.volume, name)
            users = self.users(vol.path) if vol.path else []
            if users:
                raise OperationInvalid(f"volume '{name}' of pool '{entry.name}' ({vol.path}) is used by "
                                       f"domain{'s' if len(users) > 1 else ''} {', '.join(users)}; remove the disk "
                                       f"from {'them' if len(users) > 1 else 'it'} (or undefine "
                                       f"{'them' if len(users) > 1 else 'it'}) before deleting the volume")
            await asyncio.to_thread(backend.delete_volume, name)
        log.info("pool %s: volume %s deleted", entry.name, name)
        return volume_dict(entry.name, vol)

    async def resize_volume(self, ref: str, name: str, capacity: int, *, delta: bool = False,
                            shrink: bool = False) -> dict[str, Any]:
        """vol-resize as libvirt: with ``delta`` the size changes by ``capacity`` (down with ``shrink``)."""
        if capacity < 0:
            raise InvalidArgument(f"the new capacity of volume '{name}' is negative ({capacity}); give a size in "
                                  "bytes (a negative change needs --shrink)")
        async with self._job(ref, name, "resize", exclusive=True) as (entry, backend):
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
        return volume_dict(entry.name, resized)

    async def wipe_volume(self, ref: str, name: str, algorithm: str | None = None) -> dict[str, Any]:
        if algorithm not in (None, "zero"):
            if algorithm in WIPE_ALGORITHMS:
                raise InvalidArgument(f"wipe algorithm '{algorithm}' is not supported; pyvirt wipes with zeros "
                                      "(leave --algorithm out or give zero)")
            raise InvalidArgument(f"unknown wipe algorithm '{algorithm}'; use zero")
        async with self._job(ref, name, "wipe", exclusive=True) as (entry, backend):
            await asyncio.to_thread(backend.wipe_volume, name)
            vol = await asyncio.to_thread(backend.volume, name)
        log.info("pool %s: volume %s wiped", entry.name, name)
        return volume_dict(entry.name, vol)

    async def upload(self, ref: str, name: str, reader: Reader, length: int, offset: int = 0) -> int:
        """vol-upload: ``reader`` is read from a worker thread (the API bridges it to the request body)."""
        _check_offsets(offset, length)
        async with self._job(ref, name, "upload", exclusive=True) as (entry, backend):
            written = await asyncio.to_thread(backend.upload_volume, name, reader, length, offset)
        log.info("pool %s: %d bytes uploaded to volume %s at offset %d", entry.name, written, name, offset)
        return written

    async def download(self, ref: str, name: str, offset: int, length: int | None,
                       start: Callable[[int], Awaitable[Writer]]) -> int:
        """vol-download: checks the range, then ``await start(n)`` gives the writer for n bytes (the API
        sends its response head there), then the backend writes from a worker thread."""
        _check_offsets(offset, length or 0)
        async with self._job(ref, name, "download", exclusive=False) as (entry, backend):
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
    async def find_volume(self, ref: str, pool: str | None = None) -> dict[str, Any]:
        """A volume by name in ``pool``, else by key, else by path (virsh's vol lookup)."""
        entry = self.lookup(pool) if pool is not None else None
        if entry is not None:
            self._need_active(entry)
        active = self._active()  # taken here, on the loop: the worker thread reads no shared dict

        def find() -> dict[str, Any]:
            found, vol = self._find_sync(ref, entry, active)
            return volume_dict(found.name, vol)

        return await asyncio.to_thread(find)

    async def find_by(self, *, path: str | None = None, key: str | None = None) -> dict[str, Any]:
        active = self._active()

        def find() -> dict[str, Any]:
            if path is not None:
                found = self._by_path(path, active)
                if found is None:
                    raise NotFound(f"no storage volume with matching path '{path}' in any active pool; "
                                   "see `pyvirt vol-list POOL`")
            else:
                found = self._by_key(key or "", active)
                if found is None:
                    raise NotFound(f"no storage volume with matching key '{key}' in any active pool")
            return volume_dict(found[0].name, found[1])

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

    def _active(self) -> list[PoolEntry]:
        return [e for e in sorted(self.pools.values(), key=lambda e: e.name) if e.backend is not None]

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

    # ---------------------------------------------------------------- helpers
    @contextlib.asynccontextmanager
    async def _job(self, ref: str, name: str, verb: str,
                   exclusive: bool) -> AsyncIterator[tuple[PoolEntry, PoolBackend]]:
        """Register a volume job under the pool lock; it runs after the lock is released."""
        entry = self.lookup(ref)
        async with _lock(entry, f"{verb} a volume in"):
            backend = self._need_active(entry)
            running = entry.jobs.get(name, [])
            clash = next((v for v, ex in running if ex or exclusive), None)
            if clash is not None:
                raise OperationBusy(f"volume '{name}' of pool '{entry.name}' is busy (a {clash} is running); "
                                    "try again when it has finished")
            job = (verb, exclusive)
            entry.jobs.setdefault(name, []).append(job)
        try:
            yield entry, backend
        finally:
            running = entry.jobs.get(name, [])
            if job in running:
                running.remove(job)
            if not running:
                entry.jobs.pop(name, None)

    @staticmethod
    def _need_idle(entry: PoolEntry, verb: str) -> None:
        if entry.jobs:
            busy = ", ".join(f"{v} of '{n}'" for n, jobs in sorted(entry.jobs.items()) for v, _ in jobs)
            raise OperationBusy(f"cannot {verb} pool '{entry.name}': volume jobs are running ({busy}); try again "
                                "when they have finished")

    def _store(self, entry: PoolEntry) -> None:
        self.store.put_object(ObjectRow(KIND, entry.uuid, entry.name, format_pool_xml(entry.config),
                                        entry.persistent, entry.autostart))

    def _record(self, entry: PoolEntry) -> None:
        self.store.put_object_runtime(KIND, entry.uuid, {"live_xml": format_pool_xml(entry.live),
                                                         "started": time.time()})

    def _forget(self, entry: PoolEntry) -> None:
        self.store.delete_object(KIND, entry.uuid)
        if self.pools.get(entry.name) is entry:
            del self.pools[entry.name]


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


@contextlib.asynccontextmanager
async def _lock(entry: PoolEntry, verb: str) -> AsyncIterator[None]:
    try:
        await asyncio.wait_for(entry.lock.acquire(), LOCK_WAIT_SECONDS)
    except TimeoutError as exc:
        raise OperationBusy(f"cannot {verb} pool '{entry.name}': another job holds it; try again later") from exc
    try:
        yield
    finally:
        entry.lock.release()
