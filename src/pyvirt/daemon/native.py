"""domxml-to-native: the QEMU command line a start of a domain XML would run, with nothing started.

virsh's ``domxml-to-native qemu-argv FILE``. The XML is checked as ``define``
checks it, the accelerator and machine aliases come from this host's
capabilities, and the files and taps the daemon would open are only planned:
their descriptors are numbered from FIRST_FD in the order a start opens them
(taps, then disks, firmware, kernel, logs), so the output is the same on every
run and on every host with the same capabilities. Nothing is opened, bound,
created or recorded.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..config import Config
from ..host.caps import HostCapabilities
from ..model.domain import Domain
from ..model.domain_xml import parse_domain_xml
from ..model.ids import normalize
from ..qemu.argv import LaunchContext, NicFds, QemuCommand, build_argv
from . import prechecks
from .hostfiles import PlannedFiles, open_host_files
from .hostinfo import HostService
from .runner import launch_context

FIRST_FD = 100  # stands for "a descriptor the daemon opened"; real starts get whatever the kernel gives
SPICE_PORT = 5900  # stands for the free port a real start picks for a listening SPICE display


@dataclass(frozen=True)
class NativeCommand:
    """What virsh prints for domxml-to-native: the variables a start sets for QEMU (none today: QEMU keeps
    the daemon's environment) and its argv, plus pyvirt's notes."""

    env: tuple[tuple[str, str], ...]
    argv: list[str]
    notes: list[str]


def planned_nic_fds(domain: Domain, first_fd: int) -> tuple[dict[int, NicFds], int]:
    """Stand-in tap (and vhost-net) fds for every NIC that is not user networking; the next free number."""
    fds: dict[int, NicFds] = {}
    nxt = first_fd
    for i, nic in enumerate(domain.devices.interfaces):
        if nic.type == "user":
            continue
        queues = nic.driver_queues or 1
        taps = tuple(range(nxt, nxt + queues))
        nxt += queues
        vhost: tuple[int, ...] = ()
        if nic.driver_name == "vhost":
            vhost = tuple(range(nxt, nxt + queues))
            nxt += queues
        fds[i] = NicFds(taps, vhost)
    return fds, nxt


def planned_command(config: Config, domain: Domain, accel: str, caps: HostCapabilities) -> QemuCommand:
    """The argv of a start of ``domain`` with every host file and tap planned, none opened."""
    return build_argv(domain, with_planned_files(launch_context(config, domain, accel, caps), domain))


def with_planned_files(ctx: LaunchContext, domain: Domain) -> LaunchContext:
    """``ctx`` with stand-ins for what a start opens (taps, files) and the free SPICE port it picks."""
    nic_fds, nxt = planned_nic_fds(domain, FIRST_FD)
    files = open_host_files(domain, ctx.serial_log, PlannedFiles(nxt))
    return replace(ctx, nic_fds=nic_fds, host_paths=dict(files.paths), add_fds=tuple(files.add_fds),
                   socket_fds=dict(files.sockets),
                   spice_port=SPICE_PORT if ctx.spice_port is not None else None)


class NativeArgv:
    """The daemon's domxml-to-native: parse and check as define does, then plan a start."""

    def __init__(self, config: Config, host: HostService) -> None:
        self.config = config
        self.host = host

    async def qemu_argv(self, xml: str) -> NativeCommand:
        domain = normalize(parse_domain_xml(xml))
        settings = self.config.settings
        prechecks.check_emulator(domain, (settings.qemu_binary, *settings.emulators), self.config.paths.settings_file)
        caps = await self.host.capabilities()
        accel = self.host.accel_for(domain, caps, check=False)
        command = planned_command(self.config, domain, accel, caps)
        return NativeCommand(env=(), argv=command.argv, notes=command.notes)
