"""Starting, stopping and reattaching one virtual network on the host.

``HostSide`` ties the parts together for the daemon: the bridge and its
addresses (links), dnsmasq (its own config, lease and hosts files, started in
its own session so it outlives a daemon restart), and the nftables table.
Every start step registers its undo, so a failed net-start leaves nothing.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .. import faults
from ..config import Config
from ..errors import HostError, InvalidArgument, NotFound
from ..model.network import ROUTED_MODES, Bridge, DHCPHost, Network
from ..model.network_xml import check_overlap, validate_network
from ..model.xml_util import Context, Reader, parse_xml
from . import dnsmasq, firewall, leases, links

log = logging.getLogger(__name__)

UPDATE_COMMANDS = ("add-first", "add-last", "add", "delete", "modify")


@dataclass(frozen=True)
class NetRuntime:
    """What an active network made on the host; stored so a restarted daemon finds it again."""

    bridge: str | None
    dnsmasq_pid: int | None
    started: float

    def to_dict(self) -> dict[str, object]:
        return {"bridge": self.bridge, "dnsmasq_pid": self.dnsmasq_pid, "started": self.started}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> NetRuntime:
        pid = data.get("dnsmasq_pid")
        return cls(bridge=data.get("bridge") or None,  # type: ignore[arg-type]
                   dnsmasq_pid=int(pid) if isinstance(pid, (int, str)) else None,
                   started=float(data.get("started") or 0.0))  # type: ignore[arg-type]


@dataclass(frozen=True)
class NetFiles:
    conf: Path
    pid: Path
    leases: Path
    hosts: Path
    addn_hosts: Path


def default_bridge() -> Bridge:
    return Bridge(name=None, stp=True, delay=0)


def nft_table_for(root: Path) -> str:
    """`pyvirt` for the system daemon; a per-root name for daemons in other roots (tests, several
    daemons on one host), so one daemon never rewrites another's table."""
    if root == Path("/"):
        return "pyvirt"
    return "pyvirt_" + hashlib.sha1(str(root).encode(), usedforsecurity=False).hexdigest()[:8]


def parse_dhcp_host(xml: str) -> DHCPHost:
    """net-update's <host mac= name= ip=/> element."""
    root, declared = parse_xml(xml, what="net-update XML")
    if root.tag != "host":
        raise InvalidArgument(f"net-update ip-dhcp-host needs a <host .../> element, not <{root.tag}>")
    r = Reader(root, Context("dhcp host", declared), "<host>", root=True)
    host = DHCPHost(mac=r.attr("mac"), name=r.attr("name"), ip=r.attr("ip"), id=r.attr("id"))
    r.done()
    if host.mac:
        host = replace(host, mac=host.mac.lower())
    if not (host.mac or host.name or host.id):
        raise InvalidArgument("the <host> element needs a mac (or name/id) to say which guest it is for")
    return host


def _same_host(a: DHCPHost, b: DHCPHost) -> bool:
    if a.mac and b.mac:
        return a.mac == b.mac
    if a.id and b.id:
        return a.id == b.id
    return bool(a.name and a.name == b.name)


def update_dhcp_hosts(net: Network, command: str, host: DHCPHost) -> Network:
    """net-update on the static hosts of the first IPv4 <ip> with DHCP (IPv6 when the host has an id)."""
    family = "ipv6" if host.id else "ipv4"
    index = next((i for i, ip in enumerate(net.ips) if ip.family == family), None)
    if index is None:
        raise InvalidArgument(f"network '{net.name}' has no {family} <ip> to hold DHCP hosts")
    ip = net.ips[index]
    hosts = list(ip.dhcp_hosts)
    match = [i for i, h in enumerate(hosts) if _same_host(h, host)]
    if command in ("add", "add-last", "add-first"):
        if match:
            raise InvalidArgument(f"network '{net.name}' already has a DHCP host for {host.mac or host.name}; "
                                  "use modify to change it")
        clash = next((h for h in hosts if host.ip and h.ip == host.ip), None)
        if clash is not None:
            raise InvalidArgument(f"IP {host.ip} is already given to {clash.mac or clash.name} in network "
                                  f"'{net.name}'; pick another address")
        hosts.insert(0, host) if command == "add-first" else hosts.append(host)
    elif command == "delete":
        if not match:
            raise NotFound(f"network '{net.name}' has no DHCP host for {host.mac or host.name}")
        del hosts[match[0]]
    elif command == "modify":
        if not match:
            raise NotFound(f"network '{net.name}' has no DHCP host for {host.mac or host.name}; use add")
        hosts[match[0]] = host
    else:
        raise InvalidArgument(f"net-update command '{command}' is unknown")
    ips = list(net.ips)
    ips[index] = replace(ip, dhcp_hosts=tuple(hosts))
    updated = replace(net, ips=tuple(ips))
    validate_network(updated)
    return updated


