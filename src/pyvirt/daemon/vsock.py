"""The host side of a guest's <vsock>: /dev/vhost-vsock opened by the daemon, a guest CID reserved on it.

QEMU may open no device itself; the daemon opens the vhost device and asks
the kernel for the guest's CID (VHOST_VSOCK_SET_GUEST_CID fails with
EADDRINUSE when another guest holds it, so <cid auto='yes'/> takes the first
free one from 3, as libvirt does). QEMU gets the descriptor and the CID.
"""
from __future__ import annotations

import errno
import fcntl
import os
import struct

from ..errors import HostError
from ..model.domain import Domain

DEVICE = "/dev/vhost-vsock"
VHOST_VSOCK_SET_GUEST_CID = 0x4008AF60  # _IOW(VHOST_VIRTIO, 0x60, __u64)
FIRST_CID = 3  # 0-2 are the hypervisor, local and host
MAX_TRIES = 4096


def missing(domain: Domain, device: str = DEVICE) -> str | None:
    """Why ``domain``'s vsock cannot work here (None: it can, or it has none)."""
    if domain.devices.vsock is None or os.path.exists(device):
        return None
    return (f"its <vsock> needs {device}, which this host lacks; load the kernel module (modprobe vhost_vsock), "
            "or remove <vsock>")


def open_vsock(domain: Domain, device: str = DEVICE) -> tuple[int, int] | None:
    """(fd, cid) for the domain's vsock, or None without one; HostError naming the device when it cannot."""
    vs = domain.devices.vsock
    if vs is None:
        return None
    problem = missing(domain, device)
    if problem is not None:
        raise HostError(f"cannot start domain '{domain.name}': {problem}")
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise HostError(f"cannot start domain '{domain.name}': cannot open {device}: {exc.strerror}") from exc
    candidates = [vs.cid] if vs.cid is not None and not vs.cid_auto else range(FIRST_CID, FIRST_CID + MAX_TRIES)
    try:
        for cid in candidates:
            assert cid is not None
            try:
                fcntl.ioctl(fd, VHOST_VSOCK_SET_GUEST_CID, struct.pack("Q", cid))
                return fd, cid
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise HostError(f"cannot reserve vsock CID {cid} for domain '{domain.name}': "
                                    f"{exc.strerror}") from exc
        raise HostError(f"cannot start domain '{domain.name}': vsock CID "
                        + (f"{vs.cid} is taken by another guest; give another address" if vs.cid is not None
                           and not vs.cid_auto else "range is exhausted"))
    except BaseException:
        os.close(fd)
        raise
