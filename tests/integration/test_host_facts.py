"""The host commands against a real daemon: nodeinfo, nodememstats, nodecpustats, freecell, freepages,
capabilities and domcapabilities parsed back, allocpages and a guest in huge pages, and resource tuning
(schedinfo, memtune, blkiotune) with the cgroup note where the host has no cgroup v2 controllers."""
from __future__ import annotations

import contextlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.host.cgroup import CgroupV2
from pyvirt.host.node import NodeFs, parse_meminfo

from .conftest import DaemonHandle, domain_xml, fails, ok

pytestmark = pytest.mark.integration

HUGE = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")


def meminfo() -> dict[str, int]:
    return parse_meminfo(Path("/proc/meminfo").read_text())


def test_nodeinfo_and_memory_and_cpu_stats(daemon: DaemonHandle) -> None:
    info = ok(daemon, "nodeinfo")
    fields = dict(re.findall(r"^(.+?:)\s+(.*)$", info, re.M))
    assert list(fields)[:2] == ["CPU model:", "CPU(s):"]
    assert fields["CPU(s):"] == str(len([c for c in Path("/proc/stat").read_text().split() if re.match(r"cpu\d", c)]))
    assert fields["Memory size:"] == f"{meminfo()['MemTotal']} KiB"
    assert fields["NUMA cell(s):"] == str(len(NodeFs().cells()))

    mem = ok(daemon, "nodememstats")
    assert re.fullmatch(r"total  : +\d+ KiB\nfree   : +\d+ KiB\nbuffers: +\d+ KiB\ncached : +\d+ KiB\n\n", mem)
    total = int(re.search(r"total\s*:\s*(\d+)", mem).group(1))  # type: ignore[union-attr]
    assert total == meminfo()["MemTotal"]
    assert re.fullmatch(r"total  : +\d+ KiB\nfree   : +\d+ KiB\n\n", ok(daemon, "nodememstats", "--cell", "0"))

    cpu = ok(daemon, "nodecpustats")
    numbers = dict(re.findall(r"^(\w+):\s+(\d+)$", cpu, re.M))
    assert list(numbers) == ["user", "system", "idle", "iowait"] and int(numbers["idle"]) > 0
    one = ok(daemon, "nodecpustats", "--cpu", "0")
    assert int(dict(re.findall(r"^(\w+):\s+(\d+)$", one, re.M))["idle"]) <= int(numbers["idle"])
    pct = ok(daemon, "nodecpustats", "--percent")
    shares = dict(re.findall(r"^(\w+):\s+([\d.]+)%$", pct, re.M))
    assert list(shares) == ["usage", "user", "system", "idle", "iowait"]
    assert abs(sum(float(shares[k]) for k in ("user", "system", "idle", "iowait")) - 100) < 1.0

    err = fails(daemon, "nodecpustats", "--cpu", "999")
    assert "CPU 999 does not exist" in err
    assert "NUMA cell 77 does not exist" in fails(daemon, "nodememstats", "--cell", "77")


def test_freecell_and_freepages(daemon: DaemonHandle) -> None:
    total = ok(daemon, "freecell")
    assert re.fullmatch(r"Total: \d+ KiB\n\n", total)
    every = ok(daemon, "freecell", "--all")
    cells = re.findall(r"^\s+(\d+):\s+(\d+) KiB$", every, re.M)
    assert [int(c) for c, _ in cells] == [c.id for c in NodeFs().cells()]
    assert every.endswith(f"--------------------\nTotal: {sum(int(f) for _, f in cells):>10} KiB\n\n")
    assert re.fullmatch(r"0: \d+ KiB\n\n", ok(daemon, "freecell", "--cellno", "0"))
    assert "mutually exclusive" in fails(daemon, "freecell", "--all", "--cellno", "0")

    pages = ok(daemon, "freepages", "--all")
    assert pages.startswith("Node 0:\n4KiB: ")
    assert re.search(r"^2048KiB: \d+$", pages, re.M)
    assert re.fullmatch(r"2048KiB: \d+\n\n", ok(daemon, "freepages", "--cellno", "0", "--pagesize", "2M"))
    assert "missing cellno argument" in fails(daemon, "freepages")
    assert "malformed" in fails(daemon, "freepages", "--cellno", "0", "--pagesize", "huge")


