"""pyvirt: a KVM/QEMU virtualization manager (pyvirtd daemon, `pyvirt` CLI, Python client).

    import pyvirt
    conn = pyvirt.connect()          # PYVIRT_DEFAULT_URI, else the system daemon
    dom = conn.define_xml(open("vm.xml").read())
    dom.start()

Importing this package is cheap: the client is loaded on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .client import Connection


def connect(uri: str | None = None, **kwargs: Any) -> "Connection":
    """Connect to a pyvirtd (see pyvirt.client.connect)."""
    from .client import connect as _connect

    return _connect(uri, **kwargs)
