"""Host links for virtual networks and guest NICs: bridges, taps, macvtaps, over netlink.

Links are made and changed through pyroute2 (netlink), never by running
``ip``. Taps and macvtap queues are opened with the tun ioctls instead: QEMU
gets the file descriptors, and only an ioctl on ``/dev/net/tun`` returns them.

The two kinds of guest NIC device live differently:

* a tap made here is not persistent: it exists while an fd to it is open and
  the kernel removes it when the last one closes, that is when QEMU exits.
  A crashed QEMU or daemon therefore cannot leak a tap;
* a macvtap link is a netlink object that outlives its fds: whoever made it
  deletes it (``delete_link``) after QEMU is gone.

pyroute2's sync ``IPRoute`` refuses to run in a thread whose asyncio loop is
running, so every netlink function here hops to a worker thread when called
from the daemon's loop (``_off_loop``); from plain threads it runs in place.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import functools
import ipaddress
import os
import re
import stat
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..errors import AlreadyExists, HostError, InvalidArgument, NotFound, PyvirtError

IFNAMSIZ = 16  # the kernel's limit includes the trailing NUL: names have at most 15 bytes
TUN_DEVICE = "/dev/net/tun"
DEV_DIR = "/dev"
MACVTAP_CLASS = "/sys/class/macvtap"
MACVTAP_PREFIX = "macvtap"
MAIN_TABLE = 254

# linux/if_tun.h
TUNSETIFF = 0x400454CA
TUNSETOWNER = 0x400454CC
TUNGETIFF = 0x800454D2
IFF_TAP = 0x0002
IFF_MULTI_QUEUE = 0x0100
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_TUN_EXCL = 0x8000
IFREQ = struct.Struct("16sH22x")  # struct ifreq: name, then ifr_flags in the 24-byte union

IFF_UP = 0x1  # linux/if.h
IFA_F_NODAD = 0x02  # linux/if_addr.h
MIN_MTU, MAX_MTU = 68, 65535  # ETH_MIN_MTU, and the most a bridge or tap takes
USER_HZ = 100  # IFLA_BR_FORWARD_DELAY is in clock_t (centiseconds)

MACVTAP_MODES = ("bridge", "vepa", "private", "passthru")
MACVTAP_ALIASES = {"passthrough": "passthru"}  # libvirt's spelling -> the kernel's

# libvirt's domifstat names -> the kernel's rtnl_link_stats64 fields
STATS_NAMES = {
    "rx_bytes": "rx_bytes", "rx_packets": "rx_packets", "rx_errs": "rx_errors", "rx_drop": "rx_dropped",
    "tx_bytes": "tx_bytes", "tx_packets": "tx_packets", "tx_errs": "tx_errors", "tx_drop": "tx_dropped",
}

_P = ParamSpec("_P")
_R = TypeVar("_R")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


# --------------------------------------------------------------- pure helpers
def check_ifname(name: str, *, pattern: bool = False) -> None:
    """Refuse a name the kernel would refuse, with a message instead of an errno.

    ``pattern`` allows one ``%d`` that the kernel replaces by the lowest free number.
    """
    shown = name.replace("%d", "0") if pattern and name.count("%d") == 1 else name
    bad = (not name or len(shown.encode()) >= IFNAMSIZ or name in (".", "..")
           or any(c in name for c in "/:") or any(c.isspace() for c in name)
           or ("%" in shown))
    if bad:
        raise InvalidArgument(f"'{name}' is not a valid interface name: use 1 to {IFNAMSIZ - 1} characters "
                              "without '/', ':', '%' or spaces")


def _valid_name(name: str) -> bool:
    try:
        check_ifname(name)
    except InvalidArgument:
        return False
    return True


def next_free_name(prefix: str, taken: Iterable[str]) -> str:
    """``prefix`` + the lowest number no link uses (macvtap0, macvtap1, ...), as libvirt picks them."""
    used = {int(m.group(1)) for n in taken if (m := re.fullmatch(re.escape(prefix) + r"(\d+)", n))}
    number = 0
    while number in used:
        number += 1
    return f"{prefix}{number}"


def tap_flags(*, queues: int, vnet_hdr: bool) -> int:
    """TUNSETIFF flags for a guest tap: Ethernet frames without the packet-info header."""
    flags = IFF_TAP | IFF_NO_PI
    if vnet_hdr:
        flags |= IFF_VNET_HDR
    if queues > 1:
        flags |= IFF_MULTI_QUEUE
    return flags


def pack_ifreq(name: str, flags: int) -> bytes:
    return IFREQ.pack(name.encode(), flags)


def unpack_ifreq(data: bytes) -> tuple[str, int]:
    raw, flags = IFREQ.unpack(data)
    return raw.split(b"\0", 1)[0].decode(), flags


def macvtap_mode(mode: str) -> str:
    """The kernel's name of a macvtap mode; libvirt's 'passthrough' is the kernel's 'passthru'."""
    mode = MACVTAP_ALIASES.get(mode, mode)
    if mode not in MACVTAP_MODES:
        raise InvalidArgument(f"macvtap mode '{mode}' is not supported; use one of bridge, vepa, private, "
                              "passthrough")
    return mode


