"""REST routes for the disks of a domain, thin as server.py.

    GET  /v1/domains/{ref}/disks[?inactive=1]      domblklist rows
    POST /v1/domains/{ref}/disks/attach            {xml, live, config}
    POST /v1/domains/{ref}/disks/detach            {target, live, config}
    GET  /v1/domains/{ref}/disks/info[?target=T]   domblkinfo of one disk, or of every disk
    GET  /v1/domains/{ref}/disks/stats[?target=T]  domblkstat of one disk, or summed over the disks
    POST /v1/domains/{ref}/disks/media             {target, action: eject|insert|update, source, live,
                                                    config, force, block}
    POST /v1/domains/{ref}/disks/resize            {target, size: bytes}
    POST /v1/domains/{ref}/devices/attach          {xml, live, config}: a <disk> or an <interface>
    POST /v1/domains/{ref}/devices/detach          {xml, live, config}

A target is a disk's target dev or its source path, so it travels in the
query or the body, never in the URL path. Paths have five segments: POST
/v1/domains/{ref}/{action} (server.py) takes any four-segment POST first.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ..daemon.devices import DeviceManager
from ..daemon.disks import DiskManager
from ..daemon.services import Services
from ..errors import InvalidArgument
from .http import body_flag, query_flag, scope, xml_field
from .http import json_body as _body
from .views import device_reply, reply


def _xml(body: dict[str, Any]) -> str:
    return xml_field(body, "device")


def _scope(body: dict[str, Any]) -> dict[str, bool]:
    live, config = scope(body)
    return {"live": live, "config": config}


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"request needs a non-empty '{key}' string")
    return value


def _optional(body: dict[str, Any], key: str) -> str | None:
    return None if body.get(key) is None else _string(body, key)


class DiskRoutes:
    def __init__(self, disks: DiskManager, devices: DeviceManager) -> None:
        self.disks = disks
        self.devices = devices

    def add(self, r: web.UrlDispatcher) -> None:
        r.add_get("/v1/domains/{ref}/disks", self.list)
        r.add_post("/v1/domains/{ref}/disks/attach", self.attach)
        r.add_post("/v1/domains/{ref}/disks/detach", self.detach)
        r.add_get("/v1/domains/{ref}/disks/info", self.info)
        r.add_get("/v1/domains/{ref}/disks/stats", self.stats)
        r.add_post("/v1/domains/{ref}/disks/media", self.media)
        r.add_post("/v1/domains/{ref}/disks/resize", self.resize)
        r.add_post("/v1/domains/{ref}/devices/attach", self.attach_device)
        r.add_post("/v1/domains/{ref}/devices/detach", self.detach_device)

    async def list(self, request: web.Request) -> web.Response:
        rows = self.disks.list_disks(request.match_info["ref"], inactive=query_flag(request, "inactive"))
        return reply({"disks": rows})

    async def attach(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return reply(await self.disks.attach(request.match_info["ref"], _xml(body), **_scope(body)))

    async def detach(self, request: web.Request) -> web.Response:
        body = await _body(request)
        target = _string(body, "target")
        return reply(await self.disks.detach(request.match_info["ref"], target, **_scope(body)))

    async def info(self, request: web.Request) -> web.Response:
        target = request.query.get("target") or None
        return reply({"disks": await self.disks.block_info(request.match_info["ref"], target)})

    async def stats(self, request: web.Request) -> web.Response:
        target = request.query.get("target") or None
        return reply(await self.disks.block_stats(request.match_info["ref"], target))

    async def media(self, request: web.Request) -> web.Response:
        body = await _body(request)
        row = await self.disks.change_media(
            request.match_info["ref"], _string(body, "target"), _string(body, "action"),
            _optional(body, "source"), force=body_flag(body, "force"), block=body_flag(body, "block"),
            **_scope(body))
        return reply(row)

    async def resize(self, request: web.Request) -> web.Response:
        body = await _body(request)
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise InvalidArgument(f"'size' must be a positive whole number of bytes, not {size!r}")
        return reply(await self.disks.resize(request.match_info["ref"], _string(body, "target"), size))

    async def attach_device(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return device_reply(await self.devices.attach(request.match_info["ref"], _xml(body), **_scope(body)))

    async def detach_device(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return device_reply(await self.devices.detach(request.match_info["ref"], _xml(body), **_scope(body)))


def add_disk_routes(router: web.UrlDispatcher, services: Services) -> None:
    """Add the /v1/domains/{ref}/disks and /devices routes."""
    DiskRoutes(services.disks, services.devices).add(router)
