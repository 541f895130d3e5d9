"""What this machine can do: CPU, memory, QEMU's machines/devices, and whether KVM really works.

Use ``load_or_probe(paths, qemu_binary)`` (cached per boot) and read the
``HostCapabilities`` it returns; ``caps.accel`` is the accelerator guests get.
"""
from __future__ import annotations

from .caps import CpuTopology, HostCapabilities, KvmStatus, MachineType, capabilities_xml
from .kvm_probe import probe_kvm
from .probe import load_or_probe, probe_host
from .validate import Check, format_validate, host_validate

__all__ = [
    "Check",
    "CpuTopology",
    "HostCapabilities",
    "KvmStatus",
    "MachineType",
    "capabilities_xml",
    "format_validate",
    "host_validate",
    "load_or_probe",
    "probe_host",
    "probe_kvm",
]
