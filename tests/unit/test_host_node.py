"""Node facts (host/node.py) and cgroup v2 limits (host/cgroup.py) from the kernel's text, on trees of our own."""
from __future__ import annotations

from pathlib import Path

import pytest

from pyvirt.errors import HostError, InvalidArgument
from pyvirt.host.cgroup import CgroupV2, cgroup2_mounts, limit_files, shares_to_weight
from pyvirt.host.node import (
    USER_HZ,
    NodeFs,
    parse_cpu_flags,
    parse_cpu_mhz,
    parse_cpulist,
    parse_meminfo,
    parse_proc_stat,
)
from pyvirt.model.domain import BlkioTune, CpuTune, MemTune

MEMINFO = ("MemTotal:       24683664 kB\nMemFree:        22672060 kB\nBuffers:  22216 kB\nCached: 1505004 kB\n"
           "HugePages_Total:      40\nHugepagesize:       2048 kB\n")


def test_parse_meminfo_host_and_node_forms() -> None:
    assert parse_meminfo(MEMINFO) == {"MemTotal": 24683664, "MemFree": 22672060, "Buffers": 22216,
                                      "Cached": 1505004, "HugePages_Total": 40, "Hugepagesize": 2048}
    assert parse_meminfo("Node 0 MemTotal:  6645576 kB\nNode 0 MemFree: 4652492 kB\n") == {
        "MemTotal": 6645576, "MemFree": 4652492}


def test_parse_proc_stat_in_nanoseconds() -> None:
    stats = parse_proc_stat("cpu  100 5 40 1000 2 0 3 0 0 0\ncpu0 50 0 20 500 1 0 1 0 0 0\nintr 1 2 3\n")
    assert set(stats) == {"cpu", "cpu0"}
    tick = 1_000_000_000 // USER_HZ
    assert stats["cpu"]["user"] == 100 * tick and stats["cpu"]["idle"] == 1000 * tick
    assert stats["cpu0"]["iowait"] == 1 * tick


def test_parse_cpulist_mhz_flags() -> None:
    assert parse_cpulist("0-3,8,10-11\n") == (0, 1, 2, 3, 8, 10, 11)
    assert parse_cpulist("") == ()
    info = "processor\t: 0\ncpu MHz\t\t: 2600.000\nflags\t\t: fpu vme sse2 vmx\n"
    assert parse_cpu_mhz(info) == 2600 and parse_cpu_flags(info) == ("fpu", "vme", "sse2", "vmx")
    assert parse_cpu_mhz("") == 0 and parse_cpu_flags("") == ()


def make_tree(root: Path, nodes: int = 2) -> NodeFs:
    (root / "proc").mkdir(parents=True)
    (root / "proc/meminfo").write_text(MEMINFO)
    for n in range(nodes):
        base = root / f"sys/devices/system/node/node{n}"
        base.mkdir(parents=True)
        (base / "meminfo").write_text(f"Node {n} MemTotal: {1000 * (n + 1)} kB\nNode {n} MemFree: {500 * (n + 1)} kB\n")
        (base / "cpulist").write_text(f"{2 * n}-{2 * n + 1}\n")
        (base / "distance").write_text(" ".join("10" if i == n else "20" for i in range(nodes)) + "\n")
        pool = base / "hugepages/hugepages-2048kB"
        pool.mkdir(parents=True)
        (pool / "nr_hugepages").write_text(f"{n}\n")
        (pool / "free_hugepages").write_text("0\n")
    host = root / "sys/kernel/mm/hugepages"
    for size, total, free in ((2048, 1, 1), (1048576, 0, 0)):
        (host / f"hugepages-{size}kB").mkdir(parents=True)
        (host / f"hugepages-{size}kB/nr_hugepages").write_text(f"{total}\n")
        (host / f"hugepages-{size}kB/free_hugepages").write_text(f"{free}\n")
    return NodeFs(root)


