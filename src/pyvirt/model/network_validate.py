"""Checks on a Network that hold whatever the host: addresses, ranges, names, mode rules.

``parse_network_xml`` calls ``validate_network``; code that changes a Network
(net-update's static hosts) calls it too. Pure: subnets already used on the
host are ``network_xml.check_overlap``'s job and devices are looked up at
net-start. The rules follow libvirt's (so XML pyvirt accepts also defines in
libvirt) plus the ones dnsmasq and the kernel would otherwise trip over later,
such as names that end up in dnsmasq's config. Each message names the network,
the XML path, the bad value and what to do.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import NoReturn

from ..errors import InvalidArgument, UnsupportedConfig
from .ids import parse_mac, parse_uuid
from .names import check_name
from .network import FORWARD_MODES, LATER_MODES, ROUTED_MODES, DHCPHost, IPConfig, Network
from .tokens import hostname_problem as hostname_problem  # its home was here
from .tokens import ifname_problem as ifname_problem  # its home was here
from .tokens import ip_problem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MTU_MIN, MTU_MAX = 68, 65535  # IPv4's minimum datagram; the largest an IP packet can be
_DUID = re.compile(r"^[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2}){1,129}$")
_MODES_TEXT = "nat, route, open or bridge"


# ---------------------------------------------------------------- value checks (shared with the parser)
def netmask_prefix(text: str) -> int:
    """'255.255.255.0' -> 24; raises for anything that is not a contiguous IPv4 netmask."""
    try:
        mask = ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidArgument(
            f"netmask '{text}' is not an IPv4 netmask; write e.g. netmask='255.255.255.0' or prefix='24'"
        ) from None
    bits = int(mask)
    inverted = ~bits & 0xFFFFFFFF
    if inverted & (inverted + 1):
        raise InvalidArgument(
            f"netmask '{text}' is not contiguous (its one bits must all come first); "
            "write e.g. netmask='255.255.255.0' or prefix='24'"
        )
    return 32 - inverted.bit_length()


def classful_prefix(address: ipaddress.IPv4Address) -> int | None:
    """The prefix libvirt assumes for an IPv4 <ip> without netmask/prefix (class A/B/C), else None."""
    first = int(address) >> 24
    if first < 128:
        return 8
    if first < 192:
        return 16
    if first < 224:
        return 24
    return None


# ---------------------------------------------------------------- the checker
class _Check:
    """Raises at the first problem: '<path> in network 'x': what is wrong; what to do'."""

    def __init__(self, net: Network) -> None:
        self.who = f"network '{net.name}'"

    def fail(self, path: str, what: str, fix: str, cls: type[InvalidArgument] = InvalidArgument) -> NoReturn:
        raise cls(f"{path} in {self.who}: {what}; {fix}")

    def no_scope(self, path: str, what: str, value: str) -> None:
        """An IPv6 scope id ('%eth0', any text, a newline too) must never reach dnsmasq's files."""
        if "%" in value:
            self.fail(path, f"{what} {value!r} is refused: {ip_problem(value)}",
                      "a network's addresses belong to its bridge; remove the '%...' part")

    def address(self, path: str, what: str, value: str | None, version: int) -> IPAddress:
        family = "IPv4" if version == 4 else "IPv6"
        self.no_scope(path, what, value or "")
        try:
            addr = ipaddress.ip_address(value or "")
        except ValueError:
            example = "192.168.100.10" if version == 4 else "2001:db8::10"
            self.fail(path, f"{what} '{value}' is not a valid {family} address", f"write e.g. {example}")
        if addr.version != version:
            self.fail(path, f"{what} '{value}' is not an {family} address",
                      f"use an {family} address, like the <ip> it belongs to")
        return addr

    def hostname(self, path: str, what: str, value: str, example: str = "web1 or web1.example.lan") -> None:
        problem = hostname_problem(value)
        if problem is not None:
            self.fail(path, f"{what} {value!r} is not a valid DNS name: {problem}", f"write e.g. {example}")

    def ifname(self, path: str, what: str, value: str, fix: str) -> None:
        problem = ifname_problem(value)
        if problem is not None:
            self.fail(path, f"{what} '{value}' is not a valid interface name: {problem}", fix)


