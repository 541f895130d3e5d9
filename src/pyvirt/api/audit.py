"""The audit log: one line per mutating API call (POST, PUT, DELETE) in the daemon's log.

Who: the caller's uid and pid from the unix socket (SO_PEERCRED: the kernel's
word, not the client's). What: method, path (as sent, percent-encoded, so a
name cannot start a line of its own) and the object. Result: the status and,
for an error, its code. Request bodies are never logged: domain XML carries
graphics passwords. Logger ``pyvirt.audit``; pyvirtd keeps it at INFO
whatever the daemon's log level.
"""
from __future__ import annotations

import json
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .auth import token_of

log = logging.getLogger("pyvirt.audit")

MUTATING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
KINDS = {"domains": "domain", "networks": "network", "pools": "pool", "volumes": "volume", "snapshots": "snapshot"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def caller(request: web.Request) -> str:
    """'uid=0 pid=1234' for a unix socket peer; 'peer=ADDR token=NAME' over TCP (the token it was let in with)."""
    transport = request.transport
    sock: Any = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and sock.family == socket.AF_UNIX:
        try:
            pid, uid, _ = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
        except OSError:
            return "uid=? pid=?"
        return f"uid={uid} pid={pid}"
    peer = transport.get_extra_info("peername") if transport is not None else None
    token = token_of(request)  # the TCP listener's requests carry one (api/auth.py)
    name = token.name if token is not None else None
    return f"peer={json.dumps(str(peer))}" + (f" token={json.dumps(name)}" if name else "")


def objects(raw_path: str, reply: Any) -> str:
    """The objects a path names ('domain=web1 snapshot=s1'), or the name a creation answered with."""
    parts = raw_path.strip("/").split("/")[1:]  # after /v1
    if parts[1:] == ["create"]:  # POST /v1/domains/create: a new object, named in the reply
        parts = parts[:1]
    named = [f"{KINDS[kind]}={ref}" for kind, ref in zip(parts[::2], parts[1::2], strict=False) if kind in KINDS]
    if not named and parts and parts[0] in KINDS and isinstance(reply, dict) and isinstance(reply.get("name"), str):
        named.append(f"{KINDS[parts[0]]}={json.dumps(reply['name'])}")  # define/create: the path names no object
    return " ".join(named) or "-"


def _reply(resp: web.StreamResponse) -> Any:
    if isinstance(resp, web.Response) and resp.content_type == "application/json" and isinstance(resp.body, bytes):
        try:
            return json.loads(resp.body)
        except ValueError:
            return None
    return None


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in MUTATING:
        return await handler(request)
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        _write(request, exc.status, None)
        raise
    _write(request, resp.status, _reply(resp))
    return resp


def _write(request: web.Request, status: int, reply: Any) -> None:
    error = reply.get("error") if isinstance(reply, dict) else None
    code = f" {error.get('code')}" if isinstance(error, dict) else ""
    path = request.rel_url.raw_path
    log.info("%s %s %s %s -> %d%s", caller(request), request.method, path, objects(path, reply), status, code)
