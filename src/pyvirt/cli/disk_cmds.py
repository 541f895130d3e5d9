"""Domain disk commands: attach-disk, detach-disk, attach-device, detach-device,
change-media, blockresize (virsh's 'domain' group) and domblklist, domblkinfo,
domblkstat ('monitor'), with virsh 9.0's options, messages and layouts."""
from __future__ import annotations

import os

from ..errors import InvalidArgument
from .domain_cmds import read_file
from .scope import SCOPE, scope
from .spec import BOOL, DOMAIN, STRING, Command, Opt
from .table import render, render_keyvalue
from .vol_cmds import parse_size, xml_escape

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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




def _q(value: str) -> str:
    return f"'{xml_escape(value)}'"


def disk_xml(a: dict[str, Any]) -> str:
    """The <disk> attach-disk sends, laid out as `virsh attach-disk --print-xml` prints it."""
    source, target = a["source"], a["target"]
    kind = a["sourcetype"]
    if kind is None:
        try:
            import stat

            kind = "block" if stat.S_ISBLK(os.stat(source).st_mode) else "file"
        except OSError:
            kind = "file"
    if kind not in ("file", "block"):
        raise InvalidArgument(f"Unknown source type: '{kind}'; use file or block")
    device = a["type"]
    if device not in (None, "disk", "cdrom"):
        raise InvalidArgument(f"No support for {device} in command 'attach-disk'; use --type disk or cdrom")
    mode = a["mode"]
    if mode not in (None, "readonly", "shareable"):
        raise InvalidArgument(f"No support for {mode} in command 'attach-disk'; use --mode readonly or shareable")
    head = f"<disk type={_q(kind)}" + (f" device={_q(device)}" if device else "") + ">"
    lines = [head]
    driver = "".join(f" {key}={_q(a[opt])}" for key, opt in (("name", "driver"), ("type", "subdriver"),
                                                               ("cache", "cache"), ("io", "io")) if a[opt])
    if driver:
        lines.append(f"  <driver{driver}/>")
    lines.append(f"  <source {'dev' if kind == 'block' else 'file'}={_q(source)}/>")
    lines.append(f"  <target dev={_q(target)}" + (f" bus={_q(a['targetbus'])}" if a["targetbus"] else "") + "/>")
    if mode:
        lines.append(f"  <{mode}/>")
    if a["serial"]:
        lines.append(f"  <serial>{xml_escape(a['serial'])}</serial>")
    lines.append("</disk>")
    return "\n".join(lines) + "\n"


def disk_element(domain_xml: str, ref: str) -> str | None:
    """The <disk> whose target (or source path) is ``ref``, cut out of `dumpxml` text and dedented."""
    lines = domain_xml.splitlines()
    start = None
    for i, line in enumerate(lines):
        if line.lstrip().startswith("<disk "):
            start = i
        elif start is not None and line.strip() == "</disk>":
            block = lines[start:i + 1]
            if any(_names(entry.strip(), ref) for entry in block):
                indent = len(block[0]) - len(block[0].lstrip())
                return "\n".join(b[indent:] for b in block) + "\n"
            start = None
    return None


def _names(line: str, ref: str) -> bool:
    if line.startswith("<target "):
        return f"dev={_q(ref)}" in line
    return line.startswith("<source ") and (f"file={_q(ref)}" in line or f"dev={_q(ref)}" in line)


def media_xml(element: str, source: str | None, block: bool) -> str:
    """change-media --print-xml: the disk element with its new source (none after an eject)."""
    kept = [line for line in element.splitlines() if not line.lstrip().startswith("<source")]
    if source is not None:
        import re

        kept[0] = re.sub(r"type='[^']*'", f"type='{'block' if block else 'file'}'", kept[0], count=1)
        at = next(i for i, line in enumerate(kept) if line.lstrip().startswith("<target"))
        kept.insert(at, f"  <source {'dev' if block else 'file'}={_q(source)}/>")
    return "\n".join(kept) + "\n"


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
    raw = text.strip()
    size = int(raw) * 1024 if raw.isdigit() else parse_size(raw)
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
    dom = ctx.domain(a["domain"])
    if a["print_xml"]:
        element = disk_element(dom.xml(inactive=not live), a["target"])
        if element is None:
            raise InvalidArgument(f"No disk found whose source path or target is {a['target']}")
        ctx.out.text(element.rstrip("\n"), {"xml": element})
        return
    result = dom.detach_disk(a["target"], live=live, config=config)
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
    dom = ctx.domain(a["domain"])
    if a["print_xml"]:
        element = disk_element(dom.xml(inactive=not live), a["path"])
        if element is None:
            raise InvalidArgument(f"No disk found whose source path or target is {a['path']}")
        xml = media_xml(element, a["source"], a["block"])
        ctx.out.text(xml.rstrip("\n"), {"xml": xml})
        return
    result = dom.change_media(a["path"], action, a["source"], live=live, config=config, force=a["force"],
                              block=a["block"])
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