def test_cells_pools_and_distances(tmp_path: Path) -> None:
    fs = make_tree(tmp_path)
    cells = fs.cells()
    assert [(c.id, c.memory_kib, c.free_kib) for c in cells] == [(0, 1000, 500), (1, 2000, 1000)]
    assert [r.id for r in cells[1].cpus] == [2, 3] and cells[1].distances == (20, 10)
    assert [(p.size_kib, p.total) for p in cells[1].pools] == [(2048, 1)]
    assert [(p.size_kib, p.total, p.free) for p in fs.host_pools()] == [(2048, 1, 1), (1048576, 0, 0)]
    assert fs.pool_total(2048, None) == 1 and fs.pool_total(2048, 1) == 1 and fs.pool_total(4, None) == 0


def test_a_host_without_numa_is_one_cell_of_all_memory(tmp_path: Path) -> None:
    fs = make_tree(tmp_path, nodes=0)
    [cell] = fs.cells()
    assert (cell.id, cell.memory_kib, cell.free_kib) == (0, 24683664, 22672060)


def test_set_pool_writes_the_count_and_refuses_unknown_sizes(tmp_path: Path) -> None:
    fs = make_tree(tmp_path)
    fs.set_pool(2048, 16, None)
    assert (tmp_path / "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").read_text() == "16\n"
    fs.set_pool(2048, 3, 1)
    assert fs.pool_total(2048, 1) == 3
    with pytest.raises(InvalidArgument, match=r"no pool of 4 KiB pages.*2048, 1048576"):
        fs.set_pool(4, 1, None)
    with pytest.raises(InvalidArgument, match="NUMA cell 7"):
        fs.set_pool(2048, 1, 7)


def test_meminfo_missing_is_a_host_error(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="/proc/meminfo"):
        NodeFs(tmp_path).meminfo()


# -- cgroup v2 ----------------------------------------------------------------------------------------


def test_cgroup2_mounts_prefers_the_plain_mount() -> None:
    text = ("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
            "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
            "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n")
    assert cgroup2_mounts(text) == [Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")]
    assert cgroup2_mounts("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n") == []


def test_shares_map_to_weights_as_libvirt() -> None:
    assert shares_to_weight(2) == 1 and shares_to_weight(262144) == 10000
    assert shares_to_weight(1024) == 39 and shares_to_weight(1) == 1


def test_limit_files() -> None:
    files = limit_files(CpuTune(shares=2048, period=100000, quota=50000), MemTune(1048576, 524288),
                        BlkioTune(500), vcpus=2)
    assert files == {"cpu.weight": "79", "cpu.max": "100000 100000", "memory.max": str(1024 ** 3),
                     "memory.high": str(512 * 1024 ** 2), "io.weight": "default 500"}
    assert limit_files(CpuTune(quota=-1), None, None, 1) == {"cpu.max": "max 100000"}
    assert limit_files(None, None, None, 4) == {}


def fake_cgroup(tmp_path: Path, controllers: str) -> Path:
    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cgroup.controllers").write_text(controllers + "\n")
    (mount / "cgroup.subtree_control").write_text("\n")
    return mount


def test_support_names_missing_controllers(tmp_path: Path) -> None:
    mount = fake_cgroup(tmp_path, "hugetlb")
    found = CgroupV2(mount=mount).support()
    assert not found.usable
    assert "lacks the cpu, memory, io controller(s)" in found.reason and "not applied" in found.reason
    none = CgroupV2(mounts_file=tmp_path / "mounts").support()
    assert not none.usable and "no cgroup v2 tree" in none.reason
    with pytest.raises(HostError, match="cannot apply cgroup limits"):
        CgroupV2(mount=mount).create("g")


def test_create_write_and_remove_on_a_usable_tree(tmp_path: Path) -> None:
    mount = fake_cgroup(tmp_path, "cpuset cpu io memory pids")
    cg = CgroupV2("pyvirt-test", mount=mount)
    assert cg.support().usable
    group = cg.create("web1")
    assert group == mount / "pyvirt-test/web1" and group.is_dir()
    assert (mount / "cgroup.subtree_control").read_text() == "+cpu +memory +io\n"
    cg.write(group, {"cpu.weight": "79"})
    assert cg.read(group, "cpu.weight") == "79" and cg.read(group, "memory.max") is None
    empty = cg.create("web2")  # a real cgroup's files do not keep rmdir from working; a plain directory's do
    cg.remove(empty)
    assert not empty.exists() and group.exists()
