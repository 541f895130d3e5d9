"""host_validate on a fake host tree, and format_validate's virt-host-validate layout."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.host.caps import CpuTopology, HostCapabilities, KvmStatus, MachineType
from pyvirt.host.validate import FAIL, PASS, WARN, Check, cgroup_controllers, format_validate, host_validate

NO_KVM = KvmStatus(True, False, "KVM guest did not finish a trivial boot within 3.0 s (host module kvm_pvm)", "kvm_pvm")
KVM_OK = KvmStatus(True, True, "KVM guest finished a trivial boot in 0.12 s (host module kvm_intel)", "kvm_intel")


def make_caps(kvm: KvmStatus = NO_KVM) -> HostCapabilities:
    """An AMD host without vmx/svm, like this machine."""
    return HostCapabilities(
        hostname="host1", arch="x86_64", cpu_model_name="AMD EPYC", cpu_vendor="AMD", cpu_count=2,
        cpu_flags_virt=None, cpu_topology=CpuTopology(1, 2, 1), memory_kib=1 << 20,
        host_boot_id="b", qemu_binary="/usr/bin/qemu-system-x86_64", qemu_version="7.2.22",
        qemu_version_tuple=(7, 2, 22), machine_types=(MachineType("pc-i440fx-7.2", "pc", True),),
        accelerators=("tcg", "kvm"), cpu_models=("qemu64",), devices=frozenset({"qemu-xhci"}),
        has_spice=True, has_sandbox=True, kvm=kvm,
    )


def test_format_matches_virt_host_validate_columns() -> None:
    out = format_validate([
        Check("Checking for hardware virtualization", PASS),
        Check("Checking if device /dev/vhost-net exists", WARN,
              "Load the 'vhost_net' module to improve performance of virtio networking"),
        Check("Checking if device /dev/net/tun exists", FAIL, "Load the 'tun' module"),
        Check("Checking for KSM", PASS, "ignored for PASS"),
    ])
    lines = out.splitlines()
    assert out.endswith("\n") and len(lines) == 4
    assert lines[0] == "  QEMU: Checking for hardware virtualization" + " " * 33 + ": PASS"
    assert lines[1] == ("  QEMU: Checking if device /dev/vhost-net exists" + " " * 29
                        + ": WARN (Load the 'vhost_net' module to improve performance of virtio networking)")
    assert lines[2].endswith(": FAIL (Load the 'tun' module)")
    assert lines[3].endswith(": PASS")
    # the status column is the same on every line: "%6s: Checking %-60s: "
    assert {ln.index(": ", 8) for ln in lines} == {6 + 2 + 69}
    assert format_validate([Check("Checking x", PASS)], prefix="LXC").startswith("   LXC: Checking x ")


def _touch(root: Path, rel: str, text: str = "") -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


@pytest.fixture
def good_host(tmp_path: Path) -> Path:
    root = tmp_path
    _touch(root, "dev/kvm")
    _touch(root, "dev/vhost-net")
    _touch(root, "dev/net/tun")
    (root / "sys/module/bridge").mkdir(parents=True)
    _touch(root, "proc/self/mounts", "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\nproc /proc proc rw 0 0\n")
    _touch(root, "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
    _touch(root, "sys/kernel/mm/ksm/run", "0\n")
    (root / "sys/kernel/iommu_groups/0").mkdir(parents=True)
    return root


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_good_host_passes_everything(good_host: Path) -> None:
    caps = replace(make_caps(KVM_OK), cpu_flags_virt="vmx", cpu_vendor="Intel")
    checks = host_validate(caps, root=good_host)
    assert [c.status for c in checks] == [PASS] * len(checks)
    names = [c.name for c in checks]
    assert names[:4] == [
        "Checking for hardware virtualization",
        "Checking if device /dev/kvm exists",
        "Checking if device /dev/kvm is accessible",
        "Checking if KVM is usable (tiny guest boot)",
    ]
    for ctl in ("memory", "cpu", "cpuacct", "cpuset", "devices", "blkio"):
        assert f"Checking for cgroup '{ctl}' controller support" in names
    assert names[-2:] == ["Checking for KSM", "Checking for device assignment IOMMU support"]


def test_bare_host_warns_and_fails_with_hints(tmp_path: Path) -> None:
    caps = make_caps(KvmStatus(False, False, "/dev/kvm missing (no KVM module found); guests will run with TCG"))
    (tmp_path / "proc/self").mkdir(parents=True)
    checks = by_name(host_validate(caps, root=tmp_path))
    assert checks["Checking for hardware virtualization"].status == WARN
    assert checks["Checking if device /dev/kvm exists"].status == WARN
    assert "Checking if device /dev/kvm is accessible" not in checks
    usable = checks["Checking if KVM is usable (tiny guest boot)"]
    assert usable.status == WARN and "/dev/kvm missing" in usable.detail
    assert checks["Checking if device /dev/net/tun exists"].status == FAIL
    assert checks["Checking for bridge support"].status == WARN
    assert checks["Checking for cgroup 'memory' controller support"].detail == (
        "Enable 'memory' in kernel Kconfig file or mount/enable cgroup controller in your system")
    assert checks["Checking for KSM"].status == WARN
    iommu = checks["Checking for device assignment IOMMU support"]
    assert iommu.status == WARN
    assert iommu.detail.startswith("No ACPI IVRS table found")  # the fake caps are an AMD host


def test_unusable_kvm_is_a_warning_with_the_probe_reason(good_host: Path) -> None:
    checks = by_name(host_validate(make_caps(NO_KVM), root=good_host))
    usable = checks["Checking if KVM is usable (tiny guest boot)"]
    assert usable.status == WARN and usable.detail == NO_KVM.reason


def test_cgroup_v1_hierarchies_and_v2_names(tmp_path: Path) -> None:
    _touch(tmp_path, "proc/self/mounts",
           "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
           "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n"
           "cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0\n"
           "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n")
    _touch(tmp_path, "sys/fs/cgroup/unified/cgroup.controllers", "")
    have = cgroup_controllers(tmp_path)
    assert {"cpu", "memory"} <= have
    assert "name=systemd" not in have and "blkio" not in have and "devices" not in have
    _touch(tmp_path, "sys/fs/cgroup/unified/cgroup.controllers", "io cpu\n")
    have = cgroup_controllers(tmp_path)
    assert {"blkio", "cpuacct", "devices"} <= have


def test_iommu_hint_when_table_present_but_kernel_off(good_host: Path) -> None:
    (good_host / "sys/kernel/iommu_groups/0").rmdir()
    _touch(good_host, "sys/firmware/acpi/tables/DMAR")
    caps = replace(make_caps(), cpu_flags_virt="vmx", cpu_vendor="Intel")
    check = by_name(host_validate(caps, root=good_host))["Checking for device assignment IOMMU support"]
    assert check.status == WARN
    assert check.detail == "IOMMU appears to be disabled in kernel. Add intel_iommu=on to kernel cmdline arguments"
