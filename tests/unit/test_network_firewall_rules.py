"""The nftables table of the active networks: rules per forward mode, and nft's own check of them.

``nft -c`` parses the script and has the kernel check the transaction without
committing it, so these tests change nothing on the host.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyvirt.errors import HostError, InvalidArgument
from pyvirt.model.network import Bridge, DHCPRange, Forward, IPConfig, Network
from pyvirt.network import firewall

V4 = IPConfig("192.168.122.1", 24, dhcp_ranges=(DHCPRange("192.168.122.2", "192.168.122.254"),))
NAT = Network(name="default", bridge=Bridge("virbr0"), forward=Forward("nat"), ips=(V4,))
ROUTE = Network(name="routed", bridge=Bridge("virbr1"), forward=Forward("route", dev="eth0"),
                ips=(IPConfig("10.1.0.1", 24), IPConfig("fd00:1::1", 64, family="ipv6")))
ISOLATED = Network(name="iso", bridge=Bridge("virbr2"), ips=(IPConfig("10.2.0.1", 24),))
OPEN = Network(name="open", bridge=Bridge("virbr3"), forward=Forward("open"), ips=(IPConfig("10.3.0.1", 24),))
HOSTBRIDGE = Network(name="lan", bridge=Bridge("br0"), forward=Forward("bridge"))
NAT_PORTS = Network(name="natp", bridge=Bridge("virbr4"), forward=Forward("nat", dev="eth0", nat_port_start=20000,
                    nat_port_end=29999), dns_enable=False, ips=(
    IPConfig("10.4.0.1", 24, dhcp_ranges=(DHCPRange("10.4.0.10", "10.4.0.20"),)),
    IPConfig("fd00:4::1", 64, family="ipv6", dhcp_ranges=(DHCPRange("fd00:4::10", "fd00:4::20"),))))

ALL = [(NAT, "virbr0"), (ROUTE, "virbr1"), (ISOLATED, "virbr2"), (OPEN, "virbr3"), (HOSTBRIDGE, "br0"),
       (NAT_PORTS, "virbr4")]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="nft -c talks to the kernel: needs CAP_NET_ADMIN")


def chain(text: str, name: str) -> list[str]:
    """The rules of one chain in ``ruleset`` output (without the hook line)."""
    lines = text.splitlines()
    start = lines.index(f"\tchain {name} {{")
    end = lines.index("\t}", start)
    return [line.strip() for line in lines[start + 1:end] if not line.strip().startswith("type ")]


def test_transaction_replaces_the_whole_table() -> None:
    text = firewall.ruleset([(NAT, "virbr0")])
    assert text.splitlines()[:3] == ["add table inet pyvirt", "delete table inet pyvirt", "table inet pyvirt {"]
    assert text.count("table inet") == 3
    assert "type filter hook forward priority filter; policy accept;" in text
    assert "type nat hook postrouting priority srcnat; policy accept;" in text


def test_nat_network_rules() -> None:
    text = firewall.ruleset([(NAT, "virbr0")])
    assert chain(text, "postrouting") == [
        "ip saddr 192.168.122.0/24 ip daddr { 224.0.0.0/24, 255.255.255.255 } return",
        "ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 meta l4proto { tcp, udp } masquerade to :1024-65535",
        "ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 masquerade",
    ]
    assert chain(text, "guest_input") == [
        'oifname "virbr0" ip daddr 192.168.122.0/24 ct state established,related accept',
        'oifname "virbr0" reject with icmpx type port-unreachable',
    ]
    assert chain(text, "guest_output") == [
        'iifname "virbr0" ip saddr 192.168.122.0/24 accept',
        'iifname "virbr0" reject with icmpx type port-unreachable',
    ]
    assert chain(text, "guest_cross") == ['iifname "virbr0" oifname "virbr0" accept']
    assert chain(text, "input") == ['iifname "virbr0" meta l4proto { tcp, udp } th dport 53 accept',
                                    'iifname "virbr0" udp dport 67 accept']
    assert chain(text, "output") == ['oifname "virbr0" udp dport 68 accept']
    assert chain(text, "forward") == ["jump guest_cross", "jump guest_input", "jump guest_output"]


def test_route_network_has_no_masquerade_and_lets_new_connections_in_via_its_device() -> None:
    text = firewall.ruleset([(ROUTE, "virbr1")])
    assert "masquerade" not in text and "postrouting" not in text
    assert chain(text, "guest_input") == [
        'iifname "eth0" oifname "virbr1" ip daddr 10.1.0.0/24 accept',
        'iifname "eth0" oifname "virbr1" ip6 daddr fd00:1::/64 accept',
        'oifname "virbr1" reject with icmpx type port-unreachable',
    ]
    assert chain(text, "guest_output")[:2] == ['iifname "virbr1" oifname "eth0" ip saddr 10.1.0.0/24 accept',
                                               'iifname "virbr1" oifname "eth0" ip6 saddr fd00:1::/64 accept']


def test_isolated_network_only_talks_within_its_bridge() -> None:
    text = firewall.ruleset([(ISOLATED, "virbr2")])
    assert chain(text, "guest_cross") == ['iifname "virbr2" oifname "virbr2" accept']
    assert chain(text, "guest_input") == ['oifname "virbr2" reject with icmpx type port-unreachable']
    assert chain(text, "guest_output") == ['iifname "virbr2" reject with icmpx type port-unreachable']
    assert "saddr" not in text and "masquerade" not in text


def test_open_and_host_bridge_networks_add_nothing() -> None:
    text = firewall.ruleset([(OPEN, "virbr3"), (HOSTBRIDGE, "br0")])
    assert text == "add table inet pyvirt\ndelete table inet pyvirt\n"
    assert "virbr3" not in firewall.ruleset([(OPEN, "virbr3"), (NAT, "virbr0")])


def test_no_networks_deletes_the_table() -> None:
    assert firewall.ruleset([], table="pyvirt_ab12") == "add table inet pyvirt_ab12\ndelete table inet pyvirt_ab12\n"


def test_nat_port_range_forward_dev_and_ipv6_routed() -> None:
    text = firewall.ruleset([(NAT_PORTS, "virbr4")])
    assert chain(text, "postrouting") == [
        "ip saddr 10.4.0.0/24 ip daddr { 224.0.0.0/24, 255.255.255.255 } return",
        ('oifname "eth0" ip saddr 10.4.0.0/24 ip daddr != 10.4.0.0/24 meta l4proto { tcp, udp } '
         "masquerade to :20000-29999"),
        'oifname "eth0" ip saddr 10.4.0.0/24 ip daddr != 10.4.0.0/24 masquerade',
    ]
    # IPv6 of a nat network is routed (no conntrack restriction, no masquerade)
    assert 'iifname "eth0" oifname "virbr4" ip6 daddr fd00:4::/64 accept' in chain(text, "guest_input")
    # dns disabled: no port 53; DHCP and DHCPv6 still open
    assert chain(text, "input") == ['iifname "virbr4" udp dport 67 accept', 'iifname "virbr4" udp dport 547 accept']
    assert chain(text, "output") == ['oifname "virbr4" udp dport 68 accept', 'oifname "virbr4" udp dport 546 accept']


def test_into_rules_come_before_out_of_rules_for_every_network() -> None:
    """libvirt's order: a new connection from one nat network into another is rejected on the way in."""
    text = firewall.ruleset(ALL)
    assert chain(text, "forward") == ["jump guest_cross", "jump guest_input", "jump guest_output"]
    into = chain(text, "guest_input")
    assert into.index('oifname "virbr0" reject with icmpx type port-unreachable') < into.index(
        'oifname "virbr4" reject with icmpx type port-unreachable')
    assert not any("iifname" in rule and "reject" in rule for rule in into)


