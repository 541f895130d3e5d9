"""<capabilities> with the host's live facts (features, pages, NUMA cells), the same as data, <domainCapabilities>,
and guests placed in cgroups on a cgroup tree of our own."""
from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.daemon.tuning import TuningManager
from pyvirt.errors import HostError, InvalidArgument
from pyvirt.host.caps import LiveCell, LiveCpu, LiveFacts, capabilities_data, capabilities_xml
from pyvirt.host.cgroup import CgroupV2
from pyvirt.host.domcaps import check_request, domcapabilities_xml, pick_machine
from pyvirt.model.domain import CpuTune, Domain, MemTune
from tests.unit.test_host_caps import KVM_OK, make_caps

LIVE = LiveFacts(
    cpu_features=("fpu", "sse2", "vmx"), page_sizes_kib=(4, 2048),
    cells=(LiveCell(0, 1000, ((4, 250), (2048, 2)), (LiveCpu(0, 0, 0, 0, "0"), LiveCpu(1, 0, 0, 1, "1")), (10, 20)),
           LiveCell(1, 2000, ((4, 500), (2048, 0)), (LiveCpu(2, 1, 0, 0, "2"),), (20, 10))))


def test_capabilities_with_live_facts_parse_back() -> None:
    root = ET.fromstring(capabilities_xml(make_caps(), LIVE))
    cpu = root.find("host/cpu")
    assert cpu is not None
    assert [f.get("name") for f in cpu.findall("feature")] == ["fpu", "sse2", "vmx"]
    assert [p.get("size") for p in cpu.findall("pages")] == ["4", "2048"]
    cells = root.findall("host/topology/cells/cell")
    assert root.find("host/topology/cells").get("num") == "2"  # type: ignore[union-attr]
    assert [c.findtext("memory") for c in cells] == ["1000", "2000"]
    assert cells[0].find("pages[@size='2048']").text == "2"  # type: ignore[union-attr]
    assert [s.get("value") for s in cells[1].findall("distances/sibling")] == ["20", "10"]
    assert cells[0].find("cpus/cpu[@id='1']").get("core_id") == "1"  # type: ignore[union-attr]
    assert [m.text for m in root.findall("guest/arch/machine")][:2] == ["microvm", "pc-i440fx-7.2"]
    without = ET.fromstring(capabilities_xml(make_caps()))  # no live facts: the per-boot document as before
    assert without.find("host/cpu/pages") is None and without.find("host/topology/cells").get("num") == "1"  # type: ignore[union-attr]


def test_capabilities_data_says_the_same() -> None:
    data = capabilities_data(make_caps(), LIVE)
    assert data["host"]["cpu"]["features"] == ["fpu", "sse2", "vmx"]
    assert [c["id"] for c in data["host"]["cells"]] == [0, 1]
    assert data["host"]["cells"][0]["pages"][1] == {"size_kib": 2048, "count": 2}
    assert data["guests"][0]["domain_types"] == ["qemu"] and data["guests"][0]["accelerators"] == ["tcg", "kvm"]


def test_domcapabilities() -> None:
    caps = replace(make_caps(), devices=make_caps().devices | {"virtio-blk-device", "virtio-blk-pci", "ide-hd"})
    assert check_request(caps, None, None, None) == "qemu"
    assert check_request(make_caps(KVM_OK), None, None, None) == "kvm"
    with pytest.raises(HostError, match="KVM is not usable"):
        check_request(caps, "kvm", None, None)
    with pytest.raises(InvalidArgument, match="not this host's QEMU"):
        check_request(caps, None, "/usr/bin/qemu-kvm", None)
    with pytest.raises(InvalidArgument, match="machine type 'vexpress'"):
        pick_machine(caps, "vexpress")
    assert pick_machine(caps, None).name == "pc-q35-7.2" and pick_machine(caps, "pc").name == "pc-i440fx-7.2"
    root = ET.fromstring(domcapabilities_xml(caps, "qemu", pick_machine(caps, "microvm")))
    assert (root.findtext("domain"), root.findtext("machine"), root.find("vcpu").get("max")) == (  # type: ignore[union-attr]
        "qemu", "microvm", "255")
    assert [v.text for v in root.findall("devices/disk/enum[@name='bus']/value")] == ["virtio"]
    assert root.find("os/loader").get("supported") == "no"  # type: ignore[union-attr]
    models = [m.text for m in root.findall("cpu/mode[@name='custom']/model")]
    assert models == list(caps.cpu_models)
    q35 = ET.fromstring(domcapabilities_xml(caps, "qemu", pick_machine(caps, "q35")))
    assert [v.text for v in q35.findall("devices/disk/enum[@name='bus']/value")] == ["virtio", "sata", "ide"]
    assert [v.text for v in q35.findall("devices/graphics/enum/value")] == ["vnc", "spice"]


class Table:
    """Just enough of the domain table for placement (no lookups)."""


def test_place_puts_qemu_in_a_cgroup_with_the_limits(tmp_path: Path) -> None:
    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cgroup.controllers").write_text("cpu io memory\n")
    (mount / "cgroup.subtree_control").write_text("\n")
    tuning = TuningManager(Table(), CgroupV2("pyvirt-t", mount=mount))  # type: ignore[arg-type]
    dom = Domain(name="web1", uuid="u", memory_kib=1024, cputune=CpuTune(shares=1024), memtune=MemTune(4096, None))

    async def run() -> list[str]:
        async with contextlib.AsyncExitStack() as undo:
            notes = await tuning.place("web1", dom, 4242, undo)
            undo.pop_all()
        return notes

    assert asyncio.run(run()) == []
    group = mount / "pyvirt-t/web1"
    assert (group / "cgroup.procs").read_text() == "4242\n"
    assert (group / "cpu.weight").read_text() == "39\n" and (group / "memory.max").read_text() == f"{4096 * 1024}\n"
    assert asyncio.run(_place(tuning, Domain(name="plain", uuid="v", memory_kib=1024))) == []
    assert not (mount / "pyvirt-t/plain").exists()  # no limits, no cgroup


def test_place_without_cgroup_v2_gives_the_note(tmp_path: Path) -> None:
    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cgroup.controllers").write_text("hugetlb\n")
    tuning = TuningManager(Table(), CgroupV2(mount=mount))  # type: ignore[arg-type]
    dom = Domain(name="web1", uuid="u", memory_kib=1024, cputune=CpuTune(shares=1024))
    [note] = asyncio.run(_place(tuning, dom))
    assert "are not applied" in note and "lacks the cpu, memory, io controller(s)" in note


async def _place(tuning: TuningManager, dom: Domain) -> list[str]:
    async with contextlib.AsyncExitStack() as undo:
        return await tuning.place(dom.name, dom, 1, undo)
