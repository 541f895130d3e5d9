"""connect(uri) -> Connection: the Python client of pyvirtd.

One keep-alive HTTP connection per Connection; event streams get their own.
Connecting to the system URI as root starts the daemon when nothing answers
(as libvirt's socket activation would), then retries once.
"""
from __future__ import annotations

import os
import sys
import time

from ..errors import ConnectionFailed
from .domain import Domain, DomainSummary
from .host import HostCalls
from .network import Network
from .storage import StoragePool, StorageVolume
from .transport import DaemonHTTP, UnixEndpoint, open_socket
from .uri import default_uri, is_system, quote, remote, socket_path

TYPE_CHECKING = False  # typing costs import time on the `pyvirt list` path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

AUTOSTART_WAIT = 10.0


class Connection(HostCalls):
    """A session with one pyvirtd (request(), stream_events(), close() come from Session; the host's
    calls from HostCalls) and the handles on its domains, networks and pools. Use as a context manager or
    call close()."""

    def __repr__(self) -> str:
        return f"<Connection {self._uri}>"

    # --- host -----------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", "/v1/version")
        return data

    def host_info(self) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", "/v1/host")
        return data

    def hostname(self) -> str:
        return str(self.host_info()["hostname"])

    def capabilities(self) -> str:
        return str(self.request("GET", "/v1/host/capabilities")["xml"])

    def host_validate(self) -> list[dict[str, str]]:
        """virt-host-validate's checks: [{"name", "status": PASS|WARN|FAIL, "detail"}]."""
        return list(self.request("GET", "/v1/host/validate")["checks"])

    # --- domains --------------------------------------------------------------------------
    def list_domains(self) -> list[DomainSummary]:
        """All domains, active first by id then inactive by name (filter on the caller's side)."""
        return [DomainSummary(d) for d in self.request("GET", "/v1/domains")["domains"]]

    def domain(self, ref: str | int) -> Domain:
        """A handle by name, UUID or id; nothing is sent until a method is called."""
        return Domain(self, str(ref))

    def define_xml(self, xml: str) -> Domain:
        summary = DomainSummary(self.request("POST", "/v1/domains", {"xml": xml}))
        return Domain(self, summary.name, summary)

    def create_xml(self, xml: str, paused: bool = False) -> Domain:
        """Create and start a transient domain."""
        summary = DomainSummary(self.request("POST", "/v1/domains/create", {"xml": xml, "paused": paused}))
        return Domain(self, summary.name, summary)

    def domain_xml_to_native(self, fmt: str, xml: str) -> dict[str, Any]:
        """domxml-to-native: {format, env, argv, notes} of a start of ``xml``; nothing is defined or started."""
        return dict(self.request("POST", "/v1/domains/native", {"format": fmt, "xml": xml}))

    # --- save images ----------------------------------------------------------------------
    def restore(self, file: str, *, xml: str | None = None, running: bool = False, paused: bool = False,
                bypass_cache: bool = False) -> Domain:
        """Continue the guest saved in ``file`` (a path on the daemon's host)."""
        body = {"file": file, "running": running, "paused": paused, "bypass_cache": bypass_cache,
                **({"xml": xml} if xml is not None else {})}
        summary = DomainSummary(self.request("POST", "/v1/domains/restore", body))
        return Domain(self, summary.name, summary)

    def save_image_xml(self, file: str, security_info: bool = False) -> str:
        query = f"?file={quote(file)}" + ("&security_info=1" if security_info else "")
        return str(self.request("GET", "/v1/save-image/xml" + query)["xml"])

    def save_image_define(self, file: str, xml: str, *, running: bool = False, paused: bool = False) -> None:
        self.request("PUT", "/v1/save-image/xml", {"file": file, "xml": xml, "running": running, "paused": paused})

    def managed_saves(self) -> set[str]:
        """The uuids of the domains with a managed save image."""
        return set(self.request("GET", "/v1/managed-saves")["domains"])

    # --- networks -------------------------------------------------------------------------
    def list_networks(self) -> list[dict[str, Any]]:
        """All networks by name: name, uuid, active, persistent, autostart, bridge, mode."""
        return list(self.request("GET", "/v1/networks")["networks"])

    def network(self, ref: str) -> Network:
        return Network(self, str(ref))

    def define_network(self, xml: str) -> Network:
        data = self.request("POST", "/v1/networks", {"xml": xml})
        return Network(self, data["name"], data)

    def create_network(self, xml: str) -> Network:
        """Create and start a transient network."""
        data = self.request("POST", "/v1/networks/create", {"xml": xml})
        return Network(self, data["name"], data)

    # --- storage pools and volumes ------------------------------------------------------
    def list_pools(self) -> list[dict[str, Any]]:
        """All pools by name: name, uuid, type, state, active, persistent, autostart, target and sizes."""
        return list(self.request("GET", "/v1/pools")["pools"])

    def pool(self, ref: str) -> StoragePool:
        """A handle by name or UUID; nothing is sent until a method is called."""
        return StoragePool(self, str(ref))

    def define_pool(self, xml: str) -> StoragePool:
        data = self.request("POST", "/v1/pools", {"xml": xml})
        return StoragePool(self, data["name"], data)

    def create_pool(self, xml: str, build: bool = False, overwrite: bool = False,
                    no_overwrite: bool = False) -> StoragePool:
        """Create and start a transient pool (built first with ``build``)."""
        data = self.request("POST", "/v1/pools/create", {"xml": xml, "build": build, "overwrite": overwrite,
                                                         "no_overwrite": no_overwrite})
        return StoragePool(self, data["name"], data)

    def lookup_volume(self, ref: str, pool: str | None = None) -> StorageVolume:
        """virsh's volume lookup: by name in ``pool``, else by key, else by path (in any active pool)."""
        path = f"/v1/volumes?ref={quote(ref)}" + (f"&pool={quote(pool)}" if pool else "")
        data = self.request("GET", path)
        return StorageVolume(self, data["pool"], data["name"], data)

    def volume_by_path(self, path: str) -> StorageVolume:
        data = self.request("GET", f"/v1/volumes?path={quote(path)}")
        return StorageVolume(self, data["pool"], data["name"], data)

    def volume_by_key(self, key: str) -> StorageVolume:
        data = self.request("GET", f"/v1/volumes?key={quote(key)}")
        return StorageVolume(self, data["pool"], data["name"], data)

    def events(self, domain: str | None = None) -> Iterator[dict[str, Any]]:
        """Lifecycle events as they happen, on a connection of their own; close the iterator to stop."""
        path = "/v1/events" if domain is None else f"/v1/domains/{quote(domain)}/events"
        return self.stream_events(path)

    def event_history(self, domain: str | None = None) -> list[dict[str, Any]]:
        path = "/v1/events/history" + (f"?domain={quote(domain)}" if domain else "")
        return list(self.request("GET", path)["events"])


