"""dnsmasq conf and hosts files of a network, the DNS probe packet, and process look-ups.

Every generated conf is also fed to the real ``dnsmasq --test`` (a syntax check that starts nothing).
"""
from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pyvirt.errors import HostError, InvalidArgument
from pyvirt.model.network import Bridge, DHCPHost, DHCPRange, DNSHost, Forward, IPConfig, Network
from pyvirt.network import dnsmasq

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"

DEFAULT = Network(
    name="default", bridge=Bridge("virbr0"), forward=Forward("nat"),
    ips=(IPConfig("192.168.122.1", 24, netmask="255.255.255.0",
                  dhcp_ranges=(DHCPRange("192.168.122.2", "192.168.122.254"),),
                  dhcp_hosts=(DHCPHost(mac="52:54:00:aa:bb:01", name="web", ip="192.168.122.10"),
                              DHCPHost(mac="52:54:00:aa:bb:02", ip="192.168.122.11"))),),
)
FILES = {"leasefile": Path("/var/lib/pyvirt/network/default.leases"),
         "hostsfile": Path("/run/pyvirt/network/default.hostsfile"),
         "pidfile": Path("/run/pyvirt/network/default.pid"),
         "addn_hosts": Path("/run/pyvirt/network/default.addnhosts")}


def conf_lines(net: Network, bridge: str = "virbr0", **kw: object) -> list[str]:
    text = dnsmasq.dnsmasq_config(net, bridge, **{**FILES, **kw})  # type: ignore[arg-type]
    return text.splitlines()


