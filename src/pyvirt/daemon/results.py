"""What the daemon's managers answer: frozen dataclasses, one per kind of reply.

Only ``api/`` turns these into JSON (field names are the JSON keys, in this
order); the contract they follow on the wire is ``api/openapi.yaml``.
"""
from __future__ import annotations

from dataclasses import dataclass


# ------------------------------------------------------------------ host
@dataclass(frozen=True)
class VersionInfo:
    library: str
    daemon: str
    hypervisor: str
    hypervisor_version: str
    api: int


@dataclass(frozen=True)
class HostInfo:
    hostname: str
    uri: str
    accel: str
    kvm_usable: bool
    kvm_reason: str
    cpus: int
    memory_kib: int
    cpu_model: str


@dataclass(frozen=True)
class HostCheck:
    name: str
    status: str
    detail: str


@dataclass(frozen=True)
class NodeInfo:
    """virsh nodeinfo."""

    model: str  # the CPU architecture, as libvirt reports it
    cpus: int
    mhz: int
    sockets: int
    cores: int
    threads: int
    nodes: int
    memory_kib: int


@dataclass(frozen=True)
class NodeMemory:
    """virsh nodememstats (KiB); a NUMA cell has only total and free."""

    total: int
    free: int
    buffers: int | None
    cached: int | None


@dataclass(frozen=True)
class NodeCpu:
    """virsh nodecpustats: nanoseconds since boot, of one CPU or of all."""

    user: int
    system: int
    idle: int
    iowait: int


@dataclass(frozen=True)
class PagePool:
    size_kib: int
    total: int
    free: int


@dataclass(frozen=True)
class CellInfo:
    """One NUMA cell: memory, free memory, CPUs and page pools (the base pages first)."""

    id: int
    memory_kib: int
    free_kib: int
    cpus: tuple[int, ...]
    pages: tuple[PagePool, ...]


@dataclass(frozen=True)
class PagesAllocated:
    """allocpages: the pool asked for and what the kernel gave."""

    size_kib: int
    cell: int | None
    requested: int
    total: int


# -------------------------------------------------------------------- KSM
@dataclass(frozen=True)
class KsmField:
    name: str
    value: int | str
    meaning: str
    writable: bool


@dataclass(frozen=True)
class KsmSharer:
    """A running domain whose memory KSM merged: its merged pages, as bytes."""

    domain: str
    merged_bytes: int


@dataclass(frozen=True)
class KsmTunerSettings:
    monitor_interval: int
    sleep_msec: int
    npages_boost: int
    npages_decay: int
    npages_min: int
    npages_max: int
    thres_coef: int
    thres_const: int


@dataclass(frozen=True)
class KsmDecision:
    """The tuner's last decision and the readings it came from."""

    time: float
    action: str  # stop | boost | decay
    run: bool
    pages_to_scan: int
    sleep_millisecs: int
    threshold_kib: int
    total_kib: int
    free_kib: int
    committed_kib: int


@dataclass(frozen=True)
class KsmStatus:
    mode: str
    modes: tuple[str, ...]
    running: bool
    writable: bool
    page_size: int
    saved_bytes: int  # pages_sharing x page size
    shared_bytes: int  # pages_shared x page size
    sharing_ratio: float | None  # pages_sharing / pages_shared
    profit_bytes: int | None  # the kernel's general_profit
    ksmd_cpu_seconds: float | None
    saved_per_cpu_second: float | None  # bytes saved per second of ksmd's CPU
    fields: tuple[KsmField, ...]
    domains: tuple[KsmSharer, ...]
    tuner: KsmTunerSettings
    last_decision: KsmDecision | None
    warning: str
    notes: tuple[str, ...] = ()


# ------------------------------------------------------------- statistics
@dataclass(frozen=True)
class StatsRecord:
    """One domain of domstats: virsh's field names (state.state, cpu.time, block.0.rd.bytes ...) in order."""

    name: str
    uuid: str
    stats: dict[str, int | str]


@dataclass(frozen=True)
class BlockSample:
    name: str
    path: str | None
    rd_reqs: int
    rd_bytes: int
    rd_times: int
    wr_reqs: int
    wr_bytes: int
    wr_times: int
    fl_reqs: int
    fl_times: int
    allocation: int | None
    capacity: int | None
    physical: int | None