def test_capabilities_xml_parses_back_and_matches_json(daemon: DaemonHandle) -> None:
    root = ET.fromstring(ok(daemon, "capabilities"))
    host = root.find("host")
    assert host is not None
    features = [f.get("name") for f in host.findall("cpu/feature")]
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    assert features == flags.split(":", 1)[1].split()
    assert {p.get("size") for p in host.findall("cpu/pages")} >= {"4", "2048"}
    cells = host.findall("topology/cells/cell")
    assert len(cells) == int(host.find("topology/cells").get("num"))  # type: ignore[union-attr, arg-type]
    first = cells[0]
    assert first.find("memory").text == str(NodeFs().cells()[0].memory_kib)  # type: ignore[union-attr]
    assert first.find("pages[@size='4']") is not None and first.find("cpus/cpu").get("core_id") is not None  # type: ignore[union-attr]
    guest = root.find("guest/arch")
    machines = [m.text for m in guest.findall("machine")]  # type: ignore[union-attr]
    assert "microvm" in machines and "q35" in machines
    assert [d.get("type") for d in guest.findall("domain")] == ["qemu"] or "kvm" in [  # type: ignore[union-attr]
        d.get("type") for d in guest.findall("domain")]  # type: ignore[union-attr]

    data = json.loads(ok(daemon, "--json", "capabilities"))
    assert data["host"]["cpu"]["features"] == features
    assert len(data["host"]["cells"]) == len(cells)
    assert {m["name"] for m in data["guests"][0]["machines"]} <= set(machines)
    assert "tcg" in data["guests"][0]["accelerators"]


def test_domcapabilities(daemon: DaemonHandle) -> None:
    root = ET.fromstring(ok(daemon, "domcapabilities", "--virttype", "qemu", "--machine", "microvm"))
    assert root.tag == "domainCapabilities"
    assert root.findtext("domain") == "qemu" and root.findtext("machine") == "microvm"
    assert [v.text for v in root.findall("devices/disk/enum[@name='bus']/value")] == ["virtio"]
    assert root.find("cpu/mode[@name='host-passthrough']").get("supported") == "no"  # type: ignore[union-attr]
    q35 = ET.fromstring(ok(daemon, "domcapabilities", "--virttype", "qemu"))
    assert q35.findtext("machine", "").startswith("pc-q35-")
    assert "sata" in [v.text for v in q35.findall("devices/disk/enum[@name='bus']/value")]
    assert "machine type 'frobozz'" in fails(daemon, "domcapabilities", "--virttype", "qemu", "--machine", "frobozz")
    assert "architecture 'aarch64'" in fails(daemon, "domcapabilities", "--arch", "aarch64")


@contextlib.contextmanager
def huge_pages_restored() -> Iterator[int]:
    before = int(HUGE.read_text())
    try:
        yield before
    finally:
        HUGE.write_text(f"{before}\n")
        assert int(HUGE.read_text()) == before


