"""The serial console over a WebSocket: bytes in binary frames, both ways.

QEMU serves the guest's first serial port on a unix socket (one client at a
time, everything also logged to NAME.serial.log); the daemon bridges one
console session per domain to it, as `virsh console` does (--force takes the
console from the session that holds it).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import WSMsgType, web

from ..errors import OperationInvalid, PyvirtError

log = logging.getLogger(__name__)

CHUNK = 65536


class ConsoleHub:
    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self._sessions: dict[str, web.WebSocketResponse] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        transport = request.transport  # gone from the request once upgraded
        await ws.prepare(request)
        try:
            entry = self.daemon.domains.lookup(request.match_info["ref"])
            if entry.running is None:
                raise OperationInvalid(f"domain '{entry.name}' is not running; start it first with `pyvirt start {entry.name}`")
            force = request.query.get("force", "0") not in ("0", "", "false")
            await self._take(entry, ws, force)
        except PyvirtError as exc:
            await ws.send_json({"error": exc.to_dict()})
            await ws.close()
            return ws
        try:
            await self._bridge(entry, ws)
        finally:
            if self._sessions.get(entry.uuid) is ws:
                del self._sessions[entry.uuid]
            # Drop the connection now: a client completing the close handshake waits for the
            # server to end the socket, which aiohttp 3.14 may not do until much later.
            if transport is not None:
                transport.close()
        return ws

    async def _take(self, entry: Any, ws: web.WebSocketResponse, force: bool) -> None:
        holder = self._sessions.get(entry.uuid)
        if holder is not None and not holder.closed:
            if not force:
                raise OperationInvalid(
                    f"an active console session exists for domain '{entry.name}'; use --force to take it over"
                )
            await holder.close(message=b"console taken over by another session")
        self._sessions[entry.uuid] = ws

    async def _bridge(self, entry: Any, ws: web.WebSocketResponse) -> None:
        path = self.daemon.config.paths.serial_socket(entry.uuid)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 5.0)
        except (OSError, TimeoutError) as exc:
            err = OperationInvalid(f"cannot open the serial console of domain '{entry.name}' at {path}: {exc}")
            await ws.send_json({"error": err.to_dict()})
            await ws.close()
            return
        await ws.send_json({"connected": entry.name})

        async def guest_to_client() -> None:
            while data := await reader.read(CHUNK):
                await ws.send_bytes(data)

        async def client_to_guest() -> None:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    writer.write(msg.data)
                    await writer.drain()
                elif msg.type == WSMsgType.TEXT:
                    writer.write(msg.data.encode())
                    await writer.drain()
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break

        tasks = [asyncio.create_task(guest_to_client()), asyncio.create_task(client_to_guest())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if not ws.closed:
                await ws.close()
