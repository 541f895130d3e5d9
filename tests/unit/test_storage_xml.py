"""Storage pool/volume XML codec: golden files, round trips, libvirt's layout, every validation error.

Golden files live in tests/unit/data/storage: NAME.xml is the input (any
valid style), NAME.expected.xml what the formatter writes for it. Run with
PYVIRT_REGEN=1 to rewrite the expected files, then review the diff.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.errors import InvalidArgument, UnsupportedConfig, XMLSyntaxError
from pyvirt.model.storage import BackingStore, Permissions, PoolInfo, Volume
from pyvirt.model.storage_xml import (
    format_pool_xml,
    format_volume_xml,
    lvm_name_problem,
    parse_pool_xml,
    parse_volume_xml,
    volume_name_problem,
)

DATA = Path(__file__).parent / "data" / "storage"
INPUTS = sorted(p for p in DATA.glob("*.xml") if not p.name.endswith(".expected.xml"))
REGEN = os.environ.get("PYVIRT_REGEN") == "1"
G = 1024**3


def _fmt(src: Path) -> str:
    if src.name.startswith("pool_"):
        return format_pool_xml(parse_pool_xml(src.read_text()))
    return format_volume_xml(parse_volume_xml(src.read_text()))


def _parse(src: Path, text: str) -> object:
    return parse_pool_xml(text) if src.name.startswith("pool_") else parse_volume_xml(text)


@pytest.mark.parametrize("src", INPUTS, ids=lambda p: p.stem)
def test_golden(src: Path) -> None:
    out = _fmt(src)
    expected = src.with_name(src.stem + ".expected.xml")
    if REGEN:
        expected.write_text(out)
    assert expected.exists(), f"{expected} is missing; run with PYVIRT_REGEN=1"
    assert out == expected.read_text()


@pytest.mark.parametrize("src", INPUTS, ids=lambda p: p.stem)
def test_round_trip(src: Path) -> None:
    obj = _parse(src, src.read_text())
    text = _fmt(src)
    assert _parse(src, text) == obj
    assert _fmt(src.with_name(src.name)) == text
    again = format_pool_xml(obj) if src.name.startswith("pool_") else format_volume_xml(obj)  # type: ignore[arg-type]
    assert again == text  # formatting is a fixed point


def test_golden_inputs_exist() -> None:
    stems = {p.stem for p in INPUTS}
    assert {"pool_dir", "pool_fs", "pool_netfs", "pool_logical", "pool_disk", "pool_iscsi"} <= stems
    assert {"vol_raw", "vol_qcow2_backing", "vol_live", "vol_lv"} <= stems


# ---------------------------------------------------------------- libvirt's exact layout
def test_dir_pool_matches_virsh_pool_dumpxml_with_live_sizes() -> None:
    pool = parse_pool_xml("<pool type='dir'><name>default</name>"
                          "<uuid>5df3a5b6-3c2e-4e3a-9d3a-0a1b2c3d4e5f</uuid>"
                          "<target><path>/var/lib/libvirt/images</path>"
                          "<permissions><mode>0711</mode><owner>0</owner><group>0</group></permissions>"
                          "</target></pool>")
    out = format_pool_xml(pool, PoolInfo(capacity=269427478528, allocation=23517831168, available=245909647360))
    assert out == """<pool type='dir'>
  <name>default</name>
  <uuid>5df3a5b6-3c2e-4e3a-9d3a-0a1b2c3d4e5f</uuid>
  <capacity unit='bytes'>269427478528</capacity>
  <allocation unit='bytes'>23517831168</allocation>
  <available unit='bytes'>245909647360</available>
  <source>
  </source>
  <target>
    <path>/var/lib/libvirt/images</path>
    <permissions>
      <mode>0711</mode>
      <owner>0</owner>
      <group>0</group>
    </permissions>
  </target>
</pool>
"""


def test_volume_matches_virsh_vol_dumpxml() -> None:
    vol = Volume(name="test.qcow2", capacity=G, allocation=200704, format="qcow2", physical=196624,
                 key="/var/lib/libvirt/images/test.qcow2", path="/var/lib/libvirt/images/test.qcow2",
                 permissions=Permissions(mode="0600", owner=0, group=0),
                 backing=BackingStore(path="/var/lib/libvirt/images/base.img", format="raw"))
    assert format_volume_xml(vol) == """<volume type='file'>
  <name>test.qcow2</name>
  <key>/var/lib/libvirt/images/test.qcow2</key>
  <capacity unit='bytes'>1073741824</capacity>
  <allocation unit='bytes'>200704</allocation>
  <physical unit='bytes'>196624</physical>
  <target>
    <path>/var/lib/libvirt/images/test.qcow2</path>
    <format type='qcow2'/>
    <permissions>
      <mode>0600</mode>
      <owner>0</owner>
      <group>0</group>
    </permissions>
  </target>
  <backingStore>
    <path>/var/lib/libvirt/images/base.img</path>
    <format type='raw'/>
  </backingStore>
