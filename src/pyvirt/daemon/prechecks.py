"""Checks the daemon makes itself before it starts QEMU, each with its own message.

QEMU's own errors are hard to act on ("could not open disk image"); we check
what we can first and say which check failed and what to do.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from ..config import Paths, socket_path_problem
from ..errors import HostError, InvalidArgument
from ..host.node import NodeFs
from ..model.domain import CharDev, Disk, Domain


def read_meminfo() -> dict[str, int]:
    """/proc/meminfo as KiB values."""
    out: dict[str, int] = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0])
    return out


def check_memory_fits_host(domain: Domain) -> None:
    """At define: a guest larger than all of the host's RAM can never start."""
    total = read_meminfo()["MemTotal"]
    for label, kib in (("memory", domain.memory_kib), ("maxMemory", domain.max_memory_kib or 0)):
        if kib > total:
            raise InvalidArgument(
                f"domain '{domain.name}': <{label}> is {kib} KiB but this host has only {total} KiB of RAM; "
                "lower the guest's memory"
            )


def check_memory_available(domain: Domain) -> None:
    """At start: refuse a guest that would not fit in what the host has free now."""
    if domain.memory_backing is not None and domain.memory_backing.hugepages:
        check_hugepages(domain)  # its RAM comes from the reserved pool, already out of MemAvailable
        return
    info = read_meminfo()
    available = info.get("MemAvailable", info["MemFree"])
    need = domain.effective_memory_kib
    if need > available:
        raise HostError(
            f"cannot start domain '{domain.name}': it needs {need} KiB of memory but the host has only "
            f"{available} KiB available; stop other guests or lower <currentMemory>"
        )


def check_hugepages(domain: Domain, node: NodeFs | None = None) -> None:
    """A guest with <memoryBacking><hugepages/> needs its whole memory free in the pool of its page size."""
    node = node or NodeFs()
    backing = domain.memory_backing
    assert backing is not None
    size = backing.hugepage_size_kib or node.meminfo().get("Hugepagesize", 2048)
    pool = next((p for p in node.host_pools() if p.size_kib == size), None)
    if pool is None:
        sizes = ", ".join(f"{p.size_kib} KiB" for p in node.host_pools()) or "none"
        raise HostError(f"cannot start domain '{domain.name}': it wants huge pages of {size} KiB, which this host "
                        f"does not have (sizes here: {sizes}); change <page size> in <memoryBacking>")
    need = -(-domain.memory_kib // size)
    if pool.free < need:
        have = "none are reserved" if pool.total == 0 else f"the pool has {pool.free} free (of {pool.total})"
        raise HostError(
            f"cannot start domain '{domain.name}': it needs {need} huge pages of {size} KiB for its "
            f"{domain.memory_kib} KiB of memory but {have}; reserve them with `pyvirt allocpages {size} "
            f"{pool.total - pool.free + need}`, or remove <hugepages/> from <memoryBacking>")


def _check_readable(domain: Domain, what: str, path: str | None) -> None:
    if not path:
        return
    p = Path(path)
    if not p.exists():
        raise InvalidArgument(
            f"cannot start domain '{domain.name}': {what} '{path}' does not exist; fix the path with "
            f"`pyvirt edit {domain.name}`"
        )
    if not os.access(p, os.R_OK):
        raise HostError(
            f"cannot start domain '{domain.name}': {what} '{path}' is not readable by the user QEMU runs as "
            f"(uid {os.geteuid()}); fix its permissions"
        )


def check_paths(domain: Domain) -> None:
    """Before start: every path QEMU opens exists with the right kind and permissions.

    A volume disk has no path in the definition: the daemon checks it once it
    has resolved the volume (``check_disk_source`` from daemon/disks.py).
    """
    os_ = domain.os
    _check_readable(domain, "emulator", domain.devices.emulator)
    _check_readable(domain, "kernel", os_.kernel)
    _check_readable(domain, "initrd", os_.initrd)
    if os_.loader is not None:
        _check_readable(domain, "loader", os_.loader.path)
    for disk in domain.devices.disks:
        check_disk_source(disk, f"cannot start domain '{domain.name}'", f"pyvirt edit {domain.name}")


def check_disk_source(disk: Disk, doing: str, fix: str = "") -> None:
    """The disk's path exists, is a file or a block device as its type says, and can be opened as it will be.

    ``doing`` starts the message ("cannot start domain 'x'"); ``fix`` is the command that fixes the path.
    """
    path = disk.source
    if not path:
        return
    what = f"disk {disk.target_dev} source '{path}'"
    if disk.source_type == "volume":
        what = f"disk {disk.target_dev} (volume '{disk.source_volume}' of pool '{disk.source_pool}') path '{path}'"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        how = f"; fix the path with `{fix}`" if fix else "; check the path"
        if disk.source_type == "volume":
            how = (f"; see `pyvirt vol-list {disk.source_pool}` (refresh the pool with `pyvirt pool-refresh "
                   f"{disk.source_pool}`)")
        raise InvalidArgument(f"{doing}: {what} does not exist{how}") from None
    except OSError as exc:
        raise HostError(f"{doing}: {what} cannot be read: {exc.strerror}") from None
    block = stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)
    if disk.source_type == "block" and not block:
        raise InvalidArgument(f"{doing}: {what} is not a block device; use <disk type='file'> with "
                              "<source file=...> for an image file")
    if disk.source_type == "file" and stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"{doing}: {what} is a block device; use <disk type='block'> with "
                              "<source dev=...> (attach-disk --sourcetype block)")
    if stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"{doing}: {what} is a directory, not an image or a block device")
    if not os.access(path, os.R_OK):
        raise HostError(f"{doing}: {what} is not readable by the user QEMU runs as (uid {os.geteuid()}); "
                        "fix its permissions")
    writes = not disk.readonly and disk.device != "cdrom"
    if writes and not os.access(path, os.W_OK):
        raise HostError(f"{doing}: {what} is not writable; fix its permissions or mark the disk <readonly/>")


