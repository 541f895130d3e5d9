"""pyvirt.network.links against the real kernel: bridges, taps, macvtaps, addresses, routes, counters.

Every link and netns made here is named pvtl* (addresses in 10.252.0.0/16 and
fd0a:fc:252::/48); the ``clean`` fixture closes the fds and removes them all,
before and after each test, so a failing test leaks nothing.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import select
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from pyvirt.errors import AlreadyExists, HostError, InvalidArgument, NotFound
from pyvirt.network import links

pytestmark = pytest.mark.integration

PREFIX = "pvtl"
ETH_TYPE = b"\x88\xb5"  # IEEE local experimental ethertype: nothing else on the host answers it
VNET_HDR = bytes(10)  # struct virtio_net_hdr, all zero: no offloads


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def remove_ours() -> None:
    with IPRoute() as ipr:
        for link in ipr.get_links():
            if link.get("ifname", "").startswith(PREFIX):
                with contextlib.suppress(NetlinkError):  # a veth peer that went with its twin
                    ipr.link("del", index=link["index"])
    for name in netns.listnetns():
        if name.startswith(PREFIX):
            netns.remove(name)


class Cleanup:
    def __init__(self) -> None:
        self.fds: list[int] = []

    def keep(self, fds: list[int]) -> list[int]:
        self.fds.extend(fds)
        return fds

    def close(self, fd: int) -> None:
        self.fds.remove(fd)
        os.close(fd)


@pytest.fixture
def clean() -> Iterator[Cleanup]:
    remove_ours()
    cleanup = Cleanup()
    try:
        yield cleanup
    finally:
        for fd in cleanup.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        remove_ours()


def link(name: str) -> dict:
    with IPRoute() as ipr:
        return ipr.link("get", ifname=name)[0]


def wait_for(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def frame(dst: str, src: str, payload: bytes) -> bytes:
    return mac_bytes(dst) + mac_bytes(src) + ETH_TYPE + payload.ljust(46, b"\0")


# ------------------------------------------------------------------ bridges
def test_bridge_has_its_settings_and_is_deleted(clean: Cleanup) -> None:
    links.create_bridge("pvtlbr0", mac="52:54:00:fc:00:01", mtu=1400, stp=True, delay=4,
                        addresses=[("10.252.1.1", 24), ("fd0a:fc:252:1::1", 64)])
    br = link("pvtlbr0")
    assert br.get(("linkinfo", "kind")) == "bridge"
    assert br.get("mtu") == 1400 and br.get("address") == "52:54:00:fc:00:01"
    assert br.get(("linkinfo", "data", "br_stp_state")) == 1
    assert br.get(("linkinfo", "data", "br_forward_delay")) == 400  # seconds -> centiseconds
    assert br["flags"] & links.IFF_UP
    shown = ip("-d", "link", "show", "pvtlbr0")
    assert "mtu 1400" in shown and "link/ether 52:54:00:fc:00:01" in shown
    assert "stp_state 1" in shown and "forward_delay 400" in shown
    addrs = ip("addr", "show", "dev", "pvtlbr0")
    assert "inet 10.252.1.1/24 brd 10.252.1.255" in addrs
    assert "inet6 fd0a:fc:252:1::1/64 scope global nodad" in addrs

    assert links.link_exists("pvtlbr0") and links.link_kind("pvtlbr0") == "bridge"
    assert links.link_mtu("pvtlbr0") == 1400
    assert "pvtlbr0" in links.link_names("pvtlbr")
    assert links.delete_link("pvtlbr0") is True
    assert not links.link_exists("pvtlbr0") and links.link_kind("pvtlbr0") is None
    assert links.delete_link("pvtlbr0") is False


def test_bridge_without_stp_keeps_zero_delay(clean: Cleanup) -> None:
    links.create_bridge("pvtlbr1", mac=None, mtu=None, stp=False, delay=0, addresses=[])
    br = link("pvtlbr1")
    assert br.get(("linkinfo", "data", "br_stp_state")) == 0
    assert br.get(("linkinfo", "data", "br_forward_delay")) == 0
    assert br.get("mtu") == 1500


def test_bridge_name_in_use_names_the_user(clean: Cleanup) -> None:
    ip("link", "add", "pvtlv0", "type", "veth", "peer", "name", "pvtlv1")
    with pytest.raises(AlreadyExists, match="cannot create bridge 'pvtlv0': a veth link named 'pvtlv0'"):
        links.create_bridge("pvtlv0", mac=None, mtu=None, stp=False, delay=0, addresses=[])
    assert links.link_kind("pvtlv0") == "veth"  # untouched


def test_half_failed_bridge_leaves_nothing(clean: Cleanup) -> None:
    # the second address is refused by the kernel after the bridge was made: it must be removed again
    with pytest.raises(AlreadyExists, match=r"address 10\.252\.2\.1/24 is given twice"):
        links.create_bridge("pvtlbr2", mac=None, mtu=1400, stp=False, delay=0,
                            addresses=[("10.252.2.1", 24), ("10.252.2.1", 24)])
    assert not links.link_exists("pvtlbr2")
    # malformed settings are refused before anything is made
    with pytest.raises(InvalidArgument, match="MTU 70000 is out of range"):
        links.create_bridge("pvtlbr2", mac=None, mtu=70000, stp=False, delay=0, addresses=[])
    with pytest.raises(InvalidArgument, match="'52:54:zz' is not a MAC address"):
        links.create_bridge("pvtlbr2", mac="52:54:zz", mtu=None, stp=False, delay=0, addresses=[])
    with pytest.raises(InvalidArgument, match=r"10\.252\.2\.300/24"):
        links.create_bridge("pvtlbr2", mac=None, mtu=None, stp=False, delay=0, addresses=[("10.252.2.300", 24)])
    assert not links.link_exists("pvtlbr2")
    with pytest.raises(InvalidArgument, match="not a valid interface name"):
        links.create_bridge("pvtl-much-too-long", mac=None, mtu=None, stp=False, delay=0, addresses=[])


def test_usable_from_a_running_event_loop(clean: Cleanup) -> None:
    """The daemon calls some of these from its asyncio loop, where pyroute2's sync API cannot run."""
    async def inside() -> tuple[bool, str | None]:
        links.create_bridge("pvtlbr5", mac=None, mtu=None, stp=False, delay=0, addresses=[])
        return links.link_exists("pvtlbr5"), links.link_kind("pvtlbr5")

    assert asyncio.run(inside()) == (True, "bridge")