@dataclass(frozen=True)
class NetSample:
    """One NIC's counters from the guest's side (the tap's rx is what the guest sent)."""

    name: str
    rx_bytes: int
    rx_pkts: int
    rx_errs: int
    rx_drop: int
    tx_bytes: int
    tx_pkts: int
    tx_errs: int
    tx_drop: int


@dataclass(frozen=True)
class GuestSample:
    """Everything the statistics of one domain say at one moment; what domstats, /metrics and top are made of.

    Groups that were not asked for, or that an inactive domain does not have, are empty or None."""

    name: str
    uuid: str
    id: int | None
    state: str
    reason: str
    persistent: bool
    time: float
    vcpus_max: int
    vcpus_current: int
    memory_max_kib: int
    balloon_kib: int | None
    rss_kib: int | None
    cpu_user_ns: int | None
    cpu_system_ns: int | None
    vcpu_times_ns: tuple[int, ...]
    guest_memory: dict[str, int]
    blocks: tuple[BlockSample, ...]
    nets: tuple[NetSample, ...]
    vcpu_states: tuple[int, ...] = ()  # virVcpuState per vCPU (0 offline, 1 running, 2 blocked)
    vcpu_waits_ns: tuple[int, ...] = ()  # time waiting to run (/proc .../sched wait_sum; 0 without schedstats)
    vcpu_delays_ns: tuple[int, ...] = ()  # time runnable but not running (/proc .../schedstat)


@dataclass(frozen=True)
class MemoryStats:
    """dommemstat, in KiB (last_update in seconds); a field the guest does not report is None."""

    actual: int
    swap_in: int | None
    swap_out: int | None
    major_fault: int | None
    minor_fault: int | None
    unused: int | None
    available: int | None
    usable: int | None
    last_update: int | None
    disk_caches: int | None
    hugetlb_pgalloc: int | None
    hugetlb_pgfail: int | None
    rss: int | None


@dataclass(frozen=True)
class SchedInfo:
    scheduler: str
    cpu_shares: int | None
    vcpu_period: int | None
    vcpu_quota: int | None
    applied: bool  # the limits are in force in a cgroup (running, cgroup v2 here)
    note: str


@dataclass(frozen=True)
class MemTuneInfo:
    hard_limit_kib: int | None  # None: unlimited
    soft_limit_kib: int | None
    applied: bool
    note: str


@dataclass(frozen=True)
class BlkioTuneInfo:
    weight: int | None
    applied: bool
    note: str


# --------------------------------------------------------------- domains
@dataclass(frozen=True)
class DomainSummary:
    id: int | None
    name: str
    uuid: str
    state: str
    reason: str
    persistent: bool
    autostart: bool


@dataclass(frozen=True)
class DomainInfo(DomainSummary):
    """dominfo: the summary and the figures virsh shows with it."""

    os_type: str
    vcpus: int
    cpu_time_ns: int
    max_memory_kib: int
    used_memory_kib: int
    managed_save: bool
    security_model: str
    security_doi: str
    accel: str
    cpu_note: str


@dataclass(frozen=True)
class DomainState:
    state: str
    reason: str


@dataclass(frozen=True)
class Undefined:
    name: str
    transient: bool  # still running: it goes away when it stops


@dataclass(frozen=True)
class ShutdownResult:
    state: str
    destroyed: bool  # the guest ignored ACPI within the timeout and was destroyed


@dataclass(frozen=True)
class DomainEvent:
    time: float
    domain: str
    uuid: str
    event: str
    detail: str
    state: str
    reason: str


# ------------------------------------------------------------ interfaces
@dataclass(frozen=True)
class InterfaceRow:
    target: str | None
    type: str
    source: str | None
    model: str
    mac: str | None
    link: str


@dataclass(frozen=True)
class InterfaceAddress:
    type: str
    addr: str
    prefix: int


@dataclass(frozen=True)
class InterfaceAddresses:
    name: str | None
    mac: str | None
    addrs: tuple[InterfaceAddress, ...]


@dataclass(frozen=True)
class InterfaceStats:
    """Counters from the guest's side (the host's tap counters swapped)."""

    device: str
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    rx_errs: int
    tx_errs: int
    rx_drop: int
    tx_drop: int


