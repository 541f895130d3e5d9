"""NetworkManager: every net-* verb, each under the network's lock.

Definitions live in the store (kind "network"); an active network has a
runtime record (bridge, dnsmasq pid) so a restarted daemon reattaches to it
instead of recreating it (leases and guests' links survive). The nftables
table is rebuilt from the set of active networks after every change.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..config import Config
from ..errors import AlreadyExists, InvalidArgument, NotFound, OperationInvalid, PyvirtError
from ..model.network import Network
from ..model.network_xml import (
    check_overlap,
    default_network,
    format_network_xml,
    normalize_network,
    parse_network_xml,
)
from ..network import lifecycle
from ..network.leases import Lease
from ..state.store import ObjectRow, Store
from .eventbus import EventBus

log = logging.getLogger(__name__)

KIND = "network"
LOCK_WAIT_SECONDS = 30.0
DEFAULT_CREATED = "default_network_defined"
# Domain interface users of a network: name -> [(domain name, interface target dev)]
UsersFn = Callable[[str], list[tuple[str, str | None]]]


@dataclass(eq=False)
class NetEntry:
    uuid: str
    name: str
    config: Network
    persistent: bool
    autostart: bool = False
    runtime: lifecycle.NetRuntime | None = None
    live: Network | None = None  # the definition the active network runs (net-update --live changes it)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def active(self) -> bool:
        return self.runtime is not None

    @property
    def current(self) -> Network:
        return self.live if self.live is not None else self.config

    @property
    def bridge(self) -> str | None:
        if self.runtime is not None and self.runtime.bridge:
            return self.runtime.bridge
        return self.current.bridge.name if self.current.bridge else None

    def summary(self) -> dict[str, object]:
        return {"name": self.name, "uuid": self.uuid, "active": self.active, "persistent": self.persistent,
                "autostart": self.autostart, "bridge": self.bridge, "mode": self.current.mode}


class NetworkManager:
    def __init__(self, config: Config, store: Store, bus: EventBus) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self.nets: dict[str, NetEntry] = {}
        self.users: UsersFn = lambda name: []
        self.replug: Callable[[str], None] = lambda name: None  # guests' taps back onto a restarted network
        self.host = lifecycle.HostSide.for_config(config)

    # ------------------------------------------------------------------ load
    async def load(self) -> None:
        runtimes = self.store.object_runtimes(KIND)
        for row in self.store.objects(KIND):
            try:
                net = parse_network_xml(row.xml)
            except PyvirtError:
                log.exception("stored definition of network %s no longer parses; skipping it", row.name)
                continue
            entry = NetEntry(row.uuid, row.name, net, row.persistent, row.autostart)
            self.nets[entry.name] = entry
            data = runtimes.get(row.uuid)
            if data is not None:
                await self._reattach(entry, data)
        if self.config.settings.default_network and self.store.get_meta(DEFAULT_CREATED) is None:
            await self._define_default()
        if runtimes:  # networks were active: rebuild (or drop) their table; nothing to run otherwise
            await asyncio.to_thread(self._sync_firewall)

    async def _reattach(self, entry: NetEntry, data: dict[str, object]) -> None:
        runtime = lifecycle.NetRuntime.from_dict(data)
        live = parse_network_xml(str(data["live_xml"])) if data.get("live_xml") else entry.config
        try:
            found = await asyncio.to_thread(self.host.reattach, live, runtime)
        except PyvirtError as exc:
            log.error("network %s: cannot reattach: %s; it is shown inactive", entry.name, exc)
            found = None
        if found is None:
            log.info("network %s: its bridge is gone since the last daemon run; marked inactive", entry.name)
            with contextlib.suppress(PyvirtError):
                await asyncio.to_thread(self.host.stop, live, runtime)
            self.store.delete_object_runtime(KIND, entry.uuid)
            if not entry.persistent:
                self._forget(entry)
            return
        entry.runtime, entry.live = found, live
        self._record(entry)
        log.info("network %s: reattached (bridge %s, dnsmasq pid %s)", entry.name, found.bridge, found.dnsmasq_pid)

    async def _define_default(self) -> None:
        """libvirt's `default` NAT network, on a free subnet and bridge name."""
        taken = [*self._defined_subnets(), *await asyncio.to_thread(self.host.host_subnets)]
        bridges = {e.bridge for e in self.nets.values() if e.bridge} | set(await asyncio.to_thread(self.host.link_names, "virbr"))
        if "default" not in self.nets:
            net, note = default_network(taken, bridges)
            if note:
                log.warning("%s", note)
            net = normalize_network(net, taken_macs=self._taken_macs())
            entry = NetEntry(net.uuid, net.name, net, persistent=True, autostart=True)
            self.nets[entry.name] = entry
            self._store(entry)
            self._emit(entry, "defined", note or "default network")
        self.store.set_meta(DEFAULT_CREATED, "1")

    async def autostart(self) -> None:
        """Start autostart networks once per host boot (before domains' autostart)."""
        marker = self.config.paths.run / "net-autostarted"
        if marker.exists():
            return
        marker.touch()
        for entry in list(self.nets.values()):
            if entry.autostart and not entry.active:
                try:
                    await self.start(entry.name)
                except PyvirtError as exc:
                    log.error("autostart of network %s failed: %s", entry.name, exc)

    # --------------------------------------------------------------- queries
    def lookup(self, ref: str) -> NetEntry:
        entry = self.nets.get(ref) or next((e for e in self.nets.values() if e.uuid == ref.lower()), None)
        if entry is None:
            raise NotFound(f"failed to get network '{ref}': no network with matching name or uuid; "
                           "see `pyvirt net-list --all`")
        return entry

    def list(self) -> list[dict[str, object]]:
        return [e.summary() for e in sorted(self.nets.values(), key=lambda e: e.name)]

    def info(self, ref: str) -> dict[str, object]:
        entry = self.lookup(ref)
        return {**entry.summary(), "connections": len(self.users(entry.name)) if entry.active else 0}

    def get_xml(self, ref: str, inactive: bool = False) -> str:
        entry = self.lookup(ref)
        if inactive or not entry.active:
            return format_network_xml(entry.config)
        return format_network_xml(entry.current, connections=len(self.users(entry.name)) or None)

    def leases(self, ref: str, mac: str | None = None) -> list[Lease]:
        entry = self.lookup(ref)
        if not entry.active:
            raise OperationInvalid(f"network '{entry.name}' is not active; start it with `pyvirt net-start {entry.name}`")
        found = self.host.leases(entry.current)
        return [lease for lease in found if mac is None or lease.mac == mac.lower()]

    def port(self, ref: str) -> tuple[NetEntry, Network]:
        """The active network a guest interface plugs into (its live definition)."""
        entry = self.lookup(ref)
        if not entry.active:
            raise OperationInvalid(
                f"network '{entry.name}' is not active; start it with `pyvirt net-start {entry.name}` "
                "(or mark it autostart with `pyvirt net-autostart`)")
        return entry, entry.current

    # ------------------------------------------------------------ definition
    def _parse(self, xml: str) -> Network:
        """Parse and fill the gaps; a definition without uuid for an existing name redefines that network."""
        net = parse_network_xml(xml)
        existing = self.nets.get(net.name)
        if not net.uuid and existing is not None:
            net = replace(net, uuid=existing.uuid)
        if net.mac is None and existing is not None and existing.config.mac:
            net = replace(net, mac=existing.config.mac)
        return normalize_network(net, taken_macs=self._taken_macs(exclude=net.name))

    def _check_free(self, net: Network) -> NetEntry | None:
        by_name = self.nets.get(net.name)
        by_uuid = next((e for e in self.nets.values() if e.uuid == net.uuid), None)
        if by_name is not None and by_name.uuid != net.uuid:
            raise AlreadyExists(f"network '{net.name}' already exists with uuid {by_name.uuid}; choose another "
                                "name, or undefine it first")
        if by_uuid is not None and by_uuid.name != net.name:
            raise AlreadyExists(f"network '{by_uuid.name}' already exists with uuid {net.uuid}; give the new network "
                                "another uuid (or none, and one is generated)")
        return by_name

    def _check_conflicts(self, net: Network) -> None:
        others = [e for e in self.nets.values() if e.name != net.name]
        check_overlap(net, [(ip.subnet, f"network '{e.name}'") for e in others for ip in e.current.ips])
        name = net.bridge.name if net.bridge else None
        if name and net.owns_bridge:
            for e in others:
                if e.bridge == name and e.current.owns_bridge:
                    raise AlreadyExists(f"bridge name '{name}' is already used by network '{e.name}'; "
                                        "choose another <bridge name=...> or leave it out to get a free virbrN")

    def _fill_bridge_name(self, net: Network) -> Network:
        if not net.owns_bridge or (net.bridge and net.bridge.name):
            return net
        used = {e.bridge for e in self.nets.values() if e.bridge} | set(self.host.link_names("virbr"))
        n = 0
        while f"virbr{n}" in used:
            n += 1
        bridge = net.bridge or lifecycle.default_bridge()
        return replace(net, bridge=replace(bridge, name=f"virbr{n}"))

    async def define(self, xml: str) -> NetEntry:
        net = self._parse(xml)
        existing = self._check_free(net)
        net = self._fill_bridge_name(net)
        self._check_conflicts(net)
        if existing is not None:
            async with _lock(existing, "define"):
                existing.config, existing.persistent = net, True
                self._store(existing)
            self._emit(existing, "defined", "updated")
            return existing
        entry = NetEntry(net.uuid, net.name, net, persistent=True)
        self.nets[entry.name] = entry
        self._store(entry)
        self._emit(entry, "defined", "added")
        return entry

    async def create(self, xml: str) -> NetEntry:
        net = self._fill_bridge_name(self._parse(xml))
        if self._check_free(net) is not None:
            raise AlreadyExists(f"network '{net.name}' already exists; start it with `pyvirt net-start {net.name}`")
        self._check_conflicts(net)
        entry = NetEntry(net.uuid, net.name, net, persistent=False)
        self.nets[entry.name] = entry
        try:
            async with _lock(entry, "create"):
                await self._start_locked(entry)
        except BaseException:
            self._forget(entry)
            raise
        return entry

    async def set_xml(self, ref: str, xml: str) -> NetEntry:
        """net-edit: replace the persistent definition (the running network keeps its live one)."""
        entry = self.lookup(ref)
        net = self._parse(xml)
        if net.name != entry.name:
            raise InvalidArgument(f"net-edit cannot rename network '{entry.name}' to '{net.name}'; "
                                  "define a new network instead")
        if net.uuid and net.uuid != entry.uuid:
            raise InvalidArgument(f"net-edit cannot change the uuid of network '{entry.name}'")
        net = self._fill_bridge_name(replace(net, uuid=entry.uuid))
        self._check_conflicts(net)
        async with _lock(entry, "edit"):
            entry.config, entry.persistent = net, True
            self._store(entry)
        self._emit(entry, "defined", "updated")
        return entry

    async def undefine(self, ref: str) -> NetEntry:
        entry = self.lookup(ref)
        async with _lock(entry, "undefine"):
            if not entry.persistent:
                raise OperationInvalid(f"network '{entry.name}' is transient; destroy it with "
                                       f"`pyvirt net-destroy {entry.name}`")
            if entry.active:
                entry.persistent, entry.autostart = False, False
                self._store(entry)
            else:
                self._forget(entry)
        self._emit(entry, "undefined", "removed")
        return entry

    async def set_autostart(self, ref: str, enabled: bool) -> NetEntry:
        entry = self.lookup(ref)
        if not entry.persistent:
            raise OperationInvalid(f"cannot set autostart for transient network '{entry.name}'; "
                                   "define it first with `pyvirt net-define`")
        async with _lock(entry, "autostart"):
            entry.autostart = enabled
            self._store(entry)
        return entry

    # ------------------------------------------------------------- lifecycle
    async def start(self, ref: str) -> NetEntry:
        entry = self.lookup(ref)
        async with _lock(entry, "start"):
            await self._start_locked(entry)
        return entry

    async def _start_locked(self, entry: NetEntry) -> None:
        if entry.active:
            raise OperationInvalid(f"network '{entry.name}' is already active")
        net = entry.config
        await asyncio.to_thread(self.host.check_startable, net)
        runtime = await asyncio.to_thread(self.host.start, net)
        entry.runtime, entry.live = runtime, net
        self._record(entry)
        try:
            await asyncio.to_thread(self._sync_firewall)
        except PyvirtError:
            entry.runtime, entry.live = None, None
            self.store.delete_object_runtime(KIND, entry.uuid)
            await asyncio.to_thread(self.host.stop, net, runtime)
            raise
        await asyncio.to_thread(self.replug, entry.name)
        self._emit(entry, "started", "booted")

    async def destroy(self, ref: str, force: bool = False) -> dict[str, object]:
        entry = self.lookup(ref)
        async with _lock(entry, "destroy"):
            if not entry.active:
                raise OperationInvalid(f"network '{entry.name}' is not active")
            users = self.users(entry.name)
            if users and not force:
                names = ", ".join(sorted({d for d, _ in users}))
                raise OperationInvalid(
                    f"network '{entry.name}' is in use by running domains: {names}; stop them first, "
                    "or use --force (their interfaces lose their links)")
            runtime, live = entry.runtime, entry.current
            assert runtime is not None
            entry.runtime, entry.live = None, None
            self.store.delete_object_runtime(KIND, entry.uuid)
            try:
                await asyncio.to_thread(self.host.stop, live, runtime)
            finally:
                await asyncio.to_thread(self._sync_firewall)
            self._emit(entry, "stopped", "destroyed")
            if not entry.persistent:
                self._forget(entry)
        lost = [{"domain": d, "interface": dev} for d, dev in users]
        return {"name": entry.name, "disconnected": lost}

    # ------------------------------------------------------------- net-update
    async def update(self, ref: str, body: dict[str, object]) -> NetEntry:
        """net-update COMMAND ip-dhcp-host XML: add/delete/modify a static lease, live and/or in the definition."""
        command, section, xml = body.get("command"), body.get("section"), body.get("xml")
        if section != "ip-dhcp-host":
            raise InvalidArgument(f"net-update section {section!r} is not supported; supported: ip-dhcp-host")
        if command not in lifecycle.UPDATE_COMMANDS:
            raise InvalidArgument(f"net-update command {command!r} is unknown; use add-first, add-last, delete "
                                  "or modify")
        if not isinstance(xml, str):
            raise InvalidArgument("net-update needs the <host .../> element as 'xml'")
        host = lifecycle.parse_dhcp_host(xml)
        live, config = bool(body.get("live")), bool(body.get("config"))
        if not (live or config):
            raise InvalidArgument("net-update needs --live and/or --config")
        entry = self.lookup(ref)
        async with _lock(entry, "update"):
            if live and not entry.active:
                raise OperationInvalid(f"network '{entry.name}' is not active; use --config to change its definition")
            if config and not entry.persistent:
                raise OperationInvalid(f"network '{entry.name}' is transient; it has no persistent config to update")
            new_config = lifecycle.update_dhcp_hosts(entry.config, str(command), host) if config else None
            new_live = lifecycle.update_dhcp_hosts(entry.current, str(command), host) if live else None
            if new_live is not None and entry.runtime is not None:
                await asyncio.to_thread(self.host.reload_hosts, new_live, entry.runtime)
                entry.live = new_live
                self._record(entry)
            if new_config is not None:
                entry.config = new_config
                self._store(entry)
        return entry

    # ---------------------------------------------------------------- helpers
    def active_entries(self) -> list[NetEntry]:
        return [e for e in self.nets.values() if e.active]

    def _sync_firewall(self) -> None:
        self.host.sync_firewall([(e.current, e.runtime) for e in self.active_entries() if e.runtime])

    def _defined_subnets(self) -> list[tuple[object, str]]:
        return [(ip.subnet, f"network '{e.name}'") for e in self.nets.values() for ip in e.current.ips]

    def _taken_macs(self, exclude: str | None = None) -> set[str]:
        return {e.current.mac for e in self.nets.values() if e.current.mac and e.name != exclude}

    def _store(self, entry: NetEntry) -> None:
        self.store.put_object(ObjectRow(KIND, entry.uuid, entry.name, format_network_xml(entry.config),
                                        entry.persistent, entry.autostart))

    def _record(self, entry: NetEntry) -> None:
        if entry.runtime is not None:
            data = entry.runtime.to_dict()
            data["live_xml"] = format_network_xml(entry.current)
            self.store.put_object_runtime(KIND, entry.uuid, data)

    def _forget(self, entry: NetEntry) -> None:
        self.store.delete_object(KIND, entry.uuid)
        if self.nets.get(entry.name) is entry:
            del self.nets[entry.name]

    def _emit(self, entry: NetEntry, event: str, detail: str) -> None:
        """Network lifecycle goes to the log; the event stream carries domains only (so far)."""
        log.info("network %s: event %s (%s) -> %s", entry.name, event, detail,
                 "active" if entry.active else "inactive")


@contextlib.asynccontextmanager
async def _lock(entry: NetEntry, verb: str):  # type: ignore[no-untyped-def]
    try:
        await asyncio.wait_for(entry.lock.acquire(), LOCK_WAIT_SECONDS)
    except TimeoutError as exc:
        raise OperationInvalid(f"cannot {verb} network '{entry.name}': another job holds it; try again later") from exc
    try:
        yield
    finally:
        entry.lock.release()
