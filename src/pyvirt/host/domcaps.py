"""libvirt's <domainCapabilities>: what a domain of one type and machine may use here (virsh domcapabilities).

Rendered from the probed capabilities and pyvirt's own model (model/validate.py):
a value is listed only when pyvirt's XML accepts it and this host's QEMU has the
device behind it. Pure; the daemon checks the options before calling it.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from ..errors import HostError, InvalidArgument
from ..model import validate as v
from .caps import HostCapabilities, MachineType

MAX_VCPUS = {"q35": 288, "pc": 255, "microvm": 255}
_NEEDS = {  # a model value -> the QEMU device that must exist for it
    "video": {"virtio": "virtio-vga", "qxl": "qxl-vga", "vga": "VGA", "cirrus": "cirrus-vga", "bochs": "bochs-display",
              "ramfb": "ramfb"},
    "rng": {"virtio": "virtio-rng-pci"},
    "disk_bus": {"virtio": "virtio-blk-pci", "sata": "ide-hd", "scsi": "scsi-hd", "ide": "ide-hd", "nvme": "nvme-ns"},
}


def pick_machine(caps: HostCapabilities, machine: str | None) -> MachineType:
    if machine is None:
        found = caps.machine("q35") or caps.default_machine
    else:
        found = caps.machine(machine)
    if found is None:
        raise InvalidArgument(f"machine type '{machine}' is not one this host's QEMU ({caps.qemu_binary}) offers; "
                              "see `pyvirt capabilities` for the list")
    return found


def check_request(caps: HostCapabilities, virttype: str | None, emulatorbin: str | None, arch: str | None) -> str:
    """The domain type asked for (kvm by default where KVM works, else qemu), or a clear error."""
    if arch is not None and arch != caps.arch:
        raise InvalidArgument(f"architecture '{arch}' is not supported here; this host runs {caps.arch} guests")
    if emulatorbin is not None and emulatorbin != caps.qemu_binary:
        raise InvalidArgument(f"emulator '{emulatorbin}' is not this host's QEMU; use {caps.qemu_binary}")
    dtype = virttype or ("kvm" if caps.kvm_usable else "qemu")
    if dtype not in v.DOMAIN_TYPES:
        raise InvalidArgument(f"virttype '{dtype}' is not supported; use kvm or qemu")
    if dtype == "kvm" and not caps.kvm_usable:
        raise HostError(f"KVM is not usable on this host ({caps.kvm.reason}); ask for --virttype qemu")
    return dtype


def _enum(parent: ET.Element, name: str, values: tuple[str, ...] | list[str]) -> None:
    e = ET.SubElement(parent, "enum", name=name)
    for value in values:
        ET.SubElement(e, "value").text = value


def _usable(caps: HostCapabilities, kind: str, values: tuple[str, ...], family: str = "q35") -> list[str]:
    needs = dict(_NEEDS[kind])
    if family == "microvm":  # no PCI: virtio devices sit on virtio-mmio
        needs = {k: v.replace("-pci", "-device") for k, v in needs.items()}
    return [x for x in values if not caps.devices or needs.get(x) is None or caps.has_device(needs[x])]


def domcapabilities_xml(caps: HostCapabilities, dtype: str, machine: MachineType) -> str:
    root = ET.Element("domainCapabilities")
    ET.SubElement(root, "path").text = caps.qemu_binary
    ET.SubElement(root, "domain").text = dtype
    ET.SubElement(root, "machine").text = machine.name
    ET.SubElement(root, "arch").text = caps.arch
    family = "microvm" if machine.name == "microvm" else "q35" if "q35" in machine.name else "pc"
    ET.SubElement(root, "vcpu", max=str(MAX_VCPUS[family]))
    ET.SubElement(root, "iothreads", supported="no")
    os_ = ET.SubElement(root, "os", supported="yes")
    _enum(os_, "firmware", [])
    loader = ET.SubElement(os_, "loader", supported="no" if family == "microvm" else "yes")
    _enum(loader, "type", list(v.LOADER_TYPES))
    _enum(loader, "readonly", ["yes", "no"])
    _enum(loader, "secure", ["yes", "no"])
    cpu = ET.SubElement(root, "cpu")
    kvm = dtype == "kvm"
    ET.SubElement(cpu, "mode", name="host-passthrough", supported="yes" if kvm else "no")
    ET.SubElement(cpu, "mode", name="maximum", supported="yes")
    ET.SubElement(cpu, "mode", name="host-model", supported="yes" if kvm else "no")
    custom = ET.SubElement(cpu, "mode", name="custom", supported="yes")
    for model in caps.cpu_models:
        ET.SubElement(custom, "model", usable="unknown").text = model
    backing = ET.SubElement(root, "memoryBacking", supported="yes")
    _enum(backing, "sourceType", ["anonymous", "memfd"])
    devices = ET.SubElement(root, "devices")
    disk = ET.SubElement(devices, "disk", supported="yes")
    _enum(disk, "diskDevice", list(v.DISK_DEVICES))
    buses = [b for b in _usable(caps, "disk_bus", v.DISK_BUSES, family) if family != "microvm" or b == "virtio"]
    _enum(disk, "bus", buses)
    graphics = ET.SubElement(devices, "graphics", supported="yes")
    _enum(graphics, "type", [g for g in v.GRAPHICS_TYPES if g != "spice" or caps.has_spice])
    video = ET.SubElement(devices, "video", supported="yes")
    _enum(video, "modelType", _usable(caps, "video", v.VIDEO_MODELS))
    ET.SubElement(devices, "hostdev", supported="no")
    rng = ET.SubElement(devices, "rng", supported="yes")
    _enum(rng, "model", _usable(caps, "rng", v.RNG_MODELS, family))
    _enum(rng, "backendModel", list(v.RNG_BACKENDS))
    ET.SubElement(devices, "filesystem", supported="no")
    ET.SubElement(devices, "tpm", supported="no")
    features = ET.SubElement(root, "features")
    for name in ("gic", "vmcoreinfo", "genid", "sev", "sgx", "hyperv"):
        ET.SubElement(features, name, supported="no")
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"
