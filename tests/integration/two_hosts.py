"""Two pyvirt hosts on one machine: two pyvirtd, each in a network namespace and a root of its own,
joined by a veth pair; optionally an OpenSSH server in the second.

    with two_hosts(caps_cache, ssh=True) as hosts:
        a, b = hosts.a, hosts.b
        a.daemon, b.daemon       DaemonHandle (conftest): unix socket URI, cli(), connect(), guest helpers
        a.address, b.address     10.99.0.1 and 10.99.0.2 on the veth pair (a.netns, b.netns)
        b.tls_uri                pyvirt+tls://10.99.0.2:16514/?token_file=... (an admin token of b's)
        b.ro_tls_uri             the same with a read-only token
        b.ssh_uri                pyvirt+ssh://root@10.99.0.2:2222/?socket=...&keyfile=...&known_hosts=...&no_tty=1
        hosts.cli(a, uri, *args) `pyvirt -c URI ARGS` run inside a's namespace (as a user on host a)
        a.run(argv)              any command inside a's namespace

Each daemon listens for pyvirt+tls:// on its own address (port 16514) with the certificate it made
at start; its fingerprint is pinned in a known_daemons file of this setup (XDG_CONFIG_HOME in
``hosts.env``, which cli() and both daemons get, so a daemon that connects to the other as a client
trusts it too). The ssh server (Debian's openssh-server) runs in b's namespace on port 2222 with a
host key and an authorized key made here. Everything goes at exit: daemons, guests, sshd, the
namespaces (and with them the veth pair, bridges and nft tables inside).

Note: `ip netns exec` remounts /sys for the namespace, so a daemon inside sees no cgroup tree (guests run
without cgroup tuning there); everything else (bridges, taps, dnsmasq, nft) works per namespace, so both
hosts may have their own `default` network (default_network=True) on the same subnet.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.conftest import PYVIRT, DaemonHandle, make_daemon

TLS_PORT = 16514
SSH_PORT = 2222
SUBNET = "10.99.0"
SSHD = "/usr/sbin/sshd"
_SETUPS = itertools.count()


@dataclass
class Host:
    name: str
    netns: str
    address: str
    daemon: DaemonHandle | None = None
    tokens: dict[str, Path] = field(default_factory=dict)  # scope -> token file
    ssh_uri: str = ""

    @property
    def tls_uri(self) -> str:
        return f"pyvirt+tls://{self.address}:{TLS_PORT}/?token_file={self.tokens['admin']}"

    @property
    def ro_tls_uri(self) -> str:
        return f"pyvirt+tls://{self.address}:{TLS_PORT}/?token_file={self.tokens['read-only']}"

    def run(self, argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        """``argv`` inside this host's network namespace (text mode, output captured)."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True,
                              **kw)  # type: ignore[call-overload]