class HostSide:
    """The host operations the NetworkManager needs, bound to one daemon's paths and binaries."""

    def __init__(self, run_dir: Path, lib_dir: Path, *, dnsmasq_binary: str, nft_binary: str, nft_table: str) -> None:
        self.run_dir = run_dir
        self.lib_dir = lib_dir
        self.dnsmasq_binary = dnsmasq_binary
        self.nft_binary = nft_binary
        self.nft_table = nft_table

    @classmethod
    def for_config(cls, config: Config) -> HostSide:
        paths, settings = config.paths, config.settings
        return cls(paths.network_run, paths.network_lib, dnsmasq_binary=settings.dnsmasq_binary,
                   nft_binary=settings.nft_binary, nft_table=nft_table_for(paths.root))

    def files(self, name: str) -> NetFiles:
        return NetFiles(conf=self.run_dir / f"{name}.conf", pid=self.run_dir / f"{name}.pid",
                        leases=self.lib_dir / f"{name}.leases", hosts=self.run_dir / f"{name}.hostsfile",
                        addn_hosts=self.run_dir / f"{name}.addnhosts")

    # ------------------------------------------------------------- queries
    def host_subnets(self) -> list[tuple[links.Network, str]]:
        return list(links.host_subnets())

    def link_names(self, prefix: str) -> list[str]:
        return links.link_names(prefix)

    def leases(self, net: Network) -> list[leases.Lease]:
        return leases.read_leases(self.files(net.name).leases, net)

    # --------------------------------------------------------------- checks
    def check_startable(self, net: Network) -> None:
        """What net-start refuses before touching anything: names, devices and subnets in use."""
        bridge = net.bridge.name if net.bridge else None
        if net.owns_bridge:
            assert bridge is not None
            kind = links.link_kind(bridge)
            if kind is not None:
                raise InvalidArgument(f"cannot start network '{net.name}': a {kind} link named '{bridge}' already "
                                      "exists on the host; choose another <bridge name=...> or remove that link")
            check_overlap(net, [(s, d) for s, d in links.host_subnets()])
            if net.forward and net.forward.dev and not links.link_exists(net.forward.dev):
                raise InvalidArgument(f"cannot start network '{net.name}': forward device '{net.forward.dev}' "
                                      "does not exist on the host; fix <forward dev=...> or leave it out")
        elif net.is_macvtap:
            assert net.forward is not None
            for dev in (net.forward.dev, *net.forward.interfaces):
                if dev and not links.link_exists(dev):
                    raise InvalidArgument(f"cannot start network '{net.name}': forward device '{dev}' does not "
                                          "exist on the host; fix <forward dev=...>")
        elif bridge:
            kind = links.link_kind(bridge)
            if kind != "bridge":
                what = "does not exist" if kind is None else f"is a {kind} link, not a bridge"
                raise InvalidArgument(f"cannot start network '{net.name}': host bridge '{bridge}' {what}; "
                                      "create the bridge first or fix <bridge name=...>")

    # ------------------------------------------------------------ lifecycle
    def start(self, net: Network) -> NetRuntime:
        if not net.owns_bridge:  # an existing host bridge, or macvtap over a device: nothing to make
            return NetRuntime(bridge=net.bridge.name if net.bridge else None, dnsmasq_pid=None, started=time.time())
        bridge = net.bridge or default_bridge()
        assert bridge.name is not None
        with contextlib.ExitStack() as undo:
            links.create_bridge(bridge.name, mac=net.mac, mtu=net.mtu, stp=bool(bridge.stp),
                                delay=bridge.delay or 0,
                                addresses=[(ip.address, ip.prefix) for ip in net.ips])
            undo.callback(links.delete_link, bridge.name)
            faults.point("net-start:bridge")
            if net.forward is not None and net.forward.mode in ROUTED_MODES:
                for family in {ip.family for ip in net.ips}:
                    firewall.enable_ip_forward(family)
            pid = None
            if net.needs_dnsmasq:
                pid = self._start_dnsmasq(net, bridge.name)
                undo.callback(dnsmasq.stop, pid)
            undo.pop_all()
        return NetRuntime(bridge=bridge.name, dnsmasq_pid=pid, started=time.time())

    def _start_dnsmasq(self, net: Network, bridge: str) -> int:
        files = self.files(net.name)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.lib_dir.mkdir(parents=True, exist_ok=True)
        # dnsmasq re-reads its hosts files after it dropped root: its run directory must be searchable
        os.chmod(self.run_dir, 0o755)
        dnsmasq.write_hosts_files(net, hostsfile=files.hosts, addn_hosts=files.addn_hosts)
        files.conf.write_text(dnsmasq.dnsmasq_config(net, bridge, leasefile=files.leases, hostsfile=files.hosts,
                                                     pidfile=files.pid, addn_hosts=files.addn_hosts))
        pid = dnsmasq.start(files.conf, files.pid, binary=self.dnsmasq_binary)
        try:
            dnsmasq.check_answers(net, pid)
        except BaseException:
            dnsmasq.stop(pid)
            raise
        return pid

    def stop(self, net: Network, rt: NetRuntime) -> None:
        """Remove everything the network added (missing parts are fine: stop is idempotent)."""
        errors: list[str] = []
        if rt.dnsmasq_pid:
            try:
                dnsmasq.stop(rt.dnsmasq_pid, conf=self.files(net.name).conf)
            except HostError as exc:
                errors.append(str(exc))
        if net.owns_bridge and rt.bridge:
            try:
                links.delete_link(rt.bridge)
            except HostError as exc:
                errors.append(str(exc))
        for path in (self.files(net.name).conf, self.files(net.name).pid):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if errors:
            raise HostError(f"stopping network '{net.name}' left something behind: {'; '.join(errors)}")

    def abandon(self, net: Network, bridge: str | None) -> None:
        """Undo a start a killed daemon did not finish: whatever of the bridge and dnsmasq it made."""
        pid = dnsmasq.find(self.files(net.name).pid, self.files(net.name).conf) if net.needs_dnsmasq else None
        exists = bridge is not None and links.link_kind(bridge) == "bridge"
        self.stop(net, NetRuntime(bridge=bridge if exists else None, dnsmasq_pid=pid, started=0.0))

    def reattach(self, net: Network, rt: NetRuntime) -> NetRuntime | None:
        """After a daemon restart: keep what still runs, restart a dead dnsmasq; None when the bridge is gone."""
        if net.owns_bridge:
            if not rt.bridge or links.link_kind(rt.bridge) != "bridge":
                return None
            if net.needs_dnsmasq:
                pid = dnsmasq.find(self.files(net.name).pid, self.files(net.name).conf)
                if pid is None:
                    log.warning("network %s: dnsmasq is gone; starting it again", net.name)
                    pid = self._start_dnsmasq(net, rt.bridge)
                return replace(rt, dnsmasq_pid=pid)
        return rt

    def reload_hosts(self, net: Network, rt: NetRuntime | None) -> None:
        """net-update --live: rewrite the hosts files and have dnsmasq re-read them (SIGHUP)."""
        files = self.files(net.name)
        dnsmasq.write_hosts_files(net, hostsfile=files.hosts, addn_hosts=files.addn_hosts)
        if rt is not None and rt.dnsmasq_pid:
            dnsmasq.reload_hosts(rt.dnsmasq_pid)

    def sync_firewall(self, active: list[tuple[Network, NetRuntime]]) -> None:
        rules = [(net, rt.bridge) for net, rt in active if net.owns_bridge and rt.bridge]
        if rules:
            firewall.sync(rules, table=self.nft_table, nft=self.nft_binary)
        else:
            firewall.remove(table=self.nft_table, nft=self.nft_binary)
