"""libvirt domain XML <-> ``model.domain.Domain``.

``parse_domain_xml`` reads the documented subset of libvirt's format strictly:
every element and attribute is mapped to the model or rejected with an error
that names it by path (libvirt drops unknown XML; users then lose settings).
Accepted and ignored, because they carry no setting: ``<alias>`` on devices
(live-only names), the ``id`` attribute of <domain>, a pty's ``<source path>``
and ``tty``, a channel target's ``state``, an empty ``<backingStore/>``, the
``portid``/``bridge`` that libvirt adds to a network interface's live source,
and ``clusters='1'`` of a CPU topology. ``<resource><partition>`` is kept
(the daemon places QEMU's cgroup there where the host has cgroup v2).

A document without <uuid> parses to ``uuid=""`` and interfaces without <mac>
to ``mac=None``; ``model.ids.normalize`` fills them (define does that).

The <devices> parsers live in ``domain_xml_devices`` (``parse_disk_xml`` and
``parse_interface_xml`` for one device alone are re-exported here); the
formatter lives in ``domain_xml_format``; ``LiveInfo``, ``format_domain_xml``
and the one-device formatters ``format_disk_xml`` / ``format_interface_xml`` are
re-exported here so callers keep one import path, and
``parse_domain_xml(format_domain_xml(d)) == d`` for every valid domain.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from ..errors import InvalidArgument
from . import validate
from .domain import (
    CPU,
    OS,
    PM,
    BootLoader,
    Clock,
    CPUFeature,
    CPUTopology,
    Devices,
    Domain,
    Features,
    NumaCell,
    SecLabel,
    Timer,
    disk_bus_for,
)
from .domain_xml_devices import opt, parse_devices, parse_disk_xml, parse_interface_xml, stripped
from .domain_xml_format import LiveInfo, format_disk_xml, format_domain_xml, format_interface_xml
from .features_xml import parse_features
from .tuning_xml import parse_blkiotune, parse_cputune, parse_memory_backing, parse_memtune
from .units import parse_xml_size_kib
from .xml_doc import open_document, read_name, read_uuid
from .xml_doc import with_path as _err
from .xml_util import Hint, Reader, serialize_foreign

__all__ = ["LiveInfo", "disk_bus_for", "format_disk_xml", "format_domain_xml", "format_interface_xml",
           "parse_disk_xml", "parse_domain_xml", "parse_interface_xml"]

T = TypeVar("T")


LATER = "it comes in a later release; remove it for now"
_TUNING = Hint("resource tuning is not supported yet; " + LATER)
DOMAIN_HINTS = {
    "genid": Hint("VM generation ids are not supported yet; " + LATER),
    "vcpus": Hint("per-vCPU settings are not supported; use <vcpu current='N'>M</vcpu>"),
    "iothreads": _TUNING, "iothreadids": _TUNING, "numatune": _TUNING,
    "sysinfo": Hint("SMBIOS system information is not supported yet; " + LATER),
    "idmap": Hint("user namespaces are for containers, not QEMU guests; remove it"),
    "bootloader": Hint("host bootloaders are a Xen feature; use <os><kernel> for direct boot"),
    "keywrap": Hint("s390 key wrapping is not supported; remove it"),
    "launchSecurity": Hint("confidential guests (SEV/TDX) are not supported; remove it"),
    "{http://libvirt.org/schemas/domain/qemu/1.0}commandline": Hint(
        "raw QEMU arguments are not supported: pyvirt builds the whole command line; remove it"
    ),
}


# ====================================================================== parse
def parse_domain_xml(text: str) -> Domain:
    """Parse and validate a libvirt <domain> document (see the module docstring)."""
    r = open_document(text, "domain", "<domain type='kvm'>")
    name = read_name(r, "domain")

    dom_type = r.attr("type")
    if dom_type is None:
        raise r.error("attribute 'type' is missing", "write <domain type='kvm'> (or 'qemu' for emulation)")
    r.ignore_attrs("id")  # the id of a running domain: live-only

    uuid = read_uuid(r)

    memory_r = r.child("memory")
    memory = _size(memory_r) if memory_r is not None else None
    current = opt(r.child("currentMemory"), _size)
    max_mem, slots = None, None
    max_r = r.child("maxMemory")
    if max_r is not None:
        slots = max_r.int_attr("slots", minimum=0)
        max_mem = _size(max_r)

    vcpus, placement, vcpu_current = 1, None, None
    vcpu_r = r.child("vcpu")
    if vcpu_r is not None:
        placement = vcpu_r.attr("placement")
        vcpu_current = vcpu_r.int_attr("current")
        vcpus = vcpu_r.int_text()
        vcpu_r.done()

    partition = opt(r.child("resource"), _resource)
    os_r = r.child("os")
    dom = Domain(
        name=name,
        uuid=uuid,
        memory_kib=memory or 0,
        type=dom_type,
        title=r.child_text("title"),
        description=r.child_text("description"),
        metadata_xml=opt(r.child("metadata"), _metadata),
        current_memory_kib=current,
        max_memory_kib=max_mem,
        max_memory_slots=slots,
        blkiotune=opt(r.child("blkiotune"), parse_blkiotune),
        memtune=opt(r.child("memtune"), parse_memtune),
        memory_backing=opt(r.child("memoryBacking"), parse_memory_backing),
        cputune=opt(r.child("cputune"), parse_cputune),
        vcpus=vcpus,
        vcpu_placement=placement,
        vcpu_current=vcpu_current,
        os=_os(os_r) if os_r is not None else OS(),
        features=opt(r.child("features"), parse_features) or Features(),
        cpu=opt(r.child("cpu"), _cpu),
        clock=opt(r.child("clock"), _clock),
        on_poweroff=stripped(r.child_text("on_poweroff")) or "destroy",
        on_reboot=stripped(r.child_text("on_reboot")) or "restart",
        on_crash=stripped(r.child_text("on_crash")) or "destroy",
        pm=opt(r.child("pm"), _pm),
        devices=opt(r.child("devices"), parse_devices) or Devices(),
        seclabels=tuple(_seclabel(s) for s in r.children("seclabel")),
        resource_partition=partition,
    )
    r.done(DOMAIN_HINTS)
    dom = implied_memory(dom)
    validate.validate_domain(dom)
    return dom


def _size(r: Reader) -> int:
    unit = r.attr("unit")
    try:
        kib = parse_xml_size_kib(r.text(), unit)
    except InvalidArgument as exc:
        raise _err(r, exc) from None
    r.done()
    return kib


def _resource(r: Reader) -> str | None:
    part = stripped(r.child_text("partition"))
    r.done({"fibrechannel": Hint("fibre channel resources are not supported; remove <fibrechannel>")})
    return part


def _metadata(r: Reader) -> str | None:
    """Inner XML of <metadata>: children written back with their namespace prefixes."""
    if (r.text() or "").strip():
        raise r.error("text directly inside <metadata>", "wrap it in an element of your own namespace")
    # namespaces declared on <domain> or <metadata> are in scope for the children
    in_scope = {uri: p for p, uri in r.ctx.declared.get(r.ctx.root, [])} if r.ctx.root is not None else {}
    in_scope.update({uri: p for p, uri in r.ctx.declared.get(r.elem, [])})
    parts: list[str] = []
    children = list(r.elem)
    for i, child in enumerate(children):
        r.mark_child_used(i)
        parts.append(serialize_foreign(child, r.ctx.declared, in_scope))
        tail = child.tail or ""
        if tail.strip():
            raise r.error("text directly inside <metadata>", "wrap it in an element of your own namespace")
        if i < len(children) - 1:
            parts.append(tail)
    r.done()
    return "".join(parts) or None


# ---------------------------------------------------------------- os / cpu / features
def _os(r: Reader) -> OS:
    firmware = r.attr("firmware")
    t = r.child("type")
    if t is None:
        raise r.error("<type> is missing", "add <type arch='x86_64' machine='q35'>hvm</type>")
    arch = t.attr("arch") or "x86_64"
    machine = t.attr("machine")
    os_type = t.text().strip()
    t.done()
    loader = None
    loader_r = r.child("loader")
    nvram_r = r.child("nvram")
    nvram = template = None
    if nvram_r is not None:
        template = nvram_r.attr("template")
        nvram = nvram_r.text().strip() or None
        nvram_r.done()
    if loader_r is not None:
        loader = BootLoader(
            path=loader_r.text().strip(),
            readonly=loader_r.bool_attr("readonly"),
            type=loader_r.attr("type"),
            secure=loader_r.bool_attr("secure"),
            nvram=nvram,
            nvram_template=template,
        )
        loader_r.done()
    elif nvram_r is not None:
        raise r.error("<nvram> is given without <loader>", "add <loader readonly='yes' type='pflash'>PATH</loader>")
    boot = []
    for b in r.children("boot"):
        boot.append(b.req_attr("dev"))
        b.done()
    bootmenu = None
    bm = r.child("bootmenu")
    if bm is not None:
        bm.req_attr("enable")
        bootmenu = bm.bool_attr("enable")
        bm.done()
    result = OS(
        type=os_type, arch=arch, machine=machine, boot=tuple(boot), bootmenu=bootmenu,
        kernel=stripped(r.child_text("kernel")), initrd=stripped(r.child_text("initrd")),
        cmdline=r.child_text("cmdline"),
        loader=loader, firmware=firmware,
    )
    r.done({"firmware": Hint("firmware feature selection is not supported; give <loader> and <nvram> paths")})
    return result


def _cpu(r: Reader) -> CPU:
    model = fallback = None
    m = r.child("model")
    if m is not None:
        fallback = m.attr("fallback")
        model = m.text().strip() or None
        m.done()
    topology = None
    t = r.child("topology")
    if t is not None:
        clusters = t.int_attr("clusters")
        if clusters not in (None, 1):
            raise t.error(f"clusters='{clusters}' is not supported", "remove the attribute")
        topology = CPUTopology(
            sockets=_req_int(t, "sockets"), cores=_req_int(t, "cores"), threads=_req_int(t, "threads"),
            dies=t.int_attr("dies", minimum=1) or 1,
        )
        t.done()
    numa = opt(r.child("numa"), _numa) or ()
    cache_mode = cache_level = None
    if (cache := r.child("cache")) is not None:
        cache_mode, cache_level = cache.req_attr("mode"), cache.int_attr("level", minimum=1)
        cache.done()
    features = []
    for f in r.children("feature"):
        features.append(CPUFeature(name=f.req_attr("name"), policy=f.attr("policy") or "require"))
        f.done()
    cpu = CPU(
        mode=r.attr("mode"), match=r.attr("match"), check=r.attr("check"),
        migratable=r.bool_attr("migratable", "on", "off"), model=model, model_fallback=fallback,
        topology=topology, features=tuple(features), numa=numa, cache_mode=cache_mode, cache_level=cache_level,
    )
    r.done()
    return cpu


def _numa(r: Reader) -> tuple[NumaCell, ...]:
    cells = []
    for c in r.children("cell"):
        unit = c.attr("unit")
        try:
            memory = parse_xml_size_kib(c.req_attr("memory"), unit)
        except InvalidArgument as exc:
            raise _err(c, exc) from None
        cells.append(NumaCell(cpus=c.req_attr("cpus"), memory_kib=memory, id=c.int_attr("id", minimum=0),
                              mem_access=c.attr("memAccess")))
        c.done({"distances": Hint("NUMA distances are not supported; remove <distances>")})
    r.done()
    if not cells:
        raise r.error("<numa> has no <cell>", "add <cell id='0' cpus='0' memory='...'/> or remove <numa>")
    return tuple(cells)


def implied_memory(d: Domain) -> Domain:
    """libvirt's rule: with NUMA cells, <memory> is their sum plus the memory devices (a given <memory> is
    replaced, as libvirt does); <currentMemory> is capped at it. Without cells <memory> must be given."""
    cells = d.cpu.numa if d.cpu is not None else ()
    if not cells:
        if d.memory_kib == 0:
            raise InvalidArgument(f"domain '{d.name}' has no <memory>; add e.g. <memory unit='MiB'>1024</memory>, "
                                  "or NUMA cells (<cpu><numa><cell .../>) that imply it")
        return d
    total = sum(c.memory_kib for c in cells) + sum(m.size_kib for m in d.devices.memories)
    current = d.current_memory_kib
    if current is not None and current > total:
        current = total
    return replace(d, memory_kib=total, current_memory_kib=current)


def _req_int(r: Reader, name: str) -> int:
    r.req_attr(name)
    value = r.int_attr(name, minimum=1)
    assert value is not None
    return value


def _clock(r: Reader) -> Clock:
    timers = []
    for t in r.children("timer"):
        timers.append(Timer(name=t.req_attr("name"), present=t.bool_attr("present"), tickpolicy=t.attr("tickpolicy")))
        t.done()
    clock = Clock(offset=r.attr("offset") or "utc", timers=tuple(timers))
    r.done()
    return clock


def _pm(r: Reader) -> PM:
    def enabled(tag: str) -> bool | None:
        e = r.child(tag)
        if e is None:
            return None
        value = e.bool_attr("enabled")
        e.done()
        return value

    pm = PM(suspend_to_mem=enabled("suspend-to-mem"), suspend_to_disk=enabled("suspend-to-disk"))
    r.done()
    return pm


def _seclabel(r: Reader) -> SecLabel:
    label = SecLabel(
        type=r.attr("type"), model=r.attr("model"), relabel=r.bool_attr("relabel"),
        label=r.child_text("label"), imagelabel=r.child_text("imagelabel"), baselabel=r.child_text("baselabel"),
    )
    r.done()
    return label


