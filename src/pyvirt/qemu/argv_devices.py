"""Everything else on the device list: NICs, video, input, sound, USB
redirection, balloon, RNG, watchdog and panic devices.

Device ids follow libvirt's aliases (net0, video0, input0, sound0, redir0,
balloon0, rng0, watchdog0) so QMP commands and events name the same things a
libvirt user knows.
"""
from __future__ import annotations

import hashlib

from ..errors import InvalidArgument, UnsupportedConfig
from ..model.domain import Interface
from .argv_chardev import need_spice
from .argv_common import Build, boot_props, pci_placement
from .argv_controllers import usb_placements
from .argv_render import Json, KeyVal, Option, Value, kv

NIC_MODELS = {"virtio": None, "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "rtl8139"}
SOUND_MODELS = {"ich9": "ich9-intel-hda", "ich6": "intel-hda", "ac97": "AC97", "es1370": "ES1370", "sb16": "sb16"}
WATCHDOG_MODELS = {"i6300esb": "i6300esb", "ib700": "ib700", "itco": None}


def default_mac(uuid: str, index: int) -> str:
    """A stable locally administered MAC (QEMU's 52:54:00 prefix) for a NIC without one."""
    digest = hashlib.sha256(f"{uuid}/{index}".encode()).digest()
    return "52:54:00:" + ":".join(f"{x:02x}" for x in digest[:3])


def interface_options(b: Build) -> list[Option]:
    out: list[Option] = []
    for i, nic in enumerate(b.domain.devices.interfaces):
        out += _interface(b, i, nic)
    return out


TAP_TYPES = ("network", "bridge", "direct", "ethernet")


def _interface(b: Build, i: int, nic: Interface) -> list[Option]:
    who = f"interface {i} ({nic.mac or 'no MAC'})"
    if nic.type not in ("user", *TAP_TYPES):
        raise UnsupportedConfig(f"{who}: type '{nic.type}' is not supported; use one of user, {', '.join(TAP_TYPES)}")
    model = nic.model or "virtio"
    if model not in NIC_MODELS:
        raise UnsupportedConfig(f"{who}: model '{model}' is not supported; use one of {', '.join(NIC_MODELS)}")
    driver = NIC_MODELS[model] or b.virtio("net")
    if model != "virtio":
        b.need_pci(f"{who} (model {model})")
    mac = nic.mac
    if mac is None:
        mac = default_mac(b.domain.uuid, i)
        b.note(f"interface {i}: no MAC address given; using {mac}")
    if nic.link_state == "down":
        b.note(f"interface {i}: link state down is applied over QMP (set_link) once QEMU runs")
    alias = nic.alias or f"net{i}"
    netdev = f"host{alias}"
    queues = 1
    if nic.type == "user":
        if nic.driver_queues and nic.driver_queues > 1:
            b.note(f"interface {i}: user networking has a single queue; queues={nic.driver_queues} is ignored")
        backend = kv("user", ("id", netdev))
    else:
        backend, queues = _tap_backend(b, i, nic, netdev, who)
    if queues > 1 and model != "virtio":
        raise UnsupportedConfig(f"{who}: queues={queues} needs model 'virtio'; model '{model}' has one queue")
    device = kv(
        driver,
        *nic_device_props(alias, mac, queues, b.microvm),
        *pci_placement(b, nic.address, who),
        *boot_props(nic.boot_order),
    )
    return [Option("-netdev", backend), Option("-device", device)]


def nic_driver(model: str | None, microvm: bool) -> str:
    """QEMU's device for a NIC model (virtio-net-pci, or -device on microvm)."""
    name = NIC_MODELS.get(model or "virtio")
    if name is not None:
        return name
    return "virtio-net-device" if microvm else "virtio-net-pci"


def nic_device_props(alias: str, mac: str, queues: int, microvm: bool) -> list[tuple[str, Value]]:
    """A NIC's -device properties after the driver (also used for device_add on hot-plug)."""
    props: list[tuple[str, Value]] = [("netdev", f"host{alias}"), ("id", alias), ("mac", mac)]
    if queues > 1:
        props.append(("mq", "on"))
        if not microvm:
            props.append(("vectors", 2 * queues + 2))
    return props


def _tap_backend(b: Build, i: int, nic: Interface, netdev: str, who: str) -> tuple[KeyVal, int]:
    """-netdev tap on descriptors the daemon opened, so QEMU needs no network privileges."""
    fds = b.ctx.nic_fds.get(i)
    if fds is None or not fds.taps:
        raise InvalidArgument(f"{who}: type '{nic.type}' needs a tap the daemon opens; none was given")
    wanted = nic.driver_queues or 1
    if len(fds.taps) != wanted:
        raise InvalidArgument(f"{who}: {wanted} queue(s) configured but {len(fds.taps)} tap fd(s) given")
    if nic.driver_name == "vhost" and not fds.vhost:
        raise InvalidArgument(f"{who}: driver name='vhost' needs /dev/vhost-net fds; none were given")
    tap: list[tuple[str, Value]] = [("id", netdev)]
    if len(fds.taps) == 1:
        tap.append(("fd", fds.taps[0]))
    else:
        tap.append(("fds", ":".join(str(fd) for fd in fds.taps)))
    if fds.vhost:
        tap.append(("vhost", "on"))
        if len(fds.vhost) == 1:
            tap.append(("vhostfd", fds.vhost[0]))
        else:
            tap.append(("vhostfds", ":".join(str(fd) for fd in fds.vhost)))
    return kv("tap", *tap), len(fds.taps)


def video_options(b: Build) -> list[Option]:
    videos = list(b.domain.devices.videos)
    if not videos:
        return []
    primary = next((i for i, v in enumerate(videos) if v.primary), 0)
    out: list[Option] = []
    for i, video in enumerate(videos):
        alias = f"video{i}"
        is_primary = i == primary
        place = pci_placement(b, video.address, alias)
        heads = ("max_outputs", video.heads)
        if video.model == "none":
            continue
        if video.accel3d:
            raise UnsupportedConfig(
                f"{alias}: 3D acceleration (<acceleration accel3d='yes'/>) needs OpenGL from a host GPU render node "
                "(/dev/dri/renderD*) handed to QEMU, which pyvirt does not do; write accel3d='no' or remove it")
        if video.model == "virtio":
            if b.microvm:
                dev = kv("virtio-gpu-device", ("id", alias), heads)
            else:
                dev = kv("virtio-vga" if is_primary else "virtio-gpu-pci", ("id", alias), heads, *place)
        elif b.microvm:
            raise UnsupportedConfig(f"{alias}: machine 'microvm' only has virtio video; use <model type='virtio'/>")
        elif video.model == "qxl":
            dev = kv(
                "qxl-vga" if is_primary else "qxl",
                ("id", alias),
                ("ram_size", video.ram * 1024 if video.ram else None),
                ("vram_size", video.vram * 1024 if video.vram else None),
                ("vgamem_mb", video.vgamem // 1024 if video.vgamem else None),
                heads,
                *place,
            )
        elif video.model in ("vga", "cirrus", "bochs"):
            if video.model != "bochs" and not is_primary:
                raise UnsupportedConfig(f"{alias}: model '{video.model}' can only be the primary video device")
            name = {"vga": "VGA", "cirrus": "cirrus-vga", "bochs": "bochs-display"}[video.model]
            vgamem = video.vgamem // 1024 if video.vgamem and video.model == "vga" else None
            dev = kv(name, ("id", alias), ("vgamem_mb", vgamem), *place)
        elif video.model == "ramfb":
            dev = kv("ramfb", ("id", alias))
        else:
            raise UnsupportedConfig(
                f"{alias}: model '{video.model}' is not supported; use virtio, qxl, vga, cirrus, bochs, ramfb or none"
            )
        out.append(Option("-device", dev))
    return out


def _usb_ports(b: Build) -> dict[str, tuple[str, int]]:
    items = [(f"input{i}", inp.address) for i, inp in enumerate(b.domain.devices.inputs) if inp.bus == "usb"]
    items += [(f"redir{i}", r.address) for i, r in enumerate(b.domain.devices.redirdevs)]
    if items and b.microvm:
        b.need_pci(f"USB device {items[0][0]}")
    return usb_placements(b, items)


def input_options(b: Build) -> list[Option]:
    ports = _usb_ports(b)
    out: list[Option] = []
    for i, inp in enumerate(b.domain.devices.inputs):
        alias = f"input{i}"
        if inp.type not in ("tablet", "mouse", "keyboard"):
            raise UnsupportedConfig(f"{alias}: input type '{inp.type}' is not supported; use tablet, mouse or keyboard")
        if inp.bus == "ps2":
            if inp.type == "tablet":
                raise UnsupportedConfig(f"{alias}: a tablet cannot be on bus ps2; use bus='usb' or 'virtio'")
            if b.microvm:
                b.note(f"{alias}: machine 'microvm' has no PS/2 controller; the {inp.type} is left out")
            continue  # built into pc and q35 (i8042)
        if inp.bus == "usb":
            bus, port = ports[alias]
            name = {"tablet": "usb-tablet", "mouse": "usb-mouse", "keyboard": "usb-kbd"}[inp.type]
            out.append(Option("-device", kv(name, ("id", alias), ("bus", bus), ("port", str(port)))))
        elif inp.bus == "virtio":
            place = pci_placement(b, inp.address, alias)
            out.append(Option("-device", kv(b.virtio(inp.type), ("id", alias), *place)))
        else:
            raise UnsupportedConfig(f"{alias}: input bus '{inp.bus}' is not supported; use usb, virtio or ps2")
    return out


def sound_options(b: Build) -> list[Option]:
    """-audiodev backends, then the sound cards; no host sound: 'none', or 'spice' with SPICE."""
    d = b.domain.devices
    if not d.sounds and not d.audios:
        return []
    spice_ok = b.ctx.has_spice and any(g.type == "spice" for g in d.graphics)
    audios = list(d.audios)
    out: list[Option] = []
    for audio in audios:
        driver = audio.type
        if driver == "spice" and not spice_ok:
            b.note(f"audio {audio.id}: SPICE audio is not available here; the guest's sound goes nowhere")
            driver = "none"
        elif driver not in ("none", "spice"):
            raise UnsupportedConfig(f"audio {audio.id}: type '{audio.type}' is not supported; use none or spice")
        out.append(Option("-audiodev", Json({"id": f"audio{audio.id}", "driver": driver})))
    if not audios:
        out.append(Option("-audiodev", Json({"id": "audio1", "driver": "none"})))
    audiodev = f"audio{audios[0].id}" if audios else "audio1"
    for i, sound in enumerate(d.sounds):
        alias = f"sound{i}"
        if sound.model not in SOUND_MODELS:
            raise UnsupportedConfig(
                f"{alias}: model '{sound.model}' is not supported; use one of {', '.join(SOUND_MODELS)}")
        name = SOUND_MODELS[sound.model]
        if sound.model == "sb16":
            if b.microvm:
                raise UnsupportedConfig(f"{alias}: machine 'microvm' has no sound devices")
            out.append(Option("-device", kv(name, ("id", alias), ("audiodev", audiodev))))
            continue
        b.need_pci(alias)
        place = pci_placement(b, sound.address, alias)
        if sound.model in ("ich9", "ich6"):
            out.append(Option("-device", kv(name, ("id", alias), *place)))
            codec = kv("hda-duplex", ("id", f"{alias}-codec0"), ("bus", f"{alias}.0"), ("cad", 0),
                       ("audiodev", audiodev))
            out.append(Option("-device", codec))
        else:
            out.append(Option("-device", kv(name, ("id", alias), ("audiodev", audiodev), *place)))
    return out


def redirdev_options(b: Build) -> list[Option]:
    ports = _usb_ports(b) if b.domain.devices.redirdevs else {}
    out: list[Option] = []
    for i, redir in enumerate(b.domain.devices.redirdevs):
        alias = f"redir{i}"
        if redir.bus != "usb" or redir.type != "spicevmc":
            raise UnsupportedConfig(f"{alias}: only <redirdev bus='usb' type='spicevmc'> is supported")
        need_spice(b, f"{alias} (USB redirection)")
        bus, port = ports[alias]
        out.append(Option("-chardev", kv("spicevmc", ("id", f"char{alias}"), ("name", "usbredir"))))
        dev = kv("usb-redir", ("chardev", f"char{alias}"), ("id", alias), ("bus", bus), ("port", str(port)))
        out.append(Option("-device", dev))
    return out


def balloon_options(b: Build) -> list[Option]:
    """virtio balloon; the stats period is set over QMP (qom-set guest-stats-polling-interval)."""
    bal = b.domain.devices.memballoon
    if bal is None or bal.model == "none":
        return []
    if bal.model != "virtio":
        raise UnsupportedConfig(f"memballoon model '{bal.model}' is not supported; use virtio or none")
    place = pci_placement(b, bal.address, "memballoon")
    deflate: Value = True if bal.autodeflate else None
    return [Option("-device", kv(b.virtio("balloon"), ("id", "balloon0"), ("deflate-on-oom", deflate), *place))]


def rng_options(b: Build) -> list[Option]:
    out: list[Option] = []
    for i, rng in enumerate(b.domain.devices.rngs):
        alias = f"rng{i}"
        if rng.model != "virtio":
            raise UnsupportedConfig(f"{alias}: model '{rng.model}' is not supported; use virtio")
        obj = f"obj{alias}"
        if rng.backend_model == "random":
            out.append(Option("-object", Json({"qom-type": "rng-random", "id": obj, "filename": rng.backend})))
        elif rng.backend_model == "builtin":
            out.append(Option("-object", Json({"qom-type": "rng-builtin", "id": obj})))
        else:
            raise UnsupportedConfig(
                f"{alias}: backend model '{rng.backend_model}' is not supported; use random or builtin")
        dev = kv(
            b.virtio("rng"),
            ("rng", obj),
            ("id", alias),
            ("max-bytes", rng.rate_bytes),
            ("period", rng.rate_period if rng.rate_bytes else None),
            *pci_placement(b, rng.address, alias),
        )
        out.append(Option("-device", dev))
    return out


def watchdog_options(b: Build) -> list[Option]:
    """Watchdog devices; their action goes into -action (see argv.action_options)."""
    out: list[Option] = []
    for i, wd in enumerate(b.domain.devices.watchdogs):
        alias = f"watchdog{i}"
        if wd.model not in WATCHDOG_MODELS:
            raise UnsupportedConfig(f"{alias}: model '{wd.model}' is not supported; use i6300esb, ib700 or itco")
        if wd.model == "itco":
            if b.machine.family != "q35":
                raise UnsupportedConfig(f"{alias}: the iTCO watchdog is built into q35 only")
            out.append(Option("-global", "ICH9-LPC.noreboot=off"))
        elif wd.model == "i6300esb":
            b.need_pci(alias)
            out.append(Option("-device", kv("i6300esb", ("id", alias), *pci_placement(b, wd.address, alias))))
        else:
            if b.microvm:
                raise UnsupportedConfig(f"{alias}: machine 'microvm' has no ib700 watchdog")
            out.append(Option("-device", kv("ib700", ("id", alias))))
    return out


def panic_options(b: Build) -> list[Option]:
    out: list[Option] = []
    for i, panic in enumerate(b.domain.devices.panics):
        alias = f"panic{i}"
        if panic.model in (None, "isa"):
            ioport = None
            if panic.address is not None:
                if panic.address.type != "isa":
                    raise UnsupportedConfig(
                        f"{alias}: address type '{panic.address.type}' does not fit; use type='isa'")
                ioport = panic.address.get("iobase")
            out.append(Option("-device", kv("pvpanic", ("id", alias), ("ioport", ioport))))
        elif panic.model == "hyperv":
            continue  # a CPU property (hv-crash), see argv_cpu.accel_props
        elif panic.model == "pvpanic":
            b.need_pci(f"{alias} (pvpanic-pci)")
            out.append(Option("-device", kv("pvpanic-pci", ("id", alias), *pci_placement(b, panic.address, alias))))
        else:
            raise UnsupportedConfig(f"{alias}: panic model '{panic.model}' is not supported; use isa, pvpanic or "
                                    "hyperv")
    if len(out) > 1:
        raise InvalidArgument("a domain can have only one panic device")
    return out
