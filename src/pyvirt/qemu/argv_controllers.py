"""Controllers: PCI root ports and bridges, USB, SCSI, SATA, IDE, virtio-serial.

Controllers a device needs but the definition lacks (a USB controller for a
USB tablet, virtio-serial for a guest agent channel, virtio-scsi for a SCSI
disk) are added here with index 0, as libvirt adds them when it defines a
domain. PCI controllers are rendered first in index order, so every bus
exists before a device names it.
"""
from __future__ import annotations

from ..errors import InvalidArgument, UnsupportedConfig
from ..model.domain import Address, Controller, Domain
from .argv_common import Build, parse_int, pci_placement
from .argv_render import Option, kv

USB_MODELS = {
    "qemu-xhci": "qemu-xhci",
    "nec-xhci": "nec-usb-xhci",
    "piix3-uhci": "piix3-usb-uhci",
    "piix4-uhci": "piix4-usb-uhci",
    "ich9-ehci1": "ich9-usb-ehci1",
    "ich9-uhci1": "ich9-usb-uhci1",
    "ich9-uhci2": "ich9-usb-uhci2",
    "ich9-uhci3": "ich9-usb-uhci3",
    "ehci": "usb-ehci",
}


def uses_usb(domain: Domain) -> bool:
    return any(i.bus == "usb" for i in domain.devices.inputs) or bool(domain.devices.redirdevs)


def uses_virtio_serial(domain: Domain) -> bool:
    d = domain.devices
    return any(c.target_type == "virtio" for c in d.consoles) or any(
        c.target_type in (None, "virtio") for c in d.channels
    )


def uses_scsi(domain: Domain) -> bool:
    return any(disk.bus == "scsi" for disk in domain.devices.disks)


def uses_nvme(domain: Domain) -> bool:
    return any(disk.bus == "nvme" for disk in domain.devices.disks)


def effective_controllers(b: Build) -> list[Controller]:
    """The domain's controllers plus the implicit ones its devices need."""
    ctrls = list(b.domain.devices.controllers)
    have = {c.type for c in ctrls}
    if uses_usb(b.domain) and "usb" not in have:
        ctrls.append(Controller(type="usb", index=0))
    if uses_virtio_serial(b.domain) and "virtio-serial" not in have:
        ctrls.append(Controller(type="virtio-serial", index=0))
    if uses_scsi(b.domain) and "scsi" not in have:
        ctrls.append(Controller(type="scsi", index=0, model="virtio-scsi"))
    if uses_nvme(b.domain) and "nvme" not in have:
        ctrls.append(Controller(type="nvme", index=0))
    return ctrls


def usb_controller_id(index: int) -> str:
    return "usb" if index == 0 else f"usb{index}"


def usb_model(b: Build, ctrl: Controller) -> str | None:
    """The QEMU device of a USB controller, None for model 'none'."""
    if ctrl.model == "none":
        return None
    if b.microvm:
        b.need_pci("USB controller")
    if ctrl.model is None:
        return "qemu-xhci" if b.machine.family == "q35" else "piix3-usb-uhci"
    try:
        return USB_MODELS[ctrl.model]
    except KeyError:
        raise UnsupportedConfig(
            f"USB controller model '{ctrl.model}' is not supported; use one of {', '.join(USB_MODELS)} or none"
        ) from None


def controller_options(b: Build) -> list[Option]:
    ctrls = effective_controllers(b)
    pci = sorted((c for c in ctrls if c.type == "pci"), key=lambda c: c.index)
    out: list[Option] = []
    rest = sorted((c for c in ctrls if c.type != "pci"), key=lambda c: c.master_startport is not None)
    for ctrl in pci + rest:  # a USB companion after its master, whose bus it names
        out += _controller(b, ctrl)
    return out


def _controller(b: Build, ctrl: Controller) -> list[Option]:
    builders = {
        "pci": _pci_controller,
        "usb": _usb_controller,
        "scsi": _scsi_controller,
        "sata": _sata_controller,
        "ide": _ide_controller,
        "virtio-serial": _virtio_serial_controller,
        "nvme": _nvme_controller,
    }
    try:
        fn = builders[ctrl.type]
    except KeyError:
        raise UnsupportedConfig(
            f"controller type '{ctrl.type}' is not supported; use one of {', '.join(builders)}"
        ) from None
    return fn(b, ctrl)


