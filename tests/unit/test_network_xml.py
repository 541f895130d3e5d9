"""Network XML codec: golden files, canonical forms, every rejection, normalize, the default network.

Golden files in tests/unit/data/network are written exactly as `virsh
net-dumpxml` (libvirt 9) prints them, so each is its own expected output:
format(parse(text)) == text.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import random
from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.errors import HostError, InvalidArgument, UnsupportedConfig, XMLSyntaxError
from pyvirt.model import network as netmodel
from pyvirt.model.network import Bridge, DHCPHost, DHCPRange, Forward, IPConfig, Network
from pyvirt.model.network_xml import (
    check_overlap,
    default_network,
    format_network_xml,
    normalize_network,
    parse_network_xml,
    validate_network,
)

DATA = Path(__file__).parent / "data" / "network"
GOLDEN = sorted(DATA.glob("*.xml"))
net4 = ipaddress.ip_network


def _load(name: str) -> Network:
    return parse_network_xml((DATA / f"{name}.xml").read_text())


# ---------------------------------------------------------------- golden files
def test_golden_files_exist() -> None:
    assert {p.stem for p in GOLDEN} >= {"default_nat", "isolated", "routed_ipv6", "open", "bridge_host",
                                        "macvtap", "full"}


@pytest.mark.parametrize("src", GOLDEN, ids=lambda p: p.stem)
def test_golden_is_a_fixed_point(src: Path) -> None:
    text = src.read_text()
    net = parse_network_xml(text)
    assert format_network_xml(net) == text
    assert parse_network_xml(format_network_xml(net)) == net


def _instances(obj: object) -> list[object]:
    """Every dataclass instance reachable from ``obj`` (itself included)."""
    found = []
    if dataclasses.is_dataclass(obj):
        found.append(obj)
        for f in dataclasses.fields(obj):
            found += _instances(getattr(obj, f.name))
    elif isinstance(obj, tuple):
        for item in obj:
            found += _instances(item)
    return found


def test_every_model_field_is_exercised_by_a_golden_file() -> None:
    """A field no golden file sets (to a non-default value) has an untested parse/format path."""
    instances = [i for p in GOLDEN for i in _instances(parse_network_xml(p.read_text()))]
    classes = [c for c in vars(netmodel).values() if dataclasses.is_dataclass(c) and c.__module__ == netmodel.__name__]
    assert {c.__name__ for c in classes} == {"Bridge", "Forward", "DHCPRange", "DHCPHost", "IPConfig", "DNSHost",
                                             "Network"}
    missing = []
    for cls in classes:
        mine = [i for i in instances if type(i) is cls]
        for f in dataclasses.fields(cls):
            has_default = f.default is not dataclasses.MISSING
            if not any(not has_default or getattr(i, f.name) != f.default for i in mine):
                missing.append(f"{cls.__name__}.{f.name}")
    assert missing == []


def test_golden_files_cover_every_mode() -> None:
    modes = {parse_network_xml(p.read_text()).mode for p in GOLDEN}
    assert modes == {"isolated", "nat", "route", "open", "bridge"}


# ---------------------------------------------------------------- model mapping
def test_default_nat_maps_to_the_model() -> None:
    n = _load("default_nat")
    assert (n.name, n.uuid, n.mac) == ("default", "3e3fce45-4f53-4fa7-bb32-11f34168b82b", "52:54:00:0a:cd:21")
    assert n.bridge == Bridge("virbr0", True, 0)
    assert n.forward == Forward("nat", nat_port_start=1024, nat_port_end=65535)
    (ip,) = n.ips
    assert (ip.address, ip.prefix, ip.netmask, ip.family) == ("192.168.122.1", 24, "255.255.255.0", "ipv4")
    assert ip.subnet == net4("192.168.122.0/24")
    assert ip.dhcp_ranges == (DHCPRange("192.168.122.2", "192.168.122.254"),)
    assert n.owns_bridge and n.needs_dnsmasq and not n.is_macvtap and n.mode == "nat"


def test_full_maps_to_the_model() -> None:
    n = _load("full")
    assert n.mtu == 9000 and n.domain_name == "lab.example" and n.domain_local_only is True
    assert n.dns_enable is True
    assert [(h.ip, h.hostnames) for h in n.dns_hosts] == [
        ("192.168.90.5", ("files", "files.lab.example")), ("fd00:90::5", ("files6",))]
    assert n.forward is not None and (n.forward.dev, n.forward.interfaces) == ("uplink0", ("uplink0",))
    hosts = n.ips[0].dhcp_hosts
    assert hosts[0] == DHCPHost(mac="52:54:00:90:00:10", name="web1", ip="192.168.90.10")
    assert hosts[2] == DHCPHost(name="db1", ip="192.168.90.12")


def test_ipv6_and_macvtap_and_host_bridge() -> None:
    r6 = _load("routed_ipv6")
    assert r6.ip("ipv6") is not None and r6.ip("ipv6").prefix == 64  # type: ignore[union-attr]
    assert r6.ips[1].dhcp_hosts[0].id == "00:01:00:01:2a:3b:4c:5d:52:54:00:66:00:10"
    mv = _load("macvtap")
    assert mv.is_macvtap and not mv.owns_bridge and not mv.needs_dnsmasq
    assert mv.forward is not None and mv.forward.interfaces == ("eth1", "eth2", "eth3")
    hb = _load("bridge_host")
    assert not hb.is_macvtap and not hb.owns_bridge and hb.bridge == Bridge(name="br0")


# ---------------------------------------------------------------- canonical forms of other inputs
def net_xml(inner: str, name: str = "n1", attrs: str = "") -> str:
    return f"<network{attrs}><name>{name}</name>{inner}</network>"


IP = "<ip address='10.1.0.1' prefix='24'/>"


def test_forward_without_mode_is_nat() -> None:
    n = parse_network_xml(net_xml("<forward/>" + IP))
    assert n.forward == Forward("nat")
    assert "<forward mode='nat'/>" in format_network_xml(n)


def test_forward_dev_is_written_with_its_interface_child() -> None:
    n = parse_network_xml(net_xml("<forward mode='route' dev='eth0'/>" + IP))
    assert n.forward is not None and n.forward.interfaces == ("eth0",)
    assert "  <forward dev='eth0' mode='route'>\n    <interface dev='eth0'/>\n  </forward>\n" in format_network_xml(n)
    # and an <interface> list alone gets dev= from its first entry
    m = parse_network_xml(net_xml("<forward mode='bridge'><interface dev='eth4'/><interface dev='eth5'/></forward>"))
    assert m.forward is not None and m.forward.dev == "eth4"
    assert "<forward dev='eth4' mode='bridge'>" in format_network_xml(m)


def test_forward_built_in_code_is_canonical() -> None:
    assert Forward("nat", dev="eth0") == Forward("nat", interfaces=("eth0",))


def test_ip_defaults_and_kept_spelling() -> None:
    n = parse_network_xml(net_xml(
        "<ip family='ipv4' address='10.24.10.1'/>"
        "<ip address='172.20.0.1'/>"
        "<ip address='192.168.5.1' netmask='255.255.255.128'/>"
        "<ip family='ipv6' address='2001:DB8:5::1'/>"))
    assert [(i.prefix, i.netmask) for i in n.ips] == [(8, None), (16, None), (25, "255.255.255.128"), (64, None)]
    out = format_network_xml(n)
    assert "<ip address='10.24.10.1' prefix='8'>" in out  # family='ipv4' is the default, not written
    assert "<ip address='192.168.5.1' netmask='255.255.255.128'>" in out
    assert "<ip family='ipv6' address='2001:DB8:5::1' prefix='64'>" in out  # the address as written
    assert parse_network_xml(out) == n


def test_normal_forms_and_live_only_attributes() -> None:
    n = parse_network_xml(net_xml(
        "<forward mode='route' dev='eth0'><interface dev='eth0' connections='3'/></forward>"
        "<uuid>3E3FCE454F534FA7BB3211F34168B82B</uuid><mac address='52:54:00:AA:BB:CC'/><dns/>"
        "<ip address='10.1.0.1' prefix='24'><dhcp><host mac='52:54:00:0A:0B:0C' ip='10.1.0.5'/></dhcp></ip>",
        attrs=" connections='4'"))
    assert n.uuid == "3e3fce45-4f53-4fa7-bb32-11f34168b82b"
    assert n.mac == "52:54:00:aa:bb:cc" and n.ips[0].dhcp_hosts[0].mac == "52:54:00:0a:0b:0c"
    assert n.dns_enable is None and n.dns_hosts == ()
    out = format_network_xml(n)
    assert "connections" not in out and "<dns" not in out
    assert out.index("<uuid>") < out.index("<forward")  # libvirt's order, whatever the input's


def test_empty_dhcp_is_no_dhcp() -> None:
    n = parse_network_xml(net_xml("<ip address='10.1.0.1' prefix='24'><dhcp/></ip>"))
    assert not n.ips[0].has_dhcp and "<dhcp" not in format_network_xml(n)


# ---------------------------------------------------------------- layout
def test_layout_of_a_live_network() -> None:
    n = _load("default_nat")
    out = format_network_xml(n, connections=2)
    assert out.startswith("<network connections='2'>\n  <name>default</name>\n")
    assert format_network_xml(n, connections=0).startswith("<network>\n")


def test_layout_details() -> None:
    out = format_network_xml(_load("routed_ipv6"))
    assert "  <ip family='ipv6' address='2001:db8:66::1' prefix='64'>\n    <dhcp>\n" in out
    assert "<host id='00:01:00:01:2a:3b:4c:5d:52:54:00:66:00:10' name='db6' ip='2001:db8:66::10'/>" in out
    iso = format_network_xml(_load("isolated"))
    assert "  <dns enable='no'/>\n  <ip address='10.77.0.1' prefix='24'>\n  </ip>\n</network>\n" in iso
    assert "<bridge name='br0'/>" in format_network_xml(_load("bridge_host"))  # no stp/delay on a host bridge
    full = format_network_xml(_load("full"))
    order = ["<name>", "<uuid>", "<forward", "<bridge", "<mtu", "<mac", "<domain", "<dns", "<ip"]
    assert [full.index(t) for t in order] == sorted(full.index(t) for t in order)
    assert "    </nat>\n    <interface dev='uplink0'/>\n  </forward>" in full
    assert "<host mac='52:54:00:90:00:10' name='web1' ip='192.168.90.10'/>" in full
    assert "'" in full and '"' not in full


def test_escaping() -> None:
    n = parse_network_xml(net_xml("", name="a&amp;b'c"))
    assert n.name == "a&b'c"
    out = format_network_xml(n)
    assert "<name>a&amp;b&apos;c</name>" in out and parse_network_xml(out) == n


def test_unnormalized_network_formats_without_uuid() -> None:
    out = format_network_xml(Network(name="bare"))
    assert out == "<network>\n  <name>bare</name>\n</network>\n"


# ---------------------------------------------------------------- rejections
def v4(inner: str = "", attrs: str = "address='10.1.0.1' prefix='24'") -> str:
    return f"<ip {attrs}>{inner}</ip>"


def dhcp(inner: str) -> str:
    return v4(f"<dhcp>{inner}</dhcp>")


NAT = "<forward mode='nat'/>"
BR = "<forward mode='bridge'/><bridge name='br0'/>"

# (id, xml, error class, substrings that must all appear in the message)
CASES: list[tuple[str, str, type[Exception], tuple[str, ...]]] = [
    # -- document, name, uuid
    ("not-xml", "<network>", XMLSyntaxError, ("network XML", "line 1")),
    ("root", "<net><name>x</name></net>", InvalidArgument, ("<net>", "<network>")),
    ("no-name", "<network/>", InvalidArgument, ("<name>",)),
    ("bad-name", net_xml("", name="a/b"), InvalidArgument, ("network name", "'a/b'", "'/'")),
    ("empty-name", net_xml("", name=""), InvalidArgument, ("network name", "empty")),
    ("uuid", net_xml("<uuid>1234</uuid>"), InvalidArgument, ("<uuid>", "1234", "n1")),
    # -- unsupported XML
    ("unknown-element", net_xml("<frob/>"), UnsupportedConfig, ("<frob>", "network 'n1'", "remove")),
    ("unknown-attr", net_xml("<bridge name='virbr1' zone='trusted'/>"), UnsupportedConfig, ("'zone'", "<bridge>")),
    ("root-attr", net_xml("", attrs=" ipv6='yes'"), UnsupportedConfig, ("'ipv6'", "<network>")),
    ("route", net_xml("<route address='10.9.0.0' prefix='24' gateway='10.1.0.2'/>"), UnsupportedConfig,
     ("<route>", "static routes", "later release")),
    ("metadata", net_xml("<metadata/>"), UnsupportedConfig, ("<metadata>", "later release")),
    ("tftp", net_xml(v4("<tftp root='/srv'/>")), UnsupportedConfig, ("<ip>/<tftp>", "TFTP")),
    ("bootp", net_xml(dhcp("<bootp file='pxe.0'/>")), UnsupportedConfig, ("<bootp>", "network boot")),
    ("lease", net_xml(dhcp("<range start='10.1.0.2' end='10.1.0.9'><lease expiry='1'/></range>")),
     UnsupportedConfig, ("<lease>", "lease times")),
    ("dns-srv", net_xml("<dns><srv service='x' protocol='tcp'/></dns>"), UnsupportedConfig, ("<srv>", "DNS")),
    ("nat-address", net_xml("<forward mode='nat'><nat><address start='1.2.3.4' end='1.2.3.5'/></nat></forward>"
                            + v4()), UnsupportedConfig, ("<nat>/<address>", "SNAT")),
    ("dns-plain-names", net_xml("<dns forwardPlainNames='no'/>"), UnsupportedConfig, ("forwardPlainNames",)),
    ("two-bridges", net_xml("<bridge/><bridge/>"), InvalidArgument, ("<bridge>", "2 times")),
    # -- forward modes
    ("mode-unknown", net_xml("<forward mode='tunnel'/>"), InvalidArgument, ("'tunnel'", "nat, route, open or bridge")),
    *[(f"mode-{m}", net_xml(f"<forward mode='{m}' dev='eth0'/>"), UnsupportedConfig, (f"'{m}'", "later release"))
      for m in ("passthrough", "private", "vepa", "hostdev")],
    ("nat-no-ip", net_xml(NAT), InvalidArgument, ("'nat'", "no <ip>", "isolated")),
    ("route-no-ip", net_xml("<forward mode='route'/>"), InvalidArgument, ("'route'", "no <ip>")),
    ("route-two-devs", net_xml("<forward mode='route'><interface dev='eth0'/><interface dev='eth1'/></forward>"
                               + v4()), InvalidArgument, ("eth0, eth1", "at most one")),
    ("open-dev", net_xml("<forward mode='open' dev='eth0'/>" + v4()), InvalidArgument, ("'eth0'", "'open'")),
    ("dev-mismatch", net_xml("<forward mode='bridge' dev='eth0'><interface dev='eth1'/></forward>"), InvalidArgument,
     ("dev='eth0'", "eth1")),
    ("dev-twice", net_xml("<forward mode='bridge'><interface dev='eth1'/><interface dev='eth1'/></forward>"),
     InvalidArgument, ("'eth1'", "twice")),
    ("dev-bad-name", net_xml("<forward mode='bridge' dev='eth0:1'/>"), InvalidArgument, ("'eth0:1'", "':'")),
    ("interface-no-dev", net_xml("<forward mode='bridge'><interface/></forward>"), InvalidArgument,
     ("<interface>", "'dev'")),
    ("bridge-nothing", net_xml("<forward mode='bridge'/>"), InvalidArgument, ("neither", "<bridge name='br0'/>")),
    ("bridge-both", net_xml("<forward mode='bridge' dev='eth0'/><bridge name='br0'/>"), InvalidArgument,
     ("'br0'", "'eth0'", "keep one")),
    ("bridge-ip", net_xml(BR + v4()), InvalidArgument, ("'bridge'", "10.1.0.1", "remove <ip>")),
    ("bridge-stp", net_xml("<forward mode='bridge'/><bridge name='br0' stp='on'/>"), InvalidArgument,
     ("stp= given", "'br0'", "<bridge>")),
    ("bridge-mtu", net_xml(BR + "<mtu size='9000'/>"), InvalidArgument, ("9000", "<mtu>")),
    ("bridge-mac", net_xml(BR + "<mac address='52:54:00:00:00:01'/>"), InvalidArgument, ("<mac>", "'bridge'")),
    ("bridge-dns", net_xml(BR + "<dns enable='no'/>"), InvalidArgument, ("<dns>", "'bridge'")),
    ("bridge-domain", net_xml(BR + "<domain name='x.lan'/>"), InvalidArgument, ("<domain>", "'bridge'")),
    # -- nat ports
    ("nat-in-route", net_xml("<forward mode='route'><nat/></forward>" + v4()), InvalidArgument,
     ("<nat>", "'route'")),
    ("port-reversed", net_xml("<forward><nat><port start='2000' end='1000'/></nat></forward>" + v4()),
     InvalidArgument, ("reversed", "2000", "1000")),
    ("port-high", net_xml("<forward><nat><port start='1024' end='70000'/></nat></forward>" + v4()),
     InvalidArgument, ("70000", "1-65535")),
    ("port-zero", net_xml("<forward><nat><port start='0' end='100'/></nat></forward>" + v4()),
     InvalidArgument, ("start port 0", "1-65535")),
    ("port-no-end", net_xml("<forward><nat><port start='1024'/></nat></forward>" + v4()),
     InvalidArgument, ("'end'", "<port>")),
    ("port-text", net_xml("<forward><nat><port start='low' end='100'/></nat></forward>" + v4()),
     InvalidArgument, ("'low'", "whole number")),
    # -- ip
    ("ip-bad", net_xml(v4(attrs="address='192.168.1.300' prefix='24'")), InvalidArgument,
     ("'192.168.1.300'", "not a valid IP address")),
    ("ip-missing", net_xml(v4(attrs="prefix='24'")), InvalidArgument, ("'address'", "<ip>")),
    ("netmask-holes", net_xml(v4(attrs="address='10.1.0.1' netmask='255.0.255.0'")), InvalidArgument,
     ("'255.0.255.0'", "not contiguous")),
    ("netmask-text", net_xml(v4(attrs="address='10.1.0.1' netmask='wide'")), InvalidArgument,
     ("'wide'", "netmask")),
    ("prefix-33", net_xml(v4(attrs="address='10.1.0.1' prefix='33'")), InvalidArgument, ("prefix 33", "1-32")),
    ("prefix-0", net_xml(v4(attrs="address='10.1.0.1' prefix='0'")), InvalidArgument, ("prefix 0", "out of range")),
    ("prefix-129", net_xml(v4(attrs="family='ipv6' address='fd00::1' prefix='129'")), InvalidArgument,
     ("prefix 129", "1-128")),
    ("prefix-31", net_xml(v4(attrs="address='10.1.0.1' prefix='31'")), InvalidArgument,
     ("prefix 31", "no address for guests")),
    ("netmask-and-prefix", net_xml(v4(attrs="address='10.1.0.1' netmask='255.255.255.0' prefix='24'")),
     InvalidArgument, ("'255.255.255.0'", "'24'", "keep one")),
    ("netmask-ipv6", net_xml(v4(attrs="family='ipv6' address='fd00::1' netmask='255.255.255.0'")), InvalidArgument,
     ("'255.255.255.0'", "IPv6", "prefix='64'")),
    ("ipv6-no-family", net_xml(v4(attrs="address='fd00::1' prefix='64'")), InvalidArgument,
     ("'fd00::1'", "family='ipv6'")),
    ("ipv6-family-v4-address", net_xml(v4(attrs="family='ipv6' address='10.1.0.1' prefix='64'")), InvalidArgument,
     ("'10.1.0.1'", "not an IPv6 address")),
    ("family-unknown", net_xml(v4(attrs="family='ipx' address='10.1.0.1' prefix='24'")), InvalidArgument,
     ("'ipx'", "'ipv4' or 'ipv6'")),
    ("ip-network-address", net_xml(v4(attrs="address='192.168.1.0' prefix='24'")), InvalidArgument,
     ("192.168.1.0", "network address", "192.168.1.1")),
    ("ip-broadcast", net_xml(v4(attrs="address='192.168.1.255' netmask='255.255.255.0'")), InvalidArgument,
     ("192.168.1.255", "broadcast")),
    ("ip-class-e", net_xml(v4(attrs="address='240.0.0.1'")), InvalidArgument, ("'240.0.0.1'", "prefix=")),
    ("two-dhcp-v4", net_xml(dhcp("<range start='10.1.0.2' end='10.1.0.9'/>")
                            + "<ip address='10.2.0.1' prefix='24'><dhcp><range start='10.2.0.2' end='10.2.0.9'/>"
                            "</dhcp></ip>"), InvalidArgument, ("second IPv4", "10.1.0.1", "10.2.0.1")),
    ("ips-overlap", net_xml(v4() + "<ip address='10.1.0.129' prefix='25'/>"), InvalidArgument,
     ("10.1.0.128/25", "10.1.0.0/24", "overlaps")),
    # -- dhcp ranges
    ("range-outside", net_xml(dhcp("<range start='10.1.0.10' end='10.1.1.20'/>")), InvalidArgument,
     ("10.1.1.20", "outside", "10.1.0.0/24")),
    ("range-reversed", net_xml(dhcp("<range start='10.1.0.90' end='10.1.0.10'/>")), InvalidArgument,
     ("reversed", "10.1.0.90", "10.1.0.10")),
    ("range-bad-address", net_xml(dhcp("<range start='10.1.0.x' end='10.1.0.10'/>")), InvalidArgument,
     ("'10.1.0.x'", "not a valid IPv4 address")),
    ("range-broadcast", net_xml(dhcp("<range start='10.1.0.10' end='10.1.0.255'/>")), InvalidArgument,
     ("10.1.0.255", "broadcast")),
    ("range-family", net_xml(dhcp("<range start='fd00::2' end='fd00::9'/>")), InvalidArgument,
     ("'fd00::2'", "not an IPv4 address")),
    ("range-no-end", net_xml(dhcp("<range start='10.1.0.2'/>")), InvalidArgument, ("'end'", "<range>")),
    # -- static hosts
    ("host-outside", net_xml(dhcp("<host mac='52:54:00:00:00:01' ip='10.9.0.5'/>")), InvalidArgument,
     ("10.9.0.5", "outside", "10.1.0.0/24")),
    ("host-gateway", net_xml(dhcp("<host mac='52:54:00:00:00:01' ip='10.1.0.1'/>")), InvalidArgument,
     ("10.1.0.1", "own address")),
    ("host-dup-mac", net_xml(dhcp("<host mac='52:54:00:00:00:01' ip='10.1.0.5'/>"
                                  "<host mac='52:54:00:00:00:01' ip='10.1.0.6'/>")), InvalidArgument,
     ("52:54:00:00:00:01", "two static leases")),
    ("host-dup-mac-case", net_xml(dhcp("<host mac='52:54:00:00:00:0a' ip='10.1.0.5'/>"
                                       "<host mac='52:54:00:00:00:0A' ip='10.1.0.6'/>")), InvalidArgument,
     ("52:54:00:00:00:0a", "two static leases")),
    ("host-dup-ip", net_xml(dhcp("<host mac='52:54:00:00:00:01' ip='10.1.0.5'/>"
                                 "<host mac='52:54:00:00:00:02' ip='10.1.0.5'/>")), InvalidArgument,
     ("10.1.0.5", "two hosts", "52:54:00:00:00:01", "52:54:00:00:00:02")),
    ("host-anonymous", net_xml(dhcp("<host ip='10.1.0.5'/>")), InvalidArgument, ("neither mac= nor name=",)),
    ("host-no-ip", net_xml(dhcp("<host mac='52:54:00:00:00:01'/>")), InvalidArgument, ("no ip=", "10.1.0.0/24")),
    ("host-bad-mac", net_xml(dhcp("<host mac='52:54:00:zz:00:01' ip='10.1.0.5'/>")), InvalidArgument,
     ("52:54:00:zz:00:01", "six hex pairs")),
    ("host-multicast-mac", net_xml(dhcp("<host mac='01:54:00:00:00:01' ip='10.1.0.5'/>")), InvalidArgument,
     ("01:54:00:00:00:01", "multicast")),
    ("host-bad-name", net_xml(dhcp("<host name='web 1' ip='10.1.0.5'/>")), InvalidArgument,
     ("'web 1'", "DNS name")),
    ("host-v4-id", net_xml(dhcp("<host id='00:01' name='a' ip='10.1.0.5'/>")), InvalidArgument,
     ("id='00:01'", "IPv4")),
    ("host-v6-mac", net_xml("<ip family='ipv6' address='fd00::1' prefix='64'><dhcp>"
                            "<host mac='52:54:00:00:00:01' ip='fd00::5'/></dhcp></ip>"), InvalidArgument,
     ("mac='52:54:00:00:00:01'", "IPv6", "id=")),
    ("host-bad-duid", net_xml("<ip family='ipv6' address='fd00::1' prefix='64'><dhcp>"
                              "<host id='zz-top' ip='fd00::5'/></dhcp></ip>"), InvalidArgument,
     ("'zz-top'", "DUID")),
    # -- bridge, mtu, mac
    ("bridge-long", net_xml("<bridge name='virbr-much-too-long'/>"), InvalidArgument,
     ("'virbr-much-too-long'", "more than 15")),
    ("bridge-slash", net_xml("<bridge name='vir/br'/>"), InvalidArgument, ("'vir/br'", "'/'")),
    ("bridge-space", net_xml("<bridge name='vir br'/>"), InvalidArgument, ("'vir br'", "white space")),
    ("bridge-colon", net_xml("<bridge name='virbr:1'/>"), InvalidArgument, ("'virbr:1'", "':'")),
    ("bridge-dot", net_xml("<bridge name='..'/>"), InvalidArgument, ("'..'",)),
    ("stp-value", net_xml("<bridge stp='maybe'/>"), InvalidArgument, ("'maybe'", "'on' or 'off'")),
    ("delay-negative", net_xml("<bridge delay='-1'/>"), InvalidArgument, ("delay", "-1", "at least 0")),
    ("mtu-low", net_xml("<mtu size='67'/>"), InvalidArgument, ("67", "68-65535")),
    ("mtu-high", net_xml("<mtu size='65536'/>"), InvalidArgument, ("65536", "68-65535")),
    ("mtu-text", net_xml("<mtu size='big'/>"), InvalidArgument, ("'big'", "<mtu>")),
    ("mtu-missing", net_xml("<mtu/>"), InvalidArgument, ("'size'", "<mtu>")),
    ("mac-bad", net_xml("<mac address='52:54:00:00:00'/>"), InvalidArgument, ("52:54:00:00:00", "<mac>")),
    # -- dns and domain
    ("dns-disabled-hosts", net_xml("<dns enable='no'><host ip='10.1.0.5'><hostname>a</hostname></host></dns>"),
     InvalidArgument, ("enable='no'", "<host>")),
    ("dns-bad-ip", net_xml("<dns><host ip='10.1.0'><hostname>a</hostname></host></dns>"), InvalidArgument,
     ("'10.1.0'", "not a valid IP address")),
    ("dns-no-hostname", net_xml("<dns><host ip='10.1.0.5'/></dns>"), InvalidArgument, ("10.1.0.5", "<hostname>")),
    ("dns-bad-hostname", net_xml("<dns><host ip='10.1.0.5'><hostname>files;rm</hostname></host></dns>"),
     InvalidArgument, ("'files;rm'", "DNS name")),
    ("dns-enable-value", net_xml("<dns enable='off'/>"), InvalidArgument, ("'off'", "'yes' or 'no'")),
    ("domain-local-only", net_xml("<domain localOnly='yes'/>"), InvalidArgument, ("localOnly=", "name=")),
    ("domain-bad", net_xml("<domain name='lab example'/>"), InvalidArgument,
     ("'lab example'", "domain name", "example.lan")),
    ("domain-newline", net_xml("<domain name='lab&#10;server=1.2.3.4'/>"), InvalidArgument,
     ("domain name", "'lab\\nserver=1.2.3.4'")),
]


@pytest.mark.parametrize(("xml", "cls", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rejections(xml: str, cls: type[Exception], needles: tuple[str, ...]) -> None:
    with pytest.raises(cls) as info:
        parse_network_xml(xml)
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_rejection_messages_name_the_network() -> None:
    for _, xml, _, _ in CASES[5:]:  # past the document-level cases, which have no network yet
        with pytest.raises(InvalidArgument) as info:
            parse_network_xml(xml)
        assert "network 'n1'" in str(info.value), str(info.value)


def test_accepted_edge_cases() -> None:
    # a DHCP range over the gateway's own address: libvirt allows it (dnsmasq skips the address)
    parse_network_xml(net_xml(dhcp("<range start='10.1.0.1' end='10.1.0.254'/>")))
    # DHCPv6 with a range only
    n = parse_network_xml(net_xml("<ip family='ipv6' address='fd00:1::1' prefix='64'><dhcp>"
                                  "<range start='fd00:1::100' end='fd00:1::1ff'/></dhcp></ip>"))
    assert n.ip("ipv6") is not None and n.ip("ipv6").has_dhcp  # type: ignore[union-attr]
    # one IPv4 and one IPv6 <dhcp>, a static host inside the range, names with dots and digits first
    parse_network_xml(net_xml(dhcp("<range start='10.1.0.2' end='10.1.0.9'/>"
                                   "<host mac='52:54:00:00:00:01' name='1st.vm' ip='10.1.0.5'/>")
                              + "<ip family='ipv6' address='fd00:1::1' prefix='64'><dhcp>"
                              "<range start='fd00:1::100' end='fd00:1::1ff'/></dhcp></ip>"))
    # bridge names at the kernel's limit
    parse_network_xml(net_xml("<bridge name='abcdefghijklmno'/>"))


def test_validate_network_checks_models_built_in_code() -> None:
    ok = _load("full")
    validate_network(ok)
    with pytest.raises(InvalidArgument, match="not in normal form"):
        validate_network(replace(ok, mac="52:54:00:9A:BC:DE"))
    ip = replace(ok.ips[0], prefix=16)
    with pytest.raises(InvalidArgument, match="means prefix 24, not 16"):
        validate_network(replace(ok, ips=(ip,)))
    with pytest.raises(InvalidArgument, match="differs from the first"):
        validate_network(replace(ok, forward=Forward("nat", dev="eth0", interfaces=("eth1",))))
    with pytest.raises(InvalidArgument, match="not in normal form"):
        validate_network(replace(ok, uuid=ok.uuid.upper()))


# ---------------------------------------------------------------- normalize
def test_normalize_fills_uuid_mac_and_stp() -> None:
    raw = parse_network_xml(net_xml("<forward/>" + IP))
    n = normalize_network(raw, taken_macs={"52:54:00:00:00:01"})
    assert n.uuid and len(n.uuid) == 36
    assert n.mac is not None and n.mac.startswith("52:54:00:") and n.mac != "52:54:00:00:00:01"
    assert n.bridge == Bridge(name=None, stp=True, delay=0)  # the daemon names the bridge
    assert normalize_network(n) == n  # idempotent
    assert parse_network_xml(format_network_xml(n)) == n
    assert "<bridge stp='on' delay='0'/>" in format_network_xml(n)


def test_normalize_avoids_taken_macs() -> None:
    raw = parse_network_xml(net_xml(IP))
    first = normalize_network(raw, rng=random.Random(7)).mac
    assert first is not None
    again = normalize_network(raw, taken_macs={first.upper()}, rng=random.Random(7)).mac
    assert again is not None and again != first


def test_normalize_keeps_what_is_given() -> None:
    n = _load("isolated")
    assert normalize_network(n) == n  # stp off, delay 2, its MAC and uuid stay
    hb = replace(_load("bridge_host"), uuid="")
    filled = normalize_network(hb)
    assert filled.uuid and filled.mac is None and filled.bridge == Bridge(name="br0")  # host bridge: no MAC/stp
    mv = normalize_network(replace(_load("macvtap"), uuid=""))
    assert mv.mac is None and mv.bridge is None


# ---------------------------------------------------------------- default network
def test_default_network_on_a_free_host() -> None:
    net, note = default_network([], set())
    assert note is None
    n = normalize_network(net, rng=random.Random(1))
    out = format_network_xml(n)
    assert out == (
        "<network>\n"
        "  <name>default</name>\n"
        f"  <uuid>{n.uuid}</uuid>\n"
        "  <forward mode='nat'>\n"
        "    <nat>\n"
        "      <port start='1024' end='65535'/>\n"
        "    </nat>\n"
        "  </forward>\n"
        "  <bridge name='virbr0' stp='on' delay='0'/>\n"
        f"  <mac address='{n.mac}'/>\n"
        "  <ip address='192.168.122.1' netmask='255.255.255.0'>\n"
        "    <dhcp>\n"
        "      <range start='192.168.122.2' end='192.168.122.254'/>\n"
        "    </dhcp>\n"
        "  </ip>\n"
        "</network>\n"
    )
    assert parse_network_xml(out) == n


def test_default_network_moves_off_a_used_subnet() -> None:
    taken = [(net4("192.168.122.0/24"), "route 192.168.122.0/24 dev eth9"),
             (net4("192.168.123.0/24"), "network 'lab'")]
    net, note = default_network(taken, set())
    assert net.ips[0].address == "192.168.124.1"
    assert net.ips[0].dhcp_ranges == (DHCPRange("192.168.124.2", "192.168.124.254"),)
    assert note == ("192.168.122.0/24 is already used on this host (by route 192.168.122.0/24 dev eth9); "
                    "the default network uses 192.168.124.0/24")


def test_default_network_wraps_around_and_ignores_what_cannot_clash() -> None:
    taken = [(net4("192.168.122.0/23"), "a"), (net4("192.168.124.0/22"), "b"), (net4("192.168.128.0/17"), "c"),
             (net4("0.0.0.0/0"), "the default route"), (net4("fd00::/8"), "ipv6")]
    net, note = default_network(taken, set())
    assert net.ips[0].address == "192.168.0.1" and note is not None and "(by a)" in note


def test_default_network_picks_a_free_bridge() -> None:
    net, note = default_network([], {"virbr0", "virbr1", "virbr3"})
    assert net.bridge is not None and net.bridge.name == "virbr2"
    assert note is not None and "virbr0" in note and "virbr2" in note
    net, _ = default_network([], {"virbr1"})
    assert net.bridge is not None and net.bridge.name == "virbr0"


def test_default_network_accepts_bare_subnets() -> None:
    net, note = default_network([net4("192.168.122.0/25")], set())
    assert net.ips[0].address == "192.168.123.1" and note is not None and "192.168.122.0/25" in note


def test_default_network_when_everything_is_taken() -> None:
    with pytest.raises(HostError, match="net-define"):
        default_network([(net4("192.168.0.0/16"), "route 192.168.0.0/16 dev eth0")], set())


# ---------------------------------------------------------------- overlap
def test_check_overlap_names_the_other_network() -> None:
    n = _load("default_nat")
    with pytest.raises(InvalidArgument) as info:
        check_overlap(n, [(net4("10.0.0.0/24"), "network 'a'"), (net4("192.168.122.0/25"), "network 'lan'")])
    msg = str(info.value)
    assert "network 'default'" in msg and "192.168.122.0/24" in msg
    assert "overlaps network 'lan' (192.168.122.0/25)" in msg and "subnet" in msg


def test_check_overlap_names_the_host_route_once() -> None:
    n = parse_network_xml(net_xml(v4(attrs="address='10.3.0.1' prefix='24'")))
    with pytest.raises(InvalidArgument) as info:
        check_overlap(n, [(net4("10.0.0.0/8"), "the host route 10.0.0.0/8 dev eth0")])
    assert "overlaps the host route 10.0.0.0/8 dev eth0;" in str(info.value)


def test_check_overlap_passes_when_nothing_clashes() -> None:
    n = _load("routed_ipv6")
    check_overlap(n, [
        (net4("10.66.1.0/24"), "network 'b'"),          # next door
        (net4("0.0.0.0/0"), "the default route"),        # default routes never clash
        (net4("::/0"), "the IPv6 default route"),
        (net4("2001:db8:67::/64"), "network 'c'"),
    ])
    check_overlap(_load("macvtap"), [(net4("10.0.0.0/8"), "x")])  # no addresses at all
    with pytest.raises(InvalidArgument, match="2001:db8:66::/64"):
        check_overlap(n, [(net4("2001:db8::/32"), "the host route 2001:db8::/32 dev eth0")])


def test_model_helpers_used_by_other_modules() -> None:
    ip = IPConfig(address="10.1.0.1", prefix=24, dhcp_hosts=(DHCPHost(mac="52:54:00:00:00:01", ip="10.1.0.5"),))
    assert ip.has_dhcp and ip.interface == ipaddress.ip_interface("10.1.0.1/24")
    assert Network(name="x").mode == "isolated" and Network(name="x").owns_bridge
