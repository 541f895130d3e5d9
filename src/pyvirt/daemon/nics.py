"""Guest NICs on the host: open their taps/macvtaps before QEMU starts, and the
domif* and attach/detach-interface verbs on running and defined domains.

Hot-plug follows libvirt: the daemon opens the tap, passes its fd to QEMU over
QMP (getfd), then netdev_add + device_add; unplug is device_del, waiting for
the guest to let go (DEVICE_DELETED), then netdev_del.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..errors import InvalidArgument, NotFound, OperationInvalid, PyvirtError, QemuError
from ..model.domain import Domain, Interface
from ..model.domain_xml import parse_interface_xml
from ..model.ids import new_mac
from ..model.network import Network
from ..model.validate import validate_domain
from ..network import links, ports
from ..network.leases import Lease
from ..network.ports import Attachment, Port
from ..qemu.argv import NicFds
from ..qemu.argv_devices import TAP_TYPES, nic_device_props, nic_driver
from .domain_table import DomainEntry, DomainTable
from .hotplug import hotplug_slot
from .results import InterfaceAddress, InterfaceAddresses, InterfaceChange, InterfaceRow, InterfaceStats
from .runner import Running

log = logging.getLogger(__name__)

UNPLUG_TIMEOUT = 10.0


class NetworkPorts(Protocol):
    """What the NIC manager needs of the networks: where a guest NIC plugs in, and the leases."""

    def port(self, ref: str) -> tuple[str, Network, str | None]:
        """(name, live definition, bridge) of an active network; OperationInvalid when inactive."""

    def leases(self, ref: str, mac: str | None = None) -> list[Lease]:
        """DHCP leases of an active network."""


@dataclass
class PreparedNics:
    """Host sides opened for one start: the live domain and the fds per NIC index."""

    domain: Domain
    ports: dict[int, Port] = field(default_factory=dict)

    @property
    def fds(self) -> dict[int, NicFds]:
        return {i: NicFds(tuple(p.taps), tuple(p.vhost)) for i, p in self.ports.items()}

    def close_fds(self) -> None:
        for port in self.ports.values():
            port.close_fds()

    def release(self) -> None:
        """The undo of a failed start: fds closed, macvtap links deleted."""
        self.close_fds()
        for port in self.ports.values():
            ports.release(port.ifname, port.kind)


def port_kind(nic: Interface) -> str:
    """'macvtap' for NICs whose host side outlives QEMU (direct, or a macvtap network), else 'tap'."""
    on_macvtap_network = nic.type == "network" and "mode" in dict(nic.source)
    return "macvtap" if nic.type == "direct" or on_macvtap_network else "tap"


class NicManager:
    def __init__(self, table: DomainTable, networks: NetworkPorts) -> None:
        self.table = table
        self.networks = networks

    # ------------------------------------------------------------ resolution
    def attachment(self, nic: Interface, who: str) -> tuple[Attachment, Interface]:
        """Where the NIC plugs in, and its live form (source with the bridge, as libvirt shows it)."""
        source = dict(nic.source)
        if nic.type == "network":
            name, net, bridge = self.networks.port(source["network"])
            if net.is_macvtap:
                assert net.forward is not None
                dev = net.forward.dev or net.forward.interfaces[0]
                live = replace(nic, source=(("network", name), ("dev", dev), ("mode", "bridge")))
                return Attachment("macvtap", dev=dev, mode="bridge"), live
            if bridge is None:
                raise OperationInvalid(f"{who}: network '{name}' has no bridge to plug into")
            live = replace(nic, source=(("network", name), ("bridge", bridge)))
            return Attachment("bridge", bridge=bridge, mtu=net.mtu), live
        if nic.type == "bridge":
            bridge = source["bridge"]
            kind = links.link_kind(bridge)
            if kind is None:
                raise InvalidArgument(f"{who}: host bridge '{bridge}' does not exist; create it, or use "
                                      "<interface type='network'>")
            if kind != "bridge":
                raise InvalidArgument(f"{who}: host device '{bridge}' is a {kind} link, not a bridge")
            return Attachment("bridge", bridge=bridge), nic
        if nic.type == "direct":
            return Attachment("macvtap", dev=source["dev"], mode=source.get("mode") or "vepa"), nic
        return Attachment("none"), nic

    def _check_mac_free(self, entry_name: str, mac: str | None, who: str) -> None:
        for other, run in self.table.running():
            if other.name == entry_name:
                continue
            if any(i.mac == mac for i in run.live.devices.interfaces):
                raise InvalidArgument(f"{who}: MAC {mac} is already used by running domain '{other.name}'; "
                                      "give this interface another <mac address=...> or leave it out")

    def open_one(self, entry_name: str, nic: Interface, who: str) -> tuple[Port, Interface]:
        att, live = self.attachment(nic, who)
        self._check_mac_free(entry_name, nic.mac, who)
        assert nic.mac is not None
        port = ports.open_port(mac=nic.mac, target=nic.target_dev, att=att, queues=nic.driver_queues or 1,
                               vhost=nic.driver_name == "vhost", who=who)
        return port, replace(live, target_dev=port.ifname)

    async def prepare(self, name: str, domain: Domain, undo: contextlib.AsyncExitStack) -> PreparedNics:
        """Open every tap-backed NIC of ``domain`` (all or nothing); NICs get their QEMU ids as aliases.

        Their release goes onto the start's ``undo`` stack before the first one is opened."""
        nics = [n if n.alias else replace(n, alias=f"net{i}") for i, n in enumerate(domain.devices.interfaces)]
        domain = replace(domain, devices=replace(domain.devices, interfaces=tuple(nics)))
        prepared = PreparedNics(domain)
        undo.callback(prepared.release)
        for i, nic in enumerate(nics):
            if nic.type not in TAP_TYPES:
                continue
            who = f"domain '{name}' interface {i} ({nic.mac})"
            port, nics[i] = await asyncio.to_thread(self.open_one, name, nic, who)
            prepared.ports[i] = port
        prepared.domain = replace(domain, devices=replace(domain.devices, interfaces=tuple(nics)))
        return prepared

    def release_domain(self, live: Domain) -> None:
        """After QEMU is gone: remove what outlives it (macvtap links)."""
        for nic in live.devices.interfaces:
            if nic.type in TAP_TYPES:
                ports.release(nic.target_dev, port_kind(nic))

    # --------------------------------------------------------------- queries
    def _find(self, entry: DomainEntry, ref: str, inactive: bool = False) -> tuple[int, Interface]:
        """A NIC by target dev name or MAC, as virsh's domif-* commands take it."""
        for i, nic in enumerate(entry.view(inactive).devices.interfaces):
            if ref in (nic.target_dev, nic.mac) or (nic.mac and ref.lower() == nic.mac):
                return i, nic
        raise NotFound(f"interface '{ref}' not found in domain '{entry.name}'; see `pyvirt domiflist {entry.name}`")

    def list_interfaces(self, ref: str, inactive: bool = False) -> list[InterfaceRow]:
        entry = self.table.lookup(ref)
        rows = []
        for nic in entry.view(inactive).devices.interfaces:
            source = dict(nic.source)
            rows.append(InterfaceRow(
                target=nic.target_dev if entry.running is not None and not inactive else None,
                type=nic.type,
                source=source.get("network") or source.get("bridge") or source.get("dev"),
                model=nic.model or "virtio", mac=nic.mac, link=nic.link_state or "up",
            ))
        return rows

    def addresses(self, ref: str, source: str) -> list[InterfaceAddresses]:
        entry = self.table.lookup(ref)
        if source != "lease":
            raise InvalidArgument(f"address source '{source}' is not supported; use --source lease "
                                  "(the DHCP leases of pyvirt's networks)")
        if entry.running is None:
            raise OperationInvalid(f"domain '{entry.name}' is not running")
        out = []
        for nic in entry.running.live.devices.interfaces:
            net = dict(nic.source).get("network")
            if nic.type != "network" or not net:
                continue
            with contextlib.suppress(PyvirtError):
                leases = self.networks.leases(net, nic.mac)
                addrs = tuple(InterfaceAddress(lease.family, lease.ip, lease.prefix) for lease in leases)
                if addrs:
                    out.append(InterfaceAddresses(nic.target_dev, nic.mac, addrs))
        return out

    def stats(self, ref: str, dev: str) -> InterfaceStats:
        entry = self.table.lookup(ref)
        if entry.running is None:
            raise OperationInvalid(f"domain '{entry.name}' is not running")
        _, nic = self._find(entry, dev)
        if not nic.target_dev:
            raise OperationInvalid(f"interface '{dev}' of domain '{entry.name}' (type {nic.type}) has no host "
                                   "device to count traffic on")
        host = links.link_stats(nic.target_dev)
        # The host sees the tap from the other end: what it transmits, the guest receives.
        return InterfaceStats(
            device=nic.target_dev,
            rx_bytes=host.get("tx_bytes", 0), tx_bytes=host.get("rx_bytes", 0),
            rx_packets=host.get("tx_packets", 0), tx_packets=host.get("rx_packets", 0),
            rx_errs=host.get("tx_errs", 0), tx_errs=host.get("rx_errs", 0),
            rx_drop=host.get("tx_drop", 0), tx_drop=host.get("rx_drop", 0),
        )

    def get_link(self, ref: str, dev: str, inactive: bool = False) -> str:
        entry = self.table.lookup(ref)
        _, nic = self._find(entry, dev, inactive)
        return nic.link_state or "up"

    # --------------------------------------------------------------- changes
    async def set_link(self, ref: str, dev: str, state: str, *, live: bool, config: bool) -> None:
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "set the link of"):
            if live and entry.running is not None:
                index, nic = self._find(entry, dev)
                await entry.running.monitor.set_link(nic.alias or f"net{index}", state == "up")
                self._update_live(entry, index, replace(nic, link_state=None if state == "up" else "down"))
            elif live and not config:
                raise OperationInvalid(f"domain '{entry.name}' is not running; use --config")
            if config:
                index, nic = self._find(entry, dev, inactive=True)
                new = list(entry.config.devices.interfaces)
                new[index] = replace(nic, link_state=None if state == "up" else "down")
                self.table.set_config(entry, replace(entry.config, devices=replace(entry.config.devices,
                                                                                   interfaces=tuple(new))))

    async def attach(self, ref: str, xml: str, *, live: bool, config: bool) -> InterfaceChange:
        if not live and not config:
            raise InvalidArgument("nothing to attach: give --live, --config or both")
        entry = self.table.lookup(ref)
        nic = parse_interface_xml(xml)
        if nic.mac is None:
            nic = replace(nic, mac=new_mac(self.table.macs_in_use()))
        base = entry.config
        validate_domain(replace(base, devices=replace(base.devices, interfaces=(*base.devices.interfaces, nic))))
        async with self.table.job(entry, "attach an interface to"):
            if live and entry.running is None:
                if not config:
                    raise OperationInvalid(f"domain '{entry.name}' is not running; use --config to add the "
                                           "interface to its definition")
                live = False
            target = None
            if config:
                self._check_config_mac(entry, nic)
            if live:
                target = await self._hotplug(entry, nic)
            if config:
                devices = entry.config.devices
                self.table.set_config(entry, replace(entry.config, devices=replace(
                    devices, interfaces=(*devices.interfaces, replace(nic, target_dev=None)))))
        return InterfaceChange(nic.mac, nic.type, target)

    async def detach(self, ref: str, kind: str, mac: str | None, *, live: bool, config: bool) -> InterfaceChange:
        entry = self.table.lookup(ref)
        async with self.table.job(entry, "detach an interface from"):
            if live and entry.running is None:
                if not config:
                    raise OperationInvalid(f"domain '{entry.name}' is not running; use --config")
                live = False
            change: InterfaceChange | None = None
            if live:
                index, nic = self._match(entry, entry.view(), kind, mac)
                await self._unplug(entry, index, nic)
                change = InterfaceChange(nic.mac, nic.type, nic.target_dev)
            if config:
                index, nic = self._match(entry, entry.config, kind, mac)
                new = [n for i, n in enumerate(entry.config.devices.interfaces) if i != index]
                self.table.set_config(entry, replace(entry.config, devices=replace(
                    entry.config.devices, interfaces=tuple(new))))
                change = change or InterfaceChange(nic.mac, nic.type, None)
        if change is None:
            raise InvalidArgument("nothing to detach: give --live, --config or both")
        return change

    # ---------------------------------------------------------------- helpers
    def _check_config_mac(self, entry: DomainEntry, nic: Interface) -> None:
        if any(n.mac == nic.mac for n in entry.config.devices.interfaces):
            raise InvalidArgument(f"domain '{entry.name}' already has an interface with MAC {nic.mac}; "
                                  "give the new one another MAC or leave --mac out")

    def _match(self, entry: DomainEntry, domain: Domain, kind: str, mac: str | None) -> tuple[int, Interface]:
        found = [(i, n) for i, n in enumerate(domain.devices.interfaces)
                 if n.type == kind and (mac is None or n.mac == mac.lower())]
        if not found:
            what = f"with MAC address {mac}" if mac else f"of type {kind}"
            raise NotFound(f"No interface {what} was found in domain '{entry.name}'; see "
                           f"`pyvirt domiflist {entry.name}`")
        if len(found) > 1:
            raise InvalidArgument(f"domain '{entry.name}' has {len(found)} interfaces of type {kind}; "
                                  "say which one with --mac")
        return found[0]

    def _update_live(self, entry: DomainEntry, index: int | None, nic: Interface | None) -> None:
        """Replace (index, nic), append (None, nic) or remove (index, None) a NIC of the live domain."""
        run = entry.running
        assert run is not None
        nics = list(run.live.devices.interfaces)
        if index is None:
            assert nic is not None
            nics.append(nic)
        elif nic is None:
            del nics[index]
        else:
            nics[index] = nic
        run.live = replace(run.live, devices=replace(run.live.devices, interfaces=tuple(nics)))
        self.table.record_runtime(entry)

    async def _hotplug(self, entry: DomainEntry, nic: Interface) -> str | None:
        run = entry.running
        assert run is not None
        who = f"domain '{entry.name}' new interface ({nic.mac})"
        self._check_mac_free(entry.name, nic.mac, who)
        if any(n.mac == nic.mac for n in run.live.devices.interfaces):
            raise InvalidArgument(f"domain '{entry.name}' already has an interface with MAC {nic.mac}")
        if nic.type in TAP_TYPES:
            self.attachment(nic, who)  # an inactive network or a missing bridge is the first thing to say
        taken = {n.alias for n in run.live.devices.interfaces}
        alias = next(f"net{n}" for n in range(len(taken) + 1) if f"net{n}" not in taken)
        placement, address = hotplug_slot(run.live, who)
        nic = replace(nic, alias=alias, address=address)
        if (nic.driver_queues or 1) > 1 and (nic.model or "virtio") != "virtio":
            raise InvalidArgument(f"{who}: queues need model 'virtio'")
        port: Port | None = None
        live = nic
        netdev: dict[str, object] = {"type": "user", "id": f"host{alias}"}
        if nic.type in TAP_TYPES:
            port, live = await asyncio.to_thread(self.open_one, entry.name, nic, who)
        names: list[str] = []  # fds QEMU holds by name until netdev_add takes them
        try:
            if port is not None:
                for q, fd in enumerate(port.taps):
                    name = f"fd-{alias}-{q}"
                    try:
                        await run.monitor.send_fd(fd, name)
                    except BaseException:
                        await self._take_back(run, names)
                        raise
                    names.append(name)
                netdev = {"type": "tap", "id": f"host{alias}"}
                netdev.update({"fd": names[0]} if len(names) == 1 else {"fds": ":".join(names)})
            try:
                await run.monitor.netdev_add(**netdev)
            except BaseException:
                await self._take_back(run, names)
                raise
            try:
                # QMP's device_add takes JSON types: the command line's "on" is a boolean here
                props = {k: (True if v == "on" else v)
                         for k, v in nic_device_props(alias, nic.mac or "", nic.driver_queues or 1, False)}
                await run.monitor.device_add(driver=nic_driver(nic.model, False), **props, **dict(placement))
            except BaseException:
                with contextlib.suppress(QemuError):
                    await run.monitor.netdev_del(f"host{alias}")
                raise
        except BaseException:
            if port is not None:
                port.close_fds()
                ports.release(port.ifname, port.kind)
            raise
        finally:
            if port is not None:
                port.close_fds()
        if nic.link_state == "down":
            await run.monitor.set_link(alias, False)
        self._update_live(entry, None, live)
        return live.target_dev

    @staticmethod
    async def _take_back(run: Running, names: list[str]) -> None:
        """closefd the fds QEMU got by name for a netdev it did not take (they would stay open there)."""
        for name in names:
            with contextlib.suppress(QemuError):
                await run.monitor.close_fd(name)

    async def _unplug(self, entry: DomainEntry, index: int, nic: Interface) -> None:
        run = entry.running
        assert run is not None
        device = nic.alias or f"net{index}"
        if not await run.monitor.unplug(device, UNPLUG_TIMEOUT):
            raise OperationInvalid(
                f"domain '{entry.name}': the guest did not release interface {nic.target_dev or device} "
                f"within {UNPLUG_TIMEOUT:g} s (does it support PCI hot-unplug?); it may still go later")
        with contextlib.suppress(QemuError):
            await run.monitor.netdev_del(f"host{device}")
        if nic.type in TAP_TYPES:
            ports.release(nic.target_dev, port_kind(nic))
        self._update_live(entry, index, None)
