"""Domain + LaunchContext -> QEMU command line. Generate, then execute.

``build_argv`` is a pure function: no I/O, no filesystem checks, no
subprocess. It builds the command as data (``Option`` values from many small
builders, one per part of the domain) and renders it in a fixed order, so the
same input always gives the same argv (tests compare it with golden files).
Taps, fds, files and spawning belong to the caller.

The guest starts paused (``-S``): the daemon connects to QMP at
``ctx.qmp_socket``, finishes setup (set_link for links that start down,
set_password for graphics with a password, balloon target for
currentMemory, balloon stats period) and sends ``cont``. A restore or a
migration's destination adds ``-incoming defer``: ``cont`` waits until the
daemon has handed QEMU the guest's state.

Lifecycle mapping (on_poweroff / on_reboot / on_crash and the watchdog):

* on_reboot=restart: QEMU resets the guest itself (QEMU's default).
  on_reboot=destroy: ``-no-reboot`` - a guest reboot becomes a shutdown, so
  QEMU emits SHUTDOWN (reason guest-reset) and exits.
* Always ``-action shutdown=pause`` (libvirt's -no-shutdown): after a guest
  power-off QEMU stays, stopped, and the daemon decides: ``quit`` for
  on_poweroff=destroy, ``system_reset`` + ``cont`` for restart and for an
  ACPI ``pyvirt reboot`` (no new process), nothing for preserve.
* on_crash=destroy: ``-action panic=shutdown``: QEMU emits GUEST_PANICKED
  (action poweroff), then exits. Every other on_crash value (restart,
  preserve, coredump-destroy, coredump-restart): ``-action panic=pause``:
  QEMU emits GUEST_PANICKED (action pause) and stops the vCPUs; the daemon
  then dumps, resets (system_reset + cont) or leaves it as asked. The guest
  can only report a panic with a panic device (<panic model='isa'/>).
* <watchdog action=...>: ``-action watchdog=...`` with the same word; 'dump'
  runs as 'pause' (QEMU has no dump action; the daemon may dump on the
  WATCHDOG event).
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidArgument, UnsupportedConfig
from ..model.domain import Domain
from .argv_chardev import chardev_options
from .argv_common import Build, LaunchContext, Machine, NicFds, QemuCommand
from .argv_controllers import controller_options
from .argv_cpu import cpu_options
from .argv_devices import (
    balloon_options,
    input_options,
    interface_options,
    panic_options,
    redirdev_options,
    rng_options,
    sound_options,
    video_options,
    watchdog_options,
)
from .argv_disks import DiskNames, disk_names, disk_options
from .argv_fs import fs_options
from .argv_graphics import graphics_options
from .argv_memory import machine_ram_backend, memory_options
from .argv_platform import iommu_irqchip, iommu_options, vsock_options
from .argv_render import Option, Value, kv, render
from .argv_tpm import tpm_options

__all__ = ["DiskNames", "LaunchContext", "NicFds", "QemuCommand", "build_argv", "disk_names", "resolve_machine"]

SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
BOOT_DEVS = {"hd": "c", "cdrom": "d", "network": "n", "fd": "a"}
WATCHDOG_ACTIONS = {
    "reset": "reset",
    "shutdown": "shutdown",
    "poweroff": "poweroff",
    "pause": "pause",
    "none": "none",
    "inject-nmi": "inject-nmi",
    "dump": "pause",
}
ON_CRASH = ("destroy", "restart", "preserve", "coredump-destroy", "coredump-restart")


def build_argv(domain: Domain, ctx: LaunchContext) -> QemuCommand:
    """The full QEMU argv (binary first) for ``domain``, plus notes for the user.

    Raises UnsupportedConfig / InvalidArgument for what QEMU could not run, with
    the reason and the way out, before anything is started.
    """
    if ctx.accel not in ("kvm", "tcg"):
        raise InvalidArgument(f"accelerator '{ctx.accel}' is not kvm or tcg")
    b = Build(domain, ctx, resolve_machine(domain, ctx))
    options: list[Option] = []
    for part in PARTS:
        options += part(b)
    _check_devices(b, options)
    return QemuCommand([ctx.qemu_binary] + render(options), list(b.notes))


def resolve_machine(domain: Domain, ctx: LaunchContext) -> Machine:
    """Machine family and the -machine name; q35 when the domain names none."""
    os_ = domain.os
    if os_.type != "hvm":
        raise UnsupportedConfig(f"domain {domain.name}: OS type '{os_.type}' is not supported; use hvm")
    if os_.arch not in ("x86_64", "i686"):
        raise UnsupportedConfig(f"domain {domain.name}: architecture '{os_.arch}' is not supported; use x86_64")
    name = os_.machine or "q35"
    resolved = ctx.machine_aliases.get(name, name)
    family = machine_family(resolved)
    if family is None:
        raise UnsupportedConfig(
            f"domain {domain.name}: machine type '{name}' is not supported; use q35, pc or microvm"
        )
    return Machine(family, resolved)


def machine_family(machine: str) -> str | None:
    """'q35', 'pc' or 'microvm' for a machine type name (versioned or alias); None if unsupported."""
    if machine == "microvm":
        return "microvm"
    if machine == "q35" or machine.startswith("pc-q35-"):
        return "q35"
    if machine == "pc" or machine.startswith(("pc-i440fx-", "pc-")):
        return "pc"
    return None


def _identity(b: Build) -> list[Option]:
    d = b.domain
    return [
        Option("-name", kv(None, ("guest", d.name), ("debug-threads", True))),
        Option("-uuid", d.uuid),
        Option("-S"),
        Option("-no-user-config"),
        Option("-nodefaults"),
        Option("-msg", "timestamp=on"),
        Option("-pidfile", b.ctx.pidfile),
    ]


def _monitor(b: Build) -> list[Option]:
    sock = kv("socket", ("id", "charmonitor"), ("path", b.ctx.qmp_socket), ("server", True), ("wait", False))
    return [
        Option("-chardev", sock),
        Option("-mon", kv(None, ("chardev", "charmonitor"), ("id", "monitor"), ("mode", "control"))),
    ]


def _hpet_off(b: Build) -> bool:
    clock = b.domain.clock
    return clock is not None and any(t.name == "hpet" and t.present is False for t in clock.timers)


def _machine(b: Build) -> list[Option]:
    f = b.domain.features
    m = b.machine
    loader = b.domain.os.loader
    smm = f.smm
    if loader is not None and loader.secure:
        if smm is False:
            raise InvalidArgument("secure boot (<loader secure='yes'>) needs SMM; remove <smm state='off'/>")
        smm = True
    props: list[tuple[str, Value]] = [("acpi", None if f.acpi else False)]
    if m.family == "microvm":
        has_serial = bool(b.domain.devices.serials or b.domain.devices.consoles)
        props.append(("isa-serial", has_serial))
        if f.vmport is not None:
            raise UnsupportedConfig("machine 'microvm' has no vmport; remove <vmport/>")
    else:
        props += [("vmport", f.vmport), ("hpet", False if _hpet_off(b) else None)]
    props.append(("smm", smm))
    if (irqchip := iommu_irqchip(b)) is not None:
        props.append(("kernel-irqchip", irqchip))
    elif f.ioapic_driver is not None:
        if m.family != "q35":
            raise UnsupportedConfig(f"<ioapic driver='{f.ioapic_driver}'> needs machine type q35")
        if b.ctx.accel == "kvm":
            props.append(("kernel-irqchip", "on" if f.ioapic_driver == "kvm" else "split"))
        else:
            b.note(f"<ioapic driver='{f.ioapic_driver}'> is a KVM setting; under TCG QEMU emulates the I/O APIC")
    backing = b.domain.memory_backing
    if backing is not None:  # KSM may merge guest RAM unless <nosharepages/>; huge pages come from _memory's backend
        props += [("mem-merge", False if backing.nosharepages else None),
                  ("memory-backend", machine_ram_backend(b.domain))]
    out = [Option("-machine", kv(m.type, *props)), Option("-accel", b.ctx.accel)]
    if f.vmcoreinfo:  # the guest kernel's crash-dump notes, for dump-guest-memory
        out.append(Option("-device", kv("vmcoreinfo")))
    if m.family == "microvm":
        out.append(Option("-global", "virtio-mmio.force-legacy=false"))
    emulator = b.domain.devices.emulator
    if emulator and emulator != b.ctx.qemu_binary:
        b.note(f"<emulator>{emulator}</emulator> is not used: this host runs {b.ctx.qemu_binary}")
    if b.domain.type == "kvm" and b.ctx.accel == "tcg":
        b.note("domain type kvm runs under TCG emulation here (no usable KVM): expect it to be slower")
    return out


def _smp(b: Build) -> list[Option]:
    d = b.domain
    current = d.vcpu_current if d.vcpu_current is not None else d.vcpus
    if not 1 <= current <= d.vcpus:
        raise InvalidArgument(f"domain {d.name}: current vCPUs ({current}) must be between 1 and {d.vcpus}")
    topo = d.cpu.topology if d.cpu else None
    props: list[tuple[str, Value]] = [("maxcpus", d.vcpus if (current != d.vcpus or topo) else None)]
    if topo is not None:
        total = topo.sockets * topo.dies * topo.cores * topo.threads
        if total != d.vcpus:
            raise InvalidArgument(
                f"CPU topology sockets*dies*cores*threads = {total} does not match <vcpu>{d.vcpus}</vcpu>"
            )
        props += [("sockets", topo.sockets), ("dies", topo.dies), ("cores", topo.cores), ("threads", topo.threads)]
    return [Option("-smp", kv(str(current), *props))]


def _firmware(b: Build) -> list[Option]:
    os_ = b.domain.os
    loader = os_.loader
    if loader is None:
        if os_.firmware is not None:
            raise UnsupportedConfig(
                f"<os firmware='{os_.firmware}'> (automatic firmware selection) is not supported; "
                "give <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader> and <nvram>"
            )
        return []
    if loader.type in (None, "rom"):
        return [Option("-bios", b.host_path(loader.path))]
    if loader.type != "pflash":
        raise UnsupportedConfig(f"loader type '{loader.type}' is not supported; use pflash or rom")
    if b.microvm:
        raise UnsupportedConfig("machine 'microvm' has no flash for UEFI; use q35")
    readonly = loader.readonly if loader.readonly is not None else True
    code = kv(None, ("if", "pflash"), ("format", "raw"), ("unit", 0), ("readonly", readonly),
              ("file", b.host_path(loader.path)))
    out = [Option("-drive", code)]
    if loader.nvram:
        nvram = kv(None, ("if", "pflash"), ("format", "raw"), ("unit", 1), ("file", b.host_path(loader.nvram)))
        out.append(Option("-drive", nvram))
    else:
        b.note("UEFI loader without <nvram>: firmware settings (boot entries) are not kept")
    if loader.secure:
        out.append(Option("-global", "driver=cfi.pflash01,property=secure,value=on"))
    return out


def _clock(b: Build) -> list[Option]:
    clock = b.domain.clock
    if clock is None:
        return []
    if clock.offset not in ("utc", "localtime"):
        raise UnsupportedConfig(f"clock offset '{clock.offset}' is not supported; use utc or localtime")
    driftfix = None
    out: list[Option] = []
    for timer in clock.timers:
        if timer.name == "rtc" and timer.tickpolicy == "catchup":
            driftfix = "slew"
        elif timer.name == "pit" and timer.tickpolicy == "delay":
            if b.ctx.accel == "kvm":
                out.append(Option("-global", "kvm-pit.lost_tick_policy=delay"))
        elif timer.name == "hpet" and timer.present is False:
            if b.microvm:
                b.note("machine 'microvm' has no HPET; <timer name='hpet' present='no'/> needs nothing")
        elif timer.name in ("hypervclock", "kvmclock"):
            continue  # CPU properties: argv_cpu.accel_props
        elif timer.tickpolicy is not None or timer.present is not None:
            b.note(f"timer '{timer.name}' settings are not applied (QEMU's defaults are used)")
    return [Option("-rtc", kv(None, ("base", clock.offset), ("driftfix", driftfix)))] + out


def _power_management(b: Build) -> list[Option]:
    """<pm>: S3/S4 are properties of the chipset's power-management device."""
    pm = b.domain.pm
    if pm is None or (pm.suspend_to_mem is None and pm.suspend_to_disk is None):
        return []
    owner = {"q35": "ICH9-LPC", "pc": "PIIX4_PM"}.get(b.machine.family)
    if owner is None:
        b.note("machine 'microvm' has no ACPI sleep states; <pm> is not applied")
        return []
    out = []
    for state, enabled in (("s3", pm.suspend_to_mem), ("s4", pm.suspend_to_disk)):
        if enabled is not None:
            out.append(Option("-global", f"{owner}.disable_{state}={0 if enabled else 1}"))
    return out


