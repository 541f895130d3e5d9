"""Which domains use a volume (vol-delete refuses those): read from the real domain table, no pool needed."""
from __future__ import annotations

from pathlib import Path

from pyvirt.config import Config
from pyvirt.daemon.domain_table import DomainEntry, DomainTable
from pyvirt.daemon.eventbus import EventBus
from pyvirt.daemon.format_book import StoreFormatBook
from pyvirt.daemon.pools import PoolManager
from pyvirt.daemon.volumes import VolumeManager
from pyvirt.model.domain import OS, Devices, Disk, Domain
from pyvirt.model.domain_xml import format_domain_xml
from pyvirt.model.storage import Volume
from pyvirt.state.store import Store


def test_users_sees_volume_file_and_block_disks(tmp_path: Path) -> None:
    image = tmp_path / "vol.raw"
    image.touch()
    (tmp_path / "link.raw").symlink_to(image)
    config = Config.for_root(tmp_path)
    config.paths.make_dirs()
    store = Store(config.paths.database)
    table = DomainTable(store, EventBus(store))
    disks = {
        "by-volume": Disk("vda", "virtio", source_type="volume", source_pool="default", source_volume="vol.raw"),
        "by-path": Disk("vdb", "virtio", source=str(image)),
        "by-link": Disk("vdb", "virtio", source=str(tmp_path / "link.raw")),
        "other-pool": Disk("vda", "virtio", source_type="volume", source_pool="other", source_volume="vol.raw"),
        "elsewhere": Disk("vdb", "virtio", source="/elsewhere.raw"),
    }
    for n, (name, disk) in enumerate(disks.items()):
        dom = Domain(name=name, uuid=f"00000000-0000-4000-8000-{n:012d}", memory_kib=65536, os=OS(machine="q35"),
                     devices=Devices(disks=(disk,)))
        table.add(DomainEntry(dom.uuid, name, dom, format_domain_xml(dom), persistent=True))
    book = StoreFormatBook(store)
    volumes = VolumeManager(PoolManager(config, store, book), table, book)
    vol = Volume("vol.raw", capacity=4096, path=str(image))
    assert volumes.users("default", vol) == ["by-link", "by-path", "by-volume"]