def _pci_controller(b: Build, ctrl: Controller) -> list[Option]:
    family = b.machine.family
    who = f"PCI controller {ctrl.index} (model {ctrl.model})"
    if ctrl.model in ("pcie-root", "pci-root"):
        want = {"q35": "pcie-root", "pc": "pci-root"}.get(family)
        if ctrl.index != 0 or ctrl.model != want:
            raise UnsupportedConfig(
                f"{who}: machine '{b.machine.type}' has "
                + (f"root bus model '{want}' at index 0" if want else "no PCI root bus")
            )
        return []
    b.need_pci(who)
    if ctrl.index == 0:
        raise InvalidArgument(f"{who}: index 0 is the root bus; give the controller an index of 1 or more")
    ident = ("id", f"pci.{ctrl.index}")
    place = pci_placement(b, ctrl.address, who)
    if ctrl.model == "pcie-root-port":
        if family != "q35":
            raise UnsupportedConfig(f"{who}: PCIe root ports need machine type q35, not '{b.machine.type}'")
        driver = ctrl.model_name or "pcie-root-port"
        if driver not in ("pcie-root-port", "ioh3420"):
            raise UnsupportedConfig(f"{who}: model name '{driver}' is not supported; use pcie-root-port")
        chassis = ctrl.target_chassis if ctrl.target_chassis is not None else ctrl.index
        return [Option("-device", kv(driver, ("port", ctrl.target_port), ("chassis", chassis), ident, *place))]
    if ctrl.model == "pci-bridge":
        chassis = ctrl.target_chassis if ctrl.target_chassis is not None else ctrl.index
        return [Option("-device", kv("pci-bridge", ("chassis_nr", chassis), ident, *place))]
    if ctrl.model == "pcie-to-pci-bridge":
        return [Option("-device", kv("pcie-pci-bridge", ident, *place))]
    if ctrl.model == "dmi-to-pci-bridge":
        return [Option("-device", kv("i82801b11-bridge", ident, *place))]
    raise UnsupportedConfig(
        f"{who}: model is not supported; use pcie-root-port, pci-bridge, pcie-to-pci-bridge or dmi-to-pci-bridge"
    )


def _usb_controller(b: Build, ctrl: Controller) -> list[Option]:
    driver = usb_model(b, ctrl)
    if driver is None:
        return []
    if ctrl.master_startport is not None:
        return [_usb_companion(b, ctrl, driver)]
    ports: tuple[tuple[str, int | None], ...] = ()
    if ctrl.ports is not None and driver in ("qemu-xhci", "nec-usb-xhci"):
        ports = (("p2", ctrl.ports), ("p3", ctrl.ports))
    place = pci_placement(b, ctrl.address, f"USB controller {ctrl.index}")
    return [Option("-device", kv(driver, *ports, ("id", usb_controller_id(ctrl.index)), *place))]


def _usb_companion(b: Build, ctrl: Controller, driver: str) -> Option:
    """A USB1 companion: its ports are the USB2 master's (masterbus), from ``firstport`` on. Like libvirt,
    it has no id of its own; devices name the master's bus."""
    who = f"USB companion controller {ctrl.model} (index {ctrl.index})"
    masters = [c for c in b.domain.devices.controllers
               if c.type == "usb" and c.index == ctrl.index and c.master_startport is None]
    if not masters or masters[0].model != "ich9-ehci1":
        raise UnsupportedConfig(f"{who}: a companion needs <controller type='usb' index='{ctrl.index}' "
                                "model='ich9-ehci1'/> as its master")
    place = pci_placement(b, ctrl.address, who)
    return Option("-device", kv(driver, ("masterbus", f"{usb_controller_id(ctrl.index)}.0"),
                                ("firstport", ctrl.master_startport), *place))