def connect(uri: str | None = None, *, autostart: bool = True, timeout: float | None = None) -> Connection:
    """Open a connection to pyvirtd.

    ``uri`` None means $PYVIRT_DEFAULT_URI, else qemu:///system. ``timeout``
    bounds each socket operation (None: wait, e.g. for a long shutdown).
    """
    uri = uri or default_uri()
    far = remote(uri)
    if far is not None:
        from .remote import open_endpoint

        endpoint = open_endpoint(far)
        http = DaemonHTTP(endpoint, timeout)
        try:
            http.connect()  # TLS: the handshake and the pin check happen here, before any command runs
        except BaseException:
            endpoint.close()
            raise
        return Connection(uri, endpoint, http)
    path = socket_path(uri)
    local = UnixEndpoint(path)
    http = DaemonHTTP(local, timeout)
    try:
        http.connect()
    except ConnectionFailed:
        if not (autostart and is_system(uri) and os.geteuid() == 0):
            raise
        start_system_daemon(path)
        http.connect()
    return Connection(uri, local, http)


def daemon_command() -> list[str]:
    """`pyvirtd --detach` from this interpreter's own environment."""
    exe = os.path.join(os.path.dirname(sys.executable), "pyvirtd")
    if os.access(exe, os.X_OK):
        return [exe, "--detach"]
    return [sys.executable, "-m", "pyvirt.pyvirtd", "--detach"]


def start_system_daemon(path: str, wait: float = AUTOSTART_WAIT) -> None:
    """Start the system daemon and wait until its socket answers (socket activation's job)."""
    import subprocess

    argv = daemon_command()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        raise ConnectionFailed(f"failed to start the daemon with `{' '.join(argv)}`: {exc.strerror or exc}") from exc
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        code = proc.poll()
        if code not in (None, 0):
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise ConnectionFailed(
                f"failed to start the daemon: `{' '.join(argv)}` exited with status {code}"
                + (f": {err}" if err else "") + "; see /var/log/pyvirt/pyvirtd.log"
            )
        try:
            open_socket(path, 1.0).close()
        except ConnectionFailed:
            time.sleep(0.05)
            continue
        _reap(proc)
        return
    _reap(proc)
    raise ConnectionFailed(
        f"started `{' '.join(argv)}` but nothing answered at unix://{path} within {wait:.0f} s; "
        "see /var/log/pyvirt/pyvirtd.log"
    )


def _reap(proc: Any) -> None:
    """Collect the detaching parent if it exited; never block on it."""
    if proc.poll() is not None and proc.stderr:
        proc.stderr.close()
