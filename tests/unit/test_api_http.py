"""The API's request body rules, on the real aiohttp app with no managers behind it."""
from __future__ import annotations

import asyncio
import types

from aiohttp.test_utils import TestClient, TestServer

from pyvirt.api.server import Api

MANAGERS = ("domains", "disks", "devices", "pools", "volumes", "snapshots", "consoles", "networks", "nics", "host",
            "bus")


def answers(body: bytes) -> tuple[int, dict[str, object]]:
    async def run() -> tuple[int, dict[str, object]]:
        services = types.SimpleNamespace(**dict.fromkeys(MANAGERS))
        services.domains = types.SimpleNamespace(define=None)  # the body is refused before any call
        app = Api(services).app()  # type: ignore[arg-type]
        async with TestClient(TestServer(app)) as client:
            resp = await client.post("/v1/domains", data=body, headers={"Content-Type": "application/json"})
            return resp.status, await resp.json()

    return asyncio.run(run())


def test_a_body_that_is_not_utf8_is_a_400_naming_the_byte() -> None:
    status, doc = answers(b'{"xml": "\xff"}')
    assert status == 400
    assert doc == {"error": {"code": "invalid-argument",
                             "message": "request body is not UTF-8 text: invalid start byte at byte 9"}}


def test_a_body_that_is_not_json_or_not_an_object_is_a_400() -> None:
    assert answers(b"{nope")[1]["error"]["message"].startswith("request body is not valid JSON")  # type: ignore[index]
    assert answers(b"[1, 2]") == (400, {"error": {"code": "invalid-argument",
                                                  "message": "request body must be a JSON object"}})
