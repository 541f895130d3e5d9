"""REST routes for the host's facts and KSM, thin as server.py.

    GET  /v1/host/node                      nodeinfo
    GET  /v1/host/memory[?cell=N]           nodememstats (KiB)
    GET  /v1/host/cpu[?cpu=N]               nodecpustats (ns)
    GET  /v1/host/cells                     freecell / freepages: every NUMA cell and its page pools
    POST /v1/host/pages                     allocpages {size_kib, count, cell, add}
    GET  /v1/host/domcapabilities[?virttype=&emulatorbin=&arch=&machine=]
    GET  /v1/host/ksm                       KSM status
    PUT  /v1/host/ksm/mode                  {mode}
    POST /v1/host/ksm/start                 ksmd runs (mode on)
    POST /v1/host/ksm/stop                  {unmerge}: ksmd stops (mode off)
    PUT  /v1/host/ksm/settings              {settings: {KEY: value}}: sysfs fields and tuner settings
    GET  /metrics                           Prometheus text (api/metrics.py)
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ..daemon.services import Services
from ..errors import InvalidArgument
from .http import json_body
from .metrics import MetricsRoute
from .views import reply


def query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise InvalidArgument(f"'{name}' must be a whole number, not {raw!r}")
    return int(raw)


def body_int(body: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"'{name}' must be a whole number, not {value!r}")
    return value


class HostRoutes:
    """Handlers look the managers up per request, so the app can be built over a partial Services (tests)."""

    def __init__(self, services: Services) -> None:
        self.s = services

    def add(self, r: web.UrlDispatcher) -> None:
        r.add_get("/v1/host/node", self.nodeinfo)
        r.add_get("/v1/host/memory", self.memory)
        r.add_get("/v1/host/cpu", self.cpu)
        r.add_get("/v1/host/cells", self.cells)
        r.add_post("/v1/host/pages", self.pages)
        r.add_get("/v1/host/domcapabilities", self.domcapabilities)
        r.add_get("/v1/host/ksm", self.ksm_status)
        r.add_put("/v1/host/ksm/mode", self.ksm_mode)
        r.add_post("/v1/host/ksm/start", self.ksm_start)
        r.add_post("/v1/host/ksm/stop", self.ksm_stop)
        r.add_put("/v1/host/ksm/settings", self.ksm_settings)

    async def nodeinfo(self, request: web.Request) -> web.Response:
        return reply(await self.s.node.info())

    async def memory(self, request: web.Request) -> web.Response:
        return reply(self.s.node.memory(query_int(request, "cell")))

    async def cpu(self, request: web.Request) -> web.Response:
        return reply(self.s.node.cpu(query_int(request, "cpu")))

    async def cells(self, request: web.Request) -> web.Response:
        return reply({"cells": self.s.node.cells()})

    async def pages(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        size, count = body_int(body, "size_kib"), body_int(body, "count")
        assert size is not None and count is not None
        return reply(await self.s.node.allocate_pages(size, count, body_int(body, "cell", required=False),
                                                    bool(body.get("add"))))

    async def domcapabilities(self, request: web.Request) -> web.Response:
        q = request.query
        xml = await self.s.node.domcapabilities(q.get("virttype") or None, q.get("emulatorbin") or None,
                                              q.get("arch") or None, q.get("machine") or None)
        return web.json_response({"xml": xml})

    async def ksm_status(self, request: web.Request) -> web.Response:
        return reply(self.s.ksm.status())

    async def ksm_mode(self, request: web.Request) -> web.Response:
        mode = (await json_body(request)).get("mode")
        if not isinstance(mode, str):
            raise InvalidArgument("request needs a 'mode' string")
        return reply(await self.s.ksm.set_mode(mode))

    async def ksm_start(self, request: web.Request) -> web.Response:
        return reply(await self.s.ksm.start_ksm())

    async def ksm_stop(self, request: web.Request) -> web.Response:
        return reply(await self.s.ksm.stop_ksm(bool((await json_body(request)).get("unmerge"))))

    async def ksm_settings(self, request: web.Request) -> web.Response:
        settings = (await json_body(request)).get("settings")
        if not isinstance(settings, dict):
            raise InvalidArgument("request needs a 'settings' object of KEY: value pairs")
        return reply(await self.s.ksm.tune(settings))


def add_host_routes(router: web.UrlDispatcher, services: Services) -> None:
    """Add the /v1/host node and KSM routes, and GET /metrics."""
    HostRoutes(services).add(router)
    router.add_get("/metrics", MetricsRoute(services).handle)
