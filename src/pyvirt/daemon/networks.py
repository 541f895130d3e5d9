"""NetworkManager: every net-* verb, each under the network's job lock.

Definitions live in the store (kind "network"); an active network has a
runtime record (bridge, dnsmasq pid) so a restarted daemon reattaches to it
instead of recreating it (leases and guests' links survive). The nftables
table is rebuilt from the set of active networks after every change. Which
guests are plugged in is read from the domain table.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field, replace

from .. import faults
from ..config import Config
from ..errors import AlreadyExists, InvalidArgument, OperationInvalid, PyvirtError
from ..model.network import Network
from ..model.network_xml import (
    IPNetwork,
    check_overlap,
    default_network,
    format_network_xml,
    normalize_network,
    parse_network_xml,
)
from ..network import lifecycle, links, ports
from ..network.leases import Lease, format_expiry
from ..state.store import ObjectRow, Store
from .domain_table import DomainTable
from .objects import Kind, Registry, autostart_once
from .results import LeaseRow, LostLink, NetworkDestroyed, NetworkInfo, NetworkSummary
from .states import NETWORK_STATES, NetState

log = logging.getLogger(__name__)

KIND = "network"
STARTING = "starting"  # the state of a runtime record written before net-start changes the host
NETWORKS = Kind("network", "network", "pyvirt net-list --all")
DEFAULT_CREATED = "default_network_defined"


@dataclass(eq=False)
class NetEntry:
    uuid: str
    name: str
    config: Network
    persistent: bool
    autostart: bool = False
    state: NetState = NetState.INACTIVE
    runtime: lifecycle.NetRuntime | None = None
    live: Network | None = None  # the definition the active network runs (net-update --live changes it)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def active(self) -> bool:
        return self.state is NetState.ACTIVE

    @property
    def current(self) -> Network:
        return self.live if self.live is not None else self.config

    @property
    def bridge(self) -> str | None:
        if self.runtime is not None and self.runtime.bridge:
            return self.runtime.bridge
        return self.current.bridge.name if self.current.bridge else None

    def summary(self) -> NetworkSummary:
        return NetworkSummary(self.name, self.uuid, self.active, self.persistent, self.autostart, self.bridge,
                              self.current.mode)


class NetworkManager:
    def __init__(self, config: Config, store: Store, domains: DomainTable) -> None:
        self.config = config
        self.store = store
        self.domains = domains
        self.nets: Registry[NetEntry] = Registry(NETWORKS)
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
            self.nets.add(entry)
            data = runtimes.get(row.uuid)
            if data is not None:
                await self._reattach(entry, data)
        if self.config.settings.default_network and self.store.get_meta(DEFAULT_CREATED) is None:
            await self._define_default()
        if runtimes:  # networks were active: rebuild (or drop) their table; nothing to run otherwise
            await asyncio.to_thread(self._sync_firewall)

    async def _reattach(self, entry: NetEntry, data: dict[str, object]) -> None:
        live = parse_network_xml(str(data["live_xml"])) if data.get("live_xml") else entry.config
        if data.get("state") == STARTING:  # the last daemon died inside net-start
            bridge = data.get("bridge")
            try:
                await asyncio.to_thread(self.host.abandon, live, bridge if isinstance(bridge, str) else None)
            except PyvirtError as exc:
                log.error("network %s: cannot undo the start the last daemon did not finish: %s", entry.name, exc)
            else:
                log.info("network %s: undid a start the last daemon did not finish", entry.name)
            self.store.delete_object_runtime(KIND, entry.uuid)
            if not entry.persistent:
                self._forget(entry)
            return
        runtime = lifecycle.NetRuntime.from_dict(data)
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
        NETWORK_STATES.move(entry, NetState.ACTIVE, "reattached after a daemon restart")
        self._record(entry)
        log.info("network %s: reattached (bridge %s, dnsmasq pid %s)", entry.name, found.bridge, found.dnsmasq_pid)

    async def _define_default(self) -> None:
        """libvirt's `default` NAT network, on a free subnet and bridge name."""
        taken = [*self._defined_subnets(), *await asyncio.to_thread(self.host.host_subnets)]
        host_bridges = await asyncio.to_thread(self.host.link_names, "virbr")
        bridges = {e.bridge for e in self.nets if e.bridge} | set(host_bridges)
        if self.nets.get("default") is None:
            net, note = default_network(taken, bridges)
            if note:
                log.warning("%s", note)
            net = normalize_network(net, taken_macs=self._taken_macs())
            entry = NetEntry(net.uuid, net.name, net, persistent=True, autostart=True)
            self.nets.add(entry)
            self._store(entry)
            self._emit(entry, "defined", note or "default network")
        self.store.set_meta(DEFAULT_CREATED, "1")

    async def autostart(self) -> None:
        """Start autostart networks once per host boot (before domains' autostart)."""
        await autostart_once(self.config.paths.run / "net-autostarted", "network", self.nets,
                             lambda e: e.active, lambda e: self.start(e.name))

    # --------------------------------------------------------------- queries
    def lookup(self, ref: str) -> NetEntry:
        return self.nets.lookup(ref)

    def list_all(self) -> list[NetworkSummary]:
        return [e.summary() for e in self.nets.by_name()]

    def info(self, ref: str) -> NetworkInfo:
        entry = self.lookup(ref)
        return NetworkInfo(**vars(entry.summary()),
                           connections=len(self.users(entry.name)) if entry.active else 0)

    def users(self, network: str) -> list[LostLink]:
        """The interfaces of running domains plugged into ``network`` (domain, host device)."""
        return [LostLink(entry.name, nic.target_dev)
                for entry, run in self.domains.running()
                for nic in run.live.devices.interfaces
                if nic.type == "network" and dict(nic.source).get("network") == network]

    def _replug(self, entry: NetEntry) -> None:
        """The network came back (net-start after net-destroy --force): plug its guests' taps in again."""
        bridge = entry.bridge
        if bridge is None or entry.current.is_macvtap:
            return
        for dom, run in self.domains.running():
            for nic in run.live.devices.interfaces:
                if nic.type != "network" or dict(nic.source).get("network") != entry.name or not nic.target_dev:
                    continue
                try:
                    if links.link_exists(nic.target_dev):
                        links.plug_into_bridge(nic.target_dev, bridge, mtu=entry.current.mtu,
                                               mac=ports.guest_side_mac(nic.mac or "52:54:00:00:00:00"))
                except PyvirtError as exc:
                    log.warning("domain %s: cannot re-plug %s into network %s: %s", dom.name, nic.target_dev,
                                entry.name, exc)

    def get_xml(self, ref: str, inactive: bool = False) -> str:
        entry = self.lookup(ref)
        if inactive or not entry.active:
            return format_network_xml(entry.config)
        return format_network_xml(entry.current, connections=len(self.users(entry.name)) or None)

    def leases(self, ref: str, mac: str | None = None) -> list[Lease]:
        entry = self.lookup(ref)
        if not entry.active:
            raise OperationInvalid(f"network '{entry.name}' is not active; start it with "
                                   f"`pyvirt net-start {entry.name}`")
        found = self.host.leases(entry.current)
        return [lease for lease in found if mac is None or lease.mac == mac.lower()]

    def dhcp_leases(self, ref: str, mac: str | None = None) -> list[LeaseRow]:
        """net-dhcp-leases rows."""
        return [LeaseRow(lease.expiry, format_expiry(lease.expiry), lease.mac, lease.family, lease.ip, lease.prefix,
                         lease.hostname, lease.client_id, lease.iaid) for lease in self.leases(ref, mac)]

    def port(self, ref: str) -> tuple[str, Network, str | None]:
        """The active network a guest interface plugs into: its name, live definition and bridge."""
        entry = self.lookup(ref)
        if not entry.active:
            raise OperationInvalid(
                f"network '{entry.name}' is not active; start it with `pyvirt net-start {entry.name}` "
                "(or mark it autostart with `pyvirt net-autostart`)")
        return entry.name, entry.current, entry.bridge

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
        return self.nets.check_free(net.name, net.uuid)

    def _check_conflicts(self, net: Network) -> None:
        others = [e for e in self.nets if e.name != net.name]
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
        used = {e.bridge for e in self.nets if e.bridge} | set(self.host.link_names("virbr"))
        n = 0
        while f"virbr{n}" in used:
            n += 1
        bridge = net.bridge or lifecycle.default_bridge()
        return replace(net, bridge=replace(bridge, name=f"virbr{n}"))

    async def define(self, xml: str) -> NetworkSummary:
        net = self._parse(xml)
        existing = self._check_free(net)
        net = self._fill_bridge_name(net)
        self._check_conflicts(net)
        if existing is not None:
            async with self.nets.job(existing, "define"):
                existing.config, existing.persistent = net, True
                self._store(existing)
            self._emit(existing, "defined", "updated")
            return existing.summary()
        entry = NetEntry(net.uuid, net.name, net, persistent=True)
        self.nets.add(entry)
        self._store(entry)
        self._emit(entry, "defined", "added")
        return entry.summary()

    async def create(self, xml: str) -> NetworkSummary:
        net = self._fill_bridge_name(self._parse(xml))
        if self._check_free(net) is not None:
            raise AlreadyExists(f"network '{net.name}' already exists; start it with `pyvirt net-start {net.name}`")
        self._check_conflicts(net)
        entry = NetEntry(net.uuid, net.name, net, persistent=False)
        self.nets.add(entry)
        try:
            async with self.nets.job(entry, "create"):
                await self._start_locked(entry)
        except BaseException:
            self._forget(entry)
            raise
        return entry.summary()

    async def set_xml(self, ref: str, xml: str) -> NetworkSummary:
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
        async with self.nets.job(entry, "edit"):
            entry.config, entry.persistent = net, True
            self._store(entry)
        self._emit(entry, "defined", "updated")
        return entry.summary()

    async def undefine(self, ref: str) -> NetworkSummary:
        entry = self.lookup(ref)
        async with self.nets.job(entry, "undefine"):
            if not entry.persistent:
                raise OperationInvalid(f"network '{entry.name}' is transient; destroy it with "
                                       f"`pyvirt net-destroy {entry.name}`")
            if entry.active:
                entry.persistent, entry.autostart = False, False
                self._store(entry)
            else:
                self._forget(entry)
        self._emit(entry, "undefined", "removed")
        return entry.summary()

    async def set_autostart(self, ref: str, enabled: bool) -> NetworkSummary:
        entry = self.lookup(ref)
        if not entry.persistent:
            raise OperationInvalid(f"cannot set autostart for transient network '{entry.name}'; "
                                   "define it first with `pyvirt net-define`")
        async with self.nets.job(entry, "autostart"):
            entry.autostart = enabled
            self._store(entry)
        return entry.summary()

    # ------------------------------------------------------------- lifecycle
    async def start(self, ref: str) -> NetworkSummary:
        entry = self.lookup(ref)
        async with self.nets.job(entry, "start"):
            await self._start_locked(entry)
        return entry.summary()

    async def _start_locked(self, entry: NetEntry) -> None:
        if entry.active:
            raise OperationInvalid(f"network '{entry.name}' is already active")
        net = entry.config
        await asyncio.to_thread(self.host.check_startable, net)
        # a record before the host changes: a daemon killed half-way finds it and undoes the start (load)
        planned = net.bridge.name if net.owns_bridge and net.bridge else None
        self.store.put_object_runtime(KIND, entry.uuid, {"state": STARTING, "bridge": planned,
                                                          "live_xml": format_network_xml(net)})
        try:
            runtime = await asyncio.to_thread(self.host.start, net)
        except BaseException:
            self.store.delete_object_runtime(KIND, entry.uuid)
            raise
        faults.point("net-start:running")
        entry.runtime, entry.live = runtime, net
        NETWORK_STATES.move(entry, NetState.ACTIVE, "net-start")
        self._record(entry)
        try:
            await asyncio.to_thread(self._sync_firewall)
        except PyvirtError:
            NETWORK_STATES.move(entry, NetState.INACTIVE, "its firewall rules failed")
            entry.runtime, entry.live = None, None
            await asyncio.to_thread(self.host.stop, net, runtime)  # before the record goes: see destroy
            self.store.delete_object_runtime(KIND, entry.uuid)
            raise
        await asyncio.to_thread(self._replug, entry)
        self._emit(entry, "started", "booted")

    async def destroy(self, ref: str, force: bool = False) -> NetworkDestroyed:
        entry = self.lookup(ref)
        async with self.nets.job(entry, "destroy"):
            if not entry.active:
                raise OperationInvalid(f"network '{entry.name}' is not active")
            users = self.users(entry.name)
            if users and not force:
                names = ", ".join(sorted({u.domain for u in users}))
                raise OperationInvalid(
                    f"network '{entry.name}' is in use by running domains: {names}; stop them first, "
                    "or use --force (their interfaces lose their links)")
            runtime, live = entry.runtime, entry.current
            assert runtime is not None
            # The host side goes first and the runtime record last: a stop that fails (or a daemon
            # killed meanwhile) leaves the record naming the bridge and dnsmasq, so the network is
            # still active, net-destroy can be tried again and a restarted daemon reattaches or cleans.
            await asyncio.to_thread(self.host.stop, live, runtime)
            NETWORK_STATES.move(entry, NetState.INACTIVE, "net-destroy")
            entry.runtime, entry.live = None, None
            self.store.delete_object_runtime(KIND, entry.uuid)
            await asyncio.to_thread(self._sync_firewall)
            self._emit(entry, "stopped", "destroyed")
            if not entry.persistent:
                self._forget(entry)
        return NetworkDestroyed(entry.name, tuple(users))

    # ------------------------------------------------------------- net-update
    async def update(self, ref: str, *, command: object, section: object, xml: object, live: bool,
                     config: bool) -> NetworkSummary:
        """net-update COMMAND ip-dhcp-host XML: add/delete/modify a static lease, live and/or in the definition."""
        if section != "ip-dhcp-host":
            raise InvalidArgument(f"net-update section {section!r} is not supported; supported: ip-dhcp-host")
        if command not in lifecycle.UPDATE_COMMANDS:
            raise InvalidArgument(f"net-update command {command!r} is unknown; use add-first, add-last, delete "
                                  "or modify")
        if not isinstance(xml, str):
            raise InvalidArgument("net-update needs the <host .../> element as 'xml'")
        host = lifecycle.parse_dhcp_host(xml)
        if not (live or config):
            raise InvalidArgument("net-update needs --live and/or --config")
        entry = self.lookup(ref)
        async with self.nets.job(entry, "update"):
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
        return entry.summary()

    # ---------------------------------------------------------------- helpers
    def active_entries(self) -> list[NetEntry]:
        return [e for e in self.nets if e.active]

    def _sync_firewall(self) -> None:
        self.host.sync_firewall([(e.current, e.runtime) for e in self.active_entries() if e.runtime])

    def _defined_subnets(self) -> list[tuple[IPNetwork, str]]:
        return [(ip.subnet, f"network '{e.name}'") for e in self.nets for ip in e.current.ips]

    def _taken_macs(self, exclude: str | None = None) -> set[str]:
        return {e.current.mac for e in self.nets if e.current.mac and e.name != exclude}

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
        self.nets.remove(entry)

    def _emit(self, entry: NetEntry, event: str, detail: str) -> None:
        """Network lifecycle goes to the log; the event stream carries domains only (so far)."""
        log.info("network %s: event %s (%s) -> %s", entry.name, event, detail,
                 "active" if entry.active else "inactive")
