"""A tiny FAKE pyvirtd for the client and CLI unit tests.

Why a fake: the real daemon is being written at the same time as the client, and
unit tests must run without root or QEMU. It is a real HTTP/1.1 server (the
standard library's http.server, keep-alive) on a real unix socket in a thread,
answering canned JSON; only the daemon's logic is faked. The integration tests
run the same CLI against the real pyvirtd.

It answers to the same contract as the real daemon, docs/openapi.yaml: every
request it receives and every reply it sends is checked against the document
(tests/openapi_check.py), and what departs from it is kept in
``FakeState.violations``; ``fake_daemon()`` fails the test using it when any is
left at the end. A request that breaks the document is also answered 400, as
the real daemon would refuse it.
"""
from __future__ import annotations

import json
import re
import shutil
import socketserver
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.openapi_check import Contract

UUIDS = {
    "demo": "6695eb01-f6a4-8304-79aa-97f2502e193f",
    "web-server-01": "54e8cf73-d92b-4e0d-a969-8a88ad18b0b3",
    "db": "0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9",
}


def domain_xml(name: str, uuid: str = "", vcpus: int = 1) -> str:
    uuid_el = f"  <uuid>{uuid}</uuid>\n" if uuid else ""
    return (f"<domain type='qemu'>\n  <name>{name}</name>\n{uuid_el}  <memory unit='KiB'>262144</memory>\n"
            f"  <vcpu>{vcpus}</vcpu>\n  <os><type>hvm</type></os>\n</domain>\n")


class FakeState:
    """The domains the fake knows, and every request it saw."""

    def __init__(self) -> None:
        self.domains: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.violations: list[str] = []  # departures from docs/openapi.yaml, in either direction
        self.connections = 0
        self.lock = threading.Lock()

    def check(self, exchange: dict[str, Any]) -> list[str]:
        """Check one exchange against the document; keep and return its violations."""
        found = Contract.load().check(exchange, refused_requests_ok=False)
        with self.lock:
            self.violations += found
        return found

    def take_violations(self) -> list[str]:
        """The violations so far, forgotten (for a test that provokes one on purpose)."""
        with self.lock:
            found, self.violations = self.violations, []
        return found

    def add(self, name: str, *, id: int | None = None, state: str = "shut off", reason: str = "unknown",
            persistent: bool = True, autostart: bool = False) -> dict[str, Any]:
        uuid = UUIDS.get(name, f"00000000-0000-4000-8000-{len(self.domains):012d}")
        dom = {"id": id, "name": name, "uuid": uuid, "state": state, "reason": reason,
               "persistent": persistent, "autostart": autostart, "xml": domain_xml(name, uuid)}
        self.domains[name] = dom
        return dom

    def find(self, ref: str) -> dict[str, Any] | None:
        for d in self.domains.values():
            if ref in (d["name"], d["uuid"]) or (d["id"] is not None and ref == str(d["id"])):
                return d
        return None

    def listing(self) -> list[dict[str, Any]]:
        active = sorted((d for d in self.domains.values() if d["id"] is not None), key=lambda d: d["id"])
        inactive = sorted((d for d in self.domains.values() if d["id"] is None), key=lambda d: d["name"])
        return [summary(d) for d in active + inactive]

    def next_id(self) -> int:
        return max([d["id"] or 0 for d in self.domains.values()] + [0]) + 1


def summary(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("id", "name", "uuid", "state", "reason", "persistent", "autostart")}


