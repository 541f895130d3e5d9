"""Connection URIs -> the daemon's unix socket.

Accepted forms (libvirt's spellings where they exist)::

    qemu:///system                         /run/pyvirt/pyvirtd.sock
    qemu+unix:///system                    the same
    qemu+unix:///system?socket=/path.sock  that socket (libvirt's form)
    unix:///abs/path/pyvirtd.sock          that socket

and a daemon on another host (client/remote.py; ``qemu+ssh``/``qemu+tls`` with path /system too)::

    pyvirt+ssh://[user@]host[:port]/[?socket=PATH&keyfile=PATH&known_hosts=PATH&no_tty=1]
    pyvirt+tls://host[:port]/[?token_file=PATH]

Parsed by hand: urllib.parse costs import time on the `pyvirt list` path.
"""
from __future__ import annotations

from ..errors import InvalidArgument

# Mirrors pyvirt.config.SYSTEM_SOCKET / DEFAULT_URI (a unit test checks they agree);
# the client does not import config, which pulls dataclasses, pathlib and tomllib.
SYSTEM_URI = "qemu:///system"
SYSTEM_SOCKET = "/run/pyvirt/pyvirtd.sock"
ENV_DEFAULT_URI = "PYVIRT_DEFAULT_URI"

_FORMS = ("qemu:///system, qemu+unix:///system?socket=/PATH, unix:///PATH/pyvirtd.sock, "
          "pyvirt+ssh://[USER@]HOST[:PORT]/ or pyvirt+tls://HOST[:PORT]/")
#: The TCP port of pyvirtd's TLS listener when a URI names none (libvirtd's TLS port).
TLS_PORT = 16514
#: scheme -> (kind, the parameters it takes)
REMOTE = {"pyvirt+ssh": ("ssh", ("socket", "keyfile", "known_hosts", "no_tty")),
          "qemu+ssh": ("ssh", ("socket", "keyfile", "known_hosts", "no_tty")),
          "pyvirt+tls": ("tls", ("token_file",)),
          "qemu+tls": ("tls", ("token_file",))}


class RemoteURI:
    """A parsed pyvirt+ssh:// or pyvirt+tls:// URI (``kind`` is "ssh" or "tls"; port 0: the default)."""

    __slots__ = ("uri", "kind", "user", "host", "port", "params")

    def __init__(self, uri: str, kind: str, user: str, host: str, port: int, params: dict[str, str]) -> None:
        self.uri = uri
        self.kind = kind
        self.user = user
        self.host = host
        self.port = port
        self.params = params

    @property
    def hostport(self) -> str:
        """host:port as the pins file and messages write it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port or TLS_PORT}"


def remote(uri: str) -> RemoteURI | None:
    """The parts of a remote URI; None for a local one; InvalidArgument when it is malformed."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in REMOTE:
        return None
    kind, takes = REMOTE[scheme]
    authority, slash, tail = rest.partition("/")
    path, _, query = ("/" + tail if slash else "").partition("?")
    if not slash and "?" in authority:
        authority, _, query = authority.partition("?")
    if path not in ("", "/", "/system"):
        raise InvalidArgument(f"connection URI '{uri}': the path must be / (as in {scheme}://HOST/), not {path}")
    params = _query(uri, query)
    unknown = sorted(set(params) - set(takes))
    if unknown:
        raise InvalidArgument(f"connection URI '{uri}': unsupported parameter(s) {', '.join(unknown)}; "
                              f"{scheme}:// takes {', '.join(takes)}")
    user, at, hostport = authority.rpartition("@")
    if at and kind == "tls":
        raise InvalidArgument(f"connection URI '{uri}': {scheme}:// takes no user (a token says who you are)")
    host, port = _split_hostport(uri, hostport)
    return RemoteURI(uri, kind, unquote(user), host, port, params)


def _split_hostport(uri: str, text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, after = text[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else after
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise InvalidArgument(f"connection URI '{uri}' names no host; write it as in pyvirt+tls://HOST/")
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise InvalidArgument(f"connection URI '{uri}': port '{port_text}' is not a number from 1 to 65535")
    return host, int(port_text or 0)


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
    if scheme in REMOTE:
        raise InvalidArgument(f"connection URI '{uri}' names a remote daemon, which has no local socket")
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
