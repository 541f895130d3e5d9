"""dnsmasq for one virtual network: its conf file, its process, and a check that it answers.

One dnsmasq per network, like libvirt, configured only through its own conf
file (``--conf-file=X`` is the whole command line, so /proc/PID/cmdline names
the network's conf and a restarted daemon finds its dnsmasq again).

Choices, and why:

* dnsmasq daemonizes itself (no ``--keep-in-foreground``). Its first process
  exits only once the real daemon has bound its sockets, written the pid file
  and loaded the leases, and it exits non-zero with the reason on stderr when
  any of that fails ("failed to create listening socket for 10.0.0.1: Address
  already in use"). So start-up is synchronous with no polling, the daemon is
  in a session of its own (dnsmasq calls setsid) and is re-parented to PID 1:
  it survives a pyvirtd restart and pyvirtd never has a child to reap.
* ``bind-dynamic`` + ``interface=<bridge>`` + ``except-interface=lo``: listen
  only on the bridge's addresses, so one dnsmasq per network coexists with
  the others and with a host resolver on port 53 elsewhere.
* DNS forwards to the host's resolvers from /etc/resolv.conf (what libvirt
  does); ``no-resolv`` only when the host has no resolv.conf. ``strict-order``
  asks them in order; ``domain-needed`` and ``bogus-priv`` keep plain names
  and private reverse look-ups on the network (never sent upstream).
* Static DHCP hosts go to a ``dhcp-hostsfile`` and ``<dns><host>`` entries to
  an ``addn-hosts`` file, both always present: net-update rewrites them and a
  SIGHUP makes dnsmasq re-read them without a restart.
* dnsmasq drops root (to ``nobody``) and reads those files afterwards, also
  at start-up: a file it cannot reach is skipped with only a log line. So
  ``start`` refuses when a file named in the conf is not readable by others.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import select
import signal
import socket
import stat
import struct
import subprocess
import time
from pathlib import Path

from ..errors import HostError, InvalidArgument
from ..model.network import DHCPHost, IPConfig, Network

DEFAULT_BINARY = "/usr/sbin/dnsmasq"
LEASE_TIME = "1h"  # dnsmasq's and libvirt's default; the model has no <lease> yet
DHCP_PORTS = {"ipv4": 67, "ipv6": 547}
DNS_PORT = 53
#: The name probe_dns asks for: a plain name, which ``domain-needed`` answers locally.
PROBE_NAME = "pyvirt-probe"


# ------------------------------------------------------------------- conf file
def _range_size(start: str, end: str) -> int:
    return int(ipaddress.ip_address(end)) - int(ipaddress.ip_address(start)) + 1


def _dhcp_ranges(ip: IPConfig) -> list[str]:
    size = (ip.netmask or str(ip.subnet.netmask)) if ip.family == "ipv4" else str(ip.prefix)
    if ip.dhcp_ranges:
        return [f"dhcp-range={r.start},{r.end},{size},{LEASE_TIME}" for r in ip.dhcp_ranges]
    if ip.dhcp_hosts:  # static hosts only: dnsmasq needs a range to serve the subnet at all
        return [f"dhcp-range={ip.subnet.network_address},static,{size},{LEASE_TIME}"]
    if ip.family == "ipv4":
        return []
    # no DHCPv6: router advertisements alone, so guests configure themselves (SLAAC)
    return [f"dhcp-range={ip.subnet.network_address},ra-only,{ip.prefix}"]


def dnsmasq_config(net: Network, bridge: str, *, leasefile: Path, hostsfile: Path, pidfile: Path,
                   addn_hosts: Path | None = None, logfile: Path | None = None,
                   resolv_conf: Path = Path("/etc/resolv.conf")) -> str:
    """The conf file of the network's dnsmasq (see the module docstring for the choices).

    ``addn_hosts`` defaults to ``hostsfile`` with the suffix ``.addnhosts``;
    ``logfile`` sends dnsmasq's log (with DHCP details) there instead of syslog.
    """
    if not bridge or any(c.isspace() or c in ",=/" for c in bridge):
        raise InvalidArgument(f"network '{net.name}': bridge name {bridge!r} cannot be given to dnsmasq")
    addn_hosts = addn_hosts or hostsfile.with_suffix(".addnhosts")
    dns = net.dns_enable is not False
    lines = [
        f"## Written by pyvirt for network '{net.name}': changes are lost on the next net-start.",
        "strict-order",
        f"pid-file={pidfile}",
        "except-interface=lo",
        "bind-dynamic",
        f"interface={bridge}",
    ]
    if dns:
        lines += ["domain-needed", "bogus-priv"]
        if not resolv_conf.exists():
            lines.append("no-resolv")  # nothing upstream: answer local names only
        if net.domain_name:
            if net.domain_local_only:
                lines.append(f"local=/{net.domain_name}/")
            lines += [f"domain={net.domain_name}", "expand-hosts"]
        lines.append(f"addn-hosts={addn_hosts}")
    else:
        lines.append("port=0")  # <dns enable='no'/>: DHCP only, nothing on port 53
    v4_dhcp = [ip for ip in net.ips if ip.family == "ipv4" and ip.has_dhcp]
    v6 = [ip for ip in net.ips if ip.family == "ipv6"]
    leases = 0
    for ip in (*v4_dhcp, *v6):
        lines += _dhcp_ranges(ip)
        leases += sum(_range_size(r.start, r.end) for r in ip.dhcp_ranges) + len(ip.dhcp_hosts)
    if v4_dhcp:
        lines += ["dhcp-no-override", "dhcp-authoritative"]
        if net.forward is None:
            lines.append("dhcp-option=3")  # isolated: no default route through a bridge that goes nowhere
    if v6:
        lines.append("enable-ra")
    if v4_dhcp or v6:  # any dhcp-range: name the lease file, or dnsmasq would use /var/lib/misc's
        lines += [f"dhcp-lease-max={max(leases, 1)}", f"dhcp-leasefile={leasefile}",
                  f"dhcp-hostsfile={hostsfile}"]
    if logfile is not None:
        lines += [f"log-facility={logfile}", "log-dhcp"]
    return "\n".join(lines) + "\n"


def _host_line(host: DHCPHost, family: str) -> str | None:
    if family == "ipv6":
        ident = f"id:{host.id}" if host.id else None
        parts = [p for p in (ident, f"[{host.ip}]" if host.ip else None, host.name) if p]
        return ",".join(parts) if (ident or host.name) and len(parts) > 1 else None
    parts = [p for p in (host.mac, host.ip, host.name) if p]
    return ",".join(parts) if len(parts) > 1 else None


def hostsfile_text(net: Network) -> str:
    """The dhcp-hostsfile: one dhcp-host per line (``mac,ip,name``; ``id:DUID,[ip6],name`` for IPv6)."""
    lines = [line for ip in net.ips for host in ip.dhcp_hosts if (line := _host_line(host, ip.family))]
    return "".join(f"{line}\n" for line in lines)


def addn_hosts_text(net: Network) -> str:
    """The addn-hosts file (/etc/hosts format) of the network's <dns><host> entries."""
    return "".join(f"{h.ip} {' '.join(h.hostnames)}\n" for h in net.dns_hosts if h.hostnames)


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically (dnsmasq may re-read it at any moment), readable by dnsmasq's user."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_hosts_files(net: Network, *, hostsfile: Path, addn_hosts: Path) -> None:
    """Write the static DHCP hosts and the DNS hosts of ``net`` (then ``reload_hosts`` a running dnsmasq)."""
    _write(hostsfile, hostsfile_text(net))
    _write(addn_hosts, addn_hosts_text(net))


