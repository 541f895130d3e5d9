"""What a command handler gets: the output, the URI and a connection opened on demand."""
from __future__ import annotations

from .output import Output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..client import Connection, Domain
    from .spec import Command


class Ctx:
    def __init__(self, out: Output, uri: str | None, commands: Mapping[str, Command]) -> None:
        self.out = out
        self.uri = uri
        self.commands = commands
        self._conn: Connection | None = None

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            from ..client import connect

            self._conn = connect(self.uri)
        return self._conn

    def domain(self, ref: str) -> Domain:
        return self.conn.domain(ref)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
