"""The daemon's typed answers as JSON: the only place they become JSON text.

Field names are the JSON keys (results.py), so the wire format is what the
dataclasses say, checked against api/openapi.yaml by the tests. The encoder
asks for a result's fields only when it meets one (``default``), and takes
its ``__dict__`` as it is: no copy, no walk over ``fields()`` (1000 domain
summaries encode in ~1 ms, as plain dicts do).
"""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..daemon.results import DiskChange, InterfaceChange, MemoryChange


def dumps(value: Any) -> str:
    """Results (dataclasses, and dicts, lists or tuples of them) as JSON text.

    ``default=vars``: json calls it only for what it cannot encode itself, i.e. the result
    dataclasses, whose ``__dict__`` holds their fields in order; anything without one (a
    slotted or foreign object) still fails with json's TypeError, a bug the middleware reports."""
    return json.dumps(value, default=vars)


def reply(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=dumps)


def device_reply(change: DiskChange | InterfaceChange | MemoryChange) -> web.Response:
    """attach-/detach-device: the change, tagged with the kind of device."""
    kind = "disk" if isinstance(change, DiskChange) else "memory" if isinstance(change, MemoryChange) else "interface"
    return reply({"device": kind, **vars(change)})
