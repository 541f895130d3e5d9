"""``model.domain.Domain`` -> libvirt domain XML.

``format_domain_xml`` writes the normalized layout ``virsh dumpxml`` prints
(libvirt's element order, two-space indent, single quotes, sizes in KiB), and
``parse_domain_xml(format_domain_xml(d)) == d`` for every valid domain
(``domain_xml`` holds the parser and re-exports this module's public names).

One <disk> or <interface> alone (what attach-disk / attach-interface send and
their ``--print-xml`` prints) comes from the same element builders as the
whole document: ``format_disk_xml`` and ``format_interface_xml``.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from .domain import CPU, OS, Address, CharDev, Devices, Disk, Domain, Graphics, Interface, MemoryDevice
from .features_xml import format_features
from .tuning_xml import format_blkiotune, format_cputune, format_memory_backing, format_memtune
from .xml_util import Node, node, on_off, render, yes_no


@dataclass(frozen=True)
class LiveInfo:
    """What only a running domain has; today the domain id shown by `pyvirt list`."""

    id: int | None = None


def format_domain_xml(domain: Domain, *, live: LiveInfo | None = None, secure: bool = True) -> str:
    """The domain as `virsh dumpxml` prints it; ``live`` adds the id of a running domain.

    ``secure=False`` leaves out what only ``dumpxml --security-info`` shows
    (graphics passwords), as libvirt does for callers that did not ask.
    """
    d = domain if secure else without_passwords(domain)
    root = node("domain", ("type", d.type), ("id", live.id if live is not None else None))
    root.add(node("name", text=d.name))
    if d.uuid:
        root.add(node("uuid", text=d.uuid))
    if d.title is not None:
        root.add(node("title", text=d.title))
    if d.description is not None:
        root.add(node("description", text=d.description))
    if d.metadata_xml is not None:
        root.add(Node("metadata", raw=d.metadata_xml))
    if d.max_memory_kib is not None:
        root.add(node("maxMemory", ("slots", d.max_memory_slots), ("unit", "KiB"), text=str(d.max_memory_kib)))
    root.add(node("memory", ("unit", "KiB"), text=str(d.memory_kib)))
    if d.current_memory_kib is not None:
        root.add(node("currentMemory", ("unit", "KiB"), text=str(d.current_memory_kib)))
    root.add(format_blkiotune(d.blkiotune))
    root.add(format_memtune(d.memtune))
    root.add(format_memory_backing(d.memory_backing))
    root.add(node("vcpu", ("placement", d.vcpu_placement), ("current", d.vcpu_current), text=str(d.vcpus)))
    root.add(format_cputune(d.cputune))
    if d.resource_partition is not None:
        root.add(node("resource", children=[node("partition", text=d.resource_partition)]))
    root.add(_fmt_os(d.os))
    root.add(format_features(d.features))
    if d.cpu is not None:
        root.add(_fmt_cpu(d.cpu))
    if d.clock is not None:
        root.add(node("clock", ("offset", d.clock.offset), children=[
            node("timer", ("name", t.name), ("present", yes_no(t.present)), ("tickpolicy", t.tickpolicy))
            for t in d.clock.timers
        ]))
    root.add(node("on_poweroff", text=d.on_poweroff))
    root.add(node("on_reboot", text=d.on_reboot))
    root.add(node("on_crash", text=d.on_crash))
    if d.pm is not None:
        root.add(node("pm", children=[
            node("suspend-to-mem", ("enabled", yes_no(d.pm.suspend_to_mem)))
            if d.pm.suspend_to_mem is not None else None,
            node("suspend-to-disk", ("enabled", yes_no(d.pm.suspend_to_disk)))
            if d.pm.suspend_to_disk is not None else None,
        ]))
    root.add(_fmt_devices(d.devices))
    for s in d.seclabels:
        root.add(node("seclabel", ("type", s.type), ("model", s.model), ("relabel", yes_no(s.relabel)), children=[
            node("label", text=s.label) if s.label is not None else None,
            node("imagelabel", text=s.imagelabel) if s.imagelabel is not None else None,
            node("baselabel", text=s.baselabel) if s.baselabel is not None else None,
        ]))
    return render(root)


def _text(tag: str, value: str | None) -> Node | None:
    return None if value is None else node(tag, text=value)


def _fmt_os(o: OS) -> Node:
    loader = o.loader
    return node("os", ("firmware", o.firmware), children=[
        node("type", ("arch", o.arch), ("machine", o.machine), text=o.type),
        node("loader", ("readonly", yes_no(loader.readonly)), ("secure", yes_no(loader.secure)),
             ("type", loader.type), text=loader.path) if loader is not None else None,
        node("nvram", ("template", loader.nvram_template), text=loader.nvram)
        if loader is not None and (loader.nvram is not None or loader.nvram_template is not None) else None,
        _text("kernel", o.kernel),
        _text("initrd", o.initrd),
        _text("cmdline", o.cmdline),
        *[node("boot", ("dev", dev)) for dev in o.boot],
        node("bootmenu", ("enable", yes_no(o.bootmenu))) if o.bootmenu is not None else None,
    ])


def _fmt_cpu(c: CPU) -> Node:
    t = c.topology
    return node("cpu", ("mode", c.mode), ("match", c.match), ("check", c.check),
                ("migratable", on_off(c.migratable)), children=[
        node("model", ("fallback", c.model_fallback), text=c.model or "")
        if c.model is not None or c.model_fallback is not None else None,
        node("topology", ("sockets", t.sockets), ("dies", t.dies), ("cores", t.cores), ("threads", t.threads))
        if t is not None else None,
        node("cache", ("level", c.cache_level), ("mode", c.cache_mode)) if c.cache_mode is not None else None,
        *[node("feature", ("policy", f.policy), ("name", f.name)) for f in c.features],
        node("numa", children=[
            node("cell", ("id", n.id), ("cpus", n.cpus), ("memory", n.memory_kib), ("unit", "KiB"),
                 ("memAccess", n.mem_access)) for n in c.numa]) if c.numa else None,
    ])


def _addr(a: Address | None) -> Node | None:
    if a is None:
        return None
    return node("address", ("type", a.type), *a.attrs)


def _boot(order: int | None) -> Node | None:
    return None if order is None else node("boot", ("order", order))


def _fmt_devices(dv: Devices) -> Node:
    out = node("devices")
    out.add(_text("emulator", dv.emulator))
    for d in dv.disks:
        out.add(disk_node(d))
    for c in dv.controllers:
        out.add(node("controller", ("type", c.type), ("index", c.index), ("model", c.model), ("ports", c.ports),
                     children=[
            node("model", ("name", c.model_name)) if c.model_name is not None else None,
            node("target", ("chassis", c.target_chassis), ("port", c.target_port))
            if c.target_chassis is not None or c.target_port is not None else None,
            node("master", ("startport", c.master_startport)) if c.master_startport is not None else None,
            _addr(c.address),
        ]))
    for i in dv.interfaces:
        out.add(interface_node(i))
    for dev in (*dv.serials, *dv.consoles, *dv.channels):
        out.add(_fmt_chardev(dev))
    for inp in dv.inputs:
        out.add(node("input", ("type", inp.type), ("bus", inp.bus), children=[_addr(inp.address)]))
    for g in dv.graphics:
        out.add(_fmt_graphics(g))
    for s in dv.sounds:
        out.add(node("sound", ("model", s.model), children=[_addr(s.address)]))
    for a in dv.audios:
        out.add(node("audio", ("id", a.id), ("type", a.type)))
    for v in dv.videos:
        out.add(node("video", children=[
            node("model", ("type", v.model), ("ram", v.ram), ("vram", v.vram), ("vgamem", v.vgamem),
                 ("heads", v.heads), ("primary", yes_no(v.primary)), children=[
                node("acceleration", ("accel3d", yes_no(v.accel3d))) if v.accel3d is not None else None]),
            _addr(v.address),
        ]))
    for r in dv.redirdevs:
        out.add(node("redirdev", ("bus", r.bus), ("type", r.type), children=[_addr(r.address)]))
    for w in dv.watchdogs:
        out.add(node("watchdog", ("model", w.model), ("action", w.action), children=[_addr(w.address)]))
    if (b := dv.memballoon) is not None:
        out.add(node("memballoon", ("model", b.model), ("autodeflate", on_off(b.autodeflate)), children=[
            node("stats", ("period", b.stats_period)) if b.stats_period is not None else None,
            _addr(b.address),
        ]))
    for rng in dv.rngs:
        backend_text = rng.backend if rng.backend_model == "random" else None
        out.add(node("rng", ("model", rng.model), children=[
            node("rate", ("bytes", rng.rate_bytes), ("period", rng.rate_period))
            if rng.rate_bytes is not None else None,
            node("backend", ("model", rng.backend_model), text=backend_text),
            _addr(rng.address),
        ]))
    for p in dv.panics:
        out.add(node("panic", ("model", p.model), children=[_addr(p.address)]))
    for t in dv.tpms:
        out.add(node("tpm", ("model", t.model), children=[
            node("backend", ("type", t.backend_type), ("version", t.backend_version))]))
    for fs in dv.filesystems:
        out.add(node("filesystem", ("type", fs.type), ("accessmode", fs.accessmode), children=[
            node("driver", ("type", fs.driver_type)) if fs.driver_type is not None else None,
            node("source", ("dir", fs.source_dir)),
            node("target", ("dir", fs.target_dir)),
            node("readonly") if fs.readonly else None,
            _addr(fs.address)]))
    for m in dv.memories:
        out.add(memory_device_node(m))
    if (io := dv.iommu) is not None:
        drv = node("driver", ("intremap", on_off(io.intremap)), ("caching_mode", on_off(io.caching_mode)),
                   ("eim", on_off(io.eim)), ("iotlb", on_off(io.iotlb)), ("aw_bits", io.aw_bits))
        out.add(node("iommu", ("model", io.model), children=[drv if any(v for _, v in drv.attrs) else None]))
    if (vs := dv.vsock) is not None:
        out.add(node("vsock", ("model", vs.model), children=[
            node("cid", ("auto", yes_no(vs.cid_auto)), ("address", vs.cid))
            if vs.cid_auto is not None or vs.cid is not None else None,
            _addr(vs.address)]))
    return out


# Disk fields a request may leave to the reader (``parse_disk_xml`` fills them in): device='disk', and
# the bus its target's name implies (vd* virtio, sd* scsi, hd* ide).
IMPLIED_DISK_FIELDS = ("device", "bus")


def disk_node(d: Disk, implied: Collection[str] = ()) -> Node:
    """One <disk> element; the fields named in ``implied`` (of IMPLIED_DISK_FIELDS) are not written."""
    unknown = set(implied) - set(IMPLIED_DISK_FIELDS)
    if unknown:
        raise ValueError(f"disk fields {sorted(unknown)} cannot be implied; only {IMPLIED_DISK_FIELDS}")
    driver = node("driver", ("name", d.driver_name), ("type", d.format), ("cache", d.cache),
                  ("io", d.io), ("discard", d.discard))
    return node("disk", ("type", d.source_type), ("device", None if "device" in implied else d.device), children=[
        driver if any(v is not None for _, v in driver.attrs) else None,
        _disk_source(d),
        node("target", ("dev", d.target_dev), ("bus", None if "bus" in implied else d.bus)),
        node("readonly") if d.readonly else None,
        node("shareable") if d.shareable else None,
        _text("serial", d.serial),
        _boot(d.boot_order),
        _addr(d.address),
    ])


def format_disk_xml(disk: Disk, *, implied: Collection[str] = ()) -> str:
    """One <disk> as `virsh dumpxml` shows it in <devices>, unindented.

    ``implied`` leaves out what the sender did not say (attach-disk without --type or --targetbus),
    so a request carries only what was asked for, as `virsh attach-disk --print-xml` prints it.
    """
    return render(disk_node(disk, implied))


# Child order of <interface>: libvirt's (dumpxml), and the one `attach-interface --print-xml` prints.
INTERFACE_CHILDREN = ("mac", "source", "target", "model", "driver", "link", "boot", "alias", "address")
ATTACH_INTERFACE_CHILDREN = ("source", "mac", "target", "model", "driver", "link", "boot", "alias", "address")


def interface_node(i: Interface, order: tuple[str, ...] = INTERFACE_CHILDREN) -> Node:
    """One <interface> element, its children in ``order`` (a permutation of INTERFACE_CHILDREN)."""
    if sorted(order) != sorted(INTERFACE_CHILDREN):
        raise ValueError(f"interface child order {order} must name each of {INTERFACE_CHILDREN} once")
    children = {
        "mac": node("mac", ("address", i.mac)) if i.mac is not None else None,
        "source": node("source", *i.source) if i.source else None,
        "target": node("target", ("dev", i.target_dev)) if i.target_dev is not None else None,
        "model": node("model", ("type", i.model)) if i.model is not None else None,
        "driver": node("driver", ("name", i.driver_name), ("queues", i.driver_queues))
        if i.driver_name is not None or i.driver_queues is not None else None,
        "link": node("link", ("state", i.link_state)) if i.link_state is not None else None,
        "boot": _boot(i.boot_order),
        "alias": node("alias", ("name", i.alias)) if i.alias is not None else None,
        "address": _addr(i.address),
    }
    return node("interface", ("type", i.type), children=[children[tag] for tag in order], expand=True)


def format_interface_xml(iface: Interface, *, attach: bool = False) -> str:
    """One <interface>, unindented: libvirt's child order, or with ``attach`` the order
    `attach-interface --print-xml` prints (<source> first)."""
    return render(interface_node(iface, ATTACH_INTERFACE_CHILDREN if attach else INTERFACE_CHILDREN))


def _disk_source(d: Disk) -> Node | None:
    """<source file=/dev=/pool= volume=>; a resolved volume's path is live state, never written."""
    if d.source_type == "volume":
        if d.source_pool is None:
            return None
        attrs: list[tuple[str, str | int | None]] = [("pool", d.source_pool), ("volume", d.source_volume)]
    elif d.source is not None:
        attrs = [("dev" if d.source_type == "block" else "file", d.source)]
    else:
        return None
    return node("source", *attrs, ("index", d.source_index))


