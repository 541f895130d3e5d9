"""pyvirt+tls://HOST[:PORT]/: HTTP over TLS to pyvirtd's TCP listener, with a token.

The daemon's certificate is usually self-signed (made at its first start), so
the client pins it per host, as ssh does host keys: ~/.config/pyvirt/known_daemons
holds ``HOST:PORT FINGERPRINT`` lines (the SHA-256 of the certificate the daemon
presents). A host with a pin must present exactly that certificate. A host
without one must present a certificate the system's CAs vouch for (a daemon
given a real certificate in its config); otherwise the connection is refused
with the fingerprint it presented and how to trust it (`pyvirt -c URI
tls-trust FINGERPRINT`, after comparing it with `pyvirt tls-fingerprint` on
that host).

The token travels as ``Authorization: Bearer``: $PYVIRT_TOKEN, or the file the
URI's ``token_file=PATH`` names. Imported only for pyvirt+tls:// URIs: ssl and
hashlib stay off the `pyvirt list` path over the unix socket.
"""
from __future__ import annotations

import hashlib
import os
import socket
import ssl

from ..errors import ConnectionFailed, InvalidArgument
from .transport import Endpoint
from .uri import TLS_PORT, RemoteURI

CONNECT_TIMEOUT = 10.0
TOKEN_ENV = "PYVIRT_TOKEN"