@dataclass
class TwoHosts:
    a: Host
    b: Host
    workdir: Path
    env: dict[str, str]

    def cli(self, on: Host, uri: str, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`pyvirt -c URI ARGS` as a user on host ``on``."""
        return subprocess.run(["ip", "netns", "exec", on.netns, PYVIRT, "-c", uri, *args], capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, **self.env, **(env or {})})


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _join(a: Host, b: Host, tag: str) -> None:
    """The veth pair, made with each end already in its namespace (nothing shows in the host's)."""
    _ip("link", "add", f"pv{tag}a", "netns", a.netns, "type", "veth", "peer", "name", f"pv{tag}b", "netns", b.netns)
    for host, dev in ((a, f"pv{tag}a"), (b, f"pv{tag}b")):
        _ip("-n", host.netns, "link", "set", "lo", "up")
        _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", dev)
        _ip("-n", host.netns, "link", "set", dev, "up")


def _token(host: Host, scope: str, folder: Path) -> None:
    assert host.daemon is not None
    args = ["token-create", f"test-{scope}"] + (["--read-only"] if scope == "read-only" else [])
    done = host.daemon.cli(*args, check=True)
    path = folder / f"{host.name}-{scope}.token"
    path.write_text(done.stdout.strip() + "\n")
    path.chmod(0o600)
    host.tokens[scope] = path


def _pin(host: Host, known: Path) -> None:
    """Trust the host's certificate as its owner would: the fingerprint read over its unix socket."""
    assert host.daemon is not None
    out = host.daemon.cli("tls-fingerprint", check=True).stdout
    fingerprint = next(line.split()[-1] for line in out.splitlines() if line.startswith("Fingerprint:"))
    with open(known, "a", encoding="utf-8") as f:
        f.write(f"{host.address}:{TLS_PORT} {fingerprint}\n")


@contextlib.contextmanager
def _sshd(host: Host, folder: Path) -> Iterator[str]:
    """Debian's sshd in the host's namespace, root by key only; yields the URI to reach its daemon."""
    if not os.access(SSHD, os.X_OK):
        import pytest

        pytest.skip(f"pyvirt+ssh:// needs OpenSSH's server ({SSHD}): apt-get install -y openssh-server")
    assert host.daemon is not None
    for kind, name in (("ed25519", "host_key"), ("ed25519", "client_key")):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"pyvirt-test-{name}", "-f",
                        str(folder / name)], check=True, capture_output=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    host_pub = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[{host.address}]:{SSH_PORT} {host_pub[0]} {host_pub[1]}\n")
    config = folder / "sshd_config"
    config.write_text(
        f"Port {SSH_PORT}\nListenAddress {host.address}\nHostKey {folder / 'host_key'}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nAllowStreamLocalForwarding yes\nX11Forwarding no\n")
    made_privsep = not os.path.isdir("/run/sshd")  # sshd insists on its privilege separation directory
    if made_privsep:
        os.makedirs("/run/sshd", mode=0o755)
    proc = subprocess.Popen(["ip", "netns", "exec", host.netns, SSHD, "-D", "-e", "-f", str(config)],
                            stdout=subprocess.DEVNULL, stderr=open(folder / "sshd.log", "wb"))  # noqa: SIM115
    try:
        deadline = time.monotonic() + 10
        while host.run(["ss", "-Hltn", f"sport = :{SSH_PORT}"]).stdout.strip() == "":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(folder / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.02)
        yield (f"pyvirt+ssh://root@{host.address}:{SSH_PORT}/?socket={host.daemon.socket}"
               f"&keyfile={folder / 'client_key'}&known_hosts={folder / 'known_hosts'}&no_tty=1")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if made_privsep:
            shutil.rmtree("/run/sshd", ignore_errors=True)


@contextlib.contextmanager
def two_hosts(caps_cache: Path, *, default_network: bool = False, ssh: bool = False) -> Iterator[TwoHosts]:
    """Hosts a and b as the module docstring says; everything made is gone when the block ends."""
    tag = f"{os.getpid() % 100000}{next(_SETUPS)}"  # names of their own: two setups may be alive at once
    a = Host("a", f"pv{tag}a", f"{SUBNET}.1")
    b = Host("b", f"pv{tag}b", f"{SUBNET}.2")
    work = Path(tempfile.mkdtemp(prefix="pv2h"))
    env = {"XDG_CONFIG_HOME": str(work / "config"), "PYVIRT_TOKEN": ""}
    (work / "config/pyvirt").mkdir(parents=True)
    known = work / "config/pyvirt/known_daemons"
    try:
        with contextlib.ExitStack() as stack:
            for host in (a, b):
                _ip("netns", "add", host.netns)
                stack.callback(subprocess.run, ["ip", "netns", "del", host.netns], capture_output=True)
            _join(a, b, tag)
            for host in (a, b):
                host.daemon = make_daemon(caps_cache, default_network, netns=host.netns, env=env,
                                          settings=f'listen = "{host.address}:{TLS_PORT}"\n')
                stack.callback(host.daemon.cleanup)
                _pin(host, known)
                _token(host, "admin", work)
                _token(host, "read-only", work)
            if ssh:
                (work / "ssh").mkdir()
                b.ssh_uri = stack.enter_context(_sshd(b, work / "ssh"))
            yield TwoHosts(a, b, work, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