def validate_network(net: Network) -> None:
    """Raise InvalidArgument/UnsupportedConfig for the first problem in ``net``."""
    check_name(net.name, "network")
    c = _Check(net)
    if net.uuid:
        try:
            normal = parse_uuid(net.uuid)
        except InvalidArgument as exc:
            c.fail("<uuid>", exc.message.split(";")[0], "fix it, or leave <uuid> out to get a new one")
        if normal != net.uuid:
            c.fail("<uuid>", f"uuid '{net.uuid}' is not in normal form", f"write {normal}")
    _forward(c, net)
    _bridge(c, net)
    if net.mtu is not None and not MTU_MIN <= net.mtu <= MTU_MAX:
        c.fail("<mtu>", f"size {net.mtu} is out of range",
               f"use {MTU_MIN}-{MTU_MAX} (1500 is Ethernet's usual MTU, 9000 for jumbo frames)")
    if net.mac is not None:
        _mac(c, "<mac>", "bridge MAC address", net.mac)
    _domain(c, net)
    _dns(c, net)
    for ip in net.ips:
        _ip(c, ip)
    _ips_together(c, net.ips)
    _mode_rules(c, net)


def _mac(c: _Check, path: str, what: str, value: str) -> None:
    try:
        normal = parse_mac(value)
    except InvalidArgument as exc:
        c.fail(path, f"{what}: {exc.message.split(';')[0]}", "write a unicast address like 52:54:00:12:34:56")
    if normal != value:
        c.fail(path, f"{what} '{value}' is not in normal form", f"write {normal}")


# ---------------------------------------------------------------- forward / bridge
def _devices(net: Network) -> tuple[str, ...]:
    fw = net.forward
    if fw is None:
        return ()
    return fw.interfaces or ((fw.dev,) if fw.dev else ())


def _forward(c: _Check, net: Network) -> None:
    fw = net.forward
    if fw is None:
        return
    if fw.mode in LATER_MODES:
        c.fail("<forward>", f"mode '{fw.mode}' is not supported yet",
               f"it comes in a later release; use {_MODES_TEXT}", UnsupportedConfig)
    if fw.mode not in FORWARD_MODES:
        c.fail("<forward>", f"mode '{fw.mode}' is unknown",
               f"use {_MODES_TEXT}, or leave <forward> out for an isolated network")
    devices = _devices(net)
    for dev in devices:
        c.ifname("<forward>", "device", dev, "write the name of a host interface, e.g. eth0")
    seen: set[str] = set()
    for dev in devices:
        if dev in seen:
            c.fail("<forward>", f"interface '{dev}' is listed twice", "list each device once")
        seen.add(dev)
    if fw.dev and fw.interfaces and fw.dev != fw.interfaces[0]:
        c.fail("<forward>", f"dev='{fw.dev}' differs from the first <interface dev='{fw.interfaces[0]}'/>",
               "make them the same, or leave dev= out")
    start, end = fw.nat_port_start, fw.nat_port_end
    if start is not None or end is not None:
        path = "<forward>/<nat>/<port>"
        if fw.mode != "nat":
            c.fail("<forward>/<nat>", f"<nat> is only for mode 'nat', not '{fw.mode}'", "remove <nat>")
        if start is None or end is None:
            c.fail(path, "the port range needs both start= and end=", "write e.g. <port start='1024' end='65535'/>")
        for which, port in (("start", start), ("end", end)):
            if not 1 <= port <= 65535:
                c.fail(path, f"{which} port {port} is out of range", "use ports 1-65535, e.g. start='1024' end='65535'")
        if start > end:
            c.fail(path, f"the port range is reversed: start {start} is above end {end}", "swap start= and end=")
    if fw.mode in ("nat", "route") and len(devices) > 1:
        c.fail("<forward>", f"{len(devices)} devices are listed ({', '.join(devices)}) for mode '{fw.mode}'",
               "a nat or route network leaves through at most one device; keep one, or none to follow the "
               "host's routes")
    if fw.mode == "open" and devices:
        c.fail("<forward>", f"device '{devices[0]}' is given for mode 'open'",
               "an open network does not restrict where traffic goes; remove dev= and <interface>")


