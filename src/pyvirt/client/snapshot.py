"""Domain snapshot handles of the Python client (REST routes in api/snapshot_routes.py).

    dom = conn.domain("web1")
    snap = dom.create_snapshot()                 # named after the epoch seconds, as libvirt
    dom.snapshot("before-upgrade").revert()
    for row in dom.snapshots(): print(row["name"], row["state"], row["parent"])
"""
from __future__ import annotations

from .uri import quote

TYPE_CHECKING = False  # typing costs import time on the CLI path
if TYPE_CHECKING:
    from typing import Any, Protocol

    class SnapshotOwner(Protocol):
        """What a snapshot needs of its domain (client.domain.Domain is one), so this module sits below it."""

        @property
        def name(self) -> str: ...

        def request(self, method: str, tail: str = "", payload: Any = None) -> Any: ...


class DomainSnapshot:
    """A handle on one snapshot of a domain, by name. Creating it sends nothing."""

    def __init__(self, domain: SnapshotOwner, name: str, row: dict[str, Any] | None = None) -> None:
        self.domain = domain
        self.name = str(name)
        self.last: dict[str, Any] | None = row  # the newest row the daemon sent

    def __repr__(self) -> str:
        return f"<DomainSnapshot {self.name!r} of {self.domain.name!r}>"

    def _call(self, method: str, tail: str = "", payload: Any = None) -> Any:
        return self.domain.request(method, f"/snapshots/{quote(self.name)}{tail}", payload)

    def info(self) -> dict[str, Any]:
        """name, domain, description, state, parent, creation_time, location, current, memory,
        metadata, children, descendants, disks."""
        row: dict[str, Any] = self._call("GET")
        self.last = row
        return row

    def xml(self, security_info: bool = False) -> str:
        """The <domainsnapshot> XML, as `virsh snapshot-dumpxml` prints it; graphics passwords of the
        domain inside only with ``security_info``."""
        return str(self._call("GET", "/xml?security_info=1" if security_info else "/xml")["xml"])

    def parent(self) -> str | None:
        return self.info().get("parent")

    def revert(self, *, running: bool = False, paused: bool = False, force: bool = False) -> dict[str, Any]:
        """Bring the domain back to this snapshot; the answer is the snapshot's row plus ``domain_state``."""
        row: dict[str, Any] = self._call("POST", "/revert", {"running": running, "paused": paused, "force": force})
        self.last = row
        return row

    def delete(self, *, children: bool = False, children_only: bool = False, metadata: bool = False) -> dict[str, Any]:
        """Delete it (``children``: and its descendants; ``children_only``: only them; ``metadata``: keep images)."""
        flags = [k for k, on in (("children", children), ("children_only", children_only), ("metadata", metadata))
                 if on]
        query = ("?" + "&".join(f"{k}=1" for k in flags)) if flags else ""
        result: dict[str, Any] = self._call("DELETE", query)
        return result

    def set_current(self) -> DomainSnapshot:
        self.last = self._call("PUT", "/current", {})
        return self


def list_snapshots(domain: SnapshotOwner) -> dict[str, Any]:
    """{"snapshots": [row...] (by name), "current": name or None}."""
    data: dict[str, Any] = domain.request("GET", "/snapshots")
    return data


def create_snapshot(domain: SnapshotOwner, xml: str | None = None, **flags: bool) -> DomainSnapshot:
    """Take a snapshot from <domainsnapshot> XML (None: every default, named after the epoch seconds)."""
    payload: dict[str, Any] = {"xml": xml, **{k: bool(v) for k, v in flags.items()}}
    row = domain.request("POST", "/snapshots/create", payload)
    return DomainSnapshot(domain, row["name"], row)
