"""Pure helpers of the pool-* and vol-* commands: sizes, XML built from arguments, layouts.

Expected texts are virsh 9.0's, captured from `virsh -c test:///default` (its
default-pool and volumes made there with vol-create-as).
"""
from __future__ import annotations

import pytest

from pyvirt.cli.main import COMMANDS
from pyvirt.cli.pool_cmds import names_text, parse_types, pool_info_text, pool_list_text, pool_xml, select
from pyvirt.cli.spec import UsageError
from pyvirt.cli.vol_cmds import pretty, size_arg, vol_info_text, vol_list_text, volume_xml
from pyvirt.errors import InvalidArgument

GIB = 1024**3
UUID = "dfe224cb-28fb-8dd0-c4b2-64eb3f0f4566"


def pool(name="default-pool", active=True, capacity=100 * GIB, allocation=0, available=100 * GIB, **kw):
    p = {"name": name, "uuid": UUID, "type": "dir", "active": active, "state": "running" if active else "inactive",
         "persistent": True, "autostart": False, "capacity": capacity if active else None,
         "allocation": allocation if active else None, "available": available if active else None}
    p.update(kw)
    return p


@pytest.mark.parametrize(("text", "expected"), [
    ("4096", 4096), ("0", 0), ("1b", 1), ("10bytes", 10), ("1k", 1024), ("1K", 1024), ("1KiB", 1024),
    ("1KB", 1000), ("512M", 512 * 1024**2), ("512MiB", 512 * 1024**2), ("1MB", 10**6), ("1G", GIB),
    ("2GiB", 2 * GIB), ("1GB", 10**9), ("1T", 1024**4), ("1P", 1024**5), ("1E", 1024**6), ("1.5G", 3 * GIB // 2),
    ("0.5k", 512), ("1.0001k", 1025), (" 7M ", 7 * 1024**2),
])
def test_parse_size_takes_virsh_suffixes(text, expected):
    assert size_arg(text) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("1Q", "unknown suffix 'Q'"), ("abc", "Malformed size abc"), ("-1G", "Malformed size -1G"),
    ("", "Malformed size"), ("1GiBs", "unknown suffix 'GiBs'"), ("1 2", "Malformed size"),
])
def test_parse_size_errors_say_what_to_write(text, why):
    with pytest.raises(InvalidArgument) as exc:
        size_arg(text)
    assert why in str(exc.value)
    assert "e.g. 512M" in str(exc.value)


@pytest.mark.parametrize(("n", "text"), [
    (0, "0.00 B"), (1023, "1023.00 B"), (1024, "1.00 KiB"), (1536, "1.50 KiB"), (10 * 1024**2, "10.00 MiB"),
    (GIB, "1.00 GiB"), (100 * GIB, "100.00 GiB"), (1024**4, "1.00 TiB"), (1024**6, "1.00 EiB"),
    (1084227584, "1.01 GiB"),
])
def test_pretty_is_virsh_capacity(n, text):
    assert pretty(n) == text


def test_pool_list_plain_and_details_match_virsh():
    pools = [pool()]
    assert pool_list_text(pools, details=False) == (
        " Name           State    Autostart\n"
        "------------------------------------\n"
        " default-pool   active   no\n")
    assert pool_list_text(pools, details=True) == (
        " Name           State     Autostart   Persistent   Capacity     Allocation   Available\n"
        "-----------------------------------------------------------------------------------------\n"
        " default-pool   running   no          yes          100.00 GiB   0.00 B       100.00 GiB\n")


def test_pool_list_details_shows_dashes_for_an_inactive_pool():
    pools = [pool(), pool("p1", active=False, uuid="13b78c33-f55e-4a06-acaf-e46bc1775ea2")]
    assert pool_list_text(pools, details=True) == (
        " Name           State      Autostart   Persistent   Capacity     Allocation   Available\n"
        "------------------------------------------------------------------------------------------\n"
        " default-pool   running    no          yes          100.00 GiB   0.00 B       100.00 GiB\n"
        " p1             inactive   no          yes          -            -            -\n")


def test_pool_info_running_inactive_and_bytes():
    assert pool_info_text(pool()) == (
        "Name:           default-pool\n"
        f"UUID:           {UUID}\n"
        "State:          running\n"
        "Persistent:     yes\n"
        "Autostart:      no\n"
        "Capacity:       100.00 GiB\n"
        "Allocation:     0.00 B\n"
        "Available:      100.00 GiB\n")
    assert pool_info_text(pool(), in_bytes=True).endswith(
        "Capacity:       107374182400\nAllocation:     0\nAvailable:      107374182400\n")
    assert pool_info_text(pool(active=False)) == (
        "Name:           default-pool\n"
        f"UUID:           {UUID}\n"
        "State:          inactive\n"
        "Persistent:     yes\n"
        "Autostart:      no\n")


def test_pool_list_names_are_padded_as_virsh():
    pools = [pool()]
    assert names_text(pools, name=True, uuid=False) == "default-pool        \n"
    assert names_text(pools, name=False, uuid=True) == f"{UUID}\n"
    assert names_text(pools, name=True, uuid=True) == f"{UUID} default-pool        \n"


def _filters(**kw):
    base = {k: False for k in ("all", "inactive", "persistent", "transient", "autostart", "no_autostart")}
    base["type"] = None
    base.update(kw)
    return base


