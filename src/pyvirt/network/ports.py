"""The host side of one guest NIC: a tap on a bridge, a macvtap over a device, or a bare tap.

The daemon opens the device and hands QEMU only its file descriptors, so QEMU
needs no network privileges. A tap lives as long as an fd to it is open: once
QEMU has inherited the fds and the daemon closed its copies, the tap goes away
with QEMU and cannot leak. A macvtap link outlives its fds, so it is deleted
explicitly when the domain stops (``release``), and on daemon restart for
domains that ended while no daemon watched.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

from ..errors import HostError, InvalidArgument
from . import links

VHOST_NET = "/dev/vhost-net"
TAP_PATTERN = "vnet%d"
RESERVED_PREFIXES = ("vnet", "macvtap", "macvlan")  # kernel-allocated names: a user may not pick them
MACVTAP_MODES = {"bridge": "bridge", "vepa": "vepa", "private": "private", "passthrough": "passthru"}


@dataclass(frozen=True)
class Attachment:
    """Where a NIC's host side goes, resolved from its type and (for type network) the network."""

    kind: str  # "bridge" | "macvtap" | "none"
    bridge: str | None = None
    dev: str | None = None  # macvtap lower device
    mode: str = "vepa"  # macvtap mode (libvirt's default for type direct is vepa)
    mtu: int | None = None


@dataclass
class Port:
    """An opened host side: its interface name and the fds QEMU will inherit."""

    ifname: str
    kind: str  # "tap" | "macvtap"
    taps: list[int]
    vhost: list[int] = field(default_factory=list)

    def close_fds(self) -> None:
        """Drop the daemon's copies (after QEMU inherited them, or on failure)."""
        for fd in (*self.taps, *self.vhost):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.taps, self.vhost = [], []


def guest_side_mac(mac: str) -> str:
    """The tap's own MAC: the guest's with the first byte 0xfe, so the bridge never takes the guest's MAC."""
    return "fe" + mac[2:]


def open_vhost(queues: int, who: str) -> list[int]:
    if not os.path.exists(VHOST_NET):
        raise HostError(f"{who}: <driver name='vhost'/> needs {VHOST_NET}, which this host does not have "
                        "(try `modprobe vhost_net`); remove the driver name to use QEMU's own backend")
    return [os.open(VHOST_NET, os.O_RDWR) for _ in range(queues)]


def open_port(*, mac: str, target: str | None, att: Attachment, queues: int, vhost: bool, who: str,
              owner: int | None = None) -> Port:
    """Open the host side of one NIC; on failure nothing is left behind."""
    port: Port | None = None
    try:
        if att.kind == "macvtap":
            if att.dev is None or not links.link_exists(att.dev):
                raise InvalidArgument(f"{who}: host device '{att.dev}' does not exist; "
                                      "check the <source dev=...> (or the network's <forward dev=...>)")
            name, index = links.create_macvtap(att.dev, mode=MACVTAP_MODES.get(att.mode, att.mode), mac=mac)
            port = Port(name, "macvtap", [])
            port.taps = links.open_macvtap(index, queues=queues)
        else:
            name_req = target if target and not target.startswith(RESERVED_PREFIXES) else TAP_PATTERN
            name, fds = links.open_tap(name_req, queues=queues, vnet_hdr=True, owner=owner)
            port = Port(name, "tap", fds)
            if att.kind == "bridge":
                assert att.bridge is not None
                links.plug_into_bridge(name, att.bridge, mtu=att.mtu, mac=guest_side_mac(mac))
            else:
                links.bring_up(name, mac=guest_side_mac(mac), mtu=att.mtu)
        if vhost:
            port.vhost = open_vhost(queues, who)
        return port
    except BaseException:
        if port is not None:
            port.close_fds()
            release(port.ifname, port.kind)
        raise


def release(ifname: str | None, kind: str) -> None:
    """Remove what outlives QEMU: macvtap links (taps vanish with their last fd)."""
    if ifname and kind == "macvtap":
        with contextlib.suppress(HostError):
            links.delete_link(ifname)
