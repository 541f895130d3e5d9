"""REST routes for a domain's memory size and vCPUs, thin as server.py.

    PUT /v1/domains/{ref}/memory                  setmem     {size_kib, live, config}
    PUT /v1/domains/{ref}/max-memory              setmaxmem  {size_kib, live, config}
    GET /v1/domains/{ref}/vcpus                   vcpucount
    PUT /v1/domains/{ref}/vcpus                   setvcpus   {count, live, config, maximum, guest}
    GET /v1/domains/{ref}/vcpus/info              vcpuinfo
    GET /v1/domains/{ref}/vcpupin[?live=1|config=1]      PUT {vcpu, cpulist, live, config}
    GET /v1/domains/{ref}/emulatorpin[?live=1|config=1]  PUT {cpulist, live, config}

Neither ``live`` nor ``config`` is virsh's --current: the running domain, else its definition.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from ..daemon.services import Services
from ..errors import InvalidArgument
from .host_routes import body_int
from .http import body_flag, json_body, query_flag
from .views import reply


def _scope(body: dict[str, Any]) -> dict[str, bool]:
    return {"live": body_flag(body, "live"), "config": body_flag(body, "config")}


def _query_scope(request: web.Request) -> dict[str, bool]:
    return {"live": query_flag(request, "live"), "config": query_flag(request, "config")}


def _cpulist(body: dict[str, Any]) -> str:
    value = body.get("cpulist")
    if not isinstance(value, str):
        raise InvalidArgument("request needs 'cpulist', host CPUs such as \"0-3,^2\" (or \"r\" for all)")
    return value


def _required(body: dict[str, Any], name: str) -> int:
    value = body_int(body, name)
    assert value is not None
    return value


class CpuRoutes:
    """Handlers look the managers up per request, so the app can be built over a partial Services (tests)."""

    def __init__(self, services: Services) -> None:
        self.s = services

    def add(self, r: web.UrlDispatcher) -> None:
        r.add_put("/v1/domains/{ref}/memory", self.set_memory)
        r.add_put("/v1/domains/{ref}/max-memory", self.set_max_memory)
        r.add_get("/v1/domains/{ref}/vcpus", self.vcpu_count)
        r.add_put("/v1/domains/{ref}/vcpus", self.set_vcpus)
        r.add_get("/v1/domains/{ref}/vcpus/info", self.vcpu_info)
        r.add_get("/v1/domains/{ref}/vcpupin", self.vcpupin)
        r.add_put("/v1/domains/{ref}/vcpupin", self.set_vcpupin)
        r.add_get("/v1/domains/{ref}/emulatorpin", self.emulatorpin)
        r.add_put("/v1/domains/{ref}/emulatorpin", self.set_emulatorpin)

    async def set_memory(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        return reply(await self.s.memory.set_memory(request.match_info["ref"], _required(body, "size_kib"),
                                                    **_scope(body)))

    async def set_max_memory(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        return reply(await self.s.memory.set_max_memory(request.match_info["ref"], _required(body, "size_kib"),
                                                        **_scope(body)))

    async def vcpu_count(self, request: web.Request) -> web.Response:
        return reply(await self.s.vcpus.count(request.match_info["ref"]))

    async def set_vcpus(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        return reply(await self.s.vcpus.set_count(
            request.match_info["ref"], _required(body, "count"), maximum=body_flag(body, "maximum"),
            guest=body_flag(body, "guest"), **_scope(body)))

    async def vcpu_info(self, request: web.Request) -> web.Response:
        return reply(await self.s.vcpus.info(request.match_info["ref"]))

    async def vcpupin(self, request: web.Request) -> web.Response:
        return reply(await self.s.vcpus.pinning(request.match_info["ref"], **_query_scope(request)))

    async def set_vcpupin(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        return reply(await self.s.vcpus.pin_vcpu(request.match_info["ref"], _required(body, "vcpu"), _cpulist(body),
                                                 **_scope(body)))

    async def emulatorpin(self, request: web.Request) -> web.Response:
        return reply(await self.s.vcpus.emulator_pinning(request.match_info["ref"], **_query_scope(request)))

    async def set_emulatorpin(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        return reply(await self.s.vcpus.pin_emulator(request.match_info["ref"], _cpulist(body), **_scope(body)))


def add_cpu_routes(router: web.UrlDispatcher, services: Services) -> None:
    """Add the memory-size and vCPU routes of a domain."""
    CpuRoutes(services).add(router)
