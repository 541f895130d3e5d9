"""<filesystem> shares: virtiofs, served by a virtiofsd the daemon starts.

QEMU gets the vhost-user connection as a descriptor (``ctx.fs_fds``: the
daemon connected it to virtiofsd's listening socket), never a path. virtiofsd
maps guest RAM, so the RAM must be shared memory: <memoryBacking><access
mode='shared'/> (or memAccess='shared' on every NUMA cell), which becomes a
memfd backend with share=on.

9p (driver type='path', QEMU's own -fsdev local) is refused at start: QEMU
would open every file of the share by path itself, which its confinement
forbids (it opens no host file), and virtiofs does the same job from a
separate, sandboxed process.
"""
from __future__ import annotations

from ..errors import InvalidArgument, UnsupportedConfig
from .argv_common import Build, pci_placement
from .argv_memory import shared_memory
from .argv_render import Option, kv


def fs_options(b: Build) -> list[Option]:
    out: list[Option] = []
    for i, fs in enumerate(b.domain.devices.filesystems):
        alias = f"fs{i}"
        if fs.driver_type != "virtiofs":
            raise UnsupportedConfig(
                f"{alias} ({fs.target_dir}): a 9p share (driver type '{fs.driver_type or 'path'}') makes QEMU open "
                "the shared files by path, which pyvirt's confinement forbids; use <driver type='virtiofs'/> with "
                "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>")
        if not shared_memory(b.domain):
            raise InvalidArgument(
                f"{alias} ({fs.target_dir}): virtiofs needs guest RAM that virtiofsd can map; add <memoryBacking>"
                "<source type='memfd'/><access mode='shared'/></memoryBacking>")
        fd = b.ctx.fs_fds.get(i)
        if fd is None:
            raise InvalidArgument(f"{alias}: virtiofs needs the connection to the virtiofsd the daemon starts")
        chardev = f"chr-vu-{alias}"
        out.append(Option("-chardev", kv("socket", ("id", chardev), ("fd", fd))))
        out.append(Option("-device", kv(b.virtio("user-fs").replace("virtio-", "vhost-", 1), ("id", alias),
                                        ("chardev", chardev), ("tag", fs.target_dir),
                                        *pci_placement(b, fs.address, alias))))
    return out