def _fmt_chardev(c: CharDev) -> Node:
    source = None
    if c.source_path is not None or c.source_mode is not None:
        source = node("source", ("mode", c.source_mode), ("path", c.source_path))
    target = None
    if any(v is not None for v in (c.target_type, c.target_port, c.target_name, c.target_model)):
        target = node("target", ("type", c.target_type), ("name", c.target_name), ("port", c.target_port),
                      children=[node("model", ("name", c.target_model)) if c.target_model is not None else None])
    return node(c.kind, ("type", c.type), children=[
        source,
        node("log", ("file", c.log_file), ("append", on_off(c.log_append))) if c.log_file is not None else None,
        target,
        _addr(c.address),
    ])


def without_passwords(domain: Domain) -> Domain:
    """``domain`` with its graphics passwords removed (the same object when it has none)."""
    graphics = domain.devices.graphics
    if not any(g.passwd is not None for g in graphics):
        return domain
    devices = replace(domain.devices, graphics=tuple(replace(g, passwd=None) for g in graphics))
    return replace(domain, devices=devices)


def _fmt_graphics(g: Graphics) -> Node:
    listen_attr = g.listen_address if g.listen_type == "address" else None
    socket_attr = g.socket if g.type == "vnc" and g.listen_type == "socket" else None
    listen = None
    if g.listen_type is not None:
        listen = node("listen", ("type", g.listen_type), ("address", listen_attr),
                      ("socket", g.socket if g.listen_type == "socket" else None))
    return node("graphics", ("type", g.type), ("port", g.port), ("tlsPort", g.tls_port),
                ("autoport", yes_no(g.autoport)), ("listen", listen_attr), ("socket", socket_attr),
                ("passwd", g.passwd), children=[
        listen,
        node("image", ("compression", g.image_compression)) if g.image_compression is not None else None,
        node("gl", ("enable", yes_no(g.gl)), ("rendernode", g.gl_rendernode)) if g.gl is not None else None,
    ])


def _size(tag: str, kib: int | None) -> Node | None:
    return None if kib is None else node(tag, ("unit", "KiB"), text=str(kib))


def memory_device_node(m: MemoryDevice) -> Node:
    """One <memory model=...> device, as libvirt writes it."""
    return node("memory", ("model", m.model), ("access", m.access), children=[
        node("source", children=[node("path", text=m.source_path)]) if m.source_path is not None else None,
        node("target", children=[
            _size("size", m.size_kib),
            node("node", text=str(m.node)) if m.node is not None else None,
            node("label", children=[_size("size", m.label_kib)]) if m.label_kib is not None else None,
            _size("block", m.block_kib),
            _size("requested", m.requested_kib),
        ]),
        _addr(m.address),
    ])
