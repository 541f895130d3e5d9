"""Domain disk commands: attach-disk, detach-disk, attach-device, detach-device,
change-media, blockresize (virsh's 'domain' group) and domblklist, domblkinfo,
domblkstat ('monitor'), with virsh 9.0's options, messages and layouts.

The <disk> sent or printed is a model ``Disk`` rendered by the model's
formatter; a disk of a domain is read from its XML with the model's parser.
"""
from __future__ import annotations

import os

from ..errors import InvalidArgument
from .domain_cmds import read_file
from .scope import SCOPE, scope
from .spec import BOOL, DOMAIN, STRING, Command, Opt
from .table import render, render_keyvalue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..model.domain import Disk
    from .context import Ctx

# virsh's domblkstat order, with its legacy and --human names (virsh-domain-monitor.c)
STAT_FIELDS = (
    ("rd_req", "number of read operations:"),
    ("rd_bytes", "number of bytes read:"),
    ("wr_req", "number of write operations:"),
    ("wr_bytes", "number of bytes written:"),
    ("errs", "error count:"),
    ("flush_operations", "number of flush operations:"),
    ("rd_total_times", "total duration of reads (ns):"),
    ("wr_total_times", "total duration of writes (ns):"),
    ("flush_total_times", "total duration of flushes (ns):"),
)
UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

# attach-disk option -> Disk field, for the options that are a field as given (an empty one is not given).
# The source (and --sourcetype) and --mode have rules of their own, in attach_disk().
DISK_OPTIONS = (("targetbus", "bus"), ("driver", "driver_name"), ("subdriver", "format"), ("cache", "cache"),
                ("io", "io"), ("type", "device"), ("serial", "serial"))
MODES = ("readonly", "shareable")  # --mode: the Disk flag of that name


def _source_type(a: dict[str, Any]) -> str:
    """--sourcetype, else what the source is on this host (a block device or a file), as virsh guesses."""
    kind = a["sourcetype"]
    if kind is None:
        try:
            import stat

            kind = "block" if stat.S_ISBLK(os.stat(a["source"]).st_mode) else "file"
        except OSError:
            kind = "file"
    if kind not in ("file", "block"):
        raise InvalidArgument(f"Unknown source type: '{kind}'; use file or block")
    return str(kind)


def attach_disk(a: dict[str, Any]) -> tuple[Disk, frozenset[str]]:
    """The Disk attach-disk asks for, and the fields it leaves to the daemon (not written)."""
    from ..model.domain import Disk, disk_bus_for
    from ..model.domain_xml_format import IMPLIED_DISK_FIELDS

    kind = _source_type(a)
    device = a["type"]
    if device not in (None, "disk", "cdrom"):
        raise InvalidArgument(f"No support for {device} in command 'attach-disk'; use --type disk or cdrom")
    mode = a["mode"]
    if mode not in (None, *MODES):
        raise InvalidArgument(f"No support for {mode} in command 'attach-disk'; use --mode readonly or shareable")
    given = {field: a[opt] for opt, field in DISK_OPTIONS if a[opt]}
    implied = frozenset(f for f in IMPLIED_DISK_FIELDS if f not in given)
    # not given: the bus the daemon will read from the target's name (not written, implied), and no
    # driver name (the Disk default 'qemu' is the daemon's to fill in)
    values: dict[str, Any] = {"bus": disk_bus_for(a["target"]) or "", "driver_name": None, **given}
    disk = Disk(target_dev=a["target"], source_type=kind, source=a["source"], readonly=mode == "readonly",
                shareable=mode == "shareable", **values)
    return disk, implied


def disk_xml(a: dict[str, Any]) -> str:
    """The <disk> attach-disk sends, laid out as `virsh attach-disk --print-xml` prints it."""
    from ..model.domain_xml_format import format_disk_xml

    disk, implied = attach_disk(a)
    return format_disk_xml(disk, implied=implied)


def find_disk(domain_xml: str, ref: str) -> Disk | None:
    """The first disk of the domain whose target (or source path) is ``ref``, as virsh finds it."""
    from ..model.domain_xml import parse_domain_xml

    disks = parse_domain_xml(domain_xml).devices.disks
    return next((d for d in disks if ref in (d.target_dev, d.source)), None)


def media_disk(disk: Disk, source: str | None, block: bool) -> Disk:
    """change-media --print-xml: the disk with its new medium (none after an eject)."""
    from dataclasses import replace

    if source is None:
        return replace(disk, source=None, source_pool=None, source_volume=None, source_index=None)
    return replace(disk, source_type="block" if block else "file", source=source, source_pool=None,
                   source_volume=None, source_index=None)


def _disk_of(ctx: Ctx, a: dict[str, Any], ref: str, live: bool) -> Disk:
    disk = find_disk(ctx.domain(a["domain"]).xml(inactive=not live), ref)
    if disk is None:
        raise InvalidArgument(f"No disk found whose source path or target is {ref}")
    return disk


