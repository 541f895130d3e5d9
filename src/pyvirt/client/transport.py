"""A small HTTP/1.1 client over a unix socket: JSON in, JSON out, keep-alive.

Start-up time is most of a `pyvirt` query, so this module imports only C modules
and `io`, `os`: not http.client (ssl and the email package, ~19 ms here), and not
`socket` and `json` either, whose imports cost as much CPU again as the
interpreter's own start (~14 ms here: socket builds enums and loads selectors,
json compiles its regular expressions, both pull in enum and re). The C modules
under them, _socket and _json, cost nothing to import: answers are decoded with
_json's scanner (json.loads without the module around it, see wirejson.py), and
`json` is imported only to encode a request body and for the trace. The daemon
speaks plain HTTP/1.1 (Content-Length or chunked bodies), which takes a hundred
lines to read.

PYVIRT_API_TRACE=/path/file.jsonl makes every client call append one JSON line
per exchange to that file (append mode, one write per line, so processes can
share it): method, path, query, status, content_type, the request's JSON body
(``request``) and the reply's (``response``), or for an event stream one line
per record (``record``). The tests validate each line against the REST contract
(docs/openapi.yaml). Unset, it costs one environment lookup per request.

An ``Endpoint`` says how to reach the daemon: a unix socket here (``UnixEndpoint``);
client/remote.py adds TLS over TCP and an ssh tunnel, imported only for those URIs.
"""
from __future__ import annotations

import _socket
import io
import os

from ..errors import ConnectionFailed, InternalError, PyvirtError, from_dict
from .wirejson import dumps, loads

TYPE_CHECKING = False  # typing costs import time on the `pyvirt list` path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

MAX_LINE = 65536
TRACE_ENV = "PYVIRT_API_TRACE"


def daemon_hint(path: str) -> str:
    """How to start the daemon that should own ``path``."""
    suffix = "/run/pyvirt/pyvirtd.sock"
    if path == suffix:
        return "is pyvirtd running? start it with `pyvirtd` or `pyvirtd -d`"
    if path.endswith(suffix):
        return f"is pyvirtd running? start it with `pyvirtd --root {path[: -len(suffix)]} -d`"
    return "is pyvirtd running and listening there?"


def open_socket(path: str, timeout: float | None = None) -> _socket.socket:
    """Connect to the daemon's socket; ConnectionFailed says why and what to do."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    where = f"unix://{path}"
    try:
        sock.connect(path)
    except FileNotFoundError as exc:
        sock.close()
        raise ConnectionFailed(
            f"failed to connect to the daemon at {where}: no such file ({daemon_hint(path)})") from exc
    except ConnectionRefusedError as exc:
        sock.close()
        raise ConnectionFailed(
            f"failed to connect to the daemon at {where}: connection refused ({daemon_hint(path)})") from exc
    except PermissionError as exc:
        sock.close()
        raise ConnectionFailed(
            f"failed to connect to the daemon at {where}: permission denied (the socket is root-only; "
            "run pyvirt with sudo, e.g. `sudo pyvirt list --all`)"
        ) from exc
    except OSError as exc:
        sock.close()
        raise ConnectionFailed(f"failed to connect to the daemon at {where}: {exc.strerror or exc}") from exc
    return sock


class Endpoint:
    """How to open one stream to the daemon; one HTTP connection runs over each stream.

    ``where`` names it in messages; ``socket_path`` is the unix socket when there is one;
    ``headers`` are extra request header lines (a token); ``diagnose`` explains a stream that
    ended without an answer (an ssh tunnel's own words); ``close`` ends what the endpoint runs."""

    where = ""
    socket_path: str | None = None
    headers = ""

    def open(self, timeout: float | None = None) -> _socket.socket:
        raise NotImplementedError

    def diagnose(self) -> str:
        return ""

    def close(self) -> None:
        pass


class UnixEndpoint(Endpoint):
    """The daemon's unix socket (root only: the kernel's file mode is the authentication)."""

    def __init__(self, path: str) -> None:
        self.socket_path = path
        self.where = f"unix://{path}"

    def open(self, timeout: float | None = None) -> _socket.socket:
        return open_socket(self.socket_path or "", timeout)


class _SocketStream(io.RawIOBase):
    """The socket as a raw byte stream under an io.BufferedReader (what socket.makefile("rb") builds)."""

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)


class Response:
    """Status, lower-cased headers and the body reader of one answer.

    ``reader`` is the connection's file object positioned at the body: read(), chunks() and
    lines() decode it; a caller that copies a large body in pieces reads it directly."""

    def __init__(self, status: int, reason: str, headers: dict[str, str], reader: BinaryIO) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.reader = reader

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"

    def read(self) -> bytes:
        """The whole body (Content-Length, chunked, or up to EOF)."""
        if self.chunked:
            return b"".join(self.chunks())
        length = self.headers.get("content-length")
        if length is not None:
            data = self.reader.read(int(length))
            if len(data) != int(length):
                raise _lost("the answer was cut short")
            return data
        return self.reader.read()

    def chunks(self) -> Iterator[bytes]:
        """Yield the decoded chunks of a chunked body as they arrive."""
        while True:
            line = self.reader.readline(MAX_LINE)
            if not line:
                raise _lost("the stream ended without its last chunk")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.reader.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            data = self.reader.read(size)
            self.reader.readline(MAX_LINE)
            if len(data) != size:
                raise _lost("a chunk was cut short")
            yield data

    def lines(self) -> Iterator[bytes]:
        """Yield the body line by line (NDJSON streams)."""
        if not self.chunked:
            yield from self.read().splitlines()
            return
        pending = b""
        for chunk in self.chunks():
            pending += chunk
            *done, pending = pending.split(b"\n")
            yield from done
        if pending:
            yield pending


