"""The virtual network model: frozen dataclasses for libvirt's <network> XML.

Parsing and formatting live in ``network_xml``; this module is the shared
vocabulary of the XML codec, the host side (``pyvirt.network``) and the daemon.
Addresses are kept as the text the user wrote (validated by the codec), so a
definition round-trips exactly.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# forward modes pyvirt runs; None means an isolated network (no <forward>).
ROUTED_MODES = ("nat", "route", "open")  # a bridge pyvirt creates, forwarding to the host
FORWARD_MODES = (*ROUTED_MODES, "bridge")  # bridge: an existing host bridge, or macvtap with dev=
LATER_MODES = ("passthrough", "private", "vepa", "hostdev")  # libvirt modes pyvirt does not run yet


@dataclass(frozen=True)
class Bridge:
    """<bridge name= stp= delay=/>: the host bridge pyvirt creates (or uses, mode bridge)."""

    name: str | None = None
    stp: bool | None = None
    delay: int | None = None


@dataclass(frozen=True)
class Forward:
    """<forward mode= dev=>: how guests' traffic leaves the network."""

    mode: str = "nat"  # nat | route | open | bridge
    dev: str | None = None  # nat/route: restrict to this uplink; bridge: macvtap over this device
    nat_port_start: int | None = None  # <nat><port start= end=/></nat>
    nat_port_end: int | None = None
    interfaces: tuple[str, ...] = ()  # <interface dev=/> children: macvtap pool (bridge mode)

    def __post_init__(self) -> None:
        """Keep libvirt's one list of devices: dev= is the first <interface>, and each implies the other.

        libvirt writes <forward dev='eth0'> back with an <interface dev='eth0'/> child, so
        ``Forward(dev='eth0')`` and ``Forward(dev='eth0', interfaces=('eth0',))`` are one
        setting; storing it one way makes parse(format(x)) == x. A dev= that differs from
        the first interface is kept as given, for validation to reject.
        """
        if self.dev and not self.interfaces:
            object.__setattr__(self, "interfaces", (self.dev,))
        elif self.interfaces and not self.dev:
            object.__setattr__(self, "dev", self.interfaces[0])


@dataclass(frozen=True)
class DHCPRange:
    start: str
    end: str


@dataclass(frozen=True)
class DHCPHost:
    """<host mac= name= ip=/>: a static lease (IPv4 by mac; IPv6 by id or name)."""

    mac: str | None = None
    name: str | None = None
    ip: str | None = None
    id: str | None = None  # IPv6 DUID


@dataclass(frozen=True)
class IPConfig:
    """<ip address= netmask=|prefix= family=> with its optional <dhcp>."""

    address: str
    prefix: int
    family: str = "ipv4"  # ipv4 | ipv6
    netmask: str | None = None  # kept as written, so netmask= round-trips
    dhcp_ranges: tuple[DHCPRange, ...] = ()
    dhcp_hosts: tuple[DHCPHost, ...] = ()

    @property
    def interface(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        return ipaddress.ip_interface(f"{self.address}/{self.prefix}")

    @property
    def subnet(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return self.interface.network

    @property
    def has_dhcp(self) -> bool:
        return bool(self.dhcp_ranges or self.dhcp_hosts)


@dataclass(frozen=True)
class DNSHost:
    """<dns><host ip=><hostname>..</hostname></host></dns>."""

    ip: str
    hostnames: tuple[str, ...]


@dataclass(frozen=True)
class Network:
    name: str
    uuid: str = ""  # generated when missing
    bridge: Bridge | None = None
    mtu: int | None = None
    mac: str | None = None  # the bridge's MAC (generated for networks pyvirt bridges)
    forward: Forward | None = None  # None: isolated
    ips: tuple[IPConfig, ...] = ()
    domain_name: str | None = None  # <domain name= localOnly=yes/>
    domain_local_only: bool | None = None
    dns_enable: bool | None = None  # <dns enable='no'/> turns dnsmasq's DNS off
    dns_hosts: tuple[DNSHost, ...] = ()

    @property
    def mode(self) -> str:
        """'isolated', 'nat', 'route', 'open' or 'bridge' (virsh shows no mode for isolated)."""
        return self.forward.mode if self.forward else "isolated"

    @property
    def owns_bridge(self) -> bool:
        """True when pyvirt creates (and removes) the bridge: isolated, nat, route, open."""
        return self.forward is None or self.forward.mode in ROUTED_MODES

    @property
    def is_macvtap(self) -> bool:
        """Bridge mode over a host device: guests get macvtap links, there is no bridge."""
        return bool(self.forward and self.forward.mode == "bridge"
                    and (self.forward.dev or self.forward.interfaces) and not
                    (self.bridge and self.bridge.name))

    @property
    def needs_dnsmasq(self) -> bool:
        """dnsmasq serves DHCP and/or DNS on bridges pyvirt owns and that have an address."""
        return self.owns_bridge and bool(self.ips)

    def ip(self, family: str = "ipv4") -> IPConfig | None:
        return next((ip for ip in self.ips if ip.family == family), None)
