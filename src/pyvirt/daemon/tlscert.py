"""The TLS listener's certificate: from the settings, or a CA and server certificate made once.

A host has no certificate a client's CAs would vouch for, so at the first start
with a TCP listener the daemon makes its own small CA and a server certificate
signed by it (EC P-256, ten years), under etc/pyvirt/tls (keys 0600). Clients
pin the server certificate's SHA-256 fingerprint (client/tls.py), which the
daemon logs at start and serves at GET /v1/remote (`pyvirt tls-fingerprint`).
A certificate from a real CA (``tls_cert``/``tls_key`` in pyvirt.toml) is used
as given, and clients that trust its CA need no pin.
"""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import InvalidArgument

VALID_DAYS = 3650


@dataclass(frozen=True)
class ServerCertificate:
    cert: Path
    key: Path
    fingerprint: str  # SHA-256 of the DER certificate, AB:CD:... (as `openssl x509 -fingerprint -sha256`)
    made: bool  # made at this start


def fingerprint_pem(pem: bytes) -> str:
    """The fingerprint of the first certificate of a PEM file (the server's own; its chain may follow)."""
    text = pem.decode("ascii", errors="replace")
    start = text.find(ssl.PEM_HEADER)
    end = text.find(ssl.PEM_FOOTER, start)
    if start < 0 or end < 0:
        raise ValueError("no PEM certificate in it")
    der = ssl.PEM_cert_to_DER_cert(text[start:end + len(ssl.PEM_FOOTER)])
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def server_certificate(config: Config, listen_host: str) -> ServerCertificate:
    """The configured certificate, or the one made earlier, or a new one (with its CA)."""
    s = config.settings
    if s.tls_cert or s.tls_key:
        if not (s.tls_cert and s.tls_key):
            raise InvalidArgument("pyvirt.toml sets only one of tls_cert and tls_key; set both (PEM files) or neither "
                                  "(the daemon then makes its own certificate)")
        cert, key = Path(s.tls_cert), Path(s.tls_key)
        try:
            return ServerCertificate(cert, key, fingerprint_pem(cert.read_bytes()), made=False)
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"cannot read the TLS certificate {cert} named by tls_cert: {exc}") from exc
    folder = config.paths.tls
    cert, key = folder / "server.pem", folder / "server-key.pem"
    made = not (cert.exists() and key.exists())
    if made:
        _make(folder, listen_host)
    return ServerCertificate(cert, key, fingerprint_pem(cert.read_bytes()), made=made)


def server_context(cert: ServerCertificate) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert.cert, cert.key)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"cannot load the TLS certificate {cert.cert} with key {cert.key}: {exc}") from exc
    return ctx


def _make(folder: Path, listen_host: str) -> None:
    """A CA and a server certificate it signs; the server's names: this host's, localhost, the listen address."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    hostname = socket.gethostname()
    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"pyvirtd CA on {hostname}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        address = ipaddress.ip_address(listen_host)
        if not address.is_unspecified and address != ipaddress.ip_address("127.0.0.1"):
            names.append(x509.IPAddress(address))
    except ValueError:
        if listen_host and listen_host not in (hostname, "localhost"):
            names.append(x509.DNSName(listen_host))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now).not_valid_after(until)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    private = (serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    _write(folder / "ca-key.pem", ca_key.private_bytes(pem, *private), 0o600)
    _write(folder / "ca.pem", ca.public_bytes(pem), 0o644)
    _write(folder / "server-key.pem", key.private_bytes(pem, *private), 0o600)
    _write(folder / "server.pem", server.public_bytes(pem) + ca.public_bytes(pem), 0o644)  # with its chain


def _write(path: Path, data: bytes, mode: int) -> None:
    """Written under a temporary name and renamed: a crash never leaves half a key."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