def _bridge(c: _Check, net: Network) -> None:
    b = net.bridge
    if b is None:
        return
    if b.name is not None:
        c.ifname("<bridge>", "bridge name", b.name,
                 "use at most 15 characters without '/', ':' or spaces, e.g. virbr1")
    if b.delay is not None and b.delay < 0:
        c.fail("<bridge>", f"delay {b.delay} is negative", "use delay='0' (seconds)")


def _mode_rules(c: _Check, net: Network) -> None:
    """What each forward mode allows: libvirt's rules, so definitions stay portable."""
    mode = net.mode
    if mode in ROUTED_MODES and not net.ips:
        c.fail("<forward>", f"mode '{mode}' forwards IP traffic but the network has no <ip> address",
               "add e.g. <ip address='192.168.100.1' prefix='24'/> (libvirt refuses it too), "
               "or remove <forward> for an isolated network")
    if mode != "bridge":
        return
    b = net.bridge
    devices = _devices(net)
    if not devices and not (b and b.name):
        c.fail("<forward>", "mode 'bridge' names neither a host bridge nor a device",
               "add <bridge name='br0'/> for an existing host bridge, or <forward mode='bridge' dev='eth0'/> "
               "for macvtap over a device")
    if devices and b and b.name:
        c.fail("<forward>", f"mode 'bridge' names both bridge '{b.name}' and device '{devices[0]}'",
               "keep one: <bridge name=...> for a host bridge, or dev= for macvtap")
    if b and (b.stp is not None or b.delay is not None):
        given = " and ".join(a for a, v in (("stp=", b.stp), ("delay=", b.delay)) if v is not None)
        c.fail("<bridge>", f"{given} given for host bridge '{b.name}', which pyvirt does not manage",
               "remove it (set STP on the host bridge itself)")
    outside = "the host's LAN serves this network"
    if net.ips:
        c.fail(f"<ip address='{net.ips[0].address}'>", "mode 'bridge' cannot have an address",
               f"{outside}; remove <ip>, or use mode 'nat' or 'route' for a network pyvirt serves")
    if net.mac is not None:
        c.fail("<mac>", "mode 'bridge' cannot set a bridge MAC address", f"{outside}; remove <mac>")
    if net.dns_enable is not None or net.dns_hosts:
        c.fail("<dns>", "mode 'bridge' has no DNS server of its own", f"{outside}; remove <dns>")
    if net.domain_name is not None or net.domain_local_only is not None:
        c.fail("<domain>", "mode 'bridge' has no DNS domain of its own", f"{outside}; remove <domain>")
    if net.mtu is not None:
        c.fail("<mtu>", f"mtu {net.mtu} is set on a network pyvirt does not bridge",
               "remove <mtu> and set the MTU on the host bridge or device")


# ---------------------------------------------------------------- domain / dns
def _domain(c: _Check, net: Network) -> None:
    if net.domain_name is None:
        if net.domain_local_only is not None:
            c.fail("<domain>", "localOnly= is given without name=", "add name='example.lan'")
        return
    c.hostname("<domain>", "domain name", net.domain_name, "example.lan")


