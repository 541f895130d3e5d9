"""Filesystem pools: a block device (or an image file, loop-mounted) mounted at the target.

build runs mkfs.<type> on the source device, but only on a device where
blkid finds no filesystem or partition table, unless ``overwrite`` is given:
formatting destroys what is there. start mounts, stop unmounts; volumes are
files as in a directory pool.
"""
from __future__ import annotations

import os
import re
import stat

from ..errors import InvalidArgument, NotFound, OperationInvalid
from ..model.storage import Pool, PoolInfo
from .base import DEFAULT_POOL_MODE, FormatBook, apply_permissions, refuse_if_used, statvfs_info
from .dir import DirBackend
from .run import run

# mkfs options that make it run without questions (and, for overwrite, over an old filesystem).
_MKFS_QUIET = {"ext2": ["-F", "-q"], "ext3": ["-F", "-q"], "ext4": ["-F", "-q"], "xfs": ["-f", "-q"],
               "vfat": []}


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_at(target: str) -> tuple[str, str] | None:
    """(source, fstype) of what is mounted on ``target`` now (the topmost mount), or None."""
    want = os.path.realpath(target)
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) >= 5 and len(rest) >= 2 and _unescape(fields[4]) == want:
                found = (_unescape(rest[1]), rest[0])
    return found


class FsBackend(DirBackend):
    """A local filesystem pool: one source device mounted on the target directory."""

    def __init__(self, pool: Pool, qemu_img: str | None = None, book: FormatBook | None = None) -> None:
        super().__init__(pool, qemu_img, book)
        if pool.type == "fs" and not pool.source.devices:
            raise InvalidArgument(f"pool '{pool.name}' of type 'fs' needs a source device: "
                                  "<source><device path='/dev/sdb1'/></source>")
        self.device = pool.source.devices[0] if pool.source.devices else ""
        self.fs_format = pool.source.format or "auto"

    # ------------------------------------------------------------ pool
    def build(self, overwrite: bool = False) -> None:
        """mkfs.<format> on the device (refused on a used device without ``overwrite``), then the target dir."""
        if not os.path.exists(self.device):
            raise NotFound(f"pool '{self.pool.name}': source device '{self.device}' does not exist")
        if self.fs_format == "auto":
            raise InvalidArgument(f"pool '{self.pool.name}': building formats '{self.device}', which needs a "
                                  "filesystem type; set <source><format type='ext4'/></source> (or xfs, vfat, ...)")
        if self.is_active():
            raise OperationInvalid(f"pool '{self.pool.name}' is mounted on '{self.target}'; stop it before "
                                   "building")
        refuse_if_used(self.pool.name, self.device, overwrite, f"formatting it as {self.fs_format}")
        mkfs = f"mkfs.{self.fs_format}"
        run([mkfs, *_MKFS_QUIET.get(self.fs_format, []), self.device], timeout=600,
            doing=f"make a {self.fs_format} filesystem on '{self.device}' for pool '{self.pool.name}'")
        os.makedirs(self.target, exist_ok=True)
        apply_permissions(self.target, self.pool.target.permissions, DEFAULT_POOL_MODE)

    def mount_argv(self) -> list[str]:
        """The mount command start runs; an image file is loop-mounted (-o loop)."""
        argv = ["mount"]
        if self.fs_format != "auto":
            argv += ["-t", self.fs_format]
        if os.path.exists(self.device) and stat.S_ISREG(os.stat(self.device).st_mode):
            argv += ["-o", "loop"]
        return [*argv, self.device, self.target]

    def mount_source(self) -> str:
        return self.device

    def start(self) -> None:
        """Mount the source on the target (already mounted there: nothing to do)."""
        mounted = mount_at(self.target)
        if mounted is not None:
            return
        if not os.path.isdir(self.target):
            raise OperationInvalid(f"pool '{self.pool.name}': mount point '{self.target}' does not exist; "
                                   "run pool-build to create it")
        self._check_source()
        run(self.mount_argv(), doing=f"mount '{self.mount_source()}' on '{self.target}' for pool "
                                     f"'{self.pool.name}'")

    def _check_source(self) -> None:
        if not os.path.exists(self.device):
            raise NotFound(f"pool '{self.pool.name}': source device '{self.device}' does not exist")

    def stop(self) -> None:
        if mount_at(self.target) is not None:
            run(["umount", self.target], doing=f"unmount '{self.target}' of pool '{self.pool.name}' "
                                               "(is a volume still in use?)")

    def is_active(self) -> bool:
        return mount_at(self.target) is not None

    def delete(self) -> None:
        """Remove the mount point (the filesystem on the device stays, as in libvirt)."""
        if self.is_active():
            raise OperationInvalid(f"pool '{self.pool.name}' is still mounted on '{self.target}'; stop it first")
        super().delete()

    def info(self) -> PoolInfo:
        self._need_mounted()
        return statvfs_info(self.target)

    def _need_dir(self) -> None:
        self._need_mounted()

    def _need_mounted(self) -> None:
        if not self.is_active():
            raise OperationInvalid(f"pool '{self.pool.name}' is not mounted on '{self.target}'; start it first")