# --------------------------------------------------------------------- taps
def test_tap_works_and_vanishes_with_its_fd(clean: Cleanup) -> None:
    name, fds = links.open_tap("pvtl%d")
    clean.keep(fds)
    assert name.startswith(PREFIX) and len(fds) == 1
    assert links.link_kind(name) == "tun"
    assert "tun type tap" in ip("-d", "link", "show", name) and "vnet_hdr on" in ip("-d", "link", "show", name)
    got_name, flags = links.tap_fd_info(fds[0])
    assert got_name == name and flags & links.IFF_VNET_HDR and flags & links.IFF_NO_PI
    assert not os.get_inheritable(fds[0])  # close-on-exec: only pass_fds hands it on

    links.bring_up(name, mac="fe:54:00:fc:00:02", mtu=1300)
    tap = link(name)
    assert tap.get("address") == "fe:54:00:fc:00:02" and tap.get("mtu") == 1300 and tap["flags"] & links.IFF_UP
    before = links.link_stats(name)
    # what the guest writes into the fd, the host receives on the tap
    os.write(fds[0], VNET_HDR + frame("ff:ff:ff:ff:ff:ff", "52:54:00:fc:00:02", b"pvtl-tap"))
    after = links.link_stats(name)
    assert after["rx_packets"] == before["rx_packets"] + 1 and after["rx_bytes"] > before["rx_bytes"]

    clean.close(fds[0])
    assert wait_for(lambda: not links.link_exists(name)), "the tap outlived its last fd"


