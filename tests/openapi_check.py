"""Check HTTP exchanges with pyvirtd against its REST contract, src/pyvirt/api/openapi.yaml.

One exchange is a dict, the shape the client's PYVIRT_API_TRACE hook writes
(pyvirt.client.transport): method, path (as sent, percent-encoded), query (raw),
status, content_type, then what was seen of the bodies: ``request`` (JSON) or
``request_type`` (raw bytes), and ``response`` (JSON), ``response_text`` (a body
that is not JSON), ``record`` (one line of an NDJSON stream), ``frame`` (the
console WebSocket's first text frame) or ``response_bytes`` (a raw download).

``Contract.check(exchange)`` returns the violations as sentences that name the
request and the mismatch; an empty list means the exchange matches the document.
The fake daemon of the unit tests and the integration tests' trace fixture both
use it, so the canned replies, the client and the real daemon answer to one file.
"""
from __future__ import annotations

import functools
import json
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

DOCUMENT = Path(__file__).resolve().parents[1] / "src/pyvirt/api/openapi.yaml"
BASE = "urn:pyvirt:openapi"  # the document's URI for $ref resolution
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
MAX_MESSAGE = 400


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class Operation:
    """One documented (method, path template) and where it sits in the document."""

    method: str
    template: str
    pointer: str  # JSON pointer of the operation object
    spec: dict[str, Any]
    parameters: tuple[tuple[str, dict[str, Any], str], ...]  # (location, parameter, pointer of its schema)


@dataclass
class Tally:
    """What a batch of checks covered (for the integration run's summary line)."""

    exchanges: int = 0
    records: int = 0
    routes: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)  # requests outside the document, refused as it says