@pytest.mark.skipif(not HUGE.exists(), reason="this kernel has no 2 MiB huge pages")
def test_allocpages_and_a_guest_in_huge_pages(daemon: DaemonHandle, guest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    xml = domain_xml("huge1", guest, memory_mib=128).replace(  # the tiny guest needs 128 MiB to boot
        "<vcpu>", "<memoryBacking><hugepages/></memoryBacking><vcpu>", 1)
    (tmp_path / "huge1.xml").write_text(xml)
    ok(daemon, "define", str(tmp_path / "huge1.xml"))
    with huge_pages_restored():
        HUGE.write_text("0\n")
        err = fails(daemon, "start", "huge1")
        assert "needs 64 huge pages of 2048 KiB" in err and "none are reserved" in err
        assert "pyvirt allocpages 2048 64" in err

        too_many = meminfo()["MemTotal"] // 2048 + 1
        err = fails(daemon, "allocpages", "2M", str(too_many))
        assert "more than the" in err and "KiB of memory this host has" in err
        assert int(HUGE.read_text()) == 0  # nothing was changed
        assert "malformed" in fails(daemon, "allocpages", "2M", "-3")

        ok(daemon, "allocpages", "2M", "60")
        assert int(HUGE.read_text()) == 60
        assert "the pool has 60 free (of 60)" in fails(daemon, "start", "huge1")
        ok(daemon, "allocpages", "2048", "12", "--add")
        assert int(HUGE.read_text()) == 72
        free_before = meminfo()["HugePages_Free"]
        ok(daemon, "start", "huge1")
        try:
            daemon.wait_serial("huge1")
            assert free_before - meminfo()["HugePages_Free"] == 64  # the guest's RAM came from the pool
            assert re.search(r"^2048KiB: 8$", ok(daemon, "freepages", "--cellno", "0", "--pagesize", "2048"), re.M)
        finally:
            ok(daemon, "destroy", "huge1")
        assert meminfo()["HugePages_Free"] == free_before
    ok(daemon, "undefine", "huge1")


def test_tuning_read_set_and_the_cgroup_note(daemon: DaemonHandle, guest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    xml = domain_xml("tune1", guest, memory_mib=128).replace(
        "<vcpu>1</vcpu>", "<memtune><hard_limit unit='GiB'>2</hard_limit></memtune><vcpu>1</vcpu>"
                          "<cputune><shares>512</shares></cputune>", 1)
    (tmp_path / "tune1.xml").write_text(xml)
    ok(daemon, "define", str(tmp_path / "tune1.xml"))
    assert ok(daemon, "schedinfo", "tune1") == ("Scheduler      : posix\ncpu_shares     : 512\n"
                                                 "vcpu_period    : 100000\nvcpu_quota     : -1\n\n")
    ok(daemon, "schedinfo", "tune1", "--config", "--set", "cpu_shares=2048", "vcpu_quota=50000")
    ok(daemon, "memtune", "tune1", "--config", "--soft-limit", "1G")
    ok(daemon, "blkiotune", "tune1", "--config", "--weight", "700")
    dumped = ET.fromstring(ok(daemon, "dumpxml", "tune1"))
    assert dumped.findtext("cputune/shares") == "2048" and dumped.findtext("cputune/quota") == "50000"
    assert dumped.findtext("memtune/hard_limit") == str(2 * 1024 * 1024)
    assert dumped.findtext("memtune/soft_limit") == str(1024 * 1024)
    assert dumped.findtext("blkiotune/weight") == "700"
    assert ok(daemon, "memtune", "tune1") == ("hard_limit     : 2097152\nsoft_limit     : 1048576\n"
                                               "swap_hard_limit: unlimited\n\n")
    assert ok(daemon, "blkiotune", "tune1") == "weight         : 700\n\n"

    # bad input: nothing changes
    for args, words in ((("schedinfo", "tune1", "--config", "--set", "cpu_shares=1"), ("cpu_shares=1", "2 to 262144")),
                        (("schedinfo", "tune1", "--config", "--set", "frobs=3"), ("'frobs'", "cpu_shares")),
                        (("schedinfo", "tune1", "--set", "cpu_shares"), ("name=value",)),
                        (("blkiotune", "tune1", "--config", "--weight", "5"), ("weight 5", "100 to 1000")),
                        (("memtune", "tune1", "--config", "--hard-limit", "64M"), ("below what domain 'tune1' uses",
                                                                                   "131072 KiB")),
                        (("memtune", "tune1", "--config", "--soft-limit", "4G"), ("above hard_limit",))):
        err = fails(daemon, *args)
        for w in words:
            assert w in err, (args, err)
    assert ET.fromstring(ok(daemon, "dumpxml", "tune1")).findtext("cputune/shares") == "2048"

    support = CgroupV2().support()
    ok(daemon, "start", "tune1")
    try:
        rss = int(re.search(r"^rss (\d+)$", ok(daemon, "dommemstat", "tune1"), re.M).group(1))  # type: ignore[union-attr]
        err = fails(daemon, "memtune", "tune1", "--hard-limit", str(rss // 2))
        assert "QEMU holds" in err and "the kernel would kill the guest" in err
        if support.usable:
            assert "note" not in ok(daemon, "schedinfo", "tune1")
            ok(daemon, "schedinfo", "tune1", "--live", "--set", "cpu_shares=1024")
        else:
            note = re.search(r"^CPU note:\s+(.*)$", ok(daemon, "dominfo", "tune1"), re.M)
            assert note is not None and "are not applied" in note.group(1) and support.reason in note.group(1)
            assert f"not in force: {support.reason}" in ok(daemon, "schedinfo", "tune1")
            err = fails(daemon, "schedinfo", "tune1", "--live", "--set", "cpu_shares=1024")
            assert "live" in err and "--config" in err and "cgroup v2" in err
            assert ET.fromstring(ok(daemon, "dumpxml", "tune1")).findtext("cputune/shares") == "2048"
    finally:
        ok(daemon, "destroy", "tune1")
    ok(daemon, "undefine", "tune1")
