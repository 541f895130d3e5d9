"""The daemon killed (SIGKILL) at each named step of a start and a destroy, and at random times: after
its restart nothing is left half-done — no QEMU that no domain owns, no guest directory of a stopped
domain, every domain in the state its QEMU says.

The named steps are fault points (pyvirt/faults.py) the daemon reaches when PYVIRT_FAULT names them.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.guest.build import GuestImage
from tests.integration.conftest import PYVIRT, DaemonHandle, domain_xml, make_daemon, ok, qemu_pids_under

pytestmark = pytest.mark.integration

RANDOM_RUNS = int(os.environ.get("PYVIRT_CRASH_RUNS", "50"))


def died(d: DaemonHandle, *args: str) -> str:
    """Run a command the daemon dies in; the client sees the connection go."""
    r = subprocess.run([PYVIRT, "-c", d.uri, *args], capture_output=True, text=True, timeout=60)
    assert d.proc is not None
    d.proc.wait(10)
    assert d.proc.returncode == -signal.SIGKILL, d.stderr()
    d.proc = None
    return r.stderr


def consistent(d: DaemonHandle, names: list[str]) -> dict[str, str]:
    """Every QEMU under the root belongs to a running domain, and every running domain has one."""
    states = {n: ok(d, "domstate", n).strip() for n in names}
    running = [n for n, s in states.items() if s in ("running", "paused")]
    assert len(qemu_pids_under(d.root)) == len(running), (states, qemu_pids_under(d.root))
    vm_dirs = sorted(p.name for p in (d.root / "run/pyvirt/qemu").iterdir())
    assert vm_dirs == sorted(ok(d, "domuuid", n).strip() for n in running), vm_dirs
    return states


@pytest.mark.parametrize("step", ["start:recorded", "start:spawned", "start:running"])
def test_killed_during_start(caps_cache: Path, guest: GuestImage, tmp_path: Path, step: str) -> None:
    d = make_daemon(caps_cache)
    try:
        (tmp_path / "cw.xml").write_text(domain_xml("cw", guest))
        ok(d, "define", str(tmp_path / "cw.xml"))
        d.stop()
        d.start(env={"PYVIRT_FAULT": step})
        died(d, "start", "cw")
        d.start()
        assert consistent(d, ["cw"]) == {"cw": "shut off"}
        assert ok(d, "domstate", "--reason", "cw").strip() == "shut off (failed)"
        ok(d, "start", "cw")  # and it starts as if nothing happened
        d.wait_serial("cw")
        ok(d, "destroy", "cw")
    finally:
        d.cleanup()


def test_killed_during_destroy(caps_cache: Path, guest: GuestImage, tmp_path: Path) -> None:
    d = make_daemon(caps_cache)
    try:
        (tmp_path / "cw2.xml").write_text(domain_xml("cw2", guest))
        ok(d, "define", str(tmp_path / "cw2.xml"))
        d.stop()
        d.start(env={"PYVIRT_FAULT": "destroy:killed"})
        ok(d, "start", "cw2")
        died(d, "destroy", "cw2")
        d.start()
        assert consistent(d, ["cw2"]) == {"cw2": "shut off"}
    finally:
        d.cleanup()


def test_killed_at_random_times(caps_cache: Path, guest: GuestImage, tmp_path: Path) -> None:
    """RANDOM_RUNS times: start/destroy two domains in a loop, SIGKILL the daemon at a random moment,
    restart it, check. The seed is printed so a failure can be replayed."""
    seed = int(os.environ.get("PYVIRT_CRASH_SEED", str(time.time_ns() % 10**6)))
    rng = random.Random(seed)
    print(f"crash-window seed {seed}")
    d = make_daemon(caps_cache)
    names = ["rk1", "rk2"]
    try:
        for n in names:
            (tmp_path / f"{n}.xml").write_text(domain_xml(n, guest))
            ok(d, "define", str(tmp_path / f"{n}.xml"))
        for run in range(RANDOM_RUNS):
            stop = threading.Event()

            def churn(name: str, stop: threading.Event) -> None:
                while not stop.is_set():
                    for verb in ("start", "destroy"):
                        subprocess.run([PYVIRT, "-c", d.uri, verb, name], capture_output=True, timeout=30)

            workers = [threading.Thread(target=churn, args=(n, stop)) for n in names]
            for w in workers:
                w.start()
            time.sleep(rng.uniform(0.05, 0.4))
            assert d.proc is not None
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait(10)
            d.proc = None
            stop.set()
            for w in workers:
                w.join(60)
            d.start()
            try:
                consistent(d, names)
            except AssertionError as exc:
                raise AssertionError(f"run {run} (seed {seed}): {exc}") from exc
        for n in names:
            subprocess.run([PYVIRT, "-c", d.uri, "destroy", n], capture_output=True, timeout=30)
    finally:
        d.cleanup()


def _qcow2_disks(tmp_path: Path, n: int) -> tuple[list[Path], str]:
    images = []
    xml = ""
    for i in range(n):
        image = tmp_path / f"snap{i}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
        images.append(image)
        xml += (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{image}'/>"
                f"<target dev='vd{'bcd'[i]}' bus='virtio'/></disk>")
    return images, xml


def _tags(image: Path) -> list[str]:
    out = subprocess.run(["qemu-img", "info", "-f", "qcow2", "-U", "--output=json", str(image)],
                         capture_output=True, text=True, check=True).stdout
    return [s["name"] for s in json.loads(out).get("snapshots", [])]


@pytest.mark.parametrize(("step", "kept"), [("snapshot:images", True), ("snapshot:one-image", False)])
def test_killed_while_taking_a_snapshot(caps_cache: Path, guest: GuestImage, tmp_path: Path, step: str,
                                        kept: bool) -> None:
    """Killed after every image holds the snapshot: it is listed after the restart. Killed after the first of
    two: it is listed nowhere and no image keeps it."""
    d = make_daemon(caps_cache)
    try:
        images, disks = _qcow2_disks(tmp_path, 2)
        (tmp_path / "cws.xml").write_text(domain_xml("cws", guest, extra_devices=disks))
        ok(d, "define", str(tmp_path / "cws.xml"))
        d.stop()
        d.start(env={"PYVIRT_FAULT": step})
        died(d, "snapshot-create-as", "cws", "s1")
        d.start()
        listed = ok(d, "snapshot-list", "cws", "--name").split()
        assert listed == (["s1"] if kept else [])
        assert [_tags(i) for i in images] == ([["s1"], ["s1"]] if kept else [[], []])
        if kept:
            assert ok(d, "snapshot-current", "cws", "--name").strip() == "s1"
        ok(d, "snapshot-create-as", "cws", "s2")  # and snapshots go on as usual
    finally:
        d.cleanup()


NET_XML = """<network><name>cwnet</name><bridge name='pvcwbr0' stp='off'/>
<forward mode='nat'/><ip address='10.213.7.1' netmask='255.255.255.0'>
<dhcp><range start='10.213.7.10' end='10.213.7.50'/></dhcp></ip></network>"""


@pytest.mark.parametrize("step", ["net-start:bridge", "net-start:running"])
def test_killed_during_net_start(caps_cache: Path, tmp_path: Path, step: str) -> None:
    d = make_daemon(caps_cache)
    try:
        (tmp_path / "net.xml").write_text(NET_XML)
        ok(d, "net-define", str(tmp_path / "net.xml"))
        d.stop()
        d.start(env={"PYVIRT_FAULT": step})
        died(d, "net-start", "cwnet")
        assert Path("/sys/class/net/pvcwbr0").exists()  # the half-made start really left a bridge
        d.start()
        assert not Path("/sys/class/net/pvcwbr0").exists()
        assert d.host_leftovers() == []  # no dnsmasq under the root, no nft table of ours
        assert "\nActive:         no\n" in ok(d, "net-info", "cwnet")
        ok(d, "net-start", "cwnet")  # and it starts as if nothing happened
        ok(d, "net-destroy", "cwnet")
        ok(d, "net-undefine", "cwnet")
    finally:
        d.cleanup()
