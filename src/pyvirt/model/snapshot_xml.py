"""libvirt's <domainsnapshot> XML <-> ``DomainSnapshot``.

Two forms, as libvirt has them:

* the public one, what `virsh snapshot-create` reads and `snapshot-dumpxml`
  prints: name, description, state, parent, creationTime, memory, disks and
  the <domain> the snapshot was taken of;
* the internal one the daemon stores, the same plus <active>1</active> on the
  current snapshot (libvirt's own metadata files carry that element too).

On input for a new snapshot only name, description, memory and disks mean
anything; state, parent, creationTime and domain are read and then replaced
by the daemon (libvirt ignores them too unless --redefine). Anything else is
refused by path, so no setting is dropped silently.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ..errors import InvalidArgument, PyvirtError, UnsupportedConfig
from .names import check_name
from .xml_util import Context, Hint, Reader, node, parse_xml, render

STATES = ("running", "paused", "shutoff", "disk-snapshot")
MEMORY_MODES = ("no", "internal", "external")
DISK_MODES = ("no", "internal", "external", "manual")
LATER = "it comes in a later release; remove it for now"

_HINTS = {
    "cookie": Hint("the CPU cookie of a running snapshot is only written by libvirt; remove it"),
    "inactiveDomain": Hint("snapshots with a separate inactive definition are not supported; remove it"),
}


@dataclass(frozen=True)
class SnapshotDisk:
    """One <disks><disk>: ``name`` is the target (vda) or the source path; snapshot no|internal|..."""

    name: str
    snapshot: str | None = None


@dataclass(frozen=True)
class DomainSnapshot:
    """One domain snapshot's metadata; ``domain_xml`` is the definition it was taken of."""

    name: str | None = None
    description: str | None = None
    state: str | None = None
    parent: str | None = None
    creation_time: int | None = None
    memory: str | None = None
    disks: tuple[SnapshotDisk, ...] = ()
    domain_xml: str | None = None
    current: bool = False  # internal form only (<active>)

    @property
    def location(self) -> str:
        """'internal' or 'external', as `virsh snapshot-info` shows it."""
        modes = {self.memory, *(d.snapshot for d in self.disks)}
        return "external" if "external" in modes or self.state == "disk-snapshot" else "internal"


def check_snapshot_name(name: str) -> str:
    """Snapshot names follow the object-name rules (no '/', no control characters, at most 64)."""
    return check_name(name, "snapshot")


def parse_snapshot_xml(text: str, *, internal: bool = False) -> DomainSnapshot:
    """Read <domainsnapshot>; ``internal`` also accepts the stored form's <active>."""
    root, declared = parse_xml(text, "domain snapshot XML")
    ctx = Context("domain snapshot", declared)
    if root.tag != "domainsnapshot":
        raise InvalidArgument(
            f"domain snapshot XML has root element <{root.tag}>; it must be <domainsnapshot>"
        )
    r = Reader(root, ctx, "<domainsnapshot>", root=True)
    name = r.child_text("name")
    if name is not None:
        name = name.strip()
        ctx.name = name
        check_snapshot_name(name)
    description = r.child_text("description")
    state = r.child_text("state")
    if state is not None:
        state = state.strip()
        if state not in STATES:
            raise InvalidArgument(
                f"<state> in {ctx.who()} is '{state}'; write one of {', '.join(STATES)}"
            )
    parent = None
    parent_node = r.child("parent")
    if parent_node is not None:
        parent = parent_node.child_text("name")
        parent_node.done()
        parent = parent.strip() if parent else None
    created = r.child("creationTime")
    creation_time = created.int_text(minimum=0) if created is not None else None
    if created is not None:
        created.done()
    memory = None
    mem = r.child("memory")
    if mem is not None:
        memory = mem.attr("snapshot")
        if memory is not None and memory not in MEMORY_MODES:
            raise mem.attr_error("snapshot", memory, f"write one of {', '.join(MEMORY_MODES)}")
        if mem.attr("file") is not None:
            raise mem.error("a memory file means an external snapshot", LATER, UnsupportedConfig)
        mem.done()
    disks = _parse_disks(r)
    domain_xml = None
    dom = r.child("domain")
    if dom is not None:
        domain_xml = _domain_text(dom.elem)
        _consume_all(dom)  # taken whole: the daemon parses it as a domain when it needs it
    current = False
    if internal:
        active = r.child_text("active")
        current = (active or "0").strip() == "1"
    r.done(_HINTS)
    return DomainSnapshot(
        name=name, description=description, state=state, parent=parent, creation_time=creation_time,
        memory=memory, disks=disks, domain_xml=domain_xml, current=current,
    )


