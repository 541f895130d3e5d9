"""REST route of domxml-to-native (virsh's command), thin as server.py.

    POST /v1/domains/native     {format: qemu-argv, xml}: the environment and argv a start would run
"""
from __future__ import annotations

from aiohttp import web

from ..daemon.services import Services
from ..errors import InvalidArgument
from .http import json_body
from .views import reply

FORMATS = ("qemu-argv",)


def add_native_routes(r: web.UrlDispatcher, s: Services) -> None:
    async def to_native(request: web.Request) -> web.Response:
        body = await json_body(request)
        fmt, xml = body.get("format"), body.get("xml")
        if fmt not in FORMATS:
            raise InvalidArgument(f"unsupported native format {fmt!r}; pyvirt converts to: {', '.join(FORMATS)}")
        if not isinstance(xml, str) or not xml:
            raise InvalidArgument("'xml' must be the domain XML text")
        native = await s.native.qemu_argv(xml)
        return reply({"format": fmt, "env": dict(native.env), "argv": native.argv, "notes": native.notes})

    r.add_post("/v1/domains/native", to_native)