def pretty3(n: int) -> str:
    """virsh's vshPrettyCapacity with "%.3lf %s" (domblkinfo --human)."""
    for i, unit in enumerate(UNITS):
        if n < 1024 ** (i + 1) or unit == UNITS[-1]:
            return f"{n / 1024 ** i:.3f} {unit}"
    return f"{n} B"  # not reached


def blkinfo_cells(row: dict[str, Any], human: bool) -> list[str]:
    values = [int(row["capacity"]), int(row["allocation"]), int(row["physical"])]
    if not any(values):
        return ["-", "-", "-"]
    return [pretty3(v) if human else str(v) for v in values]


def blkinfo_text(rows: list[dict[str, Any]], *, all_disks: bool, human: bool, quiet: bool = False) -> str:
    if all_disks:
        table = [[r["target"], *blkinfo_cells(r, human)] for r in rows]
        return render(["Target", "Capacity", "Allocation", "Physical"], table, quiet=quiet)
    cap, alloc, phys = blkinfo_cells(rows[0], human)
    return render_keyvalue([("Capacity:", cap), ("Allocation:", alloc), ("Physical:", phys)])


def blkstat_text(stats: dict[str, Any], human: bool) -> str:
    device = str(stats.get("device", ""))
    out = f"Device: {device}\n" if human else ""
    shown = "" if human else device
    for field, label in STAT_FIELDS:
        if field in stats and stats[field] is not None:
            name = label if human else field
            out += f"{shown} {name:<{31 if human else 0}} {stats[field]}\n"
    return out


def blklist_text(rows: list[dict[str, Any]], details: bool, quiet: bool = False) -> str:
    if details:
        table = [[r["type"], r["device"], r["target"], r.get("source") or "-"] for r in rows]
        return render(["Type", "Device", "Target", "Source"], table, quiet=quiet)
    return render(["Target", "Source"], [[r["target"], r.get("source") or "-"] for r in rows], quiet=quiet)


def resize_bytes(text: str) -> int:
    """blockresize's size: a scaled integer, KiB without a suffix (as virsh)."""
    from ..model.units import parse_size

    size = parse_size(text, "KiB", what="size")
    if size <= 0:
        raise InvalidArgument(f"Unable to parse integer parameter 'size': '{text}' must be above zero")
    return size


