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
from .http import json_body as _body, query_flag as _flag, xml_field as _xml_field

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




def _lease(lease: Any) -> dict[str, Any]:
    """One row of net-dhcp-leases (libvirt's virNetworkDHCPLease fields)."""
    from ..network.leases import format_expiry

    return {"expiry": lease.expiry, "expiry_time": format_expiry(lease.expiry), "mac": lease.mac,
            "type": lease.family, "ipaddr": lease.ip, "prefix": lease.prefix, "hostname": lease.hostname,
            "clientid": lease.client_id, "iaid": lease.iaid}


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
        r.add_get("/v1/domains/{ref}/interfaces", self.interfaces)
        r.add_post("/v1/domains/{ref}/interfaces", self.attach_interface)
        r.add_post("/v1/domains/{ref}/interfaces/detach", self.detach_interface)
        r.add_get("/v1/domains/{ref}/interfaces/addresses", self.interface_addresses)
        r.add_get("/v1/domains/{ref}/interfaces/{dev}/stats", self.interface_stats)
        r.add_get("/v1/domains/{ref}/interfaces/{dev}/link", self.get_link)
        r.add_put("/v1/domains/{ref}/interfaces/{dev}/link", self.set_link)
        r.add_get("/v1/domains/{ref}/console", self.console.handle)
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
        from .disk_routes import add_disk_routes
        from .openapi import serve_openapi
        from .snapshot_routes import add_snapshot_routes
        from .storage_routes import add_storage_routes

        add_storage_routes(r, self.daemon)
        add_disk_routes(r, self.daemon)
        add_snapshot_routes(r, self.daemon)
        r.add_get("/openapi.json", serve_openapi)  # the contract of every route above: docs/openapi.yaml
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
        return web.json_response(await self.domains.undefine(
            request.match_info["ref"], snapshots_metadata=_flag(request, "snapshots_metadata")))

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

    # ------------------------------------------------------------ interfaces
    async def interfaces(self, request: web.Request) -> web.Response:
        rows = self.daemon.nics.list(request.match_info["ref"], inactive=_flag(request, "inactive"))
        return web.json_response({"interfaces": rows})

    async def interface_addresses(self, request: web.Request) -> web.Response:
        source = request.query.get("source", "lease")
        rows = self.daemon.nics.addresses(request.match_info["ref"], source)
        return web.json_response({"interfaces": rows})

    async def interface_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.daemon.nics.stats(request.match_info["ref"], request.match_info["dev"]))

    async def get_link(self, request: web.Request) -> web.Response:
        state = self.daemon.nics.get_link(request.match_info["ref"], request.match_info["dev"],
                                          inactive=_flag(request, "inactive"))
        return web.json_response({"state": state})

    async def set_link(self, request: web.Request) -> web.Response:
        body = await _body(request)
        state = body.get("state")
        if state not in ("up", "down"):
            raise InvalidArgument(f"link state must be 'up' or 'down', not {state!r}")
        await self.daemon.nics.set_link(request.match_info["ref"], request.match_info["dev"], state,
                                        live=bool(body.get("live", True)), config=bool(body.get("config")))
        return web.json_response({"state": state})

    async def attach_interface(self, request: web.Request) -> web.Response:
        body = await _body(request)
        row = await self.daemon.nics.attach(request.match_info["ref"], _xml_field(body),
                                            live=bool(body.get("live", True)), config=bool(body.get("config")))
        return web.json_response(row)

    async def detach_interface(self, request: web.Request) -> web.Response:
        body = await _body(request)
        kind = body.get("type")
        if not isinstance(kind, str):
            raise InvalidArgument("detach needs the interface 'type'")
        mac = body.get("mac")
        row = await self.daemon.nics.detach(request.match_info["ref"], kind, mac if isinstance(mac, str) else None,
                                            live=bool(body.get("live", True)), config=bool(body.get("config")))
        return web.json_response(row)

    # -------------------------------------------------------------- networks
    async def list_networks(self, request: web.Request) -> web.Response:
        return web.json_response({"networks": self.daemon.networks.list()})

    async def define_network(self, request: web.Request) -> web.Response:
        entry = await self.daemon.networks.define(_xml_field(await _body(request)))
        return web.json_response(entry.summary(), status=201)

    async def create_network(self, request: web.Request) -> web.Response:
        entry = await self.daemon.networks.create(_xml_field(await _body(request)))
        return web.json_response(entry.summary(), status=201)

    async def network_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.daemon.networks.info(request.match_info["ref"]))

    async def undefine_network(self, request: web.Request) -> web.Response:
        entry = await self.daemon.networks.undefine(request.match_info["ref"])
        return web.json_response(entry.summary())

    async def network_xml(self, request: web.Request) -> web.Response:
        xml = self.daemon.networks.get_xml(request.match_info["ref"], inactive=_flag(request, "inactive"))
        return web.json_response({"xml": xml})

    async def set_network_xml(self, request: web.Request) -> web.Response:
        entry = await self.daemon.networks.set_xml(request.match_info["ref"], _xml_field(await _body(request)))
        return web.json_response(entry.summary())

    async def network_autostart(self, request: web.Request) -> web.Response:
        body = await _body(request)
        entry = await self.daemon.networks.set_autostart(request.match_info["ref"], bool(body.get("enabled", True)))
        return web.json_response(entry.summary())

    async def network_leases(self, request: web.Request) -> web.Response:
        leases = self.daemon.networks.leases(request.match_info["ref"], request.query.get("mac"))
        return web.json_response({"leases": [_lease(lease) for lease in leases]})

    async def start_network(self, request: web.Request) -> web.Response:
        entry = await self.daemon.networks.start(request.match_info["ref"])
        return web.json_response(entry.summary())

    async def destroy_network(self, request: web.Request) -> web.Response:
        body = await _body(request)
        return web.json_response(await self.daemon.networks.destroy(request.match_info["ref"],
                                                                    force=bool(body.get("force"))))

    async def update_network(self, request: web.Request) -> web.Response:
        body = await _body(request)
        entry = await self.daemon.networks.update(request.match_info["ref"], body)
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