# ---------------------------------------------------------------- the process
def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _is_ours(pid: int, conf: Path | None) -> bool:
    """True when ``pid`` is a dnsmasq (started with ``conf`` when given); a zombie has no cmdline."""
    argv = _cmdline(pid)
    if not argv or os.path.basename(argv[0]) != "dnsmasq":
        return False
    return conf is None or f"--conf-file={conf}" in argv


def _read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().strip()
    except (FileNotFoundError, PermissionError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def _conf_files(conf: Path) -> list[Path]:
    """The files dnsmasq reads after dropping root (hosts files), as named in its conf."""
    keys = ("dhcp-hostsfile=", "addn-hosts=")
    return [Path(line.split("=", 1)[1]) for line in conf.read_text().splitlines() if line.startswith(keys)]


def _unreadable_by_others(path: Path) -> str | None:
    """Why an unprivileged user could not read ``path`` (None when it can)."""
    try:
        if not os.stat(path).st_mode & stat.S_IROTH:
            return f"{path} is not readable by others"
        for parent in path.parents:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return f"directory {parent} is mode {stat.S_IMODE(os.stat(parent).st_mode):04o}"
    except FileNotFoundError:
        return f"{path} does not exist"
    return None


def start(conf: Path, pidfile: Path, *, binary: str = DEFAULT_BINARY, timeout: float = 10.0) -> int:
    """Start dnsmasq with ``conf`` and return its pid once it serves (see the module docstring).

    Raises HostError with dnsmasq's own message when it cannot start.
    """
    for path in _conf_files(conf):
        why = _unreadable_by_others(path)
        if why:
            raise HostError(f"dnsmasq drops root privileges and could not read {path}: {why}; "
                            "make the file world-readable and its directories world-searchable (o+x)")
    running = find(pidfile, conf)
    if running is not None:
        raise HostError(f"a dnsmasq with {conf} already runs (pid {running}); stop it first")
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    try:
        done = subprocess.run([binary, f"--conf-file={conf}"], check=False, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, start_new_session=True)
    except FileNotFoundError as exc:
        raise HostError(f"dnsmasq is not installed at {binary} (Debian: apt-get install dnsmasq-base), "
                        "or set dnsmasq_binary in pyvirt.toml") from exc
    except subprocess.TimeoutExpired as exc:
        raise HostError(f"dnsmasq ({conf}) did not finish starting within {timeout:g} s") from exc
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split()) or f"exit status {done.returncode}"
        raise HostError(f"dnsmasq failed to start: {said}", detail=f"conf file: {conf}")
    pid = _read_pid(pidfile)
    if pid is None or not _is_ours(pid, conf):
        raise HostError(f"dnsmasq ({conf}) reported success but no dnsmasq runs with pid file {pidfile}")
    return pid


