"""REST routes for saving and restoring guests (virsh save, restore, managedsave, save-image-*); thin.

    POST   /v1/domains/{ref}/save           {"file", "xml"?, "running", "paused", "bypass_cache"} -> SaveResult
    POST   /v1/domains/restore              {"file", "xml"?, "running", "paused", "bypass_cache"} -> summary
    PUT    /v1/domains/{ref}/managed-save   {"running", "paused", "bypass_cache"} -> SaveResult
    DELETE /v1/domains/{ref}/managed-save   {"removed": bool}
    GET    /v1/managed-saves                {"domains": [uuid...]} (list --managed-save)
    GET    /v1/save-image/xml?file=PATH     {"xml"} (save-image-dumpxml)
    PUT    /v1/save-image/xml               {"file", "xml", "running", "paused"} (save-image-define)

Files are paths on the daemon's host (as virsh's are on libvirtd's).
``add_save_routes`` must run before the catch-all POST /v1/domains/{ref}/{action}.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ..daemon.saves import SaveManager
from ..daemon.services import Services
from ..errors import InvalidArgument
from .http import body_flag, xml_field
from .http import json_body as _body
from .http import query_flag as _flag
from .views import reply


def _file(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidArgument(f"'file' must be an absolute path on the daemon's host, not {value!r}")
    return value


def _state(body: dict[str, Any]) -> bool | None:
    """--running / --paused: the state after a restore (None: as it was saved)."""
    running, paused = body_flag(body, "running"), body_flag(body, "paused")
    if running and paused:
        raise InvalidArgument("'running' and 'paused' exclude each other; give one of them")
    return True if running else False if paused else None


def _xml(body: dict[str, Any]) -> str | None:
    return xml_field(body) if "xml" in body else None


class _SaveRoutes:
    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def saves(self) -> SaveManager:
        return self.services.saves

    async def save(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return reply(await self.saves.save(request.match_info["ref"], _file(body.get("file")), xml=_xml(body),
                                           running=_state(body), bypass_cache=body_flag(body, "bypass_cache")))

    async def restore(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return reply(await self.saves.restore(_file(body.get("file")), xml=_xml(body), running=_state(body),
                                              bypass_cache=body_flag(body, "bypass_cache")))

    async def managed_save(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return reply(await self.saves.managed_save(request.match_info["ref"], running=_state(body),
                                                   bypass_cache=body_flag(body, "bypass_cache")))

    async def remove_managed(self, request: web.Request) -> web.Response:
        return reply({"removed": await self.saves.remove_managed(request.match_info["ref"])})

    async def managed_list(self, request: web.Request) -> web.Response:
        return reply({"domains": self.saves.managed_uuids()})

    async def image_xml(self, request: web.Request) -> web.Response:
        xml = await self.saves.image_xml(_file(request.query.get("file")),
                                         security_info=_flag(request, "security_info"))
        return reply({"xml": xml})

    async def define_image(self, request: web.Request) -> web.Response:
        body = await _body(request)
        path = _file(body.get("file"))
        await self.saves.define_image_xml(path, xml_field(body), running=_state(body))
        return reply({"file": path})


def add_save_routes(router: web.UrlDispatcher, services: Services) -> None:
    h = _SaveRoutes(services)
    router.add_post("/v1/domains/{ref}/save", h.save)
    router.add_post("/v1/domains/restore", h.restore)
    router.add_put("/v1/domains/{ref}/managed-save", h.managed_save)
    router.add_delete("/v1/domains/{ref}/managed-save", h.remove_managed)
    router.add_get("/v1/managed-saves", h.managed_list)
    router.add_get("/v1/save-image/xml", h.image_xml)
    router.add_put("/v1/save-image/xml", h.define_image)
