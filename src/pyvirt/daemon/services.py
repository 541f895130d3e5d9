"""The daemon's managers, built and wired once: what the API is typed against.

``build`` is the one place that knows how the managers depend on each other;
each gets the narrow parts it needs at construction, in an order where every
dependency already exists (no manager is handed to another after the fact).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..host.cgroup import CgroupV2
from ..host.node import NodeFs
from ..host.threads import Threads
from ..state.store import Store
from .consoles import ConsoleService
from .devices import DeviceManager
from .disks import DiskManager
from .domain_table import DomainTable
from .domains import DomainManager
from .eventbus import EventBus
from .format_book import StoreFormatBook
from .hostinfo import HostService
from .ksm import KsmManager
from .memory import MemoryManager
from .memory_devices import MemoryDeviceManager
from .native import NativeArgv
from .networks import NetworkManager
from .nics import NicManager
from .node import NodeManager
from .pools import PoolManager
from .runner import QemuLauncher
from .save_images import SaveImages
from .saves import SaveManager
from .serial_logs import SerialLogs
from .snapshot_catalog import SnapshotCatalog
from .snapshots import SnapshotManager
from .stats import StatsManager
from .tokens import TokenManager
from .tuning import TuningManager
from .vcpus import VcpuManager
from .volumes import VolumeManager


@dataclass(frozen=True)
class Services:
    config: Config
    store: Store
    bus: EventBus
    host: HostService
    domains: DomainManager
    networks: NetworkManager
    nics: NicManager
    disks: DiskManager
    devices: DeviceManager
    pools: PoolManager
    volumes: VolumeManager
    snapshots: SnapshotManager
    consoles: ConsoleService
    launcher: QemuLauncher
    serial_logs: SerialLogs
    node: NodeManager
    ksm: KsmManager
    stats: StatsManager
    tuning: TuningManager
    native: NativeArgv  # issue 10: domxml-to-native
    memory: MemoryManager
    vcpus: VcpuManager
    saves: SaveManager
    tokens: TokenManager  # remote access: API tokens (daemon/tokens.py)

    async def load(self) -> None:
        """Read every definition and reattach to what outlived the last daemon (networks and pools first:
        a reattached guest's NICs and disks live there)."""
        await self.networks.load()
        await self.pools.load()
        await self.domains.load()
        await self.saves.reconcile()

    async def start(self) -> None:
        """What runs beside the guests: KSM in its configured mode (the tuner in mode auto)."""
        await self.ksm.start()

    async def close(self) -> None:
        await self.serial_logs.close()
        await self.ksm.close()
        await self.domains.close()
        self.store.close()


def build(config: Config, uri: str) -> Services:
    store = Store(config.paths.database)
    bus = EventBus(store, per_second=config.settings.events_per_second)
    catalog = SnapshotCatalog(store)
    table = DomainTable(store, bus, on_removed=(catalog.forget,))
    host = HostService(config, uri)
    networks = NetworkManager(config, store, table)
    book = StoreFormatBook(store)
    pools = PoolManager(config, store, book)
    volumes = VolumeManager(pools, table, book)
    nics = NicManager(table, networks)
    disks = DiskManager(table, volumes)
    launcher = QemuLauncher(config)
    node_fs = NodeFs()
    tuning = TuningManager(table, CgroupV2(cgroup_parent(config)))
    threads = Threads()
    vcpus = VcpuManager(table, threads, limits=tuning)
    images = SaveImages(config)
    domains = DomainManager(config, table, host, disks=disks, nics=nics, launcher=launcher,
                            snapshots=catalog, resources=tuning, pinner=vcpus, images=images)
    ksm = KsmManager(store, config.settings.ksm, node=node_fs, events=bus.subscribe,
                     guests=lambda: [(e.name, run.process.pid) for e, run in table.running()])
    return Services(
        config=config, store=store, bus=bus, host=host, domains=domains, networks=networks, nics=nics,
        disks=disks, devices=DeviceManager(disks, nics, MemoryDeviceManager(table)), pools=pools, volumes=volumes,
        snapshots=SnapshotManager(table, catalog, lifecycle=domains), consoles=ConsoleService(config, table),
        launcher=launcher, serial_logs=SerialLogs(config, table),
        node=NodeManager(host, node_fs), ksm=ksm, stats=StatsManager(table, threads), tuning=tuning,
        native=NativeArgv(config, host), memory=MemoryManager(table), vcpus=vcpus,
        saves=SaveManager(table, domains, images, store),
        tokens=TokenManager(store),
    )


def cgroup_parent(config: Config) -> str:
    """The cgroup every guest of this daemon sits under: pyvirt, or pyvirt-ROOT for a daemon with --root."""
    root = config.paths.root
    return "pyvirt" if str(root) == "/" else "pyvirt-" + "-".join(p for p in root.parts[1:] if p)
