"""The HTTP layer's own refusals (no route, wrong method, body too large, console without an upgrade)
answer in the API's error shape with the code table's status, as docs/openapi.yaml documents them."""
from __future__ import annotations

import asyncio
import json
import types
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pyvirt import errors
from pyvirt.api.server import MAX_BODY, Api
from tests.openapi_check import Contract

MANAGERS = ("disks", "devices", "pools", "volumes", "snapshots", "consoles", "networks", "nics", "host", "bus")


def exchange(method: str, path: str, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    """(the exchange as the trace hook records it, the response headers) from the real app, no managers."""
    async def run() -> tuple[dict[str, Any], Any]:
        services = types.SimpleNamespace(**dict.fromkeys(MANAGERS))
        services.domains = types.SimpleNamespace(define=None)  # a body is refused before any call
        async with TestClient(TestServer(Api(services).app())) as client:  # type: ignore[arg-type]
            resp = await client.request(method, path, **kwargs)
            body = await resp.read()
            ex = {"method": method, "path": path, "query": "", "status": resp.status,
                  "content_type": resp.headers.get("Content-Type", "")}
            try:
                ex["response"] = json.loads(body)
            except ValueError:
                ex["response_text"] = body.decode(errors="replace")
            return ex, resp.headers

    return asyncio.run(run())


def refused(method: str, path: str, status: int, code: str, **kwargs: Any) -> tuple[str, Any]:
    """The refusal's message (after checking its status, shape, code and the contract) and its headers."""
    ex, headers = exchange(method, path, **kwargs)
    assert ex["status"] == status, ex
    assert ex["content_type"].startswith("application/json"), ex
    error = ex["response"]["error"]
    assert set(error) <= {"code", "message", "detail"} and error["code"] == code
    assert errors.from_dict(error).http_status == status  # the client rebuilds the class of this status
    assert Contract.load().check(ex) == []
    return error["message"], headers


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
def test_an_unknown_route_is_a_404_not_found(method: str) -> None:
    message, _ = refused(method, "/v1/nothing/here", 404, "not-found")
    assert message == f"no such API route: {method} /v1/nothing/here; the routes are listed in GET /openapi.json"


def test_a_wrong_method_is_a_405_method_not_allowed_with_allow() -> None:
    message, headers = refused("PATCH", "/v1/version", 405, "method-not-allowed")
    assert message == "PATCH is not allowed on /v1/version; it takes GET, HEAD"
    assert headers["Allow"] == "GET,HEAD"
    message, headers = refused("PUT", "/v1/domains", 405, "method-not-allowed")
    assert message == "PUT is not allowed on /v1/domains; it takes GET, HEAD, POST"


def test_a_get_on_a_domain_action_path_is_a_405() -> None:
    """/v1/domains/{ref}/{action} is routed for POST: GET there is a wrong method, as documented."""
    _, headers = refused("GET", "/v1/domains/x/frobnicate", 405, "method-not-allowed")
    assert headers["Allow"] == "POST"


def test_an_oversized_body_is_a_413_request_too_large() -> None:
    body = b'{"xml": "' + b"x" * MAX_BODY + b'"}'
    message, _ = refused("POST", "/v1/domains", 413, "request-too-large", data=body,
                         headers={"Content-Type": "application/json"})
    assert message.startswith(f"the body of POST /v1/domains is over the daemon's limit of {MAX_BODY} bytes")


def test_the_console_without_a_websocket_upgrade_is_a_400() -> None:
    message, _ = refused("GET", "/v1/domains/x/console", 400, "invalid-argument")
    assert message.startswith("GET /v1/domains/x/console is a WebSocket: send it as an upgrade")


def test_every_documented_json_body_may_be_refused_as_too_large() -> None:
    """The 413 is documented wherever the daemon reads a JSON body (not where the body is ignored)."""
    contract = Contract.load()
    missing = []
    for op in contract.operations():
        body = op.spec.get("requestBody")
        if body is None or body.get("$ref", "").endswith("/Ignored"):
            continue
        spec, _ = contract.resolve(body, "")
        if "application/json" in spec["content"] and "413" not in op.spec["responses"]:
            missing.append(f"{op.method} {op.template}")
    assert missing == []
