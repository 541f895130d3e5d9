"""The daemon's typed answers as JSON: the only place they become dicts.

Field names are the JSON keys (results.py), so the wire format is what the
dataclasses say, checked against api/openapi.yaml by the tests.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from ..daemon.results import DiskChange, InterfaceChange


def to_json(value: Any) -> Any:
    """A result dataclass (or a list/tuple of them, or a plain value) as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def reply(value: Any, status: int = 200) -> web.Response:
    return web.json_response(to_json(value), status=status)


def device_reply(change: DiskChange | InterfaceChange) -> web.Response:
    """attach-/detach-device: the change, tagged with the kind of device."""
    kind = "disk" if isinstance(change, DiskChange) else "interface"
    return web.json_response({"device": kind, **to_json(change)})
