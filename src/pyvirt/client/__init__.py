"""Python client of pyvirtd: ``connect(uri) -> Connection`` (standard library only).

    from pyvirt.client import connect
    with connect() as conn:                      # $PYVIRT_DEFAULT_URI or qemu:///system
        for d in conn.list_domains():
            print(d.id, d.name, d.state)
        conn.domain("web1").start()
"""
from __future__ import annotations

from .connection import Connection, connect
from .domain import Domain, DomainSummary
from .uri import SYSTEM_SOCKET, SYSTEM_URI

__all__ = ["Connection", "Domain", "DomainSummary", "SYSTEM_SOCKET", "SYSTEM_URI", "connect"]


def __getattr__(name: str) -> object:
    """ConsoleStream loads websockets, so it is imported only when asked for."""
    if name == "ConsoleStream":
        from .console import ConsoleStream

        return ConsoleStream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
