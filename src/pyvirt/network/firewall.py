"""The nftables rules of the active virtual networks: one table pyvirt owns outright.

The whole table (``table inet pyvirt`` by default) is rebuilt from the list of
active networks in one ``nft -f -`` transaction::

    add table inet pyvirt        # so the delete below cannot fail
    delete table inet pyvirt
    table inet pyvirt { ... }

nft applies a file atomically: packets see the old rules or the new ones,
never a half-built table, and an error leaves the old table as it was. No
rule outside the table is touched, so nothing else on the host (another
firewall, Docker, a second daemon with its own table name) is disturbed.

The rules follow libvirt's iptables rules for each forward mode:

* nat: masquerade the IPv4 subnet towards anything outside it (not the
  multicast 224.0.0.0/24 and broadcast 255.255.255.255, which must keep the
  guest's address), tcp/udp to source ports 1024-65535 (or the
  ``<nat><port>`` range); let replies in (ct state established,related), let
  the subnet out, and reject everything else into or out of the bridge.
  IPv6 subnets of a nat network are routed, not masqueraded (as in libvirt).
* route: the same without masquerade, and new connections may come in.
* isolated: only bridge-to-bridge traffic; all else to or from it is rejected.
* open: no rules at all.
``<forward dev=X>`` restricts the way out (and back in) to that device.

The forward rules run in libvirt's order: all bridge-to-bridge accepts, then
all "into a bridge" rules, then all "out of a bridge" rules. So a new
connection from one nat network to another is rejected on the way in
("into" comes first), as with libvirt.

Hook priorities: the standard ones, ``filter`` and ``srcnat``. An earlier
priority (say filter - 1) would buy nothing: an accept ends only the chain it
is in, every other base chain on the hook still sees the packet, and a drop
anywhere is final. So no priority lets our accepts override another table's
drop (e.g. Docker's forward policy drop); our input/output accepts only
document what dnsmasq needs. For nat the first chain that maps a connection
wins, and ours only match our own subnets.
"""
from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import HostError, InvalidArgument
from ..model.network import Network

DEFAULT_TABLE = "pyvirt"
DEFAULT_NFT = "/usr/sbin/nft"
NAT_PORTS = (1024, 65535)  # libvirt's default source-port range for masqueraded tcp/udp
REJECT = "reject with icmpx type port-unreachable"
FORWARD_SYSCTL = {"ipv4": "ipv4/ip_forward", "ipv6": "ipv6/conf/all/forwarding"}

Active = Sequence[tuple[Network, str]]


def _quote(name: str) -> str:
    if not name or len(name) > 15 or any(c.isspace() or c in "\"\\;{}#" for c in name):
        raise InvalidArgument(f"interface name {name!r} cannot be used in a firewall rule")
    return f'"{name}"'


def _table_name(table: str) -> str:
    if not table or not all(c.isalnum() or c == "_" for c in table) or not table[0].isalpha():
        raise InvalidArgument(f"nftables table name {table!r} must be letters, digits and _")
    return table


class _Rules:
    """The rules of each chain, filled network by network."""

    def __init__(self) -> None:
        self.input: list[str] = []
        self.output: list[str] = []
        self.cross: list[str] = []
        self.into: list[str] = []
        self.out_of: list[str] = []
        self.nat: list[str] = []

    def add(self, net: Network, bridge: str) -> None:
        if net.mode == "open" or not net.owns_bridge:
            return  # open: the user's own firewall decides; bridge/macvtap: not our bridge
        br = _quote(bridge)
        self._services(net, br)
        dev = _quote(net.forward.dev) if net.forward and net.forward.dev else None
        via_in = f"iifname {dev} " if dev else ""
        via_out = f"oifname {dev} " if dev else ""
        self.cross.append(f"iifname {br} oifname {br} accept")
        if net.mode in ("nat", "route"):
            for ip in net.ips:
                fam = "ip" if ip.family == "ipv4" else "ip6"
                subnet = ip.subnet
                masq = net.mode == "nat" and ip.family == "ipv4"
                state = " ct state established,related" if masq else ""
                self.into.append(f"{via_in}oifname {br} {fam} daddr {subnet}{state} accept")
                self.out_of.append(f"iifname {br} {via_out}{fam} saddr {subnet} accept")
                if masq:
                    self._masquerade(net, str(subnet), via_out)
        self.into.append(f"oifname {br} {REJECT}")
        self.out_of.append(f"iifname {br} {REJECT}")

    def _services(self, net: Network, br: str) -> None:
        """What the network's dnsmasq serves to guests: DNS, DHCP and DHCPv6 (and the replies)."""
        if not net.needs_dnsmasq:
            return
        if net.dns_enable is not False:
            self.input.append(f"iifname {br} meta l4proto {{ tcp, udp }} th dport 53 accept")
        if any(ip.family == "ipv4" and ip.has_dhcp for ip in net.ips):
            self.input.append(f"iifname {br} udp dport 67 accept")
            self.output.append(f"oifname {br} udp dport 68 accept")
        if any(ip.family == "ipv6" for ip in net.ips):
            self.input.append(f"iifname {br} udp dport 547 accept")
            self.output.append(f"oifname {br} udp dport 546 accept")

    def _masquerade(self, net: Network, subnet: str, via_out: str) -> None:
        fwd = net.forward
        start = fwd.nat_port_start if fwd and fwd.nat_port_start else NAT_PORTS[0]
        end = fwd.nat_port_end if fwd and fwd.nat_port_end else NAT_PORTS[1]
        self.nat += [
            f"ip saddr {subnet} ip daddr {{ 224.0.0.0/24, 255.255.255.255 }} return",
            f"{via_out}ip saddr {subnet} ip daddr != {subnet} meta l4proto {{ tcp, udp }} masquerade to :{start}-{end}",
            f"{via_out}ip saddr {subnet} ip daddr != {subnet} masquerade",
        ]


