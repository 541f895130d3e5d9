"""Checks of the hardware virt-install and libvirt write beyond the basics: NUMA cells and memory devices,
USB companion controllers, Hyper-V and other <features>, TPMs, shares and the resource partition.

Pure, as ``validate`` (which calls these): each failure names the path, what is wrong and what to do.
"""
from __future__ import annotations

import re
from collections import Counter

from .check import Check
from .domain import Devices, Domain
from .tokens import control_char

USB_COMPANION_MODELS = ("ich9-uhci1", "ich9-uhci2", "ich9-uhci3")
USB2_MASTERS = ("ich9-ehci1",)
TPM_MODELS = ("tpm-tis", "tpm-crb")
MEMORY_MODELS = ("dimm", "virtio-mem", "nvdimm")
MEM_ACCESS = ("shared", "private")
_CPU_LIST = re.compile(r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")
_PARTITION = re.compile(r"^/machine(/[A-Za-z0-9_.-]+)*$")  # libvirt's partitions under the machine slice
_VENDOR_ID = re.compile(r"^[ -+\--~]{1,12}$")  # printable ASCII but ',' (QEMU's option separator)


def partition(c: Check, d: Domain) -> None:
    if d.resource_partition is not None and not _PARTITION.match(d.resource_partition):
        c.fail("<resource>/<partition>", f"partition {d.resource_partition!r} is not a path such as /machine",
               "write /machine, or /machine/NAME for a group of guests")


def cpu_list(text: str) -> list[int]:
    """'0-1,4' -> [0, 1, 4]; ValueError for anything else."""
    if not _CPU_LIST.match(text):
        raise ValueError(text)
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def numa(c: Check, d: Domain) -> None:
    cells = d.cpu.numa if d.cpu is not None else ()
    seen: Counter[int] = Counter()
    for i, cell in enumerate(cells):
        path = f"<cpu>/<numa>/<cell id='{cell.id if cell.id is not None else i}'>"
        if cell.id is not None and cell.id != i:
            c.fail(path, f"cell {i} has id {cell.id}", "number the cells 0, 1, 2, ... in order")
        try:
            cpus = cpu_list(cell.cpus)
        except ValueError:
            c.fail(path, f"cpus {cell.cpus!r} is not a CPU list", "write e.g. cpus='0-1' or cpus='0,2'")
        for cpu in cpus:
            if cpu >= d.vcpus:
                c.fail(path, f"CPU {cpu} is beyond the {d.vcpus} vCPUs of <vcpu>", "raise <vcpu> or fix cpus=")
            seen[cpu] += 1
        if cell.memory_kib <= 0:
            c.fail(path, "the cell has no memory", "give it memory='...'")
        c.one_of(path, "memAccess", cell.mem_access, MEM_ACCESS)
    for cpu, n in seen.items():
        if n > 1:
            c.fail("<cpu>/<numa>", f"CPU {cpu} is in {n} cells", "put each vCPU in one cell")


def memory_devices(c: Check, d: Domain) -> None:
    mems = d.devices.memories
    if not mems:
        return
    cells = len(d.cpu.numa) if d.cpu is not None else 0
    if d.max_memory_kib is None:
        c.fail("<devices>/<memory>", "memory devices need room to plug into",
               "add <maxMemory slots='16' unit='GiB'>16</maxMemory>")
    slots = sum(1 for m in mems if m.model in ("dimm", "nvdimm"))
    if d.max_memory_slots is not None and slots > d.max_memory_slots:
        c.fail("<devices>/<memory>", f"{slots} DIMMs for {d.max_memory_slots} slots", "raise <maxMemory slots=...>")
    if d.memory_kib - sum(m.size_kib for m in mems) <= 0:
        c.fail("<memory>", f"<memory> {d.memory_kib} KiB leaves no boot memory beside the memory devices",
               "<memory> counts the devices too: raise it")
    for i, m in enumerate(mems):
        path = f"<devices>/<memory model='{m.model}'> {i}"
        c.one_of(path, "model", m.model, MEMORY_MODELS, optional=False)
        c.one_of(path, "access", m.access, MEM_ACCESS)
        if m.node is not None and m.node >= max(cells, 1):
            c.fail(path + "/<target>/<node>", f"node {m.node} does not exist",
                   f"use a node of <cpu><numa> (0 to {max(cells, 1) - 1})")
        if m.model == "virtio-mem":
            requested = m.requested_kib or 0  # absent: nothing plugged yet (virt-install writes none)
            if m.block_kib is None:
                c.fail(path + "/<target>", "virtio-mem needs <block>", "add <block unit='KiB'>2048</block>")
            elif requested > m.size_kib or requested % m.block_kib or m.size_kib % m.block_kib:
                c.fail(path + "/<target>", f"size {m.size_kib} and requested {requested} KiB must be multiples "
                       f"of the block {m.block_kib} KiB, requested at most size", "fix the sizes")
        elif m.block_kib is not None or m.requested_kib is not None:
            c.fail(path + "/<target>", "<block> and <requested> belong to virtio-mem", "remove them")
        if m.model == "nvdimm":
            if m.source_path is None:
                c.fail(path, "an nvdimm needs its backing file", "add <source><path>/path/file</path></source>")
            c.absolute(path + "/<source>", "path", m.source_path)
        elif m.source_path is not None or m.label_kib is not None:
            c.fail(path, "<source><path> and <label> belong to an nvdimm", "remove them")
        if m.address is not None and m.address.type not in ("dimm", "pci"):
            c.fail(path + "/<address>", f"address type '{m.address.type}' does not fit a memory device",
                   "use type='dimm' (dimm, nvdimm) or 'pci' (virtio-mem)")


def features(c: Check, d: Domain) -> None:
    f = d.features
    c.one_of("<features>/<ioapic>", "driver", f.ioapic_driver, ("kvm", "qemu"))
    hv = f.hyperv
    if hv is None:
        return
    c.one_of("<features>/<hyperv>", "mode", hv.mode, ("custom", "passthrough"))
    for x in hv.features:
        path = f"<features>/<hyperv>/<{x.name}>"
        if x.name == "spinlocks" and x.state and x.retries is not None and x.retries < 4095:
            c.fail(path, f"retries={x.retries} is below 4095", "give retries='8191' (virt-install's) or more")
        if x.name == "vendor_id" and x.state and not _VENDOR_ID.match(x.value or ""):
            c.fail(path, f"vendor id {x.value!r} is not 1 to 12 printable characters without a comma",
                   "write e.g. value='KVM Hv'")


def usb_companions(c: Check, dv: Devices) -> None:
    """A <master startport=N/> controller is a USB1 companion of the USB2 controller with its index."""
    masters = {x.index: x for x in dv.controllers if x.type == "usb" and x.master_startport is None}
    starts: Counter[tuple[int, int]] = Counter()
    for ctrl in dv.controllers:
        if ctrl.master_startport is None:
            continue
        path = f"<devices>/<controller type='{ctrl.type}' index='{ctrl.index}' model='{ctrl.model}'>/<master>"
        if ctrl.type != "usb":
            c.fail(path, "only a USB controller can be a companion", "remove <master>")
        c.one_of(path[:-len("/<master>")], "companion model", ctrl.model, USB_COMPANION_MODELS, optional=False)
        master = masters.get(ctrl.index)
        if master is None or master.model not in USB2_MASTERS:
            c.fail(path, f"a companion needs a USB2 controller ({', '.join(USB2_MASTERS)}) with index {ctrl.index}",
                   f"add <controller type='usb' index='{ctrl.index}' model='ich9-ehci1'/>")
        starts[(ctrl.index, ctrl.master_startport)] += 1
    for (index, start), n in starts.items():
        if n > 1:
            c.fail("<devices>/<controller type='usb'>/<master>", f"{n} companions of USB controller {index} start "
                   f"at port {start}", "give each its own startport (0, 2, 4)")


def filesystems(c: Check, dv: Devices) -> None:
    for fs in dv.filesystems:
        path = f"<devices>/<filesystem> '{fs.target_dir}'"
        c.one_of(path + "/<driver>", "type", fs.driver_type, ("virtiofs", "path"))
        c.one_of(path, "accessmode", fs.accessmode, ("passthrough", "mapped", "squash"))
        if fs.driver_type == "virtiofs" and fs.accessmode not in (None, "passthrough"):
            c.fail(path, f"virtiofs has no accessmode '{fs.accessmode}'", "use accessmode='passthrough'")
        c.absolute(path + "/<source>", "dir", fs.source_dir)
        if not fs.target_dir or len(fs.target_dir) > 36 or control_char(fs.target_dir) is not None \
                or "," in fs.target_dir:
            c.fail(path + "/<target>", f"mount tag {fs.target_dir!r} is not 1 to 36 plain characters",
                   "write e.g. dir='share'")
    for tag, n in Counter(fs.target_dir for fs in dv.filesystems).items():
        if n > 1:
            c.fail("<devices>/<filesystem>", f"{n} shares have the mount tag '{tag}'", "give each its own")


def tpms(c: Check, dv: Devices) -> None:
    if len(dv.tpms) > 1:
        c.fail("<devices>/<tpm>", f"{len(dv.tpms)} TPMs", "keep one: a guest has one TPM")
    for t in dv.tpms:
        path = f"<devices>/<tpm model='{t.model}'>"
        c.one_of(path, "model", t.model, TPM_MODELS, optional=False)
        c.one_of(path + "/<backend>", "type", t.backend_type, ("emulator",), optional=False)
        c.one_of(path + "/<backend>", "version", t.backend_version, ("2.0", "1.2"))
        if t.model == "tpm-crb" and t.backend_version == "1.2":
            c.fail(path, "a CRB interface is TPM 2.0 only", "use version='2.0', or model='tpm-tis' for TPM 1.2")


