"""One running QEMU: launching it onto the start's undo stack, and reattaching to it.

``QemuLauncher.launch`` is the QEMU part of a start (argv, spawn, QMP, cont);
every step that made something pushes its undo onto the stack the start owns,
so a failed start leaves no process, socket or file behind. ``Running`` is what
the daemon holds while the guest runs; it is rebuilt by ``reattach`` after a
daemon restart.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import faults
from ..config import Config
from ..errors import HostError, QemuError
from ..host.caps import HostCapabilities
from ..host.qemu_user import QemuIdentity, qemu_identity
from ..model.domain import Domain
from ..qemu import process as qproc
from ..qemu.argv import LaunchContext, NicFds, build_argv
from ..qemu.graphics import apply_passwords
from ..qemu.monitor import Monitor
from . import swtpm, virtiofs, vsock
from .displays import TLS_DIR_NAME, install_tls_certs, live_displays, spice_ports, tls_wanted
from .hostfiles import HostFiles, open_host_files, remove_sockets
from .prechecks import check_socket_paths
from .sealed_images import SealedImages

log = logging.getLogger(__name__)

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Incoming:
    """A start that receives the guest's state instead of booting it (QEMU ``-incoming defer``).

    ``receive`` is awaited with the launched QEMU (paused, waiting) inside the start, before its undo stack
    is popped: it hands QEMU the stream (migrate-incoming) and returns once as much of it is in as the
    caller needs; raising unwinds the whole start (no QEMU, tap or file left). ``reason`` is the domain's
    state reason and event detail afterwards (virsh's ``running (restored)``, ``running (migrated)``).
    ``domain``: the definition to launch instead of the domain's own, i.e. the guest as its first QEMU was
    launched (same devices, same addresses: the incoming state only fits those).
    """

    receive: Callable[[Running], Awaitable[None]]
    reason: str
    domain: Domain | None = None


@dataclass(eq=False)
class Running:
    """A live QEMU process of one domain, and what it was launched with."""

    id: int
    process: qproc.QemuProcess
    monitor: Monitor
    live: Domain
    argv: list[str]
    accel: str
    started: float
    notes: list[str] = field(default_factory=list)
    # intents set by the daemon, read when QEMU reports back
    destroying: bool = False
    end_reason: str = "destroyed"  # what a stop the daemon asked for is recorded as (destroyed, saved)
    rebooting: bool = False
    shutdown_seen: bool = False
    panicked: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def cpu_time_ns(self) -> int:
        """utime + stime of the QEMU process (all its threads)."""
        try:
            with open(f"/proc/{self.process.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            return 0
        return ticks * 1_000_000_000 // CLK_TCK


def launch_context(config: Config, domain: Domain, accel: str, caps: HostCapabilities,
                   nic_fds: dict[int, NicFds] | None = None, files: HostFiles | None = None,
                   tpm_fd: int | None = None, vsock: tuple[int, int] | None = None,
                   incoming: bool = False, fs_fds: dict[int, int] | None = None) -> LaunchContext:
    """Host facts, per-VM paths and the daemon's open files the pure argv builder needs."""
    paths = config.paths
    # TCP ports only for a SPICE display that listens on an address (the default is a unix socket)
    tls_dir = config.settings.spice_tls_x509_cert_dir
    spice_port, spice_tls_port = spice_ports(domain, tls_dir is not None)
    aliases = {m.alias: m.name for m in caps.machine_types if m.alias}
    return LaunchContext(
        qemu_binary=domain.devices.emulator or config.settings.qemu_binary,
        accel=accel,
        qmp_socket=str(paths.qmp_socket(domain.uuid)),
        serial_socket=str(paths.serial_socket(domain.uuid)),
        serial_log=str(paths.serial_log(domain.name)),
        pidfile=str(paths.qemu_pidfile(domain.uuid)),
        vnc_socket=str(paths.vnc_socket(domain.uuid)),
        channel_dir=str(paths.channel_dir(domain.uuid)),
        has_spice=caps.has_spice,
        has_sandbox=caps.has_sandbox and config.settings.sandbox,
        machine_aliases=aliases,
        devices=caps.devices,
        spice_port=spice_port,
        spice_tls_port=spice_tls_port,
        spice_tls_dir=str(paths.vm_dir(domain.uuid) / TLS_DIR_NAME) if tls_dir is not None and tls_wanted(domain)
        else None,
        nic_fds=dict(nic_fds or {}),
        host_paths=dict(files.paths) if files else {},
        add_fds=tuple(files.add_fds) if files else (),
        socket_fds=dict(files.sockets) if files else {},
        tpm_fd=tpm_fd,
        vsock=vsock,
        incoming=incoming,
        fs_fds=dict(fs_fds or {}),
    )


def remove_runtime_files(config: Config, domain: Domain) -> None:
    """The guest's own directory (sockets, pidfile, channels) goes with it, and the sockets the daemon
    bound for it elsewhere; its swtpm ends first (its pid file is in that directory)."""
    swtpm.stop(config, domain.uuid)
    virtiofs.stop(config, domain.uuid)
    shutil.rmtree(config.paths.vm_dir(domain.uuid), ignore_errors=True)
    remove_sockets(domain)


def make_vm_dir(config: Config, domain: Domain, who: QemuIdentity) -> None:
    """The one directory QEMU may write in: 0700, owned by the QEMU user (it binds its sockets there)."""
    vm_dir = config.paths.vm_dir(domain.uuid)
    for parent in vm_dir.parents:
        mode = stat.S_IMODE(os.stat(parent).st_mode)
        if not mode & stat.S_IXOTH:
            raise HostError(f"cannot start domain '{domain.name}': QEMU runs as user '{who.name}', who cannot "
                            f"reach its directory {vm_dir}: {parent} is mode {mode:04o}; make it searchable "
                            f"(chmod o+x {parent})")
    for path in (vm_dir, config.paths.channel_dir(domain.uuid)):
        path.mkdir(mode=0o700)
        os.chown(path, who.uid, who.gid)


def check_sandbox(config: Config, caps: HostCapabilities, name: str) -> None:
    """QEMU's seccomp sandbox is not optional unless the administrator turned it off."""
    if config.settings.sandbox and not caps.has_sandbox:
        raise HostError(
            f"cannot start domain '{name}': this host's QEMU has no seccomp sandbox (-sandbox), which pyvirt "
            f"requires; use a QEMU built with seccomp, or set `sandbox = false` in {config.paths.settings_file} "
            "to run guests without it"
        )


def _log_notes(log_path: Path, name: str, notes: list[str]) -> None:
    """What the argv builder changed or dropped, in the daemon's log and the domain's QEMU log."""
    with open(log_path, "a") as f:
        for note in notes:
            log.info("domain %s: %s", name, note)
            f.write(f"pyvirt: {note}\n")


class QemuLauncher:
    """Starts and finds the QEMU processes of domains (the domain manager's only way to them).

    QEMU runs as the unprivileged QEMU user (host/qemu_user.py) under its seccomp sandbox; the files
    it needs are opened here and passed as fds (daemon/hostfiles.py)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._identity: QemuIdentity | None = None
        self.sealed = SealedImages(config.settings.kernel_cache_mib * 1024 * 1024)

    def identity(self) -> QemuIdentity:
        """Who QEMU runs as (the user is created on first use)."""
        if self._identity is None:
            self._identity = qemu_identity(self.config.settings.qemu_user)
        return self._identity

    def remove_runtime_files(self, domain: Domain) -> None:
        remove_runtime_files(self.config, domain)

    def check_helpers(self, domain: Domain) -> None:
        """Refuse a start whose devices need a helper program this host lacks, naming its package."""
        if domain.devices.tpms and (problem := swtpm.missing(self.config)) is not None:
            raise HostError(f"cannot start domain '{domain.name}': {problem}")
        if (problem := virtiofs.missing(self.config, domain)) is not None:
            raise HostError(f"cannot start domain '{domain.name}': {problem}")
        if (problem := vsock.missing(domain)) is not None:
            raise HostError(f"cannot start domain '{domain.name}': {problem}")

    def forget(self, uuid: str) -> None:
        """At undefine: what the daemon keeps for a domain between starts (its TPM state)."""
        swtpm.forget(self.config, uuid)

    async def launch(self, domain: Domain, *, dom_id: int, accel: str, caps: HostCapabilities, paused: bool,
                     nic_fds: dict[int, NicFds], undo: contextlib.AsyncExitStack,
                     on_spawned: Callable[[int], None] = lambda pid: None, incoming: bool = False) -> Running:
        """Start QEMU for ``domain``; every step that made something pushes its undo onto ``undo``.

        ``undo`` is the start's one stack (the disk and NIC preparers' steps are on it already): the
        caller unwinds it when anything fails and pops it when the start succeeds. ``nic_fds`` are
        the taps the daemon opened; QEMU inherits them (the caller closes its own copies).
        ``incoming``: QEMU starts with ``-incoming defer`` and is left paused whatever ``paused`` says;
        the caller hands it the guest's state (migrate-incoming) and sends ``cont`` itself.
        """
        config = self.config
        check_socket_paths(domain, config.paths)  # QEMU would fail on a long one only after binding its monitor
        check_sandbox(config, caps, domain.name)
        who = await asyncio.to_thread(self.identity)
        files = await asyncio.to_thread(open_host_files, domain, str(config.paths.serial_log(domain.name)),
                                        HostFiles(sealed=self.sealed))
        undo.callback(files.close)
        tpm = swtpm.Swtpm.prepare(config, domain)
        if tpm is not None:
            undo.callback(tpm.close)
        fs = await asyncio.to_thread(virtiofs.Virtiofs.prepare, config, domain)
        if fs is not None:
            undo.callback(fs.close)
        vhost_vsock = await asyncio.to_thread(vsock.open_vsock, domain)
        if vhost_vsock is not None:
            files.fds.append(vhost_vsock[0])  # QEMU inherits it; closed with the other files
        ctx = launch_context(config, domain, accel, caps, nic_fds, files, tpm_fd=tpm.qemu_fd if tpm else None,
                             vsock=vhost_vsock, incoming=incoming, fs_fds=dict(fs.qemu_fds) if fs else None)
        inherited = [fd for fds in ctx.nic_fds.values() for fd in (*fds.taps, *fds.vhost)] + files.fds
        if tpm is not None:
            inherited.append(tpm.qemu_fd)
        if fs is not None:
            inherited += fs.qemu_fds.values()

        command = build_argv(domain, ctx)
        argv, notes = command.argv, list(command.notes)
        remove_runtime_files(config, domain)
        make_vm_dir(config, domain, who)
        undo.callback(remove_runtime_files, config, domain)
        if ctx.spice_tls_dir is not None and config.settings.spice_tls_x509_cert_dir is not None:
            await asyncio.to_thread(install_tls_certs, config.settings.spice_tls_x509_cert_dir,
                                    Path(ctx.spice_tls_dir), who)
        domain = live_displays(domain, ctx)
        if tpm is not None:
            await asyncio.to_thread(tpm.spawn, who)
            if tpm.made_state:  # a first start that fails leaves no TPM state behind
                undo.callback(swtpm.forget, config, domain.uuid)
        if fs is not None:
            await asyncio.to_thread(fs.spawn)
        log_path = config.paths.domain_log(domain.name)
        _log_notes(log_path, domain.name, notes)
        timeout = config.settings.qemu_start_timeout
        proc = await qproc.spawn(
            argv,
            log_path=log_path,
            pidfile=config.paths.qemu_pidfile(domain.uuid),
            qmp_socket=config.paths.qmp_socket(domain.uuid),
            pass_fds=inherited,
            user=(who.uid, who.gid, who.groups),
            timeout=timeout,
            domain=domain,
        )
        files.close()  # QEMU holds its own copies now
        if tpm is not None:
            tpm.close()
        if fs is not None:
            fs.close()
        undo.callback(proc.close)
        undo.push_async_callback(proc.terminate, 2.0)
        on_spawned(proc.pid)
        faults.point("start:spawned")
        monitor = Monitor(domain.name)
        step = "during the QMP handshake"
        try:  # QEMU binds its monitor before it parses the devices: most bad configs fail in here
            await monitor.connect(config.paths.qmp_socket(domain.uuid), timeout=timeout)
            undo.push_async_callback(monitor.close)
            step = "while setting its links"
            for index, nic in enumerate(domain.devices.interfaces):
                if nic.link_state == "down":  # before the guest runs, so it never sees a carrier
                    await monitor.set_link(f"net{index}", False)
            step = "while setting the display passwords"
            await apply_passwords(monitor, domain)  # <graphics passwd>, over QMP before the guest runs
            step = "at cont (starting the guest's CPUs)"
            if not paused and not incoming:
                await monitor.cont()
        except QemuError as exc:
            raise await qproc.start_failed(proc, step, exc, domain) from exc
        return Running(
            id=dom_id, process=proc, monitor=monitor, live=domain, argv=argv, accel=accel,
            started=time.time(), notes=notes,
        )

    async def reattach(self, domain: Domain, *, pid: int, dom_id: int, argv: list[str], accel: str,
                       started: float) -> tuple[Running, str] | None:
        return await reattach(self.config, domain, pid=pid, dom_id=dom_id, argv=argv, accel=accel,
                              started=started)

    def running_qemus(self) -> dict[str, int]:
        """uuid -> pid of every live QEMU this daemon's root started (found in /proc, by the path of its
        monitor socket under our run directory): what an earlier daemon may have left behind."""
        marker = f"path={self.config.paths.qemu_run}/".encode()
        return qproc.qemus_with(marker)

    def remove_stray_dirs(self, owned: set[str]) -> None:
        """Guest directories of no running domain: a daemon killed after a QEMU ended but before its
        directory went (or before a start recorded anything) leaves one behind."""
        with contextlib.suppress(FileNotFoundError):
            for path in self.config.paths.qemu_run.iterdir():
                if path.name not in owned and path.is_dir() and not path.is_symlink():
                    log.info("removing %s: the directory of a guest that is not running", path)
                    shutil.rmtree(path, ignore_errors=True)

    async def end(self, uuid: str, pid: int) -> None:
        """Kill a QEMU of ours that no domain owns (a start the daemon did not finish) and its files."""
        proc = qproc.reattach(pid, uuid)
        if proc is not None:
            await proc.terminate(2.0)
            proc.close()
        swtpm.stop(self.config, uuid)
        virtiofs.stop(self.config, uuid)
        shutil.rmtree(self.config.paths.vm_dir(uuid), ignore_errors=True)


async def reattach(config: Config, domain: Domain, *, pid: int, dom_id: int, argv: list[str], accel: str,
                   started: float) -> tuple[Running, str] | None:
    """Find a QEMU left by an earlier daemon; returns (Running, QEMU run state) or None if it is gone."""
    proc = qproc.reattach(pid, domain.uuid)
    if proc is None:
        return None
    monitor = Monitor(domain.name)
    try:
        await monitor.connect(config.paths.qmp_socket(domain.uuid), timeout=5.0)
        _, status = await monitor.query_status()
    except QemuError:
        log.exception("domain %s: QEMU pid %d is alive but its monitor does not answer; killing it", domain.name, pid)
        await monitor.close()
        await proc.terminate(2.0)
        return None
    running = Running(id=dom_id, process=proc, monitor=monitor, live=domain, argv=argv, accel=accel, started=started)
    return running, status
