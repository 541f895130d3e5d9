"""The host's calls of the client: node facts, huge pages, KSM and statistics of many domains.

``Connection`` inherits them; they need only ``Session.request``.
"""
from __future__ import annotations

from .session import Session
from .uri import quote

TYPE_CHECKING = False  # typing costs import time on the `pyvirt list` path
if TYPE_CHECKING:
    from typing import Any


def _query(**params: Any) -> str:
    """``?a=1&b=x&b=y`` from keyword arguments (None left out, lists repeated)."""
    parts = []
    for key, value in params.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is not None:
                parts.append(f"{key}={quote(str(item))}")
    return "?" + "&".join(parts) if parts else ""


class HostCalls(Session):
    # --- node ----------------------------------------------------------------------------
    def capabilities_data(self) -> dict[str, Any]:
        """{"xml": <capabilities> document, "capabilities": the same facts as data}."""
        data: dict[str, Any] = self.request("GET", "/v1/host/capabilities")
        return data

    def domain_capabilities(self, virttype: str | None = None, emulatorbin: str | None = None,
                            arch: str | None = None, machine: str | None = None) -> str:
        path = "/v1/host/domcapabilities" + _query(virttype=virttype, emulatorbin=emulatorbin, arch=arch,
                                                   machine=machine)
        return str(self.request("GET", path)["xml"])

    def node_info(self) -> dict[str, Any]:
        """nodeinfo: model (the architecture), cpus, mhz, sockets, cores, threads, nodes, memory_kib."""
        data: dict[str, Any] = self.request("GET", "/v1/host/node")
        return data

    def node_memory(self, cell: int | None = None) -> dict[str, Any]:
        """nodememstats in KiB: total, free, buffers, cached (a cell: total and free)."""
        data: dict[str, Any] = self.request("GET", "/v1/host/memory" + _query(cell=cell))
        return data

    def node_cpu(self, cpu: int | None = None) -> dict[str, int]:
        """nodecpustats in ns since boot: user, system, idle, iowait."""
        data: dict[str, int] = self.request("GET", "/v1/host/cpu" + _query(cpu=cpu))
        return data

    def cells(self) -> list[dict[str, Any]]:
        """Every NUMA cell: id, memory_kib, free_kib, cpus, pages [{size_kib, total, free}]."""
        return list(self.request("GET", "/v1/host/cells")["cells"])

    def allocate_pages(self, size_kib: int, count: int, cell: int | None = None, add: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = self.request("POST", "/v1/host/pages",
                                            {"size_kib": size_kib, "count": count, "cell": cell, "add": add})
        return data

    # --- KSM -----------------------------------------------------------------------------
    def ksm(self) -> dict[str, Any]:
        data: dict[str, Any] = self.request("GET", "/v1/host/ksm")
        return data

    def ksm_mode(self, mode: str) -> dict[str, Any]:
        data: dict[str, Any] = self.request("PUT", "/v1/host/ksm/mode", {"mode": mode})
        return data

    def ksm_start(self) -> dict[str, Any]:
        data: dict[str, Any] = self.request("POST", "/v1/host/ksm/start", {})
        return data

    def ksm_stop(self, unmerge: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = self.request("POST", "/v1/host/ksm/stop", {"unmerge": unmerge})
        return data

    def ksm_tune(self, settings: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self.request("PUT", "/v1/host/ksm/settings", {"settings": settings})
        return data

    # --- statistics ----------------------------------------------------------------------
    def domain_stats(self, domains: list[str] | None = None, groups: list[str] | None = None,
                     lists: list[str] | None = None) -> list[dict[str, Any]]:
        """domstats: [{name, uuid, stats: {virsh field: value}}]."""
        path = "/v1/stats" + _query(domain=domains or [], group=groups or [], list=lists or [])
        return list(self.request("GET", path)["domains"])

    # --- remote access: the TLS listener and API tokens --------------------------------------
    def remote_info(self) -> dict[str, Any]:
        """{"listen": "ADDR:PORT" | None, "fingerprint": the TLS certificate's SHA-256 | None}."""
        data: dict[str, Any] = self.request("GET", "/v1/remote")
        return data

    def list_tokens(self) -> list[dict[str, Any]]:
        """[{"id", "name", "scope", "created"}]: never a secret."""
        return list(self.request("GET", "/v1/tokens")["tokens"])

    def create_token(self, name: str, scope: str = "admin") -> dict[str, Any]:
        """A new token; its secret ("token") is in this answer only."""
        data: dict[str, Any] = self.request("POST", "/v1/tokens", {"name": name, "scope": scope})
        return data

    def revoke_token(self, ref: str) -> dict[str, Any]:
        data: dict[str, Any] = self.request("DELETE", f"/v1/tokens/{quote(ref)}")
        return data
