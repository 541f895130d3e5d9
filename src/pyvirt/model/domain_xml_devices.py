"""libvirt's <devices> (and one device element alone, as attach-disk/-interface send it) -> the model.

The domain parser (domain_xml.py) hands its <devices> element here; every
element and attribute maps to the model or is refused by path, as there.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from ..errors import InvalidArgument, UnsupportedConfig
from .domain import (
    IOMMU,
    RNG,
    TPM,
    Address,
    Audio,
    CharDev,
    Controller,
    Devices,
    Disk,
    Filesystem,
    Graphics,
    Input,
    Interface,
    MemBalloon,
    MemoryDevice,
    Panic,
    RedirDev,
    Sound,
    Video,
    Vsock,
    Watchdog,
    disk_bus_for,
)
from .ids import parse_mac
from .units import parse_xml_size_kib
from .validate import ADDRESS_ATTRS
from .xml_doc import with_path as _err
from .xml_util import Context, Hint, Reader, parse_xml

T = TypeVar("T")

LATER = "it comes in a later release; remove it for now"
DEVICE_HINTS = {
    "hostdev": Hint("PCI/USB passthrough is not supported yet; " + LATER),
    "smartcard": Hint("smartcard passthrough is not supported: it needs the host's card reader (or a SPICE "
                      "client's) through a CCID device pyvirt does not set up; remove <smartcard>"),
    "parallel": Hint("parallel ports are not supported; use a <serial> port"),
    "hub": Hint("USB hubs are not supported; remove it"),
    "lease": Hint("lock manager leases are not supported; remove it"),
    "shmem": Hint("shared memory devices are not supported; remove it"),
    "crypto": Hint("crypto devices are not supported; remove it"),
}


def stripped(value: str | None) -> str | None:
    """An element's text without surrounding blanks (None stays None)."""
    return None if value is None else value.strip()


def opt(r: Reader | None, fn: Callable[[Reader], T]) -> T | None:
    """``fn`` of an optional child element."""
    return None if r is None else fn(r)


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


def parse_devices(r: Reader) -> Devices:
    """<devices>: every device list of the domain."""
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
        tpms=tuple(_tpm(t) for t in r.children("tpm")),
        memories=tuple(parse_memory_device(m) for m in r.children("memory")),
        iommu=opt(r.child("iommu"), _iommu),
        filesystems=tuple(_filesystem(f) for f in r.children("filesystem")),
        vsock=opt(r.child("vsock"), _vsock),
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
    if kind == "nvme":
        raise r.error("<disk type='nvme'> hands a host NVMe controller to the guest (PCI passthrough), which pyvirt "
                      "does not do", "use a file or block disk with <target dev='...' bus='nvme'/>", UnsupportedConfig)
    if kind in ("network", "dir", "vhostuser"):
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
    startport = None
    master = r.child("master")
    if master is not None:
        master.req_attr("startport")
        startport = master.int_attr("startport", minimum=0)
        master.done()
    ctrl = Controller(
        type=r.req_attr("type"), index=index or 0, model=r.attr("model"), ports=r.int_attr("ports", minimum=0),
        model_name=model_name, target_chassis=chassis, target_port=port, master_startport=startport,
        address=_info(r),
    )
    r.done()
    return ctrl, index is None


def _number_controllers(parsed: list[tuple[Controller, bool]]) -> tuple[Controller, ...]:
    """Give controllers without index= the lowest free index of their type, as libvirt does; a USB
    companion (<master>) without one shares the index of the USB controller before it (its master)."""
    used: dict[str, set[int]] = {}
    for ctrl, missing in parsed:
        if not missing:
            used.setdefault(ctrl.type, set()).add(ctrl.index)
    out = []
    master_index = 0
    for ctrl, missing in parsed:
        if missing and ctrl.master_startport is not None:
            ctrl = replace(ctrl, index=master_index)
        elif missing:
            taken = used.setdefault(ctrl.type, set())
            index = next(i for i in range(len(taken) + 1) if i not in taken)
            taken.add(index)
            ctrl = replace(ctrl, index=index)
        if ctrl.type == "usb" and ctrl.master_startport is None:
            master_index = ctrl.index
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
    compression = gl_node = None
    tls_port = gl = None
    if kind == "spice":
        tls_port = r.int_attr("tlsPort")
        img = r.child("image")
        if img is not None:
            compression = img.req_attr("compression")
            img.done()
        gl_r = r.child("gl")
        if gl_r is not None:
            gl_r.req_attr("enable")
            gl, gl_node = gl_r.bool_attr("enable"), gl_r.attr("rendernode")
            gl_r.done()
    g = Graphics(
        type=kind, port=r.int_attr("port"), autoport=r.bool_attr("autoport"), listen_type=listen_type,
        listen_address=listen_address, socket=socket, passwd=r.attr("passwd"), image_compression=compression,
        tls_port=tls_port, gl=gl, gl_rendernode=gl_node,
    )
    r.done()
    return g


