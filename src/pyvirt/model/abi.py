"""Whether two definitions describe the same virtual hardware (a saved state fits both).

A saved or migrating guest's state only loads into a QEMU with the same
devices at the same places. ``save --xml``, ``restore --xml`` and
``save-image-define`` may change what lies outside the guest (where a disk's
image is, which bridge a NIC plugs into, the display's password, the
description) but nothing the guest sees. ``abi_differences`` names what
differs in what the guest sees; empty means the definitions are compatible.
Pure: no I/O.
"""
from __future__ import annotations

from dataclasses import MISSING, fields, replace
from typing import Any

from .domain import Devices, Domain

# Outside the guest: free to change between the saved definition and the one that restores it.
_DOMAIN_HOST_SIDE = ("title", "description", "metadata_xml", "on_poweroff", "on_reboot", "on_crash", "seclabels",
                     "blkiotune", "memtune", "cputune", "vcpu_placement")
_DISK_HOST_SIDE = ("source_type", "source", "source_pool", "source_volume", "source_index", "volume_type", "cache",
                   "discard", "io", "driver_name")
_NIC_HOST_SIDE = ("source", "target_dev", "link_state", "driver_name", "alias")
_CHAR_HOST_SIDE = ("source_path", "source_mode", "log_file", "log_append")
_DEVICES_HOST_SIDE = ("emulator", "graphics")


def _blank(obj: Any, names: tuple[str, ...]) -> Any:
    """``obj`` with ``names`` set to their defaults (or None), so they compare equal."""
    values: dict[str, Any] = {}
    for f in fields(obj):
        if f.name not in names:
            continue
        if f.default is not MISSING:
            values[f.name] = f.default
        elif f.default_factory is not MISSING:
            values[f.name] = f.default_factory()
        else:
            values[f.name] = None
    return replace(obj, **values)


def guest_view(domain: Domain) -> Domain:
    """The definition reduced to what the guest sees."""
    d = domain.devices
    devices: Devices = _blank(d, _DEVICES_HOST_SIDE)
    devices = replace(
        devices,
        disks=tuple(_blank(x, _DISK_HOST_SIDE) for x in d.disks),
        interfaces=tuple(_blank(n, _NIC_HOST_SIDE) for n in d.interfaces),
        serials=tuple(_blank(c, _CHAR_HOST_SIDE) for c in d.serials),
        consoles=tuple(_blank(c, _CHAR_HOST_SIDE) for c in d.consoles),
        channels=tuple(_blank(c, _CHAR_HOST_SIDE) for c in d.channels),
    )
    base: Domain = _blank(domain, _DOMAIN_HOST_SIDE)
    return replace(base, devices=devices)


def abi_differences(old: Domain, new: Domain) -> list[str]:
    """What differs, as the guest would see it, between ``old`` and ``new`` (empty: compatible)."""
    out: list[str] = []
    if old.name != new.name:
        out.append(f"the name ('{old.name}' is now '{new.name}')")
    if old.uuid != new.uuid:
        out.append(f"the uuid ({old.uuid} is now {new.uuid})")
    a, b = guest_view(old), guest_view(new)
    for f in fields(Domain):
        if f.name in ("name", "uuid", "devices"):
            continue
        if getattr(a, f.name) != getattr(b, f.name):
            out.append(f"<{f.name}>")
    for f in fields(Devices):
        if getattr(a.devices, f.name) != getattr(b.devices, f.name):
            out.append(f"the <devices> {f.name}")
    return out

