"""The model's one XML writer for the documents the CLI sends: one <disk> or <interface> alone, and the
"request" layouts of <pool> and <volume> (virsh's *-as --print-xml). Each must read back, through the
model's own parser, as the object it was written from, and escape what it writes."""
from __future__ import annotations

from dataclasses import replace

import pytest

from pyvirt.model.domain import Address, Disk, Interface
from pyvirt.model.domain_xml import (
    disk_bus_for,
    format_disk_xml,
    format_domain_xml,
    format_interface_xml,
    parse_disk_xml,
    parse_domain_xml,
    parse_interface_xml,
)
from pyvirt.model.storage import BackingStore, Permissions, Pool, PoolSource, PoolTarget, Volume
from pyvirt.model.storage_xml import (
    format_pool_request_xml,
    format_volume_request_xml,
    format_volume_xml,
    parse_pool_xml,
    parse_volume_xml,
)
from pyvirt.model.xml_util import node, render

NASTY = "it's \"<a&b>\""  # every character the writer must escape
NASTY_OUT = "it&apos;s &quot;&lt;a&amp;b&gt;&quot;"

DISKS = [
    Disk(target_dev="vda", bus="virtio", source="/img/a.qcow2", format="qcow2", cache="none", io="native",
         discard="unmap", serial="S1", boot_order=1,
         address=Address("pci", (("domain", "0x0000"), ("bus", "0x04"), ("slot", "0x00"), ("function", "0x0")))),
    Disk(target_dev="sda", bus="sata", device="cdrom", source=None, readonly=True),
    Disk(target_dev="sdb", bus="scsi", source_type="block", source="/dev/sdz", shareable=True, driver_name=None),
    Disk(target_dev="vdc", bus="virtio", source_type="volume", source_pool="default", source_volume="v.img"),
    Disk(target_dev="vdd", bus="virtio", source=f"/img/{NASTY}.raw", serial=NASTY),
]


@pytest.mark.parametrize("disk", DISKS, ids=[d.target_dev for d in DISKS])
def test_one_disk_reads_back_as_itself(disk: Disk) -> None:
    assert parse_disk_xml(format_disk_xml(disk)) == disk


def test_one_disk_is_the_element_dumpxml_shows() -> None:
    """format_disk_xml is the <disk> of format_domain_xml, unindented: one builder for both."""
    dom = parse_domain_xml("<domain type='kvm'><name>d</name><memory unit='MiB'>64</memory><devices>"
                           + "".join(format_disk_xml(d) for d in DISKS) + "</devices></domain>")
    whole = format_domain_xml(dom)
    for disk in dom.devices.disks:
        indented = "".join("    " + line + "\n" for line in format_disk_xml(disk).splitlines())
        assert indented in whole


def test_a_disk_request_leaves_implied_fields_out() -> None:
    disk = Disk(target_dev="vdb", bus="virtio", source="/i/x.raw", driver_name=None)
    assert format_disk_xml(disk, implied=("device", "bus")) == (
        "<disk type='file'>\n  <source file='/i/x.raw'/>\n  <target dev='vdb'/>\n</disk>\n")
    assert parse_disk_xml(format_disk_xml(disk, implied=("device", "bus"))) == disk  # the parser fills them
    assert format_disk_xml(disk, implied=("bus",)).startswith("<disk type='file' device='disk'>\n")
    with pytest.raises(ValueError, match="cannot be implied"):
        format_disk_xml(disk, implied=("source",))


def test_disk_values_are_escaped() -> None:
    xml = format_disk_xml(DISKS[-1])
    assert f"<source file='/img/{NASTY_OUT}.raw'/>" in xml
    assert f"<serial>{NASTY_OUT}</serial>" in xml


@pytest.mark.parametrize(("target", "bus"), [("vdb", "virtio"), ("sdc", "scsi"), ("hda", "ide"), ("xyz", None)])
def test_disk_bus_for(target: str, bus: str | None) -> None:
    assert disk_bus_for(target) == bus


IFACES = [
    Interface(type="network", mac="52:54:00:12:34:56", model="virtio", source=(("network", "default"),),
              target_dev="vnet3", link_state="down", driver_name="vhost", driver_queues=2, boot_order=2,
              alias="net0"),
    Interface(type="direct", mac="52:54:00:00:00:01", source=(("dev", "eth0"), ("mode", "bridge"))),
    Interface(type="user", mac="52:54:00:00:00:02"),
    Interface(type="bridge", mac="52:54:00:00:00:03", source=(("bridge", NASTY),)),
]


@pytest.mark.parametrize("iface", IFACES, ids=[i.type for i in IFACES])
@pytest.mark.parametrize("attach", [False, True])
def test_one_interface_reads_back_as_itself(iface: Interface, attach: bool) -> None:
    assert parse_interface_xml(format_interface_xml(iface, attach=attach)) == iface


