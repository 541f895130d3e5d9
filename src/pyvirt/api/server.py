"""REST routes of pyvirtd (api/openapi.yaml): validate, call a manager, map errors.

Thin on purpose: every decision lives in daemon/. Handlers are typed against
the daemon's managers (daemon/services.py) and answer what they return,
turned into JSON by views.py.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..daemon.results import DomainSummary
from ..daemon.services import Services
from ..errors import InternalError, InvalidArgument, MethodNotAllowed, NotFound, PyvirtError, RequestTooLarge
from .console import ConsoleRoute
from .http import body_flag
from .http import json_body as _body
from .http import query_flag as _flag
from .http import scope as _scope
from .http import xml_field as _xml_field
from .remote_routes import RemoteInfo, add_remote_routes
from .views import dumps, reply

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DOMAIN_ACTIONS = ("start", "shutdown", "destroy", "reboot", "reset", "suspend", "resume")


#: The largest request body the daemon reads (JSON; volume data streams and has no limit).
MAX_BODY = 16 * 1024 * 1024


def http_error(request: web.Request, exc: web.HTTPException) -> PyvirtError:
    """aiohttp's own refusals (no route, wrong method, body too large, ...) as the API's errors."""
    where = f"{request.method} {request.path}"
    if isinstance(exc, web.HTTPNotFound):
        return NotFound(f"no such API route: {where}; the routes are listed in GET /openapi.json")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return MethodNotAllowed(f"{request.method} is not allowed on {request.path}; it takes {allowed}")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return RequestTooLarge(f"the body of {where} is over the daemon's limit of {MAX_BODY} bytes (16 MiB); "
                               "volume data goes through PUT /v1/pools/{pool}/volumes/{volume}/data, which streams")
    if exc.status < 500:
        return InvalidArgument(f"{where} was refused: {exc.text or exc.reason}")
    return InternalError(f"{where} failed: {exc.reason}; see the daemon log and report it")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every reply that is not a success is ``{"error": {code, message, detail?}}`` with its code's status."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        err = http_error(request, exc)
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"error": err.to_dict()}, status=err.http_status, headers=headers)
    except PyvirtError as exc:
        return web.json_response({"error": exc.to_dict()}, status=exc.http_status)
    except Exception as exc:  # a bug: report it with enough words to file it
        log.exception("internal error on %s %s", request.method, request.path)
        err = InternalError(f"internal error in pyvirtd: {type(exc).__name__}: {exc}; see the daemon log and report it")
        return web.json_response({"error": err.to_dict()}, status=500)


class Api:
    """Binds HTTP routes to the daemon's managers.

    ``remote``: the daemon also serves this app on its TLS listener; every request that did not come
    over the unix socket then needs a token (api/auth.py). Without it the app is only ever served on
    the root-only unix socket, and no token is asked for."""

    def __init__(self, services: Services, remote: RemoteInfo | None = None) -> None:
        self.s = services
        self.remote = remote
        self.domains = services.domains
        self.console = ConsoleRoute(services.consoles)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY)
        r = app.router
        r.add_get("/v1/version", self.version)
        r.add_get("/v1/host", self.host)
        r.add_get("/v1/host/capabilities", self.capabilities)
        r.add_get("/v1/host/validate", self.validate)
        r.add_get("/v1/domains", self.list_domains)
        r.add_post("/v1/domains", self.define)
        r.add_post("/v1/domains/create", self.create)
        from .native_routes import add_native_routes  # issue 10: domxml-to-native (before /v1/domains/{ref})

        add_native_routes(r, self.s)
        r.add_get("/v1/domains/{ref}", self.info)
        r.add_delete("/v1/domains/{ref}", self.undefine)
        r.add_get("/v1/domains/{ref}/state", self.state)
        r.add_get("/v1/domains/{ref}/xml", self.get_xml)
        r.add_put("/v1/domains/{ref}/xml", self.set_xml)
        r.add_put("/v1/domains/{ref}/autostart", self.autostart)
        r.add_get("/v1/domains/{ref}/events", self.domain_events)
        r.add_get("/v1/domains/{ref}/interfaces", self.interfaces)
        r.add_post("/v1/domains/{ref}/interfaces", self.attach_interface)
        r.add_post("/v1/domains/{ref}/interfaces/detach", self.detach_interface)
        r.add_get("/v1/domains/{ref}/interfaces/addresses", self.interface_addresses)
        r.add_get("/v1/domains/{ref}/interfaces/{dev}/stats", self.interface_stats)
        r.add_get("/v1/domains/{ref}/interfaces/{dev}/link", self.get_link)
        r.add_put("/v1/domains/{ref}/interfaces/{dev}/link", self.set_link)
        r.add_get("/v1/domains/{ref}/console", self.console.handle)
        from .save_routes import add_save_routes

        add_save_routes(r, self.s)  # before the catch-all below: POST /v1/domains/{ref}/save is not an action
        r.add_post("/v1/domains/{ref}/{action}", self.action)
        r.add_get("/v1/networks", self.list_networks)
        r.add_post("/v1/networks", self.define_network)
        r.add_post("/v1/networks/create", self.create_network)
        r.add_get("/v1/networks/{ref}", self.network_info)
        r.add_delete("/v1/networks/{ref}", self.undefine_network)
        r.add_get("/v1/networks/{ref}/xml", self.network_xml)
        r.add_put("/v1/networks/{ref}/xml", self.set_network_xml)
        r.add_put("/v1/networks/{ref}/autostart", self.network_autostart)
        r.add_get("/v1/networks/{ref}/leases", self.network_leases)
        r.add_post("/v1/networks/{ref}/start", self.start_network)
        r.add_post("/v1/networks/{ref}/destroy", self.destroy_network)
        r.add_post("/v1/networks/{ref}/update", self.update_network)
        r.add_get("/v1/events", self.events)
        r.add_get("/v1/events/history", self.history)
        from .audit import audit_middleware
        from .cpu_routes import add_cpu_routes
        from .disk_routes import add_disk_routes
        from .host_routes import add_host_routes
        from .openapi import serve_openapi
        from .snapshot_routes import add_snapshot_routes
        from .stats_routes import add_stats_routes
        from .storage_routes import add_storage_routes

        add_storage_routes(r, self.s)
        add_disk_routes(r, self.s)
        add_snapshot_routes(r, self.s)
        add_host_routes(r, self.s)
        add_stats_routes(r, self.s)
        add_cpu_routes(r, self.s)
        add_remote_routes(r, self.s, self.remote or RemoteInfo())
        r.add_get("/openapi.json", serve_openapi)  # the contract of every route above: docs/openapi.yaml
        app.middlewares.insert(0, audit_middleware)  # outermost: it sees the final reply, errors included
        if self.remote is not None:  # served over TCP too: tokens, scopes, failure limit (innermost)
            from .auth import auth_middleware

            app.middlewares.append(auth_middleware(self.s.tokens))
        return app

    # ------------------------------------------------------------------ host
    async def version(self, request: web.Request) -> web.Response:
        return reply(await self.s.host.version())

    async def host(self, request: web.Request) -> web.Response:
        return reply(await self.s.host.info())

    async def capabilities(self, request: web.Request) -> web.Response:
        xml, data = await self.s.node.capabilities()
        return web.json_response({"xml": xml, "capabilities": data})

    async def validate(self, request: web.Request) -> web.Response:
        return reply({"checks": await self.s.host.validate()})

    # --------------------------------------------------------------- domains
    async def list_domains(self, request: web.Request) -> web.Response:
        return reply({"domains": self.domains.list_all()})

    async def define(self, request: web.Request) -> web.Response:
        return reply(await self.domains.define(_xml_field(await _body(request))), status=201)

    async def create(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return reply(await self.domains.create(_xml_field(body), paused=body_flag(body, "paused")), status=201)

    async def info(self, request: web.Request) -> web.Response:
        return reply(await self.domains.info(request.match_info["ref"]))

    async def undefine(self, request: web.Request) -> web.Response:
        return reply(await self.domains.undefine(
            request.match_info["ref"], snapshots_metadata=_flag(request, "snapshots_metadata"),
            managed_save=_flag(request, "managed_save")))

    async def state(self, request: web.Request) -> web.Response:
        return reply(self.domains.state(request.match_info["ref"]))

    async def get_xml(self, request: web.Request) -> web.Response:
        xml = self.domains.get_xml(request.match_info["ref"], _flag(request, "inactive"),
                                   security_info=_flag(request, "security_info"))
        return web.json_response({"xml": xml})

    async def set_xml(self, request: web.Request) -> web.Response:
        return reply(await self.domains.set_xml(request.match_info["ref"], _xml_field(await _body(request))))

    async def autostart(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return reply(await self.domains.set_autostart(request.match_info["ref"], body_flag(body, "enabled", True)))

    async def action(self, request: web.Request) -> web.Response:
        ref, action = request.match_info["ref"], request.match_info["action"]
        if action not in DOMAIN_ACTIONS:
            raise NotFound(f"unknown domain action '{action}'; one of {', '.join(DOMAIN_ACTIONS)}")
        body = await _body(request)
        d = self.domains
        summary: DomainSummary
        if action == "start":
            summary = await d.start(ref, paused=body_flag(body, "paused"), force_boot=body_flag(body, "force_boot"))
        elif action == "shutdown":
            timeout = body.get("timeout")
            if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
                raise InvalidArgument(f"shutdown timeout must be a positive number of seconds, not {timeout!r}")
            return reply(await d.shutdown(ref, timeout))
        elif action == "destroy":
            summary = await d.destroy(ref)
        elif action == "reboot":
            summary = await d.reboot(ref)
        elif action == "reset":
            summary = await d.reset(ref)
        elif action == "suspend":
            summary = await d.suspend(ref)
        else:
            summary = await d.resume(ref)
        return reply(summary)

    # ------------------------------------------------------------ interfaces
    async def interfaces(self, request: web.Request) -> web.Response:
        rows = self.s.nics.list_interfaces(request.match_info["ref"], inactive=_flag(request, "inactive"))
        return reply({"interfaces": rows})

    async def interface_addresses(self, request: web.Request) -> web.Response:
        rows = self.s.nics.addresses(request.match_info["ref"], request.query.get("source", "lease"))
        return reply({"interfaces": rows})

    async def interface_stats(self, request: web.Request) -> web.Response:
        return reply(self.s.nics.stats(request.match_info["ref"], request.match_info["dev"]))

    async def get_link(self, request: web.Request) -> web.Response:
        state = self.s.nics.get_link(request.match_info["ref"], request.match_info["dev"],
                                     inactive=_flag(request, "inactive"))
        return web.json_response({"state": state})

    async def set_link(self, request: web.Request) -> web.Response:
        body = await _body(request)
        state = body.get("state")
        if state not in ("up", "down"):
            raise InvalidArgument(f"link state must be 'up' or 'down', not {state!r}")
        live, config = _scope(body)
        await self.s.nics.set_link(request.match_info["ref"], request.match_info["dev"], state, live=live,
                                   config=config)
        return web.json_response({"state": state})

    async def attach_interface(self, request: web.Request) -> web.Response:
        body = await _body(request)
        live, config = _scope(body)
        return reply(await self.s.nics.attach(request.match_info["ref"], _xml_field(body), live=live, config=config))

    async def detach_interface(self, request: web.Request) -> web.Response:
        body = await _body(request)
        kind = body.get("type")
        if not isinstance(kind, str):
            raise InvalidArgument("detach needs the interface 'type'")
        mac = body.get("mac")
        live, config = _scope(body)
        return reply(await self.s.nics.detach(request.match_info["ref"], kind, mac if isinstance(mac, str) else None,
                                              live=live, config=config))

    # -------------------------------------------------------------- networks
    async def list_networks(self, request: web.Request) -> web.Response:
        return reply({"networks": self.s.networks.list_all()})

    async def define_network(self, request: web.Request) -> web.Response:
        return reply(await self.s.networks.define(_xml_field(await _body(request))), status=201)

    async def create_network(self, request: web.Request) -> web.Response:
        return reply(await self.s.networks.create(_xml_field(await _body(request))), status=201)

    async def network_info(self, request: web.Request) -> web.Response:
        return reply(self.s.networks.info(request.match_info["ref"]))

    async def undefine_network(self, request: web.Request) -> web.Response:
        return reply(await self.s.networks.undefine(request.match_info["ref"]))

    async def network_xml(self, request: web.Request) -> web.Response:
        xml = self.s.networks.get_xml(request.match_info["ref"], inactive=_flag(request, "inactive"))
        return web.json_response({"xml": xml})

    async def set_network_xml(self, request: web.Request) -> web.Response:
        return reply(await self.s.networks.set_xml(request.match_info["ref"], _xml_field(await _body(request))))

    async def network_autostart(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return reply(await self.s.networks.set_autostart(request.match_info["ref"], body_flag(body, "enabled", True)))

    async def network_leases(self, request: web.Request) -> web.Response:
        leases = self.s.networks.dhcp_leases(request.match_info["ref"], request.query.get("mac"))
        return reply({"leases": leases})

    async def start_network(self, request: web.Request) -> web.Response:
        return reply(await self.s.networks.start(request.match_info["ref"]))

    async def destroy_network(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return reply(await self.s.networks.destroy(request.match_info["ref"], force=body_flag(body, "force")))

    async def update_network(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return reply(await self.s.networks.update(
            request.match_info["ref"], command=body.get("command"), section=body.get("section"),
            xml=body.get("xml"), live=body_flag(body, "live"), config=body_flag(body, "config")))

    # ---------------------------------------------------------------- events
    async def _stream(self, request: web.Request, domain: str | None) -> web.StreamResponse:
        events = self.s.bus.subscribe(domain)  # before the answer starts: no event is missed
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        async for record in events:
            await resp.write(dumps(record).encode() + b"\n")
        return resp

    async def events(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, None)

    async def domain_events(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, self.domains.uuid(request.match_info["ref"]))

    async def history(self, request: web.Request) -> web.Response:
        return reply({"events": self.s.bus.history(request.query.get("domain"))})
