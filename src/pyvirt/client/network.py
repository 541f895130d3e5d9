"""Network handles of the Python client: one method per REST call (docs/openapi.yaml)."""
from __future__ import annotations

from .uri import quote

TYPE_CHECKING = False  # typing costs import time on the CLI path
if TYPE_CHECKING:
    from typing import Any

    from .session import Session


class Network:
    """A handle on one virtual network by name or UUID. Creating it sends nothing."""

    def __init__(self, conn: Session, ref: str, summary: dict[str, Any] | None = None) -> None:
        self._conn = conn
        self.ref = str(ref)
        self.last: dict[str, Any] | None = summary

    @property
    def name(self) -> str:
        return str(self.last["name"]) if self.last else self.ref

    def __repr__(self) -> str:
        return f"<Network {self.name!r}>"

    def _path(self, tail: str = "") -> str:
        return f"/v1/networks/{quote(self.ref)}{tail}"

    def _call(self, method: str, tail: str = "", payload: Any = None) -> Any:
        return self._conn.request(method, self._path(tail), payload)

    def _summary_call(self, method: str, tail: str, payload: Any = None) -> Network:
        self.last = self._call(method, tail, payload if payload is not None else {})
        return self

    def info(self) -> dict[str, Any]:
        """name, uuid, active, persistent, autostart, bridge, mode, connections."""
        data: dict[str, Any] = self._call("GET")
        self.last = data
        return data

    def start(self) -> Network:
        return self._summary_call("POST", "/start")

    def destroy(self, force: bool = False) -> dict[str, Any]:
        """Stop the network; with ``force`` even when running guests use it (the answer lists them)."""
        result: dict[str, Any] = self._call("POST", "/destroy", {"force": force})
        return result

    def undefine(self) -> Network:
        return self._summary_call("DELETE", "")

    def set_autostart(self, enabled: bool) -> Network:
        return self._summary_call("PUT", "/autostart", {"enabled": bool(enabled)})

    def xml(self, inactive: bool = False) -> str:
        return str(self._call("GET", "/xml?inactive=1" if inactive else "/xml")["xml"])

    def set_xml(self, xml: str) -> Network:
        return self._summary_call("PUT", "/xml", {"xml": xml})

    def dhcp_leases(self, mac: str | None = None) -> list[dict[str, Any]]:
        """[{expiry, mac, type, ipaddr, prefix, hostname, clientid, iface}] as virsh net-dhcp-leases shows."""
        tail = "/leases" + (f"?mac={quote(mac)}" if mac else "")
        return list(self._call("GET", tail)["leases"])

    def update(self, command: str, section: str, xml: str, *, live: bool, config: bool) -> Network:
        """net-update: add/delete/modify one ip-dhcp-host entry, live and/or in the definition."""
        return self._summary_call("POST", "/update", {"command": command, "section": section, "xml": xml,
                                                      "live": live, "config": config})