def stats_from(stats64: dict[str, int] | None) -> dict[str, int]:
    """libvirt-named counters (rx_bytes, rx_errs, ...) from IFLA_STATS64, as the link itself counts them."""
    stats64 = stats64 or {}
    return {ours: int(stats64.get(kernel, 0)) for ours, kernel in STATS_NAMES.items()}


def check_mac(mac: str, who: str) -> None:
    if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", mac):
        raise InvalidArgument(f"{who}: '{mac}' is not a MAC address; write six hex bytes like 52:54:00:12:34:56")


def check_mtu(mtu: int, who: str) -> None:
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise InvalidArgument(f"{who}: MTU {mtu} is out of range; use {MIN_MTU} to {MAX_MTU}")


def parse_interface(address: str, prefix: int, who: str) -> Interface:
    try:
        return ipaddress.ip_interface(f"{address}/{int(prefix)}")
    except (TypeError, ValueError):
        raise InvalidArgument(f"{who}: '{address}/{prefix}' is not a valid IPv4 or IPv6 address with "
                              "prefix length") from None


def ignored_network(net: Network) -> bool:
    """Networks that never clash with a virtual network's subnet: default, link-local, loopback, multicast."""
    return net.prefixlen == 0 or net.is_link_local or net.is_loopback or net.is_multicast


# ----------------------------------------------------------- netlink plumbing
@functools.cache
def _worker() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyvirt-netlink")


