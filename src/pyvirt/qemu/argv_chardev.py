"""Serial ports, consoles and channels: a -chardev (host side) plus a -device (guest side).

The daemon owns the interactive console: the first serial port (or, with no
serial port, the first console) of type pty becomes a unix socket at
``ctx.serial_socket`` that the daemon serves to ``pyvirt console``, with
everything the guest prints also appended to ``ctx.serial_log``. QEMU has no
pty we could hand out from a daemon anyway. Other pty devices become unix
sockets under ``ctx.channel_dir`` (a note says so).

As in libvirt, console 0 with target type serial is the same device as
serial 0; it only creates a port when the domain has no <serial>.
"""
from __future__ import annotations

import posixpath
from dataclasses import replace

from ..errors import InvalidArgument, UnsupportedConfig
from ..model.domain import CharDev
from .argv_common import Build, parse_int, pci_placement
from .argv_render import KeyVal, Option, Value, kv

SERIAL_MODELS = ("isa-serial", "pci-serial")


def _socket_path(b: Build, dev: CharDev, alias: str) -> str:
    return dev.source_path or posixpath.join(b.ctx.channel_dir, dev.target_name or alias)


def _log_props(b: Build, dev: CharDev, primary: bool) -> tuple[tuple[str, Value], ...]:
    logfile = dev.log_file or (b.ctx.serial_log if primary and dev.type == "pty" else None)
    if logfile is None:
        return ()
    return (("logfile", b.host_path(logfile)),
            ("logappend", dev.log_append if dev.log_append is not None else True))


def backend(b: Build, dev: CharDev, cid: str, alias: str, primary: bool = False) -> Option:
    """The -chardev for one device; ``primary`` marks the daemon's console."""
    logs = _log_props(b, dev, primary)
    if dev.type == "pty":
        if primary:
            path = b.ctx.serial_socket
        else:
            path = posixpath.join(b.ctx.channel_dir, alias)
            b.note(f"{alias}: a pty is served as the unix socket {path}")
        return Option("-chardev", kv("socket", ("id", cid), ("path", path), ("server", True), ("wait", False), *logs))
    if dev.type == "unix":
        server = dev.source_mode != "connect"
        path = _socket_path(b, dev, alias)
        listening = b.ctx.socket_fds.get(path) if server else None  # a socket the daemon bound for QEMU
        where = ("fd", listening) if listening is not None else ("path", path)
        return Option(
            "-chardev",
            kv(
                "socket",
                ("id", cid),
                where,
                ("server", server),
                ("wait", False if server else None),
                *logs,
            ),
        )
    if dev.type == "file":
        if not dev.source_path:
            raise InvalidArgument(f"{alias}: type 'file' needs <source path=.../>")
        return Option("-chardev", kv("file", ("id", cid), ("path", b.host_path(dev.source_path)), *logs))
    if dev.type == "null":
        return Option("-chardev", kv("null", ("id", cid), *logs))
    if dev.type == "spicevmc":
        need_spice(b, f"{alias} (type spicevmc)")
        return Option("-chardev", kv("spicevmc", ("id", cid), ("name", "vdagent")))
    raise UnsupportedConfig(
        f"{alias}: character device type '{dev.type}' is not supported; use pty, unix, file or null")


def need_spice(b: Build, what: str) -> None:
    """SPICE parts need both QEMU's SPICE support and a <graphics type='spice'>."""
    if not b.ctx.has_spice:
        raise UnsupportedConfig(
            f"{what} needs SPICE, and this host's QEMU has no SPICE support; install it (Debian 12: the "
            "ui-spice-core module of qemu-system-common; Debian 13 and later: qemu-system-modules-spice) "
            "or remove the SPICE parts and use <graphics type='vnc'/>"
        )
    if not any(g.type == "spice" for g in b.domain.devices.graphics):
        raise UnsupportedConfig(f"{what} needs <graphics type='spice'/> in the domain")


def serial_and_console_lists(b: Build) -> tuple[list[CharDev], list[tuple[int, CharDev]]]:
    """Serial ports to create, and (index, console) pairs that need their own device."""
    serials = list(b.domain.devices.serials)
    consoles = list(enumerate(b.domain.devices.consoles))
    if consoles and consoles[0][1].target_type in (None, "serial"):
        if not serials:
            serials = [replace(consoles[0][1], kind="serial", target_port=0)]
        consoles = consoles[1:]
    for idx, con in consoles:
        if con.target_type != "virtio":
            raise UnsupportedConfig(
                f"console {idx}: target type '{con.target_type}' is only valid for the first console; "
                "use <target type='virtio'/> or a <serial>"
            )
    return serials, consoles