def check_machine(domain: Domain, machine_names: set[str]) -> None:
    machine = domain.os.machine
    if machine and machine_names and machine not in machine_names:
        known = ", ".join(sorted(m for m in machine_names if "-" not in m or m.startswith(("pc-q35-7", "pc-i440fx-7"))))
        raise InvalidArgument(
            f"cannot start domain '{domain.name}': machine type '{machine}' is not supported by this QEMU; "
            f"use one of: {known}"
        )


def same_file(a: str, b: str) -> bool:
    """Do two paths name one file (hard links, symlinks, bind mounts)? Falls back to real paths."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_emulator(domain: Domain, allowed: tuple[str, ...], settings_file: Path) -> None:
    """<emulator> may only name a QEMU binary the host probe uses or the administrator allowed: the daemon
    starts it, and a definition must not be a way to run any program on the host."""
    wanted = domain.devices.emulator
    if wanted is None:
        return
    real = os.path.realpath(wanted)
    if any(real == os.path.realpath(a) for a in allowed):
        return
    raise InvalidArgument(
        f"domain '{domain.name}': <emulator> '{wanted}' is not a QEMU binary pyvirt runs; leave <emulator> out "
        f"(pyvirt uses {allowed[0]}), name one of {', '.join(allowed)}, or add it to `emulators` in "
        f"{settings_file}"
    )


ROOT_FIX = "start pyvirtd with a shorter --root"


def _chardev_sockets(domain: Domain, paths: Paths) -> list[tuple[str, str, str]]:
    """(which device, its unix socket path, how to shorten it) for every chardev socket.

    Mirrors qemu/argv_chardev.py: the first serial (or, with none, the first console) of type
    pty is the daemon's console socket; other ptys and unix devices without a path live in the
    domain's channel directory, under their channel name or alias.
    """
    channel_dir = paths.channel_dir(domain.uuid)
    devs = domain.devices
    groups: list[tuple[str, tuple[CharDev, ...]]] = [
        ("serial", devs.serials), ("console", devs.consoles), ("channel", devs.channels)]
    primary_kind = "serial" if devs.serials else "console"
    out = []
    for kind, items in groups:
        for i, dev in enumerate(items):
            alias = f"{kind}{i}"
            if dev.type == "pty" and kind == primary_kind and i == 0:
                out.append((alias, str(paths.serial_socket(domain.uuid)), ROOT_FIX))
            elif dev.type == "pty":
                out.append((alias, str(channel_dir / alias), ROOT_FIX))
            elif dev.type == "unix" and dev.source_path:
                out.append((alias, dev.source_path, "give it a shorter <source path=.../>"))
            elif dev.type == "unix" and dev.target_name:
                fix = (f"use a shorter channel name (<target name=.../>), give the {kind} a short "
                       f"<source path=.../>, or {ROOT_FIX}")
                out.append((f"{alias} ({dev.target_name})", str(channel_dir / dev.target_name), fix))
            elif dev.type == "unix":
                out.append((alias, str(channel_dir / alias), f"give it a short <source path=.../> or {ROOT_FIX}"))
    return out


def check_socket_paths(domain: Domain, paths: Paths) -> None:
    """Before start: every unix socket QEMU will bind fits in a socket address (107 bytes).

    QEMU would fail with "UNIX socket path ... is too long" after it bound its monitor;
    here the message names the socket, its length and what makes it long.
    """
    doing = f"cannot start domain '{domain.name}'"
    sockets = [("its QMP socket", str(paths.qmp_socket(domain.uuid)), ROOT_FIX),
               ("its VNC socket", str(paths.vnc_socket(domain.uuid)), ROOT_FIX)]
    sockets += [(f"its {g.type} socket", g.socket, "give <graphics> a shorter socket path")
                for g in domain.devices.graphics if g.socket]
    sockets += [(f"the unix socket of {label}", path, fix) for label, path, fix in _chardev_sockets(domain, paths)]
    for what, path, fix in sockets:
        if (problem := socket_path_problem(path, what)) is not None:
            raise InvalidArgument(f"{doing}: {problem}; {fix}")