def test_multiqueue_tap(clean: Cleanup) -> None:
    name, fds = links.open_tap("pvtl%d", queues=2, vnet_hdr=False)
    clean.keep(fds)
    assert len(fds) == 2
    for fd in fds:
        got_name, flags = links.tap_fd_info(fd)
        assert got_name == name and flags & links.IFF_MULTI_QUEUE and not flags & links.IFF_VNET_HDR
    assert {"tx-0", "tx-1"} <= set(os.listdir(f"/sys/class/net/{name}/queues"))
    clean.close(fds[0])
    assert links.link_exists(name)  # one queue still open
    clean.close(fds[1])
    assert wait_for(lambda: not links.link_exists(name))


def test_tap_never_takes_over_an_existing_link(clean: Cleanup) -> None:
    name, fds = links.open_tap("pvtltap0")
    clean.keep(fds)
    assert name == "pvtltap0"
    with pytest.raises(AlreadyExists, match="a tun link named 'pvtltap0'"):
        links.open_tap("pvtltap0")
    ip("link", "add", "pvtlv2", "type", "veth", "peer", "name", "pvtlv3")
    with pytest.raises(AlreadyExists, match="a veth link named 'pvtlv2'"):
        links.open_tap("pvtlv2", queues=2)
    assert links.link_kind("pvtlv2") == "veth"


def test_tap_owner(clean: Cleanup) -> None:
    name, fds = links.open_tap("pvtl%d", owner=4321)
    clean.keep(fds)
    assert Path(f"/sys/class/net/{name}/owner").read_text().strip() == "4321"


def test_plug_tap_into_bridge(clean: Cleanup) -> None:
    links.create_bridge("pvtlbr3", mac="52:54:00:fc:00:03", mtu=1400, stp=False, delay=0, addresses=[])
    name, fds = links.open_tap("pvtl%d")
    clean.keep(fds)
    links.plug_into_bridge(name, "pvtlbr3", mac="fe:54:00:fc:00:04")
    tap, br = link(name), link("pvtlbr3")
    assert tap.get("master") == br["index"]
    assert tap.get("mtu") == 1400  # follows the bridge
    assert tap.get("address") == "fe:54:00:fc:00:04" and tap["flags"] & links.IFF_UP
    assert "master pvtlbr3" in ip("link", "show", name)
    assert br.get("address") == "52:54:00:fc:00:03"  # the bridge kept its own MAC
    assert links.bridge_ports("pvtlbr3") == [name]

    with pytest.raises(InvalidArgument, match="is a tun link, not a bridge"):
        links.plug_into_bridge("pvtlbr3", name)
    with pytest.raises(NotFound, match="pvtlnone"):
        links.plug_into_bridge(name, "pvtlnone")
    links.set_link_up(name, False)
    assert not link(name)["flags"] & links.IFF_UP


def test_plug_with_explicit_mtu(clean: Cleanup) -> None:
    links.create_bridge("pvtlbr4", mac=None, mtu=9000, stp=False, delay=0, addresses=[])
    name, fds = links.open_tap("pvtl%d")
    clean.keep(fds)
    links.plug_into_bridge(name, "pvtlbr4", mtu=9000)
    assert links.link_mtu(name) == 9000 and links.link_mtu("pvtlbr4") == 9000


# ------------------------------------------------------------------ macvtap
SNIFFER = r"""
import select, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((sys.argv[1], 0))
own = s.getsockname()[4]
guest = bytes.fromhex(sys.argv[2].replace(":", ""))
print("ready", flush=True)
while select.select([s], [], [], 10)[0]:
    data = s.recv(65535)
    if data[12:14] == b"\x88\xb5" and b"pvtl-to-peer" in data:
        print("got", data[6:12].hex(":"), flush=True)
        s.send(guest + own + b"\x88\xb5" + b"pvtl-to-guest".ljust(46, b"\0"))
        break
"""


