"""``pyvirt host-validate``: virt-host-validate's QEMU checks, answered for pyvirt.

The checks and hints follow virt-host-validate. Where pyvirt still works (no
hardware virtualization, KVM unusable: guests run with TCG) the status is WARN;
FAIL is kept for what breaks a feature outright (no /dev/net/tun: no guest
networking; /dev/kvm present but not accessible). Device and /sys checks are
read live; the KVM facts come from the (cached) probe.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .caps import HostCapabilities
from .kvm_probe import loaded_modules

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
NAME_WIDTH = len("Checking ") + 60  # virt-host-validate prints "Checking %-60s"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS, WARN or FAIL
    detail: str = ""


def _check(name: str, ok: bool, level: str, hint: str) -> Check:
    return Check(name, PASS, "") if ok else Check(name, level, hint)


def host_validate(caps: HostCapabilities, *, root: Path = Path("/")) -> list[Check]:
    """Run every QEMU host check; ``root`` lets tests point /dev, /sys and /proc at a fake tree."""
    checks = [
        _check(
            "Checking for hardware virtualization", caps.cpu_flags_virt is not None, WARN,
            "Only emulated CPUs are available, performance will be significantly limited",
        )
    ]
    kvm = root / "dev/kvm"
    kvm_exists = kvm.exists()
    checks.append(_check(
        "Checking if device /dev/kvm exists", kvm_exists, WARN,
        "Check that the 'kvm-intel' or 'kvm-amd' modules are loaded & the BIOS has enabled virtualization",
    ))
    if kvm_exists:
        checks.append(_check(
            "Checking if device /dev/kvm is accessible", os.access(kvm, os.R_OK | os.W_OK), FAIL,
            "Check /dev/kvm is world writable or you are in a group that is allowed to access it",
        ))
    checks.append(_check("Checking if KVM is usable (tiny guest boot)", caps.kvm.usable, WARN, caps.kvm.reason))
    checks.append(_check(
        "Checking if device /dev/vhost-net exists", (root / "dev/vhost-net").exists(), WARN,
        "Load the 'vhost_net' module to improve performance of virtio networking",
    ))
    checks.append(_check(
        "Checking if device /dev/net/tun exists", (root / "dev/net/tun").exists(), FAIL,
        "Load the 'tun' module to enable networking for QEMU guests",
    ))
    checks.append(_check(
        "Checking for bridge support", bridge_available(root), WARN,
        "Load the 'bridge' module (modprobe bridge) to use bridged and NAT virtual networks",
    ))
    have = cgroup_controllers(root)
    for name in ("memory", "cpu", "cpuacct", "cpuset", "devices", "blkio"):
        checks.append(_check(
            f"Checking for cgroup '{name}' controller support", name in have, WARN,
            f"Enable '{name}' in kernel Kconfig file or mount/enable cgroup controller in your system",
        ))
    checks.append(ksm_check(root))
    checks.append(iommu_check(caps, root))
    return checks


def bridge_available(root: Path = Path("/")) -> bool:
    """Bridge code loaded (module or /proc/sys/net/bridge), or a bridge.ko that modprobe can load."""
    if (root / "sys/module/bridge").exists() or (root / "proc/sys/net/bridge").exists():
        return True
    if "bridge" in loaded_modules(root):
        return True
    kdir = root / "lib/modules" / os.uname().release / "kernel/net/bridge"
    return kdir.is_dir() and any(p.name.startswith("bridge.ko") for p in kdir.iterdir())


# cgroup v2 names the v1 controllers differently, or does their job otherwise.
_V2_EQUIVALENT = {"cpuacct": "cpu", "blkio": "io"}


def cgroup_controllers(root: Path = Path("/")) -> set[str]:
    """Controllers usable here, in v1 names: v1 hierarchies from the mount table plus v2's cgroup.controllers."""
    try:
        mounts = (root / "proc/self/mounts").read_text().splitlines()
    except OSError:
        mounts = []
    have: set[str] = set()
    v2_dirs = []
    for line in mounts:
        fields = line.split()
        if len(fields) < 4:
            continue
        target, fstype, options = fields[1], fields[2], fields[3].split(",")
        if fstype == "cgroup":
            have.update(o for o in options if "=" not in o)
        elif fstype == "cgroup2":
            v2_dirs.append(root / target.lstrip("/"))
    if not mounts and (root / "sys/fs/cgroup/cgroup.controllers").exists():
        v2_dirs.append(root / "sys/fs/cgroup")
    for d in v2_dirs:
        try:
            v2 = set((d / "cgroup.controllers").read_text().split())
        except OSError:
            continue
        have |= v2
        have |= {v1 for v1, equiv in _V2_EQUIVALENT.items() if equiv in v2}
        if v2:
            have.add("devices")  # v2 controls devices with BPF programs, always present
    return have


def ksm_check(root: Path = Path("/")) -> Check:
    name = "Checking for KSM"
    run = root / "sys/kernel/mm/ksm/run"
    if not run.exists():
        return Check(name, WARN, "Kernel has no KSM (CONFIG_KSM); identical guest pages will not be merged")
    if not os.access(run, os.W_OK):
        return Check(name, WARN, f"{run} is not writable by this user; KSM cannot be tuned")
    return Check(name, PASS)


def iommu_check(caps: HostCapabilities, root: Path = Path("/")) -> Check:
    name = "Checking for device assignment IOMMU support"
    groups = root / "sys/kernel/iommu_groups"
    try:
        if any(groups.iterdir()):
            return Check(name, PASS)
    except OSError:
        pass
    intel = caps.cpu_flags_virt == "vmx" or caps.cpu_vendor == "Intel"
    amd = caps.cpu_flags_virt == "svm" or caps.cpu_vendor in ("AMD", "Hygon")
    if intel or amd:
        table, arg = ("DMAR", "intel_iommu=on") if intel else ("IVRS", "iommu=pt iommu=1")
        if not (root / "sys/firmware/acpi/tables" / table).exists():
            hint = (f"No ACPI {table} table found, IOMMU either disabled in BIOS "
                    "or not supported by this hardware platform")
        else:
            hint = f"IOMMU appears to be disabled in kernel. Add {arg} to kernel cmdline arguments"
    else:
        hint = "Unknown if this platform has IOMMU support"
    return Check(name, WARN, hint)


def format_validate(checks: list[Check], prefix: str = "QEMU") -> str:
    """Lines as virt-host-validate prints them: ``  QEMU: <name padded>: STATUS (detail)``."""
    lines = []
    for c in checks:
        line = f"{prefix:>6}: {c.name:<{NAME_WIDTH}}: {c.status}"
        if c.status != PASS and c.detail:
            line += f" ({c.detail})"
        lines.append(line)
    return "\n".join(lines) + "\n"