def chardev_options(b: Build) -> list[Option]:
    serials, consoles = serial_and_console_lists(b)
    out: list[Option] = []
    for i, dev in enumerate(serials):
        out += _serial(b, i, dev, primary=i == 0)
    for n, (idx, con) in enumerate(consoles):
        alias = f"console{idx}"
        out.append(backend(b, con, f"char{alias}", alias, primary=not serials and n == 0))
        device = kv("virtconsole", *_vserial_bus(b, con, alias), ("chardev", f"char{alias}"), ("id", alias))
        out.append(Option("-device", device))
    out += _channels(b)
    return out


def _serial(b: Build, i: int, dev: CharDev, primary: bool) -> list[Option]:
    alias = f"serial{i}"
    model = dev.target_model or ("pci-serial" if dev.target_type == "pci-serial" else "isa-serial")
    if dev.target_type not in (None, "isa-serial", "serial", "pci-serial") or model not in SERIAL_MODELS:
        raise UnsupportedConfig(f"{alias}: target '{dev.target_type or model}' is not supported; use isa-serial")
    if model == "pci-serial":
        b.need_pci(f"{alias} (pci-serial)")
        guest = kv("pci-serial", ("chardev", f"char{alias}"), ("id", alias), *pci_placement(b, dev.address, alias))
    else:
        port = dev.target_port
        if port is not None and not 0 <= port <= 3:
            raise InvalidArgument(f"{alias}: an ISA serial port number is 0..3, got {port}")
        guest = kv("isa-serial", ("chardev", f"char{alias}"), ("id", alias), ("index", port))
    return [backend(b, dev, f"char{alias}", alias, primary), Option("-device", guest)]


def _vserial_bus(b: Build, dev: CharDev, alias: str) -> tuple[tuple[str, Value], ...]:
    addr = dev.address
    if addr is None:
        return (("bus", "virtio-serial0.0"),)
    if addr.type != "virtio-serial":
        raise UnsupportedConfig(f"{alias}: address type '{addr.type}' does not fit; use type='virtio-serial'")
    ctrl = parse_int(addr.get("controller"), f"{alias} address controller")
    bus = parse_int(addr.get("bus"), f"{alias} address bus")
    if ctrl != 0 and not any(c.type == "virtio-serial" and c.index == ctrl for c in b.domain.devices.controllers):
        raise InvalidArgument(f"{alias}: there is no virtio-serial controller with index {ctrl}")
    return (("bus", f"virtio-serial{ctrl}.{bus}"),)


def _channels(b: Build) -> list[Option]:
    """Guest agent and other virtio channels; port numbers count from 1 (0 is the console's)."""
    used: set[tuple[str, int]] = set()
    chans = list(enumerate(b.domain.devices.channels))
    wanted: dict[int, int] = {}
    for i, ch in chans:
        if ch.target_type not in (None, "virtio"):
            raise UnsupportedConfig(f"channel{i}: target type '{ch.target_type}' is not supported; use virtio")
        if ch.address is not None and ch.address.get("port") is not None:
            bus = _vserial_bus(b, ch, f"channel{i}")[0][1]
            port = parse_int(ch.address.get("port"), f"channel{i} address port")
            if port < 1 or (str(bus), port) in used:
                raise InvalidArgument(f"channel{i}: virtio-serial port {port} is reserved or taken; use a port from 1")
            used.add((str(bus), port))
            wanted[i] = port
    out: list[Option] = []
    for i, ch in chans:
        alias = f"channel{i}"
        bus_props = _vserial_bus(b, ch, alias)
        bus = str(bus_props[0][1])
        if i not in wanted:
            port = 1
            while (bus, port) in used:
                port += 1
            used.add((bus, port))
            wanted[i] = port
        name = ch.target_name
        if name is None and ch.type == "spicevmc":
            name = "com.redhat.spice.0"
        if name is None:
            raise InvalidArgument(f"{alias}: a virtio channel needs <target type='virtio' name=.../>")
        out.append(backend(b, ch, f"char{alias}", alias))
        guest: KeyVal = kv(
            "virtserialport", *bus_props, ("nr", wanted[i]), ("chardev", f"char{alias}"), ("id", alias), ("name", name)
        )
        out.append(Option("-device", guest))
    return out