def _off_loop(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``func`` in a worker thread when called from a running asyncio loop (pyroute2 cannot run there)."""
    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return func(*args, **kwargs)
        return _worker().submit(func, *args, **kwargs).result()
    return wrapper


def _error(what: str, code: int) -> PyvirtError:
    if code == errno.EEXIST:
        return AlreadyExists(f"{what}: it already exists")
    if code == errno.ENODEV:
        return NotFound(f"{what}: no such device")
    if code in (errno.EPERM, errno.EACCES):
        return HostError(f"{what}: permission denied; pyvirtd needs root (CAP_NET_ADMIN)")
    return HostError(f"{what}: {os.strerror(code)}")


@contextlib.contextmanager
def _netlink(what: str) -> Iterator[IPRoute]:
    """One netlink socket for one operation; the kernel's refusals become errors that say what failed."""
    try:
        with IPRoute() as ipr:
            yield ipr
    except NetlinkError as exc:
        raise _error(what, exc.code) from exc
    except OSError as exc:
        raise _error(what, exc.errno or errno.EIO) from exc


def _get(ipr: IPRoute, name: str) -> Any | None:
    """The link's RTM_NEWLINK message, or None when no link has that name."""
    if not _valid_name(name):
        return None
    try:
        return ipr.link("get", ifname=name)[0]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise


def _require(ipr: IPRoute, name: str, who: str) -> Any:
    link = _get(ipr, name)
    if link is None:
        raise NotFound(f"{who}: no link named '{name}' on the host")
    return link


def _kind(link: Any) -> str:
    return link.get(("linkinfo", "kind")) or "device"


def _in_use(who: str, name: str, kind: str) -> AlreadyExists:
    return AlreadyExists(f"{who}: a {kind} link named '{name}' already exists on the host; choose another name "
                         "or remove that link")


def _check_settings(who: str, mac: str | None, mtu: int | None) -> None:
    if mac:
        check_mac(mac, who)
    if mtu:
        check_mtu(mtu, who)


def _add_address(ipr: IPRoute, index: int, iface: Interface, who: str) -> None:
    """IPv4 with its broadcast address; IPv6 with nodad: a bridge without ports has no carrier, DAD would
    leave the address tentative and dnsmasq could not bind to it (libvirt does the same)."""
    args: dict[str, Any] = {"index": index, "address": str(iface.ip), "prefixlen": iface.network.prefixlen}
    if iface.version == 4 and iface.network.prefixlen < 31:
        args["broadcast"] = str(iface.network.broadcast_address)
    elif iface.version == 6:
        args["flags"] = IFA_F_NODAD
    try:
        ipr.addr("add", **args)
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:  # the link is new: the address was given twice
            raise AlreadyExists(f"{who}: address {iface} is given twice; list each address once") from exc
        raise _error(f"{who}: address {iface}", exc.code) from exc


# ---------------------------------------------------------------- bridges
@_off_loop
def create_bridge(name: str, *, mac: str | None, mtu: int | None, stp: bool, delay: int,
                  addresses: list[tuple[str, int]]) -> None:
    """Create bridge ``name`` with its settings and addresses, up; all or nothing.

    ``delay`` is libvirt's forward delay in seconds; while STP runs the kernel
    keeps it within 2..30 s. The MTU is set after creation, as a user change,
    so the bridge keeps it when ports with other MTUs join.
    """
    check_ifname(name)
    who = f"cannot create bridge '{name}'"
    if delay < 0:
        raise InvalidArgument(f"{who}: forward delay {delay} is negative; use 0 or more seconds")
    ifaces = [parse_interface(a, p, who) for a, p in addresses]
    _check_settings(who, mac, mtu)
    attrs: dict[str, Any] = {"ifname": name, "kind": "bridge", "br_stp_state": int(stp),
                             "br_forward_delay": delay * USER_HZ}
    if mac:
        attrs["address"] = mac
    with _netlink(who) as ipr:
        if (existing := _get(ipr, name)) is not None:
            raise _in_use(who, name, _kind(existing))
        try:
            ipr.link("add", **attrs)
        except NetlinkError as exc:
            if exc.code == errno.EEXIST:
                raise _in_use(who, name, _kind(_get(ipr, name) or {})) from exc
            raise
        index = _require(ipr, name, who)["index"]
        try:
            if mtu:
                ipr.link("set", index=index, mtu=mtu)
            for iface in ifaces:
                _add_address(ipr, index, iface, who)
            ipr.link("set", index=index, state="up")
        except BaseException:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=index)
            raise


@_off_loop
def bridge_ports(bridge: str) -> list[str]:
    """Names of the links enslaved to ``bridge``."""
    with _netlink(f"cannot list the ports of bridge '{bridge}'") as ipr:
        index = _require(ipr, bridge, "cannot list bridge ports")["index"]
        return sorted(link.get("ifname") for link in ipr.get_links() if link.get("master") == index)


@_off_loop
def plug_into_bridge(ifname: str, bridge: str, *, mtu: int | None = None, mac: str | None = None) -> None:
    """Enslave ``ifname`` to ``bridge`` and bring it up; its MTU follows the bridge's unless given.

    For a guest tap ``mac`` is the guest's MAC with first byte 0xfe: the bridge
    takes the lowest port MAC as its own unless set, and must never take the guest's.
    """
    who = f"cannot plug '{ifname}' into bridge '{bridge}'"
    _check_settings(who, mac, mtu)
    with _netlink(who) as ipr:
        port = _require(ipr, ifname, who)["index"]
        br = _require(ipr, bridge, who)
        if _kind(br) != "bridge":
            raise InvalidArgument(f"{who}: '{bridge}' is a {_kind(br)} link, not a bridge")
        settings: dict[str, Any] = {"mtu": mtu or br.get("mtu")}
        if mac:
            settings["address"] = mac
        ipr.link("set", index=port, **settings)
        ipr.link("set", index=port, master=br["index"])
        ipr.link("set", index=port, state="up")


