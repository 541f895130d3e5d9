"""Disks as -blockdev node pairs (protocol + format) and a front-end -device.

Like libvirt we never use -drive for disks: every image is a "storage" node
(file or host_device) under a "format" node (raw, qcow2), named
``libvirt-N-storage`` / ``libvirt-N-format`` with N the disk's position from 1,
so block jobs and media changes over QMP can address them by name
(``disk_names``). N is the disk's live ``source_index`` when it has one (the
daemon numbers disks at start and gives hot-plugged ones new numbers, so a
name never moves to another disk), else its position. A CD-ROM without a
source gets a front-end with no backend: QMP ``blockdev-insert-medium``
with the device id inserts one later.

A block disk (or a volume that resolved to a block device) uses the
host_device driver, a block CD-ROM host_cdrom. A volume disk must have been
resolved by the daemon (``source`` and ``volume_type`` set) before this runs.
The pieces hot-plug needs (``check_disk``, ``blockdev_props``,
``frontend``, ``device_add_props``) are public.

Cache modes map to libvirt's: cache.direct / cache.no-flush on both nodes
plus the device's write-cache (writethrough and directsync turn it off).

A copy-on-write format node always gets "backing": the disk's
``backing_chain`` inline (read-only), or null. QEMU never opens a backing file
because an image's header names it (see chains.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument, UnsupportedConfig
from ..model.domain import Disk, Domain
from ..model.storage import COW_FORMATS
from .argv_common import Build, Machine, boot_props, parse_int, pci_placement, target_index
from .argv_render import Json, KeyVal, Option, Value, kv
from .chains import backing_option

FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhdx", "qed")
# mode -> (cache.direct, cache.no-flush, write-cache)
CACHE_MODES = {
    "none": (True, False, True),
    "writeback": (False, False, True),
    "writethrough": (False, False, False),
    "directsync": (True, False, False),
    "unsafe": (False, True, True),
}
AIO_MODES = {"native": "native", "threads": "threads", "io_uring": "io_uring"}


@dataclass(frozen=True)
class DiskNames:
    """How QMP finds a disk: device id, and node names (None for an empty CD-ROM)."""

    target_dev: str
    device_id: str
    storage_node: str | None
    format_node: str | None


@dataclass(frozen=True)
class _Slot:
    """Where a disk's front-end sits: (controller, bus, target, unit) of a drive address."""

    controller: int
    bus: int
    target: int
    unit: int