def fingerprint_of(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate as OpenSSL prints it (AB:CD:...)."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def normalize_fingerprint(text: str) -> str:
    """Accept AB:CD..., abcd..., or either after 'SHA256:'/'sha256 Fingerprint='; InvalidArgument otherwise."""
    raw = text.strip()
    for prefix in ("sha256 fingerprint=", "sha256:", "sha-256:"):
        if raw.lower().startswith(prefix):
            raw = raw[len(prefix):]
    digits = raw.replace(":", "").lower()
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise InvalidArgument(f"'{text}' is not a SHA-256 fingerprint (64 hex digits, as AB:CD:EF:...); "
                              "`pyvirt tls-fingerprint` on the daemon's host prints it")
    return ":".join(digits[i:i + 2] for i in range(0, 64, 2)).upper()


class KnownDaemons:
    """The pins file: ``HOST:PORT FINGERPRINT`` per line; '#' starts a comment."""

    def __init__(self, path: str | None = None) -> None:
        if path is None:
            base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
            path = os.path.join(base, "pyvirt", "known_daemons")
        self.path = path

    def read(self) -> dict[str, str]:
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return {}
        pins = {}
        for line in lines:
            fields = line.split("#", 1)[0].split()
            if len(fields) == 2:
                pins[fields[0]] = fields[1].upper()
        return pins

    def get(self, hostport: str) -> str | None:
        return self.read().get(hostport)

    def pin(self, hostport: str, fingerprint: str) -> None:
        """Record (or replace) the pin of ``hostport``; written whole and renamed into place."""
        pins = self.read()
        pins[hostport] = fingerprint
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = f"{self.path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("# pyvirt+tls:// daemons this user trusts: HOST:PORT SHA-256-FINGERPRINT\n")
            f.writelines(f"{k} {v}\n" for k, v in sorted(pins.items()))
        os.replace(tmp, self.path)


def read_token(uri: RemoteURI) -> str | None:
    """The token from the URI's token_file=PATH, else $PYVIRT_TOKEN, else None (the daemon answers 401)."""
    path = uri.params.get("token_file")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise InvalidArgument(f"cannot read the token file {path} named by the URI: {exc.strerror or exc}") from exc
        if not token:
            raise InvalidArgument(f"the token file {path} is empty; put the token `pyvirt token-create` printed in it")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if any(c in token for c in "\r\n"):
        raise InvalidArgument(f"${TOKEN_ENV} holds a line break; it must be the token alone")
    return token or None


class TLSEndpoint(Endpoint):
    """Opens TLS streams to one daemon, checking its certificate against the pin (or the system CAs)."""

    def __init__(self, uri: RemoteURI, token: str | None, pins: KnownDaemons | None = None) -> None:
        self.uri = uri
        self.host = uri.host
        self.port = uri.port or TLS_PORT
        self.where = f"tls://{uri.hostport}"
        self.headers = f"Authorization: Bearer {token}\r\n" if token else ""
        self.pins = pins or KnownDaemons()
        self.pinned = self.pins.get(uri.hostport)

    def tcp(self, timeout: float | None) -> socket.socket:
        """The TCP connection; ConnectionFailed says why (refused, no route, no answer, no such host)."""
        hint = ("is pyvirtd listening there? It takes TCP connections only with `pyvirtd --listen ADDR:PORT` "
                "or `listen` in its pyvirt.toml")
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout or CONNECT_TIMEOUT)
        except socket.gaierror as exc:
            raise ConnectionFailed(f"failed to connect to the daemon at {self.where}: cannot resolve host "
                                   f"'{self.host}' ({exc.strerror})") from exc
        except ConnectionRefusedError as exc:
            raise ConnectionFailed(f"failed to connect to the daemon at {self.where}: connection refused ({hint})") \
                from exc
        except TimeoutError as exc:
            raise ConnectionFailed(f"failed to connect to the daemon at {self.where}: no answer within "
                                   f"{timeout or CONNECT_TIMEOUT:.0f} s (is the host up and reachable?)") from exc
        except OSError as exc:
            raise ConnectionFailed(f"failed to connect to the daemon at {self.where}: {exc.strerror or exc} "
                                   "(is the host up and reachable?)") from exc
        sock.settimeout(timeout)
        return sock

    def presented(self, timeout: float | None = None) -> str:
        """The fingerprint of the certificate the daemon presents (nothing is checked)."""
        ctx = _context(verify=False)
        with self.tcp(timeout) as raw, self._wrap(ctx, raw) as tls:
            der = tls.getpeercert(binary_form=True)
        if not der:
            raise ConnectionFailed(f"the daemon at {self.where} presented no certificate")
        return fingerprint_of(der)

    def open(self, timeout: float | None = None) -> socket.socket:
        if self.pinned is None:
            return self._open_verified(timeout)
        tls = self._wrap(_context(verify=False), self.tcp(timeout))
        got = fingerprint_of(tls.getpeercert(binary_form=True) or b"")
        if got != self.pinned:
            tls.close()
            raise ConnectionFailed(
                f"the daemon at {self.where} presented a certificate with SHA-256 fingerprint {got}, but "
                f"{self.pins.path} pins {self.pinned} for it: refusing (someone may be in the middle). If the "
                f"daemon's certificate really changed, check `pyvirt tls-fingerprint` on that host, then run "
                f"`pyvirt -c {self.uri.uri} tls-trust {got}`")
        return tls

    def _open_verified(self, timeout: float | None) -> socket.socket:
        """No pin: only a certificate the system's CAs vouch for (for this host name) is accepted."""
        try:
            return self._wrap(_context(verify=True), self.tcp(timeout), self.host)
        except ssl.SSLCertVerificationError as exc:
            got = self.presented(timeout)
            raise ConnectionFailed(
                f"the daemon at {self.where} presented an unknown certificate (SHA-256 fingerprint {got}; "
                f"{exc.verify_message}). Compare it with what `pyvirt tls-fingerprint` prints on that host; "
                f"if they match, trust it with `pyvirt -c {self.uri.uri} tls-trust {got}`") from exc

    def _wrap(self, ctx: ssl.SSLContext, raw: socket.socket, hostname: str | None = None) -> ssl.SSLSocket:
        try:
            return ctx.wrap_socket(raw, server_hostname=hostname or self.host)
        except ssl.SSLCertVerificationError:
            raw.close()
            raise
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise ConnectionFailed(f"TLS with the daemon at {self.where} failed: {exc} (is that pyvirtd's TLS "
                                   "port?)") from exc


_CONTEXTS: dict[bool, ssl.SSLContext] = {}


def _context(verify: bool) -> ssl.SSLContext:
    """With ``verify``, the system's CAs; without, none: the pin is checked on the certificate itself
    after the handshake, and not loading the CA bundle saves ~50 ms of every pinned `pyvirt` command."""
    if verify not in _CONTEXTS:
        if verify:
            ctx = ssl.create_default_context()
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        _CONTEXTS[verify] = ctx
    return _CONTEXTS[verify]
