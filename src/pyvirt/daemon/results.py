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
