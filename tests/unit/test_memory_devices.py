"""Memory hotplug and NUMA as virt-install writes them: <maxMemory slots>, NUMA cells (and the <memory> they
imply), <memory model='dimm|virtio-mem|nvdimm'> devices."""
from __future__ import annotations

import pytest

from pyvirt.errors import InvalidArgument, UnsupportedConfig
from pyvirt.model.domain_xml import format_domain_xml
from tests.unit.feature_xml import build, parse, round_trip, values

MAX = "<maxMemory slots='16' unit='GiB'>8</maxMemory>"
CELLS = ("<cpu><numa><cell id='0' cpus='0-1' memory='1048576'/><cell id='1' cpus='2-3' memory='1048576'/></numa>"
         "</cpu>")
DIMM = "<memory model='dimm'><target><size unit='MiB'>512</size><node>0</node></target></memory>"
VMEM = ("<memory model='virtio-mem'><target><size unit='MiB'>1024</size><node>1</node>"
        "<block unit='KiB'>2048</block><requested unit='MiB'>512</requested></target></memory>")


def dom(devices: str = "", memory: str = "", cpu: str = CELLS, vcpus: int = 4):  # type: ignore[no-untyped-def]
    return parse(devices, top=MAX + f"<vcpu>{vcpus}</vcpu>", memory=memory, cpu=cpu)


def test_cells_imply_the_memory_and_devices_add_to_it() -> None:
    d = round_trip(dom(DIMM + VMEM))
    assert d.memory_kib == (1 + 1) * 1048576 + 512 * 1024 + 1024 * 1024
    assert [c.cpus for c in d.cpu.numa] == ["0-1", "2-3"]  # type: ignore[union-attr]
    text = format_domain_xml(d)
    assert "<memory unit='KiB'>3670016</memory>" in text and "<cell id='0' cpus='0-1' memory='1048576'" in text


def test_a_given_memory_is_replaced_and_current_capped_as_libvirt_does() -> None:
    d = dom(DIMM, memory="<memory unit='GiB'>4</memory><currentMemory unit='GiB'>4</currentMemory>")
    assert d.memory_kib == 2 * 1048576 + 512 * 1024 and d.current_memory_kib == d.memory_kib


def test_argv_boot_ram_numa_nodes_and_devices() -> None:
    args = build(dom(DIMM + VMEM), devices=frozenset()).argv
    assert values(args, "-m") == ["size=2097152k,slots=16,maxmem=8388608k"]
    assert values(args, "-numa") == ["node,nodeid=0,cpus=0-1,memdev=ram-node0",
                                     "node,nodeid=1,cpus=2-3,memdev=ram-node1"]
    objects = values(args, "-object")
    assert '{"qom-type":"memory-backend-ram","id":"ram-node0","size":1073741824}' in objects
    assert '{"qom-type":"memory-backend-ram","id":"memdimm0","size":536870912}' in objects
    assert '{"qom-type":"memory-backend-ram","id":"memvirtiomem1","size":1073741824,"reserve":false}' in objects
    devs = values(args, "-device")
    assert "pc-dimm,node=0,memdev=memdimm0,id=dimm0" in devs
    assert ("virtio-mem-pci,node=1,block-size=2097152,requested-size=536870912,memdev=memvirtiomem1,"
            "id=virtiomem1") in devs


def test_shared_cells_are_memfd_backed_and_comma_cpu_lists_repeat_cpus() -> None:
    cpu = ("<cpu><numa><cell cpus='0,2' memory='262144' memAccess='shared'/><cell cpus='1,3' memory='262144' "
           "memAccess='shared'/></numa></cpu>")
    args = build(dom(DIMM, cpu=cpu)).argv
    assert values(args, "-numa")[0] == "node,nodeid=0,cpus=0,cpus=2,memdev=ram-node0"
    objects = values(args, "-object")
    assert '{"qom-type":"memory-backend-memfd","id":"ram-node0","size":268435456,"share":true}' in objects
    assert '{"qom-type":"memory-backend-memfd","id":"memdimm0","size":536870912,"share":true}' in objects


