"""dumpxml and snapshot-dumpxml leave graphics passwords out unless --security-info (issue 9, item 6),
on the real domain manager with the fakes of test_daemon_domains (no QEMU)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pyvirt.daemon.snapshot_catalog import SnapshotCatalog
from pyvirt.model.domain import Devices
from pyvirt.model.domain_xml import format_domain_xml
from tests.unit.test_daemon_domains import UUID, _no_path_checks, domain, run, world

__all__ = ["_no_path_checks"]  # the fixture that turns off the host's path checks, used here too


def test_dumpxml_shows_graphics_passwords_only_with_security_info(tmp_path: Path) -> None:
    from pyvirt.model.domain import Graphics

    async def scenario() -> None:
        w = world(tmp_path)
        vnc = Graphics("vnc", port=-1, autoport=True, passwd="s3cr'et")
        secret = replace(domain(), devices=Devices(graphics=(vnc,)))
        await w.manager.define(format_domain_xml(secret))
        full = w.manager.get_xml("d", inactive=True, security_info=True)
        assert "passwd='s3cr&apos;et'" in full and full == w.table.lookup("d").xml
        shown = w.manager.get_xml("d", inactive=True)
        assert "passwd" not in shown and "s3cr" not in shown
        assert shown == full.replace(" passwd='s3cr&apos;et'", "")  # nothing else is left out
        await w.manager.start("d")
        assert "passwd='s3cr&apos;et'" in w.manager.get_xml("d", security_info=True)
        assert "s3cr" not in w.manager.get_xml("d") and "<domain type='qemu' id=" in w.manager.get_xml("d")
        await w.manager.destroy("d")
        plain = domain()
        await w.manager.define(format_domain_xml(replace(plain, name="p", uuid="")))
        assert w.manager.get_xml("p", inactive=True) == w.table.lookup("p").xml  # no password: the stored text

    run(scenario)


def test_snapshot_dumpxml_hides_the_passwords_of_the_domain_inside(tmp_path: Path) -> None:
    from pyvirt.daemon.snapshot_catalog import Stored
    from pyvirt.daemon.snapshots import SnapshotManager
    from pyvirt.model.domain import Graphics
    from pyvirt.model.snapshot_xml import DomainSnapshot

    async def scenario() -> None:
        w = world(tmp_path)
        secret = replace(domain(), devices=Devices(graphics=(Graphics("spice", passwd="pw<1>"),)))
        await w.manager.define(format_domain_xml(secret))
        catalog = w.manager.snapshots
        assert isinstance(catalog, SnapshotCatalog)
        catalog.put(UUID, Stored("row1", DomainSnapshot(name="s1", state="shutoff",
                                                        domain_xml=format_domain_xml(secret))))
        snapshots = SnapshotManager(w.table, catalog, lifecycle=None)  # type: ignore[arg-type]
        full = snapshots.get_xml("d", "s1", security_info=True)
        assert "passwd='pw&lt;1&gt;'" in full
        assert snapshots.get_xml("d", "s1") == full.replace(" passwd='pw&lt;1&gt;'", "")

    run(scenario)
