"""The host side of a NAT network for real: a bridge, dnsmasq, a DHCP client, nftables and NAT.

The "guest" is a network namespace (pvtdg) whose veth peer sits on the bridge
pvtd0 (10.251.0.1/24) and runs busybox udhcpc; the "outside world" is a
second namespace (pvtdo, 10.251.1.2) behind another veth from the host. Only
links, namespaces and tables named pvtd* and subnets in 10.251.0.0/16 are
used, and every fixture removes what it made. The firewall table is named
``pvtd`` rather than ``pyvirt`` so a system daemon's table is never touched.

IPv4 forwarding is turned on for the NAT test and left on: pyvirt never turns
it back off (see firewall.enable_ip_forward), and resetting it here would
break the NAT networks of daemon tests running at the same time.
"""
from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from pyvirt.errors import HostError
from pyvirt.model.network import Bridge, DHCPHost, DHCPRange, DNSHost, Forward, IPConfig, Network
from pyvirt.network import dnsmasq, firewall
from pyvirt.network.leases import read_leases

pytestmark = pytest.mark.integration

BRIDGE = "pvtd0"
GUEST_NS, OUTSIDE_NS = "pvtdg", "pvtdo"
GUEST_IF, GUEST_HOST_IF = "pvtdg0", "pvtdv0"  # guest's end (in pvtdg), its host end (on the bridge)
OUT_HOST_IF, OUT_IF = "pvtdo0", "pvtdo1"  # host end 10.251.1.1, outside end 10.251.1.2 (in pvtdo)
GUEST_MAC = "52:54:00:fd:00:01"
TABLE = "pvtd"
STATIC_IP = "10.251.0.50"

NET = Network(name="pvtdnet", bridge=Bridge(BRIDGE), forward=Forward("nat"), domain_name="pvtd.test",
              ips=(IPConfig("10.251.0.1", 24, dhcp_ranges=(DHCPRange("10.251.0.10", "10.251.0.20"),)),),
              dns_hosts=(DNSHost("10.251.0.99", ("files",)),))

UDHCPC_SCRIPT = """#!/bin/sh
[ "$1" = bound ] && echo "$ip $subnet $router" >> "$PVTD_OUT"
exit 0
"""