def _chain(name: str, rules: list[str], hook: str | None = None) -> list[str]:
    head = [f"\tchain {name} {{"]
    if hook:
        head.append(f"\t\t{hook}")
    return head + [f"\t\t{rule}" for rule in rules] + ["\t}"]


def ruleset(active: Active, *, table: str = DEFAULT_TABLE) -> str:
    """The nft script that makes ``table`` hold exactly the rules of ``active`` (network, bridge) pairs.

    With nothing to filter (no networks, or only open/bridge ones) the script
    just deletes the table.
    """
    table = _table_name(table)
    rules = _Rules()
    for net, bridge in active:
        rules.add(net, bridge)
    lines = [f"add table inet {table}", f"delete table inet {table}"]
    if not (rules.input or rules.output or rules.cross or rules.nat):
        return "\n".join(lines) + "\n"
    body: list[str] = []
    filt = "type filter hook {} priority filter; policy accept;"
    if rules.input:
        body += _chain("input", rules.input, filt.format("input"))
    if rules.output:
        body += _chain("output", rules.output, filt.format("output"))
    if rules.cross:
        body += _chain("forward", ["jump guest_cross", "jump guest_input", "jump guest_output"],
                       filt.format("forward"))
        body += _chain("guest_cross", rules.cross)
        body += _chain("guest_input", rules.into)
        body += _chain("guest_output", rules.out_of)
    if rules.nat:
        body += _chain("postrouting", rules.nat, "type nat hook postrouting priority srcnat; policy accept;")
    lines += [f"table inet {table} {{", *body, "}"]
    return "\n".join(lines) + "\n"


def _run_nft(script: str, *, nft: str, check_only: bool = False) -> None:
    argv = [nft, *(["-c"] if check_only else []), "-f", "-"]
    try:
        done = subprocess.run(argv, check=False, input=script, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise HostError(f"nft is not installed at {nft} (Debian: apt-get install nftables), "
                        "or set nft_binary in pyvirt.toml") from exc
    except subprocess.TimeoutExpired as exc:
        raise HostError(f"nft did not finish within 30 s ({' '.join(argv)})") from exc
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise HostError(f"nft refused the network firewall rules: {said.splitlines()[0]}",
                        detail=said + "\n--- script ---\n" + script)


def sync(active: Active, *, table: str = DEFAULT_TABLE, nft: str = DEFAULT_NFT) -> None:
    """Make the host's ``table`` match ``active`` in one atomic transaction (no networks: no table)."""
    _run_nft(ruleset(active, table=table), nft=nft)


def check(active: Active, *, table: str = DEFAULT_TABLE, nft: str = DEFAULT_NFT) -> None:
    """Have nft check the rules of ``active`` without applying them (``nft -c``)."""
    _run_nft(ruleset(active, table=table), nft=nft, check_only=True)


def remove(*, table: str = DEFAULT_TABLE, nft: str = DEFAULT_NFT) -> None:
    """Delete the table (no error when it does not exist)."""
    _run_nft(ruleset((), table=table), nft=nft)


def enable_ip_forward(family: str = "ipv4", *, proc_net: Path = Path("/proc/sys/net")) -> bool:
    """Turn on the kernel's forwarding for ``family``; True when it was off.

    Like libvirt, pyvirt never turns it back off: other things on the host may
    rely on it by then. Note that IPv6 forwarding makes the host ignore router
    advertisements on interfaces with accept_ra=1.
    """
    if family not in FORWARD_SYSCTL:
        raise InvalidArgument(f"address family {family!r} is not ipv4 or ipv6")
    path = proc_net / FORWARD_SYSCTL[family]
    try:
        if path.read_text().strip() == "1":
            return False
        path.write_text("1\n")
    except OSError as exc:
        raise HostError(f"cannot enable {family} forwarding in {path}: {exc.strerror or exc}; "
                        "pyvirtd needs root to run routed and NAT networks") from exc
    return True


def current(*, table: str = DEFAULT_TABLE, nft: str = DEFAULT_NFT) -> str | None:
    """``nft list table inet TABLE`` as nft prints it, or None when there is no such table."""
    try:
        done = subprocess.run([nft, "list", "table", "inet", _table_name(table)], capture_output=True,
                              text=True, timeout=30, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        raise HostError(f"cannot run {nft} to list table inet {table}: {exc}") from exc
    return done.stdout if done.returncode == 0 else None