def test_pool_list_filters():
    pools = [pool("a"), pool("b", active=False), pool("c", persistent=False, autostart=True, type="logical")]
    names = lambda sel: [p["name"] for p in sel]  # noqa: E731
    assert names(select(pools, _filters())) == ["a", "c"]
    assert names(select(pools, _filters(inactive=True))) == ["b"]
    assert names(select(pools, _filters(all=True, persistent=True))) == ["a", "b"]
    assert names(select(pools, _filters(all=True, transient=True))) == ["c"]
    assert names(select(pools, _filters(autostart=True))) == ["c"]
    assert names(select(pools, _filters(all=True, type="dir,fs"))) == ["a", "b"]
    assert parse_types("dir, logical") == {"dir", "logical"}
    with pytest.raises(InvalidArgument, match="Invalid pool type 'foo'"):
        parse_types("dir,foo")


def test_pool_xml_as_virsh_print_xml():
    args = {"name": "px", "type": "dir", "target": "/tmp/vt/px"}
    assert pool_xml(args) == ("<pool type='dir'>\n  <name>px</name>\n  <target>\n    <path>/tmp/vt/px</path>\n"
                              "  </target>\n</pool>\n")


def test_pool_xml_logical_with_two_devices_and_escaping():
    args = {"name": "lv&1", "type": "logical", "source_dev": ["/dev/loop0", "/dev/loop1"], "source_name": "vg'x"}
    assert pool_xml(args) == (
        "<pool type='logical'>\n  <name>lv&amp;1</name>\n  <source>\n"
        "    <device path='/dev/loop0'/>\n    <device path='/dev/loop1'/>\n"
        "    <name>vg&apos;x</name>\n  </source>\n</pool>\n")


def test_pool_define_as_takes_source_dev_more_than_once():
    cmd = COMMANDS["pool-define-as"]
    a = cmd.parse(["lv", "logical", "--source-dev", "/dev/loop0", "--source-dev=/dev/loop1", "--source-name", "vg"])
    assert (a["name"], a["type"], a["source_dev"], a["source_name"]) == (
        "lv", "logical", ["/dev/loop0", "/dev/loop1"], "vg")
    assert cmd.parse(["d", "dir"])["source_dev"] == []
    with pytest.raises(UsageError, match="option --target already seen"):
        cmd.parse(["d", "dir", "--target", "/a", "--target", "/b"])
    with pytest.raises(UsageError, match="expected syntax: --source-dev"):
        cmd.parse(["d", "dir", "--source-dev"])


def test_volume_xml_as_virsh_print_xml():
    assert volume_xml("b", GIB, None, "qcow2", "/default-pool/a.img") == (
        "<volume>\n  <name>b</name>\n  <capacity>1073741824</capacity>\n  <target>\n"
        "    <format type='qcow2'/>\n  </target>\n  <backingStore>\n    <path>/default-pool/a.img</path>\n"
        "  </backingStore>\n</volume>\n")
    assert "<allocation>10485760</allocation>" in volume_xml("c", GIB, 10 * 1024**2, None)
    assert "<name>a&lt;b</name>" in volume_xml("a<b", 1, None, None)


VOLS = [
    {"name": "a.img", "path": "/default-pool/a.img", "type": "file", "capacity": GIB, "allocation": GIB},
    {"name": "b.qcow2", "path": "/default-pool/b.qcow2", "type": "file", "capacity": 512 * 1024**2,
     "allocation": 10 * 1024**2},
]


def test_vol_list_plain_and_details_match_virsh():
    assert vol_list_text(VOLS, details=False) == (
        " Name      Path\n"
        "----------------------------------\n"
        " a.img     /default-pool/a.img\n"
        " b.qcow2   /default-pool/b.qcow2\n")
    assert vol_list_text(VOLS, details=True) == (
        " Name      Path                    Type   Capacity     Allocation\n"
        "-------------------------------------------------------------------\n"
        " a.img     /default-pool/a.img     file   1.00 GiB     1.00 GiB\n"
        " b.qcow2   /default-pool/b.qcow2   file   512.00 MiB   10.00 MiB\n")
    assert vol_list_text([], details=False) == " Name   Path\n--------------\n"


def test_vol_info_pretty_and_bytes_match_virsh():
    assert vol_info_text(VOLS[0]) == (
        "Name:           a.img\nType:           file\nCapacity:       1.00 GiB\nAllocation:     1.00 GiB\n")
    assert vol_info_text(VOLS[1], in_bytes=True) == (
        "Name:           b.qcow2\nType:           file\nCapacity:       536870912 bytes\n"
        "Allocation:     10485760 bytes\n")
    assert vol_info_text({**VOLS[1], "physical": 4096}, physical=True).endswith("Physical:       4.00 KiB\n")


def test_storage_commands_are_in_their_help_groups():
    pools = [c.name for c in COMMANDS.values() if c.group == "pool"]
    vols = [c.name for c in COMMANDS.values() if c.group == "volume"]
    assert pools[:3] == ["pool-autostart", "pool-build", "pool-create-as"] and "pool-uuid" in pools
    assert vols[0] == "vol-clone" and len(vols) == 17  # virsh's 16 and vol-set-format
    assert "--linked" in COMMANDS["vol-clone"].synopsis()
