"""Storage pool and volume handles of the Python client (the routes: docs/openapi.yaml).

Standard library only, like the rest of the client. Volume data is streamed:
``StorageVolume.upload`` sends a file object as the raw request body in
CHUNK pieces and ``download`` writes the answer body to a file object as it
arrives, each on a connection of its own, so no volume is ever held in memory.
"""
from __future__ import annotations

import os

from ..errors import ConnectionFailed, InvalidArgument
from .transport import TRACE_ENV, DaemonHTTP, Endpoint, decode_answer, trace
from .uri import quote

TYPE_CHECKING = False  # typing costs import time on the CLI path
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO

    from .session import Session

    Progress = Callable[[int, int], None]  # (bytes done, bytes in all)

CHUNK = 4 * 1024 * 1024


class StoragePool:
    """A handle on one storage pool by name or UUID. Creating it sends nothing."""

    def __init__(self, conn: Session, ref: str, summary: dict[str, Any] | None = None) -> None:
        self._conn = conn
        self.ref = str(ref)
        self.last: dict[str, Any] | None = summary

    @property
    def name(self) -> str:
        return str(self.last["name"]) if self.last else self.ref

    def __repr__(self) -> str:
        return f"<StoragePool {self.name!r}>"

    def _path(self, tail: str = "") -> str:
        return f"/v1/pools/{quote(self.ref)}{tail}"

    def _call(self, method: str, tail: str = "", payload: Any = None) -> Any:
        return self._conn.request(method, self._path(tail), payload)

    def _summary_call(self, method: str, tail: str, payload: Any = None) -> StoragePool:
        self.last = self._call(method, tail, payload if payload is not None else {})
        return self

    # --- the pool -------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """name, uuid, type, state (running|inactive|inaccessible), active, persistent, autostart, target,
        capacity/allocation/available in bytes (None while inactive)."""
        data: dict[str, Any] = self._call("GET")
        self.last = data
        return data

    def build(self, overwrite: bool = False, no_overwrite: bool = False) -> StoragePool:
        return self._summary_call("POST", "/build", {"overwrite": overwrite, "no_overwrite": no_overwrite})

    def start(self, build: bool = False, overwrite: bool = False, no_overwrite: bool = False) -> StoragePool:
        return self._summary_call("POST", "/start", {"build": build, "overwrite": overwrite,
                                                     "no_overwrite": no_overwrite})

    def destroy(self) -> StoragePool:
        return self._summary_call("POST", "/destroy")

    def delete(self) -> StoragePool:
        """Remove what build made (directory, VG, partition table); the pool stays defined."""
        return self._summary_call("POST", "/delete")

    def undefine(self) -> StoragePool:
        return self._summary_call("DELETE", "")

    def refresh(self) -> StoragePool:
        return self._summary_call("POST", "/refresh")

    def set_autostart(self, enabled: bool) -> StoragePool:
        return self._summary_call("PUT", "/autostart", {"enabled": bool(enabled)})

    def xml(self, inactive: bool = False) -> str:
        return str(self._call("GET", "/xml?inactive=1" if inactive else "/xml")["xml"])

    def set_xml(self, xml: str) -> StoragePool:
        return self._summary_call("PUT", "/xml", {"xml": xml})

    # --- its volumes ----------------------------------------------------------------------
    def list_volumes(self) -> list[dict[str, Any]]:
        """Every volume by name: name, pool, type, path, key, capacity, allocation, physical, format, backing."""
        return list(self._call("GET", "/volumes")["volumes"])

    def volume(self, name: str) -> StorageVolume:
        """A handle on volume ``name`` of this pool; nothing is sent."""
        return StorageVolume(self._conn, self.ref, name)

    def create_volume(self, xml: str) -> StorageVolume:
        data = self._call("POST", "/volumes", {"xml": xml})
        return StorageVolume(self._conn, data["pool"], data["name"], data)

    def create_volume_from(self, xml: str, source: StorageVolume, linked: bool = False) -> StorageVolume:
        """vol-create-from: a new volume (``xml``) holding a copy of ``source`` (any pool); ``linked`` makes a
        qcow2 overlay on it instead of a copy."""
        data = self._call("POST", "/volumes", {"xml": xml, "from": {"pool": source.pool, "volume": source.name},
                                               "linked": linked})
        return StorageVolume(self._conn, data["pool"], data["name"], data)


class StorageVolume:
    """A handle on one volume of one pool (by the pool's name or UUID and the volume's name)."""

    def __init__(self, conn: Session, pool: str, name: str, summary: dict[str, Any] | None = None) -> None:
        self._conn = conn
        self.pool = str(pool)
        self.name = str(name)
        self.last: dict[str, Any] | None = summary

    def __repr__(self) -> str:
        return f"<StorageVolume {self.pool!r}/{self.name!r}>"

    @property
    def path(self) -> str | None:
        return (self.last or self.info()).get("path")

    @property
    def key(self) -> str | None:
        return (self.last or self.info()).get("key")

    def _target(self, tail: str = "") -> str:
        return f"/v1/pools/{quote(self.pool)}/volumes/{quote(self.name)}{tail}"

    def _call(self, method: str, tail: str = "", payload: Any = None) -> Any:
        return self._conn.request(method, self._target(tail), payload)

    def _update(self, data: dict[str, Any]) -> StorageVolume:
        self.last = data
        return self

    def info(self) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET")
        self.last = data
        return data

    def xml(self) -> str:
        return str(self._call("GET", "/xml")["xml"])

    def delete(self) -> dict[str, Any]:
        """Delete the volume; refused while a domain's disk uses it."""
        data: dict[str, Any] = self._call("DELETE")
        return data

    def resize(self, capacity: int, *, delta: bool = False, shrink: bool = False) -> StorageVolume:
        """New size in bytes; with ``delta`` grow by ``capacity`` (shrink by it with ``shrink``)."""
        return self._update(self._call("POST", "/resize", {"capacity": int(capacity), "delta": delta,
                                                           "shrink": shrink}))

    def wipe(self, algorithm: str | None = None) -> StorageVolume:
        return self._update(self._call("POST", "/wipe", {"algorithm": algorithm}))

    def set_format(self, fmt: str, backing_format: str | None = None) -> StorageVolume:
        """Record what the volume is (raw or qcow2), on its owner's word: pyvirt never guesses a format."""
        return self._update(self._call("PUT", "/format", {"format": fmt, "backing_format": backing_format}))

    def clone(self, name: str, linked: bool = False, pool: str | None = None) -> StorageVolume:
        """A full copy named ``name`` (in this pool, or ``pool``); ``linked``: a qcow2 overlay on this volume."""
        data = self._call("POST", "/clone", {"name": name, "linked": linked, "pool": pool})
        return StorageVolume(self._conn, data["pool"], data["name"], data)

    # --- data -----------------------------------------------------------------------------
    def upload(self, source: BinaryIO, length: int, offset: int = 0, progress: Progress | None = None) -> int:
        """Send ``length`` bytes read from ``source`` into the volume at ``offset``; returns bytes written."""
        if length < 0 or offset < 0:
            raise InvalidArgument(f"offset {offset} and length {length} must not be negative")
        target = self._target(f"/data?offset={offset}")
        answer = send_stream(self._conn.endpoint, "PUT", target, source, length, progress)
        return int(answer["bytes"])

    def download(self, sink: BinaryIO, offset: int = 0, length: int | None = None,
                 progress: Progress | None = None) -> int:
        """Write the volume's bytes from ``offset`` (``length`` of them, default to the end) to ``sink``."""
        if offset < 0 or (length is not None and length < 0):
            raise InvalidArgument(f"offset {offset} and length {length} must not be negative")
        query = f"?offset={offset}" + (f"&length={length}" if length else "")
        return receive_stream(self._conn.endpoint, self._target(f"/data{query}"), sink, progress)


