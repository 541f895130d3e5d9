"""PoolManager: every pool-* verb of pyvirtd, and the bookkeeping of the volume jobs in each pool.

Definitions live in the store (kind "pool"); an active pool has a runtime
record holding the definition it was started with, so a restarted daemon
reattaches when the host still shows the pool (directory present, filesystem
mounted, VG active) and shows it inactive otherwise. The host work is done by
the pool backends (``pyvirt.storage``), always in a worker thread. The vol-*
verbs are in volumes.py.

Concurrency: each pool has one job lock, held for pool-level changes (define,
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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from ..config import Config
from ..errors import AlreadyExists, InvalidArgument, OperationBusy, OperationInvalid, PyvirtError
from ..model.ids import new_uuid
from ..model.storage import Pool, PoolInfo, PoolTarget
from ..model.storage_xml import format_pool_xml, parse_pool_xml, sanitize_path
from ..state.store import ObjectRow, Store
from ..storage import backend_for
from ..storage.base import FormatBook, PoolBackend
from .objects import Kind, Registry, autostart_once
from .results import PoolSummary
from .states import POOL_STATES, PoolState

log = logging.getLogger(__name__)

KIND = "pool"
POOLS = Kind("pool", "storage pool", "pyvirt pool-list --all")
DEFAULT_CREATED = "default_pool_defined"
DEFAULT_POOL = "default"
# Pools whose target path is their own (a directory or /dev/VG): two pools may not share one.
_OWN_TARGET = ("dir", "fs", "netfs", "logical")


@dataclass(eq=False)
class PoolEntry:
    uuid: str
    name: str
    config: Pool  # the persistent (or transient) definition
    persistent: bool
    autostart: bool = False
    state: PoolState = PoolState.INACTIVE
    backend: PoolBackend | None = None  # set while active, made from the definition it was started with
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    jobs: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # volume -> [(verb, exclusive)]

    @property
    def active(self) -> bool:
        return self.state is PoolState.RUNNING

    @property
    def live(self) -> Pool:
        return self.backend.pool if self.backend is not None else self.config

    def summary(self, info: PoolInfo | None = None, state: str | None = None) -> PoolSummary:
        return PoolSummary(
            name=self.name, uuid=self.uuid, type=self.live.type, active=self.active,
            state=state or self.state.value, persistent=self.persistent, autostart=self.autostart,
            target=self.live.target.path, capacity=info.capacity if info else None,
            allocation=info.allocation if info else None, available=info.available if info else None,
        )


class PoolManager:
    def __init__(self, config: Config, store: Store, book: FormatBook) -> None:
        self.config = config
        self.store = store
        self.book = book
        self.pools: Registry[PoolEntry] = Registry(POOLS)

    def _backend(self, pool: Pool) -> PoolBackend:
        return backend_for(pool, self.config.settings.qemu_img, self.book)

    @staticmethod
    def _remove_stale(entry: PoolEntry, backend: PoolBackend) -> None:
        """Temporary volumes of jobs a crash (or kill) interrupted; no job of this daemon runs on the pool yet."""
        try:
            gone = backend.remove_stale()
        except (PyvirtError, OSError) as exc:
            log.warning("pool %s: cannot remove what interrupted jobs left: %s", entry.name, exc)
            return
        if gone:
            log.info("pool %s: removed %d unfinished temporary volume(s) of interrupted jobs: %s", entry.name,
                     len(gone), ", ".join(gone))

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
            self.pools.add(entry)
            data = runtimes.get(row.uuid)
            if data is not None:
                await self._reattach(entry, data)
            elif not entry.persistent:
                self._forget(entry)
        if self.config.settings.extra.get("default_pool", True) and self.store.get_meta(DEFAULT_CREATED) is None:
            await self._define_default()

    async def _reattach(self, entry: PoolEntry, data: dict[str, object]) -> None:
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
        await asyncio.to_thread(self._remove_stale, entry, backend)
        entry.backend = backend
        POOL_STATES.move(entry, PoolState.RUNNING, f"reattached ({live.target.path})")

    async def _define_default(self) -> None:
        """The `default` dir pool at the images directory: defined, built, started, autostarted."""
        target = str(self.config.paths.images)
        taken = self._target_user(target, exclude=None)
        if self.pools.get(DEFAULT_POOL) is None and taken is None:
            pool = Pool(name=DEFAULT_POOL, type="dir", target=PoolTarget(path=target), uuid=new_uuid())
            entry = PoolEntry(pool.uuid, pool.name, pool, persistent=True, autostart=True)
            self.pools.add(entry)
            self._store(entry)
            log.info("pool %s: defined at %s", entry.name, target)
            try:
                async with self.pools.job(entry, "start"):
                    await self._build_locked(entry, overwrite=False)
                    await self._start_locked(entry)
            except PyvirtError as exc:
                log.error("pool %s: cannot start it: %s", entry.name, exc)
        elif taken is not None:
            log.info("the images directory %s is already pool '%s'; no default pool defined", target, taken)
        self.store.set_meta(DEFAULT_CREATED, "1")

    async def autostart(self) -> None:
        """Start autostart pools once per host boot (before domains' autostart: their disks live here)."""
        await autostart_once(self.config.paths.run / "pool-autostarted", "pool", self.pools,
                             lambda e: e.active, lambda e: self.start(e.name))

    # --------------------------------------------------------------- queries
    def lookup(self, ref: str) -> PoolEntry:
        return self.pools.lookup(ref)

    def active(self) -> list[PoolEntry]:
        """The active pools, by name (a snapshot: worker threads read it, never the registry)."""
        return [e for e in self.pools.by_name() if e.backend is not None]

    def need_active(self, entry: PoolEntry) -> PoolBackend:
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

    async def list_all(self) -> list[PoolSummary]:
        entries = self.pools.by_name()

        def collect() -> list[PoolSummary]:
            return [e.summary(*self._info_or_state(e)) for e in entries]

        return await asyncio.to_thread(collect)

    async def info(self, ref: str) -> PoolSummary:
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
        for e in self.pools:
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
        for e in self.pools:
            if e.name == pool.name:
                continue
            shared = mine & {os.path.realpath(d) for p in (e.config, e.live) for d in p.source.devices}
            if shared:
                raise AlreadyExists(f"source device '{sorted(shared)[0]}' of pool '{pool.name}' is already used by "
                                    f"pool '{e.name}'; one device can belong to one pool only")

    def _check_free(self, pool: Pool) -> PoolEntry | None:
        return self.pools.check_free(pool.name, pool.uuid or None)

    async def define(self, xml: str) -> PoolSummary:
        pool = parse_pool_xml(xml)
        existing = self._check_free(pool)
        pool = replace(pool, uuid=pool.uuid or (existing.uuid if existing else new_uuid()))
        self._check_conflicts(pool)
        if existing is not None:
            async with self.pools.job(existing, "define"):
                if existing.active and existing.live.type != pool.type:
                    raise OperationInvalid(f"pool '{pool.name}' is active as a {existing.live.type} pool; destroy "
                                           f"it before redefining it as a {pool.type} pool")
                existing.config, existing.persistent = pool, True
                self._store(existing)
            log.info("pool %s: definition updated", pool.name)
            return await self.info(existing.name)
        entry = PoolEntry(pool.uuid, pool.name, pool, persistent=True)
        self.pools.add(entry)
        self._store(entry)
        log.info("pool %s: defined (%s at %s)", entry.name, pool.type, pool.target.path)
        return await self.info(entry.name)

    async def create(self, xml: str, build: bool = False, overwrite: bool = False) -> PoolSummary:
        """pool-create: a transient pool, started at once (built first with ``build``)."""
        pool = parse_pool_xml(xml)
        if self._check_free(pool) is not None:
            raise AlreadyExists(f"pool '{pool.name}' already exists; start it with `pyvirt pool-start {pool.name}`")
        pool = replace(pool, uuid=pool.uuid or new_uuid())
        self._check_conflicts(pool)
        entry = PoolEntry(pool.uuid, pool.name, pool, persistent=False)
        self.pools.add(entry)
        try:
            async with self.pools.job(entry, "create"):
                if build:
                    await self._build_locked(entry, overwrite)
                await self._start_locked(entry)
                self._store(entry)
        except BaseException:
            self._forget(entry)
            raise
        return await self.info(entry.name)

    async def set_xml(self, ref: str, xml: str) -> PoolSummary:
        """pool-edit: replace the definition (an active pool runs on with the one it started with)."""
        entry = self.lookup(ref)
        pool = parse_pool_xml(xml)
        if pool.name != entry.name:
            raise InvalidArgument(f"pool-edit cannot rename pool '{entry.name}' to '{pool.name}'; define a new "
                                  "pool instead")
        if pool.uuid and pool.uuid != entry.uuid:
            raise InvalidArgument(f"pool-edit cannot change the uuid of pool '{entry.name}'")
        return await self.define(format_pool_xml(replace(pool, uuid=entry.uuid)))

    async def undefine(self, ref: str) -> PoolSummary:
        entry = self.lookup(ref)
        async with self.pools.job(entry, "undefine"):
            if entry.active:
                raise OperationInvalid(f"storage pool '{entry.name}' is still active; stop it first with "
                                       f"`pyvirt pool-destroy {entry.name}`")
            if not entry.persistent:
                raise OperationInvalid(f"pool '{entry.name}' is transient; it goes away when destroyed")
            self._forget(entry)
        log.info("pool %s: undefined", entry.name)
        return entry.summary()

    async def set_autostart(self, ref: str, enabled: bool) -> PoolSummary:
        entry = self.lookup(ref)
        if not entry.persistent:
            raise OperationInvalid(f"cannot set autostart for transient pool '{entry.name}'; define it first "
                                   "with `pyvirt pool-define`")
        async with self.pools.job(entry, "autostart"):
            entry.autostart = enabled
            self._store(entry)
        return await self.info(entry.name)

    # ------------------------------------------------------------- lifecycle
    async def build(self, ref: str, overwrite: bool = False) -> PoolSummary:
        entry = self.lookup(ref)
        async with self.pools.job(entry, "build"):
            await self._build_locked(entry, overwrite)
        return await self.info(entry.name)

    async def _build_locked(self, entry: PoolEntry, overwrite: bool) -> None:
        if entry.active:
            raise OperationInvalid(f"storage pool '{entry.name}' is already active; pool-build works on an "
                                   "inactive pool")
        await asyncio.to_thread(self._backend(entry.config).build, overwrite)
        log.info("pool %s: built", entry.name)

    async def start(self, ref: str, build: bool = False, overwrite: bool = False) -> PoolSummary:
        entry = self.lookup(ref)
        async with self.pools.job(entry, "start"):
            if build:
                await self._build_locked(entry, overwrite)
            await self._start_locked(entry)
        return await self.info(entry.name)

    async def _start_locked(self, entry: PoolEntry) -> None:
        if entry.active:
            raise OperationInvalid(f"storage pool '{entry.name}' is already active")
        backend = self._backend(entry.config)
        await asyncio.to_thread(backend.start)
        await asyncio.to_thread(self._remove_stale, entry, backend)
        entry.backend = backend
        POOL_STATES.move(entry, PoolState.RUNNING, "pool-start")
        self._record(entry)

    def _stopped(self, entry: PoolEntry, why: str) -> None:
        POOL_STATES.move(entry, PoolState.INACTIVE, why)
        entry.backend = None
        self.store.delete_object_runtime(KIND, entry.uuid)
        if not entry.persistent:
            self._forget(entry)

    async def destroy(self, ref: str) -> PoolSummary:
        entry = self.lookup(ref)
        async with self.pools.job(entry, "destroy"):
            backend = self.need_active(entry)
            self._need_idle(entry, "destroy")
            await asyncio.to_thread(backend.stop)
            self._stopped(entry, "pool-destroy")
        return entry.summary()

    async def delete(self, ref: str) -> PoolSummary:
        """pool-delete: remove what pool-build made (the pool stays defined)."""
        entry = self.lookup(ref)
        async with self.pools.job(entry, "delete"):
            if entry.active:
                raise OperationInvalid(f"storage pool '{entry.name}' is still active; stop it first with "
                                       f"`pyvirt pool-destroy {entry.name}`")
            await asyncio.to_thread(self._backend(entry.config).delete)
        log.info("pool %s: deleted", entry.name)
        return entry.summary()

    async def refresh(self, ref: str) -> PoolSummary:
        """pool-refresh: volumes are read live; this checks the pool is still there on the host, and lists
        its volumes once, which records a file pyvirt did not make as raw and forgets files that went."""
        entry = self.lookup(ref)
        async with self.pools.job(entry, "refresh"):
            backend = self.need_active(entry)
            if not await asyncio.to_thread(backend.is_active):
                if not entry.jobs:
                    self._stopped(entry, "gone from the host at pool-refresh")
                raise OperationInvalid(f"pool '{entry.name}' is no longer there on the host (its target "
                                       f"{entry.live.target.path} is gone or unmounted); it is marked inactive: "
                                       f"start it again with `pyvirt pool-start {entry.name}`")
            await asyncio.to_thread(backend.info)
            await asyncio.to_thread(backend.list_volumes)
        return await self.info(entry.name)

    # ---------------------------------------------------------------- helpers
    @contextlib.asynccontextmanager
    async def volume_job(self, ref: str, name: str, verb: str,
                         exclusive: bool) -> AsyncIterator[tuple[PoolEntry, PoolBackend]]:
        """Register a volume job under the pool lock; it runs after the lock is released.

        An exclusive job (anything that writes) runs alone on its volume; shared ones (copies from it,
        downloads) run side by side. A pool with jobs running is not stopped."""
        entry = self.lookup(ref)
        async with self.pools.job(entry, f"{verb} a volume in"):
            backend = self.need_active(entry)
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
        self.pools.remove(entry)