def _video(r: Reader) -> Video:
    m = r.child("model")
    if m is None:
        raise r.error("<model> is missing", "add e.g. <model type='virtio'/>")
    accel3d = None
    if (acc := m.child("acceleration")) is not None:
        accel3d = acc.bool_attr("accel3d")
        acc.done()
    v = Video(
        model=m.req_attr("type"), heads=m.int_attr("heads", minimum=1), primary=m.bool_attr("primary"),
        vram=m.int_attr("vram", minimum=0), ram=m.int_attr("ram", minimum=0), vgamem=m.int_attr("vgamem", minimum=0),
        accel3d=accel3d, address=_info(r),
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


def _tpm(r: Reader) -> TPM:
    b = r.child("backend")
    if b is None:
        raise r.error("<backend> is missing", "add <backend type='emulator' version='2.0'/>")
    kind = b.req_attr("type")
    if kind == "passthrough":
        raise b.error("TPM passthrough (the host's own TPM) is not supported",
                      "use <backend type='emulator' version='2.0'/>: swtpm emulates a TPM per VM", UnsupportedConfig)
    r.ignore_children("alias")  # live-only; a TPM has no <address> on x86 (QEMU places its registers)
    tpm = TPM(model=r.attr("model") or "tpm-tis", backend_type=kind, backend_version=b.attr("version"))
    b.done()  # <encryption>, <active_pcr_banks>, persistent_state=...: refused by name
    r.done()
    return tpm


def _kib(r: Reader | None) -> int | None:
    """A size element (<size unit='MiB'>512</size>; KiB without unit) as KiB."""
    if r is None:
        return None
    try:
        kib = parse_xml_size_kib(r.text(), r.attr("unit"))
    except InvalidArgument as exc:
        raise _err(r, exc) from None
    r.done()
    return kib


def parse_memory_device(r: Reader) -> MemoryDevice:
    """<memory model=...> of <devices> (also alone, as attach-device sends it)."""
    model = r.req_attr("model")
    access = r.attr("access")
    path = None
    if (s := r.child("source")) is not None:
        path = stripped(s.child_text("path"))
        s.done({"pagesize": Hint("huge pages for memory devices are not supported; remove <pagesize>"),
                "nodemask": Hint("host NUMA placement is not supported; remove <nodemask>")})
    t = r.child("target")
    if t is None:
        raise r.error("<target> is missing", "add <target><size unit='MiB'>512</size><node>0</node></target>")
    size = _kib(t.child("size"))
    if size is None:
        raise t.error("<size> is missing", "add <size unit='MiB'>512</size>")
    node = None
    if (n := t.child("node")) is not None:
        node = n.int_text(minimum=0)
        n.done()
    label = None
    if (lb := t.child("label")) is not None:
        label = _kib(lb.child("size"))
        lb.done()
    dev = MemoryDevice(model=model, size_kib=size, node=node, block_kib=_kib(t.child("block")),
                       requested_kib=_kib(t.child("requested")), source_path=path, label_kib=label, access=access,
                       address=_info(r))
    t.ignore_children("current")  # virtio-mem: what the guest has plugged, live-only
    t.done()
    r.done()
    return dev


def _iommu(r: Reader) -> IOMMU:
    iommu = IOMMU(model=r.req_attr("model"))
    if (d := r.child("driver")) is not None:
        iommu = replace(iommu, intremap=d.bool_attr("intremap", "on", "off"),
                        caching_mode=d.bool_attr("caching_mode", "on", "off"), eim=d.bool_attr("eim", "on", "off"),
                        iotlb=d.bool_attr("iotlb", "on", "off"), aw_bits=d.int_attr("aw_bits", minimum=1))
        d.done()
    r.ignore_children("alias")
    r.done()
    return iommu


def _vsock(r: Reader) -> Vsock:
    auto = cid = None
    if (c := r.child("cid")) is not None:
        auto, cid = c.bool_attr("auto"), c.int_attr("address", minimum=3)
        c.done()
    v = Vsock(model=r.attr("model"), cid_auto=auto, cid=cid, address=_info(r))
    r.done()
    return v


def _filesystem(r: Reader) -> Filesystem:
    kind = r.attr("type") or "mount"
    if kind != "mount":
        raise r.error(f"<filesystem type='{kind}'> is not supported", "share a host directory with type='mount'",
                      UnsupportedConfig)
    s, t = r.child("source"), r.child("target")
    if s is None or t is None:
        raise r.error("<source dir=...> and <target dir=...> are needed",
                      "write <source dir='/srv/share'/><target dir='share'/>")
    driver = None
    if (d := r.child("driver")) is not None:
        driver = d.attr("type")
        d.done({"binary": Hint("virtiofsd options are not supported; remove <binary>")})
    fs = Filesystem(source_dir=s.req_attr("dir"), target_dir=t.req_attr("dir"), type=kind, driver_type=driver,
                    accessmode=r.attr("accessmode"), readonly=r.flag("readonly"), address=_info(r))
    s.done()
    t.done()
    r.ignore_children("alias")
    r.done({"binary": Hint("virtiofsd options are not supported; remove <binary>")})
    return fs
