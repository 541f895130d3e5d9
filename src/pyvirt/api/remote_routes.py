"""REST routes of remote access: API tokens and the TLS listener's identity.

    GET    /v1/remote          {listen, fingerprint}: the TCP listener (null when off)
    GET    /v1/tokens          the tokens (never their secrets)
    POST   /v1/tokens          {name, scope}: a new token; its secret is in this answer only
    DELETE /v1/tokens/{ref}    revoke by name or id
"""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..daemon.services import Services
from ..errors import InvalidArgument
from .http import json_body
from .views import reply


@dataclass(frozen=True)
class RemoteInfo:
    """What pyvirtd's composition root knows of its TCP listener."""

    listen: str | None = None
    fingerprint: str | None = None


class RemoteRoutes:
    """Handlers look the token manager up per request, so the app can be built over a partial Services (tests)."""

    def __init__(self, services: Services, info: RemoteInfo) -> None:
        self.s = services
        self.info = info

    async def remote(self, request: web.Request) -> web.Response:
        return reply(self.info)

    async def list_tokens(self, request: web.Request) -> web.Response:
        return reply({"tokens": self.s.tokens.list()})

    async def create_token(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        name, scope = body.get("name"), body.get("scope", "admin")
        if not isinstance(name, str) or not isinstance(scope, str):
            raise InvalidArgument("a token needs a 'name' string (and a 'scope': read-only or admin)")
        return reply(self.s.tokens.create(name, scope), status=201)

    async def revoke_token(self, request: web.Request) -> web.Response:
        return reply(self.s.tokens.revoke(request.match_info["ref"]))


def add_remote_routes(r: web.UrlDispatcher, services: Services, info: RemoteInfo) -> None:
    routes = RemoteRoutes(services, info)
    r.add_get("/v1/remote", routes.remote)
    r.add_get("/v1/tokens", routes.list_tokens)
    r.add_post("/v1/tokens", routes.create_token)
    r.add_delete("/v1/tokens/{ref}", routes.revoke_token)
