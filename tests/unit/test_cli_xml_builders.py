"""The CLI builds every XML it sends or prints through the model: options fill a model object, the
model's formatter writes it, and a domain's or volume's facts are read with the model's parser.

Each command is run as the user runs it (`pyvirt ... --print-xml`, through main() where no daemon is
needed, else with a small fake connection) and its exact output checked; values with quotes, '<' and '&'
come out escaped and read back, through the model's parser, as what was typed.
"""
from __future__ import annotations

import ast
import io
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import pyvirt.cli
from pyvirt.cli.main import COMMANDS
from pyvirt.cli.output import Output
from pyvirt.errors import InvalidArgument
from pyvirt.model.domain_xml import parse_disk_xml, parse_interface_xml
from pyvirt.model.snapshot_xml import parse_snapshot_xml
from pyvirt.model.storage_xml import parse_pool_xml, parse_volume_xml
from pyvirt.model.units import parse_size

NASTY = "it's \"<a&b>\""
NASTY_OUT = "it&apos;s &quot;&lt;a&amp;b&gt;&quot;"


class NoDaemon:
    """A context whose connection fails the test if used: --print-xml must not need the daemon."""

    def __init__(self) -> None:
        self.out = Output(stdout=io.StringIO())

    @property
    def conn(self) -> Any:
        raise AssertionError("--print-xml talked to the daemon")

    def domain(self, ref: str) -> Any:
        raise AssertionError("--print-xml talked to the daemon")


def _run(ctx: Any, command: str, *argv: str) -> str:
    """``command`` as typed (its options parsed by the CLI), its output with virsh's empty line after."""
    COMMANDS[command].handler(ctx, COMMANDS[command].parse(list(argv)))
    ctx.out.end_command()
    return str(ctx.out.stdout.getvalue())


def printed(command: str, *argv: str) -> str:
    return _run(NoDaemon(), command, *argv)


# ---------------------------------------------------------------- attach-disk
def test_attach_disk_print_xml_with_every_option() -> None:
    out = printed("attach-disk", "dom", "/img/d.qcow2", "vdb", "--targetbus", "virtio", "--driver", "qemu",
                  "--subdriver", "qcow2", "--cache", "writeback", "--io", "threads", "--type", "disk",
                  "--mode", "shareable", "--sourcetype", "file", "--serial", "SN-1", "--print-xml")
    assert out == ("<disk type='file' device='disk'>\n"
                   "  <driver name='qemu' type='qcow2' cache='writeback' io='threads'/>\n"
                   "  <source file='/img/d.qcow2'/>\n"
                   "  <target dev='vdb' bus='virtio'/>\n"
                   "  <shareable/>\n"
                   "  <serial>SN-1</serial>\n"
                   "</disk>\n\n")


def test_attach_disk_escapes_and_reads_back() -> None:
    out = printed("attach-disk", "dom", f"/img/{NASTY}", "sdc", "--serial", NASTY, "--cache", "a&b",
                  "--sourcetype", "file", "--print-xml")
    assert out == ("<disk type='file'>\n"
                   "  <driver cache='a&amp;b'/>\n"
                   f"  <source file='/img/{NASTY_OUT}'/>\n"
                   "  <target dev='sdc'/>\n"
                   f"  <serial>{NASTY_OUT}</serial>\n"
                   "</disk>\n\n")
    disk = parse_disk_xml(out)
    assert (disk.source, disk.serial, disk.cache, disk.bus, disk.device) == (
        f"/img/{NASTY}", NASTY, "a&b", "scsi", "disk")


# ---------------------------------------------------------------- attach-interface
@pytest.mark.parametrize(("argv", "xml"), [
    (("network", "default"), "<interface type='network'>\n  <source network='default'/>\n</interface>\n"),
    (("bridge", "br0", "--mac", "52:54:00:aa:bb:cc", "--model", "virtio", "--target", "vnet9"),
     ("<interface type='bridge'>\n  <source bridge='br0'/>\n  <mac address='52:54:00:aa:bb:cc'/>\n"
     "  <target dev='vnet9'/>\n  <model type='virtio'/>\n</interface>\n")),
    (("direct", "eth0"), "<interface type='direct'>\n  <source dev='eth0' mode='vepa'/>\n</interface>\n"),
    (("direct", "eth0", "--source-mode", "bridge"),
     "<interface type='direct'>\n  <source dev='eth0' mode='bridge'/>\n</interface>\n"),
    (("ethernet", "tap7"), "<interface type='ethernet'>\n  <target dev='tap7'/>\n</interface>\n"),
    (("ethernet", "tap7", "--target", "tap8"), "<interface type='ethernet'>\n  <target dev='tap8'/>\n</interface>\n"),
    (("user", "ignored"), "<interface type='user'>\n</interface>\n"),
])
def test_attach_interface_print_xml(argv: tuple[str, ...], xml: str) -> None:
    assert printed("attach-interface", "dom", *argv, "--print-xml") == xml + "\n"


