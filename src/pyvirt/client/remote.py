"""The endpoint of a remote URI: pyvirt+ssh:// (client/ssh.py) or pyvirt+tls:// (client/tls.py).

Each transport is imported only when a URI asks for it, so the unix socket's
`pyvirt list` never loads ssl or subprocess machinery.
"""
from __future__ import annotations

from .transport import Endpoint
from .uri import RemoteURI


def open_endpoint(uri: RemoteURI) -> Endpoint:
    """Ready to open streams: the ssh tunnel is up, or the TLS peer and token are set."""
    if uri.kind == "ssh":
        from .ssh import SSHTunnel

        return SSHTunnel(uri)
    from .tls import TLSEndpoint, read_token

    return TLSEndpoint(uri, read_token(uri))