@pytest.fixture
def veth_into_netns(clean: Cleanup) -> Iterator[tuple[str, str, str]]:
    """pvtlmv0 on the host, its peer pvtlmv1 inside netns pvtlns0, both up."""
    ip("netns", "add", "pvtlns0")
    ip("link", "add", "pvtlmv0", "type", "veth", "peer", "name", "pvtlmv1", "netns", "pvtlns0")
    ip("link", "set", "pvtlmv0", "up")
    ip("-n", "pvtlns0", "link", "set", "pvtlmv1", "up")
    yield "pvtlmv0", "pvtlns0", "pvtlmv1"


def test_macvtap_carries_frames_both_ways(clean: Cleanup, veth_into_netns: tuple[str, str, str]) -> None:
    lower, ns, peer = veth_into_netns
    guest = "52:54:00:fc:00:05"
    name, index = links.create_macvtap(lower, mode="bridge", mac=guest)
    assert name.startswith("macvtap") and name[len("macvtap"):].isdigit()
    mv = link(name)
    assert mv["index"] == index and mv.get(("linkinfo", "kind")) == "macvtap"
    assert mv.get(("linkinfo", "data", "macvtap_mode")) == "bridge"
    assert mv.get("address") == guest and mv.get("link") == link(lower)["index"] and mv["flags"] & links.IFF_UP
    assert links.link_kind(name) == "macvtap"

    fds = clean.keep(links.open_macvtap(index))
    fd = fds[0]
    assert links.tap_fd_info(fd)[1] & links.IFF_VNET_HDR
    before = links.link_stats(name)

    sniffer = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SNIFFER, peer, guest],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert sniffer.stdout is not None
        assert sniffer.stdout.readline().strip() == "ready"
        # guest -> peer: a broadcast written into the macvtap fd leaves through the veth
        got = ""
        for _ in range(50):
            os.write(fd, VNET_HDR + frame("ff:ff:ff:ff:ff:ff", guest, b"pvtl-to-peer"))
            if select.select([sniffer.stdout], [], [], 0.1)[0]:
                got = sniffer.stdout.readline().strip()
                break
        assert got == f"got {guest}"
        # peer -> guest: a frame to the guest's MAC is read from the fd, behind its virtio-net header
        received = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and b"pvtl-to-guest" not in received:
            if select.select([fd], [], [], 0.2)[0]:
                received = os.read(fd, 65535)
        assert b"pvtl-to-guest" in received
        assert received[len(VNET_HDR):len(VNET_HDR) + 6] == mac_bytes(guest)
        assert sniffer.wait(timeout=10) == 0
    finally:
        if sniffer.poll() is None:
            sniffer.kill()
            sniffer.wait()

    after = links.link_stats(name)
    assert after["tx_packets"] > before["tx_packets"] and after["tx_bytes"] > before["tx_bytes"]
    assert after["rx_packets"] > before["rx_packets"]

    clean.close(fd)
    assert links.link_exists(name)  # a macvtap outlives its fds: the caller deletes it
    assert links.delete_link(name) and not links.link_exists(name)


def test_macvtap_named_multiqueue_and_mac_in_use(clean: Cleanup, veth_into_netns: tuple[str, str, str]) -> None:
    lower = veth_into_netns[0]
    name, index = links.create_macvtap(lower, mode="passthrough", mac="52:54:00:fc:00:06", name="pvtlmvt0")
    assert name == "pvtlmvt0" and link(name).get(("linkinfo", "data", "macvtap_mode")) == "passthru"
    fds = clean.keep(links.open_macvtap(index, queues=2, vnet_hdr=False))
    assert len(fds) == 2 and not any(links.tap_fd_info(fd)[1] & links.IFF_VNET_HDR for fd in fds)
    with pytest.raises(HostError, match="pvtlmvt0; a passthrough macvtap needs its device to itself"):
        links.create_macvtap(lower, mode="bridge", mac="52:54:00:fc:00:07", name="pvtlmvt1")
    assert not links.link_exists("pvtlmvt1")
    with pytest.raises(AlreadyExists, match="a macvtap link named 'pvtlmvt0'"):
        links.create_macvtap(lower, mode="bridge", mac="52:54:00:fc:00:07", name="pvtlmvt0")