# ------------------------------------------------------------- any link
@_off_loop
def link_exists(name: str) -> bool:
    with _netlink(f"cannot look up link '{name}'") as ipr:
        return _get(ipr, name) is not None


@_off_loop
def link_kind(name: str) -> str | None:
    """Its kind: "bridge", "tun", "macvtap", "veth", ...; "device" when it has none (a NIC, lo); None if absent."""
    with _netlink(f"cannot look up link '{name}'") as ipr:
        link = _get(ipr, name)
        return None if link is None else _kind(link)


@_off_loop
def link_mtu(name: str) -> int:
    with _netlink(f"cannot look up link '{name}'") as ipr:
        return int(_require(ipr, name, "cannot read the MTU").get("mtu"))


@_off_loop
def link_stats(name: str) -> dict[str, int]:
    """Traffic counters as the link counts them (for a guest tap, its rx is what the guest sent)."""
    with _netlink(f"cannot read the counters of link '{name}'") as ipr:
        return stats_from(_require(ipr, name, "cannot read link counters").get("stats64"))


@_off_loop
def link_names(prefix: str) -> list[str]:
    """All links whose name starts with ``prefix`` (vnet taps, leftovers to clean up)."""
    with _netlink("cannot list the host's links") as ipr:
        return sorted(n for link in ipr.get_links() if (n := link.get("ifname", "")).startswith(prefix))


@_off_loop
def delete_link(name: str) -> bool:
    """Delete link ``name``; False when there was none (deleting is idempotent)."""
    with _netlink(f"cannot delete link '{name}'") as ipr:
        link = _get(ipr, name)
        if link is None:
            return False
        try:
            ipr.link("del", index=link["index"])
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise
        return True


@_off_loop
def set_link_up(name: str, up: bool) -> None:
    with _netlink(f"cannot set link '{name}' {'up' if up else 'down'}") as ipr:
        index = _require(ipr, name, "cannot change link state")["index"]
        ipr.link("set", index=index, state="up" if up else "down")


@_off_loop
def bring_up(ifname: str, mac: str | None = None, mtu: int | None = None) -> None:
    """Set a tap's MAC/MTU and bring it up without a bridge (type ethernet, unplugged NICs)."""
    who = f"cannot bring up '{ifname}'"
    _check_settings(who, mac, mtu)
    with _netlink(who) as ipr:
        index = _require(ipr, ifname, who)["index"]
        settings: dict[str, Any] = {}
        if mac:
            settings["address"] = mac
        if mtu:
            settings["mtu"] = mtu
        if settings:
            ipr.link("set", index=index, **settings)
        ipr.link("set", index=index, state="up")


# ------------------------------------------------------------------ taps
def _tap_error(name: str, exc: OSError) -> PyvirtError:
    who = f"cannot create tap '{name}'"
    if exc.errno in (errno.EBUSY, errno.EINVAL) and "%" not in name:
        kind = link_kind(name)
        if kind is not None:
            return _in_use(who, name, kind)
    if exc.errno == errno.ENOENT:
        return HostError(f"{who}: {TUN_DEVICE} is missing; load the tun module (`modprobe tun`)")
    return _error(who, exc.errno or errno.EIO)


