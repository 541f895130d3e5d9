"""Guest RAM: -m (boot memory, hotplug slots), huge pages, NUMA nodes and memory devices.

<memory> counts everything (libvirt's rule): the boot RAM given to ``-m`` is
<memory> minus the memory devices. NUMA cells each get a RAM backend and a
``-numa node``; memory devices (pc-dimm, virtio-mem) get a backend and a
``-device`` named like libvirt's aliases (dimm0, virtiomem0), so a later
attach-device picks the next names. Backends are anonymous RAM, or memfd
when the memory must be shared (memAccess='shared', for virtiofsd) or made
of huge pages: never a file QEMU would open by path. That is also why an
nvdimm (a file mapped by path) is refused at start.
"""
from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument, UnsupportedConfig
from ..model.domain import Domain, MemoryDevice
from ..model.validate_hw import cpu_list
from .argv_common import Build, pci_placement
from .argv_render import Json, Option, Value, kv

HUGE_RAM_ID = "pc.ram"  # the memory backend of a guest with <memoryBacking><hugepages/> and no NUMA cells
MEMORY_ALIAS = {"dimm": "dimm", "virtio-mem": "virtiomem", "nvdimm": "nvdimm"}


def machine_ram_backend(d: Domain) -> str | None:
    """The -machine memory-backend id when guest RAM needs a backend of its own (huge pages, memfd, shared) and
    there are no NUMA cells (cells get their own)."""
    backing = d.memory_backing
    if backing is None or (d.cpu and d.cpu.numa):
        return None
    if backing.hugepages or backing.source_type == "memfd" or backing.access_mode == "shared":
        return HUGE_RAM_ID
    return None


def shared_memory(d: Domain) -> bool:
    """Guest RAM that another process maps (virtiofsd): <access mode='shared'/>, or every cell memAccess='shared'."""
    cells = d.cpu.numa if d.cpu is not None else ()
    if cells:
        return all(c.mem_access == "shared" or (c.mem_access is None and _backing_shared(d)) for c in cells)
    return _backing_shared(d)


def _backing_shared(d: Domain) -> bool:
    return d.memory_backing is not None and d.memory_backing.access_mode == "shared"


def backend(d: Domain, ident: str, kib: int, *, shared: bool = False, extra: dict[str, Any] | None = None) -> Json:
    """A RAM backend: memfd when shared or huge pages, else anonymous RAM."""
    backing = d.memory_backing
    data: dict[str, Any]
    if backing is not None and backing.hugepages:
        size = backing.hugepage_size_kib
        data = {"qom-type": "memory-backend-memfd", "id": ident, "size": kib * 1024, "hugetlb": True,
                **({"hugetlbsize": size * 1024} if size else {}), "prealloc": True}
        if shared:
            data["share"] = True
    elif shared or (backing is not None and backing.source_type == "memfd"):
        data = {"qom-type": "memory-backend-memfd", "id": ident, "size": kib * 1024}
        if shared:
            data["share"] = True
    else:
        data = {"qom-type": "memory-backend-ram", "id": ident, "size": kib * 1024}
    data.update(extra or {})
    return Json(data)


