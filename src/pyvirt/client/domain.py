"""Domain handles of the Python client: one method per REST call (docs/openapi.yaml)."""
from __future__ import annotations

from ..errors import NotFound
from .snapshot import DomainSnapshot, create_snapshot, list_snapshots
from .uri import quote

TYPE_CHECKING = False  # typing costs import time on the `pyvirt list` path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from .console import ConsoleStream
    from .session import Session

ACTIVE_STATES = frozenset({"running", "paused", "in shutdown", "pmsuspended", "blocked", "idle"})


class DomainSummary:
    """One row of `GET /v1/domains`: id, name, uuid, state, reason, persistent, autostart."""

    __slots__ = ("id", "name", "uuid", "state", "reason", "persistent", "autostart", "title", "extra")

    def __init__(self, data: dict[str, Any]) -> None:
        data = dict(data)
        self.id: int | None = data.pop("id", None)
        self.name: str = data.pop("name")
        self.uuid: str = data.pop("uuid", "")
        self.state: str = data.pop("state", "")
        self.reason: str = data.pop("reason", "") or ""
        self.persistent: bool = bool(data.pop("persistent", True))
        self.autostart: bool = bool(data.pop("autostart", False))
        self.title: str = data.pop("title", "") or ""
        self.extra: dict[str, Any] = data  # fields a newer daemon added

    @property
    def active(self) -> bool:
        """Running in any form (has an id), as libvirt's virDomainIsActive."""
        return self.id is not None or self.state in ACTIVE_STATES

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id, "name": self.name, "uuid": self.uuid, "state": self.state, "reason": self.reason,
            "persistent": self.persistent, "autostart": self.autostart,
        }
        if self.title:
            out["title"] = self.title
        out.update(self.extra)
        return out

    def __repr__(self) -> str:
        return f"<DomainSummary {self.name!r} id={self.id} state={self.state!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DomainSummary) and self.to_dict() == other.to_dict()


