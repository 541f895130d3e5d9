"""Domain snapshot commands (virsh's 'snapshot' help group), with virsh 9.0's output.

snapshot-list's filters, --tree and --topological work on the whole list the
daemon sends, as virsh works on what libvirt returns; the tree is drawn with
virsh's own layout (vshTreePrint).
"""
from __future__ import annotations

import time

from ..errors import InvalidArgument, NotFound
from .domain_cmds import read_file
from .spec import BOOL, DOMAIN, STRING, Command, Opt
from .table import render, render_keyvalue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..client import Domain
    from ..client.snapshot import DomainSnapshot
    from .context import Ctx

CREATE_FLAGS = ("no_metadata", "halt", "disk_only", "reuse_external", "quiesce", "atomic", "live")


def creation_time(seconds: int | None) -> str:
    """virsh's `2026-11-23 13:05:01 +0000` (local time, as virsh prints it)."""
    if seconds is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(seconds))


def _pick(ctx: Ctx, a: dict[str, Any]) -> DomainSnapshot:
    """The snapshot named by --snapshotname, or the current one with --current."""
    dom = ctx.domain(a["domain"])
    if a["snapshotname"] is not None and a.get("current"):
        raise InvalidArgument("--snapshotname and --current are mutually exclusive")
    if a["snapshotname"] is not None:
        return dom.snapshot(a["snapshotname"])
    if a.get("current"):
        return dom.current_snapshot()
    raise InvalidArgument("--snapshotname or --current is required")


def _created(ctx: Ctx, snap: DomainSnapshot, source: str | None = None) -> None:
    text = f"Domain snapshot {snap.name} created" + (f" from '{source}'" if source else "")
    ctx.out.message(text, {"result": text, "snapshot": snap.last})


def _create(ctx: Ctx, a: dict[str, Any], xml: str | None) -> DomainSnapshot:
    flags = {k: bool(a[k]) for k in CREATE_FLAGS}
    return ctx.domain(a["domain"]).create_snapshot(xml, **flags)


def cmd_snapshot_create_as(ctx: Ctx, a: dict[str, Any]) -> None:
    from ..model.snapshot_xml import DomainSnapshot, format_snapshot_xml

    xml = format_snapshot_xml(DomainSnapshot(name=a["name"], description=a["description"]))
    if a["print_xml"]:
        ctx.out.text(xml, {"xml": xml})
        return
    ctx.out.blank_after = False  # as virsh: no empty line after "Domain snapshot X created"
    _created(ctx, _create(ctx, a, xml))


def cmd_snapshot_create(ctx: Ctx, a: dict[str, Any]) -> None:
    if a["redefine"]:
        raise InvalidArgument("--redefine (restoring snapshot metadata from XML) comes in a later release")
    if a["current"]:
        raise InvalidArgument("--current only goes with --redefine")
    xml = read_file(a["xmlfile"]) if a["xmlfile"] else None
    ctx.out.blank_after = False
    _created(ctx, _create(ctx, a, xml), a["xmlfile"])


def cmd_snapshot_current(ctx: Ctx, a: dict[str, Any]) -> None:
    dom = ctx.domain(a["domain"])
    if a["name"] and a["snapshotname"] is not None:
        raise InvalidArgument("Options --name and --snapshotname are mutually exclusive")
    if a["snapshotname"] is not None:
        snap = dom.snapshot(a["snapshotname"]).set_current()
        text = f"Snapshot {snap.name} set as current"
        ctx.out.message(text, {"result": text, "snapshot": snap.last})
        return
    snap = dom.current_snapshot()
    if a["name"]:
        ctx.out.blank_after = False
        ctx.out.text(snap.name, {"name": snap.name})
        return
    xml = snap.xml(security_info=a["security_info"])
    ctx.out.text(xml, {"name": snap.name, "xml": xml})


def cmd_snapshot_delete(ctx: Ctx, a: dict[str, Any]) -> None:
    snap = _pick(ctx, a)
    result = snap.delete(children=a["children"], children_only=a["children_only"], metadata=a["metadata"])
    text = f"Domain snapshot {snap.name} {'children ' if a['children_only'] else ''}deleted"
    ctx.out.message(text, {"result": text, **result})


