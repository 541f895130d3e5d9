"""Pure helpers of the disk commands: the XML attach-disk sends, tables and stats as virsh prints them.

Expected texts are virsh 9.0's, captured from `virsh -c test:///default` (its domain `test` and
attach-disk --print-xml) and from virsh-domain-monitor.c's formats where the test driver has no data.
"""
from __future__ import annotations

import io
import os
import stat
from types import SimpleNamespace

import pytest

from pyvirt.cli.disk_cmds import (
    blkinfo_text,
    blklist_text,
    blkstat_text,
    cmd_attach_disk,
    disk_xml,
    find_disk,
    media_disk,
    pretty3,
    resize_bytes,
)
from pyvirt.cli.main import COMMANDS, main
from pyvirt.cli.output import Output
from pyvirt.errors import InvalidArgument
from pyvirt.model.domain_xml import format_disk_xml, parse_disk_xml


def attach_args(**kw: object) -> dict[str, object]:
    a = COMMANDS["attach-disk"].parse(["dom", "/tmp/x.qcow2", "vdb"])
    a.update(kw)
    return a


def test_attach_disk_xml_is_virshs_print_xml() -> None:
    a = attach_args(driver="qemu", subdriver="qcow2", cache="none", io="native", targetbus="virtio")
    assert disk_xml(a) == (
        "<disk type='file'>\n"
        "  <driver name='qemu' type='qcow2' cache='none' io='native'/>\n"
        "  <source file='/tmp/x.qcow2'/>\n"
        "  <target dev='vdb' bus='virtio'/>\n"
        "</disk>\n")
    a = attach_args(source="/dev/sdz", target="sdb", sourcetype="block", type="cdrom", mode="readonly",
                    targetbus="sata", serial="ABC")
    assert disk_xml(a) == (
        "<disk type='block' device='cdrom'>\n"
        "  <source dev='/dev/sdz'/>\n"
        "  <target dev='sdb' bus='sata'/>\n"
        "  <readonly/>\n"
        "  <serial>ABC</serial>\n"
        "</disk>\n")
    assert disk_xml(attach_args(source="/tmp/x", target="vdc", mode="shareable")) == (
        "<disk type='file'>\n  <source file='/tmp/x'/>\n  <target dev='vdc'/>\n  <shareable/>\n</disk>\n")


def test_attach_disk_xml_parses_into_the_disk_asked_for() -> None:
    disk = parse_disk_xml(disk_xml(attach_args(source="/i/it's.raw", subdriver="raw", mode="readonly",
                                               serial="<S&1>")))
    assert (disk.source, disk.format, disk.readonly, disk.serial, disk.bus) == (
        "/i/it's.raw", "raw", True, "<S&1>", "virtio")


def _a_block_device() -> str | None:
    for name in sorted(os.listdir("/sys/block")):
        path = f"/dev/{name}"
        if os.path.exists(path) and stat.S_ISBLK(os.stat(path).st_mode):
            return path
    return None


def test_attach_disk_finds_a_block_device_without_sourcetype() -> None:
    assert disk_xml(attach_args(source="/nonexistent/a.img")).startswith("<disk type='file'>\n")
    dev = _a_block_device()
    if dev is None:
        pytest.skip("no block device on this machine to tell apart from a file")
    assert disk_xml(attach_args(source=dev)).startswith("<disk type='block'>\n")


