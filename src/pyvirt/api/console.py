"""The serial console over a WebSocket: bytes in binary frames, both ways.

Who may hold a domain's console is the daemon's console service's decision
(daemon/consoles.py); this module only moves bytes between the websocket and
the session it was given.
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from ..daemon.consoles import ConsoleService, ConsoleSession
from ..errors import InvalidArgument, PyvirtError
from .http import query_flag

log = logging.getLogger(__name__)

CHUNK = 65536


class ConsoleRoute:
    def __init__(self, consoles: ConsoleService) -> None:
        self.consoles = consoles

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30)
        if not ws.can_prepare(request).ok:
            raise InvalidArgument(f"GET {request.path} is a WebSocket: send it as an upgrade (Connection: Upgrade, "
                                  "Upgrade: websocket and a Sec-WebSocket-Key), as `pyvirt console` does")
        transport = request.transport  # gone from the request once upgraded
        await ws.prepare(request)

        async def kick() -> None:
            await ws.close(message=b"console taken over by another session")

        try:
            session = await self.consoles.open(request.match_info["ref"], force=query_flag(request, "force"),
                                               kick=kick)
        except PyvirtError as exc:
            await ws.send_json({"error": exc.to_dict()})
            await ws.close()
            return ws
        try:
            await ws.send_json({"connected": session.domain})
            await _bridge(session, ws)
        finally:
            await self.consoles.close(session)
            if not ws.closed:
                await ws.close()
            # Drop the connection now: a client completing the close handshake waits for the
            # server to end the socket, which aiohttp 3.14 may not do until much later.
            if transport is not None:
                transport.close()
        return ws


async def _bridge(session: ConsoleSession, ws: web.WebSocketResponse) -> None:
    reader, writer = session.reader, session.writer

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