def info(d: dict[str, Any]) -> dict[str, Any]:
    running = d["id"] is not None
    return {**summary(d), "os_type": "hvm", "vcpus": 1, "cpu_time_ns": 1_234_000_000 if running else 0,
            "max_memory_kib": 262144, "used_memory_kib": 262144, "managed_save": False,
            "security_model": "none", "security_doi": "0", "accel": "tcg",
            "cpu_note": "KVM is not usable on this host; guests run under TCG emulation"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _not_found(ref: str) -> ApiError:
    return ApiError(404, "not-found", f"domain '{ref}' not found; `pyvirt list --all` shows the defined domains")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet, and client_address is '' on unix
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.state.lock:
            self.server.state.connections += 1

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        st = self.server.state
        with st.lock:
            st.requests.append((self.command, self.path, body))
        exchange: dict[str, Any] = {"method": self.command, "path": url.path, "query": url.query}
        if raw:
            exchange["request"] = body
        if parts == ["v1", "events"] or (len(parts) == 4 and parts[3] == "events"):
            return self._events(parts, exchange)
        try:
            with st.lock:
                status, answer = route(st, self.command, parts, query, body)
        except ApiError as exc:
            status, answer = exc.status, {"error": {"code": exc.code, "message": exc.message}}
        problems = st.check({**exchange, "status": status, "content_type": "application/json", "response": answer})
        if problems and 200 <= status < 300:  # the real daemon refuses a request outside the document
            status, answer = 400, {"error": {"code": "invalid-argument", "message": "; ".join(problems)}}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _events(self, parts: list[str], exchange: dict[str, Any]) -> None:
        st = self.server.state
        with st.lock:
            dom = st.find(parts[2]) if len(parts) == 4 else st.find("demo")
        if dom is None:  # the real daemon looks the domain up before the stream starts
            answer = {"error": {"code": "not-found", "message": f"domain '{parts[2]}' not found"}}
            st.check({**exchange, "status": 404, "content_type": "application/json", "response": answer})
            data = json.dumps(answer).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        opened = {**exchange, "status": 200, "content_type": "application/x-ndjson"}
        st.check(opened)
        events = [{"time": 1700000000.0, "domain": dom["name"], "uuid": dom["uuid"], "event": ev,
                   "detail": "booted", "state": "running", "reason": "booted"} for ev in ("started", "suspended")]
        for event in events:
            st.check({**opened, "record": event})
        # split one event over two chunks and send a keep-alive blank line, as a stream may
        payload = "".join(json.dumps(e) + "\n" for e in events) + "\n"
        for piece in (payload[:30], payload[30:]):
            data = piece.encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch


def route(st: FakeState, method: str, parts: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
    if parts[:1] != ["v1"]:
        raise ApiError(404, "not-found", "no such API path")
    p = parts[1:]
    if method == "GET" and p == ["version"]:
        return 200, {"library": "0.1.0", "daemon": "0.1.0", "hypervisor": "QEMU", "hypervisor_version": "7.2.22",
                     "api": 1}
    if method == "GET" and p == ["host"]:
        return 200, {"hostname": "fakehost", "uri": "qemu:///system", "accel": "tcg", "kvm_usable": False,
                     "kvm_reason": "PVM", "cpus": 2, "memory_kib": 4194304, "cpu_model": "fake"}
    if method == "GET" and p == ["host", "capabilities"]:
        return 200, {"xml": "<capabilities>\n  <host/>\n</capabilities>\n", "capabilities": {
            "host": {"uuid": "0", "cpu": {"arch": "x86_64", "model": "fake", "features": [], "pages_kib": [4]},
                     "cells": []}, "guests": []}}
    if method == "GET" and p == ["host", "validate"]:
        return 200, {"checks": [
            {"name": "Checking for hardware virtualization", "status": "WARN",
             "detail": "Only emulated CPUs are available"},
            {"name": "Checking if device /dev/net/tun exists", "status": "PASS", "detail": ""},
        ]}
    if p == ["domains"] and method == "GET":
        return 200, {"domains": st.listing()}
    if p == ["domains"] and method == "POST":
        return 201, summary(_define(st, body["xml"], persistent=True))
    if p == ["domains", "create"] and method == "POST":
        d = _define(st, body["xml"], persistent=False)
        d.update(id=st.next_id(), state="paused" if body.get("paused") else "running", reason="booted")
        return 201, summary(d)
    if len(p) < 2 or p[0] != "domains":
        raise ApiError(404, "not-found", f"no such API path /v1/{'/'.join(p)}")
    d = st.find(p[1])
    if d is None:
        raise _not_found(p[1])
    return _domain_route(st, d, method, p[2:], query, body)


def _define(st: FakeState, xml: str, *, persistent: bool) -> dict[str, Any]:
    m = re.search(r"<name>([^<]*)</name>", xml)
    if not xml.lstrip().startswith("<domain") or m is None:
        raise ApiError(400, "xml-syntax", "domain XML line 1: not a <domain> document with a <name>")
    name = m.group(1)
    d = st.domains.get(name) or st.add(name, persistent=persistent)
    d["xml"] = xml
    d["persistent"] = d["persistent"] or persistent
    return d


def _domain_route(st: FakeState, d: dict[str, Any], method: str, rest: list[str], query: dict[str, str],
                  body: Any) -> tuple[int, Any]:
    name = d["name"]
    running = d["id"] is not None
    if not rest:
        if method == "GET":
            return 200, info(d)
        if method == "DELETE":
            if running:
                d["persistent"] = False
            else:
                del st.domains[name]
            return 200, {"name": name, "transient": running}
    if rest == ["state"]:
        return 200, {"state": d["state"], "reason": d["reason"]}
    if rest == ["xml"] and method == "GET":
        return 200, {"xml": d["xml"]}
    if rest == ["xml"] and method == "PUT":
        if "<bad" in body["xml"]:
            raise ApiError(400, "xml-syntax", "domain XML line 3: mismatched tag")
        d["xml"] = body["xml"]
        return 200, summary(d)
    if rest == ["autostart"] and method == "PUT":
        d["autostart"] = bool(body["enabled"])
        return 200, summary(d)
    if method == "POST" and len(rest) == 1:
        return _action(st, d, rest[0], body or {})
    raise ApiError(404, "not-found", "no such API path")


def _action(st: FakeState, d: dict[str, Any], action: str, body: dict[str, Any]) -> tuple[int, Any]:
    name = d["name"]
    running = d["id"] is not None
    if action == "start":
        if running:
            raise ApiError(409, "operation-invalid", f"domain '{name}' is already running")
        d.update(id=st.next_id(), state="paused" if body.get("paused") else "running", reason="booted")
        return 200, summary(d)
    if not running:
        raise ApiError(409, "operation-invalid",
                       f"domain '{name}' is not running; start it first with `pyvirt start {name}`")
    if action == "shutdown":
        if body.get("timeout") is not None:
            d.update(id=None, state="shut off", reason="destroyed")
            return 200, {"state": "shut off", "destroyed": True}
        return 200, {"state": "running", "destroyed": False}
    if action == "destroy":
        d.update(id=None, state="shut off", reason="destroyed")
    elif action == "suspend":
        d.update(state="paused", reason="user")
    elif action == "resume":
        d.update(state="running", reason="unpaused")
    elif action not in ("reboot", "reset"):
        raise ApiError(404, "not-found", f"no action '{action}'")
    return 200, summary(d)


class FakeServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, path: str, state: FakeState) -> None:
        self.state = state
        super().__init__(path, Handler)


@contextmanager
def fake_daemon() -> Iterator[tuple[str, FakeState]]:
    """Serve a FakeState on a socket in a fresh short temp dir; yields (uri, state). Always cleaned up."""
    tmp = Path(tempfile.mkdtemp(prefix="pvfake", dir="/tmp"))  # unix socket paths must stay < 108 bytes
    path = tmp / "pyvirtd.sock"
    state = FakeState()
    server = FakeServer(str(path), state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    finished = False
    try:
        yield f"unix://{path}", state
        finished = True
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        shutil.rmtree(tmp, ignore_errors=True)
    if finished and state.violations:  # only after a clean finish: never hide the test's own failure
        raise AssertionError("exchanges with the fake pyvirtd departed from docs/openapi.yaml:\n  "
                             + "\n  ".join(state.violations))
