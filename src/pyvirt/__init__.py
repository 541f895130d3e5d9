"""pyvirt: a KVM/QEMU virtualization manager (pyvirtd daemon, `pyvirt` CLI, Python client).

    import pyvirt
    conn = pyvirt.connect()          # PYVIRT_DEFAULT_URI, else the system daemon
    dom = conn.define_xml(open("vm.xml").read())
    dom.start()

Importing this package is cheap (no typing, no client): the client is loaded on
first use, so `pyvirt list` and `import pyvirt.errors` pay only for what they use.
"""
from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False  # `import typing` alone costs ~6 ms of start-up
if TYPE_CHECKING:
    from typing import Any

    from .client import Connection


def connect(uri: str | None = None, **kwargs: Any) -> Connection:
    """Connect to a pyvirtd (see pyvirt.client.connect)."""
    from .client import connect as _connect

    return _connect(uri, **kwargs)
