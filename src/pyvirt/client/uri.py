"""Connection URIs -> the daemon's unix socket.

Accepted forms (libvirt's spellings where they exist)::

    qemu:///system                         /run/pyvirt/pyvirtd.sock
    qemu+unix:///system                    the same
    qemu+unix:///system?socket=/path.sock  that socket (libvirt's form)
    unix:///abs/path/pyvirtd.sock          that socket

Parsed by hand: urllib.parse costs import time on the `pyvirt list` path.
"""
from __future__ import annotations

from ..errors import InvalidArgument

# Mirrors pyvirt.config.SYSTEM_SOCKET / DEFAULT_URI (a unit test checks they agree);
# the client does not import config, which pulls dataclasses, pathlib and tomllib.
SYSTEM_URI = "qemu:///system"
SYSTEM_SOCKET = "/run/pyvirt/pyvirtd.sock"
ENV_DEFAULT_URI = "PYVIRT_DEFAULT_URI"

_FORMS = "qemu:///system, qemu+unix:///system?socket=/PATH or unix:///PATH/pyvirtd.sock"


def default_uri(environ: dict[str, str] | None = None) -> str:
    """The URI used when none is given: $PYVIRT_DEFAULT_URI, else the system daemon."""
    import os

    env = os.environ if environ is None else environ
    return env.get(ENV_DEFAULT_URI) or SYSTEM_URI


def socket_path(uri: str) -> str:
    """The absolute socket path a URI names; InvalidArgument for anything else."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise InvalidArgument(f"connection URI '{uri}' has no scheme; use {_FORMS}")
    path, _, query = rest.partition("?")
    params = _query(uri, query)
    if scheme == "unix":
        if params:
            raise InvalidArgument(f"connection URI '{uri}': unix:// takes no parameters; use unix:///PATH/pyvirtd.sock")
        if not path.startswith("/") or path == "/":
            raise InvalidArgument(f"connection URI '{uri}' needs an absolute socket path, as in unix:///run/pyvirt/pyvirtd.sock")
        return path
    if scheme in ("qemu", "qemu+unix"):
        if path != "/system":
            raise InvalidArgument(
                f"connection URI '{uri}': pyvirt only serves the system instance (qemu:///system); "
                f"there is no session daemon; use {_FORMS}"
            )
        unknown = set(params) - {"socket"}
        if unknown or (scheme == "qemu" and params):
            bad = ", ".join(sorted(unknown or params))
            raise InvalidArgument(
                f"connection URI '{uri}': unsupported parameter(s) {bad}; only qemu+unix:// takes socket=PATH")
        sock = params.get("socket", SYSTEM_SOCKET)
        if not sock.startswith("/"):
            raise InvalidArgument(f"connection URI '{uri}': socket= needs an absolute path")
        return sock
    raise InvalidArgument(f"connection URI '{uri}': unsupported scheme '{scheme}'; use {_FORMS}")


def is_system(uri: str) -> bool:
    """True when the URI names the system daemon's socket (where autostart applies)."""
    try:
        return socket_path(uri) == SYSTEM_SOCKET
    except InvalidArgument:
        return False


def _query(uri: str, query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgument(f"connection URI '{uri}': parameter '{item}' has no value (use name=value)")
        out[key] = unquote(value)
    return out


def unquote(text: str) -> str:
    """Decode %XX escapes (enough for socket paths in URIs)."""
    if "%" not in text:
        return text
    raw = text.encode()
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x25 and _is_hex(raw[i + 1:i + 3]):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode(errors="surrogateescape")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def quote(segment: str) -> str:
    """Percent-encode one path segment (a domain name may hold spaces or '%')."""
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in segment.encode())
