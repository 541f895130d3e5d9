"""Settings and every path pyvirt uses.

All paths hang off one root ("/" for the system daemon), so tests run whole
daemons in temporary directories side by side. A unix socket path may not
exceed 107 bytes (sun_path is 108 with its NUL); the daemon checks its root
against that at start (``Paths.check_socket_lengths``) and a domain's own
socket paths before it starts QEMU, so the user reads which path is too long
instead of QEMU's failure to bind it.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidArgument

SYSTEM_SOCKET = "/run/pyvirt/pyvirtd.sock"
DEFAULT_URI = "qemu:///system"
#: The longest path a unix socket can have: sun_path is 108 bytes including the terminating NUL.
UNIX_PATH_MAX = 107
#: The per-VM socket names are this uuid plus a suffix; the longest is the serial socket's.
_SAMPLE_UUID = "00000000-0000-0000-0000-000000000000"


def socket_path_problem(path: str | os.PathLike[str], what: str) -> str | None:
    """None when ``path`` fits a unix socket address; else a sentence naming it and its length."""
    size = len(os.fsencode(path))
    if size <= UNIX_PATH_MAX:
        return None
    return (f"{what} would be {os.fspath(path)} ({size} bytes), over the {UNIX_PATH_MAX} bytes a unix socket "
            "path can have")


@dataclass(frozen=True)
class Paths:
    """Where a daemon keeps its files, all under ``root``."""

    root: Path = Path("/")

    @property
    def etc(self) -> Path:
        return self.root / "etc/pyvirt"

    @property
    def settings_file(self) -> Path:
        return self.etc / "pyvirt.toml"

    @property
    def lib(self) -> Path:
        return self.root / "var/lib/pyvirt"

    @property
    def database(self) -> Path:
        return self.lib / "pyvirt.db"

    @property
    def cache(self) -> Path:
        return self.lib / "cache"

    @property
    def images(self) -> Path:
        return self.lib / "images"

    @property
    def run(self) -> Path:
        return self.root / "run/pyvirt"

    @property
    def socket(self) -> Path:
        return self.run / "pyvirtd.sock"

    @property
    def pidfile(self) -> Path:
        return self.run / "pyvirtd.pid"

    @property
    def qemu_run(self) -> Path:
        """One directory per running guest (see ``vm_dir``)."""
        return self.run / "qemu"

    @property
    def probe_run(self) -> Path:
        """The KVM probe's boot files while it runs; emptied at daemon start (a killed daemon leaves them)."""
        return self.run / "probe"

    @property
    def network_run(self) -> Path:
        """dnsmasq's conf, pid and hosts files of active networks (gone with them)."""
        return self.run / "network"

    @property
    def network_lib(self) -> Path:
        """dnsmasq lease files: kept across network and daemon restarts, so guests keep their addresses."""
        return self.lib / "network"

    @property
    def log(self) -> Path:
        return self.root / "var/log/pyvirt"

    @property
    def daemon_log(self) -> Path:
        return self.log / "pyvirtd.log"

    @property
    def qemu_log(self) -> Path:
        return self.log / "qemu"

    @property
    def tls(self) -> Path:
        """The TLS listener's CA and server certificate, made at its first start (daemon/tlscert.py)."""
        return self.etc / "tls"

    def vm_dir(self, uuid: str) -> Path:
        """A running guest's own directory (0700, owned by the QEMU user): the only place QEMU may create
        files (its QMP, serial and VNC sockets, pidfile, channels); everything else it gets as fds."""
        return self.qemu_run / uuid

    def qmp_socket(self, uuid: str) -> Path:
        return self.vm_dir(uuid) / "qmp"

    def serial_socket(self, uuid: str) -> Path:
        return self.vm_dir(uuid) / "serial"

    def qemu_pidfile(self, uuid: str) -> Path:
        return self.vm_dir(uuid) / "pid"

    def vnc_socket(self, uuid: str) -> Path:
        return self.vm_dir(uuid) / "vnc"

    def channel_dir(self, uuid: str) -> Path:
        """Unix channels (guest agent) given without a path."""
        return self.vm_dir(uuid) / "ch"

    def swtpm_state(self, uuid: str) -> Path:
        """A guest's TPM state (swtpm's files): kept across starts, removed at undefine; private to the QEMU user."""
        return self.lib / "swtpm" / uuid

    def helper_dir(self, uuid: str) -> Path:
        """pids and start times of a running guest's helper processes (swtpm, virtiofsd): the daemon's alone,
        never in the guest's directory, which QEMU could write (the daemon signals these pids)."""
        return self.run / "helpers" / uuid

    def swtpm_pidfile(self, uuid: str) -> Path:
        return self.helper_dir(uuid) / "swtpm.pid"

    def domain_log(self, name: str) -> Path:
        return self.qemu_log / f"{name}.log"

    def serial_log(self, name: str) -> Path:
        return self.qemu_log / f"{name}.serial.log"

    def check_socket_lengths(self) -> None:
        """Refuse a root under which the daemon's socket or a guest's sockets would not fit.

        Checked before anything is made under the root; the message names the longest
        path and the longest root that works.
        """
        # the longest first, so the root length the message advises fits every socket
        for what, path in (("a guest's serial socket", self.serial_socket(_SAMPLE_UUID)),
                           ("the daemon's API socket", self.socket)):
            problem = socket_path_problem(path, what)
            if problem is not None:
                over = len(os.fsencode(path)) - UNIX_PATH_MAX
                longest = len(os.fsencode(self.root)) - over
                raise InvalidArgument(f"root {self.root} is too long: {problem}; use a --root of at most "
                                      f"{longest} bytes")

    def make_dirs(self) -> None:
        """The daemon's directories. It runs with umask 077, so they are private unless they must not be:
        run/ is searchable (clients reach the socket by path, dnsmasq its files below network/), and
        qemu/ is searchable by the QEMU user, who owns only its guest's directory inside."""
        _searchable_parents(self.run)
        for path in (self.etc, self.lib, self.cache, self.images, self.run, self.qemu_run, self.log, self.qemu_log):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.run, 0o755)
        os.chmod(self.qemu_run, 0o711)
        for private in (self.lib, self.log, self.qemu_log):  # definitions, passwords, guests' output
            os.chmod(private, 0o700)


