"""docs/openapi.yaml is the REST contract: valid OpenAPI 3.1, the same routes as the daemon's
aiohttp app (no route without documentation, no documented route that is not there), served at
GET /openapi.json, the error table of pyvirt.errors, and a checker that names what departs from it."""
from __future__ import annotations

import asyncio
import json
import os
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from openapi_spec_validator import OpenAPIV31SpecValidator

from pyvirt import errors
from pyvirt.api.server import Api
from pyvirt.client import connect
from pyvirt.client.transport import TRACE_ENV
from pyvirt.daemon.results import DomainSummary, ShutdownResult
from tests.openapi_check import DOCUMENT, Contract, Tally, check_trace
from tests.unit.fakepyvirtd import domain_xml, fake_daemon

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_ACTIONS = ("start", "shutdown", "destroy", "reboot", "reset", "suspend", "resume")


def load() -> dict[str, Any]:
    return yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))


def sample_path(template: str) -> str:
    """A concrete path for a template: each {param} becomes 'x'."""
    return "/".join("x" if p.startswith("{") else p for p in template.split("/"))


class _Recorder:
    """A stand-in DomainManager: records the verb called and answers with an empty summary."""

    def __init__(self) -> None:
        self.called: list[str] = []

    def __getattr__(self, name: str) -> Any:
        async def verb(*args: Any, **kwargs: Any) -> Any:
            self.called.append(name)
            if name == "shutdown":
                return ShutdownResult("running", destroyed=False)
            return DomainSummary(None, name, "0", "shut off", "unknown", True, False)
        return verb


def stand_in_app(domains: Any = None) -> Any:
    """The real Api app over a daemon with no managers: enough to route, not to answer."""
    managers = ("disks", "devices", "pools", "volumes", "snapshots", "consoles", "networks", "nics", "host", "bus")
    return Api(types.SimpleNamespace(domains=domains, **dict.fromkeys(managers))).app()


def test_document_is_valid_openapi_3_1():
    doc = load()
    assert doc["openapi"].startswith("3.1")
    errors_found = [e.message for e in OpenAPIV31SpecValidator(doc).iter_errors()]
    assert errors_found == []


def test_docs_openapi_yaml_is_the_packaged_file():
    link = ROOT / "docs/openapi.yaml"
    assert link.is_symlink() and os.readlink(link) == "../src/pyvirt/api/openapi.yaml"
    assert link.resolve() == DOCUMENT.resolve()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "openapi.yaml" in data["tool"]["setuptools"]["package-data"]["pyvirt.api"]
    assert any(d.startswith("pyyaml") for d in data["project"]["dependencies"])


def test_every_app_route_is_documented_and_every_documented_route_exists():
    app = stand_in_app()
    contract = Contract.load()
    documented = {(op.method, op.template) for op in contract.operations()}
    app_routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}

    async def resolve(method: str, path: str) -> Any:
        return await app.router.resolve(make_mocked_request(method, path, app=app))

    covered = set()
    for method, template in sorted(documented):
        match = asyncio.run(resolve(method, sample_path(template)))
        assert match.http_exception is None, f"documented {method} {template} is not a route of the app"
        canonical = match.route.resource.canonical
        # the app's template, filled with what the request gave it, must be the documented path
        filled = "/".join(match.get(p[1:-1], p) if p.startswith("{") else p for p in canonical.split("/"))
        assert filled == sample_path(template) and (canonical == template or "{action}" in canonical), \
            f"documented {method} {template} is served by the app's {canonical}"
        covered.add((method, canonical))
    assert sorted(app_routes - covered) == [], "routes of the app missing from docs/openapi.yaml"
    actions = {t.rsplit("/", 1)[1] for m, t in documented if m == "POST" and t.count("/") == 4
               and t.startswith("/v1/domains/{ref}/") and t.rsplit("/", 1)[1] in DOMAIN_ACTIONS}
    assert actions == set(DOMAIN_ACTIONS)


def test_documented_domain_actions_are_the_ones_the_app_takes():
    async def run() -> tuple[list[tuple[str, int]], list[str]]:
        recorder = _Recorder()
        async with TestClient(TestServer(stand_in_app(recorder))) as client:
            out = []
            for action in (*DOMAIN_ACTIONS, "frobnicate"):
                resp = await client.post(f"/v1/domains/x/{action}", json={})
                out.append((action, resp.status))
            return out, recorder.called

    statuses, called = asyncio.run(run())
    assert statuses == [(a, 200) for a in DOMAIN_ACTIONS] + [("frobnicate", 404)]
    assert called == list(DOMAIN_ACTIONS)


def test_get_openapi_json_answers_the_document():
    async def get() -> tuple[int, str, Any]:
        async with TestClient(TestServer(stand_in_app())) as client:
            resp = await client.get("/openapi.json")
            return resp.status, resp.content_type, await resp.json()

    status, content_type, body = asyncio.run(get())
    assert (status, content_type) == (200, "application/json")
    assert body == json.loads(json.dumps(load()))
    problems = Contract.load().check({"method": "GET", "path": "/openapi.json", "query": "", "status": status,
                                      "content_type": content_type, "response": body})
    assert problems == []


