"""<resource><partition>: kept in the definition, QEMU placed in a cgroup under the machine slice where the
host has a cgroup v2 tree, and a note naming the reason where it has none."""
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from pyvirt.daemon.tuning import TuningManager
from pyvirt.host.cgroup import CgroupV2, partition_dir
from pyvirt.model.domain import Domain
from tests.unit.feature_xml import parse, round_trip


class Table:
    pass


def test_partition_round_trips_and_bad_ones_are_refused() -> None:
    d = round_trip(parse(top="<resource><partition>/machine</partition></resource>"))
    assert d.resource_partition == "/machine"
    assert round_trip(parse(top="<resource><partition>/machine/web</partition></resource>")).resource_partition
    with pytest.raises(Exception, match="not a path such as /machine"):
        parse(top="<resource><partition>/etc/../sys</partition></resource>")
    with pytest.raises(Exception, match="fibrechannel"):
        parse(top="<resource><partition>/machine</partition><fibrechannel appid='x'/></resource>")


def test_partition_dirs_as_systemd_names_slices() -> None:
    assert partition_dir("/machine") == "machine.slice"
    assert partition_dir("/machine/web") == "machine.slice/machine-web.slice"


async def _place(tuning: TuningManager, dom: Domain, pid: int = 4242) -> list[str]:
    async with contextlib.AsyncExitStack() as undo:
        notes = await tuning.place(dom.name, dom, pid, undo)
        undo.pop_all()
    return notes


def test_qemu_goes_under_the_partition(tmp_path: Path) -> None:
    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cgroup.controllers").write_text("cpu io memory\n")
    (mount / "cgroup.subtree_control").write_text("\n")
    tuning = TuningManager(Table(), CgroupV2("pyvirt-t", mount=mount))  # type: ignore[arg-type]
    dom = Domain(name="web1", uuid="u", memory_kib=1024, resource_partition="/machine/web")
    assert asyncio.run(_place(tuning, dom)) == []
    assert (mount / "machine.slice/machine-web.slice/web1/cgroup.procs").read_text() == "4242\n"
    tuning.release(dom)


def test_without_cgroup_v2_the_partition_is_said_not_applied(tmp_path: Path) -> None:
    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cgroup.controllers").write_text("\n")
    tuning = TuningManager(Table(), CgroupV2(mount=mount))  # type: ignore[arg-type]
    [note] = asyncio.run(_place(tuning, Domain(name="w", uuid="u", memory_kib=1024, resource_partition="/machine")))
    assert note.startswith("<resource><partition>/machine</partition> is not applied") and "lacks" in note
