"""Serial console sessions: one client at a time per domain, as `virsh console` (--force takes over).

QEMU serves the guest's first serial port on a unix socket (one client at a
time; everything is also logged to NAME.serial.log). The daemon keeps the
table of who holds each console; the API only moves bytes between its
websocket and the session's stream.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..config import Config
from ..errors import OperationInvalid
from .domain_table import DomainTable

OPEN_TIMEOUT = 5.0


@dataclass(eq=False)
class ConsoleSession:
    """One client's hold on a domain's serial console."""

    domain: str
    uuid: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    kick: Callable[[], Awaitable[None]]  # ends the client's side when another session takes over
    closed: bool = field(default=False)


class ConsoleService:
    def __init__(self, config: Config, table: DomainTable) -> None:
        self.config = config
        self.table = table
        self._sessions: dict[str, ConsoleSession] = {}

    async def open(self, ref: str, *, force: bool, kick: Callable[[], Awaitable[None]]) -> ConsoleSession:
        """Take the domain's console; another session holding it is refused, or with ``force`` kicked."""
        entry = self.table.lookup(ref)
        if entry.running is None:
            raise OperationInvalid(f"domain '{entry.name}' is not running; start it first with "
                                   f"`pyvirt start {entry.name}`")
        holder = self._sessions.get(entry.uuid)
        if holder is not None and not holder.closed:
            if not force:
                raise OperationInvalid(
                    f"an active console session exists for domain '{entry.name}'; use --force to take it over"
                )
            await holder.kick()
        path = self.config.paths.serial_socket(entry.uuid)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), OPEN_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise OperationInvalid(f"cannot open the serial console of domain '{entry.name}' at {path}: {exc}") from exc
        session = ConsoleSession(entry.name, entry.uuid, reader, writer, kick)
        self._sessions[entry.uuid] = session
        return session

    async def close(self, session: ConsoleSession) -> None:
        session.closed = True
        if self._sessions.get(session.uuid) is session:
            del self._sessions[session.uuid]
        session.writer.close()
        with contextlib.suppress(Exception):
            await session.writer.wait_closed()
