"""Networks across daemon restarts, the `default` network, macvtap, and bad input.

Each test that kills or restarts pyvirtd has its own daemon. Bridges here are
named pvd*, subnets 10.128-10.131.x.0/24; the macvtap test makes a veth pair
pvdv0/pvdv1 with pvdv1 in namespace pvdns.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml, make_daemon

pytestmark = pytest.mark.integration

NET = """<network>
  <name>{name}</name>
  <forward mode='nat'/>
  <bridge name='{bridge}' stp='off'/>
  <ip address='{prefix}.1' prefix='24'>
    <dhcp>
      <range start='{prefix}.10' end='{prefix}.50'/>
    </dhcp>
  </ip>
</network>
"""


def define(d: DaemonHandle, tmp: Path, xml: str, start: bool = True) -> subprocess.CompletedProcess[str]:
    path = tmp / f"n{time.monotonic_ns()}.xml"
    path.write_text(xml)
    r = d.cli("net-define", str(path))
    if start and r.returncode == 0:
        d.cli("net-start", re.search(r"<name>(.*)</name>", xml).group(1), check=True)  # type: ignore[union-attr]
    return r


@pytest.fixture()
def own(caps_cache: Path) -> Iterator[DaemonHandle]:
    handle = make_daemon(caps_cache)
    try:
        yield handle
    finally:
        handle.cleanup()


def test_kill_9_and_restart_reattaches_networks(own: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    define(own, tmp_path, NET.format(name="pvr", bridge="pvdb0", prefix="10.128.0"))
    (tmp_path / "g.xml").write_text(domain_xml("rg", guest, extra_devices=(
        "<interface type='network'><source network='pvr'/><mac address='52:54:00:80:00:01'/></interface>")))
    own.cli("create", str(tmp_path / "g.xml"), check=True)
    own.wait_serial("rg", "PYVIRT-GUEST-LEASE eth0")
    from tests.integration.conftest import pids_under

    before = pids_under(own.root, b"dnsmasq")
    assert len(before) == 1
    own.stop(signal.SIGKILL)
    own.start()
    assert pids_under(own.root, b"dnsmasq") == before  # reattached, not restarted
    assert re.search(r"^ pvr\s+active", own.cli("net-list", check=True).stdout, re.M)
    assert "52:54:00:80:00:01" in own.cli("net-dhcp-leases", "pvr", check=True).stdout  # leases kept
    assert own.cli("domifaddr", "rg", check=True).stdout.count("10.128.0.") == 1
    assert "table inet" in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    r = own.cli("net-destroy", "pvr", "--force", check=True)
    assert "rg" in r.stdout
    own.cli("destroy", "rg", check=True)
    own.cli("net-undefine", "pvr", check=True)
    assert own.host_leftovers() == []
    assert not Path("/sys/class/net/pvdb0").exists()


def test_network_whose_bridge_vanished_while_the_daemon_was_down(own: DaemonHandle, tmp_path: Path) -> None:
    define(own, tmp_path, NET.format(name="pvgone", bridge="pvdb1", prefix="10.129.0"))
    own.stop(signal.SIGKILL)
    subprocess.run(["ip", "link", "del", "pvdb1"], check=True)  # as after a host reboot
    own.start()
    assert re.search(r"^ pvgone\s+inactive", own.cli("net-list", "--all", check=True).stdout, re.M)
    assert own.host_leftovers() == []  # its dnsmasq was stopped, its rules dropped
    own.cli("net-start", "pvgone", check=True)
    own.cli("net-destroy", "pvgone", check=True)
    assert own.host_leftovers() == []


def signal_pending(pid: int, sig: int) -> bool:
    """True while ``sig`` is sent to ``pid`` but not yet delivered (a stopped process keeps it pending)."""
    status = Path(f"/proc/{pid}/status").read_text()
    pending = int(re.search(r"^ShdPnd:\s*([0-9a-f]+)$", status, re.M).group(1), 16)  # type: ignore[union-attr]
    return bool(pending & (1 << (sig - 1)))


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for init to reap it counts as gone: it has no command line)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == b""
    except FileNotFoundError:
        return True


def test_daemon_killed_inside_net_destroy_keeps_the_record_and_cleans_after_restart(
        own: DaemonHandle, tmp_path: Path) -> None:
    """The runtime record must outlive the host side: a daemon killed while net-destroy stops the host
    side comes back knowing the network (its bridge is still there), so nothing leaks unseen."""
    from tests.integration.conftest import PYVIRT, pids_under

    define(own, tmp_path, NET.format(name="pvkill", bridge="pvdb10", prefix="10.128.1"))
    [dnsmasq_pid] = pids_under(own.root, b"dnsmasq")
    os.kill(dnsmasq_pid, signal.SIGSTOP)  # holds net-destroy inside the host-side stop: SIGTERM stays pending
    destroy = subprocess.Popen([PYVIRT, "-c", own.uri, "net-destroy", "pvkill"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not signal_pending(dnsmasq_pid, signal.SIGTERM) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert signal_pending(dnsmasq_pid, signal.SIGTERM), "net-destroy never asked dnsmasq to stop"
        own.stop(signal.SIGKILL)  # the daemon dies in the middle of stopping the host side
    finally:
        os.kill(dnsmasq_pid, signal.SIGCONT)  # it now takes the SIGTERM and exits
        destroy.wait(10)
    deadline = time.monotonic() + 5
    while not gone(dnsmasq_pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert Path("/sys/class/net/pvdb10").exists()  # the host side was not finished
    own.start()
    # the record is still there: the network is reattached (dnsmasq started again), not forgotten
    assert re.search(r"^ pvkill\s+active", own.cli("net-list", "--all", check=True).stdout, re.M)
    assert len(pids_under(own.root, b"dnsmasq")) == 1
    own.cli("net-destroy", "pvkill", check=True)
    assert not Path("/sys/class/net/pvdb10").exists()
    own.cli("net-undefine", "pvkill", check=True)
    assert own.host_leftovers() == []


def test_default_network_exists_from_the_first_start(caps_cache: Path) -> None:
    handle = make_daemon(caps_cache, default_network=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            listing = handle.cli("net-list", "--all", check=True).stdout
            if re.search(r"^ default\s+active\s+yes\s+yes$", listing, re.M):
                break
            time.sleep(0.2)
        assert re.search(r"^ default\s+active\s+yes\s+yes$", listing, re.M), listing
        xml = handle.cli("net-dumpxml", "default", check=True).stdout
        assert "<forward mode='nat'>" in xml and re.search(r"<bridge name='virbr\d+'", xml)
        assert re.search(r"<ip address='192\.168\.\d+\.1' netmask='255\.255\.255\.0'>", xml)
        handle.cli("net-destroy", "default", check=True)
        assert handle.host_leftovers() == []
    finally:
        handle.cleanup()


@pytest.fixture()
def veth_in_namespace() -> Iterator[str]:
    """pvdv0 on the host, its peer pvdv1 with 10.130.0.1/24 in namespace pvdns."""
    def sh(*argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True)

    subprocess.run(["ip", "netns", "del", "pvdns"], capture_output=True)
    subprocess.run(["ip", "link", "del", "pvdv0"], capture_output=True)
    sh("ip", "netns", "add", "pvdns")
    try:
        sh("ip", "link", "add", "pvdv0", "type", "veth", "peer", "name", "pvdv1")
        sh("ip", "link", "set", "pvdv1", "netns", "pvdns")
        sh("ip", "-n", "pvdns", "addr", "add", "10.130.0.1/24", "dev", "pvdv1")
        sh("ip", "-n", "pvdns", "link", "set", "pvdv1", "up")
        sh("ip", "link", "set", "pvdv0", "up")
        yield "pvdv0"
    finally:
        subprocess.run(["ip", "link", "del", "pvdv0"], capture_output=True)
        subprocess.run(["ip", "netns", "del", "pvdns"], capture_output=True)


def test_direct_macvtap_reaches_an_address_in_a_namespace(daemon: DaemonHandle, guest: GuestImage,
                                                           veth_in_namespace: str, tmp_path: Path) -> None:
    iface = (f"<interface type='direct'><source dev='{veth_in_namespace}' mode='bridge'/>"
             "<mac address='52:54:00:82:00:01'/><model type='virtio'/></interface>")
    (tmp_path / "m.xml").write_text(domain_xml("mvt", guest, extra_devices=iface))
    daemon.cli("create", str(tmp_path / "m.xml"), check=True)
    try:
        daemon.wait_serial("mvt")
        target = re.search(r"^ (macvtap\d+)\s+direct\s+pvdv0", daemon.cli("domiflist", "mvt", check=True).stdout, re.M)
        assert target, daemon.cli("domiflist", "mvt").stdout
        assert Path(f"/sys/class/net/{target.group(1)}").exists()
        status, out = daemon.guest_run("mvt", "ip addr add 10.130.0.2/24 dev eth0 && ip link set eth0 up && "
                                              "ping -c 3 -W 2 10.130.0.1")
        assert status == 0, out
    finally:
        daemon.cli("destroy", "mvt")
    assert not Path(f"/sys/class/net/{target.group(1)}").exists()  # the macvtap went with the guest


BAD = [
    ("<ip address='10.131.0.1' netmask='255.0.255.0'>", "255.0.255.0"),
    ("<ip address='10.131.0.300' prefix='24'>", "10.131.0.300"),
    ("<ip address='10.131.0.1' prefix='24'><dhcp><range start='10.131.1.10' end='10.131.1.20'/></dhcp>",
     "10.131.1.10"),
    ("<ip address='10.131.0.1' prefix='24'><dhcp><range start='10.131.0.50' end='10.131.0.10'/></dhcp>",
     "10.131.0.50"),
]


@pytest.mark.parametrize("ip, named", BAD, ids=["netmask", "address", "range-outside", "range-reversed"])
def test_bad_network_definitions_are_refused(daemon: DaemonHandle, tmp_path: Path, ip: str, named: str) -> None:
    xml = f"<network><name>pvbad</name><bridge name='pvdb9'/>{ip}</ip></network>"
    r = define(daemon, tmp_path, xml, start=False)
    assert r.returncode == 1 and named in r.stderr, r.stderr
    assert "pvbad" not in daemon.cli("net-list", "--all", check=True).stdout


def test_overlap_with_another_network_and_a_host_route(daemon: DaemonHandle, tmp_path: Path) -> None:
    define(daemon, tmp_path, NET.format(name="pvov1", bridge="pvdb2", prefix="10.131.0"), start=False)
    try:
        r = define(daemon, tmp_path, NET.format(name="pvov2", bridge="pvdb3", prefix="10.131.0"), start=False)
        assert r.returncode == 1 and "overlaps network 'pvov1'" in r.stderr, r.stderr
        subprocess.run(["ip", "link", "add", "pvdd0", "type", "veth", "peer", "name", "pvdd0p"], check=True)
        try:
            subprocess.run(["ip", "addr", "add", "10.131.8.1/24", "dev", "pvdd0"], check=True)
            define(daemon, tmp_path, NET.format(name="pvov3", bridge="pvdb4", prefix="10.131.8"), start=False)
            r = daemon.cli("net-start", "pvov3")
            assert r.returncode == 1 and "10.131.8.0/24" in r.stderr and "pvdd0" in r.stderr, r.stderr
            assert not Path("/sys/class/net/pvdb4").exists()
            daemon.cli("net-undefine", "pvov3", check=True)
        finally:
            subprocess.run(["ip", "link", "del", "pvdd0"], capture_output=True)
    finally:
        daemon.cli("net-undefine", "pvov1")


def test_bridge_name_in_use_or_too_long_and_missing_forward_dev(daemon: DaemonHandle, tmp_path: Path) -> None:
    r = define(daemon, tmp_path, NET.format(name="pvlong", bridge="pvd-a-very-long-name", prefix="10.131.20"),
               start=False)
    assert r.returncode == 1 and "15" in r.stderr and "pvd-a-very-long-name" in r.stderr, r.stderr
    subprocess.run(["ip", "link", "add", "pvdd1", "type", "veth", "peer", "name", "pvdd1p"], check=True)
    try:
        define(daemon, tmp_path, NET.format(name="pvbusy", bridge="pvdd1", prefix="10.131.21"), start=False)
        r = daemon.cli("net-start", "pvbusy")
        assert r.returncode == 1 and "'pvdd1' already exists" in r.stderr, r.stderr
        assert Path("/sys/class/net/pvdd1").exists()  # not touched
        daemon.cli("net-undefine", "pvbusy", check=True)
    finally:
        subprocess.run(["ip", "link", "del", "pvdd1"], capture_output=True)
    xml = NET.format(name="pvfwd", bridge="pvdb5", prefix="10.131.22").replace(
        "<forward mode='nat'/>", "<forward mode='nat' dev='pvnosuch0'/>")
    define(daemon, tmp_path, xml, start=False)
    r = daemon.cli("net-start", "pvfwd")
    assert r.returncode == 1 and "pvnosuch0" in r.stderr and "does not exist" in r.stderr, r.stderr
    assert not Path("/sys/class/net/pvdb5").exists()
    daemon.cli("net-undefine", "pvfwd", check=True)
    assert daemon.host_leftovers() == []


def test_vhost_request_without_dev_vhost_net_is_a_clear_error(daemon: DaemonHandle, guest: GuestImage,
                                                              tmp_path: Path) -> None:
    if Path("/dev/vhost-net").exists():
        pytest.skip("this host has /dev/vhost-net, so a vhost request is not an error here")
    define(daemon, tmp_path, NET.format(name="pvvh", bridge="pvdb6", prefix="10.131.30"))
    try:
        iface = ("<interface type='network'><source network='pvvh'/><mac address='52:54:00:83:00:01'/>"
                 "<model type='virtio'/><driver name='vhost' queues='2'/></interface>")
        (tmp_path / "v.xml").write_text(domain_xml("vh", guest, extra_devices=iface))
        r = daemon.cli("create", str(tmp_path / "v.xml"))
        assert r.returncode == 1 and "/dev/vhost-net" in r.stderr and "remove the driver name" in r.stderr
        assert "vh" not in daemon.cli("list", "--all", check=True).stdout
        assert not any(Path("/sys/class/net/pvdb6/brif").iterdir())  # the taps it opened are gone
        # the default backend (no driver name) works with the same two queues
        (tmp_path / "v.xml").write_text(domain_xml("vh", guest, extra_devices=iface.replace("name='vhost' ", "")))
        daemon.cli("create", str(tmp_path / "v.xml"), check=True)
        assert "mq=on" in (daemon.root / "var/log/pyvirt/qemu/vh.log").read_text()
        daemon.cli("destroy", "vh", check=True)
    finally:
        daemon.cli("net-destroy", "pvvh")
        daemon.cli("net-undefine", "pvvh")


def test_net_define_again_without_uuid_updates_the_definition(daemon: DaemonHandle, tmp_path: Path) -> None:
    xml = NET.format(name="pvre", bridge="pvdb7", prefix="10.131.40")
    assert define(daemon, tmp_path, xml, start=False).returncode == 0
    uuid = daemon.cli("net-uuid", "pvre", check=True).stdout.strip()
    r = define(daemon, tmp_path, xml.replace("10.131.40.50", "10.131.40.60"), start=False)
    assert r.returncode == 0 and "Network pvre defined from" in r.stdout, r.stderr
    assert daemon.cli("net-uuid", "pvre", check=True).stdout.strip() == uuid
    assert "10.131.40.60" in daemon.cli("net-dumpxml", "pvre", check=True).stdout
    daemon.cli("net-undefine", "pvre", check=True)


def test_dual_stack_network_gives_the_guest_ipv6_by_router_advertisement(daemon: DaemonHandle, guest: GuestImage,
                                                                           tmp_path: Path) -> None:
    # no DHCPv6 range: dnsmasq advertises the prefix for SLAAC (ra-only)
    ipv6 = """  <ip family='ipv6' address='fd00:131:50::1' prefix='64'>
  </ip>