def action_options(b: Build) -> list[Option]:
    """-no-reboot and -action: see the module docstring for the mapping."""
    d = b.domain
    if d.on_reboot not in ("restart", "destroy"):
        raise UnsupportedConfig(f"on_reboot '{d.on_reboot}' is not supported; use restart or destroy")
    if d.on_poweroff not in ("destroy", "restart", "preserve"):
        raise UnsupportedConfig(f"on_poweroff '{d.on_poweroff}' is not supported; use destroy, restart or preserve")
    if d.on_crash not in ON_CRASH:
        raise UnsupportedConfig(f"on_crash '{d.on_crash}' is not supported; use one of {', '.join(ON_CRASH)}")
    out = [Option("-no-reboot")] if d.on_reboot == "destroy" else []
    actions: list[tuple[str, Value]] = [
        ("shutdown", "pause"),
        ("panic", "shutdown" if d.on_crash == "destroy" else "pause"),
    ]
    wd_actions = {wd.action or "reset" for wd in d.devices.watchdogs}
    if len(wd_actions) > 1:
        raise UnsupportedConfig("all watchdogs of a domain must have the same action (QEMU has one)")
    for act in wd_actions:
        if act not in WATCHDOG_ACTIONS:
            raise UnsupportedConfig(
                f"watchdog action '{act}' is not supported; use one of {', '.join(WATCHDOG_ACTIONS)}")
        if act == "dump":
            b.note("watchdog action 'dump' runs as 'pause' (the guest stops when the watchdog fires)")
        actions.append(("watchdog", WATCHDOG_ACTIONS[act]))
    out.append(Option("-action", kv(None, *actions)))
    return out


