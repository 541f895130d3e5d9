"""REST routes for storage pools and volumes (docs/api.md, "Storage pools and volumes").

Thin as server.py: each handler checks its input and calls the PoolManager.
Volume data moves as raw HTTP bodies, never held whole in memory: an upload
is read from ``request.content`` chunk by chunk by the backend's worker
thread, a download is written to a ``StreamResponse`` the same way.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from ..daemon.pools import PoolManager
from ..daemon.results import Uploaded
from ..daemon.services import Services
from ..daemon.volumes import VolumeManager
from ..errors import InvalidArgument
from .http import body_flag
from .http import json_body as _body
from .http import query_flag as _flag
from .http import xml_field as _xml
from .views import reply

log = logging.getLogger(__name__)




def _int_query(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise InvalidArgument(f"query parameter '{name}' must be a whole number of bytes, not {raw!r}")
    return int(raw)


def _build_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    """(build, overwrite) from a body; --overwrite and --no-overwrite exclude each other."""
    overwrite, no_overwrite = body_flag(body, "overwrite"), body_flag(body, "no_overwrite")
    if overwrite and no_overwrite:
        raise InvalidArgument("--overwrite and --no-overwrite are mutually exclusive")
    return body_flag(body, "build"), overwrite


class _BodyReader:
    """The request body as a blocking reader for a worker thread (the backend's ``Reader``)."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.content = request.content
        self.loop = loop

    def read(self, size: int) -> bytes:
        return asyncio.run_coroutine_threadsafe(self.content.read(size), self.loop).result()


class _ResponseWriter:
    """A prepared StreamResponse as a blocking writer for a worker thread; each write waits for drain."""

    def __init__(self, resp: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self.resp = resp
        self.loop = loop

    def write(self, data: bytes) -> int:
        asyncio.run_coroutine_threadsafe(self.resp.write(data), self.loop).result()
        return len(data)


class StorageRoutes:
    def __init__(self, pools: PoolManager, volumes: VolumeManager) -> None:
        self.pools = pools
        self.volumes = volumes

    def add(self, r: web.UrlDispatcher) -> None:
        r.add_get("/v1/pools", self.list_pools)
        r.add_post("/v1/pools", self.define)
        r.add_post("/v1/pools/create", self.create)
        r.add_get("/v1/pools/{pool}", self.info)
        r.add_delete("/v1/pools/{pool}", self.undefine)
        r.add_get("/v1/pools/{pool}/xml", self.get_xml)
        r.add_put("/v1/pools/{pool}/xml", self.set_xml)
        r.add_put("/v1/pools/{pool}/autostart", self.autostart)
        r.add_post("/v1/pools/{pool}/build", self.build)
        r.add_post("/v1/pools/{pool}/start", self.start)
        r.add_post("/v1/pools/{pool}/destroy", self.destroy)
        r.add_post("/v1/pools/{pool}/delete", self.delete)
        r.add_post("/v1/pools/{pool}/refresh", self.refresh)
        r.add_get("/v1/pools/{pool}/volumes", self.list_volumes)
        r.add_post("/v1/pools/{pool}/volumes", self.create_volume)
        r.add_get("/v1/pools/{pool}/volumes/{vol}", self.volume_info)
        r.add_delete("/v1/pools/{pool}/volumes/{vol}", self.delete_volume)
        r.add_get("/v1/pools/{pool}/volumes/{vol}/xml", self.volume_xml)
        r.add_post("/v1/pools/{pool}/volumes/{vol}/clone", self.clone_volume)
        r.add_post("/v1/pools/{pool}/volumes/{vol}/resize", self.resize_volume)
        r.add_post("/v1/pools/{pool}/volumes/{vol}/wipe", self.wipe_volume)
        r.add_put("/v1/pools/{pool}/volumes/{vol}/format", self.set_format)
        r.add_put("/v1/pools/{pool}/volumes/{vol}/data", self.upload)
        r.add_get("/v1/pools/{pool}/volumes/{vol}/data", self.download)
        r.add_get("/v1/volumes", self.find_volume)

    # ----------------------------------------------------------------- pools
    async def list_pools(self, request: web.Request) -> web.Response:
        return reply({"pools": await self.pools.list_all()})

    async def define(self, request: web.Request) -> web.Response:
        return reply(await self.pools.define(_xml(await _body(request), "pool")), status=201)

    async def create(self, request: web.Request) -> web.Response:
        body = await _body(request)
        build, overwrite = _build_flags(body)
        return reply(await self.pools.create(_xml(body, "pool"), build=build, overwrite=overwrite), status=201)

    async def info(self, request: web.Request) -> web.Response:
        return reply(await self.pools.info(request.match_info["pool"]))

    async def undefine(self, request: web.Request) -> web.Response:
        return reply(await self.pools.undefine(request.match_info["pool"]))

    async def get_xml(self, request: web.Request) -> web.Response:
        xml = await self.pools.get_xml(request.match_info["pool"], inactive=_flag(request, "inactive"))
        return web.json_response({"xml": xml})

    async def set_xml(self, request: web.Request) -> web.Response:
        return reply(await self.pools.set_xml(request.match_info["pool"], _xml(await _body(request), "pool")))

    async def autostart(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return reply(await self.pools.set_autostart(request.match_info["pool"], body_flag(body, "enabled", True)))

    async def build(self, request: web.Request) -> web.Response:
        _, overwrite = _build_flags(await _body(request))
        return reply(await self.pools.build(request.match_info["pool"], overwrite=overwrite))

    async def start(self, request: web.Request) -> web.Response:
        build, overwrite = _build_flags(await _body(request))
        return reply(await self.pools.start(request.match_info["pool"], build=build, overwrite=overwrite))

    async def destroy(self, request: web.Request) -> web.Response:
        return reply(await self.pools.destroy(request.match_info["pool"]))

    async def delete(self, request: web.Request) -> web.Response:
        return reply(await self.pools.delete(request.match_info["pool"]))

    async def refresh(self, request: web.Request) -> web.Response:
        return reply(await self.pools.refresh(request.match_info["pool"]))

    # --------------------------------------------------------------- volumes
    async def list_volumes(self, request: web.Request) -> web.Response:
        return reply({"volumes": await self.volumes.list_volumes(request.match_info["pool"])})

    async def create_volume(self, request: web.Request) -> web.Response:
        body = await _body(request)
        pool = request.match_info["pool"]
        source = body.get("from")
        if source is None:
            vol = await self.volumes.create(pool, _xml(body, "volume"))
        else:
            if not isinstance(source, dict) or not isinstance(source.get("volume"), str):
                raise InvalidArgument("'from' must be {\"volume\": NAME, \"pool\": POOL} naming the input volume")
            src_pool = source.get("pool") or pool
            vol = await self.volumes.create_from(pool, _xml(body, "volume"), str(src_pool), source["volume"],
                                                 linked=body_flag(body, "linked"))
        return reply(vol, status=201)

    async def volume_info(self, request: web.Request) -> web.Response:
        m = request.match_info
        return reply(await self.volumes.info(m["pool"], m["vol"]))

    async def volume_xml(self, request: web.Request) -> web.Response:
        m = request.match_info
        return web.json_response({"xml": await self.volumes.get_xml(m["pool"], m["vol"])})

    async def delete_volume(self, request: web.Request) -> web.Response:
        m = request.match_info
        return reply(await self.volumes.delete(m["pool"], m["vol"]))

    async def clone_volume(self, request: web.Request) -> web.Response:
        m = request.match_info
        body = await _body(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidArgument("clone needs the new volume's 'name'")
        target = body.get("pool") or m["pool"]
        vol = await self.volumes.create_from(str(target), None, m["pool"], m["vol"], new_name=name,
                                             linked=body_flag(body, "linked"))
        return reply(vol, status=201)

    async def resize_volume(self, request: web.Request) -> web.Response:
        m = request.match_info
        body = await _body(request)
        capacity = body.get("capacity")
        if not isinstance(capacity, int) or isinstance(capacity, bool):
            raise InvalidArgument(f"resize needs 'capacity' as a whole number of bytes, not {capacity!r}")
        return reply(await self.volumes.resize(m["pool"], m["vol"], capacity, delta=body_flag(body, "delta"),
                                               shrink=body_flag(body, "shrink")))

    async def wipe_volume(self, request: web.Request) -> web.Response:
        m = request.match_info
        body = await _body(request)
        algorithm = body.get("algorithm")
        return reply(await self.volumes.wipe(m["pool"], m["vol"], algorithm if isinstance(algorithm, str) else None))

    async def set_format(self, request: web.Request) -> web.Response:
        m = request.match_info
        body = await _body(request)
        fmt, backing_format = body.get("format"), body.get("backing_format")
        if not isinstance(fmt, str):
            raise InvalidArgument(f"vol-set-format needs 'format' (raw or qcow2), not {fmt!r}")
        if backing_format is not None and not isinstance(backing_format, str):
            raise InvalidArgument(f"'backing_format' is raw, qcow2 or null, not {backing_format!r}")
        return reply(await self.volumes.set_format(m["pool"], m["vol"], fmt, backing_format))

    async def upload(self, request: web.Request) -> web.Response:
        m = request.match_info
        length = request.content_length
        if length is None:
            raise InvalidArgument("an upload needs a Content-Length header giving the number of bytes sent")
        offset = _int_query(request, "offset") or 0
        reader = _BodyReader(request, asyncio.get_running_loop())
        written = await self.volumes.upload(m["pool"], m["vol"], reader, length, offset)
        return reply(Uploaded(m["pool"], m["vol"], offset, written))

    async def download(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        offset = _int_query(request, "offset") or 0
        length = _int_query(request, "length") or None  # 0 or none: to the end, as virsh
        loop = asyncio.get_running_loop()
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})

        async def start(count: int) -> _ResponseWriter:
            resp.content_length = count
            await resp.prepare(request)
            return _ResponseWriter(resp, loop)

        try:
            await self.volumes.download(m["pool"], m["vol"], offset, length, start)
        except Exception:
            if not resp.prepared:
                raise  # nothing sent yet: the error middleware answers with the error
            log.exception("download of volume %s/%s failed part way; closing the connection", m["pool"], m["vol"])
            if request.transport is not None:
                request.transport.close()
            return resp
        await resp.write_eof()
        return resp

    async def find_volume(self, request: web.Request) -> web.Response:
        q = request.query
        if "path" in q:
            return reply(await self.volumes.find_by(path=q["path"]))
        if "key" in q:
            return reply(await self.volumes.find_by(key=q["key"]))
        if "ref" in q:
            return reply(await self.volumes.find(q["ref"], q.get("pool") or None))
        raise InvalidArgument("volume lookup needs ?path=PATH, ?key=KEY or ?ref=NAME|KEY|PATH[&pool=POOL]")


def add_storage_routes(router: web.UrlDispatcher, services: Services) -> None:
    """Add the /v1/pools and /v1/volumes routes."""
    StorageRoutes(services.pools, services.volumes).add(router)