def test_error_code_table_is_pyvirt_errors():
    table = load()["components"]["schemas"]["ErrorCode"]["oneOf"]
    documented = {row["const"]: (row["x-class"], row["x-status"]) for row in table}

    def classes(cls: type[errors.PyvirtError]) -> list[type[errors.PyvirtError]]:
        return [cls] + [c for sub in cls.__subclasses__() for c in classes(sub)]

    actual = {c.code: (c.__name__, c.http_status) for c in classes(errors.PyvirtError)}
    assert documented == actual
    # each error response allows exactly the codes of its status
    responses = load()["components"]["responses"]
    for name, status in (("BadRequest", 400), ("NotFound", 404), ("MethodNotAllowed", 405), ("TooLarge", 413),
                         ("Conflict", 409), ("HostError", 422), ("ServerError", 500)):
        code = responses[name]["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"][
            "properties"]["code"]
        allowed = set(code.get("enum", [code.get("const")]))
        assert allowed == {c for c, (_, s) in actual.items() if s == status}, name


# ------------------------------------------------------------------------------ the checker
def ex(method: str, path: str, status: int, response: Any = None, **more: Any) -> dict[str, Any]:
    out = {"method": method, "path": path, "query": "", "status": status, "content_type": "application/json",
           **more}
    if response is not None:
        out["response"] = response
    return out


SUMMARY = {"id": None, "name": "demo", "uuid": "6695eb01-f6a4-8304-79aa-97f2502e193f", "state": "shut off",
           "reason": "unknown", "persistent": True, "autostart": False}


def test_checker_passes_an_exchange_that_matches():
    c = Contract.load()
    assert c.check(ex("GET", "/v1/domains", 200, {"domains": [SUMMARY]})) == []
    assert c.check(ex("POST", "/v1/domains/demo/start", 200, SUMMARY, request={"paused": False})) == []
    assert c.check(ex("GET", "/v1/domains/a%20b/xml", 404,
                      {"error": {"code": "not-found", "message": "no domain"}}, query="inactive=1")) == []


def test_checker_names_an_undocumented_route_method_and_status():
    c = Contract.load()
    assert c.check(ex("GET", "/v1/nothing", 200, {"x": 1})) == [
        "GET /v1/nothing -> 200: no path of the document matches (an undocumented route)"]
    [msg] = c.check(ex("PATCH", "/v1/domains/demo", 200, SUMMARY))
    assert "method PATCH is not documented for /v1/domains/{ref} (documented: DELETE, GET)" in msg
    [msg] = c.check(ex("GET", "/v1/domains", 418, {"error": {"code": "error", "message": "x"}}))
    assert msg.startswith("GET /v1/domains -> 418 (GET /v1/domains): status 418 is not documented")


def test_checker_takes_requests_outside_the_paths_refused_as_x_unrouted_says():
    c = Contract.load()
    not_found = {"error": {"code": "not-found", "message": "no such API route: GET /v1/nothing"}}
    assert c.check(ex("GET", "/v1/nothing", 404, not_found)) == []
    assert c.check(ex("GET", "/v1/nothing", 404, not_found), refused_requests_ok=False) == [
        "GET /v1/nothing -> 404: no path of the document matches (an undocumented route)"]
    wrong = {"error": {"code": "method-not-allowed", "message": "PATCH is not allowed on /v1/version"}}
    assert c.check(ex("PATCH", "/v1/version", 405, wrong)) == []
    [msg] = c.check({**ex("GET", "/v1/nothing", 404), "content_type": "text/plain", "response_text": "404: Not Found"})
    assert msg == ("GET /v1/nothing -> 404 (outside the paths: no path of the document matches (an undocumented "
                   "route)): the reply is text/plain; the document says application/json")
    [msg] = c.check(ex("PATCH", "/v1/version", 405, not_found))
    assert msg.endswith("reply body $.error.code: 'method-not-allowed' was expected")


@pytest.mark.parametrize(("reply", "why"), [
    ({**SUMMARY, "title": "t"}, "Additional properties are not allowed ('title' was unexpected)"),
    ({k: v for k, v in SUMMARY.items() if k != "reason"}, "'reason' is a required property"),
    ({**SUMMARY, "state": "shutoff"}, "$.state: 'shutoff' is not one of"),
    ({**SUMMARY, "id": "1"}, "$.id: '1' is not of type 'integer', 'null'"),
])
def test_checker_names_a_reply_that_drifts(reply, why):
    [msg] = Contract.load().check(ex("PUT", "/v1/domains/demo/autostart", 200, reply, request={"enabled": True}))
    assert msg.startswith("PUT /v1/domains/demo/autostart -> 200 (PUT /v1/domains/{ref}/autostart): reply body")
    assert why in msg


