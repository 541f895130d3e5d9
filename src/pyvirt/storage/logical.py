"""Logical (LVM) pools: a volume group whose logical volumes are the pool's volumes.

build makes each source device a PV (pvcreate) and the VG on them (vgcreate);
start/stop activate and deactivate the VG (vgchange -ay/-an); delete removes
the VG and the PV labels. Volumes are raw LVs (lvcreate -L, lvresize,
lvremove); sizes and keys (LV UUIDs) come from `lvs/vgs --reportformat json`.
The target path is /dev/VG, as in libvirt.

A kernel without device-mapper cannot activate LVs. Then the LVM metadata
commands still run with activation off (``global/activation=0``): volumes can
be created, listed, resized and deleted, but start refuses with a HostError
that says why, and the data calls (wipe, upload, download, copy) need the LV's
device node, which does not exist.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any

from ..errors import AlreadyExists, HostError, InvalidArgument, NotFound, OperationInvalid, PyvirtError
from ..model.storage import ImageLayer, Pool, PoolInfo, Volume
from ..model.storage_xml import check_volume_name, lvm_name_problem
from ..qemu import img
from .base import (
    FormatBook,
    ProgressCallback,
    Reader,
    Writer,
    apply_permissions,
    block_size,
    check_range,
    is_enospc,
    out_of_space,
    raw_only,
    refuse_if_used,
    stream_in,
    stream_out,
    zero_device,
)
from .run import run

_LVM_NOT_FOUND = 5  # LVM's exit status for "no such VG/LV" (ECMD_FAILED)


def dm_available() -> bool:
    """Whether the kernel has device-mapper, which LVM needs to activate volumes."""
    try:
        with open("/proc/misc", encoding="ascii", errors="replace") as f:
            return any(line.split()[1:2] == ["device-mapper"] for line in f)
    except OSError:
        return False


def _report(stdout: str, key: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(stdout)
        return list(data["report"][0][key])
    except (ValueError, KeyError, IndexError, TypeError):
        raise HostError(f"LVM printed a report pyvirt cannot read (expected JSON with '{key}')",
                        detail=stdout[:500]) from None


class LogicalBackend:
    """<pool type='logical'>: VG ``pool.source.name`` on ``pool.source.devices``."""

    def __init__(self, pool: Pool, qemu_img: str | None = None, book: FormatBook | None = None) -> None:
        """``book`` is unused: a block volume is raw by nature, so there is no format to record."""
        self.pool = pool
        self.qemu_img = qemu_img
        self.vg = pool.source.name or pool.name
        self.target = f"/dev/{self.vg}"
        self.dm = dm_available()

    # ------------------------------------------------------------ LVM commands
    def _lvm(self, args: list[str], doing: str, ok: tuple[int, ...] = (0,)) -> Any:
        argv = [args[0]]
        if not self.dm:
            argv += ["--config", "global { activation = 0 }"]
        return run([*argv, *args[1:]], ok=ok, doing=doing)

    def _vg(self) -> dict[str, Any] | None:
        proc = self._lvm(["vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                          "vg_name,vg_size,vg_free,vg_extent_size", self.vg],
                         f"read volume group '{self.vg}'", ok=(0, _LVM_NOT_FOUND))
        if proc.returncode != 0:
            return None
        rows = _report(proc.stdout, "vg")
        return rows[0] if rows else None

    def _need_vg(self) -> dict[str, Any]:
        vg = self._vg()
        if vg is None:
            raise OperationInvalid(f"pool '{self.pool.name}': volume group '{self.vg}' does not exist; "
                                   "run pool-build to create it on the source devices")
        return vg

    def _lvs(self) -> list[dict[str, Any]]:
        proc = self._lvm(["lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                          "lv_name,lv_uuid,lv_size,lv_attr", self.vg], f"list the volumes of '{self.vg}'")
        # thin pools ('t') and other internal LVs are not volumes
        return [lv for lv in _report(proc.stdout, "lv") if not lv.get("lv_attr", "").startswith("t")]

    # ------------------------------------------------------------ pool
    def build(self, overwrite: bool = False) -> None:
        devices = self.pool.source.devices
        if not devices:
            raise InvalidArgument(f"logical pool '{self.pool.name}' has no source devices to build volume group "
                                  f"'{self.vg}' on; add <source><device path='/dev/sdb'/></source>")
        if self._vg() is not None:
            raise AlreadyExists(f"volume group '{self.vg}' already exists; start pool '{self.pool.name}' to use "
                                "it, or remove it first")
        for dev in devices:
            if not os.path.exists(dev):
                raise NotFound(f"pool '{self.pool.name}': source device '{dev}' does not exist")
        for dev in devices:
            refuse_if_used(self.pool.name, dev, overwrite, "making it an LVM physical volume")
        for dev in devices:
            self._lvm(["pvcreate", "--yes", *(["-ff"] if overwrite else []), dev],
                      f"make '{dev}' an LVM physical volume for pool '{self.pool.name}'")
        self._lvm(["vgcreate", "--yes", self.vg, *devices], f"create volume group '{self.vg}'")

    def start(self) -> None:
        self._need_vg()
        if not self.dm:
            raise HostError(f"cannot start logical pool '{self.pool.name}': the kernel has no device-mapper "
                            "(dm_mod), which LVM needs to activate volumes; load it (modprobe dm_mod) or use "
                            "a kernel that has it")
        self._lvm(["vgchange", "-ay", self.vg], f"activate volume group '{self.vg}'")

    def stop(self) -> None:
        if self._vg() is not None and self.dm:
            self._lvm(["vgchange", "-an", self.vg], f"deactivate volume group '{self.vg}' (is a volume in use?)")

    def delete(self) -> None:
        """vgremove -f (its LVs go with it), then pvremove on the source devices that are PVs."""
        if self._vg() is not None:
            self._lvm(["vgremove", "-f", "--yes", self.vg], f"remove volume group '{self.vg}'")
        for dev in self.pool.source.devices:
            if os.path.exists(dev) and self._is_pv(dev):
                self._lvm(["pvremove", "--yes", dev], f"remove the LVM label from '{dev}'")

    def _is_pv(self, dev: str) -> bool:
        proc = self._lvm(["pvs", "--reportformat", "json", "-o", "pv_name", dev], f"check '{dev}'",
                         ok=(0, _LVM_NOT_FOUND))
        return proc.returncode == 0 and bool(_report(proc.stdout, "pv"))

    def is_active(self) -> bool:
        """VG present and, if it has LVs, at least one active (LVM has no per-VG active flag)."""
        if not self.dm or self._vg() is None:
            return False
        lvs = self._lvs()
        return not lvs or any(len(lv["lv_attr"]) > 4 and lv["lv_attr"][4] == "a" for lv in lvs)

    def info(self) -> PoolInfo:
        vg = self._need_vg()
        size, free = int(vg["vg_size"]), int(vg["vg_free"])
        return PoolInfo(capacity=size, allocation=size - free, available=free)

    def available(self) -> int:
        vg = self._vg()
        return int(vg["vg_free"]) if vg else 0

    # ------------------------------------------------------------ volumes
    def volume_path(self, name: str) -> str:
        check_volume_name(name)
        problem = lvm_name_problem(name)
        if problem:
            raise InvalidArgument(f"invalid volume name {name!r} for logical pool '{self.pool.name}': {problem}")
        return f"{self.target}/{name}"

    def _to_volume(self, lv: dict[str, Any]) -> Volume:
        path = f"{self.target}/{lv['lv_name']}"
        size = int(lv["lv_size"])
        return Volume(name=lv["lv_name"], capacity=size, allocation=size, format=None, key=lv["lv_uuid"],
                      path=path, type="block")

    def list_volumes(self) -> list[Volume]:
        self._need_vg()
        return sorted((self._to_volume(lv) for lv in self._lvs()), key=lambda v: v.name)

    def volume(self, name: str) -> Volume:
        self.volume_path(name)
        self._need_vg()
        for lv in self._lvs():
            if lv["lv_name"] == name:
                return self._to_volume(lv)
        raise NotFound(f"pool '{self.pool.name}' has no volume '{name}'; see vol-list")

    def _device(self, name: str) -> str:
        """The LV's device node; it exists only while the LV is active."""
        self.volume(name)
        path = self.volume_path(name)
        if not os.path.exists(path):
            raise HostError(f"volume '{name}' of pool '{self.pool.name}' is not active ({path} does not exist); "
                            "start the pool first" + ("" if self.dm else
                                                       " (this kernel has no device-mapper, so it cannot be)"))
        return path

    def _rounded(self, size: int, vg: dict[str, Any]) -> int:
        extent = int(vg["vg_extent_size"])
        return -(-size // extent) * extent

    def create_volume(self, vol: Volume, progress: ProgressCallback | None = None) -> Volume:
        """lvcreate a raw LV of ``vol.capacity`` (rounded up to whole extents; always fully allocated)."""
        path = self.volume_path(vol.name)
        if vol.format not in (None, "raw"):
            raise InvalidArgument(f"logical pool '{self.pool.name}' holds raw volumes only (LVM logical volumes); "
                                  f"a {vol.format} volume needs a dir, fs or netfs pool")
        if vol.backing is not None:
            raise InvalidArgument(f"logical pool '{self.pool.name}' cannot make linked clones (backing stores); "
                                  "copy the image with vol-create-from instead")
        if vol.capacity <= 0:
            raise InvalidArgument(f"volume '{vol.name}': capacity must be above zero")
        vg = self._need_vg()
        if any(lv["lv_name"] == vol.name for lv in self._lvs()):
            raise AlreadyExists(f"volume '{vol.name}' already exists in pool '{self.pool.name}'; "
                                "choose another name or delete it first")
        needed, free = self._rounded(vol.capacity, vg), int(vg["vg_free"])
        if needed > free:
            raise out_of_space(self.pool.name, needed, free)
        if progress is not None:
            progress(0.0)
        args = ["lvcreate", "--yes", "-n", vol.name, "-L", f"{vol.capacity}b"]
        if not self.dm:
            args += ["-an", "-Zn", "-Wn"]  # no activation: nothing can be zeroed or wiped
        try:
            self._lvm([*args, self.vg], f"create volume '{vol.name}' in volume group '{self.vg}'")
        except PyvirtError as exc:
            if is_enospc(exc):
                raise out_of_space(self.pool.name, needed, self.available()) from None
            raise
        if os.path.exists(path) and vol.permissions is not None:
            apply_permissions(path, vol.permissions, 0o600)
        if progress is not None:
            progress(100.0)
        return self.volume(vol.name)

    def create_volume_from(self, vol: Volume, source: ImageLayer, backing: tuple[ImageLayer, ...] = (),
                           progress: ProgressCallback | None = None) -> Volume:
        """A new LV holding a raw copy of ``source`` (qemu-img convert onto the LV's device), read as recorded."""
        if not os.path.exists(source.path):
            raise NotFound(f"source volume '{source.path}' does not exist; check the path")
        size = img.virtual_size(source.path, source.format, qemu_img=self.qemu_img)
        if vol.capacity and vol.capacity < size:
            raise InvalidArgument(f"volume '{vol.name}': capacity {vol.capacity} bytes is smaller than the "
                                  f"{size} bytes of '{source.path}'; give at least that much")
        made = self.create_volume(replace(vol, capacity=max(vol.capacity, size), format="raw"))
        try:
            dev = self._device(vol.name)
            img.convert(source.path, dev, src_fmt=source.format, backing=backing, src_block=source.block,
                        dst_fmt="raw", progress_cb=progress, qemu_img=self.qemu_img)
        except BaseException:
            self.delete_volume(vol.name)
            raise
        return made

    def delete_volume(self, name: str) -> None:
        self.volume(name)
        self._lvm(["lvremove", "-f", "--yes", f"{self.vg}/{name}"], f"remove volume '{name}' from '{self.vg}'")

    def resize_volume(self, name: str, capacity: int, shrink: bool = False) -> Volume:
        current = self.volume(name)
        if capacity <= 0:
            raise InvalidArgument(f"volume '{name}': the new capacity must be above zero, not {capacity}")
        vg = self._need_vg()
        new = self._rounded(capacity, vg)
        img.check_shrink(current.path or name, current.capacity, capacity, shrink)
        if new == current.capacity:
            return current
        if new > current.capacity and new - current.capacity > int(vg["vg_free"]):
            raise out_of_space(self.pool.name, new - current.capacity, int(vg["vg_free"]))
        args = ["lvresize", "--yes", *(["-f"] if new < current.capacity else []), "-L", f"{new}b"]
        self._lvm([*args, f"{self.vg}/{name}"], f"resize volume '{name}' to {new} bytes")
        return self.volume(name)

    def wipe_volume(self, name: str) -> None:
        zero_device(self._device(name))

    def set_format(self, name: str, fmt: str, backing_format: str | None = None) -> Volume:
        return raw_only(self.pool.name, self.volume(name), fmt, backing_format)

    def remove_stale(self) -> list[str]:
        """A copy writes its LV in place (LVs are not renamed half-made); nothing to clean."""
        return []

    def upload_volume(self, name: str, reader: Reader, length: int, offset: int = 0,
                      progress: ProgressCallback | None = None) -> int:
        dev = self._device(name)
        check_range(name, block_size(dev), offset, length, "upload to")
        return stream_in(dev, reader, length, offset, pool=self.pool.name, volume=name,
                         available=self.available, progress=progress)

    def download_volume(self, name: str, writer: Writer, offset: int = 0, length: int | None = None,
                        progress: ProgressCallback | None = None) -> int:
        dev = self._device(name)
        size = block_size(dev)
        if length is None:
            length = max(size - offset, 0)
        check_range(name, size, offset, length, "download from")
        return stream_out(dev, writer, offset, length, progress=progress)
