"""The host's facts in virsh's layouts: nodeinfo, nodememstats, nodecpustats, freecell, freepages,
allocpages, domcapabilities."""
from __future__ import annotations

import time

from ..errors import InvalidArgument
from .spec import BOOL, INT, STRING, Command, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx

CPU_FIELDS = ("user", "system", "idle", "iowait")


def nodeinfo_text(n: dict[str, Any]) -> str:
    lines = [("CPU model:", str(n["model"])), ("CPU(s):", str(n["cpus"]))]
    if n.get("mhz"):
        lines.append(("CPU frequency:", f"{n['mhz']} MHz"))
    lines += [("CPU socket(s):", str(n["sockets"])), ("Core(s) per socket:", str(n["cores"])),
              ("Thread(s) per core:", str(n["threads"])), ("NUMA cell(s):", str(n["nodes"])),
              ("Memory size:", f"{n['memory_kib']} KiB")]
    return "".join(f"{k:<20} {v}\n" for k, v in lines)


def cmd_nodeinfo(ctx: Ctx, a: dict[str, Any]) -> None:
    n = ctx.conn.node_info()
    ctx.out.text(nodeinfo_text(n), n)


def memstats_text(m: dict[str, Any]) -> str:
    return "".join(f"{key:<7}: {m[key]:>20} KiB\n" for key in ("total", "free", "buffers", "cached")
                   if m.get(key) is not None)


def cmd_nodememstats(ctx: Ctx, a: dict[str, Any]) -> None:
    m = ctx.conn.node_memory(a["cell"])
    ctx.out.text(memstats_text(m), m)


def cpustats_text(c: dict[str, int]) -> str:
    return "".join(f"{name + ':':<15} {c[name]:>20}\n" for name in CPU_FIELDS)


def cpu_percent_text(first: dict[str, int], second: dict[str, int]) -> tuple[str, dict[str, float]]:
    """virsh nodecpustats --percent: the share of each mode over the interval between two readings."""
    delta = {k: second[k] - first[k] for k in CPU_FIELDS}
    total = sum(delta.values()) or 1
    pct = {"usage": (delta["user"] + delta["system"]) / total * 100,
           **{k: delta[k] / total * 100 for k in CPU_FIELDS}}
    return "".join(f"{k + ':':<15} {v:5.1f}%\n" for k, v in pct.items()), pct


def cmd_nodecpustats(ctx: Ctx, a: dict[str, Any]) -> None:
    first = ctx.conn.node_cpu(a["cpu"])
    if not a["percent"]:
        ctx.out.text(cpustats_text(first), first)
        return
    time.sleep(1)
    text, pct = cpu_percent_text(first, ctx.conn.node_cpu(a["cpu"]))
    ctx.out.text(text, pct)


def cmd_freecell(ctx: Ctx, a: dict[str, Any]) -> None:
    if a["all"] and a["cellno"] is not None:
        raise InvalidArgument("Options --all and --cellno are mutually exclusive")
    if a["all"]:
        cells = ctx.conn.cells()
        lines = [f"{c['id']:>5}: {c['free_kib']:>10} KiB\n" for c in cells]
        total = sum(c["free_kib"] for c in cells)
        extra = "" if ctx.out.quiet else f"--------------------\n{'Total':>5}: {total:>10} KiB\n"
        ctx.out.text("".join(lines) + extra, {"cells": [{"id": c["id"], "free_kib": c["free_kib"]} for c in cells],
                                              "total_kib": total})
        return
    if a["cellno"] is not None:
        cell = next((c for c in ctx.conn.cells() if c["id"] == a["cellno"]), None)
        if cell is None:
            memory = ctx.conn.node_memory(a["cellno"])  # the daemon names the cells there are
            cell = {"id": a["cellno"], "free_kib": memory["free"]}
        ctx.out.text(f"{cell['id']}: {cell['free_kib']} KiB\n", {"id": cell["id"], "free_kib": cell["free_kib"]})
        return
    free = ctx.conn.node_memory()["free"]
    ctx.out.text(f"Total: {free} KiB\n", {"total_kib": free})


def page_kib(text: str, what: str = "pagesize") -> int:
    """virsh's scaled page size: a number of KiB, or with a suffix (2M, 1G)."""
    from ..model.units import parse_size

    try:
        size = parse_size(text, "KiB")
    except InvalidArgument:
        raise InvalidArgument(
            f"Scaled numeric value '{text}' for <{what}> option is malformed or out of range") from None
    if size < 1024 or size % 1024:
        raise InvalidArgument(f"page size '{text}' is not a whole number of KiB")
    return size // 1024


