"""<domainsnapshot> XML (public and stored forms) and the pure parts of the snapshot-* commands:
virsh's tree layout, snapshot-list's filters and option checks, the time format."""
from __future__ import annotations

import time

import pytest

from pyvirt.cli import snapshot_cmds as sc
from pyvirt.errors import InvalidArgument, NotFound, UnsupportedConfig, XMLSyntaxError
from pyvirt.model.snapshot_xml import (
    DomainSnapshot,
    SnapshotDisk,
    format_snapshot_xml,
    parse_snapshot_xml,
)

DOMAIN = """<domain type='qemu'>
  <name>web</name>
  <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>
  <memory unit='KiB'>131072</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices/>
</domain>
"""

# What `virsh snapshot-dumpxml` prints (libvirt 9 element order), with pyvirt's domain layout inside.
PUBLIC = """<domainsnapshot>
  <name>s2</name>
  <description>before the upgrade &amp; more</description>
  <state>running</state>
  <parent>
    <name>s1</name>
  </parent>
  <creationTime>1795438942</creationTime>
  <memory snapshot='internal'/>
  <disks>
    <disk name='vda' snapshot='internal'/>
    <disk name='sdb' snapshot='no'/>
  </disks>
""" + "".join(f"  {line}\n" for line in DOMAIN.splitlines()) + "</domainsnapshot>\n"


def test_public_form_round_trips_byte_for_byte():
    snap = parse_snapshot_xml(PUBLIC)
    assert snap == DomainSnapshot(
        name="s2", description="before the upgrade & more", state="running", parent="s1",
        creation_time=1795438942, memory="internal",
        disks=(SnapshotDisk("vda", "internal"), SnapshotDisk("sdb", "no")), domain_xml=DOMAIN, current=False)
    assert format_snapshot_xml(snap) == PUBLIC
    assert snap.location == "internal"


def test_stored_form_keeps_the_current_flag_and_the_public_form_hides_it():
    snap = parse_snapshot_xml(PUBLIC)
    for current in (True, False):
        stored = format_snapshot_xml(DomainSnapshot(**{**snap.__dict__, "current": current}), internal=True)
        assert f"  <active>{int(current)}</active>\n</domainsnapshot>\n" in stored
        back = parse_snapshot_xml(stored, internal=True)
        assert back.current is current and format_snapshot_xml(back) == PUBLIC
    with pytest.raises(UnsupportedConfig, match="<active>"):
        parse_snapshot_xml(format_snapshot_xml(snap, internal=True))  # not accepted from users


def test_minimal_input_and_what_snapshot_create_as_sends():
    xml = format_snapshot_xml(DomainSnapshot(name="n1", description="d1 <&>"))
    assert xml == ("<domainsnapshot>\n  <name>n1</name>\n  <description>d1 &lt;&amp;&gt;</description>\n"
                   "</domainsnapshot>\n")
    assert parse_snapshot_xml(xml) == DomainSnapshot(name="n1", description="d1 <&>")
    assert format_snapshot_xml(DomainSnapshot()) == "<domainsnapshot>\n</domainsnapshot>\n"
    assert parse_snapshot_xml(format_snapshot_xml(DomainSnapshot())) == DomainSnapshot()
    only_text = format_snapshot_xml(DomainSnapshot(description="it's \"q\""))
    assert only_text == "<domainsnapshot>\n  <description>it&apos;s &quot;q&quot;</description>\n</domainsnapshot>\n"
    off = parse_snapshot_xml("<domainsnapshot><memory snapshot='no'/><disks><disk name='/img/a.qcow2'/></disks>"
                             "</domainsnapshot>")
    assert off.memory == "no" and off.disks == (SnapshotDisk("/img/a.qcow2", None),)


def test_a_shutoff_snapshot_writes_no_description_and_no_parent():
    snap = DomainSnapshot(name="off", state="shutoff", creation_time=5, memory="no",
                          disks=(SnapshotDisk("vda", "internal"),))
    assert format_snapshot_xml(snap) == (
        "<domainsnapshot>\n  <name>off</name>\n  <state>shutoff</state>\n  <creationTime>5</creationTime>\n"
        "  <memory snapshot='no'/>\n  <disks>\n    <disk name='vda' snapshot='internal'/>\n  </disks>\n"
        "</domainsnapshot>\n")


@pytest.mark.parametrize("xml, error, words", [
    ("<domainsnapshot><name>a/b</name></domainsnapshot>", InvalidArgument, "contains '/'"),
    ("<domainsnapshot><name></name></domainsnapshot>", InvalidArgument, "it is empty"),
    ("<snapshot><name>x</name></snapshot>", InvalidArgument, "must be <domainsnapshot>"),
    ("<domainsnapshot><name>x</name>", XMLSyntaxError, "not well-formed"),
    ("<domainsnapshot><state>frozen</state></domainsnapshot>", InvalidArgument, "write one of running"),
    ("<domainsnapshot><memory snapshot='disk'/></domainsnapshot>", InvalidArgument, "write one of no, internal"),
    ("<domainsnapshot><memory snapshot='external' file='/m'/></domainsnapshot>", UnsupportedConfig,
     "later release"),
    ("<domainsnapshot><disks><disk name='vda' snapshot='maybe'/></disks></domainsnapshot>", InvalidArgument,
     "'maybe'"),
    ("<domainsnapshot><disks><disk name='vda'><source file='/x'/></disk></disks></domainsnapshot>",
     UnsupportedConfig, "external snapshot"),
    ("<domainsnapshot><disks><disk name='vda'/><disk name='vda'/></disks></domainsnapshot>", InvalidArgument,
     "listed twice"),
    ("<domainsnapshot><disks><disk snapshot='no'/></disks></domainsnapshot>", InvalidArgument, "'name' is missing"),
    ("<domainsnapshot><creationTime>soon</creationTime></domainsnapshot>", InvalidArgument, "not a whole number"),
    ("<domainsnapshot><cookie/></domainsnapshot>", UnsupportedConfig, "only written by libvirt"),
    ("<domainsnapshot><bogus/></domainsnapshot>", UnsupportedConfig, "<bogus>"),
])
def test_bad_input_says_what_and_where(xml, error, words):
    with pytest.raises(error) as info:
        parse_snapshot_xml(xml)
    assert words in str(info.value)