def test_interface_child_orders() -> None:
    iface = Interface(type="network", mac="52:54:00:12:34:56", model="e1000", source=(("network", "n"),),
                      target_dev="t0")
    assert format_interface_xml(iface) == (
        "<interface type='network'>\n  <mac address='52:54:00:12:34:56'/>\n  <source network='n'/>\n"
        "  <target dev='t0'/>\n  <model type='e1000'/>\n</interface>\n")
    assert format_interface_xml(iface, attach=True) == (
        "<interface type='network'>\n  <source network='n'/>\n  <mac address='52:54:00:12:34:56'/>\n"
        "  <target dev='t0'/>\n  <model type='e1000'/>\n</interface>\n")
    assert format_interface_xml(Interface(type="user"), attach=True) == "<interface type='user'>\n</interface>\n"
    assert f"<source bridge='{NASTY_OUT}'/>" in format_interface_xml(IFACES[-1])


def test_expand_writes_an_empty_element_open_and_closed() -> None:
    assert render(node("a", children=[node("b", ("x", "1"), expand=True), node("c")])) == (
        "<a>\n  <b x='1'>\n  </b>\n  <c/>\n</a>\n")
    assert render(node("b", text="t", expand=True)) == "<b>t</b>\n"  # only empty elements are expanded


# ---------------------------------------------------------------- pool and volume requests
def test_pool_request_minimal_and_full() -> None:
    assert format_pool_request_xml(Pool(name="p", type="dir", target=PoolTarget(path="/srv/p"))) == (
        "<pool type='dir'>\n  <name>p</name>\n  <target>\n    <path>/srv/p</path>\n  </target>\n</pool>\n")
    full = Pool(name="p", type="iscsi", target=PoolTarget(path="/dev/disk/by-path"), source=PoolSource(
        host="h.example", dir="/export", devices=("iqn.2024-01.x:t",), format="nfs", name="vg",
        iqn="iqn.2024-01.x:i"))
    assert format_pool_request_xml(full) == (
        "<pool type='iscsi'>\n  <name>p</name>\n  <source>\n    <host name='h.example'/>\n"
        "    <dir path='/export'/>\n    <device path='iqn.2024-01.x:t'/>\n    <format type='nfs'/>\n"
        "    <name>vg</name>\n    <initiator>\n      <iqn name='iqn.2024-01.x:i'/>\n    </initiator>\n"
        "  </source>\n  <target>\n    <path>/dev/disk/by-path</path>\n  </target>\n</pool>\n")


def test_pool_request_reads_back_with_the_defaults_filled() -> None:
    req = Pool(name="lv", type="logical", target=PoolTarget(path=""), source=PoolSource(devices=("/dev/loop0",)))
    xml = format_pool_request_xml(req)
    assert "<target>" not in xml and "<format" not in xml  # left to the parser
    pool = parse_pool_xml(xml)
    assert (pool.target.path, pool.source.name, pool.source.format, pool.source.devices) == (
        "/dev/lv", "lv", "lvm2", ("/dev/loop0",))


def test_pool_request_escapes_and_takes_any_type() -> None:
    xml = format_pool_request_xml(Pool(name=NASTY, type="x'y", target=PoolTarget(path=f"/p/{NASTY}"),
                                       source=PoolSource(name=NASTY, devices=(NASTY,))))
    assert xml == (f"<pool type='x&apos;y'>\n  <name>{NASTY_OUT}</name>\n  <source>\n"
                   f"    <device path='{NASTY_OUT}'/>\n    <name>{NASTY_OUT}</name>\n  </source>\n"
                   f"  <target>\n    <path>/p/{NASTY_OUT}</path>\n  </target>\n</pool>\n")


def test_volume_request() -> None:
    vol = Volume(name="b.qcow2", capacity=1 << 30, allocation=0, format="qcow2",
                 backing=BackingStore(path="/p/a.img", format="raw"))
    assert format_volume_request_xml(vol) == (
        "<volume>\n  <name>b.qcow2</name>\n  <capacity>1073741824</capacity>\n  <allocation>0</allocation>\n"
        "  <target>\n    <format type='qcow2'/>\n  </target>\n  <backingStore>\n    <path>/p/a.img</path>\n"
        "    <format type='raw'/>\n  </backingStore>\n</volume>\n")
    assert parse_volume_xml(format_volume_request_xml(vol)) == vol
    plain = Volume(name=NASTY, capacity=5)
    assert format_volume_request_xml(plain) == \
        f"<volume>\n  <name>{NASTY_OUT}</name>\n  <capacity>5</capacity>\n</volume>\n"
    assert parse_volume_xml(format_volume_request_xml(plain)) == plain


def test_volume_dumpxml_keeps_an_empty_target_open_and_closed() -> None:
    xml = format_volume_xml(Volume(name="v", capacity=1))
    assert "  <target>\n  </target>\n" in xml
    perms = replace(Volume(name="v", capacity=1), permissions=Permissions(mode="644"))
    assert "<mode>0644</mode>" in format_volume_xml(perms)
