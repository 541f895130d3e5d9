"""The domain (VM) model: pure, typed, frozen data.

One field per libvirt domain XML setting that pyvirt supports; the codec in
``model/domain_xml.py`` maps XML to these objects and back, and
``qemu/argv.py`` turns them into a QEMU command line. Sizes are KiB, as in
libvirt's normalized XML. ``None`` means "not given": the codec does not write
it back and the argv builder uses QEMU's or pyvirt's default.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .storage import ImageLayer


@dataclass(frozen=True)
class Address:
    """A device address (<address type=...>): kept as the user gave it.

    ``type`` is pci, drive, usb, virtio-serial, ccid or isa; ``attrs`` holds
    the other attributes in document order, as strings (e.g. bus="0x01").
    """

    type: str
    attrs: tuple[tuple[str, str], ...] = ()

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.attrs:
            if k == key:
                return v
        return default


@dataclass(frozen=True)
class BootLoader:
    """<os><loader>: UEFI firmware (pflash) or a BIOS ROM."""

    path: str
    readonly: bool | None = None
    type: str | None = None  # "pflash" | "rom"
    secure: bool | None = None
    nvram: str | None = None  # <nvram> path, per-VM vars copy
    nvram_template: str | None = None


@dataclass(frozen=True)
class OS:
    type: str = "hvm"
    arch: str = "x86_64"
    machine: str | None = None  # q35, pc, microvm or a versioned name (pc-q35-7.2)
    boot: tuple[str, ...] = ()  # <boot dev=.../> in order: hd, cdrom, network, fd
    bootmenu: bool | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    loader: BootLoader | None = None
    firmware: str | None = None  # <os firmware="efi">


@dataclass(frozen=True)
class HyperVFeature:
    """One Hyper-V enlightenment of <features><hyperv>: <relaxed state='on'/>, <spinlocks retries=.../>, ..."""

    name: str  # relaxed | vapic | spinlocks | vpindex | runtime | synic | stimer | reset | vendor_id | ...
    state: bool
    retries: int | None = None  # spinlocks
    value: str | None = None  # vendor_id
    direct: bool | None = None  # stimer: <direct state=.../>


@dataclass(frozen=True)
class HyperV:
    mode: str | None = None  # custom | passthrough
    features: tuple[HyperVFeature, ...] = ()


@dataclass(frozen=True)
class Features:
    acpi: bool = False
    apic: bool = False
    pae: bool = False
    vmport: bool | None = None  # <vmport state="on|off"/>
    smm: bool | None = None
    hyperv: HyperV | None = None
    # <kvm>: (name, state) of hidden, hint-dedicated, poll-control, pv-ipi, in document order
    kvm: tuple[tuple[str, bool], ...] = ()
    pmu: bool | None = None
    vmcoreinfo: bool | None = None
    pvspinlock: bool | None = None
    ioapic_driver: str | None = None  # kvm | qemu


@dataclass(frozen=True)
class CPUTopology:
    sockets: int
    cores: int
    threads: int
    dies: int = 1


@dataclass(frozen=True)
class CPUFeature:
    name: str
    policy: str  # require | disable | optional | force | forbid


@dataclass(frozen=True)
class NumaCell:
    """<cpu><numa><cell id=... cpus='0-1' memory=.../>: a guest NUMA node."""

    cpus: str  # a CPU list as libvirt writes it: 0-1,4
    memory_kib: int
    id: int | None = None
    mem_access: str | None = None  # shared | private (shared: vhost-user devices such as virtiofs can map it)


@dataclass(frozen=True)
class CPU:
    mode: str | None = None  # host-passthrough | host-model | custom | maximum
    match: str | None = None
    check: str | None = None
    migratable: bool | None = None
    model: str | None = None  # custom model name, e.g. "Skylake-Client"
    model_fallback: str | None = None
    topology: CPUTopology | None = None
    features: tuple[CPUFeature, ...] = ()
    numa: tuple[NumaCell, ...] = ()
    cache_mode: str | None = None  # <cache mode='passthrough|emulate|disable'/>
    cache_level: int | None = None


@dataclass(frozen=True)
class Timer:
    name: str  # rtc, pit, hpet, kvmclock, hypervclock, tsc
    present: bool | None = None
    tickpolicy: str | None = None


@dataclass(frozen=True)
class Clock:
    offset: str = "utc"  # utc | localtime
    timers: tuple[Timer, ...] = ()


@dataclass(frozen=True)
class PM:
    suspend_to_mem: bool | None = None
    suspend_to_disk: bool | None = None


@dataclass(frozen=True)
class Disk:
    """<disk type="file|block|volume" device="disk|cdrom">.

    ``source`` is the path QEMU opens: <source file=...> or <source dev=...>.
    A volume disk names <source pool=... volume=...> instead; the daemon
    resolves it at start into ``source`` and ``volume_type`` of the live
    domain, which the XML never shows (libvirt's live XML keeps pool/volume).
    """

    target_dev: str  # vda, sda, hdc
    bus: str  # virtio | sata | ide | scsi
    device: str = "disk"  # disk | cdrom
    source_type: str = "file"  # file | block | volume
    source: str | None = None  # file or block device path; a cdrom may be empty
    source_pool: str | None = None  # volume disks: the storage pool ...
    source_volume: str | None = None  # ... and the volume in it
    # <source index=N>: live XML only, N of the QEMU node names libvirt-N-storage/-format
    source_index: int | None = None
    volume_type: str | None = None  # live only, not in XML: file | block, what a volume resolved to
    # live only, not in XML: a qcow2 disk's backing images, nearest first, as recorded (or read from the
    # headers of images the definer named); QEMU is given exactly these, () meaning "no backing file"
    backing_chain: tuple[ImageLayer, ...] = ()
    driver_name: str | None = "qemu"
    format: str | None = None  # raw | qcow2
    cache: str | None = None
    discard: str | None = None
    io: str | None = None
    readonly: bool = False
    shareable: bool = False
    serial: str | None = None
    boot_order: int | None = None
    address: Address | None = None


DISK_BUS_BY_PREFIX = (("vd", "virtio"), ("sd", "scsi"), ("hd", "ide"))


def disk_bus_for(target: str) -> str | None:
    """The bus a disk's target name implies when <target> has no bus= (vda: virtio), as libvirt reads it."""
    return next((bus for prefix, bus in DISK_BUS_BY_PREFIX if target.startswith(prefix)), None)


@dataclass(frozen=True)
class Controller:
    type: str  # pci | usb | ide | sata | scsi | virtio-serial
    index: int = 0
    model: str | None = None  # pcie-root, pcie-root-port, qemu-xhci, virtio-scsi, ...
    ports: int | None = None
    model_name: str | None = None  # <model name=.../> of pci controllers
    target_chassis: int | None = None
    target_port: str | None = None  # hex string as written, e.g. "0x10"
    # <master startport=N/>: a USB1 companion (ich9-uhciN) of the USB2 controller with the same index
    master_startport: int | None = None
    address: Address | None = None


@dataclass(frozen=True)
class Interface:
    """<interface>: user, network, bridge, direct (macvtap) or ethernet (a tap)."""

    type: str  # user | network | bridge | direct | ethernet
    mac: str | None = None  # generated (52:54:00:xx:xx:xx) when missing
    model: str | None = None  # virtio | e1000 | e1000e | rtl8139
    source: tuple[tuple[str, str], ...] = ()  # source attributes: network=, bridge=, dev=, mode=
    target_dev: str | None = None
    link_state: str | None = None  # up | down
    boot_order: int | None = None
    driver_name: str | None = None  # qemu | vhost
    driver_queues: int | None = None
    address: Address | None = None
    # QEMU device id (net0...): set by the daemon while running, shown in live XML as <alias name=/>;
    # it stays fixed across hot-unplug of other NICs.
    alias: str | None = None


@dataclass(frozen=True)
class CharDev:
    """<serial>, <console> and <channel>: a character device and its guest side.

    ``type`` is the host side: pty, file, unix, spicevmc, null, stdio.
    ``kind`` says which element it came from.
    """

    kind: str  # serial | console | channel
    type: str  # pty | file | unix | spicevmc | null
    source_path: str | None = None  # file path or unix socket path
    source_mode: str | None = None  # unix: bind | connect
    log_file: str | None = None  # <log file=... append=.../>
    log_append: bool | None = None
    target_type: str | None = None  # serial: isa-serial; console: serial|virtio; channel: virtio
    target_port: int | None = None
    target_name: str | None = None  # channel name, e.g. org.qemu.guest_agent.0
    target_model: str | None = None  # <target><model name="isa-serial"/>
    address: Address | None = None


@dataclass(frozen=True)
class Graphics:
    type: str  # vnc | spice
    port: int | None = None  # -1 with autoport
    autoport: bool | None = None
    listen_type: str | None = None  # address | socket | none
    listen_address: str | None = None
    socket: str | None = None  # vnc unix socket path
    passwd: str | None = None
    image_compression: str | None = None  # spice <image compression=.../>
    # spice tlsPort: -1 = pick one at start (only where spice TLS certificates are configured); live: the port
    tls_port: int | None = None
    gl: bool | None = None  # spice <gl enable=.../>: OpenGL through a host render node
    gl_rendernode: str | None = None


@dataclass(frozen=True)
class Video:
    model: str  # virtio | qxl | vga | cirrus | bochs | ramfb | none
    heads: int | None = None
    primary: bool | None = None
    vram: int | None = None
    ram: int | None = None
    vgamem: int | None = None
    accel3d: bool | None = None  # <model><acceleration accel3d=.../>: OpenGL (virgl), refused at start when yes
    address: Address | None = None


@dataclass(frozen=True)
class Input:
    type: str  # tablet | mouse | keyboard
    bus: str  # usb | ps2 | virtio
    address: Address | None = None


@dataclass(frozen=True)
class Sound:
    model: str  # ich9 | ich6 | ac97 | es1370 | sb16
    address: Address | None = None


@dataclass(frozen=True)
class Audio:
    """<audio id=... type=...>: host audio backend (none or spice; no host sound here)."""

    id: int
    type: str  # none | spice


@dataclass(frozen=True)
class RedirDev:
    bus: str  # usb
    type: str  # spicevmc
    address: Address | None = None


@dataclass(frozen=True)
class MemBalloon:
    model: str  # virtio | none
    autodeflate: bool | None = None
    stats_period: int | None = None
    address: Address | None = None


@dataclass(frozen=True)
class RNG:
    model: str  # virtio
    backend_model: str = "random"
    backend: str = "/dev/urandom"
    rate_bytes: int | None = None
    rate_period: int | None = None
    address: Address | None = None


@dataclass(frozen=True)
class Watchdog:
    model: str  # i6300esb | ib700 | itco
    action: str | None = None  # reset | shutdown | poweroff | pause | none | dump | inject-nmi
    address: Address | None = None


@dataclass(frozen=True)
class Panic:
    model: str | None = None  # isa (pvpanic) | pvpanic | hyperv
    address: Address | None = None


@dataclass(frozen=True)
class MemoryDevice:
    """<memory model='dimm|virtio-mem|nvdimm'>: memory plugged beside the boot RAM (hot-pluggable)."""

    model: str
    size_kib: int
    node: int | None = None
    block_kib: int | None = None  # virtio-mem: the unit it plugs
    requested_kib: int | None = None  # virtio-mem: how much of size the guest gets now
    source_path: str | None = None  # nvdimm: the backing file
    label_kib: int | None = None  # nvdimm: <label><size>
    access: str | None = None  # shared | private
    address: Address | None = None  # dimm: type='dimm' slot= base=; virtio-mem: pci


@dataclass(frozen=True)
class Filesystem:
    """<filesystem type='mount'>: a host directory shared with the guest (virtiofs through virtiofsd)."""

    source_dir: str
    target_dir: str  # the mount tag the guest mounts
    type: str = "mount"
    driver_type: str | None = None  # virtiofs | path (9p)
    accessmode: str | None = None  # passthrough | mapped | squash
    readonly: bool = False
    address: Address | None = None


@dataclass(frozen=True)
class IOMMU:
    """<iommu model='intel'><driver intremap=... caching_mode=... eim=... iotlb=... aw_bits=.../></iommu>"""

    model: str
    intremap: bool | None = None
    caching_mode: bool | None = None
    eim: bool | None = None
    iotlb: bool | None = None
    aw_bits: int | None = None


@dataclass(frozen=True)
class Vsock:
    """<vsock model='virtio'><cid auto='yes'/> (or address=N)</vsock>: host<->guest sockets over vhost-vsock."""

    model: str | None = None
    cid_auto: bool | None = None
    cid: int | None = None
    address: Address | None = None


@dataclass(frozen=True)
class TPM:
    """<tpm model=...><backend type='emulator' version='2.0'/></tpm>: a TPM emulated by swtpm, its state kept
    per VM by the daemon."""

    model: str = "tpm-tis"  # tpm-tis | tpm-crb
    backend_type: str = "emulator"
    backend_version: str | None = None  # 2.0 | 1.2 (None: 2.0)


@dataclass(frozen=True)
class SecLabel:
    type: str | None = None  # none | dynamic | static
    model: str | None = None
    relabel: bool | None = None
    label: str | None = None  # <label>, <imagelabel>, <baselabel>: kept, not enforced
    imagelabel: str | None = None
    baselabel: str | None = None


@dataclass(frozen=True)
class MemoryBacking:
    """<memoryBacking>: huge pages for guest RAM, and whether KSM may merge it (QEMU mem-merge)."""

    hugepages: bool = False
    hugepage_size_kib: int | None = None  # <hugepages><page size=.../></hugepages>; None: the host's default
    nosharepages: bool = False
    source_type: str | None = None  # <source type='memfd|anonymous'/>
    access_mode: str | None = None  # <access mode='shared|private'/>: shared lets virtiofsd map guest RAM


@dataclass(frozen=True)
class VcpuPin:
    """<vcpupin vcpu='N' cpuset='...'/>: the host CPUs vCPU N's thread may run on."""

    vcpu: int
    cpuset: tuple[int, ...]


@dataclass(frozen=True)
class CpuTune:
    """<cputune>: CPU weight (cgroup v1 shares), bandwidth per vCPU (period/quota, microseconds), and the
    host CPUs of the vCPU threads (vcpupin) and of QEMU's other threads (emulatorpin)."""

    shares: int | None = None
    period: int | None = None
    quota: int | None = None  # -1: no limit
    vcpupins: tuple[VcpuPin, ...] = ()
    emulatorpin: tuple[int, ...] | None = None


@dataclass(frozen=True)
class MemTune:
    hard_limit_kib: int | None = None
    soft_limit_kib: int | None = None


@dataclass(frozen=True)
class BlkioTune:
    weight: int | None = None  # 100..1000


@dataclass(frozen=True)
class Devices:
    emulator: str | None = None
    disks: tuple[Disk, ...] = ()
    controllers: tuple[Controller, ...] = ()
    interfaces: tuple[Interface, ...] = ()
    serials: tuple[CharDev, ...] = ()
    consoles: tuple[CharDev, ...] = ()
    channels: tuple[CharDev, ...] = ()
    inputs: tuple[Input, ...] = ()
    graphics: tuple[Graphics, ...] = ()
    sounds: tuple[Sound, ...] = ()
    audios: tuple[Audio, ...] = ()
    videos: tuple[Video, ...] = ()
    redirdevs: tuple[RedirDev, ...] = ()
    memballoon: MemBalloon | None = None
    rngs: tuple[RNG, ...] = ()
    watchdogs: tuple[Watchdog, ...] = ()
    panics: tuple[Panic, ...] = ()
    tpms: tuple[TPM, ...] = ()
    memories: tuple[MemoryDevice, ...] = ()
    iommu: IOMMU | None = None
    filesystems: tuple[Filesystem, ...] = ()
    vsock: Vsock | None = None


@dataclass(frozen=True)
class Domain:
    """A VM definition as libvirt's <domain> describes it."""

    name: str
    uuid: str
    memory_kib: int
    type: str = "kvm"  # kvm | qemu
    title: str | None = None
    description: str | None = None
    metadata_xml: str | None = None  # inner XML of <metadata>, verbatim
    current_memory_kib: int | None = None
    max_memory_kib: int | None = None
    max_memory_slots: int | None = None
    blkiotune: BlkioTune | None = None
    memtune: MemTune | None = None
    memory_backing: MemoryBacking | None = None
    vcpus: int = 1
    vcpu_placement: str | None = None  # static | auto
    vcpu_current: int | None = None
    cputune: CpuTune | None = None
    os: OS = field(default_factory=OS)
    features: Features = field(default_factory=Features)
    cpu: CPU | None = None
    clock: Clock | None = None
    on_poweroff: str = "destroy"
    on_reboot: str = "restart"
    on_crash: str = "destroy"
    pm: PM | None = None
    devices: Devices = field(default_factory=Devices)
    seclabels: tuple[SecLabel, ...] = ()
    resource_partition: str | None = None  # <resource><partition>: a cgroup under the machine slice

    @property
    def effective_memory_kib(self) -> int:
        """Memory the guest has at start (currentMemory, else memory)."""
        return self.current_memory_kib or self.memory_kib