def cmd_freepages(ctx: Ctx, a: dict[str, Any]) -> None:
    if a["all"] and a["cellno"] is not None:
        raise InvalidArgument("Options --all and --cellno are mutually exclusive")
    size = page_kib(a["pagesize"]) if a["pagesize"] is not None else None
    cells = ctx.conn.cells()
    if a["all"]:
        blocks, data = [], []
        for c in cells:
            pools = [p for p in c["pages"] if size is None or p["size_kib"] == size]
            blocks.append(f"Node {c['id']}:\n" + "".join(f"{p['size_kib']}KiB: {p['free']}\n" for p in pools) + "\n")
            data.append({"cell": c["id"], "pages": [{"size_kib": p["size_kib"], "free": p["free"]} for p in pools]})
        ctx.out.text("".join(blocks), data)
        return
    if a["cellno"] is None:
        raise InvalidArgument("missing cellno argument")
    if size is None:
        raise InvalidArgument("missing pagesize argument")
    cell = next((c for c in cells if c["id"] == a["cellno"]), None)
    pool = None if cell is None else next((p for p in cell["pages"] if p["size_kib"] == size), None)
    if pool is None:
        raise InvalidArgument(f"Could not get count of free {size}KiB pages on cell {a['cellno']}, no data returned")
    ctx.out.text(f"{size}KiB: {pool['free']}\n", {"cell": a["cellno"], "size_kib": size, "free": pool["free"]})


def cmd_allocpages(ctx: Ctx, a: dict[str, Any]) -> None:
    if a["all"] and a["cellno"] is not None:
        raise InvalidArgument("Options --all and --cellno are mutually exclusive")
    size = page_kib(a["pagesize"])
    try:
        count = int(a["pagecount"])
    except ValueError:
        count = -1
    if count < 0:
        raise InvalidArgument(f"Numeric value '{a['pagecount']}' for <pagecount> option is malformed or out of range")
    if a["all"]:
        results = [ctx.conn.allocate_pages(size, count, c["id"], a["add"]) for c in ctx.conn.cells()]
        ctx.out.text("", results)
        return
    ctx.out.text("", ctx.conn.allocate_pages(size, count, a["cellno"], a["add"]))


def cmd_domcapabilities(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = ctx.conn.domain_capabilities(a["virttype"], a["emulatorbin"], a["arch"], a["machine"])
    ctx.out.text(xml, {"xml": xml})


CELL = Opt("cellno", INT, "NUMA cell number")
COMMANDS = (
    Command("nodeinfo", "host", "node information", cmd_nodeinfo, (), "Returns basic information about the node."),
    Command("nodememstats", "host", "Prints memory stats of the node.", cmd_nodememstats,
            (Opt("cell", INT, "prints specified cell statistics only."),),
            "Returns memory stats of the node, in kilobytes."),
    Command("nodecpustats", "host", "Prints cpu stats of the node.", cmd_nodecpustats,
            (Opt("cpu", INT, "prints specified cpu statistics only."),
             Opt("percent", BOOL, "prints by percentage during 1 second.")),
            "Returns cpu stats of the node, in nanoseconds."),
    Command("freecell", "host", "NUMA free memory", cmd_freecell,
            (CELL, Opt("all", BOOL, "show free memory for all NUMA cells")),
            "display available free memory for the NUMA cell."),
    Command("freepages", "host", "NUMA free pages", cmd_freepages,
            (CELL, Opt("pagesize", STRING, "page size (in kibibytes)"),
             Opt("all", BOOL, "show free pages for all NUMA cells")),
            "display available free pages for the NUMA cell."),
    Command("allocpages", "host", "Manipulate pages pool size", cmd_allocpages,
            (Opt("pagesize", STRING, "page size (in kibibytes)", required=True, positional=True),
             Opt("pagecount", STRING, "page count", required=True, positional=True), CELL,
             Opt("add", BOOL, "instead of setting new pool size add pages to it"),
             Opt("all", BOOL, "set on all NUMA cells")),
            "Allocate or free some pages in the pool for NUMA cell.\n"
            "More pages than the host's memory are refused; a pool the kernel can fill only in part is left as it "
            "was."),
    Command("domcapabilities", "host", "domain capabilities", cmd_domcapabilities,
            (Opt("virttype", STRING, "virtualization type (/domain/@type)"),
             Opt("emulatorbin", STRING, "path to emulator binary (/domain/devices/emulator)"),
             Opt("arch", STRING, "domain architecture (/domain/os/type/@arch)"),
             Opt("machine", STRING, "machine type (/domain/os/type/@machine)")),
            "Returns capabilities of emulator with respect to host and libvirt."),
)
