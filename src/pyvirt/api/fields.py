"""Which fields each request body takes, read from the REST contract (openapi.yaml).

The document already lists every operation's fields (``additionalProperties:
false``); reading them from there, rather than from a second list in the
handlers, means a field the contract does not name is refused by name and
the two cannot drift apart.
"""
from __future__ import annotations

import functools
from typing import Any

from ..errors import InvalidArgument
from .openapi import document

METHODS = ("get", "put", "post", "delete", "patch")
Template = tuple[str, ...]


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _fields(doc: dict[str, Any], schema: Any) -> frozenset[str] | None:
    """The property names of a closed object schema (allOf merged), None when it takes any field."""
    schema = _resolve(doc, schema)
    if not isinstance(schema, dict):
        return None
    names: set[str] = set(schema.get("properties", {}))
    closed = schema.get("additionalProperties") is False
    for part in schema.get("allOf", ()):
        sub = _fields(doc, part)
        if sub is None:
            return None
        names |= sub
        closed = True
    return frozenset(names) if closed else None


@functools.cache
def _table() -> list[tuple[str, Template, frozenset[str]]]:
    doc = document()
    table = []
    for template, item in doc["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None or "requestBody" not in op:
                continue
            body = _resolve(doc, op["requestBody"])
            schema = body.get("content", {}).get("application/json", {}).get("schema")
            fields = _fields(doc, schema)
            if fields is not None:
                table.append((method.upper(), tuple(template.strip("/").split("/")), fields))
    return table


def _matches(template: Template, segments: list[str]) -> bool:
    return len(template) == len(segments) and all(
        t.startswith("{") or t == s for t, s in zip(template, segments, strict=True))


def body_fields(method: str, raw_path: str) -> tuple[str, frozenset[str]] | None:
    """(documented path, the fields its body takes) for a request, or None when the contract has no closed list.

    The most specific template wins: POST /v1/domains/{ref}/start before /v1/domains/{ref}/{action}."""
    segments = raw_path.strip("/").split("/")
    found = [(sum(not t.startswith("{") for t in tpl), tpl, fields)
             for m, tpl, fields in _table() if m == method and _matches(tpl, segments)]
    if not found:
        return None
    _, template, fields = max(found, key=lambda f: f[0])
    return "/" + "/".join(template), fields


def check_fields(method: str, raw_path: str, body: dict[str, Any]) -> None:
    """Refuse a body field the contract does not list for this operation, naming it and the ones it takes."""
    known = body_fields(method, raw_path)
    if known is None:
        return
    template, fields = known
    unknown = sorted(set(body) - fields)
    if unknown:
        takes = ", ".join(sorted(fields)) if fields else "no fields"
        raise InvalidArgument(f"unknown field {unknown[0]!r} in the body of {method} {template}; "
                              f"it takes {takes} (see /openapi.json)")