def _boot(b: Build) -> list[Option]:
    os_ = b.domain.os
    d = b.domain.devices
    per_device = any(x.boot_order is not None for x in d.disks) or any(
        x.boot_order is not None for x in d.interfaces
    )
    if per_device and os_.boot:
        raise InvalidArgument("per-device <boot order=.../> cannot be combined with <os><boot dev=.../>; use one")
    out: list[Option] = []
    order = None
    if os_.boot:
        try:
            order = "".join(BOOT_DEVS[dev] for dev in os_.boot)
        except KeyError as exc:
            raise UnsupportedConfig(f"boot device '{exc.args[0]}' is unknown; use hd, cdrom, network or fd") from None
    if order or os_.bootmenu is not None:
        out.append(Option("-boot", kv(None, ("order", order), ("menu", os_.bootmenu))))
    if os_.initrd and not os_.kernel:
        raise InvalidArgument("<initrd> needs <kernel>")
    if os_.cmdline and not os_.kernel:
        raise InvalidArgument("<cmdline> needs <kernel>")
    if os_.kernel:
        out.append(Option("-kernel", b.host_path(os_.kernel)))
        if os_.initrd:
            out.append(Option("-initrd", b.host_path(os_.initrd)))
        if os_.cmdline:
            out.append(Option("-append", os_.cmdline))
    return out