def _slot(disk: Disk) -> _Slot:
    """The drive address, or libvirt's default for the target name (sdb -> unit 1)."""
    idx = target_index(disk.target_dev)
    if disk.bus == "ide":
        default = _Slot(0, idx // 2, 0, idx % 2)
    elif disk.bus == "sata":
        default = _Slot(idx // 6, 0, 0, idx % 6)
    else:
        default = _Slot(0, 0, 0, idx)
    addr = disk.address
    if addr is None or disk.bus == "virtio":
        return default
    if addr.type != "drive":
        raise UnsupportedConfig(
            f"disk {disk.target_dev}: address type '{addr.type}' does not fit bus '{disk.bus}'; use type='drive'"
        )
    who = f"disk {disk.target_dev} address"
    return _Slot(
        parse_int(addr.get("controller"), who, default.controller),
        parse_int(addr.get("bus"), who, default.bus),
        parse_int(addr.get("target"), who, default.target),
        parse_int(addr.get("unit"), who, default.unit),
    )


def device_id(disk: Disk) -> str:
    """The QEMU device id of a disk's front-end (virtio-disk1, sata0-0-2, scsi0-0-0-1)."""
    return _device_id(disk)


def _device_id(disk: Disk) -> str:
    if disk.bus == "virtio":
        return f"virtio-disk{target_index(disk.target_dev)}"
    s = _slot(disk)
    if disk.bus == "scsi":
        return f"scsi{s.controller}-{s.bus}-{s.target}-{s.unit}"
    return f"{disk.bus}{s.controller}-{s.bus}-{s.unit}"


def names_for(disk: Disk, n: int) -> DiskNames:
    """Device id and node names of ``disk`` with node number ``n`` (its source_index wins).

    A volume disk has nodes once it names a volume, even when this domain object does not carry the
    resolved path (the live XML of a running domain does not)."""
    if disk.source is None and (disk.source_type != "volume" or disk.source_pool is None):
        return DiskNames(disk.target_dev, _device_id(disk), None, None)
    n = disk.source_index or n
    return DiskNames(disk.target_dev, _device_id(disk), f"libvirt-{n}-storage", f"libvirt-{n}-format")


def disk_names(domain: Domain) -> list[DiskNames]:
    """Device ids and node names of every disk, in definition order."""
    return [names_for(disk, n) for n, disk in enumerate(domain.devices.disks, start=1)]


def disk_options(b: Build) -> list[Option]:
    out: list[Option] = []
    seen: dict[str, str] = {}
    for disk, names in zip(b.domain.devices.disks, disk_names(b.domain), strict=True):
        if names.device_id in seen:
            raise InvalidArgument(
                f"disks {seen[names.device_id]} and {disk.target_dev} sit at the same place ({names.device_id}); "
                "change a target dev or address"
            )
        seen[names.device_id] = disk.target_dev
        check_disk(disk, b.machine, b.note)
        if names.storage_node is not None:
            filename = b.host_path(disk.source) if disk.source else None
            out += [Option("-blockdev", Json(props)) for props in blockdev_props(disk, names, filename, b.host_path)]
        out.append(Option("-device", _frontend(b, disk, names)))
    return out


def check_disk(disk: Disk, machine: Machine, note: Callable[[str], None] | None = None) -> None:
    """What QEMU could not run for ``disk`` on ``machine``, as an error with the way out."""
    who = f"disk {disk.target_dev}"
    if disk.device not in ("disk", "cdrom"):
        raise UnsupportedConfig(f"{who}: device '{disk.device}' is not supported; use disk or cdrom")
    if disk.source_type not in ("file", "block", "volume"):
        raise UnsupportedConfig(f"{who}: source type '{disk.source_type}' is not supported; use file, block or volume")
    if disk.readonly and disk.device == "disk" and disk.bus in ("ide", "sata"):  # QEMU's ide-hd refuses it
        raise UnsupportedConfig(f"{who}: a read-only {disk.bus.upper()} hard disk is not possible (QEMU's ide-hd "
                                "device cannot be read-only); use bus virtio or scsi, or device cdrom")
    if disk.source_type == "volume" and disk.source_pool is not None and disk.volume_type is None:
        raise InvalidArgument(
            f"{who}: source type 'volume' (pool '{disk.source_pool}', volume '{disk.source_volume}') was not "
            "resolved to a path; pyvirtd does that when it starts the domain"
        )
    if disk.driver_name not in (None, "qemu"):
        raise UnsupportedConfig(f"{who}: driver name '{disk.driver_name}' is not supported; use name='qemu'")
    if disk.bus not in ("virtio", "sata", "ide", "scsi", "nvme"):
        raise UnsupportedConfig(f"{who}: bus '{disk.bus}' is not supported; use virtio, sata, scsi, ide or nvme")
    if disk.bus == "nvme" and disk.device == "cdrom":
        raise UnsupportedConfig(f"{who}: a cdrom cannot be an NVMe namespace; use sata (q35), ide (pc) or scsi")
    if disk.source is None and disk.device != "cdrom":
        raise InvalidArgument(f"{who}: a disk needs <source file=.../>; only a cdrom may be empty")
    if disk.device == "cdrom" and disk.bus == "virtio":
        raise UnsupportedConfig(f"{who}: a cdrom cannot be on bus virtio; use sata (q35), ide (pc) or scsi")
    if machine.family == "microvm" and disk.bus not in ("virtio", "scsi"):  # nvme is PCI
        raise UnsupportedConfig(
            f"{who}: machine 'microvm' has no {disk.bus.upper()} bus; use bus='virtio' or 'scsi'"
        )
    if disk.bus == "ide" and machine.family != "pc":
        raise UnsupportedConfig(f"{who}: machine '{machine.type}' has no IDE bus; use bus='sata' on q35")
    if disk.bus == "sata" and machine.family != "q35":
        raise UnsupportedConfig(
            f"{who}: machine '{machine.type}' has no SATA (AHCI) bus; use bus='ide' on pc or machine q35"
        )
    if disk.format is not None and disk.format not in FORMATS:
        raise UnsupportedConfig(f"{who}: driver type '{disk.format}' is not supported; use one of {', '.join(FORMATS)}")
    if disk.format is None and disk.source is not None and note is not None:
        note(f"disk {disk.target_dev}: no <driver type=...> given; the image is opened as raw (no probing)")
    if disk.cache is not None and disk.cache not in CACHE_MODES and disk.cache != "default":
        raise UnsupportedConfig(f"{who}: cache mode '{disk.cache}' is unknown; use one of {', '.join(CACHE_MODES)}")
    if disk.io is not None and disk.io not in AIO_MODES and disk.io != "default":
        raise UnsupportedConfig(f"{who}: io mode '{disk.io}' is unknown; use native, threads or io_uring")
    if disk.io == "native" and disk.cache not in ("none", "directsync"):
        raise InvalidArgument(f"{who}: io='native' needs cache='none' or 'directsync' (O_DIRECT)")
    if disk.discard not in (None, "unmap", "ignore"):
        raise UnsupportedConfig(f"{who}: discard '{disk.discard}' is unknown; use unmap or ignore")


def _cache_mode(disk: Disk) -> tuple[bool, bool, bool] | None:
    """(cache.direct, cache.no-flush, write-cache), or None for QEMU's default ('default' or none given)."""
    return CACHE_MODES.get(disk.cache) if disk.cache is not None else None


def _cache(disk: Disk) -> dict[str, Any]:
    mode = _cache_mode(disk)
    if mode is None:
        return {}
    direct, no_flush, _ = mode
    return {"cache": {"direct": direct, "no-flush": no_flush}}


def storage_driver(disk: Disk) -> str:
    """file, or host_device/host_cdrom for a block device (given as such or a volume that is one)."""
    block = disk.source_type == "block" or (disk.source_type == "volume" and disk.volume_type == "block")
    if not block:
        return "file"
    return "host_cdrom" if disk.device == "cdrom" else "host_device"


def blockdev_props(disk: Disk, names: DiskNames, filename: str | None = None,
                   opened: Callable[[str], str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The storage and format node of ``disk`` (-blockdev at start, QMP blockdev-add on hot-plug).

    ``filename``: what QEMU opens instead of the disk's path (the /dev/fdset/N of the daemon's fds);
    ``opened`` does the same for the paths of its backing chain."""
    discard = {"discard": "unmap"} if disk.discard == "unmap" else {}
    read_only = disk.readonly or disk.device == "cdrom"
    # read-only said outright, not auto-read-only: QEMU gets its image as fds of the access it needs,
    # and a node that opened read-only and reopens read-write holds two descriptions whose locks clash
    storage: dict[str, Any] = {
        "driver": storage_driver(disk),
        "filename": filename or disk.source,
        "node-name": names.storage_node,
        "read-only": read_only,
        **discard,
        **_cache(disk),
    }
    if disk.io in AIO_MODES:
        storage["aio"] = AIO_MODES[disk.io]
    fmt: dict[str, Any] = {
        "node-name": names.format_node,
        "read-only": read_only,
        **discard,
        **_cache(disk),
        "driver": disk.format or "raw",
        "file": names.storage_node,
    }
    if fmt["driver"] in COW_FORMATS:  # the chain as resolved by the daemon; never the one in the header
        fmt["backing"] = backing_option(disk.backing_chain, opened or (lambda path: path))
    return storage, fmt


def _frontend(b: Build, disk: Disk, names: DiskNames) -> KeyVal:
    if disk.bus == "virtio":
        place = pci_placement(b, disk.address, f"disk {disk.target_dev}")
        return frontend(disk, names, b.virtio("blk"), place)
    if disk.bus in ("sata", "scsi", "nvme"):
        _need_controller(b, disk.bus, _slot(disk).controller, disk)
    if disk.bus == "nvme" and disk.serial is not None:
        b.note(f"disk {disk.target_dev}: <serial> is not applied: an NVMe namespace has none (its controller's "
               "serial is the domain's)")
    return frontend(disk, names, b.virtio("blk"), ())


def frontend(disk: Disk, names: DiskNames, virtio_driver: str, place: tuple[tuple[str, Value], ...]) -> KeyVal:
    """The -device of ``disk``; ``place`` is where a virtio disk sits (bus/addr), unused by the other buses."""
    cd = disk.device == "cdrom"
    drive = (("drive", names.format_node),)
    mode = _cache_mode(disk)
    tail: tuple[tuple[str, Value], ...] = (
        ("id", names.device_id),
        *boot_props(disk.boot_order),
        ("serial", disk.serial),
        ("share-rw", True if disk.shareable else None),
        ("write-cache", mode[2] if mode else None),
    )
    if disk.bus == "virtio":
        return kv(virtio_driver, *place, *drive, *tail)
    s = _slot(disk)
    if disk.bus == "ide":
        if s.controller != 0 or s.bus > 1 or s.unit > 1 or s.target != 0:
            raise InvalidArgument(f"disk {disk.target_dev}: IDE has buses 0-1 with units 0-1 (hda..hdd)")
        return kv("ide-cd" if cd else "ide-hd", ("bus", f"ide.{s.bus}"), ("unit", s.unit), *drive, *tail)
    if disk.bus == "sata":
        if s.unit > 5 or s.bus != 0:
            raise InvalidArgument(f"disk {disk.target_dev}: a SATA controller has units 0-5 on bus 0")
        bus = f"ide.{s.unit}" if s.controller == 0 else f"sata{s.controller}.{s.unit}"
        return kv("ide-cd" if cd else "ide-hd", ("bus", bus), *drive, *tail)
    if disk.bus == "nvme":  # a namespace of NVMe controller N (nsid = unit + 1); its serial is the controller's
        return kv("nvme-ns", ("bus", f"nvme{s.controller}"), ("nsid", s.unit + 1), *drive,
                  *(t for t in tail if t[0] != "serial"))
    return kv(
        "scsi-cd" if cd else "scsi-hd",
        ("bus", f"scsi{s.controller}.0"),
        ("channel", s.bus),
        ("scsi-id", s.target),
        ("lun", s.unit),
        *drive,
        *tail,
    )


# device_add (QMP, JSON) wants these as QEMU's on/off enum strings, not JSON booleans
_ON_OFF_PROPS = ("write-cache",)


def device_add_props(front: KeyVal) -> dict[str, Any]:
    """A -device KeyVal as QMP device_add arguments (driver first, None left out)."""
    out: dict[str, Any] = {"driver": front.head}
    for key, value in front.props:
        if value is None:
            continue
        out[key] = ("on" if value else "off") if key in _ON_OFF_PROPS and isinstance(value, bool) else value
    return out


def scsi_controller_index(disk: Disk) -> int:
    """Index of the SCSI controller a scsi disk sits on (its drive address, default 0)."""
    return _slot(disk).controller


def _need_controller(b: Build, kind: str, index: int, disk: Disk) -> None:
    if index == 0:
        return  # q35's built-in AHCI, or the implicit virtio-scsi or NVMe controller
    if not any(c.type == kind and c.index == index for c in b.domain.devices.controllers):
        raise InvalidArgument(
            f"disk {disk.target_dev}: there is no {kind.upper()} controller with index {index}; "
            f"add <controller type='{kind}' index='{index}'/>"
        )
