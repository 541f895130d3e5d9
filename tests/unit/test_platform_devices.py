"""nvme disks and controllers, <iommu model='intel'>, <vsock>, <panic>, and what stays refused (smartcard,
<disk type='nvme'>), as virt-install writes them."""
from __future__ import annotations

import pytest

from pyvirt.daemon import vsock
from pyvirt.errors import HostError, InvalidArgument, UnsupportedConfig
from tests.unit.feature_xml import build, parse, round_trip, values

NVME = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/srv/a.qcow2'/>"
        "<target dev='sda' bus='nvme'/><boot order='1'/></disk>")
IOMMU = ("<iommu model='intel'><driver aw_bits='48' intremap='on' caching_mode='on' iotlb='on'/></iommu>")
VSOCK = "<vsock model='virtio'><cid auto='yes'/></vsock>"


def test_nvme_disk_is_a_namespace_of_an_implicit_controller() -> None:
    d = round_trip(parse(NVME))
    devs = values(build(d).argv, "-device")
    ctrl = next(x for x in devs if x.startswith("nvme,"))
    assert ctrl.startswith("nvme,id=nvme0,serial=") and len(ctrl.split("serial=")[1]) <= 20
    assert "nvme-ns,bus=nvme0,nsid=1,drive=libvirt-1-format,id=nvme0-0-0,bootindex=1" in devs


def test_nvme_disks_on_a_second_controller_by_address() -> None:
    second = NVME.replace("<boot order='1'/>", "<address type='drive' controller='1' bus='0' target='0' unit='1'/>")
    d = round_trip(parse("<controller type='nvme' index='1'/>" + second))
    devs = values(build(d).argv, "-device")
    assert any(x.startswith("nvme,id=nvme1,") for x in devs)
    assert any(x.startswith("nvme-ns,bus=nvme1,nsid=2,") for x in devs)
    with pytest.raises(InvalidArgument, match="no NVME controller with index 1"):
        build(parse(second))


@pytest.mark.parametrize(("xml", "needle"), [
    (NVME.replace("device='disk'", "device='cdrom'"), "cdrom cannot be an NVMe"),
    (("<disk type='nvme' device='disk'><source type='pci' managed='yes' namespace='1'><address domain='0x0000' "
      "bus='0x01' slot='0x00' function='0x0'/></source><target dev='vde' bus='virtio'/></disk>"), "passthrough"),
    ("<smartcard mode='passthrough' type='spicevmc'/>", "smartcard passthrough is not supported"),
])
def test_refused_with_the_reason(xml: str, needle: str) -> None:
    with pytest.raises((InvalidArgument, UnsupportedConfig), match=needle):
        build(parse(xml))


def test_intel_iommu_on_q35_and_split_irqchip_on_kvm() -> None:
    d = round_trip(parse(IOMMU))
    args = build(d).argv
    assert "intel-iommu,id=iommu0,intremap=on,caching-mode=on,device-iotlb=on,aw-bits=48" in values(args, "-device")
    assert "kernel-irqchip" not in values(args, "-machine")[0]
    assert "kernel-irqchip=split" in values(build(d, accel="kvm").argv, "-machine")[0]
    with pytest.raises(UnsupportedConfig, match="q35"):
        build(parse(IOMMU, machine="pc"))
    with pytest.raises(InvalidArgument, match="ioapic driver='qemu'"):
        build(parse(IOMMU, features="<ioapic driver='kvm'/>"), accel="kvm")
    with pytest.raises(UnsupportedConfig, match="model 'amd'"):
        parse("<iommu model='amd'/>")


def test_vsock_gets_the_daemons_fd_and_cid() -> None:
    d = round_trip(parse(VSOCK))
    assert d.devices.vsock is not None and d.devices.vsock.cid_auto is True
    assert "vhost-vsock-pci,id=vsock0,guest-cid=7,vhostfd=12" in values(build(d, vsock=(12, 7)).argv, "-device")
    with pytest.raises(InvalidArgument, match="/dev/vhost-vsock"):
        build(d)
    with pytest.raises(InvalidArgument, match="auto='no' without an address"):
        parse("<vsock model='virtio'><cid auto='no'/></vsock>")


def test_missing_vhost_vsock_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = parse(VSOCK)
    device = str(tmp_path / "vhost-vsock")
    assert "modprobe vhost_vsock" in (vsock.missing(d, device) or "")
    with pytest.raises(HostError, match="vhost-vsock"):
        vsock.open_vsock(d, device)
    assert vsock.open_vsock(parse(""), device) is None and vsock.missing(parse(""), device) is None


@pytest.mark.parametrize(("xml", "device"), [("<panic model='isa'><address type='isa' iobase='0x505'/></panic>",
                                              "pvpanic,id=panic0,ioport=0x505"),
                                             ("<panic model='pvpanic'/>", "pvpanic-pci,id=panic0")])
def test_panic_devices(xml: str, device: str) -> None:
    assert device in values(build(round_trip(parse(xml))).argv, "-device")


def test_hyperv_panic_is_hv_crash_on_kvm_and_a_note_under_tcg() -> None:
    d = round_trip(parse("<panic model='hyperv'/>", dom_type="kvm"))
    assert values(build(d, accel="kvm").argv, "-cpu") == ["qemu64,hv-crash=on"]
    cmd = build(d, accel="tcg")
    assert not values(cmd.argv, "-cpu") and any("crash MSRs" in n for n in cmd.notes)
    assert not [x for x in values(cmd.argv, "-device") if "panic" in x]
