"""REST routes of pyvirtd (docs/api.md): validate, call a manager, map errors.

Thin on purpose: every decision lives in daemon/.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .. import __version__
from ..errors import InternalError, InvalidArgument, PyvirtError
from ..host.caps import capabilities_xml
from ..host.validate import host_validate
from .console import ConsoleHub

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except PyvirtError as exc:
        return web.json_response({"error": exc.to_dict()}, status=exc.http_status)
    except Exception as exc:  # a bug: report it with enough words to file it
        log.exception("internal error on %s %s", request.method, request.path)
        err = InternalError(f"internal error in pyvirtd: {type(exc).__name__}: {exc}; see the daemon log and report it")
        return web.json_response({"error": err.to_dict()}, status=500)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument("request body must be a JSON object")
    return data


def _xml_field(body: dict[str, Any]) -> str:
    xml = body.get("xml")
    if not isinstance(xml, str) or not xml.strip():
        raise InvalidArgument("request needs a non-empty 'xml' string with the domain XML")
    return xml


class Api:
    """Binds HTTP routes to the daemon's managers."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.domains = daemon.domains
        self.console = ConsoleHub(daemon)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[error_middleware], client_max_size=16 * 1024 * 1024)
        r = app.router
        r.add_get("/v1/version", self.version)
        r.add_get("/v1/host", self.host)
        r.add_get("/v1/host/capabilities", self.capabilities)
        r.add_get("/v1/host/validate", self.validate)
        r.add_get("/v1/domains", self.list_domains)
        r.add_post("/v1/domains", self.define)
        r.add_post("/v1/domains/create", self.create)
        r.add_get("/v1/domains/{ref}", self.info)
        r.add_delete("/v1/domains/{ref}", self.undefine)
        r.add_get("/v1/domains/{ref}/state", self.state)
        r.add_get("/v1/domains/{ref}/xml", self.get_xml)
        r.add_put("/v1/domains/{ref}/xml", self.set_xml)
        r.add_put("/v1/domains/{ref}/autostart", self.autostart)
        r.add_get("/v1/domains/{ref}/events", self.domain_events)
        r.add_get("/v1/domains/{ref}/console", self.console.handle)
        r.add_post("/v1/domains/{ref}/{action}", self.action)
        r.add_get("/v1/events", self.events)
        r.add_get("/v1/events/history", self.history)
        return app

    # ------------------------------------------------------------------ host
    async def version(self, request: web.Request) -> web.Response:
        caps = await self.daemon.host.capabilities()
        return web.json_response({
            "library": __version__, "daemon": __version__, "hypervisor": "QEMU",
            "hypervisor_version": caps.qemu_version, "api": 1,
        })

    async def host(self, request: web.Request) -> web.Response:
        caps = await self.daemon.host.capabilities()
        return web.json_response({
            "hostname": caps.hostname, "uri": self.daemon.uri, "accel": caps.accel,
            "kvm_usable": caps.kvm_usable, "kvm_reason": caps.kvm.reason, "cpus": caps.cpu_count,
            "memory_kib": caps.memory_kib, "cpu_model": caps.cpu_model_name,
        })

    async def capabilities(self, request: web.Request) -> web.Response:
        caps = await self.daemon.host.capabilities()
        return web.json_response({"xml": capabilities_xml(caps)})

    async def validate(self, request: web.Request) -> web.Response:
        caps = await self.daemon.host.capabilities()
        checks = host_validate(caps)
        return web.json_response({"checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in checks]})

    # --------------------------------------------------------------- domains
    async def list_domains(self, request: web.Request) -> web.Response:
        return web.json_response({"domains": self.domains.list()})

    async def define(self, request: web.Request) -> web.Response:
        entry = await self.domains.define(_xml_field(await _body(request)))
        return web.json_response(entry.summary(), status=201)

    async def create(self, request: web.Request) -> web.Response:
        body = await _body(request)
        entry = await self.domains.create(_xml_field(body), paused=bool(body.get("paused")))
        return web.json_response(entry.summary(), status=201)

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response(await self.domains.info(request.match_info["ref"]))

    async def undefine(self, request: web.Request) -> web.Response:
        return web.json_response(await self.domains.undefine(request.match_info["ref"]))

    async def state(self, request: web.Request) -> web.Response:
        entry = self.domains.lookup(request.match_info["ref"])
        return web.json_response({"state": entry.state.value, "reason": entry.reason})

    async def get_xml(self, request: web.Request) -> web.Response:
        inactive = request.query.get("inactive", "0") not in ("0", "", "false")
        return web.json_response({"xml": self.domains.get_xml(request.match_info["ref"], inactive)})

    async def set_xml(self, request: web.Request) -> web.Response:
        entry = await self.domains.set_xml(request.match_info["ref"], _xml_field(await _body(request)))
        return web.json_response(entry.summary())

    async def autostart(self, request: web.Request) -> web.Response:
        body = await _body(request)
        entry = await self.domains.set_autostart(request.match_info["ref"], bool(body.get("enabled", True)))
        return web.json_response(entry.summary())

    async def action(self, request: web.Request) -> web.Response:
        ref, action = request.match_info["ref"], request.match_info["action"]
        body = await _body(request)
        d = self.domains
        if action == "start":
            entry = await d.start(ref, paused=bool(body.get("paused")))
        elif action == "shutdown":
            timeout = body.get("timeout")
            if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
                raise InvalidArgument(f"shutdown timeout must be a positive number of seconds, not {timeout!r}")
            return web.json_response(await d.shutdown(ref, timeout))
        elif action in ("destroy", "reboot", "reset", "suspend", "resume"):
            entry = await getattr(d, action)(ref)
        else:
            raise web.HTTPNotFound(text=json.dumps({"error": {"code": "not-found", "message": f"unknown domain action '{action}'"}}),
                                   content_type="application/json")
        return web.json_response(entry.summary())

    # ---------------------------------------------------------------- events
    async def _stream(self, request: web.Request, domain: str | None) -> web.StreamResponse:
        events = self.daemon.bus.subscribe(domain)  # before the answer starts: no event is missed
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        async for record in events:
            await resp.write(json.dumps(record).encode() + b"\n")
        return resp

    async def events(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, None)

    async def domain_events(self, request: web.Request) -> web.StreamResponse:
        entry = self.domains.lookup(request.match_info["ref"])
        return await self._stream(request, entry.uuid)

    async def history(self, request: web.Request) -> web.Response:
        return web.json_response({"events": self.daemon.bus.history(request.query.get("domain"))})
