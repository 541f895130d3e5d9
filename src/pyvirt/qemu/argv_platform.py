"""Platform devices: the virtual IOMMU and the vsock device.

<iommu model='intel'> is QEMU's intel-iommu (q35 only), put before every PCI
device. Interrupt remapping on KVM needs the split irqchip (the machine's
kernel-irqchip=split); under TCG QEMU emulates it all.

<vsock> is vhost-vsock: the kernel's vhost device, which the daemon opens
(/dev/vhost-vsock, as it opens /dev/vhost-net) and whose guest CID it
reserves; QEMU gets the descriptor (``ctx.vsock_fd``) and the CID.
"""
from __future__ import annotations

from ..errors import InvalidArgument, UnsupportedConfig
from .argv_common import Build, pci_placement
from .argv_render import Option, kv


def iommu_options(b: Build) -> list[Option]:
    io = b.domain.devices.iommu
    if io is None:
        return []
    if io.model != "intel":
        raise UnsupportedConfig(f"IOMMU model '{io.model}' is not supported; use model='intel'")
    if b.machine.family != "q35":
        raise UnsupportedConfig(f"<iommu model='intel'> needs machine type q35, not '{b.machine.type}'")
    if io.eim and not io.intremap:
        raise InvalidArgument("<iommu><driver eim='on'> needs intremap='on'")
    return [Option("-device", kv("intel-iommu", ("id", "iommu0"), ("intremap", io.intremap),
                                 ("caching-mode", io.caching_mode), ("eim", io.eim), ("device-iotlb", io.iotlb),
                                 ("aw-bits", io.aw_bits)))]


def iommu_irqchip(b: Build) -> str | None:
    """The kernel-irqchip a KVM guest's IOMMU needs (split, for interrupt remapping), or None."""
    io = b.domain.devices.iommu
    if io is None or not io.intremap or b.ctx.accel != "kvm":
        return None
    if b.domain.features.ioapic_driver == "kvm":
        raise InvalidArgument("<iommu> interrupt remapping needs the I/O APIC in QEMU: write <ioapic driver='qemu'/>")
    return "split"


def vsock_options(b: Build) -> list[Option]:
    vs = b.domain.devices.vsock
    if vs is None:
        return []
    if vs.model not in (None, "virtio"):
        raise UnsupportedConfig(f"vsock model '{vs.model}' is not supported; use virtio")
    if b.ctx.vsock is None:
        raise InvalidArgument("the vsock device needs /dev/vhost-vsock opened by the daemon; none was given")
    fd, cid = b.ctx.vsock
    place = pci_placement(b, vs.address, "vsock0")
    return [Option("-device", kv(b.virtio("vsock").replace("virtio-", "vhost-", 1), ("id", "vsock0"),
                                 ("guest-cid", cid), ("vhostfd", fd), *place))]
