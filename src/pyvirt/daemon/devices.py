"""attach-device / detach-device: a <disk> goes to the disk manager, an <interface> to the NIC manager."""
from __future__ import annotations

from ..errors import UnsupportedConfig
from ..model.domain_xml import parse_disk_xml, parse_interface_xml
from ..model.xml_util import parse_xml, split_tag
from .disks import DiskManager
from .memory_devices import MemoryDeviceManager
from .nics import NicManager
from .results import DiskChange, InterfaceChange, MemoryChange


def device_tag(xml: str) -> str:
    root, _ = parse_xml(xml, what="device XML")
    _, tag = split_tag(root.tag)
    if tag not in ("disk", "interface", "memory"):
        raise UnsupportedConfig(f"attaching or detaching a <{tag}> device is not supported; pyvirt handles "
                                "<disk>, <interface> and (attach only) <memory model='dimm'> devices")
    return tag


class DeviceManager:
    def __init__(self, disks: DiskManager, nics: NicManager, memory: MemoryDeviceManager) -> None:
        self.disks = disks
        self.nics = nics
        self.memory = memory

    async def attach(self, ref: str, xml: str, *, live: bool,
                     config: bool) -> DiskChange | InterfaceChange | MemoryChange:
        tag = device_tag(xml)
        if tag == "disk":
            return await self.disks.attach(ref, xml, live=live, config=config)
        if tag == "memory":
            return await self.memory.attach(ref, xml, live=live, config=config)
        return await self.nics.attach(ref, xml, live=live, config=config)

    async def detach(self, ref: str, xml: str, *, live: bool, config: bool) -> DiskChange | InterfaceChange:
        """A <disk> by its target dev, an <interface> by its type and MAC."""
        tag = device_tag(xml)
        if tag == "memory":
            raise UnsupportedConfig("detaching a <memory> device is not supported: a guest gives RAM back "
                                    "unreliably; change the definition with `pyvirt edit` and restart it")
        if tag == "disk":
            disk = parse_disk_xml(xml)
            return await self.disks.detach(ref, disk.target_dev, live=live, config=config)
        nic = parse_interface_xml(xml)
        return await self.nics.detach(ref, nic.type, nic.mac, live=live, config=config)
