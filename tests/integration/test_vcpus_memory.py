"""Memory size and vCPUs on real guests under TCG: setmem seen in the guest's /proc/meminfo (virtio
balloon), setvcpus seen in its /proc/cpuinfo (q35 CPU hot-plug), vcpupin and emulatorpin seen in the
QEMU threads' affinity (sched_getaffinity); bad input is a clear error and the guest keeps running."""
from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DaemonHandle, domain_xml, fails, make_daemon, ok, qemu_pids_under

pytestmark = pytest.mark.integration

BALLOON = "<memballoon model='virtio'/>"
HOST_CPUS = len(os.sched_getaffinity(0))


def q35_xml(name: str, guest, *, vcpus: str = "<vcpu current='1'>3</vcpu>", top: str = "") -> str:  # type: ignore[no-untyped-def]
    xml = domain_xml(name, guest, machine="q35", memory_mib=256).replace("<memballoon model='none'/>", BALLOON)
    return xml.replace("<vcpu>1</vcpu>", vcpus + top)


@pytest.fixture(scope="module")
def d(caps_cache: Path, guest, tmp_path_factory) -> Iterator[DaemonHandle]:  # type: ignore[no-untyped-def]
    """A daemon with vc1 (q35, 1 of 3 vCPUs, a balloon) running and vc2 (microvm, 1 of 2 vCPUs, no balloon)
    running."""
    handle = make_daemon(caps_cache)
    tmp = tmp_path_factory.mktemp("vcpu")
    try:
        for name, xml in (("vc1", q35_xml("vc1", guest)),
                          ("vc2", domain_xml("vc2", guest).replace("<vcpu>1</vcpu>", "<vcpu current='1'>2</vcpu>"))):
            (tmp / f"{name}.xml").write_text(xml)
            ok(handle, "define", str(tmp / f"{name}.xml"))
            ok(handle, "start", name)
        for name in ("vc1", "vc2"):
            handle.wait_serial(name, timeout=120)
        yield handle
    finally:
        handle.cleanup()


def qemu_pid(d: DaemonHandle, name: str) -> int:
    for pid in qemu_pids_under(d.root):
        if f"guest={name},".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError(f"no QEMU process of {name}")