def find(pidfile: Path, conf: Path) -> int | None:
    """The pid of the dnsmasq running with ``conf`` (after a daemon restart), or None."""
    pid = _read_pid(pidfile)
    return pid if pid is not None and _is_ours(pid, conf) else None


def _wait_exit(pidfd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(0, int(timeout * 1000))))


def stop(pid: int, *, conf: Path | None = None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; returns once the process has exited.

    A pid that is gone or now belongs to another program (not dnsmasq, or not
    started with ``conf``) is left alone: the network's dnsmasq is already gone.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not _is_ours(pid, conf):  # checked after opening: the pidfd pins this very process
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                signal.pidfd_send_signal(pidfd, sig)
            except ProcessLookupError:
                break
            if _wait_exit(pidfd, wait):
                break
        else:
            raise HostError(f"dnsmasq (pid {pid}) did not exit after SIGKILL")
    finally:
        os.close(pidfd)
    with contextlib.suppress(ChildProcessError):  # only when it is our child (it normally is not)
        os.waitpid(pid, os.WNOHANG)


def reload_hosts(pid: int) -> None:
    """SIGHUP: dnsmasq re-reads its dhcp-hostsfile and addn-hosts (and clears its DNS cache)."""
    if not _is_ours(pid, None):
        raise HostError(f"dnsmasq (pid {pid}) is not running; restart the network to start it again")
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError as exc:
        raise HostError(f"dnsmasq (pid {pid}) is not running; restart the network to start it again") from exc


# --------------------------------------------------------------- health checks
def dns_query(name: str, qid: int, qtype: int = 1) -> bytes:
    """A minimal DNS query (recursion desired, one question of class IN)."""
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.split(".") if p)
    return header + labels + b"\0" + struct.pack("!HH", qtype, 1)


def probe_dns(address: str, timeout: float = 2.0, *, network: str | None = None) -> None:
    """Require a DNS answer from ``address``:53 within ``timeout`` (any rcode counts).

    Asks for a plain name (A record), which dnsmasq with ``domain-needed``
    answers itself, so the probe never leaves the network.
    """
    who = f"dnsmasq for network '{network}'" if network else "dnsmasq"
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    qid = random.randrange(1, 0x10000)
    query = dns_query(PROBE_NAME, qid)
    deadline = time.monotonic() + timeout
    why = "no answer"
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((address, DNS_PORT))
        while (left := deadline - time.monotonic()) > 0:
            try:
                sock.send(query)
                ready, _, _ = select.select([sock], [], [], min(left, 0.25))
                if not ready:
                    continue
                reply = sock.recv(4096)
            except ConnectionRefusedError:
                why = "connection refused: nothing listens there"
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))  # bind-dynamic may bind late
                continue
            except OSError as exc:
                why = exc.strerror or str(exc)
                break
            if len(reply) >= 12 and struct.unpack("!H", reply[:2])[0] == qid and reply[2] & 0x80:
                return
    host = f"[{address}]" if family == socket.AF_INET6 else address
    raise HostError(f"{who} does not answer DNS on {host}:{DNS_PORT} ({why} within {timeout:g} s); "
                    "check that nothing else holds that port and that no firewall drops it")


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(FileNotFoundError, PermissionError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    return inodes


def udp_ports(pid: int) -> set[int]:
    """The local UDP ports ``pid`` has sockets bound on (from /proc/PID/net/udp{,6} of its netns)."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("udp", "udp6"):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and int(fields[9]) in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def check_answers(net: Network, pid: int, timeout: float = 2.0) -> None:
    """Check a just-started dnsmasq serves ``net``: DNS answers on the bridge address; with DNS
    disabled, the DHCP socket of each family with DHCP is bound instead (DHCP itself cannot be
    probed from the host without a client on the bridge)."""
    if not _is_ours(pid, None):
        raise HostError(f"dnsmasq for network '{net.name}' (pid {pid}) exited right after starting")
    if net.dns_enable is not False and net.ips:
        ip = net.ip("ipv4") or net.ips[0]
        probe_dns(ip.address, timeout, network=net.name)
        return
    wanted = {DHCP_PORTS[ip.family] for ip in net.ips if ip.has_dhcp}
    missing = wanted - udp_ports(pid)
    if missing:
        ports = ", ".join(str(p) for p in sorted(missing))
        raise HostError(f"dnsmasq for network '{net.name}' (pid {pid}) has no DHCP socket on UDP port {ports}; "
                        "another DHCP server may hold it")