class Domain:
    """A handle on one domain by name, UUID or id. Creating it sends nothing."""

    def __init__(self, conn: Session, ref: str, summary: DomainSummary | None = None) -> None:
        self._conn = conn
        self.ref = str(ref)
        self.last: DomainSummary | None = summary  # the newest summary the daemon sent

    @property
    def name(self) -> str:
        """The real name once the daemon answered about it, else the reference given."""
        return self.last.name if self.last is not None else self.ref

    def __repr__(self) -> str:
        return f"<Domain {self.name!r}>"

    # --- plumbing -------------------------------------------------------------------------
    def _path(self, tail: str = "") -> str:
        return f"/v1/domains/{quote(self.ref)}{tail}"

    def request(self, method: str, tail: str = "", payload: Any = None) -> Any:
        """One REST call under this domain's path (``tail`` such as "/snapshots"), as Connection.request."""
        return self._conn.request(method, self._path(tail), payload)

    def _summary_call(self, method: str, tail: str, payload: Any = None) -> Domain:
        data = self._conn.request(method, self._path(tail), payload)
        self.last = DomainSummary(data)
        return self

    def _action(self, action: str, payload: Any = None) -> Domain:
        return self._summary_call("POST", f"/{action}", payload if payload is not None else {})

    # --- lifecycle ------------------------------------------------------------------------
    def start(self, paused: bool = False, force_boot: bool = False) -> Domain:
        """Boot it, or continue it from its managed save image (``force_boot``: discard the image, boot)."""
        return self._action("start", {"paused": paused, **({"force_boot": True} if force_boot else {})})

    def shutdown(self, timeout: float | None = None) -> dict[str, Any]:
        """ACPI power-off. With ``timeout``, wait that long, then destroy; the answer says which."""
        result: dict[str, Any] = self._conn.request("POST", self._path("/shutdown"), {"timeout": timeout})
        return result

    def destroy(self) -> Domain:
        return self._action("destroy")

    def reboot(self) -> Domain:
        return self._action("reboot")

    def reset(self) -> Domain:
        return self._action("reset")

    def suspend(self) -> Domain:
        return self._action("suspend")

    def resume(self) -> Domain:
        return self._action("resume")

    def undefine(self, snapshots_metadata: bool = False, managed_save: bool = False) -> dict[str, Any]:
        """Remove the definition; a running domain goes on as a transient one.

        A shut-off domain with snapshots is refused unless ``snapshots_metadata`` (their metadata goes too),
        one with a managed save image unless ``managed_save`` (the image goes too).
        """
        flags = [n for n, on in (("snapshots_metadata", snapshots_metadata), ("managed_save", managed_save)) if on]
        tail = "?" + "&".join(f"{n}=1" for n in flags) if flags else ""
        result: dict[str, Any] = self._conn.request("DELETE", self._path(tail))
        return result

    def set_autostart(self, enabled: bool) -> Domain:
        return self._summary_call("PUT", "/autostart", {"enabled": bool(enabled)})

    # --- save -----------------------------------------------------------------------------
    def save(self, file: str, *, xml: str | None = None, running: bool = False, paused: bool = False,
             bypass_cache: bool = False) -> dict[str, Any]:
        """Its state into ``file`` (a path on the daemon's host); the domain ends shut off. Answers the image's
        size and the time taken."""
        body = {"file": file, "running": running, "paused": paused, "bypass_cache": bypass_cache,
                **({"xml": xml} if xml is not None else {})}
        result: dict[str, Any] = self._conn.request("POST", self._path("/save"), body)
        return result

    def managed_save(self, *, running: bool = False, paused: bool = False,
                     bypass_cache: bool = False) -> dict[str, Any]:
        """Save into the daemon's image of the domain; ``start`` continues from it."""
        body = {"running": running, "paused": paused, "bypass_cache": bypass_cache}
        result: dict[str, Any] = self._conn.request("PUT", self._path("/managed-save"), body)
        return result

    def managed_save_remove(self) -> bool:
        """Drop the managed save image; False when there was none."""
        return bool(self._conn.request("DELETE", self._path("/managed-save"))["removed"])

    # --- information ----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """dominfo: the summary plus os_type, vcpus, cpu_time_ns, memory, accel..."""
        data: dict[str, Any] = self._conn.request("GET", self._path())
        keys = ("id", "name", "uuid", "state", "reason", "persistent", "autostart")
        self.last = DomainSummary({k: data[k] for k in keys if k in data})
        return data

    def summary(self) -> DomainSummary:
        self.info()
        assert self.last is not None
        return self.last

    def state(self) -> tuple[str, str]:
        data = self._conn.request("GET", self._path("/state"))
        return data["state"], data.get("reason", "") or ""

    def uuid(self) -> str:
        return self.summary().uuid

    def id(self) -> int | None:
        """The id while running, None when shut off."""
        return self.summary().id

    def is_active(self) -> bool:
        return self.summary().active

    def xml(self, inactive: bool = False, security_info: bool = False) -> str:
        """The live XML while running, the persistent definition with ``inactive``; graphics
        passwords only with ``security_info`` (virsh's dumpxml --security-info)."""
        flags = [name for name, on in (("inactive", inactive), ("security_info", security_info)) if on]
        query = "?" + "&".join(f"{name}=1" for name in flags) if flags else ""
        data = self._conn.request("GET", self._path("/xml" + query))
        return str(data["xml"])

    def set_xml(self, xml: str) -> Domain:
        """Replace the persistent definition (the edit command): same UUID required."""
        return self._summary_call("PUT", "/xml", {"xml": xml})

    # --- interfaces -----------------------------------------------------------------------
    def interfaces(self, inactive: bool = False) -> list[dict[str, Any]]:
        """domiflist rows: {target, type, source, model, mac, link}."""
        query = "?inactive=1" if inactive else ""
        return list(self._conn.request("GET", self._path("/interfaces" + query))["interfaces"])

    def interface_addresses(self, source: str = "lease") -> list[dict[str, Any]]:
        """domifaddr rows: {name, mac, addrs: [{type, addr, prefix}]} (source: lease)."""
        path = self._path(f"/interfaces/addresses?source={quote(source)}")
        return list(self._conn.request("GET", path)["interfaces"])

    def interface_stats(self, device: str) -> dict[str, int]:
        """domifstat counters, from the guest's side (rx = what the guest received)."""
        data: dict[str, int] = self._conn.request("GET", self._path(f"/interfaces/{quote(device)}/stats"))
        return data

    def get_link(self, device: str, inactive: bool = False) -> str:
        q = "?inactive=1" if inactive else ""
        return str(self._conn.request("GET", self._path(f"/interfaces/{quote(device)}/link{q}"))["state"])

    def set_link(self, device: str, state: str, *, live: bool = True, config: bool = False) -> None:
        self._conn.request("PUT", self._path(f"/interfaces/{quote(device)}/link"),
                           {"state": state, "live": live, "config": config})

    def attach_interface(self, xml: str, *, live: bool = True, config: bool = False) -> dict[str, Any]:
        """Add an <interface> (live over QMP and/or to the definition); answers its live row."""
        result: dict[str, Any] = self._conn.request("POST", self._path("/interfaces"),
                                                    {"xml": xml, "live": live, "config": config})
        return result

    def detach_interface(self, *, type: str, mac: str | None = None, live: bool = True,
                         config: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self._conn.request("POST", self._path("/interfaces/detach"),
                                                    {"type": type, "mac": mac, "live": live, "config": config})
        return result

    # --- disks ----------------------------------------------------------------------------
    def disks(self, inactive: bool = False) -> list[dict[str, Any]]:
        """domblklist rows: {type, device, target, source (path, or volume name), bus, format, pool, path}."""
        return list(self._conn.request("GET", self._path("/disks" + ("?inactive=1" if inactive else "")))["disks"])

    def attach_disk(self, xml: str, *, live: bool = True, config: bool = False) -> dict[str, Any]:
        """Add a <disk> (hot-plugged over QMP and/or to the definition)."""
        result: dict[str, Any] = self._conn.request("POST", self._path("/disks/attach"),
                                                    {"xml": xml, "live": live, "config": config})
        return result

    def detach_disk(self, target: str, *, live: bool = True, config: bool = False) -> dict[str, Any]:
        """Remove a disk by target dev or source path."""
        result: dict[str, Any] = self._conn.request("POST", self._path("/disks/detach"),
                                                    {"target": target, "live": live, "config": config})
        return result

    def attach_device(self, xml: str, *, live: bool = True, config: bool = False) -> dict[str, Any]:
        """attach-device: a <disk> or an <interface> element."""
        result: dict[str, Any] = self._conn.request("POST", self._path("/devices/attach"),
                                                    {"xml": xml, "live": live, "config": config})
        return result

    def detach_device(self, xml: str, *, live: bool = True, config: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self._conn.request("POST", self._path("/devices/detach"),
                                                    {"xml": xml, "live": live, "config": config})
        return result

    def block_info(self, target: str | None = None) -> list[dict[str, Any]]:
        """domblkinfo: [{target, capacity, allocation, physical}] in bytes, of one disk or of all."""
        query = f"?target={quote(target)}" if target else ""
        return list(self._conn.request("GET", self._path(f"/disks/info{query}"))["disks"])

    def block_stats(self, target: str | None = None) -> dict[str, Any]:
        """domblkstat: {device, rd_req, rd_bytes, wr_req, wr_bytes, flush_operations, *_total_times}."""
        query = f"?target={quote(target)}" if target else ""
        data: dict[str, Any] = self._conn.request("GET", self._path(f"/disks/stats{query}"))
        return data

    def change_media(self, target: str, action: str, source: str | None = None, *, live: bool = True,
                     config: bool = False, force: bool = False, block: bool = False) -> dict[str, Any]:
        """Eject, insert or update (eject + insert) the medium of a CD-ROM."""
        result: dict[str, Any] = self._conn.request("POST", self._path("/disks/media"), {
            "target": target, "action": action, "source": source, "live": live, "config": config,
            "force": force, "block": block})
        return result

    def block_resize(self, target: str, size: int) -> dict[str, Any]:
        """Grow a running domain's disk to ``size`` bytes."""
        result: dict[str, Any] = self._conn.request("POST", self._path("/disks/resize"),
                                                    {"target": target, "size": int(size)})
        return result

    # --- statistics and tuning --------------------------------------------------------------
    def memory_stats(self) -> dict[str, Any]:
        """dommemstat (KiB): actual, swap_in, ..., rss; a figure the guest does not report is None."""
        data: dict[str, Any] = self._conn.request("GET", self._path("/memstats"))
        return data

    def set_memory_stats_period(self, period: int, *, live: bool = False, config: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = self._conn.request("PUT", self._path("/memstats"),
                                                  {"period": period, "live": live, "config": config})
        return data

    def _tuning(self, what: str, inactive: bool) -> dict[str, Any]:
        data: dict[str, Any] = self._conn.request("GET", self._path(f"/{what}" + ("?inactive=1" if inactive else "")))
        return data

    def schedinfo(self, inactive: bool = False) -> dict[str, Any]:
        """scheduler, cpu_shares, vcpu_period, vcpu_quota (None: not set), applied, note."""
        return self._tuning("schedinfo", inactive)

    def set_schedinfo(self, params: dict[str, Any], *, live: bool = False, config: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = self._conn.request("PUT", self._path("/schedinfo"),
                                                  {"params": params, "live": live, "config": config})
        return data

    def memtune(self, inactive: bool = False) -> dict[str, Any]:
        return self._tuning("memtune", inactive)

    def set_memtune(self, hard_limit_kib: int | None = None, soft_limit_kib: int | None = None, *,
                    live: bool = False, config: bool = False) -> dict[str, Any]:
        """-1 removes a limit."""
        data: dict[str, Any] = self._conn.request("PUT", self._path("/memtune"), {
            "hard_limit_kib": hard_limit_kib, "soft_limit_kib": soft_limit_kib, "live": live, "config": config})
        return data

    def blkiotune(self, inactive: bool = False) -> dict[str, Any]:
        return self._tuning("blkiotune", inactive)

    def set_blkiotune(self, weight: int, *, live: bool = False, config: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = self._conn.request("PUT", self._path("/blkiotune"),
                                                  {"weight": weight, "live": live, "config": config})
        return data

    # --- memory size and vCPUs (vcpu11) ----------------------------------------------------
    def set_memory(self, size_kib: int, *, live: bool = False, config: bool = False) -> dict[str, Any]:
        """setmem: the balloon target (live) and/or <currentMemory> (config); neither: --current."""
        data: dict[str, Any] = self._conn.request("PUT", self._path("/memory"),
                                                  {"size_kib": size_kib, "live": live, "config": config})
        return data

    def set_max_memory(self, size_kib: int, *, live: bool = False, config: bool = False) -> dict[str, Any]:
        """setmaxmem: <memory> of the definition (a running guest's maximum cannot change)."""
        data: dict[str, Any] = self._conn.request("PUT", self._path("/max-memory"),
                                                  {"size_kib": size_kib, "live": live, "config": config})
        return data

    def vcpu_count(self) -> dict[str, Any]:
        """vcpucount: maximum_config, maximum_live, current_config, current_live (None where there is none)."""
        data: dict[str, Any] = self._conn.request("GET", self._path("/vcpus"))
        return data

    def set_vcpus(self, count: int, *, live: bool = False, config: bool = False, maximum: bool = False,
                  guest: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = self._conn.request("PUT", self._path("/vcpus"), {
            "count": count, "live": live, "config": config, "maximum": maximum, "guest": guest})
        return data

    def vcpu_info(self) -> dict[str, Any]:
        """vcpuinfo: host_cpus and one row per vCPU (vcpu, cpu, state, cpu_time_ns, affinity)."""
        data: dict[str, Any] = self._conn.request("GET", self._path("/vcpus/info"))
        return data

    def _scoped(self, what: str, live: bool, config: bool) -> dict[str, Any]:
        flags = "&".join(name + "=1" for name, on in (("live", live), ("config", config)) if on)
        data: dict[str, Any] = self._conn.request("GET", self._path(f"/{what}" + (f"?{flags}" if flags else "")))
        return data

    def vcpu_pinning(self, *, live: bool = False, config: bool = False) -> dict[str, Any]:
        """vcpupin's query: host_cpus and {vcpu, cpus} per vCPU."""
        return self._scoped("vcpupin", live, config)

    def pin_vcpu(self, vcpu: int, cpulist: str, *, live: bool = False, config: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = self._conn.request("PUT", self._path("/vcpupin"), {
            "vcpu": vcpu, "cpulist": cpulist, "live": live, "config": config})
        return data

    def emulator_pinning(self, *, live: bool = False, config: bool = False) -> dict[str, Any]:
        return self._scoped("emulatorpin", live, config)

    def pin_emulator(self, cpulist: str, *, live: bool = False, config: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = self._conn.request("PUT", self._path("/emulatorpin"),
                                                  {"cpulist": cpulist, "live": live, "config": config})
        return data

    # --- snapshots ------------------------------------------------------------------------
    def snapshots(self) -> list[dict[str, Any]]:
        """snapshot-list rows, by name: name, state, parent, creation_time, current, location, children..."""
        return list(list_snapshots(self)["snapshots"])

    def snapshot(self, name: str) -> DomainSnapshot:
        """A handle on snapshot ``name`` (nothing is sent until it is used)."""
        return DomainSnapshot(self, name)

    def current_snapshot(self) -> DomainSnapshot:
        """The current snapshot (the last one taken or reverted to); NotFound when there is none."""
        data = list_snapshots(self)
        row = next((r for r in data["snapshots"] if r["name"] == data.get("current")), None)
        if row is None:
            raise NotFound(f"domain '{self.name}' has no current snapshot")
        return DomainSnapshot(self, row["name"], row)

    def create_snapshot(self, xml: str | None = None, *, disk_only: bool = False, no_metadata: bool = False,
                        halt: bool = False, live: bool = False, atomic: bool = False, quiesce: bool = False,
                        reuse_external: bool = False) -> DomainSnapshot:
        """Take an internal snapshot from <domainsnapshot> XML (None: the defaults, named by epoch seconds)."""
        return create_snapshot(self, xml, disk_only=disk_only, no_metadata=no_metadata, halt=halt, live=live,
                               atomic=atomic, quiesce=quiesce, reuse_external=reuse_external)

    # --- streams --------------------------------------------------------------------------
    def console(self, force: bool = False, timeout: float = 10.0) -> ConsoleStream:
        """The guest's serial console over a websocket; ``force`` takes over another session."""
        from .console import ConsoleStream

        return ConsoleStream(self._conn.endpoint, self.ref, force=force, timeout=timeout)

    def events(self) -> Iterator[dict[str, Any]]:
        """Lifecycle events of this domain as they happen (blocks; stop by closing the iterator)."""
        return self._conn.stream_events(self._path("/events"))
