"""What a handle (Domain, Network, StoragePool...) needs of its connection: one REST call, one event stream.

``Connection`` builds on it with the lookups and factories that make the handles.
The handles depend on this class only, so they never import connection.py:
imports in the client point one way, from the connection down to the handles.
"""
from __future__ import annotations

import os

from .transport import TRACE_ENV, DaemonHTTP, Endpoint, decode_answer, trace
from .wirejson import loads

TYPE_CHECKING = False  # typing costs import time on the `pyvirt list` path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, Self


class Session:
    """A session with one pyvirtd. Use as a context manager or call close()."""

    def __init__(self, uri: str, endpoint: Endpoint, http: DaemonHTTP) -> None:
        self._uri = uri
        self.endpoint = endpoint
        self._http = http

    @property
    def socket_path(self) -> str | None:
        """The daemon's unix socket (a local ssh tunnel's for pyvirt+ssh://); None over TLS."""
        return self.endpoint.socket_path

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self.endpoint.close()

    def uri(self) -> str:
        """The URI this connection was opened with (canonical: qemu:///system by default)."""
        return self._uri

    def request(self, method: str, path: str, payload: Any = None) -> Any:
        """One REST call (docs/openapi.yaml); a daemon error comes back as its pyvirt.errors class."""
        return self._http.request_json(method, path, payload)

    def stream_events(self, path: str) -> Iterator[dict[str, Any]]:
        """Subscribe now (not at the first next()), so no event after this call is missed."""
        http = DaemonHTTP(self.endpoint)
        dest = os.environ.get(TRACE_ENV)
        try:
            resp = http.send("GET", path)
            if not 200 <= resp.status < 300:
                data = resp.read()
                if dest:
                    trace(dest, "GET", path, resp, data)
                decode_answer("GET", path, resp, data)
            if dest:
                trace(dest, "GET", path, resp)
        except BaseException:
            http.close()
            raise

        def lines() -> Iterator[dict[str, Any]]:
            try:
                for line in resp.lines():
                    if line.strip():
                        record = loads(line)
                        if dest:
                            trace(dest, "GET", path, resp, record=record)
                        yield record
            finally:
                http.close()

        return lines()
