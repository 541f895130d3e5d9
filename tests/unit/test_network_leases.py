"""dnsmasq's lease file as virsh net-dhcp-leases shows it."""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.model.network import Bridge, DHCPRange, Forward, IPConfig, Network
from pyvirt.network.leases import Lease, format_expiry, mac_from_duid, parse_leases, read_leases

NOW = 1_800_000_000
NET = Network(name="default", bridge=Bridge("virbr0"), forward=Forward("nat"), ips=(
    IPConfig("192.168.122.1", 24, dhcp_ranges=(DHCPRange("192.168.122.2", "192.168.122.254"),)),
    IPConfig("fd00:1::1", 64, family="ipv6", dhcp_ranges=(DHCPRange("fd00:1::10", "fd00:1::ff"),)),
))

# As dnsmasq 2.90 writes it: IPv4 leases, then the server DUID, then IPv6 leases.
LEASES = f"""\
{NOW + 3600} 52:54:00:AA:BB:01 192.168.122.45 web 01:52:54:00:aa:bb:01
{NOW + 60} 52:54:00:aa:bb:02 192.168.122.46 * *
{NOW - 1} 52:54:00:aa:bb:03 192.168.122.47 old *
0 52:54:00:aa:bb:04 192.168.122.48 forever *
duid 00:01:00:01:2c:aa:bb:cc:52:54:00:00:00:ff
{NOW + 3600} 1234567 fd00:1::42 web 00:01:00:01:2c:3d:4e:5f:52:54:00:aa:bb:01
{NOW + 3600} T89 fd00:1::43 * 00:03:00:01:52:54:00:aa:bb:05
{NOW + 3600} 99 fd00:1::44 * 00:02:00:00:ab:11:22:33
"""


@pytest.fixture()
def utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_ipv4_leases() -> None:
    leases = parse_leases(LEASES, NET, now=NOW)
    v4 = [lease for lease in leases if lease.family == "ipv4"]
    assert v4 == [
        Lease(expiry=NOW + 3600, mac="52:54:00:aa:bb:01", ip="192.168.122.45", prefix=24, family="ipv4",
              hostname="web", client_id="01:52:54:00:aa:bb:01"),
        Lease(expiry=NOW + 60, mac="52:54:00:aa:bb:02", ip="192.168.122.46", prefix=24, family="ipv4",
              hostname=None, client_id=None),
        Lease(expiry=0, mac="52:54:00:aa:bb:04", ip="192.168.122.48", prefix=24, family="ipv4",
              hostname="forever", client_id=None),
    ]  # the expired .47 is dropped, the infinite .48 kept
    assert v4[0].protocol == "ipv4"


def test_ipv6_leases_after_the_duid_line() -> None:
    v6 = [lease for lease in parse_leases(LEASES, NET, now=NOW) if lease.family == "ipv6"]
    assert [(lease.ip, lease.prefix, lease.iaid, lease.mac, lease.hostname) for lease in v6] == [
        ("fd00:1::42", 64, "1234567", "52:54:00:aa:bb:01", "web"),  # MAC from a DUID-LLT
        ("fd00:1::43", 64, "T89", "52:54:00:aa:bb:05", None),  # DUID-LL; temporary address
        ("fd00:1::44", 64, "99", None, None),  # DUID-EN carries no MAC
    ]
    assert v6[0].client_id == "00:01:00:01:2c:3d:4e:5f:52:54:00:aa:bb:01"


def test_prefix_without_a_matching_subnet() -> None:
    text = f"{NOW + 10} 52:54:00:00:00:01 10.0.0.5 * *\n"
    assert parse_leases(text, NET, now=NOW)[0].prefix == 32
    assert parse_leases(text, None, now=NOW)[0].prefix == 32


def test_garbage_lines_are_skipped() -> None:
    text = (f"{NOW + 10} 52:54:00:00:00:01 not-an-ip * *\n"
            "half a line\n"
            f"{NOW + 10} 52:54:00:00:00:02 192.168.122.9 * *\n")
    assert [lease.ip for lease in parse_leases(text, NET, now=NOW)] == ["192.168.122.9"]


def test_read_leases_file(tmp_path: Path) -> None:
    assert read_leases(tmp_path / "never-ran.leases", NET) == []
    path = tmp_path / "default.leases"
    path.write_text(LEASES)
    assert len(read_leases(path, NET, now=NOW)) == 6
    # three years later only the infinite lease is left
    assert [lease.ip for lease in read_leases(path, NET, now=NOW + 10**8)] == ["192.168.122.48"]


def test_format_expiry_is_virsh_local_time(utc: None) -> None:
    assert format_expiry(1795439101) == "2026-11-23 13:05:01"
    os.environ["TZ"] = "Europe/Paris"
    time.tzset()
    assert format_expiry(1795439101) == "2026-11-23 14:05:01"
    assert format_expiry(0) == "never"


def test_mac_from_duid() -> None:
    assert mac_from_duid("00:01:00:01:2c:3d:4e:5f:52:54:00:aa:bb:01") == "52:54:00:aa:bb:01"
    assert mac_from_duid("00:03:00:01:52:54:00:aa:bb:05") == "52:54:00:aa:bb:05"
    assert mac_from_duid("00:03:00:06:52:54:00:aa:bb:05") is None  # not Ethernet
    assert mac_from_duid("zz") is None
