"""NIC hot-plug when QEMU refuses the netdev: the fds it got by name are taken back, the tap released.

Why fakes: a real QEMU does not refuse a valid netdev_add on demand. The monitor is a small fake that
records the QMP commands; the tap is a real pipe the test can see closed; the domain table and its
entries are the real ones.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pyvirt.daemon import nics as nics_mod
from pyvirt.daemon.domain_table import DomainEntry, DomainTable
from pyvirt.daemon.eventbus import EventBus
from pyvirt.daemon.nics import NicManager
from pyvirt.errors import QemuError
from pyvirt.model.domain import OS, Devices, Domain, Interface
from pyvirt.model.domain_xml import format_domain_xml
from pyvirt.network.ports import Port
from pyvirt.state.store import Store


class RefusingMonitor:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def send_fd(self, fd: int, name: str) -> None:
        self.sent.append(("getfd", name))

    async def netdev_add(self, **props: Any) -> None:
        self.sent.append(("netdev_add", props["id"]))
        raise QemuError("QMP command 'netdev_add' failed: Invalid parameter")

    async def close_fd(self, name: str) -> None:
        self.sent.append(("closefd", name))


def test_a_refused_netdev_gives_back_its_fds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.close(w1)
    os.close(w2)
    released: list[str] = []
    monkeypatch.setattr(nics_mod.ports, "release", lambda ifname, kind: released.append(ifname))

    async def scenario() -> list[tuple[str, Any]]:
        store = Store(tmp_path / "db")
        table = DomainTable(store, EventBus(store))
        dom = Domain(name="h", uuid="3c4d5e6f-0a1b-4c2d-8e3f-4a5b6c7d8e9f", memory_kib=65536,
                     os=OS(machine="pc"), devices=Devices())
        entry = DomainEntry(dom.uuid, "h", dom, format_domain_xml(dom), persistent=True)
        table.add(entry)
        monitor = RefusingMonitor()
        entry.running = SimpleNamespace(live=dom, monitor=monitor)  # type: ignore[assignment]
        manager = NicManager(table, networks=SimpleNamespace())  # type: ignore[arg-type]
        port = Port("vnet7", "tap", [r1, r2])
        nic = Interface(type="ethernet", mac="52:54:00:12:34:56", driver_queues=2)
        monkeypatch.setattr(manager, "open_one", lambda name, n, who: (port, n))
        monkeypatch.setattr(table, "record_runtime", lambda e: None)
        with pytest.raises(QemuError, match="Invalid parameter"):
            await manager._hotplug(entry, nic)
        return monitor.sent

    sent = asyncio.run(scenario())
    assert sent == [("getfd", "fd-net0-0"), ("getfd", "fd-net0-1"), ("netdev_add", "hostnet0"),
                    ("closefd", "fd-net0-0"), ("closefd", "fd-net0-1")]
    assert released == ["vnet7"]
    for fd in (r1, r2):
        with pytest.raises(OSError):
            os.fstat(fd)  # the daemon's copies are closed too
