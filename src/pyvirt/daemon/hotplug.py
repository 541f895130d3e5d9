"""Where a hot-plugged PCI device can go on a running domain.

q35's root bus (pcie.0) takes no hot-plug: a new device needs an empty
pcie-root-port, as libvirt arranges (virt-install adds spare ones). pc's
pci.0 takes hot-plug through ACPI, and QEMU picks the slot. microvm has no
PCI at all.
"""
from __future__ import annotations

from dataclasses import fields

from ..errors import OperationInvalid
from ..model.domain import Address, Domain
from ..qemu.argv import machine_family

Placement = list[tuple[str, str]]


def machine_of(domain: Domain) -> str:
    """The machine family of a running domain (it started, so its machine is a known one)."""
    return machine_family(domain.os.machine or "q35") or "pc"


def used_pci_buses(domain: Domain) -> set[int]:
    """Bus numbers that devices of ``domain`` sit on, by their <address type='pci' bus=...>."""
    buses = set()
    for f in fields(domain.devices):
        items = getattr(domain.devices, f.name)
        for item in items if isinstance(items, tuple) else (items,):
            address = getattr(item, "address", None)
            if isinstance(address, Address) and address.type == "pci":
                buses.add(int(address.get("bus") or "0", 0))
    return buses


def hotplug_slot(domain: Domain, who: str) -> tuple[Placement, Address | None]:
    """device_add placement properties for a new PCI device, and the address it will have."""
    family = machine_of(domain)
    if family == "microvm":
        raise OperationInvalid(f"{who}: machine 'microvm' has no PCI bus and cannot hot-plug devices; "
                               "use --config and restart the domain, or use machine type q35")
    if family == "pc":
        return [], None
    used = used_pci_buses(domain)
    ports = sorted(c.index for c in domain.devices.controllers
                   if c.type == "pci" and c.model == "pcie-root-port" and c.index not in used)
    if not ports:
        raise OperationInvalid(
            f"{who}: no free pcie-root-port for hot-plug on this q35 domain; add spare ones to its definition "
            "(<controller type='pci' model='pcie-root-port'/>) and restart it, or use --config")
    bus = ports[0]
    address = Address("pci", (("domain", "0x0000"), ("bus", f"0x{bus:02x}"), ("slot", "0x00"),
                              ("function", "0x0")))
    return [("bus", f"pci.{bus}"), ("addr", "0x0")], address