def open_tap(name: str = "vnet%d", *, queues: int = 1, vnet_hdr: bool = True,
             owner: int | None = None) -> tuple[str, list[int]]:
    """Create a tap with ``queues`` queues; return its name (the kernel fills ``%d``) and one fd per queue.

    The tap is not persistent: it disappears when its last fd closes, i.e.
    when QEMU, which inherits the fds, exits. That is why taps cannot leak.
    The fds are close-on-exec; pass them on with ``pass_fds``. An existing
    link of the same name is never taken over (IFF_TUN_EXCL).
    """
    check_ifname(name, pattern=True)
    if queues < 1:
        raise InvalidArgument(f"cannot create tap '{name}': {queues} queues; use 1 or more")
    flags = tap_flags(queues=queues, vnet_hdr=vnet_hdr)
    fds: list[int] = []
    try:
        for queue in range(queues):
            try:
                fds.append(os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC))
                # the first queue creates the device; the others attach to the name it got
                request = pack_ifreq(name, flags | (IFF_TUN_EXCL if queue == 0 else 0))
                name = unpack_ifreq(fcntl.ioctl(fds[-1], TUNSETIFF, request))[0]
            except OSError as exc:
                raise _tap_error(name, exc) from exc
        if owner is not None:
            try:
                fcntl.ioctl(fds[0], TUNSETOWNER, owner)
            except OSError as exc:
                raise _error(f"cannot give tap '{name}' to uid {owner}", exc.errno or errno.EIO) from exc
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return name, fds


def tap_fd_info(fd: int) -> tuple[str, int]:
    """(interface name, TUN flags) of an open tap or macvtap fd (TUNGETIFF)."""
    return unpack_ifreq(fcntl.ioctl(fd, TUNGETIFF, pack_ifreq("", 0)))


# --------------------------------------------------------------- macvtap
@_off_loop
def create_macvtap(dev: str, *, mode: str, mac: str, name: str | None = None) -> tuple[str, int]:
    """Create a macvtap link over ``dev`` with the guest's MAC, up; return (name, ifindex).

    Without ``name`` it is macvtapN with the lowest free N. The link outlives
    QEMU's fds: the caller deletes it (``delete_link``) when the guest is gone.
    """
    kernel_mode = macvtap_mode(mode)
    who = f"cannot create a macvtap link over '{dev}'"
    check_mac(mac, who)
    if name is not None:
        check_ifname(name)
    with _netlink(who) as ipr:
        lower = _require(ipr, dev, who)["index"]
        try:
            chosen = _add_macvtap(ipr, who, name, lower=lower, mode=kernel_mode, mac=mac)
        except NetlinkError as exc:
            raise _macvtap_refused(ipr, who, dev, lower, mac, exc) from exc
        index = _require(ipr, chosen, who)["index"]
        try:
            ipr.link("set", index=index, state="up")  # the kernel checks the MAC against its neighbours here
        except BaseException as exc:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=index)
            if isinstance(exc, NetlinkError):
                raise _macvtap_refused(ipr, who, dev, lower, mac, exc) from exc
            raise
        return chosen, index


def _add_macvtap(ipr: IPRoute, who: str, name: str | None, *, lower: int, mode: str, mac: str) -> str:
    for _ in range(32):  # another process may take the name we picked: pick again
        chosen = name or next_free_name(MACVTAP_PREFIX, (link.get("ifname", "") for link in ipr.get_links()))
        try:
            ipr.link("add", ifname=chosen, kind="macvtap", link=lower, macvtap_mode=mode, address=mac)
            return chosen
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
            if name is not None:
                raise _in_use(who, name, _kind(_get(ipr, name) or {})) from exc
    raise HostError(f"{who}: no free macvtap name found; remove unused macvtap links")


def _macvtap_refused(ipr: IPRoute, who: str, dev: str, lower: int, mac: str, exc: NetlinkError) -> PyvirtError:
    if exc.code == errno.EADDRINUSE:
        return AlreadyExists(f"{who}: MAC {mac} is already used by another macvtap/macvlan link on '{dev}'; "
                             "give the interface another MAC")
    if exc.code == errno.EINVAL:
        others = sorted(link.get("ifname") for link in ipr.get_links()
                        if link.get("link") == lower and _kind(link) in ("macvtap", "macvlan"))
        if others:
            return HostError(f"{who}: the kernel refused it while '{dev}' carries {', '.join(others)}; "
                             "a passthrough macvtap needs its device to itself")
    return _error(who, exc.code)


