"""Displays: -vnc and -spice, and what a SPICE display's TLS port becomes.

A display listens on a unix socket in the guest's directory (the daemon's and
QEMU's alone) unless the definition gives a listen address or a fixed port.
SPICE's TLS port (``tlsPort``) needs the host's SPICE TLS certificates
(``spice_tls_x509_cert_dir`` in pyvirt.toml, as libvirt's qemu.conf): with
them a TCP display gets ``tls-port`` and the daemon's copy of the certificates
in the guest's directory; without them ``tlsPort='-1'`` (what virt-install
writes) is kept as -1 and a note says why there is no TLS port, and a fixed
tlsPort is refused with the way out. OpenGL (``<gl enable='yes'>``) would need
a host render node handed to QEMU, which pyvirt does not do: refused at start.
"""
from __future__ import annotations

from ..errors import InvalidArgument, UnsupportedConfig
from ..model.domain import Graphics
from .argv_chardev import need_spice
from .argv_common import Build
from .argv_render import Option, Value, escape, kv

TLS_SETTING = "spice_tls_x509_cert_dir"


def graphics_options(b: Build) -> list[Option]:
    out: list[Option] = []
    seen: set[str] = set()
    for g in b.domain.devices.graphics:
        if g.type in seen:
            raise UnsupportedConfig(f"only one <graphics type='{g.type}'> per domain")
        seen.add(g.type)
        if g.type == "vnc":
            out.append(Option("-vnc", _vnc(b, g)))
        elif g.type == "spice":
            need_spice(b, "<graphics type='spice'>")
            out.append(Option("-spice", _spice(b, g)))
        else:
            raise UnsupportedConfig(f"graphics type '{g.type}' is not supported; use vnc or spice")
    if not out:
        out.append(Option("-display", "none"))
    return out


def _vnc(b: Build, g: Graphics) -> str:
    """A unix socket unless a listen address or fixed port is given."""
    password = ",password=on" if g.passwd else ""
    if g.listen_type == "socket" or (g.listen_address is None and (g.port is None or g.port < 0 or g.autoport)):
        return f"unix:{escape(g.socket or b.ctx.vnc_socket)}{password}"
    addr = g.listen_address or "127.0.0.1"
    if ":" in addr:
        addr = f"[{addr}]"
    if g.autoport or g.port is None or g.port < 0:
        return f"{addr}:0,to=99{password}"
    if g.port < 5900:
        raise InvalidArgument(f"VNC port {g.port} is below 5900 (display :0)")
    return f"{addr}:{g.port - 5900}{password}"


def fixed_port(port: int | None, autoport: bool | None) -> int | None:
    """A port the definition fixes (not -1, not 0, not autoport)."""
    return port if port is not None and port > 0 and not autoport else None


def spice_on_tcp(g: Graphics) -> bool:
    """SPICE listens on TCP when a listen address or a fixed port (plain or TLS) is given."""
    if g.listen_type in ("socket", "none"):
        return False
    return (g.listen_address is not None or fixed_port(g.port, g.autoport) is not None
            or fixed_port(g.tls_port, g.autoport) is not None)


def wants_tls(g: Graphics) -> bool:
    """The definition asks for a TLS port (-1: any)."""
    return g.tls_port is not None and g.tls_port != 0


def _spice(b: Build, g: Graphics) -> str:
    """A unix socket in the guest's directory unless a listen address or a fixed port is given (as VNC):
    on TCP every local user could reach the display; the socket is the daemon's (and QEMU's) alone."""
    if g.gl:
        raise UnsupportedConfig(
            "<graphics type='spice'><gl enable='yes'/> (OpenGL) needs a host GPU render node (/dev/dri/renderD*) "
            "handed to QEMU, which pyvirt does not do; remove <gl> or write <gl enable='no'/>")
    tls_props: list[tuple[str, Value]] = []
    if not spice_on_tcp(g):
        where: list[tuple[str, Value]] = [("unix", True), ("addr", g.socket or f"{b.ctx.channel_dir}/spice.sock")]
        if wants_tls(g):
            b.note("SPICE display: no TLS port (tlsPort stays -1): the display is a unix socket of the guest's "
                   "directory, reached through the daemon; TLS applies to a display on a TCP address")
    else:
        plain = fixed_port(g.port, g.autoport)
        if plain is None and (g.port is None or g.port < 0 or g.autoport):
            plain = b.ctx.spice_port
        where = [("port", plain), ("addr", g.listen_address or "127.0.0.1")]
        tls_props = _tls(b, g)
        if plain is None and not tls_props:
            raise InvalidArgument("SPICE display: no port to listen on; give port='-1' autoport='yes'")
    props = where + tls_props + [
        ("disable-ticketing", None if g.passwd else True),
        ("image-compression", g.image_compression),
        ("seamless-migration", True),
    ]
    return kv(None, *props).render()


def _tls(b: Build, g: Graphics) -> list[tuple[str, Value]]:
    if not wants_tls(g):
        return []
    fixed = fixed_port(g.tls_port, g.autoport)
    if b.ctx.spice_tls_dir is None:
        if fixed is not None:
            raise UnsupportedConfig(
                f"SPICE tlsPort='{fixed}' needs SPICE TLS certificates, and none are configured on this host; set "
                f"{TLS_SETTING} in pyvirt.toml (a directory with ca-cert.pem, server-cert.pem and server-key.pem), "
                "or write tlsPort='-1'")
        b.note(f"SPICE display: no TLS port (tlsPort stays -1): no SPICE TLS certificates are configured on this "
               f"host ({TLS_SETTING} in pyvirt.toml); the display is plain TCP")
        return []
    port = fixed if fixed is not None else b.ctx.spice_tls_port
    if port is None:
        raise InvalidArgument("SPICE display: a TLS port is wanted but none was picked; give tlsPort='-1'")
    return [("tls-port", port), ("x509-dir", b.ctx.spice_tls_dir)]