def test_external_locations():
    assert DomainSnapshot(name="e", disks=(SnapshotDisk("vda", "external"),)).location == "external"
    assert DomainSnapshot(name="e", state="disk-snapshot").location == "external"
    assert DomainSnapshot(name="i", memory="no", disks=(SnapshotDisk("vda", "internal"),)).location == "internal"


# ------------------------------------------------------------------ the CLI's pure parts
# Trees as `virsh -c test:///default snapshot-list test --tree` (libvirt 9.0) draws them.
VIRSH_TREE = """a
  |
  +- b
  |   |
  |   +- c
  |   +- f
  |     
  +- d
      |
      +- e
        
"""  # noqa: W291, W293 - virsh pads its tree with trailing spaces
VIRSH_TWO_ROOTS = """s2
  |
  +- 1795438942
    
s3

"""  # noqa: W293 - virsh pads its tree with trailing spaces


def test_tree_layout_is_virshs():
    parents = {"a": None, "b": "a", "c": "b", "d": "a", "e": "d", "f": "b"}
    assert sc.render_tree(sorted(parents), parents) == VIRSH_TREE
    parents = {"1795438942": "s2", "s2": None, "s3": None}
    assert sc.render_tree(sorted(parents), parents) == VIRSH_TWO_ROOTS
    assert sc.render_tree([], {}) == ""


def _row(name, parent=None, children=0, state="running", created=0):
    return {"name": name, "parent": parent, "children": children, "state": state, "creation_time": created,
            "location": "internal", "metadata": True}


def _args(**on):
    cmd = next(c for c in sc.COMMANDS if c.name == "snapshot-list")
    a = {o.dest: (False if o.kind == "bool" else None) for o in cmd.opts}
    a.update(on)
    return a


ROWS = [_row("a", None, 2, created=1), _row("b", "a", 2, created=2), _row("c", "b", 0, "paused", 3),
        _row("d", "a", 1, created=4), _row("e", "d", 0, "shutoff", 5), _row("f", "b", 0, created=6)]


@pytest.mark.parametrize("on, names", [
    ({}, ["a", "b", "c", "d", "e", "f"]),
    ({"roots": True}, ["a"]),
    ({"leaves": True}, ["c", "e", "f"]),
    ({"no_leaves": True}, ["a", "b", "d"]),
    ({"leaves": True, "no_leaves": True}, []),
    ({"inactive": True}, ["e"]),
    ({"active": True}, ["a", "b", "c", "d", "f"]),
    ({"inactive": True, "active": True}, ["a", "b", "c", "d", "e", "f"]),
    ({"external": True}, []),
    ({"no_metadata": True}, []),
    ({"from": "a"}, ["b", "d"]),
    ({"from": "a", "descendants": True}, ["b", "c", "d", "e", "f"]),
    ({"current": True}, ["c", "f"]),
])
def test_list_filters(on, names):
    sc.check_list_options(_args(**on))
    picked, _ = sc.select(ROWS, _args(**on), "b")
    assert [r["name"] for r in picked] == names


def test_list_start_must_exist():
    with pytest.raises(NotFound, match="no domain snapshot with matching name 'zz'"):
        sc.select(ROWS, _args(**{"from": "zz"}), None)
    with pytest.raises(NotFound, match="does not have a current snapshot"):
        sc.select(ROWS, _args(current=True), None)


@pytest.mark.parametrize("on, message", [
    ({"tree": True, "name": True}, "Options --tree and --name are mutually exclusive"),
    ({"parent": True, "roots": True}, "Options --parent and --roots are mutually exclusive"),
    ({"parent": True, "tree": True}, "Options --parent and --tree are mutually exclusive"),
    ({"roots": True, "from": "a"}, "Options --roots and --from are mutually exclusive"),
    ({"roots": True, "current": True}, "Options --roots and --current are mutually exclusive"),
    ({"from": "a", "current": True}, "--from and --current are mutually exclusive"),
    ({"descendants": True}, "--descendants requires either --from or --current"),
    ({"tree": True, "leaves": True}, "--leaves and --tree are mutually exclusive"),
    ({"tree": True, "inactive": True}, "--inactive and --tree are mutually exclusive"),
])
def test_list_option_conflicts_use_virshs_words(on, message):
    with pytest.raises(InvalidArgument) as info:
        sc.check_list_options(_args(**on))
    assert str(info.value) == message


def test_topological_puts_parents_first_and_newest_sibling_first():
    assert [r["name"] for r in sc.topological(ROWS)] == ["a", "d", "e", "b", "f", "c"]


def test_creation_time_is_virshs_format_in_local_time(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert sc.creation_time(1795438942) == "2026-11-23 13:02:22 +0000"
        assert sc.creation_time(None) == ""
        monkeypatch.setenv("TZ", "CET-1")
        time.tzset()
        assert sc.creation_time(1795438942) == "2026-11-23 14:02:22 +0100"
    finally:
        monkeypatch.undo()
        time.tzset()