def dnsmasq_test(text: str, tmp_path: Path) -> None:
    conf = tmp_path / "t.conf"
    conf.write_text(text)
    done = subprocess.run([DNSMASQ, "--test", f"--conf-file={conf}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_default_nat_network_is_libvirts_conf(tmp_path: Path) -> None:
    lines = conf_lines(DEFAULT)
    for expected in ("strict-order", "pid-file=/run/pyvirt/network/default.pid", "except-interface=lo",
                     "bind-dynamic", "interface=virbr0", "domain-needed", "bogus-priv",
                     "dhcp-range=192.168.122.2,192.168.122.254,255.255.255.0,1h", "dhcp-no-override",
                     "dhcp-authoritative", "dhcp-lease-max=255",  # 253 in the range + 2 static hosts
                     "dhcp-leasefile=/var/lib/pyvirt/network/default.leases",
                     "dhcp-hostsfile=/run/pyvirt/network/default.hostsfile",
                     "addn-hosts=/run/pyvirt/network/default.addnhosts"):
        assert expected in lines
    # a nat network routes guests through the bridge: no empty router option, no IPv6 RA, DNS on
    assert "dhcp-option=3" not in lines and "enable-ra" not in lines and "port=0" not in lines
    assert not any(line.startswith(("keep-in-foreground", "user=")) for line in lines)
    dnsmasq_test("\n".join(lines), tmp_path)


def test_forwards_dns_to_host_resolvers_unless_there_are_none(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")
    assert "no-resolv" not in conf_lines(DEFAULT, resolv_conf=resolv)
    assert "no-resolv" in conf_lines(DEFAULT, resolv_conf=tmp_path / "missing")


def test_dns_disabled_serves_dhcp_only(tmp_path: Path) -> None:
    net = Network(name="nodns", bridge=Bridge("br9"), dns_enable=False, domain_name="lab", ips=DEFAULT.ips)
    lines = conf_lines(net, "br9")
    assert "port=0" in lines
    assert not any(line.startswith(("addn-hosts", "domain", "local=", "bogus-priv")) for line in lines)
    assert "dhcp-range=192.168.122.2,192.168.122.254,255.255.255.0,1h" in lines
    dnsmasq_test("\n".join(lines), tmp_path)


def test_domain_local_only_and_isolated_gets_no_default_route(tmp_path: Path) -> None:
    net = Network(name="iso", bridge=Bridge("br1"), domain_name="example.test", domain_local_only=True,
                  ips=(IPConfig("10.9.0.1", 24, dhcp_ranges=(DHCPRange("10.9.0.100", "10.9.0.109"),)),))
    lines = conf_lines(net, "br1")
    assert lines.index("local=/example.test/") < lines.index("domain=example.test")
    assert "expand-hosts" in lines
    assert "dhcp-option=3" in lines  # isolated: guests must not route through it
    assert "dhcp-range=10.9.0.100,10.9.0.109,255.255.255.0,1h" in lines
    assert "dhcp-lease-max=10" in lines
    # without localOnly the domain is still forwarded upstream
    assert not any(line.startswith("local=") for line in conf_lines(
        Network(name="d", bridge=Bridge("br1"), domain_name="example.test", ips=net.ips), "br1"))
    dnsmasq_test("\n".join(lines), tmp_path)


def test_ipv6_ranges_and_router_advertisements(tmp_path: Path) -> None:
    net = Network(name="v6", bridge=Bridge("br6"), forward=Forward("route"), ips=(
        IPConfig("10.6.0.1", 24),  # no DHCP for IPv4
        IPConfig("fd00:6::1", 64, family="ipv6", dhcp_ranges=(DHCPRange("fd00:6::100", "fd00:6::1ff"),)),
        IPConfig("fd00:7::1", 64, family="ipv6"),  # RA only
    ))
    lines = conf_lines(net, "br6")
    assert "dhcp-range=fd00:6::100,fd00:6::1ff,64,1h" in lines
    assert "dhcp-range=fd00:7::,ra-only,64" in lines
    assert "enable-ra" in lines
    assert not any(line.startswith("dhcp-range=10.6.") for line in lines)
    assert "dhcp-authoritative" not in lines  # an IPv4 DHCP option
    assert "dhcp-leasefile=/var/lib/pyvirt/network/default.leases" in lines
    dnsmasq_test("\n".join(lines), tmp_path)


def test_static_hosts_without_a_range(tmp_path: Path) -> None:
    net = Network(name="st", bridge=Bridge("br5"), forward=Forward("nat"), ips=(
        IPConfig("10.5.0.1", 24, dhcp_hosts=(DHCPHost(mac="52:54:00:00:00:05", ip="10.5.0.5"),)),
        IPConfig("fd00:5::1", 64, family="ipv6", dhcp_hosts=(DHCPHost(name="six", ip="fd00:5::5"),))))
    lines = conf_lines(net, "br5")
    assert "dhcp-range=10.5.0.0,static,255.255.255.0,1h" in lines
    assert "dhcp-range=fd00:5::,static,64,1h" in lines
    assert "dhcp-lease-max=2" in lines
    dnsmasq_test("\n".join(lines), tmp_path)


def test_no_dhcp_names_no_lease_file() -> None:
    net = Network(name="dnsonly", bridge=Bridge("br2"), forward=Forward("nat"), ips=(IPConfig("10.2.0.1", 24),))
    lines = conf_lines(net, "br2")
    assert not any(line.startswith(("dhcp-", "enable-ra")) for line in lines)
    assert "addn-hosts=/run/pyvirt/network/default.addnhosts" in lines


def test_addn_hosts_defaults_next_to_hostsfile_and_log_file() -> None:
    text = dnsmasq.dnsmasq_config(DEFAULT, "virbr0", leasefile=Path("/l/x.leases"), hostsfile=Path("/r/x.hostsfile"),
                                  pidfile=Path("/r/x.pid"), logfile=Path("/log/x.log"))
    assert "addn-hosts=/r/x.addnhosts\n" in text
    assert "log-facility=/log/x.log\nlog-dhcp\n" in text


@pytest.mark.parametrize("bridge", ["", "vir br0", "br,0", "br=0"])
def test_bad_bridge_name_is_refused(bridge: str) -> None:
    with pytest.raises(InvalidArgument, match="bridge name"):
        conf_lines(DEFAULT, bridge)


def test_hosts_files_text() -> None:
    net = Network(name="h", bridge=Bridge("br3"), ips=(
        DEFAULT.ips[0],
        IPConfig("fd00:3::1", 64, family="ipv6", dhcp_ranges=(DHCPRange("fd00:3::10", "fd00:3::20"),),
                 dhcp_hosts=(DHCPHost(id="00:01:00:01:2c:3d:4e:5f:52:54:00:aa:bb:01", ip="fd00:3::5", name="web"),
                             DHCPHost(name="db", ip="fd00:3::6")))),
        dns_hosts=(DNSHost("192.168.122.2", ("gw", "gw.lab")), DNSHost("fd00:3::7", ("six",))))
    assert dnsmasq.hostsfile_text(net) == (
        "52:54:00:aa:bb:01,192.168.122.10,web\n"
        "52:54:00:aa:bb:02,192.168.122.11\n"
        "id:00:01:00:01:2c:3d:4e:5f:52:54:00:aa:bb:01,[fd00:3::5],web\n"
        "[fd00:3::6],db\n")
    assert dnsmasq.addn_hosts_text(net) == "192.168.122.2 gw gw.lab\nfd00:3::7 six\n"


def test_write_hosts_files_is_world_readable(tmp_path: Path) -> None:
    hosts, addn = tmp_path / "n.hostsfile", tmp_path / "n.addnhosts"
    hosts.write_text("stale\n")
    dnsmasq.write_hosts_files(DEFAULT, hostsfile=hosts, addn_hosts=addn)
    assert hosts.read_text().startswith("52:54:00:aa:bb:01,192.168.122.10,web\n")
    assert addn.read_text() == ""
    assert hosts.stat().st_mode & 0o777 == 0o644 and addn.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.addnhosts", "n.hostsfile"]  # no temp left


def test_dns_query_packet() -> None:
    packet = dnsmasq.dns_query("pyvirt-probe", 0x1234)
    assert len(packet) == 30
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", packet[:12])
    assert (qid, flags, qd, an, ns, ar) == (0x1234, 0x0100, 1, 0, 0, 0)
    assert packet[12:] == b"\x0cpyvirt-probe\x00\x00\x01\x00\x01"


def test_start_refuses_hosts_files_dnsmasq_cannot_read(tmp_path: Path) -> None:
    """dnsmasq reads the hosts files after dropping root: a 0700 directory would hide them silently."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    hosts = private / "n.hostsfile"
    hosts.write_text("")
    hosts.chmod(0o644)
    conf = tmp_path / "n.conf"
    conf.write_text(f"port=0\ndhcp-hostsfile={hosts}\n")
    with pytest.raises(HostError, match=r"could not read .*n\.hostsfile: directory .*private is mode 0700"):
        dnsmasq.start(conf, tmp_path / "n.pid", binary="/nonexistent/dnsmasq")


def test_start_without_binary_says_what_to_install(tmp_path: Path) -> None:
    conf = tmp_path / "n.conf"
    conf.write_text("port=0\n")
    with pytest.raises(HostError, match=r"not installed at /nonexistent/dnsmasq.*dnsmasq-base"):
        dnsmasq.start(conf, tmp_path / "n.pid", binary="/nonexistent/dnsmasq")


def test_find_ignores_stale_and_foreign_pids(tmp_path: Path) -> None:
    pidfile, conf = tmp_path / "n.pid", tmp_path / "n.conf"
    assert dnsmasq.find(pidfile, conf) is None  # no pid file
    pidfile.write_text("garbage\n")
    assert dnsmasq.find(pidfile, conf) is None
    pidfile.write_text(f"{os.getpid()}\n")  # alive, but pytest, not dnsmasq
    assert dnsmasq.find(pidfile, conf) is None


def test_stop_leaves_a_foreign_process_alone_and_tolerates_gone_pids() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dnsmasq.stop(proc.pid)  # a reused pid: not dnsmasq, must not be signalled
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    dnsmasq.stop(proc.pid)  # gone: nothing to do, no error


def test_reload_of_a_gone_dnsmasq_is_an_error() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    with pytest.raises(HostError, match="not running; restart the network"):
        dnsmasq.reload_hosts(proc.pid)