def test_checker_error_codes_must_fit_the_status():
    [msg] = Contract.load().check(ex("GET", "/v1/domains/x", 404, {"error": {"code": "host-error", "message": "m"}}))
    assert msg.endswith("reply body $.error.code: 'not-found' was expected")


def test_checker_requests_refused_or_accepted():
    c = Contract.load()
    bad = {"paused": "yes"}
    refused = ex("POST", "/v1/domains/demo/start", 400, {"error": {"code": "invalid-argument", "message": "m"}},
                 request=bad)
    assert c.check(refused) == []  # the daemon refused it as the document says it does
    [msg] = c.check(refused, refused_requests_ok=False)
    assert "request body $.paused: 'yes' is not of type 'boolean'" in msg
    [msg] = c.check(ex("POST", "/v1/domains/demo/start", 200, SUMMARY, request=bad))
    assert "request body $.paused" in msg
    [msg] = c.check(ex("GET", "/v1/domains/demo/xml", 200, {"xml": "<domain/>"}, query="live=1"))
    assert "query parameter 'live' is not documented (documented: inactive, security_info)" in msg
    [msg] = c.check(ex("GET", "/v1/domains", 200, {"domains": []}, request={}))
    assert "the request has a application/json body; the document describes none" in msg


def test_checker_streams_and_console_greeting():
    c = Contract.load()
    event = {"time": 1.5, "domain": "demo", "uuid": SUMMARY["uuid"], "event": "started", "detail": "booted",
             "state": "running", "reason": "booted"}
    opened = ex("GET", "/v1/events", 200, content_type="application/x-ndjson")
    assert c.check(opened) == [] and c.check({**opened, "record": event}) == []
    [msg] = c.check({**opened, "record": {**event, "event": "exploded"}})
    assert "stream record $.event: 'exploded' is not one of" in msg
    console = {"method": "GET", "path": "/v1/domains/demo/console", "query": "force=1", "status": 101,
               "content_type": ""}
    assert c.check({**console, "frame": {"connected": "demo"}}) == []
    assert c.check({**console, "frame": {"error": {"code": "operation-invalid", "message": "busy"}}}) == []
    [msg] = c.check({**console, "frame": {"connected": "demo", "pid": 3}})
    assert "WebSocket greeting frame" in msg
    [msg] = c.check({**console, "frame_bytes": 5})
    assert "not the JSON greeting" in msg


def test_checker_raw_byte_bodies():
    c = Contract.load()
    upload = ex("PUT", "/v1/pools/p/volumes/v.img/data", 200, {"pool": "p", "volume": "v.img", "offset": 0,
                                                                "bytes": 3},
                query="offset=0", request_type="application/octet-stream")
    assert c.check(upload) == []
    [msg] = c.check({**upload, "request_type": None, "request": {"data": "abc"}})
    assert "the request body is application/json; the document takes application/octet-stream" in msg
    download = ex("GET", "/v1/pools/p/volumes/v.img/data", 200, content_type="application/octet-stream",
                  query="offset=0&length=3", response_bytes=3)
    assert c.check(download) == []
    [msg] = c.check({**download, "query": "offset=-1"})
    assert "query parameter 'offset'" in msg


# -------------------------------------------------------------------------- the trace hook
def test_trace_hook_records_every_exchange_and_each_matches(tmp_path, monkeypatch):
    trace = tmp_path / "api.jsonl"
    monkeypatch.setenv(TRACE_ENV, str(trace))
    with fake_daemon() as (uri, st):
        st.add("demo")
        with connect(uri) as conn:
            conn.list_domains()
            dom = conn.define_xml(domain_xml("web"))
            dom.start()
            with pytest.raises(errors.OperationInvalid):
                dom.start()
            events = list(conn.events())
    lines = trace.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("GET", "/v1/domains", 200), ("POST", "/v1/domains", 201), ("POST", "/v1/domains/web/start", 200),
        ("POST", "/v1/domains/web/start", 409), ("GET", "/v1/events", 200), ("GET", "/v1/events", 200),
        ("GET", "/v1/events", 200)]
    assert records[1]["request"] == {"xml": domain_xml("web")} and records[1]["response"]["name"] == "web"
    assert records[3]["response"]["error"]["code"] == "operation-invalid"
    assert [r.get("record") for r in records[4:]] == [None, *events]
    tally = Tally()
    assert check_trace(lines, tally) == []
    assert (tally.exchanges, tally.records) == (5, 2)


def test_trace_hook_is_off_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(TRACE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with fake_daemon() as (uri, _), connect(uri) as conn:
        conn.list_domains()
    assert list(tmp_path.iterdir()) == []


def test_checker_takes_a_repeated_query_parameter_as_an_array():
    c = Contract.load()
    reply = {"domains": [{"name": "demo", "uuid": SUMMARY["uuid"], "stats": {"state.state": 5}}]}
    assert c.check(ex("GET", "/v1/stats", 200, reply, query="group=state&group=block&domain=demo")) == []
    [msg] = c.check(ex("GET", "/v1/stats", 200, reply, query="frobs=1"))
    assert "query parameter 'frobs' is not documented" in msg
