"""GET /openapi.json: the REST contract, openapi.yaml beside this module, served as JSON.

The YAML is read and converted once, on the first request that needs it (this
route, or a request body whose fields api/fields.py checks): PyYAML is imported
here only, inside the daemon, never on the CLI's path.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from aiohttp import web

DOCUMENT = Path(__file__).with_name("openapi.yaml")


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document as data (docs/openapi.yaml links to the same file)."""
    import yaml

    text = DOCUMENT.read_text(encoding="utf-8")
    data: dict[str, Any]
    if yaml.__with_libyaml__:  # libyaml reads it in 20 ms instead of 180
        data = yaml.load(text, Loader=yaml.CSafeLoader)
    else:
        data = yaml.safe_load(text)
    return data


@functools.cache
def _body() -> bytes:
    return json.dumps(document()).encode()


async def serve_openapi(request: web.Request) -> web.Response:
    return web.Response(body=_body(), content_type="application/json")
