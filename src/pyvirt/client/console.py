"""The guest's serial console as a byte stream over the daemon's websocket.

The daemon first sends a text frame: {"connected": NAME} when the session is
open, or {"error": {...}} (then closes) when the domain is not running or
another session holds the console. After that, binary frames both ways carry
the console's bytes. websockets is imported here only, never on the CLI's
fast path.
"""
from __future__ import annotations

import json
import os
import socket

from ..errors import ConnectionFailed, InternalError, from_dict
from .transport import TRACE_ENV, Endpoint, trace
from .uri import quote


class ConsoleStream:
    """read()/write()/close() on one console session."""

    def __init__(self, endpoint: Endpoint, ref: str, *, force: bool = False, timeout: float = 10.0) -> None:
        from websockets.exceptions import InvalidHandshake, InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        self._closed_exc: tuple[type[Exception], ...] = (WebSocketException,)
        self._target = f"/v1/domains/{quote(ref)}/console" + ("?force=1" if force else "")
        target = f"ws://localhost{self._target}"
        where = endpoint.where
        raw = endpoint.open(timeout)  # ConnectionFailed names the endpoint and what to do
        # the query path's unix socket is a bare _socket (light to import); websockets wants a socket.socket
        sock = raw if isinstance(raw, socket.socket) else socket.socket(fileno=raw.detach())
        sock.settimeout(timeout)
        headers = dict(line.split(": ", 1) for line in endpoint.headers.split("\r\n") if ": " in line)
        try:
            # Entered at once: the stream outlives this call (closed by close()), and
            # websockets >= 17.1 warns about a connection never entered.
            self._ws = connect(target, sock=sock, open_timeout=timeout, max_size=None, compression=None,
                               additional_headers=headers).__enter__()
        except InvalidStatus as exc:
            sock.close()
            raise _refusal(exc, ref, where) from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            sock.close()
            raise ConnectionFailed(f"failed to open the console of domain '{ref}' at {where}: {exc}") from exc
        self._pending = b""
        self.name = ref
        self.close_reason = ""
        self._greet(timeout)

    def _greet(self, timeout: float) -> None:
        """Wait for the daemon's first frame; raise its error if it refused."""
        try:
            first = self._ws.recv(timeout)
        except TimeoutError as exc:
            self.close()
            raise ConnectionFailed(
                f"the daemon did not open the console of domain '{self.name}' within {timeout:.0f} s") from exc
        except self._closed_exc as exc:
            self.close()
            raise ConnectionFailed(f"the daemon closed the console of domain '{self.name}': {exc}") from exc
        if isinstance(first, bytes):
            self._pending = first  # a daemon without the greeting: this is console output
            self._trace(frame_bytes=len(first))
            return
        try:
            msg = json.loads(first)
        except ValueError as exc:
            self.close()
            self._trace(frame_text=first[:200])
            raise InternalError(f"the daemon sent an unexpected console frame: {first[:200]!r}") from exc
        self._trace(frame=msg)
        if isinstance(msg, dict) and isinstance(msg.get("error"), dict):
            self.close()
            raise from_dict(msg["error"])
        if isinstance(msg, dict) and msg.get("connected"):
            self.name = str(msg["connected"])

    def _trace(self, **seen: object) -> None:
        """The greeting to the PYVIRT_API_TRACE file (transport's docstring), when it is set:
        ``frame`` (the decoded JSON), ``frame_bytes`` or ``frame_text`` (what came instead)."""
        if dest := os.environ.get(TRACE_ENV):
            trace(dest, "GET", self._target, None, None, 101, **seen)

    def read(self, timeout: float | None = None) -> bytes:
        """Console output as it comes; b"" once the session ended; TimeoutError if nothing came."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        while True:
            try:
                frame = self._ws.recv(timeout)
            except self._closed_exc as exc:
                self.close_reason = _reason(exc)
                return b""
            if isinstance(frame, bytes):
                return frame
            try:
                msg = json.loads(frame)
            except ValueError:
                return frame.encode()
            if isinstance(msg, dict) and isinstance(msg.get("error"), dict):
                self.close_reason = str(from_dict(msg["error"]))
                return b""

    def write(self, data: bytes) -> None:
        """Send keystrokes/bytes to the guest's serial port."""
        if data:
            try:
                self._ws.send(bytes(data))
            except self._closed_exc as exc:
                raise ConnectionFailed(f"the console of domain '{self.name}' is closed: {_reason(exc)}") from exc

    def close(self) -> None:
        """End the session. Unread output is dropped first: the websockets reader stops taking
        frames once its queue is full, and would then miss the daemon's close (a 10 s wait)."""
        drained: tuple[type[Exception], ...] = (TimeoutError, *self._closed_exc)
        try:
            while True:
                self._ws.recv(timeout=0.05)  # lets the reader thread hand over what it holds
        except drained:
            pass
        self._ws.close()

    def __enter__(self) -> ConsoleStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _refusal(exc: Exception, ref: str, where: str) -> Exception:
    """The daemon's JSON error when it refused the upgrade (401/403 over TLS, 400), else a ConnectionFailed."""
    response = getattr(exc, "response", None)
    body = getattr(response, "body", b"") or b""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        return from_dict(doc["error"])
    return ConnectionFailed(f"failed to open the console of domain '{ref}' at {where}: {exc}")


def _reason(exc: Exception) -> str:
    rcvd = getattr(exc, "rcvd", None)
    return str(getattr(rcvd, "reason", "") or "") if rcvd is not None else ""