def _dns(c: _Check, net: Network) -> None:
    if net.dns_enable is False and net.dns_hosts:
        c.fail("<dns>", "DNS is turned off (enable='no') but <host> records are given",
               "remove the <host> records, or remove enable='no'")
    for host in net.dns_hosts:
        path = f"<dns>/<host ip='{host.ip}'>"
        c.no_scope(path, "ip", host.ip)
        try:
            ipaddress.ip_address(host.ip)
        except ValueError:
            c.fail(path, f"'{host.ip}' is not a valid IP address", "write e.g. ip='192.168.122.2'")
        if not host.hostnames:
            c.fail(path, "the record has no <hostname>", "add <hostname>NAME</hostname>")
        for name in host.hostnames:
            c.hostname(path, "hostname", name)


# ---------------------------------------------------------------- ip
def ip_path(ip: IPConfig) -> str:
    return f"<ip address='{ip.address}'>"


def _ip(c: _Check, ip: IPConfig) -> None:
    path = ip_path(ip)
    if ip.family not in ("ipv4", "ipv6"):
        c.fail(path, f"family '{ip.family}' is unknown", "write family='ipv4' or family='ipv6'")
    version = 4 if ip.family == "ipv4" else 6
    c.no_scope(path, "address", ip.address)
    try:
        addr = ipaddress.ip_address(ip.address)
    except ValueError:
        example = "address='192.168.100.1'" if version == 4 else "family='ipv6' address='2001:db8::1'"
        c.fail(path, f"'{ip.address}' is not a valid IP address", f"write e.g. {example}")
    if addr.version != version:
        if version == 4:
            c.fail(path, f"'{ip.address}' is an IPv6 address", "add family='ipv6' (and prefix='64')")
        c.fail(path, f"'{ip.address}' is not an IPv6 address", "remove family='ipv6', or write an IPv6 address")
    bits = addr.max_prefixlen
    if not 1 <= ip.prefix <= bits:
        c.fail(path, f"prefix {ip.prefix} is out of range", f"use 1-{bits} (e.g. {24 if version == 4 else 64})")
    if ip.netmask is not None:
        if version == 6:
            c.fail(path, f"netmask '{ip.netmask}' is given for an IPv6 address", "IPv6 takes prefix='64' instead")
        try:
            from_mask = netmask_prefix(ip.netmask)
        except InvalidArgument as exc:
            c.fail(path, exc.message.split(";")[0], "write e.g. netmask='255.255.255.0' or prefix='24'")
        if from_mask != ip.prefix:
            c.fail(path, f"netmask '{ip.netmask}' means prefix {from_mask}, not {ip.prefix}", "give one of them")
    if ip.prefix > bits - 2:
        c.fail(path, f"prefix {ip.prefix} leaves no address for guests", f"use a prefix of at most {bits - 2}")
    subnet = ip.subnet
    if addr == subnet.network_address:
        c.fail(path, f"{addr} is the network address of {subnet}",
               f"give the host an address inside it, e.g. {subnet.network_address + 1}")
    if version == 4 and addr == subnet.broadcast_address:
        c.fail(path, f"{addr} is the broadcast address of {subnet}",
               f"give the host an address inside it, e.g. {subnet.network_address + 1}")
    _ranges(c, ip, addr, subnet)
    _hosts(c, ip, addr, subnet)


def _usable(c: _Check, path: str, what: str, addr: IPAddress, subnet: IPNetwork) -> None:
    """``addr`` must be a guest address of ``subnet``: inside it, not its network or broadcast address."""
    first = subnet.network_address + 1
    last = subnet.broadcast_address - (1 if subnet.version == 4 else 0)
    hint = f"use an address from {first} to {last}"
    if addr not in subnet:
        c.fail(path, f"{what} {addr} is outside the subnet {subnet}", hint)
    if addr == subnet.network_address:
        c.fail(path, f"{what} {addr} is the network address of {subnet}", hint)
    if subnet.version == 4 and addr == subnet.broadcast_address:
        c.fail(path, f"{what} {addr} is the broadcast address of {subnet}", hint)