def vcpu_threads(pid: int) -> dict[int, int]:
    """{vCPU index: thread id}, from the thread names QEMU gives them (-name debug-threads=on)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        m = re.fullmatch(r"CPU (\d+)/\w+", Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip())
        if m:
            out[int(m.group(1))] = int(tid)
    return out


def guest_value(d: DaemonHandle, name: str, command: str) -> str:
    status, out = d.guest_run(name, command)
    assert status == 0, out
    return out.strip()


def mem_total(d: DaemonHandle, name: str) -> int:
    return int(re.search(r"MemTotal:\s+(\d+)", guest_value(d, name, "grep MemTotal /proc/meminfo")).group(1))  # type: ignore[union-attr]


def wait_for(what: str, probe, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            assert value, f"{what} did not happen within {timeout} s"
            return value
        time.sleep(0.5)


def running(d: DaemonHandle, name: str) -> None:
    assert ok(d, "domstate", name).strip() == "running"


# ------------------------------------------------------------------------------------------- memory

def test_setmem_shrinks_and_grows_the_guest_through_its_balloon(d: DaemonHandle) -> None:
    before = mem_total(d, "vc1")
    assert ok(d, "setmem", "vc1", "128M") == "\n"
    shrunk = wait_for("the balloon inflating", lambda: (m := mem_total(d, "vc1")) <= before - 100 * 1024 and m)
    assert before - shrunk >= 120 * 1024, (before, shrunk)  # 128 MiB went back to the host, give or take
    assert "Used memory:    131072 KiB" in ok(d, "dominfo", "vc1")
    assert "<currentMemory unit='KiB'>131072</currentMemory>" in ok(d, "dumpxml", "vc1")
    # live only, as virsh without flags
    assert "<currentMemory unit='KiB'>262144</currentMemory>" in ok(d, "dumpxml", "--inactive", "vc1")
    stats = dict(line.split() for line in ok(d, "dommemstat", "vc1").strip().splitlines())
    assert stats["actual"] == "131072"
    dom = dict(line.strip().split("=") for line in ok(d, "domstats", "--balloon", "vc1").splitlines()[1:] if line)
    assert (dom["balloon.current"], dom["balloon.maximum"]) == ("131072", str(256 * 1024))
    ok(d, "setmem", "vc1", "262144", "--live")
    wait_for("the balloon deflating", lambda: mem_total(d, "vc1") >= before - 1024)


def test_setmem_config_and_setmaxmem_config_change_the_definition(d: DaemonHandle) -> None:
    ok(d, "setmem", "vc1", "200M", "--config")
    inactive = ok(d, "dumpxml", "--inactive", "vc1")
    assert "<currentMemory unit='KiB'>204800</currentMemory>" in inactive
    ok(d, "setmaxmem", "vc1", "192M", "--config")  # below currentMemory: it comes down too
    inactive = ok(d, "dumpxml", "--inactive", "vc1")
    assert "<memory unit='KiB'>196608</memory>" in inactive
    assert "<currentMemory unit='KiB'>196608</currentMemory>" in inactive
    assert "<memory unit='KiB'>262144</memory>" in ok(d, "dumpxml", "vc1")  # the running guest keeps its maximum
    ok(d, "setmaxmem", "vc1", "256M", "--config")
    ok(d, "setmem", "vc1", "256M", "--config")


def test_bad_memory_sizes_are_refused_and_the_guest_keeps_running(d: DaemonHandle) -> None:
    err = fails(d, "setmem", "vc1", "512M")
    assert "above its maximum of 262144 KiB" in err and "setmaxmem" in err
    assert "Scaled numeric value 'lots'" in fails(d, "setmem", "vc1", "lots")
    assert "not a size" in fails(d, "setmem", "vc1", "0")
    assert "no memory balloon" in fails(d, "setmem", "vc2", "64M")
    err = fails(d, "setmaxmem", "vc1", "512M")  # no flag on a running domain: live, which QEMU cannot do
    assert "cannot change the maximum memory of running domain 'vc1'" in err and "--config" in err
    assert "Options --current and --live are mutually exclusive" in fails(d, "setmem", "vc1", "1G", "--current",
                                                                          "--live")
    assert "Used memory:    262144 KiB" in ok(d, "dominfo", "vc1")
    running(d, "vc1")
    assert "<memory unit='KiB'>262144</memory>" in ok(d, "dumpxml", "--inactive", "vc1")


# --------------------------------------------------------------------------------------------- vCPUs

def test_setvcpus_hotplugs_a_cpu_the_guest_sees(d: DaemonHandle) -> None:
    assert guest_value(d, "vc1", "grep -c ^processor /proc/cpuinfo") == "1"
    assert ok(d, "vcpucount", "vc1") == ("maximum      config         3\nmaximum      live           3\n"
                                         "current      config         1\ncurrent      live           1\n\n")
    assert ok(d, "setvcpus", "vc1", "2") == "\n"
    assert ok(d, "vcpucount", "vc1", "--active", "--live") == "2\n\n"
    assert ok(d, "vcpucount", "vc1", "--active", "--config") == "1\n\n"  # live only, as virsh without flags
    assert "<vcpu placement='static' current='2'>3</vcpu>" in ok(d, "dumpxml", "vc1")
    assert sorted(vcpu_threads(qemu_pid(d, "vc1"))) == [0, 1]
    # the kernel of the tiny guest leaves a hot-added CPU offline until asked
    wait_for("cpu1 in sysfs", lambda: guest_value(d, "vc1", "ls /sys/devices/system/cpu/").count("cpu1") > 0)
    guest_value(d, "vc1", "cat /sys/devices/system/cpu/cpu1/online | grep -q 1 || "
                          "echo 1 > /sys/devices/system/cpu/cpu1/online")
    assert wait_for("two CPUs in /proc/cpuinfo",
                    lambda: guest_value(d, "vc1", "grep -c ^processor /proc/cpuinfo") == "2")
    info = ok(d, "vcpuinfo", "vc1")
    assert [int(v) for v in re.findall(r"^VCPU:\s+(\d+)$", info, re.M)] == [0, 1]
    stats = ok(d, "domstats", "--vcpu", "vc1")
    assert "  vcpu.current=2\n  vcpu.maximum=3\n" in stats and "vcpu.1.time=" in stats and "vcpu.1.delay=" in stats


def test_setvcpus_unplugs_what_was_plugged_only(d: DaemonHandle) -> None:
    if ok(d, "vcpucount", "vc1", "--active").strip() != "2":
        ok(d, "setvcpus", "vc1", "2")
    err = fails(d, "setvcpus", "vc1", "0")
    assert "give at least 1" in err
    ok(d, "setvcpus", "vc1", "1", "--live")
    assert ok(d, "vcpucount", "vc1", "--active", "--live") == "1\n\n"
    assert sorted(vcpu_threads(qemu_pid(d, "vc1"))) == [0]
    assert wait_for("one CPU in /proc/cpuinfo",
                    lambda: guest_value(d, "vc1", "grep -c ^processor /proc/cpuinfo") == "1")
    running(d, "vc1")


def test_bad_vcpu_counts_are_refused_and_the_guest_keeps_running(d: DaemonHandle) -> None:
    err = fails(d, "setvcpus", "vc1", "4")
    assert "its maximum is 3" in err and "--maximum --config" in err
    assert "give at least 1" in fails(d, "setvcpus", "vc1", "0")
    assert "Numeric value '-1' for <count> option" in fails(d, "setvcpus", "vc1", "-1")
    assert "Option --config is required by option --maximum" in fails(d, "setvcpus", "vc1", "4", "--maximum")
    assert ok(d, "setvcpus", "vc2", "1") == "\n"  # what it has: nothing to do, even on microvm
    assert "machine 'microvm' has no CPU hot-plug" in fails(d, "setvcpus", "vc2", "2")
    assert "its maximum is 2" in fails(d, "setvcpus", "vc2", "3")
    assert "guest agent" in fails(d, "setvcpus", "vc1", "1", "--guest")
    running(d, "vc1")
    assert ok(d, "vcpucount", "vc1", "--active", "--live") == "1\n\n"


def test_setvcpus_config_and_maximum(d: DaemonHandle) -> None:
    ok(d, "setvcpus", "vc1", "4", "--maximum", "--config")
    ok(d, "setvcpus", "vc1", "2", "--config")
    assert ok(d, "vcpucount", "vc1", "--maximum", "--config") == "4\n\n"
    assert ok(d, "vcpucount", "vc1", "--active", "--config") == "2\n\n"
    assert ok(d, "vcpucount", "vc1", "--maximum", "--live") == "3\n\n"
    assert "its maximum is 4" in fails(d, "setvcpus", "vc1", "5", "--config")
    ok(d, "setvcpus", "vc1", "3", "--maximum", "--config")
    ok(d, "setvcpus", "vc1", "1", "--config")


# ------------------------------------------------------------------------------------------- pinning

def test_vcpupin_and_emulatorpin_set_the_threads_affinity(d: DaemonHandle) -> None:
    if HOST_CPUS < 2:
        pytest.skip("pinning needs a host with at least 2 CPUs to show a change")
    pid = qemu_pid(d, "vc1")
    tid = vcpu_threads(pid)[0]
    last = HOST_CPUS - 1
    assert ok(d, "vcpupin", "vc1", "0", str(last)) == "\n"
    assert os.sched_getaffinity(tid) == {last}
    assert ok(d, "vcpupin", "vc1") == (f" VCPU   CPU Affinity\n----------------------\n 0      {last}\n\n")
    assert f"CPU Affinity:   {last} (out of {HOST_CPUS})" in ok(d, "vcpuinfo", "vc1", "--pretty")
    assert "CPU Affinity:   " + "-" * last + "y\n" in ok(d, "vcpuinfo", "vc1")
    ok(d, "emulatorpin", "vc1", "0")
    assert os.sched_getaffinity(pid) == {0} and os.sched_getaffinity(tid) == {last}
    assert ok(d, "emulatorpin", "vc1") == "emulator: CPU Affinity\n----------------------------------\n       *: 0\n\n"
    ok(d, "vcpupin", "vc1", "0", "r")
    ok(d, "emulatorpin", "vc1", f"0-{last}")
    assert os.sched_getaffinity(tid) == set(range(HOST_CPUS)) == os.sched_getaffinity(pid)
    ok(d, "vcpupin", "vc1", "0", str(last), "--config")
    assert f"<vcpupin vcpu='0' cpuset='{last}'/>" in ok(d, "dumpxml", "--inactive", "vc1")
    assert ok(d, "vcpupin", "vc1", "--config") == f" VCPU   CPU Affinity\n----------------------\n 0      {last}\n\n"


def test_bad_cpulists_are_refused_and_nothing_changes(d: DaemonHandle) -> None:
    pid = qemu_pid(d, "vc1")
    tid = vcpu_threads(pid)[0]
    before = os.sched_getaffinity(tid)
    assert "invalid cpulist 'abc'" in fails(d, "vcpupin", "vc1", "0", "abc")
    assert "invalid cpulist '0,1-'" in fails(d, "vcpupin", "vc1", "0", "0,1-")
    assert "names no CPU" in fails(d, "vcpupin", "vc1", "0", "^0")
    assert "is not on this host" in fails(d, "vcpupin", "vc1", "0", "4095")
    assert "vCPU 2 of running domain 'vc1' is not present" in fails(d, "vcpupin", "vc1", "2", "0")
    assert "vcpu 5 is out of range of live cpu count 1" in fails(d, "vcpupin", "vc1", "--vcpu", "5")
    assert "Missing vCPU number" in fails(d, "vcpupin", "vc1", "--cpulist", "0")
    assert "invalid cpulist" in fails(d, "emulatorpin", "vc1", "0-x")
    assert os.sched_getaffinity(tid) == before
    running(d, "vc1")


def test_pins_of_the_definition_apply_at_start(d: DaemonHandle, guest, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if HOST_CPUS < 2:
        pytest.skip("pinning needs a host with at least 2 CPUs to show a change")
    last = HOST_CPUS - 1
    tune = f"<cputune><vcpupin vcpu='0' cpuset='{last}'/><emulatorpin cpuset='0'/></cputune>"
    xml = domain_xml("vc3", guest).replace("<vcpu>1</vcpu>", "<vcpu>1</vcpu>" + tune)
    (tmp_path / "vc3.xml").write_text(xml)
    ok(d, "define", str(tmp_path / "vc3.xml"))
    try:
        ok(d, "start", "vc3")
        pid = qemu_pid(d, "vc3")
        assert os.sched_getaffinity(vcpu_threads(pid)[0]) == {last}
        assert os.sched_getaffinity(pid) == {0}
        assert ok(d, "emulatorpin", "vc3", "--live").endswith("*: 0\n\n")
        ok(d, "destroy", "vc3")
        info = ok(d, "vcpuinfo", "vc3")
        assert info == (f"VCPU:           0\nCPU:            N/A\nState:          N/A\nCPU time        N/A\n"
                        f"CPU Affinity:   {'-' * last}y\n\n")
    finally:
        d.cli("destroy", "vc3")
        ok(d, "undefine", "vc3")
