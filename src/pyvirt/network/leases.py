"""The DHCP leases of a network, read from dnsmasq's own lease file (virsh net-dhcp-leases).

dnsmasq rewrites the file on every change. Its format, one lease a line::

    <expiry> <mac> <ipv4> <hostname|*> <client-id|*>
    duid <the server's DUID>                      (only when DHCPv6 runs)
    <expiry> [T]<iaid> <ipv6> <hostname|*> <client DUID|*>

``expiry`` is the epoch second the lease ends, 0 for an infinite lease. An
IPv6 lease carries no MAC; it is taken from the client's DUID when that is of
the link-layer kinds (DUID-LLT/DUID-LL over Ethernet), as most clients send.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

from ..model.network import Network


@dataclass(frozen=True)
class Lease:
    expiry: int  # epoch seconds; 0: never expires
    mac: str | None
    ip: str
    prefix: int  # of the network's subnet holding ip (32/128 when none does)
    family: str  # ipv4 | ipv6 (virsh's "Protocol" column)
    hostname: str | None
    client_id: str | None  # IPv4 client-id, or the IPv6 client's DUID
    iaid: str | None = None  # IPv6 only

    @property
    def protocol(self) -> str:
        return self.family


def format_expiry(expiry: int) -> str:
    """As virsh net-dhcp-leases prints it: local time, ``2026-11-23 13:05:01``."""
    if expiry == 0:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(expiry))


def mac_from_duid(duid: str) -> str | None:
    """The Ethernet MAC inside a DUID-LLT (type 1) or DUID-LL (type 3), else None."""
    try:
        raw = bytes.fromhex(duid.replace(":", ""))
    except ValueError:
        return None
    if len(raw) == 14 and raw[:4] == b"\x00\x01\x00\x01":
        mac = raw[8:]
    elif len(raw) == 10 and raw[:4] == b"\x00\x03\x00\x01":
        mac = raw[4:]
    else:
        return None
    return ":".join(f"{b:02x}" for b in mac)


def _prefix(ip: str, net: Network | None) -> int:
    addr = ipaddress.ip_address(ip)
    for cfg in net.ips if net else ():
        if addr in cfg.subnet:
            return cfg.prefix
    return addr.max_prefixlen


def _field(value: str) -> str | None:
    return None if value == "*" else value


def parse_leases(text: str, net: Network | None = None, *, now: float | None = None) -> list[Lease]:
    """The unexpired leases in lease-file ``text``; lines that do not parse are skipped."""
    now = time.time() if now is None else now
    out: list[Lease] = []
    ipv6 = False
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == "duid":
            ipv6 = True
            continue
        if len(fields) != 5 or not fields[0].isdigit():
            continue
        expiry = int(fields[0])
        if expiry and expiry <= now:
            continue
        try:
            addr = ipaddress.ip_address(fields[2])
        except ValueError:
            continue
        hostname, client = _field(fields[3]), _field(fields[4])
        if ipv6 or addr.version == 6:
            out.append(Lease(expiry=expiry, mac=mac_from_duid(client) if client else None, ip=str(addr),
                             prefix=_prefix(str(addr), net), family="ipv6", hostname=hostname,
                             client_id=client, iaid=fields[1]))
        else:
            out.append(Lease(expiry=expiry, mac=fields[1].lower(), ip=str(addr), prefix=_prefix(str(addr), net),
                             family="ipv4", hostname=hostname, client_id=client))
    return out


def read_leases(leasefile: Path, net: Network | None = None, *, now: float | None = None) -> list[Lease]:
    """The unexpired leases of ``leasefile`` (none when the network never ran dnsmasq)."""
    try:
        text = leasefile.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return parse_leases(text, net, now=now)