def _parse_disks(r: Reader) -> tuple[SnapshotDisk, ...]:
    holder = r.child("disks")
    if holder is None:
        return ()
    disks = []
    seen: set[str] = set()
    for d in holder.children("disk"):
        name = d.req_attr("name").strip()
        mode = d.attr("snapshot")
        if mode is not None and mode not in DISK_MODES:
            raise d.attr_error("snapshot", mode, f"write one of {', '.join(DISK_MODES)}")
        if d.child("source") is not None or d.child("driver") is not None:
            raise d.error(f"disk '{name}' has a <source> or <driver>: that describes an external snapshot",
                          LATER, UnsupportedConfig)
        d.attr("type")  # an external snapshot's source type; refused with <source> above when it matters
        d.done()
        if name in seen:
            raise InvalidArgument(f"disk '{name}' is listed twice in <disks> of the domain snapshot XML; keep one")
        seen.add(name)
        disks.append(SnapshotDisk(name, mode))
    holder.done()
    return tuple(disks)


def _consume_all(r: Reader) -> None:
    """Mark a subtree as read (the embedded <domain> is kept as text, not checked here)."""
    r.all_attrs()
    r.text()
    for i, _ in list(r.leftover_children()):
        r.mark_child_used(i)


def _domain_text(elem: ET.Element) -> str:
    """The embedded <domain> as a document of its own, in pyvirt's canonical layout when it parses."""
    from .domain_xml import format_domain_xml, parse_domain_xml

    saved_tail, elem.tail = elem.tail, None
    try:
        raw = ET.tostring(elem, encoding="unicode")
    finally:
        elem.tail = saved_tail
    try:
        return format_domain_xml(parse_domain_xml(raw))
    except PyvirtError:
        return raw.rstrip("\n") + "\n"


def format_snapshot_xml(snap: DomainSnapshot, *, internal: bool = False) -> str:
    """What `virsh snapshot-dumpxml` prints (libvirt's element order); ``internal`` adds <active>.

    A snapshot to create has only what its sender gave (snapshot-create-as: a name, a description,
    or neither, which is ``<domainsnapshot>`` open and closed); the daemon fills in the rest.
    """
    head = [
        node("name", text=snap.name) if snap.name is not None else None,
        node("description", text=snap.description) if snap.description is not None else None,
        node("state", text=snap.state) if snap.state else None,
        node("parent", children=[node("name", text=snap.parent)]) if snap.parent else None,
        node("creationTime", text=str(snap.creation_time)) if snap.creation_time is not None else None,
        node("memory", ("snapshot", snap.memory)) if snap.memory else None,
        node("disks", children=[node("disk", ("name", d.name), ("snapshot", d.snapshot)) for d in snap.disks])
        if snap.disks else None,
    ]
    lines = ["<domainsnapshot>"]
    for n in head:
        if n is not None:
            lines += ["  " + line for line in render(n).rstrip("\n").split("\n")]
    if snap.domain_xml:
        lines += ["  " + line if line else line for line in snap.domain_xml.rstrip("\n").split("\n")]
    if internal:
        lines.append("  " + render(node("active", text=str(1 if snap.current else 0))).rstrip("\n"))
    lines.append("</domainsnapshot>")
    return "\n".join(lines) + "\n"