def dimm_hotplug(d: Domain, m: MemoryDevice, alias: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """object-add and device_add arguments that plug DIMM ``m`` into the running ``d`` as ``alias``."""
    if m.model != "dimm":
        raise UnsupportedConfig(f"{alias}: only <memory model='dimm'> can be plugged into a running guest here; "
                                "add it with --config for the next start")
    if m.address is not None:
        raise UnsupportedConfig(f"{alias}: leave <address> out of a hot-plugged DIMM (QEMU picks the slot)")
    mem_id = f"mem{alias}"
    shared = m.access == "shared" or (m.access is None and shared_memory(d))
    obj = dict(backend(d, mem_id, m.size_kib, shared=shared).data)
    dev: dict[str, Any] = {"driver": "pc-dimm", "id": alias, "memdev": mem_id}
    if m.node is not None:
        dev["node"] = m.node
    return obj, dev


def memory_options(b: Build) -> list[Option]:
    d = b.domain
    if d.memory_kib <= 0:
        raise InvalidArgument(f"domain {d.name}: memory must be more than 0 KiB")
    devices_kib = sum(m.size_kib for m in d.devices.memories)
    boot = d.memory_kib - devices_kib
    if boot <= 0:
        raise InvalidArgument(f"domain {d.name}: <memory> {d.memory_kib} KiB leaves no boot RAM beside its memory "
                              f"devices ({devices_kib} KiB)")
    props: list[tuple[str, Value]] = [("size", f"{boot}k")]
    if d.max_memory_kib is not None:
        if not d.max_memory_slots:
            raise InvalidArgument("<maxMemory> needs a slots='N' attribute (memory hotplug slots)")
        if d.max_memory_kib < d.memory_kib:
            raise InvalidArgument("<maxMemory> is smaller than <memory>")
        props += [("slots", d.max_memory_slots), ("maxmem", f"{d.max_memory_kib}k")]
    out = [Option("-m", kv(None, *props))]
    if machine_ram_backend(d) is not None:  # memfd (hugetlbfs pages without a mount; shared for virtiofsd)
        out.append(Option("-object", backend(d, HUGE_RAM_ID, boot, shared=shared_memory(d))))
    out += _numa(b)
    for i, m in enumerate(d.devices.memories):
        out += memory_device_options(b, m, f"{MEMORY_ALIAS[m.model]}{i}")
    return out


def _numa(b: Build) -> list[Option]:
    d = b.domain
    cells = d.cpu.numa if d.cpu is not None else ()
    out: list[Option] = []
    for i, cell in enumerate(cells):
        ident = f"ram-node{i}"
        shared = cell.mem_access == "shared" or (cell.mem_access is None and _backing_shared(d))
        out.append(Option("-object", backend(d, ident, cell.memory_kib, shared=shared)))
        cpus = [("cpus", part) for part in cell.cpus.split(",")]
        try:
            cpu_list(cell.cpus)
        except ValueError:
            raise InvalidArgument(f"NUMA cell {i}: cpus {cell.cpus!r} is not a CPU list") from None
        out.append(Option("-numa", kv("node", ("nodeid", i), *cpus, ("memdev", ident))))
    return out


def memory_device_options(b: Build, m: MemoryDevice, alias: str) -> list[Option]:
    """The backend and -device of one memory device (also what a hot-plug sends as object-add/device_add)."""
    obj, dev = memory_device_parts(b, m, alias)
    return [Option("-object", obj), Option("-device", dev)]


def memory_device_parts(b: Build, m: MemoryDevice, alias: str) -> tuple[Json, Any]:
    d = b.domain
    if d.max_memory_kib is None:
        raise InvalidArgument(f"{alias}: memory devices need <maxMemory slots=...> (room to plug them into)")
    if m.model == "nvdimm":
        raise UnsupportedConfig(
            f"{alias}: an nvdimm maps its backing file ({m.source_path}) by path, and QEMU opens no host file "
            "itself here (its memory-backend-file takes no descriptor); use <memory model='dimm'> or 'virtio-mem'")
    shared = m.access == "shared" or (m.access is None and shared_memory(d))
    mem_id = f"mem{alias}"
    if m.model == "dimm":
        slot = base = None
        if m.address is not None:
            if m.address.type != "dimm":
                raise UnsupportedConfig(f"{alias}: address type '{m.address.type}' does not fit; use type='dimm'")
            slot, base = m.address.get("slot"), m.address.get("base")
        dev = kv("pc-dimm", ("node", m.node), ("memdev", mem_id), ("id", alias),
                 ("slot", int(slot, 0) if slot else None), ("addr", int(base, 0) if base else None))
        return backend(d, mem_id, m.size_kib, shared=shared), dev
    if m.model == "virtio-mem":
        b.need_pci(alias)
        if m.block_kib is None:
            raise InvalidArgument(f"{alias}: virtio-mem needs <block>")
        dev = kv(b.virtio("mem"), ("node", m.node), ("block-size", m.block_kib * 1024),
                 ("requested-size", (m.requested_kib or 0) * 1024), ("memdev", mem_id), ("id", alias),
                 *pci_placement(b, m.address, alias))
        return backend(d, mem_id, m.size_kib, shared=shared, extra={"reserve": False}), dev
    raise UnsupportedConfig(f"{alias}: memory model '{m.model}' is not supported; use dimm or virtio-mem")
