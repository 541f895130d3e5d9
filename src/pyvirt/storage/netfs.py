"""Network filesystem pools: an NFS export (or CIFS share) mounted at the target.

Like an fs pool once mounted; build only makes the mount point (the server
holds the filesystem). The mount command is ``mount_argv()`` so it can be
checked without a server; a failed mount is a HostError carrying mount's words.
"""
from __future__ import annotations

import os

from ..errors import HostError, InvalidArgument
from ..model.storage import Pool
from ..qemu import img
from .base import DEFAULT_POOL_MODE, FormatBook, apply_permissions
from .fs import FsBackend
from .run import have, package_for


class NetfsBackend(FsBackend):
    """<pool type='netfs'>: <source><host name=/><dir path=/><format type='nfs|cifs|glusterfs|auto'/>."""

    def __init__(self, pool: Pool, qemu_img: str | None = None, book: FormatBook | None = None) -> None:
        src = pool.source
        if not src.host or not src.dir:
            raise InvalidArgument(f"pool '{pool.name}' of type 'netfs' needs a source host and directory: "
                                  "<source><host name='server'/><dir path='/export'/></source>")
        super().__init__(pool, qemu_img, book)
        self.host, self.export, self.port = src.host, src.dir, src.port
        self.fs_format = src.format or "auto"

    def image_info(self, path: str, fmt: str) -> img.ImageInfo:
        """Read every time: an NFS client caches file attributes for up to a minute, so another host's
        change to an image may not show in its stat signature yet (storage/infocache.py)."""
        return img.info(path, fmt, force_share=True, qemu_img=self.qemu_img)

    def mount_source(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        if self.fs_format == "cifs":
            return f"//{self.host}/{self.export.lstrip('/')}"
        return f"{host}:{self.export}"

    def mount_argv(self) -> list[str]:
        """mount [-t TYPE] SOURCE TARGET [-o OPTIONS]; 'auto' lets mount pick (NFS for host:/dir)."""
        argv = ["mount"]
        if self.fs_format != "auto":
            argv += ["-t", self.fs_format]
        options = []
        if self.fs_format == "cifs":
            options.append("guest")  # no credentials in the pool XML: anonymous access
        if self.port is not None:
            options.append(f"port={self.port}")
        argv += [self.mount_source(), self.target]
        if options:
            argv += ["-o", ",".join(options)]
        return argv

    def build(self, overwrite: bool = False) -> None:
        """Only the mount point: the filesystem lives on the server."""
        os.makedirs(self.target, exist_ok=True)
        apply_permissions(self.target, self.pool.target.permissions, DEFAULT_POOL_MODE)

    def _check_source(self) -> None:
        """The mount helper for the share's type must be installed; mount itself reports the server."""
        if self.fs_format in ("nfs", "cifs", "glusterfs") and not have(f"mount.{self.fs_format}"):
            pkg = package_for(f"mount.{self.fs_format}")
            raise HostError(f"cannot mount the {self.fs_format} share {self.mount_source()} for pool "
                            f"'{self.pool.name}': mount.{self.fs_format} is not installed; install Debian's "
                            f"{pkg} (apt-get install {pkg})")
