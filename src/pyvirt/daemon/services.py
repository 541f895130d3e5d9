"""The daemon's managers, built and wired once: what the API is typed against.

``build`` is the one place that knows how the managers depend on each other;
each gets the narrow parts it needs at construction, in an order where every
dependency already exists (no manager is handed to another after the fact).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..state.store import Store
from .consoles import ConsoleService
from .devices import DeviceManager
from .disks import DiskManager
from .domain_table import DomainTable
from .domains import DomainManager
from .eventbus import EventBus
from .format_book import StoreFormatBook
from .hostinfo import HostService
from .networks import NetworkManager
from .nics import NicManager
from .pools import PoolManager
from .runner import QemuLauncher
from .snapshot_catalog import SnapshotCatalog
from .snapshots import SnapshotManager
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

    async def load(self) -> None:
        """Read every definition and reattach to what outlived the last daemon (networks and pools first:
        a reattached guest's NICs and disks live there)."""
        await self.networks.load()
        await self.pools.load()
        await self.domains.load()

    async def close(self) -> None:
        await self.domains.close()
        self.store.close()


def build(config: Config, uri: str) -> Services:
    store = Store(config.paths.database)
    bus = EventBus(store)
    catalog = SnapshotCatalog(store)
    table = DomainTable(store, bus, on_removed=(catalog.forget,))
    host = HostService(config, uri)
    networks = NetworkManager(config, store, table)
    book = StoreFormatBook(store)
    pools = PoolManager(config, store, book)
    volumes = VolumeManager(pools, table, book)
    nics = NicManager(table, networks)
    disks = DiskManager(table, volumes)
    domains = DomainManager(config, table, host, disks=disks, nics=nics, launcher=QemuLauncher(config),
                            snapshots=catalog)
    return Services(
        config=config, store=store, bus=bus, host=host, domains=domains, networks=networks, nics=nics,
        disks=disks, devices=DeviceManager(disks, nics), pools=pools, volumes=volumes,
        snapshots=SnapshotManager(table, catalog, lifecycle=domains), consoles=ConsoleService(config, table),
    )
