"""vCPUs and memory size: libvirt's cpulist syntax, the /proc parsers, the CLI layouts (virsh's own, as
virsh 9.0 prints them against test:///default), the vCPU fields of domstats, and the definition changes of
setvcpus --config/--maximum, setmem/setmaxmem --config."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from pyvirt.cli.vcpu_cmds import COMMANDS, size_kib, vcpucount_text, vcpuinfo_text, vcpupin_text
from pyvirt.daemon.memory import MemoryManager
from pyvirt.daemon.stats_fields import flatten
from pyvirt.daemon.vcpus import VcpuManager, pins_of, with_pin
from pyvirt.errors import InvalidArgument, OperationInvalid, UnsupportedConfig
from pyvirt.host.node import USER_HZ
from pyvirt.host.threads import parse_delay_ns, parse_thread_stat, parse_wait_ns
from pyvirt.model.cpuset import format_cpuset, parse_cpuset
from pyvirt.model.domain import CPU, CPUTopology, CpuTune, Domain, VcpuPin
from tests.unit.test_metrics import sample


# ---------------------------------------------------------------------------------------------- cpulist
@pytest.mark.parametrize(("text", "cpus"), [
    ("0", (0,)), ("0-3", (0, 1, 2, 3)), ("0-3,^2", (0, 1, 3)), ("0-15,^8", tuple(i for i in range(16) if i != 8)),
    ("^8,0-15", tuple(range(16))), ("3,1,2", (1, 2, 3)), (" 1 , 2 ", (1, 2)), ("r", (0, 1, 2, 3)),
])
def test_cpulist_is_read_left_to_right_as_libvirt_does(text: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpuset(text, 16 if text != "r" else 4) == cpus


@pytest.mark.parametrize(("text", "needle"), [
    ("abc", "'abc' is not a CPU or a range"), ("0,1-", "'1-' is not a CPU or a range"), ("", "is not a CPU"),
    ("^0", "names no CPU"), ("3-1", "ends before it starts"), ("^1-2", "takes one CPU"), ("16", "not on this host"),
    ("99999", "beyond"),
])
def test_bad_cpulists_say_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_cpuset(text, 16)
    assert needle in str(info.value)


def test_r_needs_the_host_and_formatting_is_canonical() -> None:
    with pytest.raises(InvalidArgument, match="only works on a command line"):
        parse_cpuset("r")
    assert format_cpuset((5, 0, 1, 2, 7, 8)) == "0-2,5,7-8"
    assert format_cpuset(parse_cpuset("0-3,^2", 8)) == "0-1,3"


# ------------------------------------------------------------------------------------------------ /proc
STAT = ("1234 (CPU 0/TCG) S 1 1 1 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 3 0 100 0 0 18446744073709551615 0 0 0 0 0 "
        "0 0 0 0 0 0 0 -1 1 0 0 0 0 0")


def test_thread_stat_state_cpu_and_time() -> None:
    st = parse_thread_stat(STAT)
    assert (st.state, st.cpu) == ("S", 1)
    assert st.cpu_time_ns == (250 + 50) * (1_000_000_000 // USER_HZ)
    weird = STAT.replace("(CPU 0/TCG)", "(a) b) c)")
    assert parse_thread_stat(weird) == st


def test_wait_and_delay() -> None:
    assert parse_wait_ns("se.exec_start : 1.0\nwait_sum                                   :        12.345678\n") == \
        12_345_678
    assert parse_wait_ns("se.statistics.wait_sum : 3.5\n") == 3_500_000
    assert parse_wait_ns("nr_switches : 4\n") == 0  # schedstats off: libvirt reports 0 as well
    assert parse_delay_ns("1000 2500 7\n") == 2500 and parse_delay_ns("") == 0


# ---------------------------------------------------------------------------------------------- the CLI
def test_vcpucount_table_is_virshs() -> None:
    running = {"maximum_config": 2, "maximum_live": 2, "current_config": 2, "current_live": 2}
    assert vcpucount_text(running) == ("maximum      config         2\nmaximum      live           2\n"
                                       "current      config         2\ncurrent      live           2\n")
    off = {"maximum_config": 2, "maximum_live": None, "current_config": 2, "current_live": None}
    assert vcpucount_text(off) == "maximum      config         2\ncurrent      config         2\n"


def test_vcpuinfo_blocks_are_virshs() -> None:
    info = {"host_cpus": 8, "vcpus": [
        {"vcpu": 0, "cpu": 1, "state": "running", "cpu_time_ns": 179631_700_000_000, "affinity": [1]},
        {"vcpu": 1, "cpu": 15, "state": "running", "cpu_time_ns": 179631_700_000_000, "affinity": list(range(8))}]}
    assert vcpuinfo_text(info, pretty=False) == (
        "VCPU:           0\nCPU:            1\nState:          running\nCPU time:       179631.7s\n"
        "CPU Affinity:   -y------\n\n"
        "VCPU:           1\nCPU:            15\nState:          running\nCPU time:       179631.7s\n"
        "CPU Affinity:   yyyyyyyy\n")
    assert "CPU Affinity:   1 (out of 8)\n" in vcpuinfo_text(info, pretty=True)
    off = {"host_cpus": 8, "vcpus": [{"vcpu": 0, "cpu": None, "state": "N/A", "cpu_time_ns": None,
                                      "affinity": list(range(8))}]}
    # virsh prints 'CPU time' without its colon when there is none
    assert vcpuinfo_text(off, pretty=True) == ("VCPU:           0\nCPU:            N/A\nState:          N/A\n"
                                               "CPU time        N/A\nCPU Affinity:   0-7 (out of 8)\n")


def test_vcpupin_table_is_virshs() -> None:
    rows = [{"vcpu": 0, "cpus": [1]}, {"vcpu": 1, "cpus": list(range(8))}]
    assert vcpupin_text(rows, quiet=False) == " VCPU   CPU Affinity\n----------------------\n 0      1\n 1      0-7\n"
    assert vcpupin_text(rows[1:], quiet=True) == " 1   0-7\n"


def test_sizes_and_command_synopses() -> None:
    assert size_kib("1G") == 1048576 and size_kib("512") == 512 and size_kib("1") == 1 and size_kib("1500b") == 2
    for bad in ("abc", "-1"):
        with pytest.raises(InvalidArgument, match=f"Scaled numeric value '{bad}' for <size> option"):
            size_kib(bad)
    synopsis = {c.name: c.synopsis() for c in COMMANDS}
    assert synopsis["setmem"] == "setmem <domain> <size> [--config] [--live] [--current]"
    assert synopsis["setvcpus"] == ("setvcpus <domain> <count> [--maximum] [--config] [--live] [--current] [--guest] "
                                    "[--hotpluggable]")
    assert synopsis["vcpupin"] == ("vcpupin <domain> [--vcpu <number>] [--cpulist <string>] [--config] [--live] "
                                   "[--current]")
    assert synopsis["emulatorpin"] == "emulatorpin <domain> [--cpulist <string>] [--config] [--live] [--current]"
    assert synopsis["vcpucount"] == ("vcpucount <domain> [--maximum] [--active] [--live] [--config] [--current] "
                                     "[--guest]")
    pin = next(c for c in COMMANDS if c.name == "vcpupin").parse(["web1", "0", "1-2"])
    assert (pin["vcpu"], pin["cpulist"]) == (0, "1-2")


# -------------------------------------------------------------------------------------------- domstats
def test_domstats_vcpu_fields_have_libvirts_names_and_order() -> None:
    s = replace(sample("web1"), vcpu_states=(1, 2), vcpu_waits_ns=(5, 6), vcpu_delays_ns=(7, 8))
    fields = flatten(s, ["vcpu"])
    assert list(fields)[:6] == ["vcpu.current", "vcpu.maximum", "vcpu.0.state", "vcpu.0.time", "vcpu.0.wait",
                                "vcpu.0.delay"]
    assert (fields["vcpu.1.state"], fields["vcpu.1.wait"], fields["vcpu.1.delay"]) == (2, 6, 8)


# ---------------------------------------------------------------------------- definitions (no QEMU)
class FakeTable:
    """The slice of DomainTable the managers use, holding one shut-off, persistent domain."""

    def __init__(self, domain: Domain) -> None:
        self.entry = SimpleNamespace(name=domain.name, uuid=domain.uuid, config=domain, running=None,
                                     persistent=True)
        self.saved: list[Domain] = []

    def lookup(self, ref: str) -> Any:
        return self.entry

    def job(self, entry: Any, verb: str) -> Any:
        class Job:
            async def __aenter__(self) -> None:
                return None

            async def __aexit__(self, *exc: object) -> None:
                return None

        return Job()

    def set_config(self, entry: Any, domain: Domain) -> None:
        entry.config = domain
        self.saved.append(domain)


class FakeThreads:
    def host_cpus(self) -> int:
        return 4


def dom(**kw: Any) -> Domain:
    return Domain(name="web1", uuid="6695eb01-f6a4-8304-79aa-97f2502e193f", memory_kib=262144, **kw)


def vcpus_of(d: Domain) -> tuple[VcpuManager, FakeTable]:
    table = FakeTable(d)
    return VcpuManager(table, FakeThreads()), table  # type: ignore[arg-type]


def test_setvcpus_config_and_maximum_change_the_definition() -> None:
    mgr, table = vcpus_of(dom(vcpus=4, cputune=CpuTune(vcpupins=(VcpuPin(0, (1,)), VcpuPin(3, (2,))))))
    count = asyncio.run(mgr.set_count("web1", 2, live=False, config=False))  # shut off: --current is config
    assert (count.current_config, count.maximum_config, count.current_live) == (2, 4, None)
    assert table.entry.config.vcpu_current == 2
    asyncio.run(mgr.set_count("web1", 3, live=False, config=True, maximum=True))
    d = table.entry.config
    assert (d.vcpus, d.vcpu_current, pins_of(d)) == (3, 2, {0: (1,)})  # the pin of vCPU 3 went with it
    asyncio.run(mgr.set_count("web1", 1, live=False, config=True, maximum=True))
    assert (table.entry.config.vcpus, table.entry.config.vcpu_current) == (1, None)


@pytest.mark.parametrize(("args", "error", "needle"), [
    ((0,), {}, "give at least 1"),
    ((5,), {}, "its maximum is 4"),
    ((1,), {"guest": True}, "guest agent"),
    ((2,), {"maximum": True, "live": True}, "--maximum with --config only"),
    ((2,), {"live": True}, "is not running"),
])
def test_bad_setvcpus_leave_the_definition_alone(args: tuple[int], error: dict[str, bool], needle: str) -> None:
    mgr, table = vcpus_of(dom(vcpus=4))
    kw = {"live": False, "config": False, **error}
    with pytest.raises((InvalidArgument, OperationInvalid, UnsupportedConfig), match=needle):
        asyncio.run(mgr.set_count("web1", *args, **kw))
    assert table.saved == []


def test_a_topology_fixes_the_maximum() -> None:
    topo = CPU(topology=CPUTopology(sockets=1, cores=2, threads=2))
    mgr, table = vcpus_of(dom(vcpus=4, cpu=topo))
    with pytest.raises(InvalidArgument, match="sockets\\*dies\\*cores\\*threads"):
        asyncio.run(mgr.set_count("web1", 6, live=False, config=True, maximum=True))
    assert table.saved == []


def test_vcpupin_config_and_its_errors() -> None:
    mgr, table = vcpus_of(dom(vcpus=2))
    info = asyncio.run(mgr.pin_vcpu("web1", 1, "0-3,^2", live=False, config=True))
    assert [(r.vcpu, r.cpus) for r in info.vcpus] == [(0, (0, 1, 2, 3)), (1, (0, 1, 3))]
    assert table.entry.config.cputune.vcpupins == (VcpuPin(1, (0, 1, 3)),)
    for vcpu, cpulist, needle in ((2, "0", "does not exist"), (-1, "0", "count from 0"), (0, "9", "not on this host"),
                                  (0, "x", "invalid cpulist 'x'")):
        with pytest.raises(InvalidArgument, match=needle):
            asyncio.run(mgr.pin_vcpu("web1", vcpu, cpulist, live=False, config=True))
    assert len(table.saved) == 1
    assert with_pin(table.entry.config, 0, (2,)).cputune.vcpupins == (VcpuPin(0, (2,)), VcpuPin(1, (0, 1, 3)))
    emu = asyncio.run(mgr.pin_emulator("web1", "r", live=False, config=True))
    assert emu.cpus == (0, 1, 2, 3) and table.entry.config.cputune.emulatorpin == (0, 1, 2, 3)
    with pytest.raises(InvalidArgument, match="not both"):
        asyncio.run(mgr.pinning("web1", live=True, config=True))


def test_setmem_and_setmaxmem_config() -> None:
    table = FakeTable(dom(vcpus=1))
    mem = MemoryManager(table)  # type: ignore[arg-type]
    change = asyncio.run(mem.set_memory("web1", 131072, live=False, config=True))
    assert change.live is None and (change.config.maximum_kib, change.config.current_kib) == (262144, 131072)
    with pytest.raises(InvalidArgument, match="above its maximum of 262144 KiB"):
        asyncio.run(mem.set_memory("web1", 262145, live=False, config=True))
    with pytest.raises(InvalidArgument, match="not a size"):
        asyncio.run(mem.set_memory("web1", 0, live=False, config=True))
    with pytest.raises(OperationInvalid, match="not running"):
        asyncio.run(mem.set_memory("web1", 1024, live=True, config=False))
    change = asyncio.run(mem.set_max_memory("web1", 65536, live=False, config=False))
    assert (change.config.maximum_kib, change.config.current_kib) == (65536, 65536)  # current follows down
    assert len(table.saved) == 2


def test_cpu_quota_follows_a_live_vcpu_change(tmp_path: Any) -> None:
    """<period>/<quota> are per vCPU: after hot-plug the guest's cgroup cpu.max is the quota of all of them."""
    from pyvirt.daemon.tuning import TuningManager
    from pyvirt.host.cgroup import CgroupV2

    mount = tmp_path / "cg"
    mount.mkdir()
    (mount / "cgroup.controllers").write_text("cpu io memory\n")
    (mount / "cgroup.subtree_control").write_text("\n")
    (mount / "pyvirt-t/web1").mkdir(parents=True)
    live = dom(vcpus=4, vcpu_current=3, cputune=CpuTune(period=100000, quota=50000))
    entry = SimpleNamespace(name="web1", running=SimpleNamespace(live=live))
    TuningManager(None, CgroupV2("pyvirt-t", mount=mount)).refresh(entry)  # type: ignore[arg-type]
    assert (mount / "pyvirt-t/web1/cpu.max").read_text() == "150000 100000\n"


@pytest.mark.parametrize("name", ["setmem", "setmaxmem", "setvcpus", "vcpucount", "vcpuinfo", "vcpupin", "emulatorpin"])
def test_help_is_virshs_byte_for_byte(name: str) -> None:
    """tests/unit/data/virsh_help/NAME.txt is `virsh help NAME` of libvirt 9.0 (Debian 12), captured as is."""
    import io
    from pathlib import Path

    from pyvirt.cli.main import main

    out = io.StringIO()
    assert main(["help", name], stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue() == (Path(__file__).parent / "data/virsh_help" / f"{name}.txt").read_text()
