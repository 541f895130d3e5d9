"""Virtual networks end to end: real bridges, taps, dnsmasq, nftables and tiny guests.

One daemon for the module; networks use bridges named pvn* and subnets
10.123-10.126.x.0/24 so they do not collide with anything else on the host. STP is off
on them (a new port on an STP bridge forwards only after 4 s); the ping helper still
retries for that case. The outside world is namespace pvnout behind the host
(10.127.0.2, over veth pvno0/pvno1 from the host's 10.127.0.1): it has a route back
to the isolated network only, so a NAT guest reaches it only when masqueraded.
"""
from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml, make_daemon

pytestmark = pytest.mark.integration

LEASE = "PYVIRT-GUEST-LEASE"

NAT_XML = """<network>
  <name>pvnat</name>
  <forward mode='nat'/>
  <bridge name='pvnb0' stp='off' delay='0'/>
  <ip address='10.123.0.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='10.123.0.10' end='10.123.0.100'/>
      <host mac='52:54:00:7b:00:63' name='fixed' ip='10.123.0.99'/>
    </dhcp>
  </ip>
</network>
"""

ISO_XML = """<network>
  <name>pviso</name>
  <bridge name='pvnb1' stp='off' delay='0'/>
  <ip address='10.124.0.1' prefix='24'>
    <dhcp>
      <range start='10.124.0.10' end='10.124.0.100'/>
    </dhcp>
  </ip>
</network>
"""


def nic(kind: str, source: str, mac: str, model: str = "virtio", extra: str = "") -> str:
    attr = {"network": "network", "bridge": "bridge", "direct": "dev"}[kind]
    return (f"<interface type='{kind}'><source {attr}='{source}'{extra}/><mac address='{mac}'/>"
            f"<model type='{model}'/></interface>")


def ping(daemon: DaemonHandle, name: str, ip: str, tries: int = 8) -> bool:
    """One echo per second until one answers. A port new on an STP bridge forwards only after
    listening + learning (2 x the kernel's 2 s minimum forward delay), as under libvirt."""
    status, _ = daemon.guest_run(
        name,
        f"for i in $(seq {tries}); do ping -c 1 -W 1 {ip} >/dev/null 2>&1 && break; done; "
        f"ping -c 1 -W 1 {ip} >/dev/null 2>&1",
        timeout=tries * 2 + 10)
    return status == 0