def _ranges(c: _Check, ip: IPConfig, gateway: IPAddress, subnet: IPNetwork) -> None:
    for rng in ip.dhcp_ranges:
        path = f"{ip_path(ip)}/<dhcp>/<range start='{rng.start}' end='{rng.end}'>"
        start = c.address(path, "start", rng.start, subnet.version)
        end = c.address(path, "end", rng.end, subnet.version)
        _usable(c, path, "start", start, subnet)
        _usable(c, path, "end", end, subnet)
        if int(start) > int(end):  # same IP version (c.address checked it), which mypy cannot see
            c.fail(path, f"the range is reversed: start {start} comes after end {end}", "swap start= and end=")


def _host_path(ip: IPConfig, h: DHCPHost) -> str:
    attrs = "".join(f" {k}='{v}'" for k, v in (("mac", h.mac), ("id", h.id), ("name", h.name), ("ip", h.ip)) if v)
    return f"{ip_path(ip)}/<dhcp>/<host{attrs}>"


def _hosts(c: _Check, ip: IPConfig, gateway: IPAddress, subnet: IPNetwork) -> None:
    by_mac: dict[str, str] = {}
    by_id: dict[str, str] = {}
    by_ip: dict[IPAddress, str] = {}
    for h in ip.dhcp_hosts:
        path = _host_path(ip, h)
        who = h.mac or h.id or h.name or "?"
        if subnet.version == 4:
            if h.id is not None:
                c.fail(path, f"id='{h.id}' (a DHCPv6 DUID) is given for an IPv4 host",
                       "match IPv4 hosts by mac= or name=")
            if not (h.mac or h.name):
                c.fail(path, "the host has neither mac= nor name=", "add mac='52:54:00:...' to say which guest it is")
        else:
            if h.mac is not None:
                c.fail(path, f"mac='{h.mac}' does not identify IPv6 hosts", "use id='DUID' or name= instead")
            if not (h.id or h.name):
                c.fail(path, "the host has neither id= nor name=", "add name='guest' or id='00:01:...' (its DUID)")
        if h.mac is not None:
            _mac(c, path, "host MAC address", h.mac)
        if h.id is not None and not _DUID.match(h.id):
            c.fail(path, f"id '{h.id}' is not a DUID", "write it as hex bytes separated by ':', e.g. 00:01:00:01:2a:3b")
        if h.name is not None:
            c.hostname(path, "name", h.name)
        if not h.ip:
            c.fail(path, "the host has no ip=", f"add the address it gets, inside {subnet}")
        addr = c.address(path, "ip", h.ip, subnet.version)
        _usable(c, path, "ip", addr, subnet)
        if addr == gateway:
            c.fail(path, f"ip {addr} is the network's own address (the host's side)", "give the guest another address")
        for key, seen, label in ((h.mac, by_mac, "MAC"), (h.id, by_id, "id")):
            if key is not None:
                if key in seen:
                    c.fail(path, f"{label} {key} has two static leases ({seen[key]} and {addr})",
                           f"keep one <host> per {label}")
                seen[key] = str(addr)
        if addr in by_ip:
            c.fail(path, f"ip {addr} is given to two hosts ({by_ip[addr]} and {who})", "give each host its own address")
        by_ip[addr] = who


def _ips_together(c: _Check, ips: Iterable[IPConfig]) -> None:
    with_dhcp: dict[str, IPConfig] = {}
    seen: list[IPConfig] = []
    for ip in ips:
        if ip.has_dhcp:
            first = with_dhcp.get(ip.family)
            if first is not None:
                name = "IPv4" if ip.family == "ipv4" else "IPv6"
                c.fail(ip_path(ip), f"a second {name} address with <dhcp> (the first is {first.address})",
                       f"DHCP serves one {name} subnet per network; keep <dhcp> in one <ip>")
            with_dhcp[ip.family] = ip
        for other in seen:
            if other.family == ip.family and other.subnet.overlaps(ip.subnet):
                c.fail(ip_path(ip), f"subnet {ip.subnet} overlaps subnet {other.subnet} of "
                       f"<ip address='{other.address}'>", "give each <ip> its own subnet")
        seen.append(ip)