def _scsi_controller(b: Build, ctrl: Controller) -> list[Option]:
    if ctrl.model not in (None, "virtio-scsi"):
        raise UnsupportedConfig(
            f"SCSI controller {ctrl.index}: model '{ctrl.model}' is not supported; use model='virtio-scsi'"
        )
    place = pci_placement(b, ctrl.address, f"SCSI controller {ctrl.index}")
    return [Option("-device", kv(b.virtio("scsi"), ("id", f"scsi{ctrl.index}"), *place))]


def _nvme_controller(b: Build, ctrl: Controller) -> list[Option]:
    """An NVMe controller; its disks are namespaces on it (nvme-ns). QEMU wants a serial number: a stable one
    from the domain's uuid."""
    if ctrl.model is not None:
        raise UnsupportedConfig(f"NVMe controller {ctrl.index}: model '{ctrl.model}' is not supported; leave it out")
    b.need_pci(f"NVMe controller {ctrl.index}")
    place = pci_placement(b, ctrl.address, f"NVMe controller {ctrl.index}")
    serial = f"{b.domain.uuid.replace('-', '')[:16]}{ctrl.index:02d}"
    return [Option("-device", kv("nvme", ("id", f"nvme{ctrl.index}"), ("serial", serial), *place))]


def _sata_controller(b: Build, ctrl: Controller) -> list[Option]:
    if b.machine.family != "q35":
        raise UnsupportedConfig(
            f"SATA controller {ctrl.index}: machine '{b.machine.type}' has no SATA (AHCI); "
            "use machine type q35, or bus='ide' on machine pc"
        )
    if ctrl.index == 0:
        return []  # q35's built-in ich9-ahci at 00:1f.2, buses ide.0 .. ide.5
    place = pci_placement(b, ctrl.address, f"SATA controller {ctrl.index}")
    return [Option("-device", kv("ich9-ahci", ("id", f"sata{ctrl.index}"), *place))]


def _ide_controller(b: Build, ctrl: Controller) -> list[Option]:
    if b.machine.family != "pc" or ctrl.index != 0:
        raise UnsupportedConfig(
            f"IDE controller {ctrl.index}: only machine type pc has IDE (one built-in controller, index 0); "
            "on q35 use bus='sata'"
        )
    return []


def _virtio_serial_controller(b: Build, ctrl: Controller) -> list[Option]:
    place = pci_placement(b, ctrl.address, f"virtio-serial controller {ctrl.index}")
    return [
        Option(
            "-device",
            kv(b.virtio("serial"), ("id", f"virtio-serial{ctrl.index}"), ("max_ports", ctrl.ports), *place),
        )
    ]


def usb_placements(b: Build, items: list[tuple[str, Address | None]]) -> dict[str, tuple[str, int]]:
    """Give every USB device a (bus, port): explicit <address type='usb'> first, then free ports.

    ``items`` pairs each device's alias with its Address (or None). Returns
    alias -> ("usb.0", port). Ports count from 1, as libvirt numbers them.
    """
    ctrls = [c for c in effective_controllers(b) if c.type == "usb" and c.master_startport is None]
    live = {c.index for c in ctrls if usb_model(b, c) is not None}
    if items and not live:
        raise UnsupportedConfig(
            f"USB device {items[0][0]} needs a USB controller, and the domain's USB controller is model 'none'"
        )
    used: set[tuple[int, int]] = set()
    out: dict[str, tuple[str, int]] = {}
    pending: list[str] = []
    for alias, address in items:
        if address is None:
            pending.append(alias)
            continue
        if address.type != "usb":
            raise UnsupportedConfig(f"USB device {alias}: address type '{address.type}' does not fit; use type='usb'")
        bus = parse_int(address.get("bus"), f"USB device {alias} bus")
        port = parse_int(address.get("port"), f"USB device {alias} port", default=1)
        if bus not in live:
            raise InvalidArgument(f"USB device {alias}: there is no USB controller with index {bus}")
        if (bus, port) in used:
            raise InvalidArgument(f"USB device {alias}: USB bus {bus} port {port} is used twice")
        used.add((bus, port))
        out[alias] = (f"{usb_controller_id(bus)}.0", port)
    first = min(live) if live else 0
    port = 1
    for alias in pending:
        while (first, port) in used:
            port += 1
        used.add((first, port))
        out[alias] = (f"{usb_controller_id(first)}.0", port)
    return out
