"""libvirt domain XML <-> ``model.domain.Domain``.

``parse_domain_xml`` reads the documented subset of libvirt's format strictly:
every element and attribute is mapped to the model or rejected with an error
that names it by path (libvirt drops unknown XML; users then lose settings).
Accepted and ignored, because they carry no setting: ``<alias>`` on devices
(live-only names), the ``id`` attribute of <domain>, a pty's ``<source path>``
and ``tty``, a channel target's ``state``, an empty ``<backingStore/>``, the
``portid``/``bridge`` that libvirt adds to a network interface's live source,
``clusters='1'`` of a CPU topology, and
``<resource><partition>/machine</partition></resource>`` (libvirt's default
placement; any other partition is an error).

A document without <uuid> parses to ``uuid=""`` and interfaces without <mac>
to ``mac=None``; ``model.ids.normalize`` fills them (define does that).

The formatter lives in ``domain_xml_format``; ``LiveInfo``, ``format_domain_xml``
and the one-device formatters ``format_disk_xml`` / ``format_interface_xml`` are
re-exported here so callers keep one import path, and
``parse_domain_xml(format_domain_xml(d)) == d`` for every valid domain.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from ..errors import InvalidArgument, UnsupportedConfig
from . import validate
from .domain import (
    CPU,
    OS,
    PM,
    RNG,
    Address,
    Audio,
    BootLoader,
    CharDev,
    Clock,
    Controller,
    CPUFeature,
    CPUTopology,
    Devices,
    Disk,
    Domain,
    Features,
    Graphics,
    Input,
    Interface,
    MemBalloon,
    Panic,
    RedirDev,
    SecLabel,
    Sound,
    Timer,
    Video,
    Watchdog,
    disk_bus_for,
)
from .domain_xml_format import LiveInfo, format_disk_xml, format_domain_xml, format_interface_xml
from .ids import parse_mac
from .tuning_xml import parse_blkiotune, parse_cputune, parse_memory_backing, parse_memtune
from .units import parse_xml_size_kib
from .validate import ADDRESS_ATTRS
from .xml_doc import open_document, read_name, read_uuid
from .xml_doc import with_path as _err
from .xml_util import Context, Hint, Reader, parse_xml, serialize_foreign

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
DEVICE_HINTS = {
    "hostdev": Hint("PCI/USB passthrough is not supported yet; " + LATER),
    "tpm": Hint("TPM emulation is not supported yet; " + LATER),
    "filesystem": Hint("shared folders (virtiofs/9p) are not supported yet; " + LATER),
    "memory": Hint("memory hotplug devices are not supported yet; " + LATER),
    "smartcard": Hint("smartcards are not supported; remove it"),
    "parallel": Hint("parallel ports are not supported; use a <serial> port"),
    "hub": Hint("USB hubs are not supported; remove it"),
    "lease": Hint("lock manager leases are not supported; remove it"),
    "vsock": Hint("vsock devices are not supported yet; " + LATER),
    "iommu": Hint("virtual IOMMUs are not supported yet; " + LATER),
    "shmem": Hint("shared memory devices are not supported; remove it"),
    "crypto": Hint("crypto devices are not supported; remove it"),
}


# ====================================================================== parse
def parse_device_xml(text: str, tag: str) -> Reader:
    """A Reader on a standalone device element (attach-interface/-disk XML), checked for its tag."""
    root, declared = parse_xml(text, what=f"{tag} XML")
    ctx = Context("device", declared)
    if root.tag != tag:
        raise InvalidArgument(f"the root element is <{ctx.show_tag(root.tag)}>, not <{tag}>")
    return Reader(root, ctx, f"<{tag}>", root=True)


def parse_interface_xml(text: str) -> Interface:
    """One <interface> element, as attach-interface sends it (validated with its domain by the caller)."""
    return _interface(parse_device_xml(text, "interface"))


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
    if memory_r is None:
        raise InvalidArgument(f"domain '{name}' has no <memory>; add e.g. <memory unit='MiB'>1024</memory>")
    memory = _size(memory_r)
    current = _opt(r.child("currentMemory"), _size)
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

    _resource(r.child("resource"))
    os_r = r.child("os")
    dom = Domain(
        name=name,
        uuid=uuid,
        memory_kib=memory,
        type=dom_type,
        title=r.child_text("title"),
        description=r.child_text("description"),
        metadata_xml=_opt(r.child("metadata"), _metadata),
        current_memory_kib=current,
        max_memory_kib=max_mem,
        max_memory_slots=slots,
        blkiotune=_opt(r.child("blkiotune"), parse_blkiotune),
        memtune=_opt(r.child("memtune"), parse_memtune),
        memory_backing=_opt(r.child("memoryBacking"), parse_memory_backing),
        cputune=_opt(r.child("cputune"), parse_cputune),
        vcpus=vcpus,
        vcpu_placement=placement,
        vcpu_current=vcpu_current,
        os=_os(os_r) if os_r is not None else OS(),
        features=_opt(r.child("features"), _features) or Features(),
        cpu=_opt(r.child("cpu"), _cpu),
        clock=_opt(r.child("clock"), _clock),
        on_poweroff=_stripped(r.child_text("on_poweroff")) or "destroy",
        on_reboot=_stripped(r.child_text("on_reboot")) or "restart",
        on_crash=_stripped(r.child_text("on_crash")) or "destroy",
        pm=_opt(r.child("pm"), _pm),
        devices=_opt(r.child("devices"), _devices) or Devices(),
        seclabels=tuple(_seclabel(s) for s in r.children("seclabel")),
    )
    r.done(DOMAIN_HINTS)
    validate.validate_domain(dom)
    return dom


def _stripped(value: str | None) -> str | None:
    return None if value is None else value.strip()


def _opt(r: Reader | None, fn: Callable[[Reader], T]) -> T | None:
    return None if r is None else fn(r)


def _size(r: Reader) -> int:
    unit = r.attr("unit")
    try:
        kib = parse_xml_size_kib(r.text(), unit)
    except InvalidArgument as exc:
        raise _err(r, exc) from None
    r.done()
    return kib


def _resource(r: Reader | None) -> None:
    if r is None:
        return
    part = r.child_text("partition")
    if part is not None and part.strip() != "/machine":
        raise r.error(f"partition '{part}' is not supported", "pyvirt places every VM in /machine; remove <resource>")
    r.done()


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
        kernel=_stripped(r.child_text("kernel")), initrd=_stripped(r.child_text("initrd")),
        cmdline=r.child_text("cmdline"),
        loader=loader, firmware=firmware,
    )
    r.done({"firmware": Hint("firmware feature selection is not supported; give <loader> and <nvram> paths")})
    return result


_FEATURE_HINT = Hint("this feature is not supported yet; remove it")


def _features(r: Reader) -> Features:
    def state(tag: str) -> bool | None:
        f = r.child(tag)
        if f is None:
            return None
        value = f.bool_attr("state", "on", "off")
        f.done()
        return True if value is None else value

    feats = Features(acpi=r.flag("acpi"), apic=r.flag("apic"), pae=r.flag("pae"),
                     vmport=state("vmport"), smm=state("smm"))
    r.done({tag.tag: _FEATURE_HINT for _, tag in r.leftover_children()})
    return feats


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
    features = []
    for f in r.children("feature"):
        features.append(CPUFeature(name=f.req_attr("name"), policy=f.attr("policy") or "require"))
        f.done()
    cpu = CPU(
        mode=r.attr("mode"), match=r.attr("match"), check=r.attr("check"),
        migratable=r.bool_attr("migratable", "on", "off"), model=model, model_fallback=fallback,
        topology=topology, features=tuple(features),
    )
    r.done()
    return cpu


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


# ---------------------------------------------------------------- devices
def _devices(r: Reader) -> Devices:
    emulator = r.child_text("emulator")
    memballoon = r.child("memballoon")
    devices = Devices(
        emulator=emulator.strip() if emulator is not None else None,
        disks=tuple(_disk(d) for d in r.children("disk")),
        controllers=_number_controllers([_controller(c) for c in r.children("controller")]),
        interfaces=tuple(_interface(i) for i in r.children("interface")),
        serials=tuple(_chardev(c, "serial") for c in r.children("serial")),
        consoles=tuple(_chardev(c, "console") for c in r.children("console")),
        channels=tuple(_chardev(c, "channel") for c in r.children("channel")),
        inputs=tuple(_input(i) for i in r.children("input")),
        graphics=tuple(_graphics(g) for g in r.children("graphics")),
        sounds=tuple(_sound(s) for s in r.children("sound")),
        audios=tuple(_audio(a) for a in r.children("audio")),
        videos=tuple(_video(v) for v in r.children("video")),
        redirdevs=tuple(_redirdev(d) for d in r.children("redirdev")),
        memballoon=_memballoon(memballoon) if memballoon is not None else None,
        rngs=tuple(_rng(x) for x in r.children("rng")),
        watchdogs=tuple(_watchdog(w) for w in r.children("watchdog")),
        panics=tuple(_panic(p) for p in r.children("panic")),
    )
    r.done(DEVICE_HINTS)
    return devices


def _info(r: Reader) -> Address | None:
    """<alias> (ignored: live-only) and <address> of a device."""
    r.ignore_children("alias")
    a = r.child("address")
    if a is None:
        return None
    kind = a.attr("type")
    if kind is None:
        raise a.error("attribute 'type' is missing", f"write type='pci' (or one of {', '.join(ADDRESS_ATTRS)})")
    if kind not in ADDRESS_ATTRS:
        raise a.error(f"address type '{kind}' is not supported", f"use one of {', '.join(ADDRESS_ATTRS)}",
                      UnsupportedConfig)
    attrs = [(k, v) for k, v in a.all_attrs() if k != "type"]
    for k, _ in attrs:
        if k not in ADDRESS_ATTRS[kind]:
            raise a.error(f"attribute '{k}' does not belong to a {kind} address",
                          f"use {', '.join(ADDRESS_ATTRS[kind])}", UnsupportedConfig)
    a.done()  # child elements such as <zpci> are errors
    return Address(kind, tuple(attrs))


def _boot_order(r: Reader) -> int | None:
    b = r.child("boot")
    if b is None:
        return None
    b.req_attr("order")
    order = b.int_attr("order", minimum=1)
    b.done()
    return order




# <disk type=...> -> the <source> attribute that holds its path
DISK_SOURCE_ATTR = {"file": "file", "block": "dev"}


def _disk(r: Reader) -> Disk:
    kind = r.attr("type") or "file"
    if kind in ("network", "dir", "nvme", "vhostuser"):
        raise r.error(f"<disk type='{kind}'> is not supported",
                      "use type='file', 'block' or 'volume' (a volume of a storage pool)", UnsupportedConfig)
    if kind not in ("file", "block", "volume"):
        raise r.error(f"disk type '{kind}' is unknown", "use type='file', 'block' or 'volume'", UnsupportedConfig)
    device = r.attr("device") or "disk"
    driver = r.child("driver")
    name = fmt = cache = discard = io = None
    if driver is not None:
        name, fmt = driver.attr("name"), driver.attr("type")
        cache, discard, io = driver.attr("cache"), driver.attr("discard"), driver.attr("io")
        driver.done()
    source = pool = volume = None
    index = None
    s = r.child("source")
    if s is not None:
        if kind == "volume":
            pool, volume = s.attr("pool"), s.attr("volume")
            if s.attr("mode") is not None:
                raise s.error("attribute 'mode' (iSCSI LUN access) is not supported",
                              "remove it: pyvirt opens the volume's path", UnsupportedConfig)
            if (pool is None) != (volume is None):
                raise s.error("a volume source needs both 'pool' and 'volume'",
                              "write <source pool='default' volume='NAME'/>")
        else:
            source = s.attr(DISK_SOURCE_ATTR[kind])
            other = "dev" if kind == "file" else "file"
            if s.attr(other) is not None:
                raise s.error(f"a <disk type='{kind}'> takes its path in <source {DISK_SOURCE_ATTR[kind]}=...>, "
                              f"not {other}=", f"use <disk type='{'block' if kind == 'file' else 'file'}'> "
                              f"with <source {other}=...>, or write {DISK_SOURCE_ATTR[kind]}=", UnsupportedConfig)
        index = s.int_attr("index", minimum=1)
        s.done()
    backing = r.child("backingStore")
    if backing is not None:
        if len(backing.elem) or backing.elem.attrib:
            raise backing.error("backing chains are not supported in the definition",
                                "remove <backingStore>; qemu reads the chain from the image", UnsupportedConfig)
        backing.done()
    t = r.child("target")
    if t is None:
        raise r.error("<target> is missing", "add e.g. <target dev='vda' bus='virtio'/>")
    dev = t.req_attr("dev")
    bus = t.attr("bus") or disk_bus_for(dev)
    if bus is None:
        raise t.error(f"cannot tell the bus of disk '{dev}'", "add bus='virtio' (or sata, scsi, ide)")
    t.done()
    disk = Disk(
        target_dev=dev, bus=bus, device=device, source_type=kind, source=source, source_pool=pool,
        source_volume=volume, source_index=index, driver_name=name, format=fmt,
        cache=cache, discard=discard, io=io, readonly=r.flag("readonly"), shareable=r.flag("shareable"),
        serial=r.child_text("serial"), boot_order=_boot_order(r), address=_info(r),
    )
    r.done()
    return disk


def parse_disk_xml(text: str) -> Disk:
    """One <disk> element, as attach-disk and attach-device send it (validated with its domain by the caller)."""
    return _disk(parse_device_xml(text, "disk"))


def _controller(r: Reader) -> tuple[Controller, bool]:
    index = r.int_attr("index", minimum=0)
    model_name = chassis = port = None
    m = r.child("model")
    if m is not None:
        model_name = m.req_attr("name")
        m.done()
    t = r.child("target")
    if t is not None:
        chassis = t.int_attr("chassis", minimum=0)
        port = t.attr("port")
        t.done()
    ctrl = Controller(
        type=r.req_attr("type"), index=index or 0, model=r.attr("model"), ports=r.int_attr("ports", minimum=0),
        model_name=model_name, target_chassis=chassis, target_port=port, address=_info(r),
    )
    r.done()
    return ctrl, index is None


def _number_controllers(parsed: list[tuple[Controller, bool]]) -> tuple[Controller, ...]:
    """Give controllers without index= the lowest free index of their type, as libvirt does."""
    used: dict[str, set[int]] = {}
    for ctrl, missing in parsed:
        if not missing:
            used.setdefault(ctrl.type, set()).add(ctrl.index)
    out = []
    for ctrl, missing in parsed:
        if missing:
            taken = used.setdefault(ctrl.type, set())
            index = next(i for i in range(len(taken) + 1) if i not in taken)
            taken.add(index)
            ctrl = replace(ctrl, index=index)
        out.append(ctrl)
    return tuple(out)


# network: bridge (or dev and mode, on a macvtap network) appear in live XML only
SOURCE_ATTRS = {"user": (), "ethernet": (), "network": ("network", "bridge", "dev", "mode"), "bridge": ("bridge",),
                "direct": ("dev", "mode")}


def _interface(r: Reader) -> Interface:
    kind = r.req_attr("type")
    mac = None
    m = r.child("mac")
    if m is not None:
        try:
            mac = parse_mac(m.req_attr("address"))
        except InvalidArgument as exc:
            raise _err(m, exc) from None
        m.done()
    source: tuple[tuple[str, str], ...] = ()
    s = r.child("source")
    if s is not None:
        if kind == "network":
            s.ignore_attrs("portid")  # added by libvirt to live XML
        allowed = SOURCE_ATTRS.get(kind, ())
        source = tuple((k, v) for k, v in s.elem.items() if k in allowed)
        for k, _ in source:
            s.attr(k)
        s.done()
    model = target = link = driver_name = None
    queues = None
    if (x := r.child("model")) is not None:
        model = x.req_attr("type")
        x.done()
    if (x := r.child("target")) is not None:
        target = x.req_attr("dev")
        x.done()
    if (x := r.child("link")) is not None:
        link = x.req_attr("state")
        x.done()
    if (x := r.child("driver")) is not None:
        driver_name, queues = x.attr("name"), x.int_attr("queues", minimum=1)
        x.done()
    alias = None
    if (x := r.child("alias")) is not None:
        alias = x.req_attr("name")
        x.done()
    iface = Interface(
        type=kind, mac=mac, model=model, source=source, target_dev=target, link_state=link,
        boot_order=_boot_order(r), driver_name=driver_name, driver_queues=queues, address=_info(r), alias=alias,
    )
    r.done()
    return iface


def _chardev(r: Reader, kind: str) -> CharDev:
    dtype = r.req_attr("type")
    path = mode = log_file = None
    log_append = None
    s = r.child("source")
    if s is not None:
        if dtype == "pty":
            s.ignore_attrs("path")  # the pty a running QEMU got: live-only
        else:
            path, mode = s.attr("path"), s.attr("mode")
        s.done()
    if dtype == "pty":
        r.ignore_attrs("tty")
    lg = r.child("log")
    if lg is not None:
        log_file, log_append = lg.req_attr("file"), lg.bool_attr("append", "on", "off")
        lg.done()
    t_type = t_name = t_model = None
    t_port = None
    t = r.child("target")
    if t is not None:
        t_type, t_name, t_port = t.attr("type"), t.attr("name"), t.int_attr("port", minimum=0)
        if kind == "channel":
            t.ignore_attrs("state")  # guest agent connected/disconnected: live-only
        m = t.child("model")
        if m is not None:
            t_model = m.req_attr("name")
            m.done()
        t.done()
    dev = CharDev(
        kind=kind, type=dtype, source_path=path, source_mode=mode, log_file=log_file, log_append=log_append,
        target_type=t_type, target_port=t_port, target_name=t_name, target_model=t_model, address=_info(r),
    )
    r.done()
    return dev


INPUT_DEFAULT_BUS = {"tablet": "usb", "mouse": "ps2", "keyboard": "ps2"}


def _input(r: Reader) -> Input:
    kind = r.req_attr("type")
    bus = r.attr("bus") or INPUT_DEFAULT_BUS.get(kind, "usb")
    dev = Input(type=kind, bus=bus, address=_info(r))
    r.done()
    return dev


def _graphics(r: Reader) -> Graphics:
    kind = r.req_attr("type")
    listen_attr = r.attr("listen")
    socket = r.attr("socket") if kind == "vnc" else None
    listens = r.children("listen")
    if len(listens) > 1:
        raise r.error(f"{len(listens)} <listen> elements", "keep one: pyvirt listens on one address")
    listen_type = listen_address = None
    if listens:
        lr = listens[0]
        listen_type = lr.req_attr("type")
        listen_address = lr.attr("address") if listen_type == "address" else None
        sock = lr.attr("socket") if listen_type == "socket" else None
        lr.done()
        if listen_attr is not None and listen_address is not None and listen_attr != listen_address:
            raise r.error(f"listen='{listen_attr}' and <listen address='{listen_address}'> disagree",
                          "give the address once")
        if listen_attr is not None and listen_address is None and listen_type == "address":
            listen_address = listen_attr
        if sock is not None and socket is not None and sock != socket:
            raise r.error(f"socket='{socket}' and <listen socket='{sock}'> disagree", "give the path once")
        socket = socket or sock
    elif listen_attr is not None:
        listen_type, listen_address = "address", listen_attr
    elif socket is not None:
        listen_type = "socket"
    compression = None
    if kind == "spice":
        img = r.child("image")
        if img is not None:
            compression = img.req_attr("compression")
            img.done()
    g = Graphics(
        type=kind, port=r.int_attr("port"), autoport=r.bool_attr("autoport"), listen_type=listen_type,
        listen_address=listen_address, socket=socket, passwd=r.attr("passwd"), image_compression=compression,
    )
    r.done()
    return g


def _video(r: Reader) -> Video:
    m = r.child("model")
    if m is None:
        raise r.error("<model> is missing", "add e.g. <model type='virtio'/>")
    v = Video(
        model=m.req_attr("type"), heads=m.int_attr("heads", minimum=1), primary=m.bool_attr("primary"),
        vram=m.int_attr("vram", minimum=0), ram=m.int_attr("ram", minimum=0), vgamem=m.int_attr("vgamem", minimum=0),
        address=_info(r),
    )
    m.done()
    r.done()
    return v


def _sound(r: Reader) -> Sound:
    s = Sound(model=r.req_attr("model"), address=_info(r))
    r.done({"codec": Hint("sound codecs are not supported; remove <codec>")})
    return s


def _audio(r: Reader) -> Audio:
    r.req_attr("id")
    a = Audio(id=r.int_attr("id", minimum=1) or 1, type=r.req_attr("type"))
    r.done()
    return a


def _redirdev(r: Reader) -> RedirDev:
    d = RedirDev(bus=r.req_attr("bus"), type=r.req_attr("type"), address=_info(r))
    r.done()
    return d


def _memballoon(r: Reader) -> MemBalloon:
    period = None
    s = r.child("stats")
    if s is not None:
        period = s.int_attr("period", minimum=0)
        s.done()
    b = MemBalloon(model=r.req_attr("model"), autodeflate=r.bool_attr("autodeflate", "on", "off"),
                   stats_period=period, address=_info(r))
    r.done()
    return b


def _rng(r: Reader) -> RNG:
    b = r.child("backend")
    if b is None:
        raise r.error("<backend> is missing", "add <backend model='random'>/dev/urandom</backend>")
    backend_model = b.req_attr("model")
    path = b.text().strip()
    if backend_model != "random" and path:
        raise b.error(f"a '{backend_model}' backend takes no path", "remove the text or use model='random'")
    path = path or "/dev/urandom"
    b.done()
    rate_bytes = rate_period = None
    rate = r.child("rate")
    if rate is not None:
        rate.req_attr("bytes")
        rate_bytes, rate_period = rate.int_attr("bytes", minimum=1), rate.int_attr("period", minimum=1)
        rate.done()
    rng = RNG(model=r.req_attr("model"), backend_model=backend_model, backend=path, rate_bytes=rate_bytes,
              rate_period=rate_period, address=_info(r))
    r.done()
    return rng


def _watchdog(r: Reader) -> Watchdog:
    w = Watchdog(model=r.req_attr("model"), action=r.attr("action"), address=_info(r))
    r.done()
    return w


def _panic(r: Reader) -> Panic:
    p = Panic(model=r.attr("model"), address=_info(r))
    r.done()
    return p