def test_attach_interface_escapes_and_reads_back() -> None:
    out = printed("attach-interface", "dom", "bridge", NASTY, "--model", "a<b", "--print-xml")
    assert out == (f"<interface type='bridge'>\n  <source bridge='{NASTY_OUT}'/>\n  <model type='a&lt;b'/>\n"
                   "</interface>\n\n")
    iface = parse_interface_xml(out)
    assert (iface.source, iface.model) == ((("bridge", NASTY),), "a<b")


def test_attach_interface_rejects_an_unknown_type() -> None:
    with pytest.raises(InvalidArgument, match="unknown interface type 'vhostuser'"):
        printed("attach-interface", "dom", "vhostuser", "x", "--print-xml")


# ---------------------------------------------------------------- pool-define-as / pool-create-as
def test_pool_define_as_print_xml_with_every_option() -> None:
    out = printed("pool-define-as", "n1", "netfs", "--source-host", "nfs.example", "--source-path", "/export",
                  "--source-format", "nfs", "--target", "/srv/n1", "--print-xml")
    assert out == ("<pool type='netfs'>\n  <name>n1</name>\n  <source>\n    <host name='nfs.example'/>\n"
                   "    <dir path='/export'/>\n    <format type='nfs'/>\n  </source>\n  <target>\n"
                   "    <path>/srv/n1</path>\n  </target>\n</pool>\n\n")
    assert parse_pool_xml(out).source.host == "nfs.example"
    iscsi = printed("pool-create-as", "i1", "iscsi", "--source-host", "127.0.0.1", "--source-dev",
                    "iqn.2024-01.org.example:t", "--source-initiator", "iqn.2024-01.org.example:i",
                    "--target", "/dev/disk/by-path", "--print-xml")
    assert iscsi == ("<pool type='iscsi'>\n  <name>i1</name>\n  <source>\n    <host name='127.0.0.1'/>\n"
                     "    <device path='iqn.2024-01.org.example:t'/>\n    <initiator>\n"
                     "      <iqn name='iqn.2024-01.org.example:i'/>\n    </initiator>\n  </source>\n  <target>\n"
                     "    <path>/dev/disk/by-path</path>\n  </target>\n</pool>\n\n")


def test_pool_define_as_escapes_and_reads_back() -> None:
    out = printed("pool-define-as", "p&1", "dir", "--target", f"/srv/{NASTY}", "--print-xml")
    assert out == (f"<pool type='dir'>\n  <name>p&amp;1</name>\n  <target>\n    <path>/srv/{NASTY_OUT}</path>\n"
                   "  </target>\n</pool>\n\n")
    pool = parse_pool_xml(out)
    assert (pool.name, pool.target.path) == ("p&1", f"/srv/{NASTY}")


# ---------------------------------------------------------------- vol-create-as / vol-clone
def test_vol_create_as_print_xml() -> None:
    out = printed("vol-create-as", "default", "v.qcow2", "1.5G", "--allocation", "10M", "--format", "qcow2",
                  "--print-xml")
    assert out == ("<volume>\n  <name>v.qcow2</name>\n  <capacity>1610612736</capacity>\n"
                   "  <allocation>10485760</allocation>\n  <target>\n    <format type='qcow2'/>\n  </target>\n"
                   "</volume>\n\n")
    nasty = printed("vol-create-as", "default", NASTY, "4096", "--print-xml")
    assert nasty == f"<volume>\n  <name>{NASTY_OUT}</name>\n  <capacity>4096</capacity>\n</volume>\n\n"
    assert parse_volume_xml(nasty).name == NASTY


@pytest.mark.parametrize(("argv", "why"), [
    (("1Q",), "Malformed size 1Q: unknown suffix 'Q'; write a whole number of bytes"),
    (("1M", "--allocation", "1.2.3"), "Malformed allocation 1.2.3: write a whole number of bytes"),
])
def test_vol_create_as_size_messages(argv: tuple[str, ...], why: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(why)):
        printed("vol-create-as", "default", "v.img", *argv, "--print-xml")