# ------------------------------------------------------------------ commands
def cmd_attach_disk(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = disk_xml(a)
    if a["print_xml"]:
        ctx.out.text(xml.rstrip("\n"), {"xml": xml})
        return
    live, config = scope(ctx, a)
    result = ctx.domain(a["domain"]).attach_disk(xml, live=live, config=config)
    ctx.out.message("Disk attached successfully", {"result": "Disk attached successfully", **result})


def cmd_detach_disk(ctx: Ctx, a: dict[str, Any]) -> None:
    live, config = scope(ctx, a)
    if a["print_xml"]:
        from ..model.domain_xml_format import format_disk_xml

        xml = format_disk_xml(_disk_of(ctx, a, a["target"], live))
        ctx.out.text(xml.rstrip("\n"), {"xml": xml})
        return
    result = ctx.domain(a["domain"]).detach_disk(a["target"], live=live, config=config)
    ctx.out.message("Disk detached successfully", {"result": "Disk detached successfully", **result})


def cmd_attach_device(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = read_file(a["file"])
    live, config = scope(ctx, a)
    result = ctx.domain(a["domain"]).attach_device(xml, live=live, config=config)
    ctx.out.message("Device attached successfully", {"result": "Device attached successfully", **result})


def cmd_detach_device(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = read_file(a["file"])
    live, config = scope(ctx, a)
    result = ctx.domain(a["domain"]).detach_device(xml, live=live, config=config)
    ctx.out.message("Device detached successfully", {"result": "Device detached successfully", **result})


def cmd_domblklist(ctx: Ctx, a: dict[str, Any]) -> None:
    rows = ctx.domain(a["domain"]).disks(inactive=a["inactive"])
    ctx.out.text(blklist_text(rows, a["details"], quiet=ctx.out.quiet), rows)


def cmd_domblkinfo(ctx: Ctx, a: dict[str, Any]) -> None:
    if a["all"] and a["device"]:
        raise InvalidArgument("Options --all and --device are mutually exclusive")
    if not a["all"] and not a["device"]:
        raise InvalidArgument("command 'domblkinfo' requires <device> option")
    rows = ctx.domain(a["domain"]).block_info(None if a["all"] else a["device"])
    data: Any = rows if a["all"] else rows[0]
    ctx.out.text(blkinfo_text(rows, all_disks=a["all"], human=a["human"], quiet=ctx.out.quiet), data)


def cmd_domblkstat(ctx: Ctx, a: dict[str, Any]) -> None:
    stats = ctx.domain(a["domain"]).block_stats(a["device"] or None)
    ctx.out.text(blkstat_text(stats, a["human"]), stats)


MEDIA_MESSAGES = {"eject": "Successfully ejected media.", "insert": "Successfully inserted media.",
                  "update": "Successfully updated media."}


def cmd_change_media(ctx: Ctx, a: dict[str, Any]) -> None:
    for x, y in (("eject", "insert"), ("eject", "update"), ("insert", "update")):
        if a[x] and a[y]:
            raise InvalidArgument(f"Options --{x} and --{y} are mutually exclusive")
    action = "eject" if a["eject"] else "insert" if a["insert"] else "update"
    if action == "insert" and not a["source"]:
        raise InvalidArgument("No source is specified for inserting media")
    if action == "eject" and a["source"]:
        raise InvalidArgument("Options --eject and --source are mutually exclusive")
    live, config = scope(ctx, a)
    if a["print_xml"]:
        from ..model.domain_xml_format import format_disk_xml

        xml = format_disk_xml(media_disk(_disk_of(ctx, a, a["path"], live), a["source"], a["block"]))
        ctx.out.text(xml.rstrip("\n"), {"xml": xml})
        return
    result = ctx.domain(a["domain"]).change_media(a["path"], action, a["source"], live=live, config=config,
                                                  force=a["force"], block=a["block"])
    ctx.out.message(MEDIA_MESSAGES[action], {"result": MEDIA_MESSAGES[action], **result})


def cmd_blockresize(ctx: Ctx, a: dict[str, Any]) -> None:
    size = resize_bytes(a["size"])
    result = ctx.domain(a["domain"]).block_resize(a["path"], size)
    text = f"Block device '{a['path']}' is resized"
    ctx.out.message(text, {"result": text, **result})


DEVICE_FILE = Opt("file", STRING, "XML file", required=True, positional=True)

COMMANDS = (
    Command("attach-device", "domain", "attach device from an XML file", cmd_attach_device,
            (DOMAIN, DEVICE_FILE, *SCOPE), "Attach device from an XML <file>."),
    Command("attach-disk", "domain", "attach disk device", cmd_attach_disk,
            (DOMAIN,
             Opt("source", STRING, "source of disk device or name of network disk", required=True, positional=True),
             Opt("target", STRING, "target of disk device", required=True, positional=True),
             Opt("targetbus", STRING, "target bus of disk device"),
             Opt("driver", STRING, "driver of disk device"),
             Opt("subdriver", STRING, "subdriver of disk device"),
             Opt("cache", STRING, "cache mode of disk device"),
             Opt("io", STRING, "io policy of disk device"),
             Opt("type", STRING, "target device type"),
             Opt("mode", STRING, "mode of device reading and writing"),
             Opt("sourcetype", STRING, "type of source (block|file)"),
             Opt("serial", STRING, "serial of disk device"),
             Opt("print-xml", BOOL, "print XML document rather than attach the disk"),
             *SCOPE),
            "Attach new disk device."),
    Command("blockresize", "domain", "Resize block device of domain.", cmd_blockresize,
            (DOMAIN,
             Opt("path", STRING, "Fully-qualified path of block device", required=True, positional=True),
             Opt("size", STRING, "New size of the block device, as scaled integer (default KiB)", required=True,
                 positional=True)),
            "Resize block device of domain."),
    Command("change-media", "domain", "Change media of CD or floppy drive", cmd_change_media,
            (DOMAIN,
             Opt("path", STRING, "Fully-qualified path or target of disk device", required=True, positional=True),
             Opt("source", STRING, "source of the media", positional=True),
             Opt("eject", BOOL, "Eject the media"),
             Opt("insert", BOOL, "Insert the media"),
             Opt("update", BOOL, "Update the media"),
             Opt("current", BOOL, "can be either or both of --live and --config, depends on implementation "
                                  "hypervisor driver"),
             Opt("live", BOOL, "alter live configuration of running domain"),
             Opt("config", BOOL, "alter persistent configuration, effect observed on next boot"),
             Opt("force", BOOL, "force media changing"),
             Opt("print-xml", BOOL, "print XML document rather than change media"),
             Opt("block", BOOL, "source media is a block device")),
            "Change media of CD or floppy drive."),
    Command("detach-device", "domain", "detach device from an XML file", cmd_detach_device,
            (DOMAIN, DEVICE_FILE, *SCOPE), "Detach device from an XML <file>"),
    Command("detach-disk", "domain", "detach disk device", cmd_detach_disk,
            (DOMAIN, Opt("target", STRING, "target of disk device", required=True, positional=True), *SCOPE,
             Opt("print-xml", BOOL, "print XML document rather than detach the disk")),
            "Detach disk device."),
    Command("domblkinfo", "monitor", "domain block device size information", cmd_domblkinfo,
            (DOMAIN, Opt("device", STRING, "block device", positional=True),
             Opt("human", BOOL, "Human readable output"),
             Opt("all", BOOL, "display all block devices info")),
            "Get block device size info for a domain."),
    Command("domblklist", "monitor", "list all domain blocks", cmd_domblklist,
            (DOMAIN, Opt("inactive", BOOL, "get inactive rather than running configuration"),
             Opt("details", BOOL, "additionally display the type and device value")),
            "Get the summary of block devices for a domain."),
    Command("domblkstat", "monitor", "get device block stats for a domain", cmd_domblkstat,
            (DOMAIN, Opt("device", STRING, "block device", positional=True),
             Opt("human", BOOL, "print a more human readable output")),
            "Get device block stats for a running domain. See man page or use --human for explanation of fields"),
)