@dataclass(frozen=True)
class InterfaceChange:
    """attach-/detach-interface: the NIC's MAC, its type, its host device when plugged live."""

    mac: str | None
    type: str
    target: str | None


@dataclass(frozen=True)
class MemoryChange:
    """attach-device of a <memory>: the device, its QEMU id when plugged live, and where it changed."""

    model: str
    size_kib: int
    node: int | None
    alias: str | None
    live: bool
    config: bool


# ------------------------------------------------------------------ disks
@dataclass(frozen=True)
class DiskRow:
    type: str
    device: str
    target: str
    source: str | None
    bus: str | None
    format: str | None
    pool: str | None
    path: str | None


@dataclass(frozen=True)
class BlockInfo:
    target: str
    capacity: int
    allocation: int
    physical: int


@dataclass(frozen=True)
class BlockStats:
    device: str
    rd_req: int
    rd_bytes: int
    wr_req: int
    wr_bytes: int
    flush_operations: int
    rd_total_times: int
    wr_total_times: int
    flush_total_times: int


@dataclass(frozen=True)
class DiskChange:
    """attach-/detach-disk: which disk, from where, and where it changed (live, config)."""

    target: str
    source: str | None
    live: bool
    config: bool
    path: str | None = None  # the host path a live attach opened (a volume's path)


@dataclass(frozen=True)
class MediaChange:
    target: str
    action: str
    source: str | None
    live: bool
    config: bool


@dataclass(frozen=True)
class DiskResize:
    target: str
    size: int


# -------------------------------------------------------------- snapshots
@dataclass(frozen=True)
class SnapshotDiskRow:
    name: str
    snapshot: str | None


@dataclass(frozen=True)
class SnapshotRow:
    name: str
    domain: str
    description: str | None
    state: str | None
    parent: str | None
    creation_time: int | None
    location: str | None
    current: bool
    memory: str | None
    metadata: bool
    children: int
    descendants: int
    disks: tuple[SnapshotDiskRow, ...]


@dataclass(frozen=True)
class SnapshotList:
    snapshots: tuple[SnapshotRow, ...]
    current: str | None


@dataclass(frozen=True)
class SnapshotReverted:
    snapshot: SnapshotRow
    domain_state: str


@dataclass(frozen=True)
class SnapshotsDeleted:
    name: str
    deleted: tuple[str, ...]
    children_only: bool


# --------------------------------------------------------------- networks
@dataclass(frozen=True)
class NetworkSummary:
    name: str
    uuid: str
    active: bool
    persistent: bool
    autostart: bool
    bridge: str | None
    mode: str


@dataclass(frozen=True)
class NetworkInfo(NetworkSummary):
    connections: int  # interfaces of running domains plugged in


@dataclass(frozen=True)
class LeaseRow:
    """One row of net-dhcp-leases (libvirt's virNetworkDHCPLease fields)."""

    expiry: int
    expiry_time: str
    mac: str | None
    type: str
    ipaddr: str
    prefix: int
    hostname: str | None
    clientid: str | None
    iaid: str | None


@dataclass(frozen=True)
class LostLink:
    domain: str
    interface: str | None


@dataclass(frozen=True)
class NetworkDestroyed:
    name: str
    disconnected: tuple[LostLink, ...]


# ------------------------------------------------------------------ pools
@dataclass(frozen=True)
class PoolSummary:
    name: str
    uuid: str
    type: str
    active: bool
    state: str
    persistent: bool
    autostart: bool
    target: str | None
    capacity: int | None
    allocation: int | None
    available: int | None


@dataclass(frozen=True)
class BackingInfo:
    path: str
    format: str | None


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    pool: str
    type: str
    path: str | None
    key: str | None
    capacity: int
    allocation: int | None
    physical: int | None
    format: str | None
    backing: BackingInfo | None


@dataclass(frozen=True)
class Uploaded:
    pool: str
    volume: str
    offset: int
    bytes: int


# ------------------------------------------------------------ save/restore
@dataclass(frozen=True)
class SaveResult:
    """A save (or managed save): the image and what it took, the daemon's figure beside QEMU's."""

    domain: str
    file: str
    bytes: int  # the image's size
    seconds: float  # the whole save, header to the guest's end
    stream_ms: int | None  # QEMU's migration total-time