def _sandbox(b: Build) -> list[Option]:
    return [Option("-sandbox", SANDBOX)] if b.ctx.has_sandbox else []


def _incoming(b: Build) -> list[Option]:
    """A guest that continues from a saved or migrating state: QEMU stays paused until the daemon hands it
    the stream (migrate-incoming) and sends ``cont``."""
    return [Option("-incoming", "defer")] if b.ctx.incoming else []


def _passed_fds(b: Build) -> list[Option]:
    """The daemon's open files, each put into its fd set before any option names /dev/fdset/N."""
    return [Option("-add-fd", kv(None, ("fd", a.fd), ("set", a.set), ("opaque", a.opaque))) for a in b.ctx.add_fds]


def _check_devices(b: Build, options: list[Option]) -> None:
    if not b.ctx.devices:
        return
    for opt in options:
        drv = opt.device_driver
        if drv is not None and drv not in b.ctx.devices:
            raise UnsupportedConfig(
                f"this host's QEMU ({b.ctx.qemu_binary}) has no device '{drv}'; "
                "change the domain's device model or install the QEMU module that provides it"
            )


PARTS: tuple[Callable[[Build], list[Option]], ...] = (
    _identity,
    _passed_fds,
    _monitor,
    _machine,
    cpu_options,
    memory_options,
    _smp,
    _firmware,
    _clock,
    _power_management,
    action_options,
    _boot,
    iommu_options,
    controller_options,
    disk_options,
    interface_options,
    chardev_options,
    input_options,
    graphics_options,
    sound_options,
    video_options,
    redirdev_options,
    balloon_options,
    rng_options,
    watchdog_options,
    panic_options,
    tpm_options,
    vsock_options,
    fs_options,
    _sandbox,
    _incoming,
)
