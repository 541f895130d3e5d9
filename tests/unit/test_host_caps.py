"""HostCapabilities: JSON round trip, the questions it answers, and the <capabilities> XML."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from pyvirt.errors import InternalError
from pyvirt.host.caps import (
    CpuTopology,
    HostCapabilities,
    KvmStatus,
    MachineType,
    capabilities_xml,
)

NO_KVM = KvmStatus(True, False, "KVM guest did not finish a trivial boot within 3.0 s (host module kvm_pvm)", "kvm_pvm")
KVM_OK = KvmStatus(True, True, "KVM guest finished a trivial boot in 0.12 s (host module kvm_intel)", "kvm_intel")


def make_caps(kvm: KvmStatus = NO_KVM) -> HostCapabilities:
    return HostCapabilities(
        hostname="host1",
        arch="x86_64",
        cpu_model_name="AMD EPYC",
        cpu_vendor="AMD",
        cpu_count=2,
        cpu_flags_virt=None,
        cpu_topology=CpuTopology(1, 2, 1),
        memory_kib=24684092,
        host_uuid="3d1219c7-c4c5-404a-aa1f-6d2a48adfda4",
        host_boot_id="ca680873-6026-4556-ad41-2605c8bbecac",
        qemu_binary="/usr/bin/qemu-system-x86_64",
        qemu_version="7.2.22",
        qemu_version_tuple=(7, 2, 22),
        machine_types=(
            MachineType("microvm", None, False, False, "microvm (i386)"),
            MachineType("pc-i440fx-7.2", "pc", True, False, "Standard PC (i440FX + PIIX, 1996)"),
            MachineType("pc-i440fx-1.4", None, False, True, "Standard PC (i440FX + PIIX, 1996)"),
            MachineType("pc-q35-7.2", "q35", False, False, "Standard PC (Q35 + ICH9, 2009)"),
        ),
        accelerators=("tcg", "kvm"),
        cpu_models=("qemu64", "EPYC", "host", "max"),
        devices=frozenset({"qemu-xhci", "ich9-intel-hda", "virtio-net-pci", "qxl"}),
        has_spice=True,
        has_sandbox=True,
        kvm=kvm,
        probe_seconds=3.02,
    )


def test_json_round_trip_is_exact() -> None:
    caps = make_caps()
    text = json.dumps(caps.to_dict())
    back = HostCapabilities.from_dict(json.loads(text))
    assert back == caps
    assert isinstance(back.devices, frozenset) and isinstance(back.machine_types, tuple)
    assert back.qemu_version_tuple == (7, 2, 22)


def test_from_dict_rejects_other_format_and_damage() -> None:
    data = make_caps().to_dict()
    with pytest.raises(InternalError, match="format 0"):
        HostCapabilities.from_dict({**data, "format": 0})
    broken = dict(data)
    del broken["machine_types"]
    with pytest.raises(InternalError, match="machine_types"):
        HostCapabilities.from_dict(broken)


def test_machine_lookup_and_accel() -> None:
    caps = make_caps()
    assert caps.default_machine is not None and caps.default_machine.name == "pc-i440fx-7.2"
    q35 = caps.machine("q35")
    assert q35 is not None and q35.name == "pc-q35-7.2"
    assert caps.machine("pc-q35-7.2") == q35
    assert caps.machine("virt") is None
    assert caps.has_device("ich9-intel-hda") and not caps.has_device("virtio-net")
    assert caps.accel == "tcg" and caps.domain_types == ("qemu",)
    good = make_caps(KVM_OK)
    assert good.accel == "kvm" and good.domain_types == ("qemu", "kvm")
    # a usable KVM is no use to a QEMU built without it
    assert replace(good, accelerators=("tcg",)).accel == "tcg"


def test_capabilities_xml_without_kvm() -> None:
    caps = make_caps()
    root = ET.fromstring(capabilities_xml(caps))
    assert root.tag == "capabilities"
    assert root.findtext("host/uuid") == caps.host_uuid
    assert root.findtext("host/cpu/arch") == "x86_64"
    assert root.findtext("host/cpu/model") == "AMD EPYC"
    topo = root.find("host/cpu/topology")
    assert topo is not None and (topo.get("sockets"), topo.get("cores"), topo.get("threads")) == ("1", "2", "1")
    assert root.findtext("host/topology/cells/cell/memory") == "24684092"
    guest = root.find("guest")
    assert guest is not None and guest.findtext("os_type") == "hvm"
    arch = guest.find("arch")
    assert arch is not None and arch.get("name") == "x86_64"
    assert arch.findtext("emulator") == "/usr/bin/qemu-system-x86_64"
    machines = {(m.text, m.get("canonical")) for m in arch.findall("machine")}
    assert machines == {
        ("microvm", None), ("pc-i440fx-7.2", None), ("pc", "pc-i440fx-7.2"),
        ("pc-i440fx-1.4", None), ("pc-q35-7.2", None), ("q35", "pc-q35-7.2"),
    }
    dep = [m.text for m in arch.findall("machine") if m.get("deprecated") == "yes"]
    assert dep == ["pc-i440fx-1.4"]
    assert [d.get("type") for d in arch.findall("domain")] == ["qemu"]


def test_capabilities_xml_with_kvm_and_deterministic() -> None:
    caps = make_caps(KVM_OK)
    text = capabilities_xml(caps)
    arch = ET.fromstring(text).find("guest/arch")
    assert arch is not None
    assert [d.get("type") for d in arch.findall("domain")] == ["qemu", "kvm"]
    assert capabilities_xml(caps) == text
