"""The host probe against the real QEMU here: the probe image boots under TCG, KVM is judged honestly."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pyvirt.config import Paths
from pyvirt.host import capabilities_xml, format_validate, host_validate, load_or_probe, probe_host, probe_kvm
from pyvirt.host.kvm_probe import EXPECTED_STATUS, kvm_module, run_probe_boot
from pyvirt.host.probe import CACHE_NAME, parse_cpuinfo

QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not os.path.exists(QEMU), reason="qemu-system-x86_64 not installed"),
]


def probe_processes() -> list[int]:
    """PIDs of QEMU processes this test process started for a KVM probe (their drive lives in a
    pyvirt-kvmprobe- dir); probes of other processes running at the same time do not count."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"pyvirt-kvmprobe-" in cmdline and b"isa-debug-exit" in cmdline:
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == os.getpid():
                found.append(int(entry.name))
    return found


def probe_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("pyvirt-kvmprobe-*")}


def kvm_expected_broken() -> bool:
    """This machine's case: a kvm_pvm module, or a CPU without vmx/svm."""
    flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text(), os.cpu_count() or 1).flags_virt
    return kvm_module() == "kvm_pvm" or flags is None


def test_boot_sector_works_under_tcg() -> None:
    """The proof that the probe image is right: TCG prints the marker and exits with 99."""
    before = probe_dirs()
    res = run_probe_boot(QEMU, "tcg", timeout=10.0)
    assert res.marker_seen, res
    assert res.returncode == EXPECTED_STATUS
    assert res.ok and not res.timed_out
    assert probe_processes() == []
    assert probe_dirs() <= before


def test_probe_kvm_on_this_host() -> None:
    if not os.path.exists("/dev/kvm"):
        pytest.skip("no /dev/kvm on this host")
    before = probe_dirs()
    timeout = 3.0
    start = time.monotonic()
    status = probe_kvm(QEMU, timeout)
    elapsed = time.monotonic() - start
    assert elapsed < timeout + 2.0
    assert status.dev_exists
    assert probe_processes() == []  # the hung guest was killed
    assert probe_dirs() <= before  # and its temp files removed
    if kvm_expected_broken():
        assert not status.usable
        assert ("did not finish a trivial boot within 3.0 s" in status.reason
                or "failed a trivial boot" in status.reason), status.reason
        assert status.reason.endswith("guests will run with TCG")
    else:
        assert status.usable == ("finished a trivial boot in" in status.reason)


def test_probe_host_and_capabilities_xml() -> None:
    caps = probe_host(QEMU, kvm_timeout=1.0)
    assert caps.probe_seconds < 1.0 + 2.0
    assert caps.qemu_version_tuple >= (7, 0, 0)
    assert caps.qemu_version == ".".join(map(str, caps.qemu_version_tuple))
    assert {"tcg", "kvm"} <= set(caps.accelerators)
    pc, q35 = caps.machine("pc"), caps.machine("q35")
    assert pc is not None and pc.name.startswith("pc-i440fx-")
    assert q35 is not None and q35.name.startswith("pc-q35-")
    assert caps.default_machine is not None
    assert {"qemu64", "max", "host"} <= set(caps.cpu_models)
    for dev in ("ich9-intel-hda", "qemu-xhci", "virtio-net-pci", "virtio-blk-pci", "isa-debug-exit"):
        assert caps.has_device(dev), dev
    if caps.has_device("qxl-vga"):  # QXL is built only together with spice
        assert caps.has_spice
    assert caps.memory_kib > 0 and caps.cpu_count >= 1
    if kvm_expected_broken():
        assert caps.accel == "tcg"

    root = ET.fromstring(capabilities_xml(caps))
    machines = {m.text for m in root.iterfind("guest/arch/machine")}
    assert {"pc", "q35", pc.name, q35.name} <= machines
    assert root.findtext("guest/arch/emulator") == caps.qemu_binary
    domains = [d.get("type") for d in root.iterfind("guest/arch/domain")]
    assert domains == (["qemu", "kvm"] if caps.kvm.usable else ["qemu"])

    report = format_validate(host_validate(caps))
    assert "  QEMU: Checking if KVM is usable (tiny guest boot)" in report


def test_load_or_probe_caches_for_this_boot(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    first = load_or_probe(paths, QEMU, kvm_timeout=1.0)
    cache = paths.cache / CACHE_NAME
    doc = json.loads(cache.read_text())
    assert doc["key"]["qemu_binary"] == first.qemu_binary
    assert load_or_probe(paths, QEMU, kvm_timeout=1.0) == first
    # mark the cached document: a cache hit returns the mark, a re-probe would not
    doc["caps"]["hostname"] = "from-the-cache"
    cache.write_text(json.dumps(doc))
    assert load_or_probe(paths, QEMU, kvm_timeout=1.0).hostname == "from-the-cache"
    assert load_or_probe(paths, QEMU, kvm_timeout=1.0, refresh=True).hostname == first.hostname
