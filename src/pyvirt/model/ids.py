"""Identifiers: uuid and MAC address syntax, generation, and ``normalize``.

Generation takes an optional ``random.Random`` so tests are deterministic;
without one it uses the system's randomness (``uuid.uuid4``, ``secrets``).
"""
from __future__ import annotations

import random
import re
import secrets
import uuid as uuidlib
from collections.abc import Collection
from dataclasses import replace

from ..errors import InvalidArgument
from .domain import Domain

MAC_PREFIX = "52:54:00"  # QEMU/KVM's locally administered OUI, as libvirt uses
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def parse_uuid(text: str) -> str:
    """'C7A5FDBDEDAF9455926AD65C16DB1809' or dashed -> lower-case dashed form.

    Dashes may sit anywhere (libvirt accepts that); the result is 8-4-4-4-12.
    """
    raw = text.strip().replace("-", "")
    if not _HEX32.match(raw):
        raise InvalidArgument(
            f"uuid '{text}' is not 32 hexadecimal digits; write it like "
            "c7a5fdbd-edaf-9455-926a-d65c16db1809 or leave <uuid> out to get a new one"
        )
    if int(raw, 16) == 0:
        raise InvalidArgument(f"uuid '{text}' is all zeros; leave <uuid> out to get a new one")
    raw = raw.lower()
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def new_uuid(rng: random.Random | None = None) -> str:
    """A random (version 4) uuid; deterministic when ``rng`` is given."""
    if rng is None:
        return str(uuidlib.uuid4())
    return str(uuidlib.UUID(int=rng.getrandbits(128), version=4))


def parse_mac(text: str) -> str:
    """'52:54:00:AB:CD:EF' -> lower case; must be unicast and not all zeros."""
    mac = text.strip().lower()
    if not _MAC.match(mac):
        raise InvalidArgument(f"MAC address '{text}' is not six hex pairs like 52:54:00:12:34:56")
    first = int(mac[:2], 16)
    if first & 1:
        raise InvalidArgument(
            f"MAC address '{text}' is a multicast address (the first byte is odd); "
            "use a unicast one such as 52:54:00:12:34:56, or leave it out to get one"
        )
    if mac == "00:00:00:00:00:00":
        raise InvalidArgument(f"MAC address '{text}' is all zeros; leave it out to get one")
    return mac


def new_mac(taken: Collection[str] = (), rng: random.Random | None = None) -> str:
    """A MAC 52:54:00:xx:xx:xx not in ``taken`` (compared case-insensitively)."""
    used = {m.lower() for m in taken}
    for _ in range(10000):
        tail = rng.getrandbits(24) if rng is not None else secrets.randbits(24)
        mac = f"{MAC_PREFIX}:{tail >> 16:02x}:{(tail >> 8) & 0xFF:02x}:{tail & 0xFF:02x}"
        if mac not in used:
            return mac
    raise InvalidArgument("no free MAC address found under 52:54:00; give the interface a <mac address=...>")


def normalize(domain: Domain, *, taken_macs: Collection[str] = (), rng: random.Random | None = None) -> Domain:
    """Fill what libvirt fills on define: uuid, MACs, currentMemory, vcpu placement.

    ``taken_macs`` are MACs used elsewhere on the host, so new ones differ.
    The machine type stays None: the argv builder picks one for the arch.
    Idempotent: a normalized domain comes back equal.
    """
    changes: dict[str, object] = {}
    if not domain.uuid:
        changes["uuid"] = new_uuid(rng)
    if domain.current_memory_kib is None:
        changes["current_memory_kib"] = domain.memory_kib
    if domain.vcpu_placement is None:
        changes["vcpu_placement"] = "static"
    used = {m.lower() for m in taken_macs}
    used.update(i.mac.lower() for i in domain.devices.interfaces if i.mac)
    interfaces = []
    for iface in domain.devices.interfaces:
        if iface.mac is None:
            mac = new_mac(used, rng)
            used.add(mac)
            iface = replace(iface, mac=mac)
        interfaces.append(iface)
    if tuple(interfaces) != domain.devices.interfaces:
        changes["devices"] = replace(domain.devices, interfaces=tuple(interfaces))
    return replace(domain, **changes) if changes else domain  # type: ignore[arg-type]