def cmd_snapshot_dumpxml(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = ctx.domain(a["domain"]).snapshot(a["snapshotname"]).xml(security_info=a["security_info"])
    ctx.out.text(xml, {"name": a["snapshotname"], "xml": xml})


def cmd_snapshot_info(ctx: Ctx, a: dict[str, Any]) -> None:
    row = _pick(ctx, a).info()
    pairs = [
        ("Name:", row["name"]), ("Domain:", row["domain"]), ("Current:", "yes" if row["current"] else "no"),
        ("State:", row["state"]), ("Location:", row["location"]), ("Parent:", row["parent"] or "-"),
        ("Children:", str(row["children"])), ("Descendants:", str(row["descendants"])),
        ("Metadata:", "yes" if row["metadata"] else "no"),
    ]
    ctx.out.text(render_keyvalue(pairs), row)


def cmd_snapshot_parent(ctx: Ctx, a: dict[str, Any]) -> None:
    row = _pick(ctx, a).info()
    if not row["parent"]:
        raise NotFound(f"snapshot '{row['name']}' has no parent")
    ctx.out.blank_after = False
    ctx.out.text(row["parent"], {"name": row["name"], "parent": row["parent"]})


def cmd_snapshot_revert(ctx: Ctx, a: dict[str, Any]) -> None:
    snap = _pick(ctx, a)
    row = snap.revert(running=a["running"], paused=a["paused"], force=a["force"])
    text = f"Domain snapshot {snap.name} reverted"
    ctx.out.message(text, {"result": text, "snapshot": row})


# ------------------------------------------------------------------ snapshot-list
EXCLUSIVE = (("tree", "name"), ("parent", "roots"), ("parent", "tree"), ("roots", "tree"), ("roots", "from"),
             ("roots", "current"))
TREE_FILTERS = ("leaves", "no-leaves", "inactive", "active", "disk-only", "internal", "external")
STATE_FILTERS = {"inactive": ("shutoff",), "active": ("running", "paused"), "disk_only": ("disk-snapshot",)}


def check_list_options(a: dict[str, Any]) -> None:
    """virsh's checks, in virsh's order and words."""
    for one, two in EXCLUSIVE:
        if a[one.replace("-", "_")] and a[two.replace("-", "_")]:
            raise InvalidArgument(f"Options --{one} and --{two} are mutually exclusive")
    if a["from"] is not None and a["current"]:
        raise InvalidArgument("--from and --current are mutually exclusive")
    if a["descendants"] and a["from"] is None and not a["current"]:
        raise InvalidArgument("--descendants requires either --from or --current")
    for opt in TREE_FILTERS:
        if a["tree"] and a[opt.replace("-", "_")]:
            raise InvalidArgument(f"--{opt} and --tree are mutually exclusive")


def _descendants(rows: dict[str, dict[str, Any]], name: str, deep: bool) -> list[str]:
    out: list[str] = []
    todo = [n for n, r in rows.items() if r["parent"] == name]
    while todo:
        child = todo.pop(0)
        if child in out:
            continue
        out.append(child)
        if deep:
            todo += [n for n, r in rows.items() if r["parent"] == child]
    return out


def topological(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parents before children, depth first, newest sibling first (libvirt's order)."""
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    names = {r["name"] for r in rows}
    for r in rows:
        by_parent.setdefault(r["parent"] if r["parent"] in names else None, []).append(r)
    for kids in by_parent.values():
        kids.sort(key=lambda r: (r["creation_time"] or 0, r["name"]), reverse=True)
    out: list[dict[str, Any]] = []
    stack = list(reversed(by_parent.get(None, [])))
    while stack:
        r = stack.pop()
        out.append(r)
        stack += reversed(by_parent.get(r["name"], []))
    return out


def select(rows: list[dict[str, Any]], a: dict[str, Any],
           current: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """The rows snapshot-list shows (by name), and the --from/--current start when there is one."""
    by_name = {r["name"]: r for r in rows}
    start = a["from"]
    if a["current"]:
        if current is None:
            raise NotFound("the domain does not have a current snapshot")
        start = current
    picked = rows
    if start is not None:
        if start not in by_name:
            raise NotFound(f"no domain snapshot with matching name '{start}'")
        keep = set(_descendants(by_name, start, a["descendants"]))
        picked = [r for r in rows if r["name"] in keep]
    if a["roots"]:
        picked = [r for r in picked if not r["parent"]]
    if a["leaves"]:
        picked = [r for r in picked if not r["children"]]
    if a["no_leaves"]:
        picked = [r for r in picked if r["children"]]
    states = [s for key, group in STATE_FILTERS.items() if a[key] for s in group]
    if states:
        picked = [r for r in picked if r["state"] in states]
    locations = [loc for loc in ("internal", "external") if a[loc]]
    if locations:
        picked = [r for r in picked if r["location"] in locations]
    if a["no_metadata"] and not a["metadata"]:
        picked = [r for r in picked if not r["metadata"]]
    return picked, start


def render_tree(names: list[str], parent_of: dict[str, str | None]) -> str:
    """virsh's vshTreePrint layout: `+- child` under `  |`, a blank-ish line after each last leaf."""
    lines: list[str] = []

    def walk(name: str, last: str | None, root: bool, indent: str) -> None:
        lines.append(indent + ("" if root else "+- ") + name)
        if not root:
            indent += (" " if name == last else "|") + " "
        kids = [n for n in names if parent_of.get(n) == name]
        if kids:
            lines.append(indent + "  |")
        for kid in kids:
            walk(kid, kids[-1], False, indent + "  ")
        if not kids and name == last:
            lines.append(indent)

    for n in names:
        if parent_of.get(n) is None:
            walk(n, n, True, "")
    return "".join(line + "\n" for line in lines)


def cmd_snapshot_list(ctx: Ctx, a: dict[str, Any]) -> None:
    check_list_options(a)
    dom: Domain = ctx.domain(a["domain"])
    from ..client.snapshot import list_snapshots

    data = list_snapshots(dom)
    rows = sorted(data["snapshots"], key=lambda r: r["name"].lower())
    picked, start = select(rows, a, data.get("current"))
    if a["topological"]:
        picked = topological(picked)
    if a["tree"]:
        shown = ([r for r in rows if r["name"] == start] if start is not None else []) + picked
        names = [r["name"] for r in shown]
        parent_of = {r["name"]: (r["parent"] if r["parent"] in names and r["name"] != start else None)
                     for r in shown}
        ctx.out.text(render_tree(names, parent_of), shown)
        return
    if a["name"]:
        ctx.out.text("".join(r["name"] + "\n" for r in picked), [r["name"] for r in picked])
        return
    header = ["Name", "Creation Time", "State"] + (["Parent"] if a["parent"] else [])
    table = [[r["name"], creation_time(r["creation_time"]), r["state"] or ""]
             + ([r["parent"] or ""] if a["parent"] else []) for r in picked]
    ctx.out.text(render(header, table, quiet=ctx.out.quiet), picked)


SNAPNAME = Opt("snapshotname", STRING, "snapshot name", positional=True)
CURRENT = Opt("current", BOOL, "info on current snapshot")
SECURITY = Opt("security-info", BOOL, "include security sensitive information in XML dump")
CREATE_OPTS = (
    Opt("no-metadata", BOOL, "take snapshot but create no metadata"),
    Opt("halt", BOOL, "halt domain after snapshot is created"),
    Opt("disk-only", BOOL, "capture disk state but not vm state"),
    Opt("reuse-external", BOOL, "reuse any existing external files"),
    Opt("quiesce", BOOL, "quiesce guest's file systems"),
    Opt("atomic", BOOL, "require atomic operation"),
    Opt("live", BOOL, "take a live snapshot"),
    Opt("validate", BOOL, "validate the XML against the schema"),
)

COMMANDS = (
    Command("snapshot-create", "snapshot", "Create a snapshot from XML", cmd_snapshot_create,
            (DOMAIN, Opt("xmlfile", STRING, "domain snapshot XML", positional=True),
             Opt("redefine", BOOL, "redefine metadata for existing snapshot"),
             Opt("current", BOOL, "with redefine, set current snapshot"), *CREATE_OPTS),
            "Create a snapshot (disk and RAM) from XML"),
    Command("snapshot-create-as", "snapshot", "Create a snapshot from a set of args", cmd_snapshot_create_as,
            (DOMAIN, Opt("name", STRING, "name of snapshot", positional=True),
             Opt("description", STRING, "description of snapshot", positional=True),
             Opt("print-xml", BOOL, "print XML document rather than create"), *CREATE_OPTS),
            "Create a snapshot (disk and RAM) from arguments"),
    Command("snapshot-current", "snapshot", "Get or set the current snapshot", cmd_snapshot_current,
            (DOMAIN, Opt("name", BOOL, "list the name, rather than the full xml"), SECURITY,
             Opt("snapshotname", STRING, "name of existing snapshot to make current", positional=True)),
            "Get or set the current snapshot"),
    Command("snapshot-delete", "snapshot", "Delete a domain snapshot", cmd_snapshot_delete,
            (DOMAIN, SNAPNAME, Opt("current", BOOL, "delete current snapshot"),
             Opt("children", BOOL, "delete snapshot and all children"),
             Opt("children-only", BOOL, "delete children but not snapshot"),
             Opt("metadata", BOOL, "delete only libvirt metadata, leaving snapshot contents behind")),
            "Snapshot Delete"),
    Command("snapshot-dumpxml", "snapshot", "Dump XML for a domain snapshot", cmd_snapshot_dumpxml,
            (DOMAIN, Opt("snapshotname", STRING, "snapshot name", required=True, positional=True), SECURITY),
            "Snapshot Dump XML"),
    Command("snapshot-info", "snapshot", "snapshot information", cmd_snapshot_info,
            (DOMAIN, SNAPNAME, CURRENT), "Returns basic information about a snapshot."),
    Command("snapshot-list", "snapshot", "List snapshots for a domain", cmd_snapshot_list,
            (DOMAIN,
             Opt("parent", BOOL, "add a column showing parent snapshot"),
             Opt("roots", BOOL, "list only snapshots without parents"),
             Opt("leaves", BOOL, "list only snapshots without children"),
             Opt("no-leaves", BOOL, "list only snapshots that are not leaves (with children)"),
             Opt("metadata", BOOL, "list only snapshots that have metadata that would prevent undefine"),
             Opt("no-metadata", BOOL, "list only snapshots that have no metadata managed by libvirt"),
             Opt("inactive", BOOL, "filter by snapshots taken while inactive"),
             Opt("active", BOOL, "filter by snapshots taken while active (full system snapshots)"),
             Opt("disk-only", BOOL, "filter by disk-only snapshots"),
             Opt("internal", BOOL, "filter by internal snapshots"),
             Opt("external", BOOL, "filter by external snapshots"),
             Opt("tree", BOOL, "list snapshots in a tree"),
             Opt("from", STRING, "limit list to children of given snapshot"),
             Opt("current", BOOL, "limit list to children of current snapshot"),
             Opt("descendants", BOOL, "with --from, list all descendants"),
             Opt("name", BOOL, "list snapshot names only"),
             Opt("topological", BOOL, "sort list topologically rather than by name")),
            "Snapshot List"),
    Command("snapshot-parent", "snapshot", "Get the name of the parent of a snapshot", cmd_snapshot_parent,
            (DOMAIN, Opt("snapshotname", STRING, "find parent of snapshot name", positional=True),
             Opt("current", BOOL, "find parent of current snapshot")),
            "Extract the snapshot's parent, if any"),
    Command("snapshot-revert", "snapshot", "Revert a domain to a snapshot", cmd_snapshot_revert,
            (DOMAIN, SNAPNAME, Opt("current", BOOL, "revert to current snapshot"),
             Opt("running", BOOL, "after reverting, change state to running"),
             Opt("paused", BOOL, "after reverting, change state to paused"),
             Opt("force", BOOL, "try harder on risky reverts")),
            "Revert domain to snapshot"),
)