def ensure_char_node(path: str, major: int, minor: int) -> None:
    """Make ``path`` the character device major:minor (replacing a stale node of a former ifindex)."""
    rdev = os.makedev(major, minor)
    with contextlib.suppress(FileNotFoundError):
        st = os.stat(path)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == rdev:
            return
        os.unlink(path)
    os.mknod(path, stat.S_IFCHR | 0o600, rdev)


def macvtap_node(ifindex: int, dev_dir: str = DEV_DIR) -> str:
    """/dev/tapN of macvtap link ``ifindex``, created if missing.

    devtmpfs or udev usually creates the node; pyvirt does not count on
    either (there is no udev here), reads major:minor from sysfs and makes it.
    """
    sysfs = f"{MACVTAP_CLASS}/tap{ifindex}/dev"
    try:
        major, minor = (int(x) for x in Path(sysfs).read_text().strip().split(":"))
    except FileNotFoundError:
        raise NotFound(f"no macvtap link has ifindex {ifindex} ({sysfs} is missing)") from None
    path = f"{dev_dir}/tap{ifindex}"
    try:
        ensure_char_node(path, major, minor)
    except OSError as exc:
        raise HostError(f"cannot create {path} ({major}:{minor}) for the macvtap link: {exc.strerror}") from exc
    return path


def open_macvtap(ifindex: int, queues: int = 1, *, vnet_hdr: bool = True) -> list[int]:
    """Open ``queues`` fds on the macvtap link ``ifindex`` (each open of /dev/tapN is one queue).

    IFF_VNET_HDR is set (or cleared) explicitly as libvirt does; QEMU's
    ``-netdev tap,fd=...,vnet_hdr=on`` then sets the header size and offloads
    itself. The fds are close-on-exec; pass them on with ``pass_fds``.
    """
    if queues < 1:
        raise InvalidArgument(f"cannot open macvtap tap{ifindex}: {queues} queues; use 1 or more")
    path = macvtap_node(ifindex)
    fds: list[int] = []
    try:
        for _ in range(queues):
            fds.append(os.open(path, os.O_RDWR | os.O_CLOEXEC))
            _, flags = tap_fd_info(fds[-1])
            flags = (flags | IFF_VNET_HDR) if vnet_hdr else (flags & ~IFF_VNET_HDR)
            fcntl.ioctl(fds[-1], TUNSETIFF, pack_ifreq("", flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)))
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        raise HostError(f"cannot open {path} for macvtap link {ifindex}: {exc.strerror}") from exc
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds


# ------------------------------------------------------------ host subnets
def _route_text(route: Any, names: dict[int, str]) -> str:
    hops = route.get("multipath") or [route]
    parts = []
    for hop in hops:
        via = hop.get("gateway")
        dev = names.get(hop.get("oif"), "")
        parts.append(" ".join(p for p in (via and f"via {via}", dev and f"dev {dev}") if p))
    return ", ".join(p for p in parts if p)


@_off_loop
def host_subnets() -> list[tuple[Network, str]]:
    """Every network the host already reaches: its addresses' networks and the main table's prefix routes.

    Default routes, link-local and loopback are skipped. Used to refuse a
    virtual network whose subnet overlaps one of them.
    """
    found: list[tuple[Network, str]] = []
    with _netlink("cannot list the host's addresses and routes") as ipr:
        names = {link["index"]: link.get("ifname", "?") for link in ipr.get_links()}
        for addr in ipr.get_addr():
            ip = addr.get("local") or addr.get("address")
            if ip is None:
                continue
            iface = ipaddress.ip_interface(f"{ip}/{addr['prefixlen']}")
            if not ignored_network(iface.network):
                found.append((iface.network, f"address {iface} on {names.get(addr['index'], '?')}"))
        for route in ipr.get_routes(table=MAIN_TABLE):
            dst = route.get("dst")
            if dst is None or route.get("table") != MAIN_TABLE:
                continue
            net = ipaddress.ip_network(f"{dst}/{route['dst_len']}", strict=False)
            if not ignored_network(net):
                text = _route_text(route, names)
                found.append((net, f"route {net} {text}" if text else f"route {net}"))
    return found