</network>"""
    xml = NET.format(name="pvv6", bridge="pvdb8", prefix="10.131.50").replace("</network>", ipv6)
    define(daemon, tmp_path, xml)
    try:
        addrs = subprocess.run(["ip", "-6", "addr", "show", "pvdb8"], capture_output=True, text=True).stdout
        assert "fd00:131:50::1/64" in addrs
        conf = (daemon.root / "run/pyvirt/network/pvv6.conf").read_text()
        assert "fd00:131:50::" in conf and "ra-only" in conf and "enable-ra" in conf
        from pyvirt.network.lifecycle import nft_table_for

        rules = subprocess.run(["nft", "list", "table", "inet", nft_table_for(daemon.root)], capture_output=True,
                               text=True).stdout
        assert "fd00:131:50::/64" in rules
        iface = "<interface type='network'><source network='pvv6'/><mac address='52:54:00:84:00:01'/></interface>"
        (tmp_path / "v6.xml").write_text(domain_xml("v6g", guest, extra_devices=iface))
        daemon.cli("create", str(tmp_path / "v6.xml"), check=True)
        daemon.wait_serial("v6g", "PYVIRT-GUEST-LEASE eth0")
        status, out = daemon.guest_run(
            # link up again: the kernel sends a router solicitation, which dnsmasq answers at once
            "v6g", "ip link set eth0 down; ip link set eth0 up;"
                   " for i in $(seq 60); do ip -6 addr show dev eth0 | grep fd00:131:50: | grep -qv tentative && break;"
                   " sleep 0.5; done;"
                   " ip -6 addr show dev eth0 | grep fd00:131:50: && ping -6 -c 2 -W 2 fd00:131:50::1 >/dev/null",
            timeout=60)
        assert status == 0, out
        assert "fd00:131:50:" in out
    finally:
        daemon.cli("destroy", "v6g")
        daemon.cli("net-destroy", "pvv6")
        daemon.cli("net-undefine", "pvv6")
    assert daemon.host_leftovers() == []