VOL_DUMP = """<volume type='file'>
  <name>a.qcow2</name>
  <key>/pool/a.qcow2</key>
  <capacity unit='bytes'>1073741824</capacity>
  <allocation unit='bytes'>200704</allocation>
  <physical unit='bytes'>200704</physical>
  <target>
    <path>/pool/a.qcow2</path>
    <format type='qcow2'/>
  </target>
</volume>
"""


class FakeVolume:
    name = "a.qcow2"

    def xml(self) -> str:
        return VOL_DUMP


def _ctx(**kw: Any) -> SimpleNamespace:
    return SimpleNamespace(out=Output(stdout=io.StringIO()), **kw)


def test_vol_clone_print_xml_renames_through_the_model() -> None:
    ctx = _ctx(conn=SimpleNamespace(lookup_volume=lambda ref, pool: FakeVolume()))
    out = _run(ctx, "vol-clone", "a.qcow2", NASTY, "--print-xml")
    assert out == VOL_DUMP.replace("<name>a.qcow2</name>", f"<name>{NASTY_OUT}</name>") + "\n"
    assert parse_volume_xml(out).name == NASTY


# ---------------------------------------------------------------- detach-disk / change-media
DOMAIN_XML = """<domain type='kvm' id='3'>
  <name>d</name>
  <uuid>0b0a8e49-6c0d-4a4f-8f8c-0e0d1c2b3a49</uuid>
  <memory unit='KiB'>65536</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='none'/>
      <source file='/img/{name}.qcow2' index='1'/>
      <target dev='vda' bus='virtio'/>
      <serial>{serial}</serial>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/img/cd.iso' index='2'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
  </devices>
</domain>
"""


class FakeDomain:
    """dumpxml of a running domain (live: source indexes) and its definition (another serial)."""

    def xml(self, inactive: bool = False) -> str:
        return DOMAIN_XML.format(name="live" if not inactive else "def", serial="S&amp;1" if not inactive else "D")


def test_detach_disk_print_xml_by_target_or_source() -> None:
    ctx = _ctx(domain=lambda ref: FakeDomain())
    expected = ("<disk type='file' device='disk'>\n  <driver name='qemu' type='qcow2' cache='none'/>\n"
                "  <source file='/img/live.qcow2' index='1'/>\n  <target dev='vda' bus='virtio'/>\n"
                "  <serial>S&amp;1</serial>\n</disk>\n\n")
    assert _run(ctx, "detach-disk", "d", "vda", "--live", "--print-xml") == expected
    ctx = _ctx(domain=lambda ref: FakeDomain())
    assert _run(ctx, "detach-disk", "d", "/img/live.qcow2", "--live", "--print-xml") == expected
    ctx = _ctx(domain=lambda ref: FakeDomain())
    assert "<serial>D</serial>" in _run(ctx, "detach-disk", "d", "vda", "--config", "--print-xml")
    ctx = _ctx(domain=lambda ref: FakeDomain())
    with pytest.raises(InvalidArgument, match="No disk found whose source path or target is vdz"):
        _run(ctx, "detach-disk", "d", "vdz", "--live", "--print-xml")


def test_change_media_print_xml_insert_and_eject() -> None:
    ctx = _ctx(domain=lambda ref: FakeDomain())
    out = _run(ctx, "change-media", "d", "sda", f"/iso/{NASTY}.iso", "--update", "--live", "--print-xml")
    assert out == ("<disk type='file' device='cdrom'>\n  <driver name='qemu' type='raw'/>\n"
                   f"  <source file='/iso/{NASTY_OUT}.iso'/>\n  <target dev='sda' bus='sata'/>\n  <readonly/>\n"
                   "</disk>\n\n")
    assert parse_disk_xml(out).source == f"/iso/{NASTY}.iso"
    ctx = _ctx(domain=lambda ref: FakeDomain())
    out = _run(ctx, "change-media", "d", "/img/cd.iso", "--eject", "--live", "--print-xml")
    assert out == ("<disk type='file' device='cdrom'>\n  <driver name='qemu' type='raw'/>\n"
                   "  <target dev='sda' bus='sata'/>\n  <readonly/>\n</disk>\n\n")
    ctx = _ctx(domain=lambda ref: FakeDomain())
    out = _run(ctx, "change-media", "d", "sda", "/dev/sr0", "--insert", "--block", "--live", "--print-xml")
    assert out.startswith("<disk type='block' device='cdrom'>\n") and "  <source dev='/dev/sr0'/>\n" in out


