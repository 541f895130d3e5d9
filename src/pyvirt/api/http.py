"""Request helpers every route module shares: the JSON body, the XML field, flags.

A body is a JSON object whose fields the contract lists (api/fields.py); a
boolean field is JSON ``true`` or ``false`` and nothing else: ``bool("false")``
is True, so a handler that trusted ``bool(...)`` would do the opposite of what
a caller who sent a string meant.
"""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..errors import InvalidArgument
from .fields import check_fields


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object ({} without a body); anything else is a clear InvalidArgument."""
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"request body is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    if not isinstance(data, dict):
        raise InvalidArgument("request body must be a JSON object")
    check_fields(request.method, request.rel_url.raw_path, data)
    return data


def xml_field(body: dict[str, Any], what: str = "domain") -> str:
    xml = body.get("xml")
    if not isinstance(xml, str) or not xml.strip():
        raise InvalidArgument(f"request needs a non-empty 'xml' string with the {what} XML")
    return xml


def query_flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "0") not in ("0", "", "false")


def body_flag(body: dict[str, Any], name: str, default: bool = False) -> bool:
    """A boolean field of the body: JSON true or false, ``default`` when absent; anything else is a 400."""
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidArgument(f"field {name!r} must be true or false (a JSON boolean), not {value!r}")
    return value


def scope(body: dict[str, Any]) -> tuple[bool, bool]:
    """(live, config) of a change to a domain: live unless the body says otherwise."""
    return body_flag(body, "live", True), body_flag(body, "config")