@pytest.mark.parametrize("bad", ['vir"br', "br 0", "a" * 16, ""])
def test_bad_interface_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="interface name"):
        firewall.ruleset([(NAT, bad)])


@pytest.mark.parametrize("bad", ["py-virt", "1abc", "a b", ""])
def test_bad_table_names_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="table name"):
        firewall.ruleset([], table=bad)


@needs_root
@pytest.mark.parametrize("active", [ALL, [(NAT, "virbr0")], [(ISOLATED, "virbr2")], [(NAT_PORTS, "virbr4")], []],
                         ids=["all", "nat", "isolated", "natports", "none"])
def test_nft_accepts_the_ruleset(active: list[tuple[Network, str]]) -> None:
    firewall.check(active, table="pvtd_check")


@needs_root
def test_nft_errors_carry_nfts_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firewall, "ruleset", lambda active, table: "table inet pvtd_check { chain x { bogus } }\n")
    with pytest.raises(HostError, match=r"nft refused the network firewall rules: .*syntax error") as err:
        firewall.check([], table="pvtd_check")
    assert "bogus" in str(err.value)  # the detail carries the script


def test_missing_nft_binary() -> None:
    with pytest.raises(HostError, match="nft is not installed at /nonexistent/nft"):
        firewall.sync([(NAT, "virbr0")], nft="/nonexistent/nft")


def test_enable_ip_forward(tmp_path: Path) -> None:
    (tmp_path / "ipv4").mkdir()
    (tmp_path / "ipv6/conf/all").mkdir(parents=True)
    (tmp_path / "ipv4/ip_forward").write_text("0\n")
    (tmp_path / "ipv6/conf/all/forwarding").write_text("1\n")
    assert firewall.enable_ip_forward("ipv4", proc_net=tmp_path) is True
    assert (tmp_path / "ipv4/ip_forward").read_text() == "1\n"
    assert firewall.enable_ip_forward("ipv4", proc_net=tmp_path) is False
    assert firewall.enable_ip_forward("ipv6", proc_net=tmp_path) is False
    with pytest.raises(InvalidArgument):
        firewall.enable_ip_forward("ipx", proc_net=tmp_path)
    with pytest.raises(HostError, match="cannot enable ipv4 forwarding"):
        firewall.enable_ip_forward("ipv4", proc_net=tmp_path / "missing")