# ---------------------------------------------------------------- snapshot-create-as
def test_snapshot_create_as_print_xml() -> None:
    out = printed("snapshot-create-as", "dom", NASTY, "a <b> & c", "--print-xml")
    assert out == (f"<domainsnapshot>\n  <name>{NASTY_OUT}</name>\n"
                   "  <description>a &lt;b&gt; &amp; c</description>\n</domainsnapshot>\n\n")
    snap = parse_snapshot_xml(out)
    assert (snap.name, snap.description) == (NASTY, "a <b> & c")
    assert printed("snapshot-create-as", "dom", "--print-xml") == "<domainsnapshot>\n</domainsnapshot>\n\n"


# ---------------------------------------------------------------- sizes
def test_blockresize_reads_kib_without_a_suffix() -> None:
    from pyvirt.cli.disk_cmds import resize_bytes

    assert resize_bytes("1.5") == 1536 and resize_bytes(" 2 ") == 2048 and resize_bytes("3M") == 3 * 1024**2
    with pytest.raises(InvalidArgument, match="Malformed size 2X: unknown suffix 'X'; write a whole number of KiB"):
        resize_bytes("2X")


def test_one_size_parser_names_the_value_when_asked() -> None:
    with pytest.raises(InvalidArgument, match=r"^Malformed capacity 1\.\.2: write a whole number of bytes"):
        parse_size("1..2", "b", what="capacity")
    with pytest.raises(InvalidArgument, match=r"^size '1\.\.2' is not a number"):  # other callers keep their words
        parse_size("1..2", "b")
    with pytest.raises(InvalidArgument, match=r"^unknown size unit 'Q'"):
        parse_size("1Q")


# ---------------------------------------------------------------- no XML built as text in cli/
CLI_DIR = Path(pyvirt.cli.__file__).parent
# markup in a string literal: an element with an attribute, or a closing tag (help texts such as
# "mode attribute of <source/> element" and usage such as "<domain>" are not markup being built)
MARKUP = re.compile(r"<[A-Za-z][\w:.-]*\s+[\w:.-]+\s*=\s*['\"{]|</[A-Za-z]")
XML_TEXT_TOOLS = {"re", "xml", "xml.etree", "xml.etree.ElementTree", "xml.dom", "xml.dom.minidom"}


def _literal_text(n: ast.AST) -> str | None:
    if isinstance(n, ast.Constant) and isinstance(n.value, str):
        return n.value
    if isinstance(n, ast.JoinedStr):  # f-string: its literal parts, with {} for each value
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in n.values)
    return None


def _offences(source: str) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    docstrings = {id(b.body[0].value) for b in ast.walk(tree)
                  if isinstance(b, (ast.Module, ast.FunctionDef, ast.ClassDef)) and b.body
                  and isinstance(b.body[0], ast.Expr) and isinstance(b.body[0].value, ast.Constant)}
    found = []
    for n in ast.walk(tree):
        text = _literal_text(n)
        if text is not None and id(n) not in docstrings and MARKUP.search(text):
            found.append((n.lineno, f"markup in a string {text[:50]!r}"))
        if isinstance(n, ast.Import):
            found += [(n.lineno, f"import {a.name}") for a in n.names if a.name in XML_TEXT_TOOLS]
        if isinstance(n, ast.ImportFrom) and n.module is not None and (
                n.module in XML_TEXT_TOOLS or n.module.endswith("xml_util")
                or any(a.name in ("escape", "xml_escape") for a in n.names)):
            found.append((n.lineno, f"from {n.module} import ..."))
    return found


def test_the_scan_finds_xml_built_as_text() -> None:
    """The scan below catches what the CLI used to do (so a clean result means something)."""
    old = '''
def disk(a):
    import re
    from ..model.xml_util import escape
    head = f"<disk type='{a}'" + ">"
    line = re.sub(r"type='[^']*'", "x", head)
    return head + f"  <serial>{a}</serial>" + "</disk>" + "<readonly/>"
'''
    assert {line for line, _ in _offences(old)} == {3, 4, 5, 7}
    fine = '''
def usage(o):
    """Docstrings may show <disk type='file'> examples."""
    return f"<{o}>" + "requires <target> option" + "<number>"
'''
    assert _offences(fine) == []


@pytest.mark.parametrize("path", sorted(CLI_DIR.glob("*.py")), ids=lambda p: p.name)
def test_cli_builds_no_xml_as_text(path: Path) -> None:
    """XML is written by model formatters and read by model parsers, never formatted or scraped here."""
    assert _offences(path.read_text()) == [], f"{path.name}: build a model object and use the model's formatter"
