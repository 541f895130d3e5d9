"""attach-device of a <memory model='dimm'>: more RAM for a running guest through its hotplug slots.

The guest's <maxMemory slots=...> leaves room; the DIMM is a RAM backend
(object-add) and a pc-dimm (device_add) over QMP, no balloon and no setmem.
The guest sees a new memory range (ACPI memory hotplug) and onlines it.
<memory> grows by the DIMM's size, live and in the definition, as libvirt's.
"""
from __future__ import annotations

from dataclasses import replace

from ..errors import OperationInvalid, PyvirtError
from ..model.domain import Domain, MemoryDevice
from ..model.domain_xml_devices import parse_device_xml, parse_memory_device
from ..model.validate import validate_domain
from ..qemu.argv_memory import MEMORY_ALIAS, dimm_hotplug
from .domain_table import DomainTable
from .results import MemoryChange


def with_memory(d: Domain, m: MemoryDevice) -> Domain:
    """``d`` with one more memory device; <memory> counts it."""
    devices = replace(d.devices, memories=(*d.devices.memories, m))
    current = d.current_memory_kib + m.size_kib if d.current_memory_kib is not None else None
    return replace(d, devices=devices, memory_kib=d.memory_kib + m.size_kib, current_memory_kib=current)


class MemoryDeviceManager:
    def __init__(self, table: DomainTable) -> None:
        self.table = table

    async def attach(self, ref: str, xml: str, *, live: bool, config: bool) -> MemoryChange:
        entry = self.table.lookup(ref)
        dev = parse_memory_device(parse_device_xml(xml, "memory"))
        async with self.table.job(entry, "attach memory to"):
            if not live and not config:
                live, config = entry.running is not None, entry.running is None
            if live and entry.running is None:
                raise OperationInvalid(f"domain '{entry.name}' is not running; use --config to change its definition")
            new_config = None
            if config:
                new_config = with_memory(entry.config, dev)
                validate_domain(new_config)
            alias = None
            if live:
                run = self.table.need_running(entry, "attach memory to")
                new_live = with_memory(run.live, dev)
                validate_domain(new_live)
                alias = f"{MEMORY_ALIAS[dev.model]}{len(run.live.devices.memories)}"
                obj, props = dimm_hotplug(run.live, dev, alias)
                await run.monitor.object_add(obj)
                try:
                    await run.monitor.device_add(**props)
                except PyvirtError:
                    await run.monitor.object_del(str(obj["id"]))
                    raise
                run.live = new_live
                self.table.record_runtime(entry)
            if new_config is not None:
                self.table.set_config(entry, new_config)
        return MemoryChange(model=dev.model, size_kib=dev.size_kib, node=dev.node, alias=alias, live=live,
                            config=config)
