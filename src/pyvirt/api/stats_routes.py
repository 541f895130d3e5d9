"""REST routes for statistics and resource tuning of domains, thin as server.py.

    GET /v1/stats[?domain=D...][&group=G...][&list=F...]  domstats: virsh's field names per domain
    GET /v1/domains/{ref}/memstats                        dommemstat
    PUT /v1/domains/{ref}/memstats                        {period, live, config}
    GET /v1/domains/{ref}/schedinfo[?inactive=1]          PUT {params: {cpu_shares, vcpu_period, vcpu_quota},
                                                               live, config}
    GET /v1/domains/{ref}/memtune[?inactive=1]            PUT {hard_limit_kib, soft_limit_kib, live, config}
    GET /v1/domains/{ref}/blkiotune[?inactive=1]          PUT {weight, live, config}

Neither ``live`` nor ``config`` is virsh's --current: the running domain, else its definition.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ..daemon.services import Services
from ..errors import InvalidArgument
from .host_routes import body_int
from .http import json_body, query_flag
from .views import reply


def _scope(body: dict[str, Any]) -> dict[str, bool]:
    return {"live": bool(body.get("live")), "config": bool(body.get("config"))}


class StatsRoutes:
    """Handlers look the managers up per request, so the app can be built over a partial Services (tests)."""

    def __init__(self, services: Services) -> None:
        self.s = services

    def add(self, r: web.UrlDispatcher) -> None:
        r.add_get("/v1/stats", self.domstats)
        r.add_get("/v1/domains/{ref}/memstats", self.memstats)
        r.add_put("/v1/domains/{ref}/memstats", self.set_memstats)
        r.add_get("/v1/domains/{ref}/schedinfo", self.schedinfo)
        r.add_put("/v1/domains/{ref}/schedinfo", self.set_schedinfo)
        r.add_get("/v1/domains/{ref}/memtune", self.memtune)
        r.add_put("/v1/domains/{ref}/memtune", self.set_memtune)
        r.add_get("/v1/domains/{ref}/blkiotune", self.blkiotune)
        r.add_put("/v1/domains/{ref}/blkiotune", self.set_blkiotune)

    async def domstats(self, request: web.Request) -> web.Response:
        q = request.query
        records = await self.s.stats.domstats(q.getall("domain", []), q.getall("group", []), q.getall("list", []))
        return reply({"domains": records})

    async def memstats(self, request: web.Request) -> web.Response:
        return reply(await self.s.stats.memstats(request.match_info["ref"]))

    async def set_memstats(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        period = body_int(body, "period")
        assert period is not None
        stats = await self.s.stats.set_memstats_period(request.match_info["ref"], period, **_scope(body))
        return reply({"period": period, "stats": stats})

    async def schedinfo(self, request: web.Request) -> web.Response:
        return reply(self.s.tuning.schedinfo(request.match_info["ref"], query_flag(request, "inactive")))

    async def set_schedinfo(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        params = body.get("params")
        if not isinstance(params, dict):
            raise InvalidArgument("request needs a 'params' object, e.g. {\"cpu_shares\": 2048}")
        return reply(await self.s.tuning.set_schedinfo(request.match_info["ref"], params, **_scope(body)))

    async def memtune(self, request: web.Request) -> web.Response:
        return reply(self.s.tuning.memtune(request.match_info["ref"], query_flag(request, "inactive")))

    async def set_memtune(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        return reply(await self.s.tuning.set_memtune(
            request.match_info["ref"], body_int(body, "hard_limit_kib", required=False),
            body_int(body, "soft_limit_kib", required=False), **_scope(body)))

    async def blkiotune(self, request: web.Request) -> web.Response:
        return reply(self.s.tuning.blkiotune(request.match_info["ref"], query_flag(request, "inactive")))

    async def set_blkiotune(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        weight = body_int(body, "weight")
        assert weight is not None
        return reply(await self.s.tuning.set_blkiotune(request.match_info["ref"], weight, **_scope(body)))


def add_stats_routes(router: web.UrlDispatcher, services: Services) -> None:
    """Add /v1/stats and the per-domain memstats and tuning routes."""
    StatsRoutes(services).add(router)
