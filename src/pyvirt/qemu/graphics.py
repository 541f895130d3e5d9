"""Display passwords: handed to QEMU over QMP once it runs, never on its command line.

The argv builder starts a display that has a ``passwd`` locked (VNC
``password=on``, SPICE without ``disable-ticketing``); ``apply_passwords``
unlocks it with the password before the guest's vCPUs run (after spawn,
before ``cont``), so nobody ever sees it in /proc/PID/cmdline or a log line.
"""
from __future__ import annotations

from typing import Protocol

from ..model.domain import Domain


class PasswordMonitor(Protocol):
    """The one QMP command this step needs (``qemu.monitor.Monitor`` has it)."""

    async def set_password(self, protocol: str, password: str) -> None: ...


async def apply_passwords(monitor: PasswordMonitor, domain: Domain) -> int:
    """Set the password of each of ``domain``'s displays that has one; returns how many were set."""
    done = 0
    for g in domain.devices.graphics:
        if g.passwd is not None and g.type in ("vnc", "spice"):
            await monitor.set_password(g.type, g.passwd)
            done += 1
    return done