</volume>
"""


def test_empty_target_is_written_open_and_closed() -> None:
    out = format_volume_xml(Volume(name="v", capacity=1))
    assert "  <target>\n  </target>\n" in out
    assert "<allocation" not in out and "<key>" not in out


# ---------------------------------------------------------------- model mapping
def test_pool_model_fields_and_defaults() -> None:
    pool = parse_pool_xml((DATA / "pool_dir.xml").read_text())
    assert pool.name == "pvts-default" and pool.type == "dir"
    assert pool.uuid == "5df3a5b6-3c2e-4e3a-9d3a-0a1b2c3d4e5f"
    assert pool.target.path == "/var/lib/pyvirt/images"  # '//' and the trailing '/' sanitized
    assert pool.target.permissions == Permissions(mode="0711", owner=0, group=None)  # -1 means unset

    fs = parse_pool_xml((DATA / "pool_fs_auto.xml").read_text())
    assert fs.source.format == "auto" and fs.source.devices == ("/srv/images/fs.img",)
    assert parse_pool_xml((DATA / "pool_fs.xml").read_text()).source.format == "ext4"

    nfs = parse_pool_xml((DATA / "pool_netfs.xml").read_text())
    assert (nfs.source.host, nfs.source.port, nfs.source.dir, nfs.source.format) == (
        "nfs.example.com", 2049, "/export/images", "nfs")

    lvm = parse_pool_xml((DATA / "pool_logical_min.xml").read_text())
    assert lvm.source.name == "pvtsvg2" and lvm.source.format == "lvm2"
    assert lvm.target.path == "/dev/pvtsvg2"

    disk = parse_pool_xml((DATA / "pool_disk.xml").read_text())
    assert disk.source.format == "gpt" and disk.target.path == "/dev"
    iscsi = parse_pool_xml((DATA / "pool_iscsi.xml").read_text())
    assert iscsi.source.iqn == "iqn.2013-06.com.example:host1"
    assert iscsi.source.devices == ("iqn.2013-06.com.example:iscsi-pool",)


def test_pool_live_sizes_are_read_with_units_and_dropped() -> None:
    pool = parse_pool_xml("<pool type='dir'><name>p</name><capacity unit='KiB'>4</capacity>"
                          "<target><path>/p</path></target></pool>")
    assert "<capacity unit='bytes'>0</capacity>" in format_pool_xml(pool)


def test_volume_units_and_fields() -> None:
    vol = parse_volume_xml((DATA / "vol_raw.xml").read_text())
    assert vol == Volume(name="disk1.img", capacity=10 * G, allocation=512 * 1024**2, format="raw",
                         permissions=Permissions(mode="0644", owner=107, group=107))
    kb = parse_volume_xml("<volume><name>v</name><capacity unit='KB'>3</capacity></volume>")
    assert kb.capacity == 3000 and kb.allocation is None and kb.format is None and kb.type == "file"
    default_unit = parse_volume_xml("<volume><name>v</name><capacity>4096</capacity></volume>")
    assert default_unit.capacity == 4096  # storage sizes default to bytes


def test_volume_backing_without_capacity_takes_backing_size() -> None:
    vol = parse_volume_xml((DATA / "vol_backing_nosize.xml").read_text())
    assert vol.capacity == 0
    assert vol.backing == BackingStore(path="/var/lib/pyvirt/images/base.img", format="raw")


def test_live_volume_keeps_key_path_physical() -> None:
    vol = parse_volume_xml((DATA / "vol_live.xml").read_text())
    assert vol.key == vol.path == "/var/lib/pyvirt/images/test.qcow2"
    assert (vol.capacity, vol.allocation, vol.physical) == (G, 200704, 196624)
    lv = parse_volume_xml((DATA / "vol_lv.xml").read_text())
    assert lv.type == "block" and lv.format is None and lv.path == "/dev/pvtsvg/lv1"


# ---------------------------------------------------------------- errors: pools
POOL_OK = "<pool type='{t}'><name>p</name>{src}<target><path>{path}</path></target></pool>"


def _pool(t: str = "dir", src: str = "", path: str = "/srv/p") -> str:
    return POOL_OK.format(t=t, src=src, path=path)


@pytest.mark.parametrize("text, cls, words", [
    ("<pool type='dir'><name>p</name>", XMLSyntaxError, "not well-formed"),
    ("<domain type='kvm'><name>p</name></domain>", InvalidArgument, "not <pool>"),
    ("<pool><name>p</name><target><path>/p</path></target></pool>", InvalidArgument, "'type' is missing"),
    (_pool("rbd"), UnsupportedConfig, "libvirt pool type 'rbd' is not supported"),
    (_pool("bogus"), UnsupportedConfig, "pool type 'bogus' is not supported"),
    ("<pool type='dir'><target><path>/p</path></target></pool>", InvalidArgument, "no <name>"),
    ("<pool type='dir'><name>a/b</name><target><path>/p</path></target></pool>", InvalidArgument,
     "invalid pool name 'a/b': it contains '/'"),
    ("<pool type='dir'><name>p</name></pool>", InvalidArgument, "pool 'p' has no target path"),
    ("<pool type='dir'><name>p</name><target/></pool>", InvalidArgument, "has no target path"),
    (_pool(path="images"), InvalidArgument, "target path 'images' is relative"),
    (_pool(path=""), InvalidArgument, "target path is empty"),
    (_pool("fs"), InvalidArgument, "pool 'p' of type 'fs' needs a source device"),
    (_pool("disk", path="/dev"), InvalidArgument, "of type 'disk' needs a source device"),
    (_pool("netfs", "<source><dir path='/e'/></source>"), InvalidArgument, "of type 'netfs' needs a source host"),
    (_pool("netfs", "<source><host name='h'/></source>"), InvalidArgument, "needs a source directory"),
    (_pool("iscsi", "<source><device path='iqn.x'/></source>", "/dev"), InvalidArgument, "needs a source host"),
    (_pool("fs", "<source><device path='/a'/><device path='/b'/></source>"), InvalidArgument,
     "takes one source device, not 2"),
    (_pool("fs", "<source><device path='/a'/><format type='zfs'/></source>"), InvalidArgument,
     "source format 'zfs' is not supported for fs pools"),
    (_pool("fs", "<source><device path='/a'/><format type='ocfs2'/></source>"), UnsupportedConfig,
     "source format 'ocfs2' is not supported"),
    (_pool("disk", "<source><device path='/a'/><format type='mac'/></source>"), UnsupportedConfig,
     "use one of unknown, dos, gpt"),
    (_pool("dir", "<source><device path='/a'/></source>"), InvalidArgument, "<device> is not used by dir pools"),
    (_pool("fs", "<source><device path='/a'/><dir path='/x'/></source>"), InvalidArgument,
     "<dir> is not used by fs pools"),
    (_pool("netfs", "<source><host name='a'/><host name='b'/><dir path='/e'/></source>"), InvalidArgument,
     "2 <host> elements"),
    (_pool("netfs", "<source><host name='a' port='70000'/><dir path='/e'/></source>"), InvalidArgument,
     "1-65535"),
    (_pool("fs", "<source><device/></source>"), InvalidArgument, "attribute 'path' is missing"),
    (_pool("netfs", "<source><host name='a'/><dir path='/e'/><auth type='chap'/></source>"), UnsupportedConfig,
     "authentication is not supported"),
    ("<pool type='logical'><name>p</name><source><name>-bad</name></source></pool>", InvalidArgument,
     "volume group name '-bad' is not valid for LVM"),
    ("<pool type='logical'><name>p</name><target><path>/dev/other</path></target></pool>", InvalidArgument,
     "target path of a logical pool is /dev/VG ('/dev/p')"),
    ("<pool type='dir'><name>p</name><uuid>xyz</uuid><target><path>/p</path></target></pool>", InvalidArgument,
     "not 32 hexadecimal digits"),
    (("<pool type='dir'><name>p</name><target><path>/p</path><permissions><mode>999</mode></permissions>"
      "</target></pool>"), InvalidArgument, "mode '999' is not an octal file mode"),
    (("<pool type='dir'><name>p</name><target><path>/p</path><permissions><owner>x</owner></permissions>"
      "</target></pool>"), InvalidArgument, "not a whole number"),
    (("<pool type='dir'><name>p</name><target><path>/p</path><permissions><label>s0</label></permissions>"
      "</target></pool>"), UnsupportedConfig, "security labels"),
    (("<pool type='dir'><name>p</name><features><cow state='no'/></features><target><path>/p</path></target>"
      "</pool>"), UnsupportedConfig, "pool features"),
    ("<pool type='dir'><name>p</name><bogus/><target><path>/p</path></target></pool>", UnsupportedConfig,
     "unsupported element <bogus> in pool 'p'"),
    ("<pool type='dir' x='1'><name>p</name><target><path>/p</path></target></pool>", UnsupportedConfig,
     "unsupported attribute 'x'"),
    (("<pool type='dir'><name>p</name><capacity unit='parsec'>1</capacity><target><path>/p</path></target>"
      "</pool>"), InvalidArgument, "unknown size unit 'parsec'"),
])
def test_pool_errors(text: str, cls: type[Exception], words: str) -> None:
    with pytest.raises(cls) as info:
        parse_pool_xml(text)
    assert type(info.value) is cls
    assert words in str(info.value)


# ---------------------------------------------------------------- errors: volumes
def _vol(body: str, name: str = "v") -> str:
    return f"<volume><name>{name}</name>{body}</volume>"


CAP = "<capacity>1024</capacity>"


@pytest.mark.parametrize("text, cls, words", [
    ("<pool><name>v</name></pool>", InvalidArgument, "not <volume>"),
    ("<volume><capacity>1</capacity></volume>", InvalidArgument, "no <name>"),
    (_vol(CAP, "a/b"), InvalidArgument, ("invalid volume name 'a/b': it contains '/'; a volume name may not "
                                         "contain '/'")),
    (_vol(CAP, ".."), InvalidArgument, "it is '..'"),
    (_vol(CAP, "."), InvalidArgument, "it is '.'"),
    (_vol(CAP, ""), InvalidArgument, "it is empty"),
    (_vol(CAP, "x" * 256), InvalidArgument, "longer than 255 bytes"),
    (_vol(""), InvalidArgument, "volume 'v' has no <capacity>"),
    (_vol("<capacity>0</capacity>"), InvalidArgument, "capacity is 0 bytes; it must be above zero"),
    (_vol("<capacity>-5</capacity>"), InvalidArgument, "'-5' is not a whole number"),
    (_vol("<capacity>1.5</capacity>"), InvalidArgument, "'1.5' is not a whole number"),
    (_vol("<capacity unit='Q'>1</capacity>"), InvalidArgument, "unknown size unit 'Q'"),
    (_vol("<capacity>10</capacity><allocation>20</allocation>"), InvalidArgument,
     "allocation (20 bytes) is larger than the capacity (10 bytes)"),
    (_vol(CAP + "<target><format type='vmdk'/></target>"), UnsupportedConfig,
     "format 'vmdk' is not supported; use one of raw, qcow2"),
    (_vol(CAP + "<target><format type='banana'/></target>"), InvalidArgument, "format 'banana' is not a volume format"),
    (_vol(CAP + "<target><format/></target>"), InvalidArgument, "attribute 'type' is missing"),
    (_vol(CAP + "<backingStore><path>/b</path><format type='vdi'/></backingStore>"), UnsupportedConfig,
     "format 'vdi' is not supported"),
    (_vol(CAP + "<backingStore><format type='raw'/></backingStore>"), InvalidArgument, "<path> is missing"),
    (_vol(CAP + "<backingStore><path>base.img</path></backingStore>"), InvalidArgument,
     "backing store path 'base.img' is relative"),
    (_vol(CAP + "<target><encryption format='luks'/></target>"), UnsupportedConfig, "encrypted volumes"),
    (_vol(CAP + "<target><compat>0.10</compat></target>"), InvalidArgument, "qcow2 compat '0.10'"),
    (_vol(CAP + "<target><features><lazy_refcounts/></features></target>"), UnsupportedConfig,
     "qcow2 feature flags"),
    ("<volume type='network'><name>v</name>" + CAP + "</volume>", UnsupportedConfig,
     "volume type 'network' is not supported"),
    (_vol(CAP + "<bogus/>"), UnsupportedConfig, "unsupported element <bogus> in volume 'v'"),
])
def test_volume_errors(text: str, cls: type[Exception], words: str) -> None:
    with pytest.raises(cls) as info:
        parse_volume_xml(text)
    assert type(info.value) is cls
    assert words in str(info.value)


def test_name_rules() -> None:
    assert volume_name_problem("disk.qcow2") is None
    assert volume_name_problem("a b") is None  # spaces inside are fine for files
    assert volume_name_problem("a\nb") == "it contains a control character"
    assert lvm_name_problem("lv_1.data+x") is None
    assert lvm_name_problem("-x") is not None
    assert lvm_name_problem("a b") is not None
    assert "reserved" in (lvm_name_problem("snapshot1") or "")
    assert "reserved" in (lvm_name_problem("x_tmeta") or "")
    assert "127" in (lvm_name_problem("x" * 128) or "")


def test_formatting_an_edited_model() -> None:
    pool = parse_pool_xml((DATA / "pool_fs.xml").read_text())
    moved = replace(pool, target=replace(pool.target, path="/srv/new"))
    assert "<path>/srv/new</path>" in format_pool_xml(moved)
    assert parse_pool_xml(format_pool_xml(moved)) == moved