def test_macvtap_mac_in_use_leaves_nothing(clean: Cleanup, veth_into_netns: tuple[str, str, str]) -> None:
    lower = veth_into_netns[0]
    links.create_macvtap(lower, mode="bridge", mac="52:54:00:fc:00:08", name="pvtlmvt2")
    with pytest.raises(AlreadyExists, match="MAC 52:54:00:fc:00:08 is already used"):
        links.create_macvtap(lower, mode="bridge", mac="52:54:00:fc:00:08", name="pvtlmvt3")
    assert not links.link_exists("pvtlmvt3")
    with pytest.raises(NotFound, match="pvtlnone"):
        links.create_macvtap("pvtlnone", mode="bridge", mac="52:54:00:fc:00:09")
    with pytest.raises(InvalidArgument, match="macvtap mode"):
        links.create_macvtap(lower, mode="source", mac="52:54:00:fc:00:09")


def test_macvtap_node_is_made_when_missing(clean: Cleanup, veth_into_netns: tuple[str, str, str], tmp_path) -> None:
    """/dev here is devtmpfs, which makes /dev/tapN itself; a bare directory shows the mknod fallback."""
    name, index = links.create_macvtap(veth_into_netns[0], mode="bridge", mac="52:54:00:fc:00:0a", name="pvtlmvt4")
    major, minor = (int(x) for x in Path(f"/sys/class/net/{name}/macvtap/tap{index}/dev").read_text().split(":"))
    stale = tmp_path / f"tap{index}"
    os.mknod(stale, stat.S_IFCHR | 0o600, os.makedev(major, minor + 1))  # left by an earlier ifindex
    path = links.macvtap_node(index, dev_dir=str(tmp_path))
    st = os.stat(path)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(major, minor)
    fd = clean.keep([os.open(path, os.O_RDWR)])[0]
    assert links.tap_fd_info(fd)[1] & links.IFF_TAP
    with pytest.raises(NotFound, match="ifindex 999999"):
        links.macvtap_node(999999, dev_dir=str(tmp_path))


# ------------------------------------------------------------ host subnets
def test_host_subnets(clean: Cleanup) -> None:
    links.create_bridge("pvtlbr6", mac=None, mtu=None, stp=False, delay=0,
                        addresses=[("10.252.6.1", 24), ("fd0a:fc:252:6::1", 64)])
    with IPRoute() as ipr:
        ipr.route("add", dst="10.252.60.0/24", gateway="10.252.6.2", oif=link("pvtlbr6")["index"])
    found = links.host_subnets()
    net = ipaddress.ip_network
    assert (net("10.252.6.0/24"), "address 10.252.6.1/24 on pvtlbr6") in found
    assert (net("fd0a:fc:252:6::/64"), "address fd0a:fc:252:6::1/64 on pvtlbr6") in found
    assert (net("10.252.6.0/24"), "route 10.252.6.0/24 dev pvtlbr6") in found
    assert (net("10.252.60.0/24"), "route 10.252.60.0/24 via 10.252.6.2 dev pvtlbr6") in found
    for subnet, _ in found:
        assert subnet.prefixlen > 0 and not subnet.is_link_local and not subnet.is_loopback
    links.delete_link("pvtlbr6")
    assert not any("pvtlbr6" in text for _, text in links.host_subnets())


def test_missing_links_are_reported(clean: Cleanup) -> None:
    assert not links.link_exists("pvtlnone") and links.link_kind("pvtlnone") is None
    assert not links.link_exists("x" * 30)
    assert links.link_names("pvtlnone") == []
    for call in (lambda: links.link_mtu("pvtlnone"), lambda: links.link_stats("pvtlnone"),
                 lambda: links.bridge_ports("pvtlnone"), lambda: links.set_link_up("pvtlnone", True),
                 lambda: links.bring_up("pvtlnone")):
        with pytest.raises(NotFound, match="pvtlnone"):
            call()
    assert links.link_kind("lo") == "device"
