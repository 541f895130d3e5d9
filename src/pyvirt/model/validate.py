"""Checks on a Domain that hold whatever the host: names, sizes, value lists, duplicates.

``parse_domain_xml`` calls ``validate_domain``; code that builds a Domain by
hand (the CLI's create options) calls it too. Pure: paths are checked for
form only (absolute), never for existence — the daemon does that at start.
Each message names the domain, the XML path, what is wrong and what to do.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from ..errors import InvalidArgument, UnsupportedConfig
from . import validate_hw as hw
from .check import Check as _Check
from .domain import Address, CharDev, Devices, Disk, Domain, Interface
from .ids import parse_mac, parse_uuid
from .names import check_name, name_problem
from .storage_xml import volume_name_problem
from .tokens import control_char, ifname_problem, ip_problem

DOMAIN_TYPES = ("kvm", "qemu")
ARCHES = ("x86_64",)  # qemu-system-x86_64 only; i686 guests run as x86_64
BOOT_DEVS = ("hd", "cdrom", "network", "fd")
FIRMWARES = ("efi", "bios")
LOADER_TYPES = ("pflash", "rom")
ON_POWEROFF = ("destroy", "restart", "preserve")
ON_REBOOT = ("restart", "destroy", "preserve")
ON_CRASH = ("destroy", "restart", "preserve", "coredump-destroy", "coredump-restart")
CPU_MODES = ("host-passthrough", "host-model", "custom", "maximum")
CPU_MATCH = ("minimum", "exact", "strict")
CPU_CHECK = ("none", "partial", "full")
CPU_FALLBACK = ("allow", "forbid")
CPU_POLICIES = ("force", "require", "optional", "disable", "forbid")
CLOCK_OFFSETS = ("utc", "localtime")
TIMER_NAMES = ("platform", "pit", "rtc", "hpet", "tsc", "kvmclock", "hypervclock")
TICK_POLICIES = ("delay", "catchup", "merge", "discard")
DISK_DEVICES = ("disk", "cdrom")
DISK_TYPES = ("file", "block", "volume")
DISK_BUSES = ("virtio", "sata", "scsi", "ide", "nvme")
DISK_FORMATS = ("raw", "qcow2")
DISK_CACHE = ("default", "none", "writethrough", "writeback", "directsync", "unsafe")
DISK_DISCARD = ("unmap", "ignore")
DISK_IO = ("native", "threads", "io_uring", "default")
CONTROLLER_TYPES = ("pci", "usb", "ide", "sata", "scsi", "virtio-serial", "nvme")
USB_MODELS = ("qemu-xhci", "nec-xhci", "piix3-uhci", "piix4-uhci", "ich9-ehci1", "ich9-uhci1", "ich9-uhci2",
              "ich9-uhci3", "ehci", "none")
PCI_MODELS = ("pci-root", "pcie-root", "pcie-root-port", "pci-bridge", "dmi-to-pci-bridge", "pcie-to-pci-bridge",
              "pcie-switch-upstream-port", "pcie-switch-downstream-port")
INTERFACE_TYPES = ("user", "network", "bridge", "direct", "ethernet")
INTERFACE_MODELS = ("virtio", "e1000", "e1000e", "rtl8139")
DIRECT_MODES = ("vepa", "bridge", "private", "passthrough")
CHARDEV_TYPES = ("pty", "file", "unix", "spicevmc", "null")
SERIAL_TARGETS = ("isa-serial", "pci-serial")
CONSOLE_TARGETS = ("serial", "virtio")
INPUT_TYPES = ("tablet", "mouse", "keyboard")
INPUT_BUSES = ("usb", "ps2", "virtio")
GRAPHICS_TYPES = ("vnc", "spice")
LISTEN_TYPES = ("address", "socket", "none")
SPICE_COMPRESSION = ("auto_glz", "auto_lz", "quic", "glz", "lz", "off")
VIDEO_MODELS = ("virtio", "qxl", "vga", "cirrus", "bochs", "ramfb", "none")
SOUND_MODELS = ("ich9", "ich6", "ac97", "es1370", "sb16")
AUDIO_TYPES = ("none", "spice")
BALLOON_MODELS = ("virtio", "none")
RNG_MODELS = ("virtio",)
RNG_BACKENDS = ("random", "builtin")
RNG_DEVICES = ("/dev/urandom", "/dev/random", "/dev/hwrng")
WATCHDOG_MODELS = ("i6300esb", "ib700", "itco")
WATCHDOG_ACTIONS = ("reset", "shutdown", "poweroff", "pause", "none", "dump", "inject-nmi")
PANIC_MODELS = ("isa", "pvpanic", "hyperv")
SECLABEL_TYPES = ("none", "dynamic", "static")
ADDRESS_ATTRS = {
    "pci": ("domain", "bus", "slot", "function", "multifunction"),
    "drive": ("controller", "bus", "target", "unit"),
    "usb": ("bus", "port"),
    "virtio-serial": ("controller", "bus", "port"),
    "ccid": ("controller", "slot"),
    "isa": ("iobase", "irq"),
    "dimm": ("slot", "base"),
}
_MACHINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TARGET_DEV = re.compile(r"^[a-z]+$")
_ADDRESS_NUMBER = re.compile(r"^(0x[0-9a-fA-F]+|[0-9]+)$")
_USB_PORT = re.compile(r"^[0-9]+(\.[0-9]+)*$")  # a port behind hubs: 1.2


def _plain_file_name(name: str) -> bool:
    """One path component that stays where it is put: no separators, no '.'/'..', no control characters."""
    return (name not in (".", "..") and len(name) <= 100
            and all(ch.isalnum() or ch in "._-" for ch in name) and name.isascii())


def validate_domain(d: Domain) -> None:
    """Raise InvalidArgument/UnsupportedConfig for the first problem in ``d``."""
    check_name(d.name, "domain")
    c = _Check(d)
    if d.type not in DOMAIN_TYPES:
        c.fail("<domain>", f"domain type '{d.type}' is not supported",
               "pyvirt runs QEMU guests: use type='kvm' (or 'qemu' for emulation)", UnsupportedConfig)
    if d.uuid:
        try:
            if parse_uuid(d.uuid) != d.uuid:
                c.fail("<uuid>", f"uuid '{d.uuid}' is not in normal form", f"write {parse_uuid(d.uuid)}")
        except InvalidArgument as exc:
            c.fail("<uuid>", exc.message.rstrip("."), "fix it")
    if d.title is not None and "\n" in d.title:
        c.fail("<title>", "the title has a line break", "keep it on one line; use <description> for more")
    _memory(c, d)
    _vcpus(c, d)
    hw.numa(c, d)
    hw.memory_devices(c, d)
    _os(c, d)
    _cpu(c, d)
    hw.features(c, d)
    _clock(c, d)
    c.one_of("<on_poweroff>", "action", d.on_poweroff, ON_POWEROFF, optional=False)
    c.one_of("<on_reboot>", "action", d.on_reboot, ON_REBOOT, optional=False)
    c.one_of("<on_crash>", "action", d.on_crash, ON_CRASH, optional=False)
    _devices(c, d)
    hw.partition(c, d)
    for s in d.seclabels:
        c.one_of("<seclabel>", "type", s.type, SECLABEL_TYPES)


def _memory(c: _Check, d: Domain) -> None:
    if d.memory_kib <= 0:
        c.fail("<memory>", "memory is 0", "give the guest memory, e.g. <memory unit='MiB'>512</memory>")
    cur = d.current_memory_kib
    if cur is not None:
        if cur <= 0:
            c.fail("<currentMemory>", "current memory is 0", "give a size above 0 or remove <currentMemory>")
        if cur > d.memory_kib:
            c.fail("<currentMemory>", f"current memory {cur} KiB is more than <memory> {d.memory_kib} KiB",
                   "make <currentMemory> at most <memory>")
    if (d.max_memory_kib is None) != (d.max_memory_slots is None):
        c.fail("<maxMemory>", "maximum memory needs both a size and slots='N'",
               "write <maxMemory slots='4' unit='GiB'>8</maxMemory>")
    if d.max_memory_kib is not None and d.max_memory_kib < d.memory_kib:
        c.fail("<maxMemory>", f"maximum memory {d.max_memory_kib} KiB is less than <memory> {d.memory_kib} KiB",
               "raise <maxMemory> or lower <memory>")


def _vcpus(c: _Check, d: Domain) -> None:
    if d.vcpus < 1:
        c.fail("<vcpu>", f"{d.vcpus} vCPUs", "give at least 1")
    if d.vcpu_current is not None and not 1 <= d.vcpu_current <= d.vcpus:
        c.fail("<vcpu>", f"current vCPUs {d.vcpu_current} is not between 1 and {d.vcpus}",
               "lower current= or raise <vcpu>")
    if d.vcpu_placement == "auto":
        c.fail("<vcpu>", "placement 'auto' needs numad, which pyvirt does not use", "use 'static'",
               UnsupportedConfig)
    c.one_of("<vcpu>", "placement", d.vcpu_placement, ("static",))
    seen: set[int] = set()
    for pin in d.cputune.vcpupins if d.cputune else ():
        if pin.vcpu >= d.vcpus:
            c.fail("<cputune>/<vcpupin>", f"vCPU {pin.vcpu} does not exist (the domain has at most {d.vcpus})",
                   f"use vcpu='0' to vcpu='{d.vcpus - 1}', or raise <vcpu>")
        if pin.vcpu in seen:
            c.fail("<cputune>/<vcpupin>", f"vCPU {pin.vcpu} is pinned twice", "keep one <vcpupin> per vCPU")
        seen.add(pin.vcpu)


def _os(c: _Check, d: Domain) -> None:
    o = d.os
    if o.type != "hvm":
        c.fail("<os>/<type>", f"OS type '{o.type}' is not supported", "use <type>hvm</type>", UnsupportedConfig)
    c.one_of("<os>/<type>", "arch", o.arch, ARCHES, optional=False)
    if o.machine is not None and not _MACHINE.match(o.machine):
        c.fail("<os>/<type>", f"machine '{o.machine}' is not a machine type name",
               "use e.g. q35, pc, microvm or pc-q35-7.2, or leave machine= out")
    c.one_of("<os>", "firmware", o.firmware, FIRMWARES)
    for dev, n in Counter(o.boot).items():
        c.one_of("<os>/<boot>", "boot device", dev, BOOT_DEVS)
        if n > 1:
            c.fail("<os>/<boot>", f"boot device '{dev}' is listed {n} times", "list each device once")
    c.absolute("<os>/<kernel>", "kernel", o.kernel)
    c.absolute("<os>/<initrd>", "initrd", o.initrd)
    if o.kernel is None and (o.initrd is not None or o.cmdline is not None):
        c.fail("<os>", "<initrd> or <cmdline> is given without <kernel>", "add <kernel>PATH</kernel> or remove them")
    if o.loader is not None:
        if not o.loader.path:
            c.fail("<os>/<loader>", "the loader path is empty",
                   "give the firmware file, e.g. /usr/share/OVMF/OVMF_CODE.fd")
        c.absolute("<os>/<loader>", "loader", o.loader.path)
        c.one_of("<os>/<loader>", "type", o.loader.type, LOADER_TYPES)
        c.absolute("<os>/<nvram>", "nvram", o.loader.nvram)
        c.absolute("<os>/<nvram>", "nvram template", o.loader.nvram_template)
    boot_devices: tuple[Disk | Interface, ...] = (*d.devices.disks, *d.devices.interfaces)
    boot_orders = [x.boot_order for x in boot_devices if x.boot_order is not None]
    if boot_orders and o.boot:
        c.fail("<os>/<boot>", "per-device <boot order=.../> cannot be combined with <os><boot dev=.../>",
               "use one of the two")
    for order, n in Counter(boot_orders).items():
        if n > 1:
            c.fail("<devices>", f"boot order {order} is given to {n} devices", "give each device its own order")


def _cpu(c: _Check, d: Domain) -> None:
    cpu = d.cpu
    if cpu is None:
        return
    c.one_of("<cpu>", "mode", cpu.mode, CPU_MODES)
    c.one_of("<cpu>", "match", cpu.match, CPU_MATCH)
    c.one_of("<cpu>", "check", cpu.check, CPU_CHECK)
    c.one_of("<cpu>/<model>", "fallback", cpu.model_fallback, CPU_FALLBACK)
    if cpu.mode == "custom" and not cpu.model:
        c.fail("<cpu>", "mode 'custom' has no <model>", "add e.g. <model>Skylake-Client</model>")
    c.qemu_name("<cpu>/<model>", "CPU model", cpu.model, "Skylake-Client or qemu64")
    for f in cpu.features:
        if not f.name:
            c.fail("<cpu>/<feature>", "a feature has an empty name", "give name='...'")
        c.qemu_name("<cpu>/<feature>", "feature name", f.name, "name='avx2' or name='sse4.2'")
        c.one_of(f"<cpu>/<feature name='{f.name}'>", "policy", f.policy, CPU_POLICIES, optional=False)
    names = Counter(f.name for f in cpu.features)
    for name, n in names.items():
        if n > 1:
            c.fail("<cpu>/<feature>", f"feature '{name}' is listed {n} times", "list it once")
    c.one_of("<cpu>/<cache>", "mode", cpu.cache_mode, ("passthrough", "emulate", "disable"))
    if cpu.cache_mode == "passthrough" and cpu.cache_level is not None:
        c.fail("<cpu>/<cache>", "mode 'passthrough' takes no level", "remove level=")
    if cpu.cache_mode in ("emulate", "disable") and cpu.cache_level not in (None, 3):
        c.fail("<cpu>/<cache>", f"level {cpu.cache_level}", "QEMU emulates the level 3 cache only: write level='3'")
    if cpu.cache_mode == "passthrough" and cpu.mode != "host-passthrough":
        c.fail("<cpu>/<cache>", "mode 'passthrough' needs <cpu mode='host-passthrough'>", "use mode='emulate'")
    t = cpu.topology
    if t is not None:
        total = t.sockets * t.dies * t.cores * t.threads
        if total != d.vcpus:
            c.fail("<cpu>/<topology>",
                   f"sockets*dies*cores*threads = {total} but <vcpu> is {d.vcpus}", "make them equal")


def _clock(c: _Check, d: Domain) -> None:
    if d.clock is None:
        return
    c.one_of("<clock>", "offset", d.clock.offset, CLOCK_OFFSETS, optional=False)
    for t in d.clock.timers:
        c.one_of("<clock>/<timer>", "timer", t.name, TIMER_NAMES, optional=False)
        c.one_of(f"<clock>/<timer name='{t.name}'>", "tickpolicy", t.tickpolicy, TICK_POLICIES)
    for name, n in Counter(t.name for t in d.clock.timers).items():
        if n > 1:
            c.fail("<clock>/<timer>", f"timer '{name}' is listed {n} times", "list it once")


def _addresses(c: _Check, dv: Devices) -> None:
    groups: list[tuple[str, Iterable[object]]] = [
        ("disk", dv.disks), ("controller", dv.controllers), ("interface", dv.interfaces),
        ("serial", dv.serials), ("console", dv.consoles), ("channel", dv.channels), ("input", dv.inputs),
        ("sound", dv.sounds), ("video", dv.videos), ("redirdev", dv.redirdevs),
        ("memballoon", (dv.memballoon,) if dv.memballoon else ()), ("rng", dv.rngs),
        ("watchdog", dv.watchdogs), ("panic", dv.panics), ("memory", dv.memories),
        ("vsock", (dv.vsock,) if dv.vsock else ()), ("filesystem", dv.filesystems),
    ]
    for tag, devs in groups:
        for dev in devs:
            addr: Address | None = getattr(dev, "address", None)
            if addr is None:
                continue
            path = f"<devices>/<{tag}>/<address>"
            c.one_of(path, "address type", addr.type, ADDRESS_ATTRS, optional=False)
            for key, _ in addr.attrs:
                if key not in ADDRESS_ATTRS[addr.type]:
                    c.fail(path, f"attribute '{key}' does not belong to a {addr.type} address",
                           f"use {', '.join(ADDRESS_ATTRS[addr.type])}", UnsupportedConfig)
            for key, value in addr.attrs:
                number = _USB_PORT if (addr.type, key) == ("usb", "port") else _ADDRESS_NUMBER
                if key != "multifunction" and not number.match(value):
                    c.fail(path, f"{key}={value!r} is not a number", f"write e.g. {key}='0x1' or {key}='1'")
            if addr.type == "pci" and addr.get("multifunction") not in (None, "on", "off"):
                c.fail(path, f"multifunction='{addr.get('multifunction')}'", "write 'on' or 'off'")


def _devices(c: _Check, d: Domain) -> None:
    dv = d.devices
    _addresses(c, dv)
    c.absolute("<devices>/<emulator>", "emulator", dv.emulator)
    for disk in dv.disks:
        _disk(c, disk)
    for dev, n in Counter(x.target_dev for x in dv.disks).items():
        if n > 1:
            c.fail(f"<devices>/<disk>/<target dev='{dev}'>", f"{n} disks have target dev '{dev}'",
                   "give each disk its own target dev (vda, vdb, ...)")
    for ctrl in dv.controllers:
        path = f"<devices>/<controller type='{ctrl.type}' index='{ctrl.index}'>"
        c.one_of(path, "controller type", ctrl.type, CONTROLLER_TYPES, optional=False)
        if ctrl.type == "pci":
            c.one_of(path, "model", ctrl.model, PCI_MODELS)
        elif ctrl.type == "usb":
            c.one_of(path, "model", ctrl.model, USB_MODELS)
        c.qemu_name(path + "/<model>", "model name", ctrl.model_name, "name='pcie-root-port'")
        if ctrl.target_port is not None and not _port_number(ctrl.target_port):
            c.fail(path + "/<target>", f"port {ctrl.target_port!r} is not a number from 0 to 255",
                   "write e.g. port='0x10'")
    for (kind, index), n in Counter((x.type, x.index) for x in dv.controllers if x.master_startport is None).items():
        if n > 1:
            c.fail(f"<devices>/<controller type='{kind}'>", f"{n} controllers have index {index}",
                   "give each controller of a type its own index")
    hw.usb_companions(c, dv)
    for iface in dv.interfaces:
        _interface(c, iface)
    macs = Counter(i.mac for i in dv.interfaces if i.mac is not None)
    for mac, n in macs.items():
        if n > 1:
            c.fail(f"<devices>/<interface>/<mac address='{mac}'>", f"{n} interfaces have MAC {mac}",
                   "give each interface its own MAC, or leave <mac> out to get one")
    for chardev in (*dv.serials, *dv.consoles, *dv.channels):
        _chardev(c, chardev)
    for inp in dv.inputs:
        path = f"<devices>/<input type='{inp.type}'>"
        c.one_of(path, "input type", inp.type, INPUT_TYPES, optional=False)
        c.one_of(path, "bus", inp.bus, INPUT_BUSES, optional=False)
        if inp.type == "tablet" and inp.bus == "ps2":
            c.fail(path, "a tablet cannot sit on the ps2 bus", "use bus='usb' or bus='virtio'")
    for g in dv.graphics:
        path = f"<devices>/<graphics type='{g.type}'>"
        c.one_of(path, "graphics type", g.type, GRAPHICS_TYPES, optional=False)
        c.one_of(path + "/<listen>", "listen type", g.listen_type, LISTEN_TYPES)
        c.one_of(path + "/<image>", "compression", g.image_compression, SPICE_COMPRESSION)
        for attr, port in (("port", g.port), ("tlsPort", g.tls_port)):
            if port is not None and not (port == -1 or 0 <= port <= 65535):
                c.fail(path, f"{attr} {port} is not a TCP port", f"use 5900-65535, or {attr}='-1' with autoport='yes'")
        if g.tls_port is not None and g.tls_port > 0 and g.tls_port == g.port:
            c.fail(path, f"port and tlsPort are both {g.port}", "give the TLS port a port of its own")
        c.absolute(path + "/<gl>", "render node", g.gl_rendernode)
        c.absolute(path, "socket", g.socket)
        if g.listen_address is not None and (problem := ip_problem(g.listen_address)) is not None:
            c.fail(path + "/<listen>", f"listen address {g.listen_address!r} is refused: {problem}",
                   "give an IP address such as 127.0.0.1 or ::1, or <listen type='socket'/> for a unix socket")
    for v in dv.videos:
        c.one_of("<devices>/<video>/<model>", "video model", v.model, VIDEO_MODELS, optional=False)
    if sum(1 for v in dv.videos if v.primary) > 1:
        c.fail("<devices>/<video>", "more than one video device has primary='yes'", "mark one primary")
    for s in dv.sounds:
        c.one_of("<devices>/<sound>", "sound model", s.model, SOUND_MODELS, optional=False)
    for a in dv.audios:
        c.one_of(f"<devices>/<audio id='{a.id}'>", "audio type", a.type, AUDIO_TYPES, optional=False)
    for aid, n in Counter(a.id for a in dv.audios).items():
        if n > 1:
            c.fail("<devices>/<audio>", f"{n} audio backends have id {aid}", "give each its own id")
    for r in dv.redirdevs:
        c.one_of("<devices>/<redirdev>", "bus", r.bus, ("usb",), optional=False)
        c.one_of("<devices>/<redirdev>", "type", r.type, ("spicevmc",), optional=False)
    if (b := dv.memballoon) is not None:
        c.one_of("<devices>/<memballoon>", "model", b.model, BALLOON_MODELS, optional=False)
        if b.model == "none" and (b.autodeflate is not None or b.stats_period is not None or b.address is not None):
            c.fail("<devices>/<memballoon model='none'>", "settings are given for no balloon",
                   "remove autodeflate, <stats> and <address>, or use model='virtio'")
    for rng in dv.rngs:
        c.one_of("<devices>/<rng>", "model", rng.model, RNG_MODELS, optional=False)
        c.one_of("<devices>/<rng>/<backend>", "backend model", rng.backend_model, RNG_BACKENDS, optional=False)
        if rng.backend_model == "random":
            c.one_of("<devices>/<rng>/<backend>", "random source", rng.backend, RNG_DEVICES, optional=False)
    for w in dv.watchdogs:
        c.one_of("<devices>/<watchdog>", "model", w.model, WATCHDOG_MODELS, optional=False)
        c.one_of(f"<devices>/<watchdog model='{w.model}'>", "action", w.action, WATCHDOG_ACTIONS)
    for p in dv.panics:
        c.one_of("<devices>/<panic>", "model", p.model, PANIC_MODELS)
    hw.tpms(c, dv)
    hw.filesystems(c, dv)
    if dv.iommu is not None:
        c.one_of("<devices>/<iommu>", "model", dv.iommu.model, ("intel",), optional=False)
        if dv.iommu.aw_bits not in (None, 39, 48):
            c.fail("<devices>/<iommu>/<driver>", f"aw_bits={dv.iommu.aw_bits}", "use 39 or 48")
    if dv.vsock is not None:
        c.one_of("<devices>/<vsock>", "model", dv.vsock.model, ("virtio",))
        if dv.vsock.cid_auto is False and dv.vsock.cid is None:
            c.fail("<devices>/<vsock>/<cid>", "auto='no' without an address",
                   "give address='3' (or more), or auto='yes'")


def _port_number(text: str) -> bool:
    try:
        return 0 <= int(text, 0) <= 255
    except ValueError:
        return False


def _disk(c: _Check, disk: Disk) -> None:
    path = f"<devices>/<disk> '{disk.target_dev}'"
    if not _TARGET_DEV.match(disk.target_dev):
        c.fail(path, f"target dev '{disk.target_dev}' is not a disk name", "use names like vda, sda or hdc")
    if disk.device == "floppy":
        c.fail(path, "floppy disks are not supported", "use a cdrom or a disk", UnsupportedConfig)
    c.one_of(path, "device", disk.device, DISK_DEVICES, optional=False)
    c.one_of(path + "/<target>", "bus", disk.bus, DISK_BUSES, optional=False)
    c.one_of(path, "type", disk.source_type, DISK_TYPES, optional=False)
    c.one_of(path + "/<driver>", "driver name", disk.driver_name, ("qemu",))
    if disk.format is not None and disk.format not in DISK_FORMATS:
        c.fail(path + "/<driver>", f"image format '{disk.format}' is not supported",
               "use raw or qcow2 (convert with `qemu-img convert -O qcow2`)", UnsupportedConfig)
    c.one_of(path + "/<driver>", "cache", disk.cache, DISK_CACHE)
    c.one_of(path + "/<driver>", "discard", disk.discard, DISK_DISCARD)
    c.one_of(path + "/<driver>", "io", disk.io, DISK_IO)
    if disk.io == "native" and disk.cache not in ("none", "directsync"):
        c.fail(path + "/<driver>", "io='native' needs cache='none' or cache='directsync'",
               "set one of those caches or use io='threads'")
    _disk_source(c, path, disk)
    if disk.serial is not None and (bad := control_char(disk.serial)) is not None:
        c.fail(path + "/<serial>", f"serial {disk.serial!r} contains the control character {bad!r}",
               "use letters, digits and punctuation, e.g. WEB1-ROOT")
    if disk.device == "cdrom" and disk.bus == "virtio":
        c.fail(path, "a cdrom cannot be on the virtio bus", "use bus='sata' (q35), 'ide' (pc) or 'scsi'")
    c.absolute(path + "/<source>", "image", disk.source)


def _disk_source(c: _Check, path: str, disk: Disk) -> None:
    if disk.source_type == "volume":
        if (disk.source_pool is None) != (disk.source_volume is None):
            c.fail(path + "/<source>", "a volume source needs both 'pool' and 'volume'",
                   "write <source pool='default' volume='NAME'/>")
        if disk.source_pool is None and disk.device == "disk":
            c.fail(path, "the disk has no <source pool=... volume=...>",
                   "name the storage pool and volume; only a cdrom may be empty")
        if disk.source_pool is not None:
            problem = name_problem(disk.source_pool)
            if problem is not None:
                c.fail(path + "/<source>", f"pool name '{disk.source_pool}' is invalid: {problem}",
                       "see `pyvirt pool-list --all`")
            problem = volume_name_problem(disk.source_volume or "")
            if problem is not None:
                c.fail(path + "/<source>", f"volume name '{disk.source_volume}' is invalid: {problem}",
                       "see `pyvirt vol-list POOL`")
        c.one_of(path, "resolved volume type", disk.volume_type, ("file", "block"))
    else:
        if disk.source_pool is not None or disk.source_volume is not None:
            c.fail(path + "/<source>", f"pool/volume belong to <disk type='volume'>, not type '{disk.source_type}'",
                   "write <disk type='volume'>, or give the path")
        if disk.volume_type is not None:
            c.fail(path, "only a volume disk has a resolved volume type", "leave volume_type unset")
        attr = "dev" if disk.source_type == "block" else "file"
        if disk.device == "disk" and disk.source is None:
            c.fail(path, f"the disk has no <source {attr}=...>",
                   "give the " + ("block device" if attr == "dev" else "image") + " path; only a cdrom may be empty")
    if disk.source_index is not None and disk.source_index < 1:
        c.fail(path + "/<source>", f"index {disk.source_index} is below 1", "remove index (it is live-only)")


def _interface(c: _Check, iface: Interface) -> None:
    path = f"<devices>/<interface type='{iface.type}'>"
    c.one_of(path, "interface type", iface.type, INTERFACE_TYPES, optional=False)
    if iface.mac is not None:
        try:
            mac = parse_mac(iface.mac)
        except InvalidArgument as exc:
            c.fail(path + "/<mac>", exc.message, "fix the address")
        else:
            if mac != iface.mac:
                c.fail(path + "/<mac>", f"MAC '{iface.mac}' is not in lower case", f"write {mac}")
    c.one_of(path + "/<model>", "model", iface.model, INTERFACE_MODELS)
    c.one_of(path + "/<link>", "state", iface.link_state, ("up", "down"))
    c.one_of(path + "/<driver>", "driver name", iface.driver_name, ("qemu", "vhost"))
    source = dict(iface.source)
    need = {"network": "network", "bridge": "bridge", "direct": "dev"}.get(iface.type)
    if need is not None and not source.get(need):
        c.fail(path + "/<source>", f"a {iface.type} interface needs <source {need}='...'/>", f"add the {need} name")
    if iface.type == "direct":
        c.one_of(path + "/<source>", "mode", source.get("mode"), DIRECT_MODES)
    _interface_names(c, path, iface, source)
    c.qemu_name(path + "/<alias>", "alias", iface.alias, "name='net0' (QEMU's device id)")


def _interface_names(c: _Check, path: str, iface: Interface, source: dict[str, str]) -> None:
    """Host link names and the network name become netlink requests and lookups: the kernel's and pyvirt's rules."""
    links = [("<target>", "target dev", iface.target_dev)]
    links += [("<source>", f"source {key}", source.get(key)) for key in ("bridge", "dev") if key in source]
    for where, what, value in links:
        if value is not None and (problem := ifname_problem(value)) is not None:
            c.fail(path + "/" + where, f"{what} {value!r} is not a valid interface name: {problem}",
                   "use at most 15 characters without '/', ':' or spaces, e.g. vnet0 or br0")
    network = source.get("network")
    if network is not None and (problem := name_problem(network)) is not None:
        c.fail(path + "/<source>", f"network name {network!r} is invalid: {problem}", "see `pyvirt net-list --all`")


def _chardev(c: _Check, dev: CharDev) -> None:
    path = f"<devices>/<{dev.kind} type='{dev.type}'>"
    c.one_of(path, "character device type", dev.type, CHARDEV_TYPES, optional=False)
    if dev.type == "file" and not dev.source_path:
        c.fail(path, "a file device needs <source path='...'/>", "add the log file path")
    if dev.type in ("pty", "null", "spicevmc") and dev.source_path is not None:
        c.fail(path + "/<source>", f"a {dev.type} device takes no path", "remove <source path=...>")
    c.absolute(path + "/<source>", "path", dev.source_path)
    c.absolute(path + "/<log>", "log file", dev.log_file)
    if dev.type == "unix":
        c.one_of(path + "/<source>", "mode", dev.source_mode, ("bind", "connect"))
    elif dev.source_mode is not None:
        c.fail(path + "/<source>", f"mode= applies to unix sockets, not '{dev.type}'", "remove mode=")
    if dev.kind == "serial":
        c.one_of(path + "/<target>", "target type", dev.target_type, SERIAL_TARGETS)
        c.one_of(path + "/<target>/<model>", "model", dev.target_model, SERIAL_TARGETS)
    elif dev.kind == "console":
        c.one_of(path + "/<target>", "target type", dev.target_type, CONSOLE_TARGETS)
    elif dev.kind == "channel":
        c.one_of(path + "/<target>", "target type", dev.target_type, ("virtio",), optional=False)
        if not dev.target_name:
            c.fail(path + "/<target>", "a virtio channel needs a name",
                   "add name='org.qemu.guest_agent.0' (or com.redhat.spice.0 for spicevmc)")
        elif not _plain_file_name(dev.target_name):
            # the name becomes a socket file name in the guest's own directory: it must stay there
            c.fail(path + "/<target>", f"channel name {dev.target_name!r} is not a plain file name",
                   "use letters, digits, '.', '_' and '-' only (no '/', no '..'), e.g. org.qemu.guest_agent.0")