def _searchable_parents(path: Path) -> None:
    """Create the missing parents of ``path`` searchable by all (0755), as /run is on a host."""
    missing = [p for p in reversed(path.parents) if not p.exists()]
    for parent in missing:
        parent.mkdir(mode=0o755, exist_ok=True)
        os.chmod(parent, 0o755)  # mkdir's mode passes through the umask


@dataclass(frozen=True)
class Settings:
    """Optional settings from pyvirt.toml; every key has a working default."""

    qemu_binary: str = "/usr/bin/qemu-system-x86_64"
    qemu_img: str = "/usr/bin/qemu-img"
    # A healthy KVM finishes the probe boot in ~50 ms; a PVM host here needs 3.4 s and then hangs
    # real guests, so a short timeout is the safe side.
    kvm_probe_timeout: float = 1.5
    # Seconds QEMU may take to open its QMP socket, and then to greet on it, at a start.
    qemu_start_timeout: float = 10.0
    shutdown_timeout: float = 0.0
    # libvirt's `default` NAT network (virbr0, 192.168.122.0/24) is defined at the first start
    default_network: bool = True
    dnsmasq_binary: str = "/usr/sbin/dnsmasq"
    nft_binary: str = "/usr/sbin/nft"
    log_level: str = "info"
    # QEMU runs as this user (created at the daemon's first start if missing; never root) with group kvm
    qemu_user: str = "pyvirt-qemu"
    # QEMU's seccomp filter (-sandbox); a host without seccomp refuses to start guests unless this is false
    sandbox: bool = True
    # QEMU binaries a domain's <emulator> may name, besides qemu_binary
    emulators: tuple[str, ...] = ()
    # the daemon's log rotates at this size, keeping this many old files (as virtlogd's defaults)
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    # a guest's serial log: NAME.serial.log rotates at this size, keeping NAME.serial.log.1 .. .N
    serial_log_max_bytes: int = 2 * 1024 * 1024
    serial_log_backups: int = 2
    # events per domain written to the store and the log, per second (a burst of 10x passes);
    # clients streaming events get them all
    events_per_second: float = 10.0
    # sealed copies of kernels, initrds and BIOS ROMs kept between starts (MiB; 0: copy at every start)
    kernel_cache_mib: int = 256
    # SPICE TLS (libvirt's qemu.conf spice_tls_x509_cert_dir): a directory with ca-cert.pem, server-cert.pem and
    # server-key.pem; unset, a spice display gets no TLS port (tlsPort='-1' stays -1, and a note says so)
    spice_tls_x509_cert_dir: str | None = None
    # helper programs some devices need; a missing one fails the start naming its Debian package
    swtpm_binary: str = "/usr/bin/swtpm"
    # remote access (pyvirt+tls://): a TCP listener, off unless set here or with `pyvirtd --listen`;
    # ADDR:PORT, e.g. "0.0.0.0:16514". Without tls_cert/tls_key (PEM files), a CA and a server
    # certificate are made under etc/pyvirt/tls at the first start; clients pin its fingerprint.
    listen: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    virtiofsd_binary: str | None = None  # None: Debian's virtiofsd package, else qemu-system-common's copy
    # [ksm]: mode (unmanaged | off | on | auto | advisor) and ksmtuned's settings (daemon/ksm.py)
    ksm: dict[str, object] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Settings:
        if not path.exists():
            return cls()
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgument(f"settings file {path} is not valid TOML: {exc}; fix or remove it") from exc
        known = {k: data.pop(k) for k in list(data) if k in cls.__dataclass_fields__ and k != "extra"}
        if "emulators" in known:
            known["emulators"] = tuple(known["emulators"])
        return cls(**known, extra=data)


@dataclass(frozen=True)
class Config:
    paths: Paths
    settings: Settings

    @classmethod
    def for_root(cls, root: str | os.PathLike[str] = "/") -> Config:
        paths = Paths(Path(root).resolve())
        return cls(paths, Settings.load(paths.settings_file))