def nft_table(daemon: DaemonHandle) -> str:
    from pyvirt.network.lifecycle import nft_table_for

    done = subprocess.run(["nft", "list", "table", "inet", nft_table_for(daemon.root)],
                          capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def lease_ip(daemon: DaemonHandle, name: str, ifname: str = "eth0") -> str:
    text = daemon.wait_serial(name, f"{LEASE} {ifname} ", timeout=60)
    match = re.search(rf"{LEASE} {ifname} (\S+)", text)
    assert match, text
    return match.group(1)


@pytest.fixture(scope="module")
def netd(caps_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonHandle]:
    handle = make_daemon(caps_cache)
    try:
        files = tmp_path_factory.mktemp("netxml")
        for name, xml in (("nat", NAT_XML), ("iso", ISO_XML)):
            (files / f"{name}.xml").write_text(xml)
            handle.cli("net-define", str(files / f"{name}.xml"), check=True)
        handle.cli("net-start", "pvnat", check=True)
        handle.cli("net-start", "pviso", check=True)
        yield handle
    finally:
        handle.cleanup()


@pytest.fixture(scope="module")
def pair(netd: DaemonHandle, guest: GuestImage, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two microvm guests on the NAT network and one on the isolated one; their leased IPs."""
    files = tmp_path_factory.mktemp("guests")
    guests = {
        "nat1": nic("network", "pvnat", "52:54:00:7b:00:01"),
        "nat2": nic("network", "pvnat", "52:54:00:7b:00:63"),  # the static host entry: .99
        "iso1": nic("network", "pviso", "52:54:00:7c:00:01"),
    }
    for name, iface in guests.items():
        path = files / f"{name}.xml"
        path.write_text(domain_xml(name, guest, extra_devices=iface,
                                   cmdline=f"{guest.cmdline} pyvirt.hostname={name}"))
        netd.cli("define", str(path), check=True)
        netd.cli("start", name, check=True)
    return {name: lease_ip(netd, name) for name in guests}


OUTSIDE_NS, OUTSIDE = "pvnout", "10.127.0.2"
PORT = 8080
# Answers every connection with the address it came from, then closes it.
ECHO_PEER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
print("ready", flush=True)
while True:
    c, peer = s.accept(); c.sendall(peer[0].encode() + b"\\n"); c.close()
"""


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture(scope="module")
def outside() -> Iterator[str]:
    """Namespace pvnout behind the host with a server on 10.127.0.2:8080 that tells each client its address."""
    subprocess.run(["ip", "netns", "del", OUTSIDE_NS], capture_output=True)
    sh("ip", "netns", "add", OUTSIDE_NS)
    server = None
    try:
        sh("ip", "link", "add", "pvno0", "type", "veth", "peer", "name", "pvno1", "netns", OUTSIDE_NS)
        sh("ip", "addr", "add", "10.127.0.1/24", "dev", "pvno0")
        sh("ip", "link", "set", "pvno0", "up")
        sh("ip", "-n", OUTSIDE_NS, "addr", "add", f"{OUTSIDE}/24", "dev", "pvno1")
        sh("ip", "-n", OUTSIDE_NS, "link", "set", "pvno1", "up")
        sh("ip", "-n", OUTSIDE_NS, "route", "add", "10.124.0.0/24", "via", "10.127.0.1")  # isolated only
        server = subprocess.Popen(["ip", "netns", "exec", OUTSIDE_NS, sys.executable, "-c", ECHO_PEER, OUTSIDE,
                                   str(PORT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "ready", server.stderr
        yield OUTSIDE
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", "pvno0"], capture_output=True)
        subprocess.run(["ip", "netns", "del", OUTSIDE_NS], capture_output=True)


def connect(daemon: DaemonHandle, name: str, address: str) -> tuple[int, str]:
    """From guest ``name``, a TCP connection to the outside server: (status, what the server said or nc's error)."""
    status, out = daemon.guest_run(name, f"nc -w 3 {address} {PORT} </dev/null", timeout=20)
    return status, out.strip()


@contextlib.contextmanager
def guest_routes(daemon: DaemonHandle, name: str, via: str, *subnets: str) -> Iterator[None]:
    """Routes in the guest towards ``subnets`` through the host's address ``via`` on its network."""
    for subnet in subnets:
        status, out = daemon.guest_run(name, f"ip route replace {subnet} via {via}")
        assert status == 0, out
    try:
        yield
    finally:
        for subnet in subnets:
            daemon.guest_run(name, f"ip route del {subnet}")


@contextlib.contextmanager
def without_rules_of(daemon: DaemonHandle, bridge: str) -> Iterator[None]:
    """The daemon's nft table less every rule that names ``bridge``; the table as it was afterwards."""
    from pyvirt.network.lifecycle import nft_table_for

    table = nft_table_for(daemon.root)
    saved = nft_table(daemon)
    listing = subprocess.run(["nft", "-a", "list", "table", "inet", table], capture_output=True, text=True,
                             check=True).stdout
    chain = ""
    for line in listing.splitlines():
        if match := re.match(r"\s*chain (\S+) \{", line):
            chain = match.group(1)
        elif f'"{bridge}"' in line and (handle := re.search(r"# handle (\d+)$", line)):
            sh("nft", "delete", "rule", "inet", table, chain, "handle", handle.group(1))
    try:
        yield
    finally:
        subprocess.run(["nft", "-f", "-"], input=f"delete table inet {table}\n{saved}", text=True, check=True)
        assert nft_table(daemon) == saved


def test_nat_network_is_up_with_bridge_dnsmasq_and_rules(netd: DaemonHandle) -> None:
    listing = netd.cli("net-list", "--all", check=True).stdout
    assert re.search(r"^ pvnat\s+active\s+no\s+yes$", listing, re.M), listing
    info = netd.cli("net-info", "pvnat", check=True).stdout
    assert "Bridge:         pvnb0" in info and "Active:         yes" in info
    assert Path("/sys/class/net/pvnb0/bridge").is_dir()
    addr = subprocess.run(["ip", "-4", "addr", "show", "pvnb0"], capture_output=True, text=True).stdout
    assert "10.123.0.1/24" in addr
    rules = nft_table(netd)
    assert "masquerade" in rules and "10.123.0.0/24" in rules, rules
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"


def test_guests_take_leases_shown_by_net_dhcp_leases_and_domifaddr(netd: DaemonHandle, pair: dict[str, str]) -> None:
    assert pair["nat1"].startswith("10.123.0.") and pair["nat2"] == "10.123.0.99"
    assert pair["iso1"].startswith("10.124.0.")
    leases = netd.cli("net-dhcp-leases", "pvnat", check=True).stdout
    assert "Expiry Time" in leases and "Client ID or DUID" in leases
    assert re.search(rf"52:54:00:7b:00:01\s+ipv4\s+{re.escape(pair['nat1'])}/24\s+nat1", leases), leases
    # the static host entry names it: its name wins over the one the guest sent
    assert re.search(r"52:54:00:7b:00:63\s+ipv4\s+10\.123\.0\.99/24\s+fixed", leases), leases
    addr = netd.cli("domifaddr", "nat1", check=True).stdout
    assert re.search(rf"^ vnet\d+\s+52:54:00:7b:00:01\s+ipv4\s+{re.escape(pair['nat1'])}/24$", addr, re.M), addr
    iflist = netd.cli("domiflist", "nat1", check=True).stdout
    assert re.search(r"^ vnet\d+\s+network\s+pvnat\s+virtio\s+52:54:00:7b:00:01$", iflist, re.M), iflist
    live = netd.cli("dumpxml", "nat1", check=True).stdout
    assert "bridge='pvnb0'" in live and "<target dev='vnet" in live
    connections = netd.cli("net-dumpxml", "pvnat", check=True).stdout
    assert "<network connections='2'>" in connections


def test_guests_ping_each_other_and_the_gateway(netd: DaemonHandle, pair: dict[str, str]) -> None:
    assert ping(netd, "nat1", "10.123.0.1")
    assert ping(netd, "nat1", pair["nat2"])
    assert ping(netd, "nat2", pair["nat1"])


def test_nat_guest_reaches_the_outside_with_the_hosts_address(netd: DaemonHandle, pair: dict[str, str],
                                                                outside: str) -> None:
    # the outside has no route back to 10.123.0.0/24: only the host's masquerade gets an answer back
    status, said = connect(netd, "nat1", outside)
    assert status == 0 and said.splitlines()[-1] == "10.127.0.1", said


def test_isolated_network_cannot_reach_the_nat_network_or_the_outside(netd: DaemonHandle, pair: dict[str, str],
                                                                       outside: str) -> None:
    assert ping(netd, "iso1", "10.124.0.1")  # its own gateway answers
    # routes through the host, so only the host's rules stand in the way (forwarding is on: NAT needs it)
    with guest_routes(netd, "iso1", "10.124.0.1", "10.123.0.0/24", "10.127.0.0/24"):
        assert not ping(netd, "iso1", pair["nat1"], tries=2)
        status, said = connect(netd, "iso1", outside)
        assert status != 0 and "refused" in said, said  # the host's reject answered, not a timeout
        with without_rules_of(netd, "pvnb1"):  # what the isolated network's rules stop
            status, said = connect(netd, "iso1", outside)
            assert status == 0 and said.splitlines()[-1] == pair["iso1"], said  # routed as is
        status, said = connect(netd, "iso1", outside)
        assert status != 0 and "refused" in said, said


def test_domifstat_counts_traffic_and_setlink_cuts_it(netd: DaemonHandle, pair: dict[str, str]) -> None:
    stats = netd.cli("domifstat", "nat1", "52:54:00:7b:00:01", check=True).stdout
    counters = dict(re.findall(r"^\S+ (\w+) (\d+)$", stats, re.M))
    assert int(counters["rx_packets"]) > 0 and int(counters["tx_packets"]) > 0, stats
    dev = re.search(r"^(vnet\d+) ", stats, re.M).group(1)  # type: ignore[union-attr]
    assert netd.cli("domif-getlink", "nat1", dev, check=True).stdout.strip() == f"{dev} up"
    assert netd.cli("domif-setlink", "nat1", dev, "down", check=True).stdout.strip() == "Device updated successfully"
    assert netd.cli("domif-getlink", "nat1", dev, check=True).stdout.strip() == f"{dev} down"
    assert not ping(netd, "nat1", "10.123.0.1", tries=2)
    netd.cli("domif-setlink", "nat1", dev, "up", check=True)
    assert ping(netd, "nat1", "10.123.0.1")


def test_net_destroy_refuses_while_guests_use_it(netd: DaemonHandle, pair: dict[str, str]) -> None:
    r = netd.cli("net-destroy", "pviso")
    assert r.returncode == 1 and "in use by running domains: iso1" in r.stderr and "--force" in r.stderr
    assert Path("/sys/class/net/pvnb1").exists()


def test_net_destroy_force_then_start_replugs(netd: DaemonHandle, pair: dict[str, str]) -> None:
    r = netd.cli("net-destroy", "pviso", "--force", check=True)
    assert "Network pviso destroyed" in r.stdout and "iso1" in r.stdout
    assert not Path("/sys/class/net/pvnb1").exists()
    assert "10.124.0.0/24" not in nft_table(netd)
    netd.cli("net-start", "pviso", check=True)
    assert ping(netd, "iso1", "10.124.0.1")


def test_nat_rules_exist_only_while_the_network_is_active(netd: DaemonHandle, tmp_path: Path) -> None:
    xml = NAT_XML.replace("pvnat", "pvnat2").replace("pvnb0", "pvnb2").replace("10.123.0", "10.126.0")
    xml = xml.replace("<host mac='52:54:00:7b:00:63' name='fixed' ip='10.126.0.99'/>", "")
    (tmp_path / "n.xml").write_text(xml)
    netd.cli("net-create", str(tmp_path / "n.xml"), check=True)
    assert "10.126.0.0/24" in nft_table(netd)
    netd.cli("net-destroy", "pvnat2", check=True)
    assert "10.126.0.0/24" not in nft_table(netd)
    assert "pvnat2" not in netd.cli("net-list", "--all", check=True).stdout  # transient: gone
    assert not Path("/sys/class/net/pvnb2").exists()


def test_net_update_adds_a_static_host_live(netd: DaemonHandle) -> None:
    r = netd.cli("net-update", "pvnat", "add", "ip-dhcp-host",
                 "<host mac='52:54:00:7b:00:42' name='later' ip='10.123.0.42'/>", "--live", "--config", check=True)
    assert r.stdout.strip() == "Updated network pvnat persistent config and live state"
    assert "10.123.0.42" in netd.cli("net-dumpxml", "pvnat", check=True).stdout
    assert "10.123.0.42" in netd.cli("net-dumpxml", "pvnat", "--inactive", check=True).stdout
    hosts = (netd.root / "run/pyvirt/network/pvnat.hostsfile").read_text()
    assert "52:54:00:7b:00:42" in hosts
    r = netd.cli("net-update", "pvnat", "delete", "ip-dhcp-host", "<host mac='52:54:00:7b:00:42'/>", "--live",
                 check=True)
    assert "10.123.0.42" not in netd.cli("net-dumpxml", "pvnat", check=True).stdout
    assert "10.123.0.42" in netd.cli("net-dumpxml", "pvnat", "--inactive", check=True).stdout


def test_nic_models_e1000_and_rtl8139(netd: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    nics = (nic("network", "pvnat", "52:54:00:7b:01:01", "e1000")
            + nic("network", "pvnat", "52:54:00:7b:01:02", "rtl8139"))
    (tmp_path / "m.xml").write_text(domain_xml("models", guest, machine="q35", extra_devices=nics))
    netd.cli("create", str(tmp_path / "m.xml"), check=True)
    try:
        first, second = lease_ip(netd, "models", "eth0"), lease_ip(netd, "models", "eth1")
        assert first.startswith("10.123.0.") and second.startswith("10.123.0.") and first != second
        assert ping(netd, "models", "10.123.0.1")
        rows = netd.cli("domiflist", "models", check=True).stdout
        assert "e1000" in rows and "rtl8139" in rows
    finally:
        netd.cli("destroy", "models")


def test_hot_attach_and_detach_of_a_nic(netd: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    ports = "".join(f"<controller type='pci' index='{i}' model='pcie-root-port'/>" for i in (1, 2))
    (tmp_path / "h.xml").write_text(domain_xml("hot", guest, machine="q35",
                                               extra_devices="<controller type='pci' index='0' model='pcie-root'/>"
                                               + ports))
    netd.cli("create", str(tmp_path / "h.xml"), check=True)
    try:
        netd.wait_serial("hot")
        r = netd.cli("attach-interface", "hot", "network", "pvnat", "--mac", "52:54:00:7b:02:01", check=True)
        assert r.stdout.strip() == "Interface attached successfully"
        netd.wait_serial("hot", "PYVIRT-GUEST-NIC-ADDED eth0 52:54:00:7b:02:01", timeout=30)
        ip = lease_ip(netd, "hot", "eth0")
        assert ip.startswith("10.123.0.")
        assert "52:54:00:7b:02:01" in netd.cli("domiflist", "hot", check=True).stdout
        tap = re.search(r"(vnet\d+)", netd.cli("domiflist", "hot", check=True).stdout).group(1)  # type: ignore[union-attr]
        r = netd.cli("detach-interface", "hot", "network", "--mac", "52:54:00:7b:02:01", check=True)
        assert r.stdout.strip() == "Interface detached successfully"
        netd.wait_serial("hot", "PYVIRT-GUEST-NIC-REMOVED eth0", timeout=30)
        assert "52:54:00:7b:02:01" not in netd.cli("domiflist", "hot", check=True).stdout
        deadline = time.monotonic() + 5
        while Path(f"/sys/class/net/{tap}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/sys/class/net/{tap}").exists()
    finally:
        netd.cli("destroy", "hot")


def test_attach_to_an_inactive_network_is_refused(netd: DaemonHandle, pair: dict[str, str], tmp_path: Path) -> None:
    xml = ISO_XML.replace("pviso", "pvoff").replace("pvnb1", "pvnb3").replace("10.124.0", "10.125.9")
    (tmp_path / "off.xml").write_text(xml)
    netd.cli("net-define", str(tmp_path / "off.xml"), check=True)
    r = netd.cli("attach-interface", "nat1", "network", "pvoff")
    assert r.returncode == 1 and "network 'pvoff' is not active" in r.stderr and "net-start pvoff" in r.stderr
    assert "pvoff" not in netd.cli("domiflist", "nat1", check=True).stdout
    netd.cli("net-undefine", "pvoff", check=True)


def test_duplicate_mac_of_a_running_guest_is_refused(netd: DaemonHandle, guest: GuestImage, pair: dict[str, str],
                                                     tmp_path: Path) -> None:
    (tmp_path / "d.xml").write_text(domain_xml("dupmac", guest, extra_devices=nic("network", "pvnat",
                                                                                   "52:54:00:7b:00:01")))
    r = netd.cli("create", str(tmp_path / "d.xml"))
    assert r.returncode == 1 and "52:54:00:7b:00:01 is already used by running domain 'nat1'" in r.stderr
    assert "dupmac" not in netd.cli("list", "--all", check=True).stdout
