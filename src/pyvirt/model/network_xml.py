"""libvirt network XML <-> ``model.network.Network``, and the defaults define fills in.

``parse_network_xml`` reads the supported subset of libvirt's <network>
format strictly: every element and attribute maps to the model or is rejected
by path (``UnsupportedConfig``), and ``validate_network`` checks the values.
Accepted and ignored, because they are live-only counters: ``connections`` on
<network> and on <forward><interface>.

Accepted and written in libvirt's canonical form: <forward> without mode= is
mode 'nat'; dev= and the <interface> list are one list (``Forward``); an IPv4
<ip> without netmask/prefix gets libvirt's classful prefix and an IPv6 one
prefix 64, written out as prefix=; family='ipv4' is not written back.

``format_network_xml`` writes what ``virsh net-dumpxml`` prints (libvirt 9):
element order, attribute order, ``<ip ...>`` closed on its own line even when
empty; ``parse_network_xml(format_network_xml(n)) == n`` for every valid n.

``normalize_network`` fills what libvirt fills on define (uuid, bridge MAC,
stp/delay); the daemon picks the bridge name. ``default_network`` builds
libvirt's `default` NAT network on a subnet and bridge the host does not use.
"""
from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Collection, Iterable
from dataclasses import replace

from ..errors import HostError, InvalidArgument, UnsupportedConfig
from .ids import new_mac, new_uuid, parse_mac
from .network import FORWARD_MODES, LATER_MODES, Bridge, DHCPHost, DHCPRange, DNSHost, Forward, IPConfig, Network
from .network_validate import classful_prefix, netmask_prefix, validate_network
from .xml_doc import open_document, read_name, read_uuid
from .xml_doc import with_path as _err
from .xml_util import Hint, Node, Reader, node, on_off, render, yes_no

