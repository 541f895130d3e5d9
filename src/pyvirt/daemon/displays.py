"""The host side of a guest's displays: TCP ports picked for autoport, SPICE TLS certificates.

QEMU may open no host file by path; spice-server reads its TLS certificates
by path only, so the daemon copies the configured ones into the guest's own
directory (owned by the QEMU user, 0700; the files 0400) and QEMU reads them
there. They go with that directory when the guest stops.
"""
from __future__ import annotations

import os
import shutil
import socket
from dataclasses import replace
from pathlib import Path

from ..errors import HostError
from ..host.qemu_user import QemuIdentity
from ..model.domain import Domain
from ..qemu.argv_common import LaunchContext
from ..qemu.argv_graphics import TLS_SETTING, fixed_port, spice_on_tcp, wants_tls

TLS_FILES = ("ca-cert.pem", "server-cert.pem", "server-key.pem")
TLS_DIR_NAME = "spice-tls"


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spice_ports(domain: Domain, tls_configured: bool) -> tuple[int | None, int | None]:
    """(plain, TLS) ports to pick for a SPICE display on TCP that leaves them to autoport."""
    plain = tls = None
    for g in domain.devices.graphics:
        if g.type != "spice" or not spice_on_tcp(g):
            continue
        if fixed_port(g.port, g.autoport) is None and (g.port is None or g.port < 0 or g.autoport):
            plain = free_tcp_port()
        if tls_configured and wants_tls(g) and fixed_port(g.tls_port, g.autoport) is None:
            tls = free_tcp_port()
    return plain, tls


def tls_wanted(domain: Domain) -> bool:
    """A SPICE display on TCP asks for a TLS port (-1 or fixed)."""
    return any(g.type == "spice" and spice_on_tcp(g) and wants_tls(g) for g in domain.devices.graphics)


def tls_problem(cert_dir: str) -> str | None:
    """Why the configured certificate directory cannot serve (None: it can)."""
    missing = [name for name in TLS_FILES if not os.path.isfile(os.path.join(cert_dir, name))]
    if missing:
        return (f"{TLS_SETTING} = {cert_dir!r} in pyvirt.toml lacks {', '.join(missing)}; "
                f"put {', '.join(TLS_FILES)} there, or remove the setting")
    return None


def install_tls_certs(cert_dir: str, dest: Path, who: QemuIdentity) -> None:
    """Copy the SPICE TLS certificates where QEMU (as ``who``) reads them: ``dest``, 0700, files 0400."""
    problem = tls_problem(cert_dir)
    if problem is not None:
        raise HostError(f"cannot give SPICE its TLS certificates: {problem}")
    dest.mkdir(mode=0o700)
    os.chown(dest, who.uid, who.gid)
    for name in TLS_FILES:
        target = dest / name
        try:
            shutil.copyfile(os.path.join(cert_dir, name), target)
        except OSError as exc:
            raise HostError(f"cannot copy SPICE TLS file {name} from {cert_dir}: {exc.strerror}") from exc
        os.chmod(target, 0o400)
        os.chown(target, who.uid, who.gid)


def live_displays(domain: Domain, ctx: LaunchContext) -> Domain:
    """The domain with the ports its SPICE display got at this start (live XML shows them, as libvirt's)."""
    graphics = []
    changed = False
    for g in domain.devices.graphics:
        if g.type == "spice" and spice_on_tcp(g):
            port = ctx.spice_port if ctx.spice_port is not None and fixed_port(g.port, g.autoport) is None else g.port
            tls = g.tls_port
            if ctx.spice_tls_dir is not None and ctx.spice_tls_port is not None and wants_tls(g) \
                    and fixed_port(g.tls_port, g.autoport) is None:
                tls = ctx.spice_tls_port
            if (port, tls) != (g.port, g.tls_port):
                g = replace(g, port=port, tls_port=tls)
                changed = True
        graphics.append(g)
    if not changed:
        return domain
    return replace(domain, devices=replace(domain.devices, graphics=tuple(graphics)))