class Contract:
    """The OpenAPI document, ready to check exchanges against."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self._registry: Registry = Registry().with_resource(BASE, DRAFT202012.create_resource(doc))
        self._operations: list[Operation] = []
        for template, item in doc["paths"].items():
            shared = item.get("parameters", [])
            for method in METHODS:
                if method in item:
                    pointer = f"/paths/{_escape(template)}/{method}"
                    params = self._parameters(shared, f"/paths/{_escape(template)}/parameters")
                    params += self._parameters(item[method].get("parameters", []), f"{pointer}/parameters")
                    self._operations.append(Operation(method.upper(), template, pointer, item[method], params))

    @classmethod
    @functools.cache
    def load(cls) -> Contract:
        return cls(yaml.safe_load(DOCUMENT.read_text(encoding="utf-8")))

    # ------------------------------------------------------------------ the document
    def resolve(self, node: dict[str, Any], pointer: str) -> tuple[dict[str, Any], str]:
        """Follow an OpenAPI-level $ref (responses, parameters, request bodies): (object, its pointer)."""
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/"), f"only local references are supported, not {ref}"
            pointer = ref[1:]
            node = self.doc
            for part in pointer.strip("/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, pointer

    def _parameters(self, raw: list[Any], pointer: str) -> tuple[tuple[str, dict[str, Any], str], ...]:
        out = []
        for i, p in enumerate(raw):
            param, where = self.resolve(p, f"{pointer}/{i}")
            out.append((param["in"], param, f"{where}/schema"))
        return tuple(out)

    @functools.cache  # noqa: B019 - one Contract per document, kept for the whole run
    def validator(self, pointer: str) -> Any:
        """A JSON Schema (OAS 3.1 dialect) validator for the schema at ``pointer``."""
        return OAS31Validator({"$ref": f"{BASE}#{pointer}"}, registry=self._registry,
                              format_checker=oas31_format_checker)

    def schema_problem(self, pointer: str, instance: Any) -> str | None:
        """None when ``instance`` matches the schema at ``pointer``, else the best mismatch in words."""
        err = best_match(self.validator(pointer).iter_errors(instance))
        if err is None:
            return None
        text = f"{err.json_path}: {err.message}"
        return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."

    def operations(self) -> list[Operation]:
        return list(self._operations)

    # ------------------------------------------------------------------------ routes
    def match(self, method: str, raw_path: str) -> tuple[Operation | None, dict[str, str], str]:
        """The operation for a request: (operation, path parameters, '') or (None, {}, why not)."""
        segments = [urllib.parse.unquote(s) for s in raw_path.split("/")]
        found: list[tuple[int, Operation, dict[str, str]]] = []
        templates = set()
        for op in self._operations:
            parts = op.template.split("/")
            if len(parts) != len(segments):
                continue
            params: dict[str, str] = {}
            literal = 0
            for t, s in zip(parts, segments, strict=False):
                if t.startswith("{") and t.endswith("}"):
                    if not s:
                        break
                    params[t[1:-1]] = s
                elif t == s:
                    literal += 1
                else:
                    break
            else:
                templates.add(op.template)
                if op.method == method:
                    found.append((literal, op, params))
        if found:
            _, op, params = max(found, key=lambda f: f[0])  # concrete paths before templated ones
            return op, params, ""
        if templates:
            allowed = sorted({op.method for op in self._operations if op.template in templates})
            return None, {}, (f"method {method} is not documented for {' or '.join(sorted(templates))} "
                              f"(documented: {', '.join(allowed)})")
        return None, {}, "no path of the document matches (an undocumented route)"

    # ------------------------------------------------------------------------ checks
    def check(self, ex: dict[str, Any], *, refused_requests_ok: bool = True) -> list[str]:
        """Every way ``ex`` departs from the document (empty: it matches).

        A request that breaks the document is acceptable when the daemon refused it with a documented
        4xx error (that refusal is what the document promises), unless ``refused_requests_ok`` is off:
        the fake daemon turns it off, since the client must never send such a request. A request
        outside the document's paths is judged by its ``x-unrouted`` responses (404, 405).
        """
        method, path, query = ex["method"].upper(), ex["path"], ex.get("query") or ""
        status = int(ex["status"])
        where = f"{method} {path}{'?' + query if query else ''} -> {status}"
        op, params, why = self.match(method, path)
        if op is None:
            return self._unrouted_problems(where, why, status, ex, refused_requests_ok)
        problems = []
        request = self._request_problems(op, params, query, ex)
        answer, is_error = self._response_problems(op, status, ex)
        if request and not (refused_requests_ok and is_error and 400 <= status < 500 and not answer):
            problems += request
        problems += answer
        return [f"{where} ({op.method} {op.template}): {p}" for p in problems]

    def _unrouted_problems(self, where: str, why: str, status: int, ex: dict[str, Any],
                           refused_requests_ok: bool) -> list[str]:
        """A request outside ``paths``: acceptable only when refused as the document's ``x-unrouted`` says."""
        unrouted = self.doc.get("x-unrouted", {})
        if not refused_requests_ok or str(status) not in unrouted.get("responses", {}):
            return [f"{where}: {why}"]
        answer, _ = self._response_problems(Operation("*", "*", "/x-unrouted", unrouted, ()), status, ex)
        return [f"{where} (outside the paths: {why}): {p}" for p in answer]

    def _request_problems(self, op: Operation, params: dict[str, str], query: str, ex: dict[str, Any]) -> list[str]:
        problems = []
        for name, value in params.items():
            schema = next((s for where, p, s in op.parameters if where == "path" and p["name"] == name), None)
            if schema is None:
                problems.append(f"path parameter '{name}' is not described")
            elif (why := self.schema_problem(schema, value)) is not None:
                problems.append(f"path parameter '{name}': {why}")
        documented = {p["name"]: (p, s) for where, p, s in op.parameters if where == "query"}
        given = urllib.parse.parse_qsl(query, keep_blank_values=True)
        repeated: dict[str, list[str]] = {}
        for name, value in given:
            if name not in documented:
                problems.append(f"query parameter '{name}' is not documented "
                                f"(documented: {', '.join(sorted(documented)) or 'none'})")
            elif documented[name][0].get("schema", {}).get("type") == "array":
                repeated.setdefault(name, []).append(value)  # form style, exploded: ?a=1&a=2 is [1, 2]
            elif (why := self.schema_problem(documented[name][1], value)) is not None:
                problems.append(f"query parameter '{name}': {why}")
        for name, values in repeated.items():
            if (why := self.schema_problem(documented[name][1], values)) is not None:
                problems.append(f"query parameter '{name}': {why}")
        names = {n for n, _ in given}
        problems += [f"required query parameter '{n}' is missing" for n, (p, _) in documented.items()
                     if p.get("required") and n not in names]
        body_spec, body_pointer = self.resolve(op.spec["requestBody"], f"{op.pointer}/requestBody") \
            if "requestBody" in op.spec else (None, "")
        if "request" in ex:
            sent = "application/json"
        elif ex.get("request_type"):
            sent = media_type(ex["request_type"])
        else:
            sent = None
        if sent is None:
            if body_spec is not None and body_spec.get("required"):
                problems.append("the request has no body; the document requires one")
            return problems
        if body_spec is None:
            return problems + [f"the request has a {sent} body; the document describes none"]
        content = body_spec.get("content", {})
        if sent not in content:
            return problems + [f"the request body is {sent}; the document takes {', '.join(content)}"]
        if sent == "application/json" and "schema" in content[sent]:
            pointer = f"{body_pointer}/content/{_escape(sent)}/schema"
            if (why := self.schema_problem(pointer, ex["request"])) is not None:
                problems.append(f"request body {why}")
        return problems

    def _response_problems(self, op: Operation, status: int, ex: dict[str, Any]) -> tuple[list[str], bool]:
        """(problems, whether this status is a documented JSON error reply)."""
        responses = op.spec["responses"]
        raw = responses.get(str(status), responses.get("default"))
        if raw is None:
            return [f"status {status} is not documented (documented: {', '.join(sorted(responses))})"], False
        resp, pointer = self.resolve(raw, f"{op.pointer}/responses/{status}")
        content = resp.get("content", {})
        got = media_type(ex.get("content_type"))
        is_error = status >= 400 and "application/json" in content
        if status == 101:
            greeting = op.spec.get("x-websocket", {}).get("first-server-frame")
            if greeting is None:
                return [], False
            if "frame_bytes" in ex or "frame_text" in ex:
                return ["the first WebSocket frame is not the JSON greeting the document describes"], False
            why = self.schema_problem(greeting["$ref"][1:], ex["frame"]) if "frame" in ex else None
            return ([f"WebSocket greeting frame {why}"] if why else []), False
        if not content:
            return ([f"the reply has a {got} body; the document describes none"] if got else []), is_error
        if got not in content:
            return [(f"the reply is {got or 'without a content type'}; the document says "
                    f"{', '.join(content)}")], is_error
        schema = f"{pointer}/content/{_escape(got)}/schema"
        if "schema" not in content[got]:
            return [], is_error
        if got == "application/x-ndjson":
            if "record" in ex and (why := self.schema_problem(schema, ex["record"])) is not None:
                return [f"stream record {why}"], is_error
            return [], is_error
        if "response_text" in ex:
            return [f"the reply body is not JSON: {ex['response_text'][:200]!r}"], is_error
        if "response" in ex and (why := self.schema_problem(schema, ex["response"])) is not None:
            return [f"reply body {why}"], is_error
        return [], is_error


def check_trace(lines: Iterable[str], tally: Tally | None = None) -> list[str]:
    """Check every line a PYVIRT_API_TRACE file holds; the violations, each naming its request."""
    contract = Contract.load()
    problems = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            ex = json.loads(line)
        except ValueError as exc:
            problems.append(f"trace line {n} is not JSON ({exc}): {line[:200]!r}")
            continue
        found = contract.check(ex)
        problems += found
        if tally is not None:
            if not found and 400 <= int(ex["status"]) < 500:
                tally.refused += contract.check(ex, refused_requests_ok=False)
            if "record" in ex:
                tally.records += 1
            else:
                tally.exchanges += 1
            op, _, _ = contract.match(ex["method"].upper(), ex["path"])
            if op is not None:
                tally.routes.add(f"{op.method} {op.template}")
    return problems