def run(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    return done


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def alive(pid: int) -> bool:
    """A process that exited is gone, or a zombie waiting for PID 1 to reap it (it does so late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def remove_lab() -> None:
    for link in (BRIDGE, GUEST_HOST_IF, OUT_HOST_IF):
        if Path(f"/sys/class/net/{link}").exists():
            run("ip", "link", "del", link, check=False)
    for ns in (GUEST_NS, OUTSIDE_NS):
        if Path(f"/run/netns/{ns}").exists():
            for pid in run("ip", "netns", "pids", ns, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)
            run("ip", "netns", "del", ns, check=False)
    run("nft", "delete", "table", "inet", TABLE, check=False)


@dataclass
class Lab:
    dir: Path

    def files(self, name: str = "pvtdnet") -> dict[str, Path]:
        return {"conf": self.dir / f"{name}.conf", "pidfile": self.dir / f"{name}.pid",
                "leasefile": self.dir / f"{name}.leases", "hostsfile": self.dir / f"{name}.hostsfile",
                "addn_hosts": self.dir / f"{name}.addnhosts", "logfile": self.dir / f"{name}.log"}

    def dhcp(self, timeout: float = 20) -> tuple[str, str, str]:
        """Run udhcpc in the guest namespace; the (ip, netmask, router) it was given."""
        out = self.dir / "udhcpc.out"
        out.unlink(missing_ok=True)
        script = self.dir / "udhcpc.sh"
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
        done = subprocess.run(in_ns(GUEST_NS, "busybox", "udhcpc", "-i", GUEST_IF, "-n", "-q", "-t", "8", "-T", "1",
                                    "-s", str(script), "-x", "hostname:pvtdguest"),
                              capture_output=True, text=True, timeout=timeout, env={**os.environ, "PVTD_OUT": str(out)})
        assert done.returncode == 0 and out.exists(), f"udhcpc got no lease: {done.stdout}{done.stderr}"
        ip, mask, router = out.read_text().rstrip("\n").split(" ")[:3]
        return ip, mask, router


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    remove_lab()  # what a killed earlier run may have left
    workdir = Path(tempfile.mkdtemp(prefix="pvtd"))
    workdir.chmod(0o755)  # dnsmasq reads its hosts files as nobody
    try:
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", "10.251.0.1/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        run("ip", "netns", "add", GUEST_NS)
        run("ip", "link", "add", GUEST_HOST_IF, "type", "veth", "peer", "name", GUEST_IF, "netns", GUEST_NS)
        run("ip", "link", "set", GUEST_HOST_IF, "master", BRIDGE, "up")
        run(*in_ns(GUEST_NS, "ip", "link", "set", GUEST_IF, "address", GUEST_MAC, "up"))
        run(*in_ns(GUEST_NS, "ip", "link", "set", "lo", "up"))
        yield Lab(workdir)
    finally:
        remove_lab()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def running_dnsmasq(lab: Lab, net: Network = NET) -> Iterator[int]:
    f = lab.files(net.name)
    dnsmasq.write_hosts_files(net, hostsfile=f["hostsfile"], addn_hosts=f["addn_hosts"])
    f["conf"].write_text(dnsmasq.dnsmasq_config(net, BRIDGE, leasefile=f["leasefile"], hostsfile=f["hostsfile"],
                                                pidfile=f["pidfile"], addn_hosts=f["addn_hosts"],
                                                logfile=f["logfile"]))
    pid = dnsmasq.start(f["conf"], f["pidfile"])
    try:
        yield pid
    finally:
        dnsmasq.stop(pid)


def wait_log(path: Path, text: str, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count(text) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} did not say {text!r} {count} times: {path.read_text() if path.exists() else ''}")


def test_dnsmasq_serves_dns_and_dhcp_and_reloads_static_hosts(lab: Lab) -> None:
    f = lab.files()
    with running_dnsmasq(lab) as pid:
        assert alive(pid)
        assert dnsmasq.find(f["pidfile"], f["conf"]) == pid  # what a restarted daemon reattaches to
        dnsmasq.probe_dns("10.251.0.1", network=NET.name)
        dnsmasq.check_answers(NET, pid)
        assert {53, 67} <= dnsmasq.udp_ports(pid)

        ip, mask, router = lab.dhcp()
        assert 10 <= int(ip.rsplit(".", 1)[1]) <= 20 and ip.startswith("10.251.0.")
        assert (mask, router) == ("255.255.255.0", "10.251.0.1")
        lease = next(lease for lease in read_leases(f["leasefile"], NET) if lease.mac == GUEST_MAC)
        assert (lease.ip, lease.prefix, lease.family, lease.hostname) == (ip, 24, "ipv4", "pvtdguest")
        assert lease.expiry > time.time() + 3000  # 1h lease

        # net-update --live: a static host for the guest's MAC, re-read on SIGHUP without a restart
        static = replace(NET.ips[0], dhcp_hosts=(DHCPHost(mac=GUEST_MAC, name="pinned", ip=STATIC_IP),))
        updated = replace(NET, ips=(static,))
        dnsmasq.write_hosts_files(updated, hostsfile=f["hostsfile"], addn_hosts=f["addn_hosts"])
        dnsmasq.reload_hosts(pid)
        wait_log(f["logfile"], f"read {f['hostsfile']}", 2)
        assert lab.dhcp()[0] == STATIC_IP
        assert [lease.ip for lease in read_leases(f["leasefile"], NET) if lease.mac == GUEST_MAC] == [STATIC_IP]
        assert dnsmasq.find(f["pidfile"], f["conf"]) == pid  # same process: reloaded, not restarted
    assert not alive(pid)
    assert dnsmasq.find(f["pidfile"], f["conf"]) is None
    with pytest.raises(HostError, match=r"dnsmasq for network 'pvtdnet' does not answer DNS on 10\.251\.0\.1:53"):
        dnsmasq.probe_dns("10.251.0.1", timeout=0.5, network=NET.name)


def test_start_failure_carries_dnsmasqs_message(lab: Lab) -> None:
    f = lab.files()
    f["conf"].write_text(dnsmasq.dnsmasq_config(NET, BRIDGE, leasefile=f["leasefile"], hostsfile=f["hostsfile"],
                                                pidfile=f["pidfile"], addn_hosts=f["addn_hosts"]))
    dnsmasq.write_hosts_files(NET, hostsfile=f["hostsfile"], addn_hosts=f["addn_hosts"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("10.251.0.1", 53))
        with pytest.raises(HostError, match=r"dnsmasq failed to start: .*10\.251\.0\.1: Address already in use"):
            dnsmasq.start(f["conf"], f["pidfile"])
    assert dnsmasq.find(f["pidfile"], f["conf"]) is None


def test_dns_disabled_network_is_checked_by_its_dhcp_socket(lab: Lab) -> None:
    net = Network(name="pvtdnodns", bridge=Bridge(BRIDGE), dns_enable=False, ips=NET.ips)  # isolated
    with running_dnsmasq(lab, net) as pid:
        dnsmasq.check_answers(net, pid)  # DHCP socket on 67 is there
        assert 53 not in dnsmasq.udp_ports(pid)
        with pytest.raises(HostError, match="does not answer DNS"):
            dnsmasq.probe_dns("10.251.0.1", timeout=0.5, network=net.name)
        ip, _, router = lab.dhcp()
        assert ip.startswith("10.251.0.") and router == ""  # isolated: dhcp-option=3, no default route


def test_answers_names_of_dns_hosts(lab: Lab) -> None:
    """<dns><host> entries come from the addn-hosts file (asked over UDP like a guest would)."""
    with running_dnsmasq(lab):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("10.251.0.1", 53))
            sock.send(dnsmasq.dns_query("files.pvtd.test", 7))
            ready, _, _ = select.select([sock], [], [], 2)
            assert ready, "no DNS answer"
            reply = sock.recv(512)
        assert reply[:2] == b"\x00\x07" and reply[3] & 0x0F == 0  # same id, NOERROR
        assert socket.inet_aton("10.251.0.99") in reply[-4:]  # the A record's data ends the packet


# ----------------------------------------------------------------- nftables and NAT
@pytest.fixture()
def outside(lab: Lab) -> Iterator[None]:
    """The outside namespace, 10.251.1.2, reachable from the host over 10.251.1.1."""
    try:
        run("ip", "netns", "add", OUTSIDE_NS)
        run("ip", "link", "add", OUT_HOST_IF, "type", "veth", "peer", "name", OUT_IF, "netns", OUTSIDE_NS)
        run("ip", "addr", "add", "10.251.1.1/24", "dev", OUT_HOST_IF)
        run("ip", "link", "set", OUT_HOST_IF, "up")
        run(*in_ns(OUTSIDE_NS, "ip", "addr", "add", "10.251.1.2/24", "dev", OUT_IF))
        run(*in_ns(OUTSIDE_NS, "ip", "link", "set", OUT_IF, "up"))
        yield
    finally:
        run("ip", "link", "del", OUT_HOST_IF, check=False)
        for pid in run("ip", "netns", "pids", OUTSIDE_NS, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        run("ip", "netns", "del", OUTSIDE_NS, check=False)
        run("nft", "delete", "table", "inet", TABLE, check=False)


SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(4); s.settimeout(20)
print("ready", flush=True)
while True:
    c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
"""
CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print("peer", c.recv(64).decode())
except OSError as exc:
    print(type(exc).__name__)
"""


@contextlib.contextmanager
def server(ns: str, address: str, port: int) -> Iterator[None]:
    proc = subprocess.Popen(in_ns(ns, sys.executable, "-c", SERVER, address, str(port)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr
        yield
    finally:
        proc.kill()
        proc.wait()


def connect(ns: str, address: str, port: int, timeout: float = 3.0) -> str:
    return run(*in_ns(ns, sys.executable, "-c", CLIENT, address, str(port), str(timeout))).stdout.strip()


def test_firewall_table_sync_and_remove(lab: Lab) -> None:
    try:
        firewall.sync([(NET, BRIDGE)], table=TABLE)
        listing = firewall.current(table=TABLE)
        assert listing is not None
        assert "ip saddr 10.251.0.0/24 ip daddr != 10.251.0.0/24 masquerade" in listing
        assert 'oifname "pvtd0" reject' in listing
        firewall.sync([(NET, BRIDGE)], table=TABLE)  # idempotent: the table is replaced, not doubled
        assert firewall.current(table=TABLE) == listing
        firewall.sync([], table=TABLE)
        assert firewall.current(table=TABLE) is None
        firewall.sync([(NET, BRIDGE)], table=TABLE)
        firewall.remove(table=TABLE)
        assert firewall.current(table=TABLE) is None
        firewall.remove(table=TABLE)  # removing what is gone is fine
    finally:
        run("nft", "delete", "table", "inet", TABLE, check=False)


def test_nat_end_to_end(lab: Lab, outside: None) -> None:
    with running_dnsmasq(lab):
        ip, _, _ = lab.dhcp()
    run(*in_ns(GUEST_NS, "ip", "addr", "replace", f"{ip}/24", "dev", GUEST_IF))
    run(*in_ns(GUEST_NS, "ip", "route", "replace", "default", "via", "10.251.0.1"))
    firewall.enable_ip_forward("ipv4")
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    with server(OUTSIDE_NS, "10.251.1.2", 8080):
        # without the table the outside sees the guest's own address and has no route back to it
        firewall.remove(table=TABLE)
        assert connect(GUEST_NS, "10.251.1.2", 8080, timeout=1.0) in ("TimeoutError", "timeout")
        firewall.sync([(NET, BRIDGE)], table=TABLE)
        assert connect(GUEST_NS, "10.251.1.2", 8080) == "peer 10.251.1.1"  # masqueraded to the host
        ping = run(*in_ns(GUEST_NS, "busybox", "ping", "-c", "1", "-W", "3", "10.251.1.2"), check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    # a new connection from outside into the NAT network is rejected, not routed to the guest
    run(*in_ns(OUTSIDE_NS, "ip", "route", "add", "10.251.0.0/24", "via", "10.251.1.1"))
    with server(GUEST_NS, ip, 8081):
        assert connect(OUTSIDE_NS, ip, 8081) == "ConnectionRefusedError"
        firewall.sync([], table=TABLE)  # no table: nothing stops it
        assert connect(OUTSIDE_NS, ip, 8081) == "peer 10.251.1.2"