def test_dimm_address_and_hugepages() -> None:
    dimm = DIMM.replace("</target>", "</target><address type='dimm' slot='2' base='0x100000000'/>")
    d = round_trip(parse(dimm, top=MAX + "<memoryBacking><hugepages/></memoryBacking>",
                         memory="<memory unit='MiB'>1536</memory>"))
    args = build(d).argv
    assert "pc-dimm,node=0,memdev=memdimm0,id=dimm0,slot=2,addr=4294967296" in values(args, "-device")
    assert values(args, "-m") == ["size=1048576k,slots=16,maxmem=8388608k"]
    assert any('"id":"memdimm0"' in o and '"hugetlb":true' in o for o in values(args, "-object"))


def test_nvdimm_defines_and_is_refused_at_start_with_the_reason() -> None:
    nv = ("<memory model='nvdimm'><source><path>/srv/nv.img</path></source><target><size unit='MiB'>128</size>"
          "<node>0</node><label><size unit='KiB'>128</size></label></target></memory>")
    d = round_trip(dom(nv))
    assert d.devices.memories[0].label_kib == 128
    with pytest.raises(UnsupportedConfig, match="by path"):
        build(d)


def test_memory_without_cells_is_still_required() -> None:
    with pytest.raises(InvalidArgument, match="no <memory>"):
        parse(memory="")


@pytest.mark.parametrize(("devices", "cpu", "top", "needle"), [
    (DIMM, "", "", "maxMemory"),
    (DIMM, CELLS.replace("<node>0</node>", ""), MAX.replace("16", "0"), "slots"),
    (DIMM.replace("<node>0</node>", "<node>5</node>"), CELLS, MAX, "node 5 does not exist"),
    (VMEM.replace("<block unit='KiB'>2048</block>", ""), CELLS, MAX, "virtio-mem needs <block>"),
    (VMEM.replace("512</requested>", "2048</requested>"), CELLS, MAX, "multiples"),
    (DIMM.replace("model='dimm'", "model='sparse'"), CELLS, MAX, "model 'sparse'"),
    (DIMM.replace("<node>0</node>", "<node>0</node><block>2048</block>"), CELLS, MAX, "belong to virtio-mem"),
    ("", CELLS.replace("2-3", "1-3"), MAX, "CPU 1 is in 2 cells"),
    ("", CELLS.replace("2-3", "2-7"), MAX, "beyond"),
    ("", CELLS.replace("2-3", "two"), MAX, "not a CPU list"),
    ("", CELLS.replace("id='1'", "id='3'"), MAX, "has id 3"),
    ("", CELLS.replace("</numa>", "<distances/></numa>"), MAX, "<distances>"),
    (DIMM.replace("<target>", "<source><pagesize>2048</pagesize></source><target>"), CELLS, MAX, "pagesize"),
])
def test_bad_memory_is_refused_by_name(devices: str, cpu: str, top: str, needle: str) -> None:
    with pytest.raises((InvalidArgument, UnsupportedConfig), match=needle):
        parse(devices, top=top + "<vcpu>4</vcpu>", cpu=cpu,
              memory="" if cpu else "<memory unit='MiB'>1024</memory>")


def test_dimm_hotplug_arguments_and_the_grown_memory() -> None:
    from pyvirt.daemon.memory_devices import with_memory
    from pyvirt.model.domain import MemoryDevice
    from pyvirt.qemu.argv_memory import dimm_hotplug

    d = dom(DIMM)
    new = MemoryDevice("dimm", 262144, node=1)
    obj, dev = dimm_hotplug(d, new, "dimm1")
    assert obj == {"qom-type": "memory-backend-ram", "id": "memdimm1", "size": 268435456}
    assert dev == {"driver": "pc-dimm", "id": "dimm1", "memdev": "memdimm1", "node": 1}
    grown = round_trip(with_memory(d, new))
    assert grown.memory_kib == d.memory_kib + 262144 and len(grown.devices.memories) == 2
    with pytest.raises(UnsupportedConfig, match="only <memory model='dimm'>"):
        dimm_hotplug(d, MemoryDevice("virtio-mem", 262144, block_kib=2048, requested_kib=0), "virtiomem1")