def _lost(what: str) -> ConnectionFailed:
    return ConnectionFailed(f"lost the connection to the daemon: {what}; check that pyvirtd is still running")


class DaemonHTTP:
    """One keep-alive HTTP/1.1 connection to the daemon (reopened when the daemon closed it)."""

    def __init__(self, endpoint: Endpoint, timeout: float | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._sock: _socket.socket | None = None
        self._reader: BinaryIO | None = None

    def connect(self) -> _socket.socket:
        """Open the connection unless it is open; the socket, for a caller that streams a request body."""
        if self._sock is None:
            self._sock = self.endpoint.open(self.timeout)
            self._reader = io.BufferedReader(_SocketStream(self._sock))
        return self._sock

    def head(self, method: str, target: str) -> str:
        """The request line and the headers every request carries (the endpoint's token among them)."""
        return f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n{self.endpoint.headers}"

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._reader = None

    def send(self, method: str, target: str, body: bytes | None = None) -> Response:
        """Send one request and read the answer's head; retry once on a stale idle connection."""
        reused = self._sock is not None
        try:
            return self._send_once(method, target, body)
        except (ConnectionResetError, BrokenPipeError, _NoAnswer) as exc:
            self.close()
            if not reused:
                raise self._lost(f"{method} {target}: {exc}") from exc
        try:
            return self._send_once(method, target, body)
        except (OSError, _NoAnswer) as exc:
            self.close()
            raise self._lost(f"{method} {target}: {exc}") from exc

    def _lost(self, what: str) -> ConnectionFailed:
        why = self.endpoint.diagnose()
        return _lost(what + (f" ({why})" if why else ""))

    def _send_once(self, method: str, target: str, body: bytes | None) -> Response:
        sock = self.connect()
        head = self.head(method, target)
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        elif method in ("POST", "PUT"):
            head += "Content-Length: 0\r\n"
        sock.sendall(head.encode() + b"\r\n" + (body or b""))
        return self.read_head()

    def read_head(self) -> Response:
        """Read the status line and headers of the next answer; the body is left to the Response."""
        reader = self._reader
        if reader is None:
            raise _NoAnswer("no connection is open")
        status_line = reader.readline(MAX_LINE)
        if not status_line:
            raise _NoAnswer("the daemon closed the connection without answering")
        parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise InternalError(f"the daemon sent a malformed HTTP status line: {status_line[:80]!r}")
        headers: dict[str, str] = {}
        while True:
            line = reader.readline(MAX_LINE)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise _NoAnswer("the daemon closed the connection in the middle of an answer")
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, reader)

    def request_json(self, method: str, target: str, payload: Any = None) -> Any:
        """One JSON request -> the decoded JSON answer; error answers are raised as pyvirt errors."""
        body = None if payload is None else dumps(payload).encode()
        resp = self.send(method, target, body)
        data = resp.read()
        if not resp.keep_alive:
            self.close()
        if dest := os.environ.get(TRACE_ENV):
            trace(dest, method, target, resp, data, request=payload)
        return decode_answer(method, target, resp, data)


class UnixHTTP(DaemonHTTP):
    """A DaemonHTTP on a unix socket path."""

    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__(UnixEndpoint(path), timeout)
        self.path = path


def trace(dest: str, method: str, target: str, resp: Response | None, data: bytes | None = None,
          status: int | None = None, **seen: Any) -> None:
    """Append one exchange to the PYVIRT_API_TRACE file ``dest`` (see the module's docstring).

    ``data`` is the reply's body when it was read whole; ``seen`` adds what else was seen
    (``request``, ``request_type``, ``record``, ``frame``, ``response_bytes``); None values are left out.
    """
    path, _, query = target.partition("?")
    line: dict[str, Any] = {"method": method, "path": path, "query": query,
                            "status": resp.status if resp is not None else status,
                            "content_type": resp.headers.get("content-type", "") if resp is not None else ""}
    line.update((k, v) for k, v in seen.items() if v is not None)
    if data is not None:
        try:
            line["response"] = loads(data)
        except ValueError:
            line["response_text"] = data[:1000].decode(errors="replace")
    fd = os.open(dest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, dumps(line).encode() + b"\n")
    finally:
        os.close(fd)


class _NoAnswer(Exception):
    """The connection ended before an answer arrived (reopen and retry once)."""


def decode_answer(method: str, target: str, resp: Response, data: bytes) -> Any:
    """Decode a JSON body; rebuild the daemon's error for a non-2xx status."""
    try:
        doc = loads(data) if data else None
    except ValueError:
        doc = None
        if 200 <= resp.status < 300:
            raise InternalError(
                f"the daemon answered {method} {target} with a body that is not JSON: {data[:200]!r}") from None
    if 200 <= resp.status < 300:
        return doc
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        raise from_dict(doc["error"])
    text = data[:300].decode(errors="replace").strip()
    err: PyvirtError = InternalError(
        f"the daemon answered {method} {target} with HTTP {resp.status} {resp.reason}" + (f": {text}" if text else "")
    )
    raise err
