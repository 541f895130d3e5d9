"""Domains for the argv golden tests, shared with the integration test that runs them.

Each case is a function ``(img) -> (Domain, ctx overrides)``; ``img(name)``
gives the path of an image file, so the unit tests use fixed paths and the
integration test points them at real temporary files.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pyvirt.model.domain import (
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
    Sound,
    Timer,
    Video,
    Watchdog,
)
from pyvirt.model.storage import ImageLayer
from pyvirt.qemu.argv import LaunchContext

Img = Callable[[str], str]
Case = tuple[Domain, dict[str, object]]
UUID = "c7a5fdbd-edaf-9455-926a-d65c16db1809"


def golden_img(name: str) -> str:
    return f"/var/lib/pyvirt/images/{name}"


def base_ctx(**over: object) -> LaunchContext:
    run = "/run/pyvirt/qemu"
    fields: dict[str, object] = {
        "qemu_binary": "/usr/bin/qemu-system-x86_64",
        "accel": "tcg",
        "qmp_socket": f"{run}/{UUID}.qmp",
        "serial_socket": f"{run}/{UUID}.serial",
        "serial_log": "/var/log/pyvirt/qemu/vm1.serial.log",
        "pidfile": f"{run}/{UUID}.pid",
        "vnc_socket": f"{run}/{UUID}.vnc",
        "channel_dir": f"{run}/{UUID}.ch",
        "has_spice": False,
        "has_sandbox": True,
        "machine_aliases": {"q35": "pc-q35-7.2", "pc": "pc-i440fx-7.2"},
    }
    fields.update(over)
    return LaunchContext(**fields)  # type: ignore[arg-type]


def pci(bus: int, slot: int, function: int = 0, multi: bool = False) -> Address:
    attrs = [("domain", "0x0000"), ("bus", f"0x{bus:02x}"), ("slot", f"0x{slot:02x}"), ("function", f"0x{function:x}")]
    if multi:
        attrs.append(("multifunction", "on"))
    return Address("pci", tuple(attrs))


SERIAL = CharDev(kind="serial", type="pty", target_type="isa-serial", target_port=0, target_model="isa-serial")
CONSOLE = CharDev(kind="console", type="pty", target_type="serial", target_port=0)


def minimal_q35_tcg(img: Img) -> Case:
    d = Domain(
        name="vm1",
        uuid=UUID,
        type="qemu",
        memory_kib=262144,
        vcpus=1,
        os=OS(machine="q35", kernel=img("vmlinuz"), initrd=img("initrd.img"), cmdline="console=ttyS0 quiet"),
        features=Features(acpi=True, apic=True),
        devices=Devices(serials=(SERIAL,), consoles=(CONSOLE,)),
    )
    return d, {}


def microvm_direct_kernel(img: Img) -> Case:
    d = Domain(
        name="micro",
        uuid=UUID,
        type="kvm",
        memory_kib=131072,
        vcpus=2,
        os=OS(machine="microvm", kernel=img("vmlinuz"), initrd=img("initrd.img"), cmdline="console=ttyS0"),
        features=Features(acpi=False),
        devices=Devices(
            disks=(Disk(target_dev="vda", bus="virtio", source=img("root.raw"), format="raw"),),
            interfaces=(Interface(type="user", mac="52:54:00:12:34:56", model="virtio"),),
            serials=(SERIAL,),
            consoles=(CONSOLE,),
            inputs=(Input("mouse", "ps2"), Input("keyboard", "ps2")),
            memballoon=MemBalloon("virtio"),
            rngs=(RNG("virtio"),),
        ),
    )
    return d, {}


def pc_ide(img: Img) -> Case:
    d = Domain(
        name="oldpc",
        uuid=UUID,
        type="kvm",
        memory_kib=524288,
        vcpus=1,
        os=OS(machine="pc", boot=("hd", "cdrom"), bootmenu=True),
        features=Features(acpi=True, apic=True, vmport=False),
        clock=Clock("localtime", (Timer("rtc", tickpolicy="catchup"), Timer("pit", tickpolicy="delay"),
                                  Timer("hpet", present=False))),
        on_reboot="destroy",
        devices=Devices(
            disks=(
                Disk(target_dev="hda", bus="ide", source=img("disk.qcow2"), format="qcow2", cache="writeback"),
                Disk(target_dev="hdc", bus="ide", device="cdrom", source=img("install.iso"), format="raw",
                     readonly=True),
            ),
            controllers=(Controller("pci", 0, "pci-root"), Controller("ide", 0)),
            interfaces=(Interface(type="user", mac="52:54:00:aa:bb:cc", model="rtl8139"),),
            serials=(CharDev(kind="serial", type="file", source_path=img("oldpc-ttyS0.log")),),
            inputs=(Input("tablet", "usb"), Input("mouse", "ps2"), Input("keyboard", "ps2")),
            graphics=(Graphics("vnc", port=-1, autoport=True),),
            videos=(Video("vga", vgamem=16384, primary=True),),
            sounds=(Sound("ac97"),),
            watchdogs=(Watchdog("ib700", action="poweroff"),),
        ),
    )
    return d, {}


def _root_ports() -> tuple[Controller, ...]:
    """pcie-root-ports 1..8 in slots 2 and 3 of pcie.0, as virt-install lays them out."""
    ports = []
    for i in range(1, 9):
        slot, fn = 2 + (i - 1) // 8, (i - 1) % 8
        ports.append(
            Controller(
                "pci", i, "pcie-root-port", model_name="pcie-root-port", target_chassis=i,
                target_port=f"0x{0x10 + i - 1:x}", address=pci(0, slot, fn, multi=fn == 0),
            )
        )
    return tuple(ports)


def q35_full(img: Img, spice: bool = True) -> Case:
    """A virt-install-style q35 domain: every device family pyvirt supports."""
    channels = [CharDev(kind="channel", type="unix", target_type="virtio", target_name="org.qemu.guest_agent.0",
                        address=Address("virtio-serial", (("controller", "0"), ("bus", "0"), ("port", "1"))))]
    graphics = [Graphics("vnc", port=-1, autoport=True, listen_type="socket")]
    redirs: tuple[RedirDev, ...] = ()
    audio = Audio(1, "none")
    video = Video("virtio", heads=1, primary=True, address=pci(0, 1))
    if spice:
        channels.append(CharDev(kind="channel", type="spicevmc", target_type="virtio", target_name="com.redhat.spice.0",
                                address=Address("virtio-serial", (("controller", "0"), ("bus", "0"), ("port", "2")))))
        graphics = [Graphics("spice", port=-1, autoport=True, listen_type="address", listen_address="127.0.0.1",
                             image_compression="off")]
        redirs = (RedirDev("usb", "spicevmc", Address("usb", (("bus", "0"), ("port", "2")))),
                  RedirDev("usb", "spicevmc", Address("usb", (("bus", "0"), ("port", "3")))))
        audio = Audio(1, "spice")
        video = Video("qxl", heads=1, primary=True, ram=65536, vram=65536, vgamem=16384, address=pci(0, 1))
    d = Domain(
        name="full",
        uuid=UUID,
        type="kvm",
        memory_kib=2097152,
        current_memory_kib=2097152,
        vcpus=2,
        os=OS(machine="pc-q35-7.2"),
        features=Features(acpi=True, apic=True, vmport=False),
        cpu=CPU(mode="host-passthrough", check="none", migratable=True),
        clock=Clock("utc", (Timer("rtc", tickpolicy="catchup"), Timer("pit", tickpolicy="delay"),
                            Timer("hpet", present=False))),
        on_crash="restart",
        pm=PM(False, False),
        devices=Devices(
            emulator="/usr/bin/qemu-system-x86_64",
            disks=(
                Disk(target_dev="vda", bus="virtio", source=img("full.qcow2"), format="qcow2", cache="none",
                     io="native", discard="unmap", boot_order=1, address=pci(4, 0)),
                Disk(target_dev="sda", bus="sata", device="cdrom", source=img("install.iso"), format="raw",
                     readonly=True, boot_order=2,
                     address=Address("drive", (("controller", "0"), ("bus", "0"), ("target", "0"), ("unit", "0")))),
                Disk(target_dev="sdb", bus="sata", device="cdrom", readonly=True),
            ),
            controllers=(
                Controller("usb", 0, "qemu-xhci", ports=15, address=pci(2, 0)),
                Controller("pci", 0, "pcie-root"),
                *_root_ports(),
                Controller("sata", 0, address=pci(0, 0x1F, 2)),
                Controller("virtio-serial", 0, address=pci(3, 0)),
            ),
            interfaces=(Interface(type="user", mac="52:54:00:6b:3c:58", model="virtio", address=pci(1, 0)),),
            serials=(SERIAL,),
            consoles=(CONSOLE,),
            channels=tuple(channels),
            inputs=(Input("tablet", "usb", Address("usb", (("bus", "0"), ("port", "1")))),
                    Input("mouse", "ps2"), Input("keyboard", "ps2")),
            graphics=tuple(graphics),
            sounds=(Sound("ich9", address=pci(0, 0x1B)),),
            audios=(audio,),
            videos=(video,),
            redirdevs=redirs,
            memballoon=MemBalloon("virtio", autodeflate=True, address=pci(5, 0)),
            rngs=(RNG("virtio", address=pci(6, 0)),),
            watchdogs=(Watchdog("i6300esb", action="reset", address=pci(7, 0)),),
            panics=(Panic("isa", Address("isa", (("type", "isa"), ("iobase", "0x505")))),),
        ),
    )
    return d, {"has_spice": spice, "spice_port": 5901}


def q35_full_spice(img: Img) -> Case:
    return q35_full(img, spice=True)


def q35_full_vnc(img: Img) -> Case:
    return q35_full(img, spice=False)


def host_passthrough_tcg(img: Img) -> Case:
    d, _ = minimal_q35_tcg(img)
    cpu = CPU(mode="host-passthrough", topology=CPUTopology(sockets=1, cores=2, threads=2),
              features=(CPUFeature("vmx", "disable"),))
    return replace(d, type="kvm", vcpus=4, vcpu_current=2, cpu=cpu), {"accel": "tcg"}


def host_passthrough_kvm(img: Img) -> Case:
    d, _ = host_passthrough_tcg(img)
    return d, {"accel": "kvm"}


def uefi_custom_cpu(img: Img) -> Case:
    """UEFI with secure boot, a custom CPU model, memory hotplug room, SCSI and SATA disks."""
    d = Domain(
        name="uefi,vm",  # a comma must be doubled inside -name
        uuid=UUID,
        type="kvm",
        memory_kib=1048576,
        max_memory_kib=4194304,
        max_memory_slots=4,
        vcpus=2,
        os=OS(machine="q35", loader=BootLoader(img("OVMF_CODE.fd"), readonly=True, type="pflash", secure=True,
                                                 nvram=img("uefi_VARS.fd"))),
        features=Features(acpi=True, apic=True, smm=True),
        cpu=CPU(mode="custom", model="Skylake-Client", topology=CPUTopology(sockets=1, cores=2, threads=1),
                features=(CPUFeature("pcid", "require"), CPUFeature("hle", "disable"), CPUFeature("rtm", "disable"))),
        on_poweroff="preserve",
        on_crash="destroy",
        devices=Devices(
            disks=(
                Disk(target_dev="sda", bus="scsi", source=img("a,b.qcow2"), format="qcow2", cache="writethrough",
                     serial="DISK-0001", boot_order=1),
                Disk(target_dev="sdb", bus="scsi", source=img("data.raw"), format="raw", shareable=True,
                     cache="unsafe"),
                Disk(target_dev="sdc", bus="scsi", device="cdrom"),
                Disk(target_dev="vdb", bus="virtio", source=img("ro.raw"), format="raw", readonly=True,
                     cache="directsync", io="threads"),
            ),
            controllers=(Controller("pci", 0, "pcie-root"), Controller("scsi", 0, "virtio-scsi")),
            interfaces=(Interface(type="user", mac="52:54:00:01:02:03", model="e1000e", link_state="down",
                                  boot_order=2),),
            consoles=(CharDev(kind="console", type="pty", target_type="virtio"),),
            channels=(CharDev(kind="channel", type="unix", target_type="virtio",
                              target_name="org.qemu.guest_agent.0"),),
            inputs=(Input("tablet", "virtio"), Input("keyboard", "usb")),
            videos=(Video("bochs"),),
            rngs=(RNG("virtio", backend_model="builtin", rate_bytes=1024, rate_period=1000),),
            watchdogs=(Watchdog("itco", action="dump"),),
        ),
    )
    return d, {"has_sandbox": False, "machine_aliases": {}}


def q35_extras(img: Img) -> Case:
    """Less common models and buses, so QEMU gets to check them too (ACPI off here)."""
    d = Domain(
        name="extras",
        uuid=UUID,
        type="qemu",
        memory_kib=262144,
        vcpus=1,
        os=OS(machine="q35", boot=("network", "hd")),
        features=Features(acpi=False),
        devices=Devices(
            disks=(
                Disk(target_dev="sdh", bus="sata", source=img("second-ahci.qcow2"), format="qcow2", io="io_uring",
                     address=Address("drive", (("controller", "1"), ("bus", "0"), ("target", "0"), ("unit", "1")))),
                Disk(target_dev="sdb", bus="scsi", device="cdrom", source=img("scsi.iso"), format="raw"),
            ),
            controllers=(
                Controller("pci", 0, "pcie-root"),
                Controller("pci", 1, "dmi-to-pci-bridge", address=pci(0, 0x1E)),
                Controller("pci", 2, "pci-bridge", address=pci(1, 0)),
                Controller("pci", 3, "pcie-root-port", target_chassis=3, target_port="0x18"),
                Controller("pci", 4, "pcie-to-pci-bridge", address=pci(3, 0)),
                Controller("sata", 1),
                Controller("usb", 0, "ich9-ehci1"),
                Controller("usb", 1, "nec-xhci", ports=8),
            ),
            interfaces=(Interface(type="user", mac="52:54:00:0e:0e:01", model="e1000", address=pci(2, 1)),),
            serials=(CharDev(kind="serial", type="pty", target_type="pci-serial", target_model="pci-serial"),
                     CharDev(kind="serial", type="null", target_port=1)),
            inputs=(Input("mouse", "usb", Address("usb", (("bus", "1"), ("port", "3")))), Input("keyboard", "virtio"),
                    Input("mouse", "virtio")),
            graphics=(Graphics("vnc", port=5977, listen_type="address", listen_address="127.0.0.1"),),
            sounds=(Sound("es1370"), Sound("sb16")),
            videos=(Video("cirrus"), Video("virtio"), Video("qxl", heads=2)),
            rngs=(RNG("virtio", backend_model="builtin"),),
            panics=(Panic("pvpanic", pci(4, 2)),),
        ),
    )
    return d, {}


# A real character device: QEMU's host_device/host_cdrom accept it, so the integration
# run of these cases (tests/integration/test_argv_qemu.py) starts without a spare block device.
BLOCK_DEV = "/dev/null"


def q35_storage(img: Img) -> Case:
    """Block and pool-volume disks as the daemon hands them over after resolving the volumes at start."""
    d = Domain(
        name="stor",
        uuid=UUID,
        type="qemu",
        memory_kib=262144,
        vcpus=1,
        os=OS(machine="q35"),
        features=Features(acpi=True),
        devices=Devices(
            disks=(
                Disk(target_dev="vda", bus="virtio", source_type="volume", source=img("root.qcow2"),
                     source_pool="default", source_volume="root.qcow2", source_index=3, volume_type="file",
                     format="qcow2", discard="ignore", boot_order=1,
                     backing_chain=(ImageLayer(img("root-base.qcow2"), "qcow2"),
                                    ImageLayer(img("root-base.raw"), "raw"))),
                Disk(target_dev="vdb", bus="virtio", source_type="block", source=BLOCK_DEV, source_index=1,
                     format="raw", cache="writethrough", io="threads", discard="unmap", shareable=True,
                     serial="DATA-1"),  # not cache='none': /dev/null takes no O_DIRECT
                Disk(target_dev="sda", bus="sata", device="cdrom", source_type="volume", source=BLOCK_DEV,
                     source_pool="lvm", source_volume="cd", source_index=4, volume_type="block", format="raw",
                     readonly=True),
                Disk(target_dev="sdb", bus="sata", device="cdrom", source_type="block", source=BLOCK_DEV,
                     source_index=2, readonly=True, cache="default", io="default"),
                Disk(target_dev="sdc", bus="scsi", source=img("scratch.raw"), format="raw", source_index=5),
            ),
            controllers=(Controller("pci", 0, "pcie-root"), Controller("scsi", 0, "virtio-scsi")),
            serials=(SERIAL,),
        ),
    )
    return d, {}


CASES: dict[str, Callable[[Img], Case]] = {
    "minimal_q35_tcg": minimal_q35_tcg,
    "microvm_direct_kernel": microvm_direct_kernel,
    "pc_ide": pc_ide,
    "q35_full_spice": q35_full_spice,
    "q35_full_vnc": q35_full_vnc,
    "host_passthrough_tcg": host_passthrough_tcg,
    "host_passthrough_kvm": host_passthrough_kvm,
    "uefi_custom_cpu": uefi_custom_cpu,
    "q35_extras": q35_extras,
    "q35_storage": q35_storage,
}
