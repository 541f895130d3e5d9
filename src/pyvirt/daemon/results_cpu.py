"""What the vCPU and memory-size verbs answer (setmem, setmaxmem, setvcpus, vcpucount, vcpuinfo, vcpupin,
emulatorpin): frozen dataclasses that api/views.py turns into JSON (api/openapi.yaml, tag cpus)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemorySizes:
    """A definition's memory: the maximum (<memory>) and what the guest has (<currentMemory>), KiB."""

    maximum_kib: int
    current_kib: int


@dataclass(frozen=True)
class MemoryChange:
    """setmem/setmaxmem: the sizes now, of the running domain and of its definition (None: not changed)."""

    live: MemorySizes | None
    config: MemorySizes | None


@dataclass(frozen=True)
class VcpuCount:
    """vcpucount's four numbers; None where there is none (live of a shut-off domain, config of a transient)."""

    maximum_config: int | None
    maximum_live: int | None
    current_config: int | None
    current_live: int | None


@dataclass(frozen=True)
class VcpuRow:
    """vcpuinfo of one vCPU: where its thread ran last, its state, CPU time and affinity; the first three are
    None for a domain that is not running."""

    vcpu: int
    cpu: int | None
    state: str  # running | blocked | offline | no state | N/A
    cpu_time_ns: int | None
    affinity: tuple[int, ...]


@dataclass(frozen=True)
class VcpuInfo:
    host_cpus: int  # the length of an affinity map
    vcpus: tuple[VcpuRow, ...]


@dataclass(frozen=True)
class VcpuPinRow:
    vcpu: int
    cpus: tuple[int, ...]


@dataclass(frozen=True)
class VcpuPinInfo:
    """vcpupin's table: the host CPUs each vCPU may use (live: the threads' affinity; config: <vcpupin>, or
    every host CPU for a vCPU without one)."""

    host_cpus: int
    vcpus: tuple[VcpuPinRow, ...]


@dataclass(frozen=True)
class EmulatorPinInfo:
    """emulatorpin: the host CPUs QEMU's threads other than the vCPUs may use."""

    host_cpus: int
    cpus: tuple[int, ...]