__all__ = [
    "check_overlap",
    "default_network",
    "format_network_xml",
    "normalize_network",
    "parse_network_xml",
    "validate_network",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Owner = tuple[IPNetwork, str]  # a subnet in use and who uses it: "network 'lan'", "the host route ... dev eth0"

LATER = "it comes in a later release; remove it for now"
_META = Hint("network titles, descriptions and metadata are not kept yet; " + LATER)
NETWORK_HINTS = {
    "title": _META, "description": _META, "metadata": _META,
    "route": Hint("static routes on a network are not supported yet; " + LATER),
    "portgroup": Hint("port groups are not supported yet; " + LATER),
    "virtualport": Hint("virtual port profiles (Open vSwitch, 802.1Qbg/Qbh) are not supported; remove it"),
    "vlan": Hint("VLAN tagging on networks is not supported yet; " + LATER),
    "bandwidth": Hint("network-wide bandwidth limits are not supported yet; " + LATER),
    "port": Hint("isolated ports are not supported yet; " + LATER),
}
FORWARD_HINTS = {
    "pf": Hint("SR-IOV physical functions are not supported yet; " + LATER),
    "address": Hint("PCI device pools (hostdev mode) are not supported yet; " + LATER),
    "driver": Hint("hostdev drivers are not supported yet; " + LATER),
}
NAT_HINTS = {"address": Hint("SNAT to fixed addresses is not supported yet; " + LATER)}
IP_HINTS = {"tftp": Hint("TFTP for network boot is not supported yet; " + LATER)}
DHCP_HINTS = {"bootp": Hint("network boot (bootp) is not supported yet; " + LATER)}
LEASE_HINTS = {"lease": Hint("custom DHCP lease times are not supported yet; " + LATER)}
DNS_HINTS = {tag: Hint(f"DNS <{tag}> records are not supported yet; " + LATER) for tag in ("forwarder", "srv", "txt")}


# ====================================================================== parse
def parse_network_xml(text: str) -> Network:
    """Parse and validate a libvirt <network> document (see the module docstring)."""
    r = open_document(text, "network", "<network>")
    r.ignore_attrs("connections")  # guests plugged in right now: live-only
    name = read_name(r, "network")
    uuid = read_uuid(r)

    forward_r = r.child("forward")
    domain_name, local_only = _domain(r.child("domain"))
    dns_enable, dns_hosts = _dns(r.child("dns"))
    net = Network(
        name=name,
        uuid=uuid,
        bridge=_bridge(r.child("bridge")),
        mtu=_mtu(r.child("mtu")),
        mac=_mac(r.child("mac")),
        forward=_forward(forward_r) if forward_r is not None else None,
        ips=tuple(_ip(i) for i in r.children("ip")),
        domain_name=domain_name,
        domain_local_only=local_only,
        dns_enable=dns_enable,
        dns_hosts=dns_hosts,
    )
    r.done(NETWORK_HINTS)
    validate_network(net)
    return net


def _forward(r: Reader) -> Forward:
    mode = r.attr("mode") or "nat"
    if mode in LATER_MODES:
        raise r.error(f"mode '{mode}' is not supported yet",
                      "it comes in a later release; use nat, route, open or bridge", UnsupportedConfig)
    if mode not in FORWARD_MODES:
        raise r.error(f"mode '{mode}' is unknown",
                      "use nat, route, open or bridge, or leave <forward> out for an isolated network")
    dev = r.attr("dev")
    interfaces = []
    for i in r.children("interface"):
        interfaces.append(i.req_attr("dev"))
        i.ignore_attrs("connections")  # live-only
        i.done()
    if dev is not None and interfaces and interfaces[0] != dev:
        raise r.error(f"dev='{dev}' differs from the first <interface dev='{interfaces[0]}'/>",
                      "make them the same, or leave dev= out")
    start = end = None
    nat = r.child("nat")
    if nat is not None:
        if mode != "nat":
            raise nat.error(f"<nat> is only for mode 'nat', not '{mode}'", "remove <nat>")
        port = nat.child("port")
        if port is not None:
            port.req_attr("start")
            port.req_attr("end")
            start, end = port.int_attr("start"), port.int_attr("end")
            port.done()
        nat.done(NAT_HINTS)
    fw = Forward(mode=mode, dev=dev, nat_port_start=start, nat_port_end=end, interfaces=tuple(interfaces))
    r.done(FORWARD_HINTS)
    return fw


def _bridge(r: Reader | None) -> Bridge | None:
    if r is None:
        return None
    bridge = Bridge(name=r.attr("name"), stp=r.bool_attr("stp", "on", "off"), delay=r.int_attr("delay", minimum=0))
    r.done()
    return bridge


def _mtu(r: Reader | None) -> int | None:
    if r is None:
        return None
    r.req_attr("size")
    size = r.int_attr("size")
    r.done()
    return size


def _mac(r: Reader | None) -> str | None:
    if r is None:
        return None
    try:
        mac = parse_mac(r.req_attr("address"))
    except InvalidArgument as exc:
        raise _err(r, exc) from None
    r.done()
    return mac


def _domain(r: Reader | None) -> tuple[str | None, bool | None]:
    if r is None:
        return None, None
    name, local = r.attr("name"), r.bool_attr("localOnly")
    r.done()
    return name, local


def _dns(r: Reader | None) -> tuple[bool | None, tuple[DNSHost, ...]]:
    if r is None:
        return None, ()
    enable = r.bool_attr("enable")
    hosts = []
    for h in r.children("host"):
        ip = h.req_attr("ip")
        names = []
        for n in h.children("hostname"):
            names.append(n.text().strip())
            n.done()
        h.done()
        hosts.append(DNSHost(ip=ip, hostnames=tuple(names)))
    r.done(DNS_HINTS)
    return enable, tuple(hosts)


def _ip(r: Reader) -> IPConfig:
    family = r.attr("family")
    address = r.req_attr("address")
    netmask = r.attr("netmask")
    prefix = r.int_attr("prefix")
    if family not in (None, "ipv4", "ipv6"):
        raise r.attr_error("family", family, "write 'ipv4' or 'ipv6'")
    family = family or "ipv4"
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        example = "address='192.168.100.1'" if family == "ipv4" else "address='2001:db8::1'"
        raise r.error(f"'{address}' is not a valid IP address", f"write e.g. {example}") from None
    if netmask is not None:
        if family == "ipv6" or addr.version == 6:
            raise r.error(f"netmask '{netmask}' is given for an IPv6 address", "IPv6 takes prefix='64' instead")
        if prefix is not None:
            raise r.error(f"both netmask '{netmask}' and prefix '{prefix}' are given", "keep one of them")
        try:
            prefix = netmask_prefix(netmask)
        except InvalidArgument as exc:
            raise _err(r, exc) from None
    elif prefix is None:
        if addr.version == 6:
            prefix = 64
        else:
            prefix = classful_prefix(addr)
            if prefix is None:
                raise r.error(f"address '{address}' has neither netmask= nor prefix=", "add prefix='24' (or netmask=)")
    ranges: list[DHCPRange] = []
    hosts: list[DHCPHost] = []
    dhcp = r.child("dhcp")
    if dhcp is not None:
        for rg in dhcp.children("range"):
            ranges.append(DHCPRange(start=rg.req_attr("start"), end=rg.req_attr("end")))
            rg.done(LEASE_HINTS)
        for h in dhcp.children("host"):
            hosts.append(_dhcp_host(h))
        dhcp.done(DHCP_HINTS)
    ip = IPConfig(address=address, prefix=prefix, family=family, netmask=netmask,
                  dhcp_ranges=tuple(ranges), dhcp_hosts=tuple(hosts))
    r.done(IP_HINTS)
    return ip


def _dhcp_host(r: Reader) -> DHCPHost:
    mac = r.attr("mac")
    if mac is not None:
        try:
            mac = parse_mac(mac)
        except InvalidArgument as exc:
            raise _err(r, exc) from None
    host = DHCPHost(mac=mac, name=r.attr("name"), ip=r.attr("ip"), id=r.attr("id"))
    r.done(LEASE_HINTS)
    return host


# ====================================================================== format
_EMPTY_IP = re.compile(r"^( *)<ip( [^\n]*)?/>$", re.MULTILINE)


def format_network_xml(net: Network, *, connections: int | None = None) -> str:
    """The document ``virsh net-dumpxml`` prints; ``connections`` (live XML only) when above 0."""
    root = node("network", ("connections", connections if connections else None))
    root.add(node("name", text=net.name))
    if net.uuid:
        root.add(node("uuid", text=net.uuid))
    if net.forward is not None:
        root.add(_forward_node(net.forward))
    b = net.bridge
    if b is not None:
        root.add(node("bridge", ("name", b.name), ("stp", on_off(b.stp)), ("delay", b.delay)))
    if net.mtu is not None:
        root.add(node("mtu", ("size", net.mtu)))
    if net.mac is not None:
        root.add(node("mac", ("address", net.mac)))
    if net.domain_name is not None or net.domain_local_only is not None:
        root.add(node("domain", ("name", net.domain_name), ("localOnly", yes_no(net.domain_local_only))))
    if net.dns_enable is not None or net.dns_hosts:
        root.add(node("dns", ("enable", yes_no(net.dns_enable)), children=[
            node("host", ("ip", h.ip), children=[node("hostname", text=n) for n in h.hostnames])
            for h in net.dns_hosts
        ]))
    for ip in net.ips:
        root.add(_ip_node(ip))
    # libvirt closes <ip> on its own line even when it has no children
    return _EMPTY_IP.sub(lambda m: f"{m[1]}<ip{m[2] or ''}>\n{m[1]}</ip>", render(root))


def _forward_node(fw: Forward) -> Node:
    nat = None
    if fw.nat_port_start is not None or fw.nat_port_end is not None:
        nat = node("nat", children=[node("port", ("start", fw.nat_port_start), ("end", fw.nat_port_end))])
    devices = fw.interfaces or ((fw.dev,) if fw.dev else ())
    return node("forward", ("dev", fw.dev or (devices[0] if devices else None)), ("mode", fw.mode),
                children=[nat, *(node("interface", ("dev", d)) for d in devices)])


def _ip_node(ip: IPConfig) -> Node:
    dhcp = None
    if ip.has_dhcp:
        dhcp = node("dhcp", children=[
            *(node("range", ("start", rg.start), ("end", rg.end)) for rg in ip.dhcp_ranges),
            *(node("host", ("mac", h.mac), ("id", h.id), ("name", h.name), ("ip", h.ip)) for h in ip.dhcp_hosts),
        ])
    return node("ip", ("family", "ipv6" if ip.family == "ipv6" else None), ("address", ip.address),
                ("netmask", ip.netmask), ("prefix", None if ip.netmask else ip.prefix), children=[dhcp])


# ====================================================================== define-time defaults
def normalize_network(net: Network, *, taken_macs: Collection[str] = frozenset(),
                      rng: random.Random | None = None) -> Network:
    """Fill what libvirt fills on define: a uuid and, for bridges pyvirt creates, a MAC and stp/delay.

    ``taken_macs`` are bridge MACs of other networks, so the new one differs.
    The bridge name stays as given (None: the daemon picks a free virbrN).
    Idempotent: a normalized network comes back equal.
    """
    changes: dict[str, object] = {}
    if not net.uuid:
        changes["uuid"] = new_uuid(rng)
    if net.owns_bridge:
        b = net.bridge or Bridge()
        filled = replace(b, stp=True if b.stp is None else b.stp, delay=0 if b.delay is None else b.delay)
        if filled != net.bridge:
            changes["bridge"] = filled
        if net.mac is None:
            changes["mac"] = new_mac(taken_macs, rng)
    return replace(net, **changes) if changes else net  # type: ignore[arg-type]


DEFAULT_NAME = "default"
DEFAULT_BRIDGE = "virbr0"
DEFAULT_THIRD_OCTET = 122  # 192.168.122.0/24, as libvirt ships it


def _owners(taken: Iterable[Owner | IPNetwork]) -> list[Owner]:
    """(subnet, who) pairs; a bare subnet is described by itself."""
    out: list[Owner] = []
    for item in taken:
        if isinstance(item, tuple):
            subnet, who = item
        else:
            subnet, who = item, str(item)
        out.append((ipaddress.ip_network(subnet, strict=False), who))
    return out


def _conflict(subnet: IPNetwork, owners: Iterable[Owner]) -> Owner | None:
    """The first owner whose subnet overlaps ``subnet`` (default routes, /0, never conflict)."""
    for other, who in owners:
        if other.version == subnet.version and other.prefixlen > 0 and other.overlaps(subnet):
            return other, who
    return None


def default_network(taken_subnets: Iterable[Owner | IPNetwork],
                    taken_bridges: Collection[str]) -> tuple[Network, str | None]:
    """libvirt's `default` NAT network, moved off subnets and bridge names the host already uses.

    ``taken_subnets`` are (subnet, who) pairs such as (10.0.0.0/24, "network 'lan'")
    or (192.168.122.0/24, "route 192.168.122.0/24 dev eth9"). Returns the network
    (not normalized: no uuid/MAC yet) and a note saying what moved and why, or None.
    """
    owners = _owners(taken_subnets)
    notes: list[str] = []
    wanted = ipaddress.ip_network(f"192.168.{DEFAULT_THIRD_OCTET}.0/24")
    third = DEFAULT_THIRD_OCTET
    clash = _conflict(wanted, owners)
    if clash is not None:
        order = [*range(DEFAULT_THIRD_OCTET + 1, 256), *range(DEFAULT_THIRD_OCTET)]
        free = next((x for x in order if _conflict(ipaddress.ip_network(f"192.168.{x}.0/24"), owners) is None), None)
        if free is None:
            raise HostError(f"{wanted} is already used on this host (by {clash[1]}) and so is every other "
                            "192.168.X.0/24; define a network yourself with `pyvirt net-define`")
        third = free
        notes.append(f"{wanted} is already used on this host (by {clash[1]}); "
                     f"the default network uses 192.168.{third}.0/24")
    bridge = DEFAULT_BRIDGE
    if bridge in taken_bridges:
        n = 1
        while f"virbr{n}" in taken_bridges:
            n += 1
        bridge = f"virbr{n}"
        notes.append(f"{DEFAULT_BRIDGE} is already in use on this host; the default network uses bridge {bridge}")
    prefix = f"192.168.{third}"
    net = Network(
        name=DEFAULT_NAME,
        bridge=Bridge(name=bridge, stp=True, delay=0),
        forward=Forward(mode="nat", nat_port_start=1024, nat_port_end=65535),
        ips=(IPConfig(address=f"{prefix}.1", prefix=24, netmask="255.255.255.0",
                      dhcp_ranges=(DHCPRange(start=f"{prefix}.2", end=f"{prefix}.254"),)),),
    )
    validate_network(net)
    return net, "; ".join(notes) or None


def check_overlap(net: Network, others: Iterable[Owner | IPNetwork]) -> None:
    """Raise InvalidArgument when a subnet of ``net`` overlaps one in use (another network, a host route).

    ``others`` are (subnet, who) pairs; ``who`` is a noun phrase such as
    "network 'lan'" or "the host route 10.0.0.0/8 dev eth0". Default routes
    (prefix 0) are not conflicts.
    """
    owners = _owners(others)
    for ip in net.ips:
        subnet = ip.subnet
        clash = _conflict(subnet, owners)
        if clash is None:
            continue
        other, who = clash
        shown = who if str(other) in who else f"{who} ({other})"
        raise InvalidArgument(
            f"<ip address='{ip.address}'> in network '{net.name}': subnet {subnet} overlaps {shown}; "
            "give the network a subnet nothing else on this host uses (see `ip route`), "
            "or remove the other one first"
        )