@pytest.mark.parametrize(("kw", "why"), [
    ({"mode": "rw"}, "No support for rw in command 'attach-disk'"),
    ({"type": "floppy"}, "No support for floppy"),
    ({"sourcetype": "network"}, "Unknown source type: 'network'"),
])
def test_attach_disk_rejects_what_virsh_rejects(kw: dict[str, str], why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        disk_xml(attach_args(**kw))


def test_domblklist_plain_and_details_match_virsh() -> None:
    rows = [{"type": "file", "device": "disk", "target": "vda", "source": "/guest/diskimage1"}]
    assert blklist_text(rows, details=False) == (
        " Target   Source\n-----------------------------\n vda      /guest/diskimage1\n")
    assert blklist_text(rows, details=True) == (
        " Type   Device   Target   Source\n"
        "---------------------------------------------\n"
        " file   disk     vda      /guest/diskimage1\n")
    empty = [{"type": "file", "device": "cdrom", "target": "sda", "source": None}]
    assert blklist_text(empty, details=False).endswith(" sda      -\n")


VIRSH_INFO = {"target": "vda", "capacity": 1099506450432, "allocation": 1099511627776, "physical": 1099511627776}


def test_domblkinfo_one_all_and_human_match_virsh() -> None:
    assert blkinfo_text([VIRSH_INFO], all_disks=False, human=False) == (
        "Capacity:       1099506450432\nAllocation:     1099511627776\nPhysical:       1099511627776\n")
    assert blkinfo_text([VIRSH_INFO], all_disks=True, human=False) == (
        " Target   Capacity        Allocation      Physical\n"
        "---------------------------------------------------------\n"
        " vda      1099506450432   1099511627776   1099511627776\n")
    assert blkinfo_text([VIRSH_INFO], all_disks=False, human=True) == (
        "Capacity:       1023.995 GiB\nAllocation:     1.000 TiB\nPhysical:       1.000 TiB\n")
    empty = {"target": "sda", "capacity": 0, "allocation": 0, "physical": 0}  # a cdrom without media
    assert blkinfo_text([empty], all_disks=True, human=True).endswith(" sda      -          -            -\n")


@pytest.mark.parametrize(("n", "text"), [(0, "0.000 B"), (1023, "1023.000 B"), (1536, "1.500 KiB"),
                                         (5 * 1024**3, "5.000 GiB"), (1024**6, "1.000 EiB")])
def test_pretty3(n: int, text: str) -> None:
    assert pretty3(n) == text


STATS = {"device": "vda", "rd_req": 10, "rd_bytes": 4096, "wr_req": 2, "wr_bytes": 512, "flush_operations": 1,
         "rd_total_times": 300, "wr_total_times": 200, "flush_total_times": 100}


def test_domblkstat_legacy_names_in_virshs_order() -> None:
    assert blkstat_text(STATS, human=False) == (
        "vda rd_req 10\nvda rd_bytes 4096\nvda wr_req 2\nvda wr_bytes 512\nvda flush_operations 1\n"
        "vda rd_total_times 300\nvda wr_total_times 200\nvda flush_total_times 100\n")
    summed = blkstat_text({**STATS, "device": ""}, human=False)  # no device: every disk, virsh's leading space
    assert summed.startswith(" rd_req 10\n rd_bytes 4096\n")


def test_domblkstat_human() -> None:
    text = blkstat_text(STATS, human=True)
    assert text.startswith("Device: vda\n number of read operations:      10\n number of bytes read:           4096\n")
    assert text.endswith(" total duration of flushes (ns): 100\n")


@pytest.mark.parametrize(("text", "size"), [("1024", 1024 * 1024), ("10G", 10 * 1024**3), ("512M", 512 * 1024**2),
                                            ("4096B", 4096), ("1KiB", 1024)])
def test_blockresize_size_is_kib_without_suffix(text: str, size: int) -> None:
    assert resize_bytes(text) == size


@pytest.mark.parametrize("text", ["0", "abc", "-5G"])
def test_blockresize_bad_sizes(text: str) -> None:
    with pytest.raises(InvalidArgument):
        resize_bytes(text)


DUMP = """<domain type='kvm'>
  <name>x</name>
  <memory unit='KiB'>65536</memory>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='/img/a.raw' index='1'/>
      <target dev='vda' bus='virtio'/>
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


def disk_element(domain_xml: str, ref: str) -> str | None:
    disk = find_disk(domain_xml, ref)
    return None if disk is None else format_disk_xml(disk)


def test_disk_element_by_target_or_path() -> None:
    assert disk_element(DUMP, "vda") == (
        "<disk type='file' device='disk'>\n  <driver name='qemu' type='raw'/>\n"
        "  <source file='/img/a.raw' index='1'/>\n  <target dev='vda' bus='virtio'/>\n</disk>\n")
    assert disk_element(DUMP, "/img/cd.iso") == disk_element(DUMP, "sda")
    assert disk_element(DUMP, "vdz") is None


def test_change_media_print_xml() -> None:
    disk = find_disk(DUMP, "sda")
    assert disk is not None
    assert format_disk_xml(media_disk(disk, None, False)) == (
        "<disk type='file' device='cdrom'>\n  <driver name='qemu' type='raw'/>\n"
        "  <target dev='sda' bus='sata'/>\n  <readonly/>\n</disk>\n")
    assert format_disk_xml(media_disk(disk, "/dev/sr0", True)) == (
        "<disk type='block' device='cdrom'>\n  <driver name='qemu' type='raw'/>\n  <source dev='/dev/sr0'/>\n"
        "  <target dev='sda' bus='sata'/>\n  <readonly/>\n</disk>\n")


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(["-c", "unix:///nonexistent/pyvirt.sock", *argv], stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_print_xml_prints_and_sends_nothing() -> None:
    out = io.StringIO()
    ctx = SimpleNamespace(out=Output(stdout=out), domain=None)  # no connection: calling the daemon would fail
    args = COMMANDS["attach-disk"].parse(["dom", "/img/b.raw", "vdb", "--print-xml", "--subdriver", "raw"])
    cmd_attach_disk(ctx, args)  # type: ignore[arg-type]
    ctx.out.end_command()
    assert out.getvalue() == ("<disk type='file'>\n  <driver type='raw'/>\n  <source file='/img/b.raw'/>\n"
                              "  <target dev='vdb'/>\n</disk>\n\n")


@pytest.mark.parametrize(("argv", "why"), [
    (("attach-disk", "dom", "/a"), "requires <target> option"),
    (("blockresize", "dom", "vda"), "requires <size> option"),
    (("detach-device", "dom"), "requires <file> option"),
    (("domblkstat",), "requires <domain> option"),
])
def test_usage_errors(argv: tuple[str, ...], why: str) -> None:
    rc, out, err = run_cli(*argv)
    assert rc == 1 and out == "" and why in err, err


def test_commands_are_in_virshs_help_groups() -> None:
    groups = {name: COMMANDS[name].group for name in (
        "attach-disk", "detach-disk", "attach-device", "detach-device", "change-media", "blockresize",
        "domblklist", "domblkinfo", "domblkstat")}
    assert groups == {"attach-disk": "domain", "detach-disk": "domain", "attach-device": "domain",
                      "detach-device": "domain", "change-media": "domain", "blockresize": "domain",
                      "domblklist": "monitor", "domblkinfo": "monitor", "domblkstat": "monitor"}
    assert COMMANDS["change-media"].synopsis() == (
        "change-media <domain> <path> [--source <string>] [--eject] [--insert] [--update] [--current] [--live] "
        "[--config] [--force] [--print-xml] [--block]")
