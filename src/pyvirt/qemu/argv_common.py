"""What every argv builder shares: the launch context, the machine family and
device placement (PCI/USB addresses, boot indexes, bus names).

Kept apart from ``argv.py`` so the device builders can import it without a
cycle; ``argv.py`` re-exports the public names.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidArgument, UnsupportedConfig
from ..model.domain import Address, Domain
from .argv_render import Value

MACHINE_FAMILIES = ("q35", "pc", "microvm")


@dataclass(frozen=True)
class AddFd:
    """One ``-add-fd``: an fd the daemon opened, put into fd set ``set`` (QEMU opens /dev/fdset/SET)."""

    fd: int
    set: int
    opaque: str  # shown by query-fdsets: which file, how opened (e.g. "rw:/var/lib/x.qcow2")


@dataclass(frozen=True)
class NicFds:
    """File descriptors the daemon opened for one tap-backed NIC (inherited by QEMU)."""

    taps: tuple[int, ...]  # one per queue; a tap or a macvtap (/dev/tapN) fd
    vhost: tuple[int, ...] = ()  # /dev/vhost-net fds, one per queue, when vhost is used


@dataclass(frozen=True)
class LaunchContext:
    """What the host and the daemon supply for one start of one domain.

    Paths are strings so the builder never touches the filesystem. The
    daemon fills this from ``config.Paths`` and the host capability probe.
    """

    qemu_binary: str
    accel: str  # "kvm" | "tcg"
    qmp_socket: str
    serial_socket: str  # the daemon's interactive console socket
    serial_log: str  # per-VM serial log file
    pidfile: str
    vnc_socket: str
    channel_dir: str  # unix channels without a path get CHANNEL_DIR/NAME
    has_spice: bool = False
    has_sandbox: bool = False
    machine_aliases: dict[str, str] = field(default_factory=dict)  # {"q35": "pc-q35-7.2"}
    devices: frozenset[str] = frozenset()  # QEMU device names available; empty = don't check
    spice_port: int | None = None  # free TCP port the daemon picked for spice autoport
    spice_tls_port: int | None = None  # ... and for a spice tlsPort='-1' where TLS certificates are configured
    spice_tls_dir: str | None = None  # the daemon's copy of the spice TLS certificates (None: TLS not configured)
    # interface index -> fds of its tap/macvtap; every non-user NIC needs an entry
    nic_fds: dict[int, NicFds] = field(default_factory=dict)
    # host path -> what QEMU opens instead (/dev/fdset/N or /proc/self/fd/N of a file the daemon opened);
    # empty: QEMU opens paths itself (the builder's golden files, bare-QEMU tests)
    host_paths: dict[str, str] = field(default_factory=dict)
    add_fds: tuple[AddFd, ...] = ()
    tpm_fd: int | None = None  # QEMU's end of the control connection to the guest's swtpm
    fs_fds: dict[int, int] = field(default_factory=dict)  # filesystem index -> QEMU's end of its virtiofsd connection
    vsock: tuple[int, int] | None = None  # (fd of /dev/vhost-vsock, the guest CID reserved on it)
    # socket path -> listening fd the daemon bound there (server chardevs outside the guest's directory)
    socket_fds: dict[str, int] = field(default_factory=dict)
    # QEMU waits for the guest's state instead of booting it (``-incoming defer``): a restore, or the
    # destination of a live migration; the daemon names the stream later (migrate-incoming)
    incoming: bool = False


@dataclass(frozen=True)
class QemuCommand:
    """The argv to execute and notes the daemon logs and shows (what was approximated)."""

    argv: list[str]
    notes: list[str]


@dataclass(frozen=True)
class Machine:
    """The machine family decides buses, built-in devices and device variants."""

    family: str  # q35 | pc | microvm
    type: str  # the name given to -machine (alias resolved)

    @property
    def pci_root(self) -> str | None:
        return {"q35": "pcie.0", "pc": "pci.0"}.get(self.family)


@dataclass
class Build:
    """One build in progress: inputs plus the notes collected on the way.

    Builders are functions of (Build) -> list[Option]; they only append to
    ``notes``, so the whole build stays a pure function of domain and context.
    """

    domain: Domain
    ctx: LaunchContext
    machine: Machine
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def host_path(self, path: str) -> str:
        """What QEMU is told for a host file: the fd the daemon opened for it, or the path itself."""
        return self.ctx.host_paths.get(path, path)

    @property
    def microvm(self) -> bool:
        return self.machine.family == "microvm"

    def virtio(self, kind: str) -> str:
        """virtio-KIND-pci, or the virtio-mmio variant virtio-KIND-device on microvm."""
        return f"virtio-{kind}-device" if self.microvm else f"virtio-{kind}-pci"

    def need_pci(self, what: str) -> None:
        """Reject PCI-only devices on microvm, with the reason."""
        if self.microvm:
            raise UnsupportedConfig(
                f"{what} needs a PCI bus, and machine 'microvm' has none; "
                "use a virtio device or machine type 'q35'"
            )


def parse_int(text: str | None, what: str, default: int = 0) -> int:
    """Parse a decimal or 0x-hex attribute, as libvirt writes addresses."""
    if text is None or text == "":
        return default
    try:
        return int(text, 0)
    except ValueError:
        raise InvalidArgument(f"{what}: '{text}' is not a number (write e.g. 3 or 0x03)") from None


def pci_index_set(domain: Domain) -> set[int]:
    return {c.index for c in domain.devices.controllers if c.type == "pci"}


def pci_placement(b: Build, address: Address | None, who: str) -> tuple[tuple[str, Value], ...]:
    """bus=/addr=/multifunction= for a PCI device; nothing when QEMU may choose.

    Bus N is the PCI controller with index N (a pcie-root-port or bridge whose
    id is pci.N); bus 0 is the machine's root bus.
    """
    if address is None:
        return ()
    if address.type != "pci":
        raise UnsupportedConfig(
            f"{who}: address type '{address.type}' does not fit a PCI device; use <address type='pci' .../>"
        )
    b.need_pci(f"{who} (it has a PCI address)")
    if parse_int(address.get("domain"), f"{who} PCI domain") != 0:
        raise UnsupportedConfig(f"{who}: only PCI domain 0 exists on this machine")
    bus = parse_int(address.get("bus"), f"{who} PCI bus")
    slot = parse_int(address.get("slot"), f"{who} PCI slot")
    function = parse_int(address.get("function"), f"{who} PCI function")
    if not 0 <= slot <= 31 or not 0 <= function <= 7:
        raise InvalidArgument(f"{who}: PCI slot must be 0..31 and function 0..7, got slot {slot} function {function}")
    if bus == 0:
        bus_name = b.machine.pci_root
    elif bus in pci_index_set(b.domain):
        bus_name = f"pci.{bus}"
    else:
        raise InvalidArgument(
            f"{who}: PCI bus {bus} does not exist; add <controller type='pci' index='{bus}' "
            "model='pcie-root-port'/> or use bus 0"
        )
    addr = f"0x{slot:x}" if function == 0 else f"0x{slot:x}.0x{function:x}"
    multi = address.get("multifunction")
    return (("bus", bus_name), ("addr", addr), ("multifunction", True if multi == "on" else None))


def boot_props(order: int | None) -> tuple[tuple[str, Value], ...]:
    return (("bootindex", order),) if order is not None else ()


def target_index(dev: str) -> int:
    """vda -> 0, sdb -> 1, hdc -> 2, vdaa -> 26 (libvirt's disk index)."""
    for prefix in ("xvd", "vd", "sd", "hd", "fd"):
        if dev.startswith(prefix) and dev[len(prefix):].isalpha() and dev[len(prefix):].islower():
            idx = 0
            for ch in dev[len(prefix):]:
                idx = idx * 26 + (ord(ch) - ord("a") + 1)
            return idx - 1
    raise InvalidArgument(f"disk target dev '{dev}' is not a disk name like vda, sda or hdc")
