"""Pure helpers of pyvirt.network.links: names, TUN flags, ifreq packing, modes, counters."""
from __future__ import annotations

import ipaddress

import pytest

from pyvirt.errors import InvalidArgument
from pyvirt.network import links


@pytest.mark.parametrize("name", ["virbr0", "a", "x" * 15, "br-lan.10", "vnet_1"])
def test_valid_names_pass(name: str) -> None:
    links.check_ifname(name)


@pytest.mark.parametrize("name", ["", "x" * 16, ".", "..", "a/b", "a:b", "a b", "tab\t", "vnet%d", "a%s"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match="not a valid interface name"):
        links.check_ifname(name)


def test_pattern_names_allow_one_percent_d() -> None:
    links.check_ifname("vnet%d", pattern=True)
    links.check_ifname("x" * 13 + "%d", pattern=True)  # the kernel fills at least one digit: 14 bytes
    for bad in ("v%d%d", "x" * 15 + "%d", "v%s"):
        with pytest.raises(InvalidArgument):
            links.check_ifname(bad, pattern=True)


def test_next_free_name_takes_the_lowest_gap() -> None:
    assert links.next_free_name("macvtap", []) == "macvtap0"
    assert links.next_free_name("macvtap", ["macvtap0", "macvtap1", "macvtap3", "eth0"]) == "macvtap2"
    # names that only start like ours do not count
    assert links.next_free_name("macvtap", ["macvtap0x", "macvtapx", "xmacvtap0"]) == "macvtap0"


def test_tap_flags() -> None:
    assert links.tap_flags(queues=1, vnet_hdr=False) == links.IFF_TAP | links.IFF_NO_PI
    assert links.tap_flags(queues=1, vnet_hdr=True) == links.IFF_TAP | links.IFF_NO_PI | links.IFF_VNET_HDR
    flags = links.tap_flags(queues=4, vnet_hdr=True)
    assert flags & links.IFF_MULTI_QUEUE and flags & links.IFF_VNET_HDR
    assert not flags & links.IFF_TUN_EXCL


def test_tun_ioctl_numbers_match_linux_if_tun_h() -> None:
    # _IOW('T', 202, int), _IOW('T', 204, int), _IOR('T', 210, unsigned int)
    def ioc(direction: int, nr: int) -> int:
        return (direction << 30) | (4 << 16) | (ord("T") << 8) | nr

    assert ioc(1, 202) == links.TUNSETIFF
    assert ioc(1, 204) == links.TUNSETOWNER
    assert ioc(2, 210) == links.TUNGETIFF


def test_ifreq_round_trip() -> None:
    packed = links.pack_ifreq("vnet%d", 0x5002)
    assert len(packed) == 40  # sizeof(struct ifreq) on 64-bit Linux
    assert links.unpack_ifreq(packed) == ("vnet%d", 0x5002)
    assert links.unpack_ifreq(links.pack_ifreq("x" * 15, 1)) == ("x" * 15, 1)


def test_macvtap_modes() -> None:
    assert links.macvtap_mode("passthrough") == "passthru"
    assert links.macvtap_mode("vepa") == "vepa"
    with pytest.raises(InvalidArgument, match="macvtap mode 'source'"):
        links.macvtap_mode("source")


def test_stats_use_libvirt_names() -> None:
    kernel = {"rx_bytes": 10, "rx_packets": 2, "rx_errors": 1, "rx_dropped": 3,
              "tx_bytes": 20, "tx_packets": 4, "tx_errors": 5, "tx_dropped": 6, "multicast": 9}
    assert links.stats_from(kernel) == {"rx_bytes": 10, "rx_packets": 2, "rx_errs": 1, "rx_drop": 3,
                                        "tx_bytes": 20, "tx_packets": 4, "tx_errs": 5, "tx_drop": 6}
    assert set(links.stats_from(None).values()) == {0}


def test_parse_interface() -> None:
    assert links.parse_interface("10.252.0.1", 24, "x") == ipaddress.ip_interface("10.252.0.1/24")
    assert links.parse_interface("fd0a::1", 64, "x").version == 6
    for address, prefix in (("10.252.0.1", 33), ("10.252.0.300", 24), ("fd0a::1", 129), ("bridge", 8)):
        with pytest.raises(InvalidArgument, match="not a valid IPv4 or IPv6"):
            links.parse_interface(address, prefix, "bridge 'b'")


def test_ignored_networks() -> None:
    for text in ("0.0.0.0/0", "::/0", "169.254.0.0/16", "fe80::/64", "127.0.0.0/8", "::1/128", "ff00::/8"):
        assert links.ignored_network(ipaddress.ip_network(text))
    for text in ("10.0.0.0/8", "192.0.2.0/24", "fd00::/64"):
        assert not links.ignored_network(ipaddress.ip_network(text))
