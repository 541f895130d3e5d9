"""What this host and its QEMU binary can do, as plain frozen data.

The probe (probe.py) fills a ``HostCapabilities`` once per boot; the cache, the
API and ``pyvirt capabilities`` read it back through ``to_dict``/``from_dict``.
``capabilities_xml`` renders the libvirt-style <capabilities> document from it
without touching the host, so the rendering is deterministic and testable.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from ..errors import InternalError

#: Bumped whenever a field changes meaning; cached documents of another format are re-probed.
CAPS_FORMAT = 1


@dataclass(frozen=True)
class MachineType:
    """One ``-machine help`` entry; ``alias`` is the short name QEMU also accepts (pc, q35)."""

    name: str
    alias: str | None = None
    is_default: bool = False
    deprecated: bool = False
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "is_default": self.is_default,
            "deprecated": self.deprecated,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MachineType:
        return cls(
            name=str(data["name"]),
            alias=data.get("alias"),
            is_default=bool(data.get("is_default", False)),
            deprecated=bool(data.get("deprecated", False)),
            description=str(data.get("description", "")),
        )


@dataclass(frozen=True)
class KvmStatus:
    """Whether guests can run under KVM here; ``reason`` says why in words either way."""

    dev_exists: bool
    usable: bool
    reason: str
    module: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"dev_exists": self.dev_exists, "usable": self.usable, "reason": self.reason, "module": self.module}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KvmStatus:
        return cls(
            dev_exists=bool(data["dev_exists"]),
            usable=bool(data["usable"]),
            reason=str(data["reason"]),
            module=data.get("module"),
        )


@dataclass(frozen=True)
class CpuTopology:
    sockets: int = 1
    cores: int = 1
    threads: int = 1

    def to_dict(self) -> dict[str, int]:
        return {"sockets": self.sockets, "cores": self.cores, "threads": self.threads}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CpuTopology:
        return cls(int(data["sockets"]), int(data["cores"]), int(data["threads"]))


@dataclass(frozen=True)
class HostCapabilities:
    """Facts about the host and its QEMU that decide how guests are launched."""

    hostname: str
    arch: str
    cpu_model_name: str
    cpu_count: int
    cpu_flags_virt: str | None  # "vmx", "svm" or None
    memory_kib: int
    qemu_binary: str
    qemu_version: str
    qemu_version_tuple: tuple[int, int, int]
    machine_types: tuple[MachineType, ...]
    accelerators: tuple[str, ...]
    cpu_models: tuple[str, ...]
    devices: frozenset[str]
    has_spice: bool
    has_sandbox: bool
    kvm: KvmStatus
    host_boot_id: str
    host_uuid: str = "00000000-0000-0000-0000-000000000000"
    cpu_vendor: str | None = None
    cpu_topology: CpuTopology = field(default_factory=CpuTopology)
    probe_seconds: float = 0.0

    # -- questions the rest of pyvirt asks ---------------------------------

    @property
    def default_machine(self) -> MachineType | None:
        return next((m for m in self.machine_types if m.is_default), None)

    def machine(self, name: str) -> MachineType | None:
        """The machine type called ``name`` or aliased so (``q35`` -> pc-q35-7.2)."""
        for m in self.machine_types:
            if m.name == name or m.alias == name:
                return m
        return None

    def has_device(self, name: str) -> bool:
        return name in self.devices

    @property
    def kvm_usable(self) -> bool:
        return self.kvm.usable and "kvm" in self.accelerators

    @property
    def accel(self) -> str:
        """The accelerator guests get by default: KVM only where a guest really ran under it."""
        return "kvm" if self.kvm_usable else "tcg"

    @property
    def domain_types(self) -> tuple[str, ...]:
        """libvirt's <domain type=...> values this host accepts."""
        return ("qemu", "kvm") if self.kvm_usable else ("qemu",)

    # -- JSON ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CAPS_FORMAT,
            "hostname": self.hostname,
            "arch": self.arch,
            "cpu_model_name": self.cpu_model_name,
            "cpu_vendor": self.cpu_vendor,
            "cpu_count": self.cpu_count,
            "cpu_flags_virt": self.cpu_flags_virt,
            "cpu_topology": self.cpu_topology.to_dict(),
            "memory_kib": self.memory_kib,
            "host_uuid": self.host_uuid,
            "host_boot_id": self.host_boot_id,
            "qemu_binary": self.qemu_binary,
            "qemu_version": self.qemu_version,
            "qemu_version_tuple": list(self.qemu_version_tuple),
            "machine_types": [m.to_dict() for m in self.machine_types],
            "accelerators": list(self.accelerators),
            "cpu_models": list(self.cpu_models),
            "devices": sorted(self.devices),
            "has_spice": self.has_spice,
            "has_sandbox": self.has_sandbox,
            "kvm": self.kvm.to_dict(),
            "probe_seconds": self.probe_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostCapabilities:
        """Rebuild from ``to_dict`` output; a foreign or damaged document is an InternalError."""
        if data.get("format") != CAPS_FORMAT:
            raise InternalError(
                f"host capabilities document has format {data.get('format')!r}, expected {CAPS_FORMAT}; "
                "probe the host again (pyvirt capabilities --refresh)"
            )
        try:
            major, minor, micro = (int(x) for x in data["qemu_version_tuple"])
            return cls(
                hostname=str(data["hostname"]),
                arch=str(data["arch"]),
                cpu_model_name=str(data["cpu_model_name"]),
                cpu_vendor=data.get("cpu_vendor"),
                cpu_count=int(data["cpu_count"]),
                cpu_flags_virt=data.get("cpu_flags_virt"),
                cpu_topology=CpuTopology.from_dict(data["cpu_topology"]),
                memory_kib=int(data["memory_kib"]),
                host_uuid=str(data["host_uuid"]),
                host_boot_id=str(data["host_boot_id"]),
                qemu_binary=str(data["qemu_binary"]),
                qemu_version=str(data["qemu_version"]),
                qemu_version_tuple=(major, minor, micro),
                machine_types=tuple(MachineType.from_dict(m) for m in data["machine_types"]),
                accelerators=tuple(str(a) for a in data["accelerators"]),
                cpu_models=tuple(str(c) for c in data["cpu_models"]),
                devices=frozenset(str(d) for d in data["devices"]),
                has_spice=bool(data["has_spice"]),
                has_sandbox=bool(data["has_sandbox"]),
                kvm=KvmStatus.from_dict(data["kvm"]),
                probe_seconds=float(data.get("probe_seconds", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InternalError(
                f"host capabilities document is damaged ({type(exc).__name__}: {exc}); "
                "probe the host again (pyvirt capabilities --refresh)"
            ) from exc


_WORDSIZE = {"x86_64": 64, "i686": 32, "aarch64": 64}


@dataclass(frozen=True)
class LiveCpu:
    id: int
    socket_id: int
    die_id: int
    core_id: int
    siblings: str


@dataclass(frozen=True)
class LiveCell:
    """A NUMA cell as read now (host/node.py): memory, page pools (size KiB -> pages), CPUs, distances."""

    id: int
    memory_kib: int
    pages: tuple[tuple[int, int], ...]
    cpus: tuple[LiveCpu, ...]
    distances: tuple[int, ...] = ()


@dataclass(frozen=True)
class LiveFacts:
    """What the capabilities document adds from the host as it is now (not cached per boot)."""

    cpu_features: tuple[str, ...]
    page_sizes_kib: tuple[int, ...]
    cells: tuple[LiveCell, ...]


def capabilities_xml(caps: HostCapabilities, live: LiveFacts | None = None) -> str:
    """Render a libvirt-style <capabilities> document (what ``virsh capabilities`` prints).

    Covers the parts clients read: host uuid, CPU arch/model/vendor/topology,
    memory, and one <guest> (hvm, the host arch) with the emulator, every
    machine type (aliases with ``canonical=``) and the domain types; ``kvm``
    is listed only when a guest really ran under KVM. With ``live`` facts, the
    CPU's features, the page sizes and every NUMA cell (memory, pages per size,
    CPUs with their socket/core ids, distances) as the host has them now.
    """
    root = ET.Element("capabilities")
    host = ET.SubElement(root, "host")
    ET.SubElement(host, "uuid").text = caps.host_uuid
    cpu = ET.SubElement(host, "cpu")
    ET.SubElement(cpu, "arch").text = caps.arch
    ET.SubElement(cpu, "model").text = caps.cpu_model_name
    if caps.cpu_vendor:
        ET.SubElement(cpu, "vendor").text = caps.cpu_vendor
    topo = caps.cpu_topology
    ET.SubElement(
        cpu, "topology",
        sockets=str(topo.sockets), dies="1", cores=str(topo.cores), threads=str(topo.threads),
    )
    if live is None:
        if caps.cpu_flags_virt:
            ET.SubElement(cpu, "feature", name=caps.cpu_flags_virt)
    else:
        for flag in live.cpu_features:
            ET.SubElement(cpu, "feature", name=flag)
        for size in live.page_sizes_kib:
            ET.SubElement(cpu, "pages", unit="KiB", size=str(size))
    ET.SubElement(host, "power_management")
    if live is None:
        cells = ET.SubElement(ET.SubElement(host, "topology"), "cells", num="1")
        cell = ET.SubElement(cells, "cell", id="0")
        ET.SubElement(cell, "memory", unit="KiB").text = str(caps.memory_kib)
        cpus = ET.SubElement(cell, "cpus", num=str(caps.cpu_count))
        for i in range(caps.cpu_count):
            ET.SubElement(cpus, "cpu", id=str(i))
    else:
        _live_cells(host, live)

    guest = ET.SubElement(root, "guest")
    ET.SubElement(guest, "os_type").text = "hvm"
    arch = ET.SubElement(guest, "arch", name=caps.arch)
    ET.SubElement(arch, "wordsize").text = str(_WORDSIZE.get(caps.arch, 64))
    ET.SubElement(arch, "emulator").text = caps.qemu_binary
    for m in caps.machine_types:
        ET.SubElement(arch, "machine", {"deprecated": "yes"} if m.deprecated else {}).text = m.name
        if m.alias:
            ET.SubElement(arch, "machine", canonical=m.name).text = m.alias
    for dtype in caps.domain_types:
        ET.SubElement(arch, "domain", type=dtype)
    features = ET.SubElement(guest, "features")
    ET.SubElement(features, "acpi", default="on", toggle="yes")
    ET.SubElement(features, "apic", default="on", toggle="no")
    ET.SubElement(features, "cpuselection")
    ET.SubElement(features, "deviceboot")

    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


def _live_cells(host: ET.Element, live: LiveFacts) -> None:
    cells = ET.SubElement(ET.SubElement(host, "topology"), "cells", num=str(len(live.cells)))
    for c in live.cells:
        cell = ET.SubElement(cells, "cell", id=str(c.id))
        ET.SubElement(cell, "memory", unit="KiB").text = str(c.memory_kib)
        for size, count in c.pages:
            ET.SubElement(cell, "pages", unit="KiB", size=str(size)).text = str(count)
        if c.distances:
            dist = ET.SubElement(cell, "distances")
            for other, value in enumerate(c.distances):
                ET.SubElement(dist, "sibling", id=str(other), value=str(value))
        cpus = ET.SubElement(cell, "cpus", num=str(len(c.cpus)))
        for p in c.cpus:
            ET.SubElement(cpus, "cpu", id=str(p.id), socket_id=str(p.socket_id), die_id=str(p.die_id),
                          core_id=str(p.core_id), siblings=p.siblings)


def capabilities_data(caps: HostCapabilities, live: LiveFacts) -> dict[str, Any]:
    """The same facts as ``capabilities_xml(caps, live)``, as JSON-ready data (`pyvirt capabilities --json`)."""
    topo = caps.cpu_topology
    return {
        "host": {
            "uuid": caps.host_uuid,
            "cpu": {"arch": caps.arch, "model": caps.cpu_model_name, "vendor": caps.cpu_vendor,
                    "topology": {"sockets": topo.sockets, "dies": 1, "cores": topo.cores, "threads": topo.threads},
                    "features": list(live.cpu_features), "pages_kib": list(live.page_sizes_kib)},
            "cells": [{"id": c.id, "memory_kib": c.memory_kib,
                       "pages": [{"size_kib": size, "count": n} for size, n in c.pages],
                       "distances": list(c.distances),
                       "cpus": [{"id": p.id, "socket_id": p.socket_id, "die_id": p.die_id, "core_id": p.core_id,
                                 "siblings": p.siblings} for p in c.cpus]}
                      for c in live.cells],
        },
        "guests": [{
            "os_type": "hvm", "arch": caps.arch, "wordsize": _WORDSIZE.get(caps.arch, 64),
            "emulator": caps.qemu_binary,
            "machines": [{"name": m.name, "alias": m.alias, "deprecated": m.deprecated} for m in caps.machine_types],
            "domain_types": list(caps.domain_types),
            "accelerators": list(caps.accelerators),
        }],
    }
