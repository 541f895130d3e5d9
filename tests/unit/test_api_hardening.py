"""The REST layer's rules on a real API (real managers over a temporary root): booleans are JSON
booleans, fields the contract does not list are refused by name, deep XML is a 400, and every change
is one audit line with the caller's uid. (A huge body and an unknown path: tests/unit/test_api_errors.py
on main, from branch failure14.)"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from tests.unit.api_world import api_session

DOMAIN = "<domain type='qemu'><name>{}</name><memory unit='MiB'>64</memory></domain>"


def exchange(tmp_path: Path, *requests: tuple[str, str, Any]) -> list[tuple[int, Any]]:
    """Send each (method, path, json body or raw bytes) in turn; their (status, JSON reply)."""
    async def run() -> list[tuple[int, Any]]:
        out = []
        async with api_session(tmp_path) as http:
            for method, path, body in requests:
                kw: dict[str, Any] = {"data": body, "headers": {"Content-Type": "application/json"}} \
                    if isinstance(body, bytes) else {"json": body}
                async with http.request(method, path, **kw) as resp:
                    out.append((resp.status, await resp.json()))
        return out

    return asyncio.run(run())


@pytest.mark.parametrize("value", ["false", 0, 1, None, [], {}])
def test_a_boolean_field_takes_only_json_true_or_false(tmp_path: Path, value: Any) -> None:
    (define, _), (status, reply) = exchange(tmp_path, ("POST", "/v1/domains", {"xml": DOMAIN.format("b1")}),
                                            ("POST", "/v1/domains/b1/start", {"paused": value}))
    assert define == 201
    assert status == 400
    assert reply == {"error": {"code": "invalid-argument",
                               "message": f"field 'paused' must be true or false (a JSON boolean), not {value!r}"}}


def test_a_string_false_on_autostart_no_longer_turns_it_on(tmp_path: Path) -> None:
    replies = exchange(tmp_path, ("POST", "/v1/domains", {"xml": DOMAIN.format("b2")}),
                       ("PUT", "/v1/domains/b2/autostart", {"enabled": "false"}),
                       ("GET", "/v1/domains/b2", None))
    assert replies[1][0] == 400 and "'enabled'" in replies[1][1]["error"]["message"]
    assert replies[2][1]["autostart"] is False


@pytest.mark.parametrize(("method", "path", "body", "message"), [
    ("POST", "/v1/domains/u1/start", {"pausd": True},
     ("unknown field 'pausd' in the body of POST /v1/domains/{ref}/start; it takes force_boot, paused "
      "(see /openapi.json)")),
    ("POST", "/v1/domains", {"xml": DOMAIN.format("u1"), "force": True},
     "unknown field 'force' in the body of POST /v1/domains; it takes xml (see /openapi.json)"),
    ("POST", "/v1/networks/n1/destroy", {"forse": True},
     "unknown field 'forse' in the body of POST /v1/networks/{ref}/destroy; it takes force (see /openapi.json)"),
    ("POST", "/v1/domains/u1/reboot", {"x": 1},
     "unknown field 'x' in the body of POST /v1/domains/{ref}/reboot; it takes no fields (see /openapi.json)"),
])
def test_fields_the_contract_does_not_list_are_refused_by_name(tmp_path: Path, method: str, path: str,
                                                                body: dict[str, Any], message: str) -> None:
    [(status, reply)] = exchange(tmp_path, (method, path, body))
    assert (status, reply) == (400, {"error": {"code": "invalid-argument", "message": message}})


def test_deep_xml_through_the_api_is_a_400(tmp_path: Path) -> None:
    deep = "<domain type='qemu'><name>d</name><metadata>" + "<a>" * 50_000 + "</a>" * 50_000 + "</metadata></domain>"
    [(status, reply)] = exchange(tmp_path, ("POST", "/v1/domains", {"xml": deep}))
    assert status == 400 and reply["error"]["code"] == "invalid-argument"
    assert "more than 256 levels deep" in reply["error"]["message"]


def test_every_change_is_one_audit_line_with_the_callers_uid(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pyvirt.audit")
    secret = DOMAIN.format("a1").replace("</domain>", "<devices><graphics type='vnc' passwd='hunter2'/></devices>"
                                                      "</domain>")
    exchange(tmp_path, ("POST", "/v1/domains", {"xml": secret}),
             ("GET", "/v1/domains/a1", None),
             ("POST", "/v1/domains/a1/shutdown", {}),
             ("DELETE", "/v1/domains/a%0Ab", None),
             ("DELETE", "/v1/domains/a1", None))
    lines = [r.getMessage() for r in caplog.records if r.name == "pyvirt.audit"]
    me = f"uid={os.getuid()} pid={os.getpid()}"
    assert lines == [
        f'{me} POST /v1/domains domain="a1" -> 201',
        f"{me} POST /v1/domains/a1/shutdown domain=a1 -> 409 operation-invalid",
        f"{me} DELETE /v1/domains/a%0Ab domain=a%0Ab -> 404 not-found",
        f"{me} DELETE /v1/domains/a1 domain=a1 -> 200",
    ]
    assert not any("hunter2" in r.getMessage() for r in caplog.records)