# ---------------------------------------------------------------- streaming HTTP
# transport.DaemonHTTP sends whole bodies; these two use its socket, head parsing and body reader
# to move a body in pieces, each on a connection of its own (closed afterwards).

def send_stream(endpoint: Endpoint, method: str, target: str, source: BinaryIO, length: int,
                progress: Progress | None = None) -> Any:
    """Send ``length`` bytes of ``source`` as the raw request body; the decoded JSON answer is returned."""
    http = DaemonHTTP(endpoint)
    try:
        sock = http.connect()
        head = (http.head(method, target)
                + f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
        sent = 0
        try:
            sock.sendall(head.encode())
            while sent < length:
                data = source.read(min(CHUNK, length - sent))
                if not data:
                    raise InvalidArgument(f"the input ended after {sent} of {length} bytes; nothing more to send "
                                          "(check the file and --length)")
                sock.sendall(data)
                sent += len(data)
                if progress is not None:
                    progress(sent, length)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered before taking the whole body (an error): read it below
        if progress is not None and length == 0:
            progress(0, 0)
        try:
            resp = http.read_head()
        except Exception as exc:  # transport's _NoAnswer, or the socket died
            if isinstance(exc, (InvalidArgument, ConnectionFailed)):
                raise
            raise ConnectionFailed(f"the daemon closed the connection during the upload after {sent} of {length} "
                                   "bytes; see the daemon log") from exc
        data = resp.read()
        if dest := os.environ.get(TRACE_ENV):
            trace(dest, method, target, resp, data, request_type="application/octet-stream")
        return decode_answer(method, target, resp, data)
    finally:
        http.close()


def receive_stream(endpoint: Endpoint, target: str, sink: BinaryIO, progress: Progress | None = None) -> int:
    """GET ``target`` and copy its body to ``sink`` as it arrives; returns the bytes written."""
    http = DaemonHTTP(endpoint)
    try:
        resp = http.send("GET", target)
        dest = os.environ.get(TRACE_ENV)
        if not 200 <= resp.status < 300:
            data = resp.read()
            if dest:
                trace(dest, "GET", target, resp, data)
            decode_answer("GET", target, resp, data)
        total = int(resp.headers.get("content-length", "-1"))
        reader = resp.reader
        done = 0
        while total < 0 or done < total:
            data = reader.read(CHUNK if total < 0 else min(CHUNK, total - done))
            if not data:
                if total < 0:
                    break
                raise ConnectionFailed(f"the download ended after {done} of {total} bytes: the daemon stopped "
                                       "sending (see its log); the file holds partial data")
            sink.write(data)
            done += len(data)
            if progress is not None:
                progress(done, max(total, done))
        if progress is not None and done == 0:
            progress(0, 0)
        if dest:
            trace(dest, "GET", target, resp, response_bytes=done)
        return done
    finally:
        http.close()


def file_size(fh: BinaryIO) -> int:
    """Bytes from the current position of ``fh`` to its end (regular files and block devices)."""
    pos = fh.tell()
    end = os.lseek(fh.fileno(), 0, os.SEEK_END)
    os.lseek(fh.fileno(), pos, os.SEEK_SET)
    return end - pos
