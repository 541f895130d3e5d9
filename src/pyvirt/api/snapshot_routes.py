"""REST routes for domain snapshots (virsh's snapshot-* verbs); thin, as server.py.

    GET    /v1/domains/{ref}/snapshots                  {"snapshots": [row...], "current": name|null}
    POST   /v1/domains/{ref}/snapshots/create           {"xml"?, "disk_only", "no_metadata", "halt", ...}
    GET    /v1/domains/{ref}/snapshots/{name}           one row
    GET    /v1/domains/{ref}/snapshots/{name}/xml       {"xml": <domainsnapshot>}
    POST   /v1/domains/{ref}/snapshots/{name}/revert    {"running", "paused", "force"}
    PUT    /v1/domains/{ref}/snapshots/{name}/current   make it the current snapshot
    DELETE /v1/domains/{ref}/snapshots/{name}?children=1|children_only=1&metadata=1

A row: name, domain, description, state, parent, creation_time (epoch seconds),
location, current, memory, metadata, children, descendants, disks. Creation
is under /create because POST /v1/domains/{ref}/{action} is the domain's own.
"""
from __future__ import annotations

from aiohttp import web

from ..daemon.services import Services
from ..daemon.snapshots import SnapshotManager
from ..errors import InvalidArgument
from .http import body_flag
from .http import json_body as _body
from .http import query_flag as _flag
from .views import reply

CREATE_FLAGS = ("disk_only", "no_metadata", "halt", "live", "atomic", "quiesce", "reuse_external")


class _SnapshotRoutes:
    def __init__(self, snapshots: SnapshotManager) -> None:
        self.snapshots = snapshots

    async def list(self, request: web.Request) -> web.Response:
        return reply(self.snapshots.list_snapshots(request.match_info["ref"]))

    async def create(self, request: web.Request) -> web.Response:
        body = await _body(request)
        xml = body.get("xml")
        if xml is not None and not isinstance(xml, str):
            raise InvalidArgument("'xml' must be a string with the domain snapshot XML")
        flags = {k: body_flag(body, k) for k in CREATE_FLAGS}
        row = await self.snapshots.create(request.match_info["ref"], xml, **flags)
        return reply(row, status=201)

    async def info(self, request: web.Request) -> web.Response:
        return reply(self.snapshots.info(request.match_info["ref"], request.match_info["name"]))

    async def xml(self, request: web.Request) -> web.Response:
        xml = self.snapshots.get_xml(request.match_info["ref"], request.match_info["name"],
                                     security_info=_flag(request, "security_info"))
        return web.json_response({"xml": xml})

    async def revert(self, request: web.Request) -> web.Response:
        body = await _body(request)
        done = await self.snapshots.revert(request.match_info["ref"], request.match_info["name"],
                                           running=body_flag(body, "running"), paused=body_flag(body, "paused"),
                                           force=body_flag(body, "force"))
        return reply({**vars(done.snapshot), "domain_state": done.domain_state})

    async def set_current(self, request: web.Request) -> web.Response:
        return reply(await self.snapshots.set_current(request.match_info["ref"], request.match_info["name"]))

    async def delete(self, request: web.Request) -> web.Response:
        result = await self.snapshots.delete(
            request.match_info["ref"], request.match_info["name"], children=_flag(request, "children"),
            children_only=_flag(request, "children_only"), metadata_only=_flag(request, "metadata"))
        return reply(result)


def add_snapshot_routes(router: web.UrlDispatcher, services: Services) -> None:
    h = _SnapshotRoutes(services.snapshots)
    router.add_get("/v1/domains/{ref}/snapshots", h.list)
    router.add_post("/v1/domains/{ref}/snapshots/create", h.create)
    router.add_get("/v1/domains/{ref}/snapshots/{name}", h.info)
    router.add_delete("/v1/domains/{ref}/snapshots/{name}", h.delete)
    router.add_get("/v1/domains/{ref}/snapshots/{name}/xml", h.xml)
    router.add_post("/v1/domains/{ref}/snapshots/{name}/revert", h.revert)
    router.add_put("/v1/domains/{ref}/snapshots/{name}/current", h.set_current)
