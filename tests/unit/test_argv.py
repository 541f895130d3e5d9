"""qemu/argv.py: golden files for whole domains, and the rules one by one.

Golden files live in tests/unit/data/argv/NAME.args: one argument per line,
then one ``# note: ...`` line per note. After an intended change, rewrite
them with ``PYVIRT_REGEN=1 pytest tests/unit/test_argv.py`` and review the
diff. tests/integration/test_argv_qemu.py runs the same cases in QEMU.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.errors import InvalidArgument, UnsupportedConfig
from pyvirt.model.domain import (
    CPU,
    OS,
    Address,
    Audio,
    CharDev,
    Controller,
    CPUTopology,
    Devices,
    Disk,
    Domain,
    Features,
    Graphics,
    Input,
    Interface,
    MemBalloon,
    RedirDev,
    Sound,
    Video,
    Watchdog,
)
from pyvirt.qemu.argv import NicFds, QemuCommand, build_argv, disk_names
from pyvirt.qemu.argv_render import escape
from tests.unit.argv_cases import CASES, SERIAL, UUID, base_ctx, golden_img, pci

DATA = Path(__file__).parent / "data" / "argv"
REGEN = os.environ.get("PYVIRT_REGEN") == "1"


def golden_text(cmd: QemuCommand) -> str:
    return "\n".join(cmd.argv + [f"# note: {n}" for n in cmd.notes]) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    domain, over = CASES[name](golden_img)
    text = golden_text(build_argv(domain, base_ctx(**over)))
    path = DATA / f"{name}.args"
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with PYVIRT_REGEN=1 to create it"
    assert text == path.read_text(), f"argv of {name} changed; if intended, regenerate with PYVIRT_REGEN=1"


def test_no_stale_golden_files() -> None:
    assert sorted(p.stem for p in DATA.glob("*.args")) == sorted(CASES)


def test_build_is_deterministic_and_pure() -> None:
    """Same input, same output; paths that do not exist are fine (no filesystem access)."""
    domain, over = CASES["q35_full_spice"](lambda n: f"/nonexistent/{n}")
    first = build_argv(domain, base_ctx(**over))
    assert build_argv(domain, base_ctx(**over)) == first
    assert "/nonexistent/full.qcow2" in "".join(first.argv)


# -- helpers -----------------------------------------------------------------


def dom(**kw: object) -> Domain:
    fields: dict[str, object] = {"name": "t", "uuid": UUID, "memory_kib": 131072, "type": "qemu",
                                     "features": Features(acpi=True)}
    fields.update(kw)
    return Domain(**fields)  # type: ignore[arg-type]


def argv(domain: Domain, **ctx: object) -> list[str]:
    return build_argv(domain, base_ctx(**ctx)).argv


def value(args: list[str], flag: str) -> list[str]:
    """Every value given to ``flag``."""
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]


def devices(domain: Domain, **ctx: object) -> list[str]:
    return value(argv(domain, **ctx), "-device")


# -- base options ------------------------------------------------------------


def test_base_options_and_no_daemonize() -> None:
    args = argv(dom())
    assert args[0] == "/usr/bin/qemu-system-x86_64"
    for flag in ("-S", "-nodefaults", "-no-user-config"):
        assert flag in args
    assert "-daemonize" not in args
    assert value(args, "-uuid") == [UUID]
    assert value(args, "-name") == ["guest=t,debug-threads=on"]
    assert value(args, "-msg") == ["timestamp=on"]
    assert value(args, "-display") == ["none"]
    assert value(args, "-mon") == ["chardev=charmonitor,id=monitor,mode=control"]
    assert value(args, "-chardev")[0].startswith("socket,id=charmonitor,path=/run/pyvirt/qemu/")


def test_sandbox_only_when_host_has_it() -> None:
    assert value(argv(dom(), has_sandbox=True), "-sandbox") == [
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
    ]
    assert "-sandbox" not in argv(dom(), has_sandbox=False)


def test_commas_are_doubled_in_keyval_values() -> None:
    assert escape("a,b,,c") == "a,,b,,,,c"
    args = argv(dom(name="a,b"), qmp_socket="/run/x,y.qmp")
    assert "guest=a,,b,debug-threads=on" in args
    assert any("path=/run/x,,y.qmp," in a for a in args)


def test_machine_default_and_aliases() -> None:
    assert value(argv(dom()), "-machine") == ["pc-q35-7.2"]
    assert value(argv(dom(), machine_aliases={}), "-machine") == ["q35"]
    pc = dom(os=OS(machine="pc"), features=Features(acpi=False, vmport=True, smm=False))
    assert value(argv(pc), "-machine") == ["pc-i440fx-7.2,acpi=off,vmport=on,smm=off"]
    with pytest.raises(UnsupportedConfig, match="machine type 'virt'"):
        argv(dom(os=OS(machine="virt")))
    with pytest.raises(UnsupportedConfig, match="architecture 'aarch64'"):
        argv(dom(os=OS(arch="aarch64")))


def test_accel_follows_context() -> None:
    assert value(argv(dom(), accel="kvm"), "-accel") == ["kvm"]
    assert value(argv(dom(), accel="tcg"), "-accel") == ["tcg"]
    with pytest.raises(InvalidArgument, match="hvf"):
        argv(dom(), accel="hvf")


def test_memory_and_vcpus() -> None:
    assert value(argv(dom(memory_kib=524288)), "-m") == ["size=524288k"]
    hot = dom(memory_kib=524288, max_memory_kib=1048576, max_memory_slots=2)
    assert value(argv(hot), "-m") == ["size=524288k,slots=2,maxmem=1048576k"]
    with pytest.raises(InvalidArgument, match="slots"):
        argv(dom(max_memory_kib=1048576))
    assert value(argv(dom(vcpus=4)), "-smp") == ["4"]
    assert value(argv(dom(vcpus=4, vcpu_current=1)), "-smp") == ["1,maxcpus=4"]
    topo = dom(vcpus=4, cpu=CPU(topology=CPUTopology(sockets=2, cores=2, threads=1)))
    assert value(argv(topo), "-smp") == ["4,maxcpus=4,sockets=2,dies=1,cores=2,threads=1"]
    assert "-cpu" not in argv(topo)  # topology only: QEMU's default model
    with pytest.raises(InvalidArgument, match="does not match"):
        argv(dom(vcpus=3, cpu=CPU(topology=CPUTopology(sockets=2, cores=2, threads=1))))
    with pytest.raises(InvalidArgument, match="between 1 and 2"):
        argv(dom(vcpus=2, vcpu_current=3))


def test_cpu_modes() -> None:
    tcg = build_argv(dom(cpu=CPU(mode="host-model")), base_ctx(accel="tcg"))
    assert value(tcg.argv, "-cpu") == ["max"]
    assert any("host-model" in n and "max" in n for n in tcg.notes)
    kvm = build_argv(dom(cpu=CPU(mode="host-passthrough")), base_ctx(accel="kvm"))
    assert value(kvm.argv, "-cpu") == ["host"] and kvm.notes == []
    assert value(argv(dom(cpu=CPU(mode="maximum"))), "-cpu") == ["max"]
    assert "-cpu" not in argv(dom())
    with pytest.raises(InvalidArgument, match="needs a <model>"):
        argv(dom(cpu=CPU(mode="custom")))


def test_boot_order_and_direct_kernel() -> None:
    assert value(argv(dom(os=OS(boot=("cdrom", "hd", "network")))), "-boot") == ["order=dcn"]
    assert value(argv(dom(os=OS(bootmenu=False))), "-boot") == ["menu=off"]
    mixed = dom(os=OS(boot=("hd",)), devices=Devices(disks=(Disk("vda", "virtio", source="/a", boot_order=1),)))
    with pytest.raises(InvalidArgument, match="cannot be combined"):
        argv(mixed)
    with pytest.raises(InvalidArgument, match="<initrd> needs <kernel>"):
        argv(dom(os=OS(initrd="/i")))
    args = argv(dom(os=OS(kernel="/k", initrd="/i", cmdline="console=ttyS0,115200")))
    assert value(args, "-append") == ["console=ttyS0,115200"]  # a plain value: no comma doubling


def test_uefi_needs_explicit_loader() -> None:
    with pytest.raises(UnsupportedConfig, match="automatic firmware selection"):
        argv(dom(os=OS(firmware="efi")))


# -- lifecycle ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("poweroff", "reboot", "crash", "expect_no_reboot", "action"),
    [
        ("destroy", "restart", "destroy", False, "shutdown=pause,panic=shutdown"),
        ("destroy", "destroy", "restart", True, "shutdown=pause,panic=pause"),
        ("preserve", "restart", "preserve", False, "shutdown=pause,panic=pause"),
        ("restart", "restart", "coredump-destroy", False, "shutdown=pause,panic=pause"),
    ],
)
def test_lifecycle_actions(poweroff: str, reboot: str, crash: str, expect_no_reboot: bool, action: str) -> None:
    args = argv(dom(on_poweroff=poweroff, on_reboot=reboot, on_crash=crash))
    assert ("-no-reboot" in args) is expect_no_reboot
    assert value(args, "-action") == [action]


def test_lifecycle_rejects_unknown() -> None:
    with pytest.raises(UnsupportedConfig, match="on_reboot 'preserve'"):
        argv(dom(on_reboot="preserve"))
    with pytest.raises(UnsupportedConfig, match="on_crash 'explode'"):
        argv(dom(on_crash="explode"))


def test_watchdog_action() -> None:
    one = dom(devices=Devices(watchdogs=(Watchdog("i6300esb", action="inject-nmi"),)))
    assert value(argv(one), "-action") == ["shutdown=pause,panic=shutdown,watchdog=inject-nmi"]
    two = dom(devices=Devices(watchdogs=(Watchdog("i6300esb", action="reset"), Watchdog("ib700", action="pause"))))
    with pytest.raises(UnsupportedConfig, match="same action"):
        argv(two)
    with pytest.raises(UnsupportedConfig, match="built into q35"):
        argv(dom(os=OS(machine="pc"), devices=Devices(watchdogs=(Watchdog("itco"),))))


# -- disks -------------------------------------------------------------------


def test_disk_names_match_argv() -> None:
    domain, _ = CASES["q35_full_vnc"](golden_img)
    names = disk_names(domain)
    assert [(n.target_dev, n.device_id, n.storage_node, n.format_node) for n in names] == [
        ("vda", "virtio-disk0", "libvirt-1-storage", "libvirt-1-format"),
        ("sda", "sata0-0-0", "libvirt-2-storage", "libvirt-2-format"),
        ("sdb", "sata0-0-1", None, None),
    ]
    devs = devices(domain)
    assert "ide-cd,bus=ide.1,id=sata0-0-1" in devs  # empty cdrom: front-end without a drive


def test_disk_default_placement() -> None:
    disks = (Disk("sdb", "sata", source="/b", format="raw"), Disk("hdd", "ide", source="/d", format="raw"))
    assert "ide-hd,bus=ide.1,drive=libvirt-1-format,id=sata0-0-1" in devices(dom(devices=Devices(disks=disks[:1])))
    pc = dom(os=OS(machine="pc"), devices=Devices(disks=disks[1:]))
    assert "ide-hd,bus=ide.1,unit=1,drive=libvirt-1-format,id=ide0-1-1" in devices(pc)


def test_disk_without_format_is_raw_with_note() -> None:
    cmd = build_argv(dom(devices=Devices(disks=(Disk("vda", "virtio", source="/a"),))), base_ctx())
    assert '"driver":"raw"' in " ".join(cmd.argv)
    assert any("opened as raw" in n for n in cmd.notes)


@pytest.mark.parametrize(
    ("machine", "disk", "error"),
    [
        ("q35", Disk("hda", "ide", source="/a"), "has no IDE bus"),
        ("pc", Disk("sda", "sata", source="/a"), "has no SATA"),
        ("microvm", Disk("sda", "sata", source="/a"), "microvm' has no SATA"),
        ("q35", Disk("vda", "virtio", device="cdrom"), "cannot be on bus virtio"),
        ("q35", Disk("vda", "virtio"), "needs <source"),
        ("q35", Disk("vda", "virtio", source="/a", format="iso"), "driver type 'iso'"),
        ("q35", Disk("vda", "virtio", source="/a", io="native"), "io='native' needs cache"),
        ("q35", Disk("vda", "virtio", source_type="volume", source_pool="p", source_volume="v"),
         "source type 'volume'.*not resolved"),
        ("q35", Disk("vda", "virtio", source="/a", source_type="nvme"), "source type 'nvme'"),
    ],
)
def test_disk_errors(machine: str, disk: Disk, error: str) -> None:
    with pytest.raises(InvalidArgument, match=error):
        argv(dom(os=OS(machine=machine), devices=Devices(disks=(disk,))))


def test_disk_node_names_follow_source_index() -> None:
    """Live disks keep their node numbers (hot-plug and unplug never rename another disk's nodes)."""
    disks = (Disk("vdb", "virtio", source="/b", format="raw", source_index=7),
             Disk("vda", "virtio", source="/a", format="raw"),
             Disk("sda", "sata", device="cdrom", source_index=9))
    names = disk_names(dom(devices=Devices(disks=disks)))
    assert [(n.storage_node, n.format_node) for n in names] == [
        ("libvirt-7-storage", "libvirt-7-format"), ("libvirt-2-storage", "libvirt-2-format"), (None, None)]
    args = " ".join(argv(dom(devices=Devices(disks=disks))))
    assert "libvirt-7-storage" in args and "virtio-blk-pci,drive=libvirt-7-format,id=virtio-disk1" in args


@pytest.mark.parametrize(("disk", "driver"), [
    (Disk("vda", "virtio", source_type="block", source="/dev/sdx"), "host_device"),
    (Disk("sda", "sata", device="cdrom", source_type="block", source="/dev/sr0"), "host_cdrom"),
    (Disk("vda", "virtio", source_type="volume", source="/dev/vg/lv", source_pool="vg", source_volume="lv",
          volume_type="block"), "host_device"),
    (Disk("vda", "virtio", source_type="volume", source="/p/v.img", source_pool="p", source_volume="v.img",
          volume_type="file"), "file"),
])
def test_block_and_volume_storage_drivers(disk: Disk, driver: str) -> None:
    blockdevs = value(argv(dom(devices=Devices(disks=(disk,)))), "-blockdev")
    assert blockdevs[0].startswith(f'{{"driver":"{driver}","filename":"{disk.source}"')


def test_default_cache_and_io_leave_qemu_defaults() -> None:
    args = argv(dom(devices=Devices(disks=(Disk("vda", "virtio", source="/a", cache="default", io="default"),))))
    joined = " ".join(args)
    assert '"cache"' not in joined and '"aio"' not in joined and "write-cache" not in joined


def test_hotplug_pieces_match_the_command_line() -> None:
    """device_add and blockdev-add get what -device/-blockdev get (QEMU's JSON types for device_add)."""
    from pyvirt.qemu.argv_common import Machine
    from pyvirt.qemu.argv_disks import blockdev_props, check_disk, device_add_props, frontend, names_for

    disk = Disk("vdb", "virtio", source="/i/b.qcow2", format="qcow2", cache="writethrough", shareable=True,
                serial="S1", source_index=4)
    names = names_for(disk, 99)
    check_disk(disk, Machine("q35", "q35"))
    storage, fmt = blockdev_props(disk, names)
    assert (storage["node-name"], fmt["node-name"], fmt["file"]) == ("libvirt-4-storage", "libvirt-4-format",
                                                                      "libvirt-4-storage")
    front = frontend(disk, names, "virtio-blk-pci", (("bus", "pci.2"), ("addr", "0x0")))
    assert device_add_props(front) == {"driver": "virtio-blk-pci", "bus": "pci.2", "addr": "0x0",
                                       "drive": "libvirt-4-format", "id": "virtio-disk1", "serial": "S1",
                                       "share-rw": True, "write-cache": "off"}
    with pytest.raises(UnsupportedConfig, match="no IDE bus"):
        check_disk(Disk("hda", "ide", source="/a"), Machine("q35", "pc-q35-7.2"))


def test_two_disks_in_one_place() -> None:
    disks = (Disk("sda", "sata", source="/a"),
             Disk("sdb", "sata", source="/b", address=Address("drive", (("unit", "0"),))))
    with pytest.raises(InvalidArgument, match="same place"):
        argv(dom(devices=Devices(disks=disks)))


# -- PCI and controllers -----------------------------------------------------


def test_pci_address_needs_its_bus() -> None:
    nic = Interface("user", mac="52:54:00:00:00:01", address=pci(3, 0))
    with pytest.raises(InvalidArgument, match="PCI bus 3 does not exist"):
        argv(dom(devices=Devices(interfaces=(nic,))))
    port = Controller("pci", 3, "pcie-root-port")
    devs = devices(dom(devices=Devices(interfaces=(nic,), controllers=(port,))))
    assert devs[0] == "pcie-root-port,chassis=3,id=pci.3"
    assert devs[1].endswith(",bus=pci.3,addr=0x0")


def test_pci_root_and_pc_bus_names() -> None:
    nic = Interface("user", mac="52:54:00:00:00:01", address=pci(0, 5, 1))
    assert devices(dom(os=OS(machine="pc"), devices=Devices(interfaces=(nic,))))[0].endswith(",bus=pci.0,addr=0x5.0x1")
    with pytest.raises(UnsupportedConfig, match="root bus model 'pci-root'"):
        argv(dom(os=OS(machine="pc"), devices=Devices(controllers=(Controller("pci", 0, "pcie-root"),))))
    with pytest.raises(UnsupportedConfig, match="need machine type q35"):
        argv(dom(os=OS(machine="pc"), devices=Devices(controllers=(Controller("pci", 1, "pcie-root-port"),))))


def test_implicit_controllers() -> None:
    chan = CharDev("channel", "unix", target_type="virtio", target_name="org.qemu.guest_agent.0")
    devs = devices(dom(devices=Devices(channels=(chan,), inputs=(Input("tablet", "usb"),),
                                       disks=(Disk("sda", "scsi", source="/a", format="raw"),))))
    assert {"qemu-xhci,id=usb", "virtio-serial-pci,id=virtio-serial0", "virtio-scsi-pci,id=scsi0"} <= set(devs)
    pc = devices(dom(os=OS(machine="pc"), devices=Devices(inputs=(Input("tablet", "usb"),))))
    assert pc[0] == "piix3-usb-uhci,id=usb"


def test_usb_model_none_rejects_usb_devices() -> None:
    d = dom(devices=Devices(controllers=(Controller("usb", 0, "none"),), inputs=(Input("tablet", "usb"),)))
    with pytest.raises(UnsupportedConfig, match="model 'none'"):
        argv(d)


def test_usb_ports_skip_explicit_ones() -> None:
    inputs = (Input("tablet", "usb"), Input("keyboard", "usb", Address("usb", (("bus", "0"), ("port", "1")))))
    devs = devices(dom(devices=Devices(inputs=inputs)))
    assert "usb-tablet,id=input0,bus=usb.0,port=2" in devs
    assert "usb-kbd,id=input1,bus=usb.0,port=1" in devs


# -- microvm -----------------------------------------------------------------


def micro(**devs: object) -> Domain:
    return dom(os=OS(machine="microvm", kernel="/k"), devices=Devices(**devs))  # type: ignore[arg-type]


def test_microvm_uses_mmio_variants() -> None:
    d = micro(disks=(Disk("vda", "virtio", source="/a", format="raw"),), memballoon=MemBalloon("virtio"),
              serials=(SERIAL,), videos=(Video("virtio"),), inputs=(Input("tablet", "virtio"),))
    args = argv(d)
    assert value(args, "-machine") == ["microvm,isa-serial=on"]
    devs = value(args, "-device")
    assert not [x for x in devs if "-pci" in x]
    assert {"virtio-blk-device,drive=libvirt-1-format,id=virtio-disk0", "virtio-balloon-device,id=balloon0",
            "virtio-gpu-device,id=video0", "virtio-tablet-device,id=input0"} <= set(devs)
    assert "virtio-mmio.force-legacy=false" in value(args, "-global")
    assert value(argv(micro()), "-machine") == ["microvm,isa-serial=off"]


@pytest.mark.parametrize(
    ("devs", "error"),
    [
        ({"interfaces": (Interface("user", mac="52:54:00:00:00:01", address=pci(0, 3)),)}, "microvm' has none"),
        ({"interfaces": (Interface("user", mac="52:54:00:00:00:01", model="e1000"),)}, "needs a PCI bus"),
        ({"inputs": (Input("tablet", "usb"),)}, "needs a PCI bus"),
        ({"videos": (Video("qxl"),)}, "only has virtio video"),
        ({"sounds": (Sound("ich9"),)}, "needs a PCI bus"),
        ({"watchdogs": (Watchdog("i6300esb"),)}, "needs a PCI bus"),
        ({"controllers": (Controller("pci", 1, "pcie-root-port"),)}, "needs a PCI bus"),
    ],
)
def test_microvm_rejects_pci_things(devs: dict[str, object], error: str) -> None:
    with pytest.raises(UnsupportedConfig, match=error):
        argv(micro(**devs))


def test_microvm_drops_ps2_with_note() -> None:
    cmd = build_argv(micro(inputs=(Input("mouse", "ps2"),)), base_ctx())
    assert "-device" not in cmd.argv
    assert any("PS/2" in n for n in cmd.notes)


# -- network -----------------------------------------------------------------


def test_user_nic_models() -> None:
    models = (("virtio", "virtio-net-pci"), ("e1000", "e1000"), ("e1000e", "e1000e"), ("rtl8139", "rtl8139"))
    for model, driver in models:
        args = argv(dom(devices=Devices(interfaces=(Interface("user", mac="52:54:00:00:00:09", model=model),))))
        assert value(args, "-netdev") == ["user,id=hostnet0"]
        assert value(args, "-device") == [f"{driver},netdev=hostnet0,id=net0,mac=52:54:00:00:00:09"]


@pytest.mark.parametrize("kind", ["network", "bridge", "direct", "ethernet"])
def test_tap_nics_use_the_daemons_fds(kind: str) -> None:
    d = dom(devices=Devices(interfaces=(Interface(kind, mac="52:54:00:00:00:01"),)))
    cmd = build_argv(d, base_ctx(nic_fds={0: NicFds(taps=(23,))}))
    assert value(cmd.argv, "-netdev") == ["tap,id=hostnet0,fd=23"]
    assert value(cmd.argv, "-device")[-1].startswith("virtio-net-pci,netdev=hostnet0,id=net0,mac=52:54:00:00:00:01")


def test_tap_nic_without_fds_is_an_error() -> None:
    d = dom(devices=Devices(interfaces=(Interface("network", mac="52:54:00:00:00:01"),)))
    with pytest.raises(InvalidArgument, match="needs a tap the daemon opens"):
        build_argv(d, base_ctx())


def test_multiqueue_tap_and_vhost() -> None:
    nic = Interface("bridge", mac="52:54:00:00:00:02", driver_name="vhost", driver_queues=2)
    d = dom(devices=Devices(interfaces=(nic,)))
    cmd = build_argv(d, base_ctx(nic_fds={0: NicFds(taps=(30, 31), vhost=(32, 33))}))
    assert value(cmd.argv, "-netdev") == ["tap,id=hostnet0,fds=30:31,vhost=on,vhostfds=32:33"]
    assert "mq=on,vectors=6" in value(cmd.argv, "-device")[-1]
    with pytest.raises(InvalidArgument, match="2 queue"):
        build_argv(d, base_ctx(nic_fds={0: NicFds(taps=(30,), vhost=(32,))}))
    with pytest.raises(InvalidArgument, match="vhost-net"):
        build_argv(d, base_ctx(nic_fds={0: NicFds(taps=(30, 31))}))


def test_multiqueue_needs_virtio() -> None:
    nic = Interface("bridge", mac="52:54:00:00:00:02", model="e1000", driver_queues=2)
    with pytest.raises(UnsupportedConfig, match="needs model 'virtio'"):
        build_argv(dom(devices=Devices(interfaces=(nic,))), base_ctx(nic_fds={0: NicFds(taps=(30, 31))}))


def test_nic_without_mac_gets_a_stable_one() -> None:
    d = dom(devices=Devices(interfaces=(Interface("user"), Interface("user"))))
    first, second = build_argv(d, base_ctx()), build_argv(d, base_ctx())
    assert first == second
    macs = [dev.split("mac=")[1] for dev in value(first.argv, "-device")]
    assert len(set(macs)) == 2 and all(m.startswith("52:54:00:") for m in macs)
    assert sum("no MAC" in n for n in first.notes) == 2


# -- serial, console, channels ----------------------------------------------


def test_console_alone_makes_serial0() -> None:
    args = argv(dom(devices=Devices(consoles=(CharDev("console", "pty", target_type="serial"),))))
    assert value(args, "-device") == ["isa-serial,chardev=charserial0,id=serial0,index=0"]
    assert "logfile=/var/log/pyvirt/qemu/vm1.serial.log,logappend=on" in value(args, "-chardev")[1]


def test_second_pty_serial_is_a_socket_in_channel_dir() -> None:
    d = dom(devices=Devices(serials=(SERIAL, CharDev("serial", "pty", target_port=1))))
    cmd = build_argv(d, base_ctx())
    chardevs = value(cmd.argv, "-chardev")
    assert chardevs[1].startswith("socket,id=charserial0,path=/run/pyvirt/qemu/")
    assert chardevs[2] == f"socket,id=charserial1,path=/run/pyvirt/qemu/{UUID}.ch/serial1,server=on,wait=off"
    assert any("serial1" in n for n in cmd.notes)


def test_file_serial_and_unix_connect_channel() -> None:
    chan = CharDev("channel", "unix", source_path="/tmp/c.sock", source_mode="connect", target_type="virtio",
                   target_name="x.y")
    d = dom(devices=Devices(serials=(CharDev("serial", "file", source_path="/tmp/s.log"),), channels=(chan,)))
    chardevs = value(argv(d), "-chardev")
    assert "file,id=charserial0,path=/tmp/s.log" in chardevs
    assert "socket,id=charchannel0,path=/tmp/c.sock,server=off" in chardevs


def test_channel_ports_start_at_one_and_skip_taken() -> None:
    chans = (
        CharDev("channel", "unix", target_type="virtio", target_name="a"),
        CharDev("channel", "unix", target_type="virtio", target_name="b",
                address=Address("virtio-serial", (("controller", "0"), ("bus", "0"), ("port", "1")))),
    )
    devs = devices(dom(devices=Devices(channels=chans)))
    assert "virtserialport,bus=virtio-serial0.0,nr=2,chardev=charchannel0,id=channel0,name=a" in devs
    assert "virtserialport,bus=virtio-serial0.0,nr=1,chardev=charchannel1,id=channel1,name=b" in devs


# -- spice and graphics ------------------------------------------------------


def test_spice_without_qemu_support_says_what_to_install() -> None:
    domain, over = CASES["q35_full_spice"](golden_img)
    with pytest.raises(UnsupportedConfig, match="qemu-system-modules-spice"):
        build_argv(domain, base_ctx(**{**over, "has_spice": False}))


def test_spice_parts_need_spice_graphics() -> None:
    redir = dom(devices=Devices(redirdevs=(RedirDev("usb", "spicevmc"),)))
    with pytest.raises(UnsupportedConfig, match="SPICE"):
        argv(redir, has_spice=False)
    with pytest.raises(UnsupportedConfig, match="needs <graphics type='spice'/>"):
        argv(redir, has_spice=True)


def test_spice_audio_without_spice_becomes_none() -> None:
    d = dom(devices=Devices(sounds=(Sound("ich9"),), audios=(Audio(1, "spice"),)))
    cmd = build_argv(d, base_ctx())
    assert value(cmd.argv, "-audiodev") == ['{"id":"audio1","driver":"none"}']
    assert any("SPICE audio" in n for n in cmd.notes)


def test_spice_listen_choices() -> None:
    fixed = dom(devices=Devices(graphics=(Graphics("spice", port=5930, autoport=False),)))
    assert value(argv(fixed, has_spice=True), "-spice") == [
        "port=5930,addr=127.0.0.1,disable-ticketing=on,seamless-migration=on"
    ]
    auto = dom(devices=Devices(graphics=(Graphics("spice", port=-1, autoport=True, passwd="s"),)))
    spice = f"unix=on,addr=/run/pyvirt/qemu/{UUID}.ch/spice.sock,seamless-migration=on"
    assert value(argv(auto, has_spice=True), "-spice") == [spice]


@pytest.mark.parametrize(
    ("graphics", "expect"),
    [
        (Graphics("vnc"), f"unix:/run/pyvirt/qemu/{UUID}.vnc"),
        (Graphics("vnc", socket="/tmp/v,1"), "unix:/tmp/v,,1"),
        (Graphics("vnc", port=5905, listen_address="0.0.0.0"), "0.0.0.0:5"),
        (Graphics("vnc", autoport=True, listen_address="::1", passwd="x"), "[::1]:0,to=99,password=on"),
    ],
)
def test_vnc(graphics: Graphics, expect: str) -> None:
    args = argv(dom(devices=Devices(graphics=(graphics,))))
    assert value(args, "-vnc") == [expect]
    assert "-display" not in args


# -- other devices -----------------------------------------------------------


def test_video_primary_and_secondary() -> None:
    vids = (Video("virtio"), Video("virtio", primary=True))
    assert devices(dom(devices=Devices(videos=vids))) == ["virtio-gpu-pci,id=video0", "virtio-vga,id=video1"]
    assert devices(dom(devices=Devices(videos=(Video("none"),)))) == []
    with pytest.raises(UnsupportedConfig, match="only be the primary"):
        argv(dom(devices=Devices(videos=(Video("virtio"), Video("cirrus")))))


def test_sound_models() -> None:
    assert devices(dom(devices=Devices(sounds=(Sound("ich6"),)))) == [
        "intel-hda,id=sound0", "hda-duplex,id=sound0-codec0,bus=sound0.0,cad=0,audiodev=audio1"
    ]
    with pytest.raises(UnsupportedConfig, match="model 'gus'"):
        argv(dom(devices=Devices(sounds=(Sound("gus"),))))


def test_balloon_none_and_panic_models() -> None:
    assert devices(dom(devices=Devices(memballoon=MemBalloon("none")))) == []
    from pyvirt.model.domain import Panic

    assert devices(dom(devices=Devices(panics=(Panic(),)))) == ["pvpanic,id=panic0"]
    with pytest.raises(UnsupportedConfig, match="panic model 'sparc'"):
        argv(dom(devices=Devices(panics=(Panic("sparc"),))))


def test_device_availability_check() -> None:
    d = dom(devices=Devices(videos=(Video("qxl"),)))
    with pytest.raises(UnsupportedConfig, match="no device 'qxl-vga'"):
        argv(d, devices=frozenset({"virtio-vga", "isa-serial"}))
    assert devices(d, devices=frozenset({"qxl-vga"})) == ["qxl-vga,id=video0"]


def test_unknown_elements_are_errors_not_silently_dropped() -> None:
    with pytest.raises(UnsupportedConfig, match="controller type 'fdc'"):
        argv(dom(devices=Devices(controllers=(Controller("fdc"),))))
    with pytest.raises(UnsupportedConfig, match="graphics type 'sdl'"):
        argv(dom(devices=Devices(graphics=(Graphics("sdl"),))))
    with pytest.raises(UnsupportedConfig, match="character device type 'tcp'"):
        argv(dom(devices=Devices(serials=(CharDev("serial", "tcp"),))))


def test_kvm_domain_under_tcg_gets_a_note() -> None:
    cmd = build_argv(replace(dom(), type="kvm"), base_ctx(accel="tcg"))
    assert any("TCG" in n for n in cmd.notes)
    assert build_argv(replace(dom(), type="kvm"), base_ctx(accel="kvm")).notes == []


# -- meta ----------------------------------------------------------------------

# Model fields the command line does not need, and why. A new model field
# fails test_every_model_field_is_used_or_explained until it is used or listed.
NOT_IN_ARGV = {
    "SecLabel.label": "kept, not enforced (no security driver yet)",
    "SecLabel.imagelabel": "kept, not enforced (no security driver yet)",
    "SecLabel.baselabel": "kept, not enforced (no security driver yet)",
    "Address.attrs": "read through Address.get()",
    "BootLoader.nvram_template": "the daemon copies the template to <nvram> before start",
    "CPU.match": "libvirt CPU comparison policy; no QEMU option",
    "CPU.check": "libvirt CPU check policy; no QEMU option",
    "CPU.migratable": "host-passthrough migratability; QEMU default",
    "CPU.model_fallback": "libvirt model fallback; no QEMU option",
    "CharDev.kind": "the builders know which list a device came from",
    "Domain.title": "metadata",
    "Domain.description": "metadata",
    "Domain.metadata_xml": "metadata",
    "Domain.current_memory_kib": "the daemon sets the balloon target after start",
    "Domain.vcpu_placement": "NUMA placement; not handled",
    "Domain.seclabels": "the process layer's concern",
    "Features.apic": "QEMU's x86 CPUs always have an APIC",
    "Features.pae": "implied by x86_64",
    "ImageLayer.block": "qemu/chains.py picks host_device for it (the backing nodes of a disk)",
    "MemBalloon.stats_period": "the daemon sets guest-stats-polling-interval over QMP",
    "SecLabel.relabel": "the process layer's concern",
    "CpuTune.shares": "a cgroup v2 limit the daemon applies (host/cgroup.py)",
    "CpuTune.period": "a cgroup v2 limit the daemon applies (host/cgroup.py)",
    "CpuTune.quota": "a cgroup v2 limit the daemon applies (host/cgroup.py)",
    "CpuTune.vcpupins": "thread affinity the daemon sets after launch (daemon/vcpus.py)",
    "CpuTune.emulatorpin": "thread affinity the daemon sets after launch (daemon/vcpus.py)",
    "VcpuPin.vcpu": "thread affinity the daemon sets after launch (daemon/vcpus.py)",
    "VcpuPin.cpuset": "thread affinity the daemon sets after launch (daemon/vcpus.py)",
    "MemTune.hard_limit_kib": "a cgroup v2 limit the daemon applies (host/cgroup.py)",
    "MemTune.soft_limit_kib": "a cgroup v2 limit the daemon applies (host/cgroup.py)",
    "BlkioTune.weight": "a cgroup v2 limit the daemon applies (host/cgroup.py)",
    "Domain.cputune": "a cgroup v2 limit the daemon applies (host/cgroup.py)",
    "Domain.memtune": "a cgroup v2 limit the daemon applies (host/cgroup.py)",
    "Domain.blkiotune": "a cgroup v2 limit the daemon applies (host/cgroup.py)",
    "MemoryDevice.label_kib": "nvdimm only, which is refused at start (no file QEMU opens by path)",
    "Vsock.cid": "the daemon reserves the CID on /dev/vhost-vsock (daemon/vsock.py); QEMU gets ctx.vsock",
    "Vsock.cid_auto": "the daemon picks a free CID (daemon/vsock.py)",
    "Domain.resource_partition": "a cgroup the daemon places QEMU in (daemon/tuning.py)",
    "Filesystem.source_dir": "virtiofsd's shared directory (daemon/virtiofs.py)",
    "Filesystem.readonly": "virtiofsd's --readonly (daemon/virtiofs.py)",
    "Filesystem.accessmode": "virtiofsd serves files as their owners: passthrough, the only mode accepted",
    "Filesystem.type": "only 'mount' is accepted",
    "CPU.cache_level": "QEMU emulates level 3 only (validated at define)",
    "TPM.backend_version": "swtpm's --tpm2, which the daemon starts (daemon/swtpm.py)",
    "Graphics.gl_rendernode": "OpenGL is refused at start: no render node is handed to QEMU",
}


def test_every_model_field_is_used_or_explained() -> None:
    import dataclasses
    import inspect
    import re

    import pyvirt.model.domain as model

    source = "".join(p.read_text() for p in (Path(__file__).parents[2] / "src/pyvirt/qemu").glob("argv*.py"))
    missing = []
    for name, cls in inspect.getmembers(model, dataclasses.is_dataclass):
        for f in dataclasses.fields(cls):
            key = f"{name}.{f.name}"
            if key not in NOT_IN_ARGV and not re.search(rf"\.{f.name}\b", source):
                missing.append(key)
    assert missing == [], "model fields the argv builder neither uses nor lists in NOT_IN_ARGV"


def test_incoming_waits_for_the_state_last() -> None:
    """A restore or a migration's destination: `-incoming defer` after everything else, and only then."""
    domain, over = CASES[sorted(CASES)[0]](golden_img)
    plain = build_argv(domain, base_ctx(**over)).argv
    waiting = build_argv(domain, base_ctx(**over, incoming=True)).argv
    assert "-incoming" not in plain
    assert waiting == [*plain, "-incoming", "defer"]
