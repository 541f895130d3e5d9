"""iSCSI pools: the LUNs of one target, logged in with open-iscsi's iscsiadm.

Minimal, as libvirt's: the target's LUNs are the volumes (no create, delete
or resize); start discovers and logs in, stop logs out. Without iscsiadm the
backend cannot be made at all and says which package brings it.
"""
from __future__ import annotations

import glob

from ..errors import HostError, InvalidArgument, NotFound, OperationInvalid
from ..model.storage import ImageLayer, Pool, PoolInfo, Volume
from ..model.storage_xml import check_volume_name
from .base import (
    FormatBook,
    ProgressCallback,
    Reader,
    Writer,
    block_size,
    check_range,
    raw_only,
    stream_in,
    stream_out,
    zero_device,
)
from .run import have, run

_NO_VOLUMES = "iSCSI pools expose the target's LUNs; volumes are made on the iSCSI server, not here"


def make_iscsi_backend(pool: Pool, qemu_img: str | None = None, book: FormatBook | None = None) -> IscsiBackend:
    if not have("iscsiadm"):
        raise HostError("iscsi pools need open-iscsi (iscsiadm): apt-get install open-iscsi")
    return IscsiBackend(pool, qemu_img, book)


class IscsiBackend:
    """<pool type='iscsi'>: <source><host name=/><device path='IQN'/></source>, target /dev/disk/by-path."""

    def __init__(self, pool: Pool, qemu_img: str | None = None, book: FormatBook | None = None) -> None:
        """``book`` is unused: a block volume is raw by nature, so there is no format to record."""
        if not pool.source.host or not pool.source.devices:
            raise InvalidArgument(f"iscsi pool '{pool.name}' needs <host name=/> and <device path='IQN'/>")
        self.pool = pool
        self.qemu_img = qemu_img
        self.portal = f"{pool.source.host}:{pool.source.port or 3260}"
        self.iqn = pool.source.devices[0]

    def _iscsiadm(self, *args: str, doing: str) -> None:
        run(["iscsiadm", *args], doing=doing, timeout=60)

    def build(self, overwrite: bool = False) -> None:
        """Nothing to build: the target exists on the server."""

    def start(self) -> None:
        self._iscsiadm("-m", "discovery", "-t", "sendtargets", "-p", self.portal,
                       doing=f"discover iSCSI targets on {self.portal}")
        args = ["-m", "node", "-T", self.iqn, "-p", self.portal]
        if self.pool.source.iqn:
            self._iscsiadm(*args, "-o", "update", "-n", "iface.initiatorname", "-v", self.pool.source.iqn,
                           doing="set the initiator name")
        self._iscsiadm(*args, "--login", doing=f"log in to {self.iqn} at {self.portal}")

    def stop(self) -> None:
        if self.is_active():
            self._iscsiadm("-m", "node", "-T", self.iqn, "-p", self.portal, "--logout",
                           doing=f"log out of {self.iqn}")

    def delete(self) -> None:
        raise OperationInvalid(f"iscsi pool '{self.pool.name}' has nothing to delete on this host")

    def _luns(self) -> dict[str, str]:
        """Volume name (libvirt's 'unit:0:0:LUN') -> its /dev/disk/by-path link."""
        pattern = f"/dev/disk/by-path/ip-{self.portal}-iscsi-{self.iqn}-lun-*"
        return {f"unit:0:0:{p.rsplit('-', 1)[-1]}": p for p in sorted(glob.glob(pattern))}

    def is_active(self) -> bool:
        return bool(self._luns())

    def info(self) -> PoolInfo:
        total = sum(block_size(p) for p in self._luns().values())
        return PoolInfo(capacity=total, allocation=total, available=0)

    def volume_path(self, name: str) -> str:
        check_volume_name(name)
        path = self._luns().get(name)
        if path is None:
            raise NotFound(f"pool '{self.pool.name}' has no volume '{name}'; see vol-list")
        return path

    def volume(self, name: str) -> Volume:
        path = self.volume_path(name)
        size = block_size(path)
        return Volume(name=name, capacity=size, allocation=size, key=path, path=path, type="block")

    def list_volumes(self) -> list[Volume]:
        return [self.volume(name) for name in self._luns()]

    def create_volume(self, vol: Volume, progress: ProgressCallback | None = None) -> Volume:
        raise OperationInvalid(_NO_VOLUMES)

    def create_volume_from(self, vol: Volume, source: ImageLayer, backing: tuple[ImageLayer, ...] = (),
                           progress: ProgressCallback | None = None) -> Volume:
        raise OperationInvalid(_NO_VOLUMES)

    def delete_volume(self, name: str) -> None:
        raise OperationInvalid(_NO_VOLUMES)

    def resize_volume(self, name: str, capacity: int, shrink: bool = False) -> Volume:
        raise OperationInvalid(_NO_VOLUMES)

    def wipe_volume(self, name: str) -> None:
        zero_device(self.volume_path(name))

    def set_format(self, name: str, fmt: str, backing_format: str | None = None) -> Volume:
        return raw_only(self.pool.name, self.volume(name), fmt, backing_format)

    def remove_stale(self) -> list[str]:
        """Nothing here is written under a temporary name; nothing to clean."""
        return []

    def upload_volume(self, name: str, reader: Reader, length: int, offset: int = 0,
                      progress: ProgressCallback | None = None) -> int:
        path = self.volume_path(name)
        check_range(name, block_size(path), offset, length, "upload to")
        return stream_in(path, reader, length, offset, pool=self.pool.name, volume=name,
                         available=lambda: 0, progress=progress)

    def download_volume(self, name: str, writer: Writer, offset: int = 0, length: int | None = None,
                        progress: ProgressCallback | None = None) -> int:
        path = self.volume_path(name)
        size = block_size(path)
        if length is None:
            length = max(size - offset, 0)
        check_range(name, size, offset, length, "download from")
        return stream_out(path, writer, offset, length, progress=progress)
