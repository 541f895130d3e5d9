"""Remote daemons: a client on host a drives host b's pyvirtd over pyvirt+tls:// and pyvirt+ssh://.

Two real daemons in network namespaces of their own, joined by a veth pair (two_hosts.py); b runs a
real OpenSSH server. Bad input: wrong, revoked and read-only tokens, an unknown or changed certificate,
unreachable hosts and a wrong remote socket each give a clear error and exit 1.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guest.build import GuestImage
from tests.integration.conftest import domain_xml, pids_under
from tests.integration.two_hosts import TLS_PORT, TwoHosts, two_hosts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hosts(caps_cache: Path) -> Iterator[TwoHosts]:
    with two_hosts(caps_cache, ssh=True) as h:
        yield h


def ok(hosts: TwoHosts, uri: str, *args: str, **kw: object) -> str:
    r = hosts.cli(hosts.a, uri, *args, **kw)  # type: ignore[arg-type]
    assert r.returncode == 0, f"pyvirt -c {uri} {' '.join(args)} failed: {r.stderr}"
    return r.stdout


def fails(hosts: TwoHosts, uri: str, *args: str, **kw: object) -> str:
    r = hosts.cli(hosts.a, uri, *args, **kw)  # type: ignore[arg-type]
    assert r.returncode == 1, f"pyvirt -c {uri} {' '.join(args)} should fail: {r.stdout}"
    assert r.stderr.startswith("error: ") and not r.stdout.strip(), (r.stdout, r.stderr)
    return r.stderr


def names_on(hosts: TwoHosts, which: str) -> set[str]:
    host = hosts.a if which == "a" else hosts.b
    assert host.daemon is not None
    return set(host.daemon.cli("list", "--all", "--name", check=True).stdout.split())


@pytest.mark.parametrize("transport", ["tls", "ssh"])
def test_a_client_on_a_defines_lists_and_undefines_on_b(hosts: TwoHosts, guest: GuestImage, tmp_path: Path,
                                                        transport: str) -> None:
    uri = hosts.b.tls_uri if transport == "tls" else hosts.b.ssh_uri
    name = f"far-{transport}"
    xml = tmp_path / "d.xml"
    xml.write_text(domain_xml(name, guest))
    assert f"Domain '{name}' defined" in ok(hosts, uri, "define", str(xml))
    assert name in names_on(hosts, "b") and name not in names_on(hosts, "a")  # it went to b, not a
    assert name in ok(hosts, uri, "list", "--all", "--name").split()
    assert "shut off" in ok(hosts, uri, "dominfo", name)
    assert ok(hosts, uri, "uri").strip() == uri
    ok(hosts, uri, "undefine", name)
    assert name not in names_on(hosts, "b")


def test_the_ssh_tunnel_ends_with_the_client(hosts: TwoHosts) -> None:
    ok(hosts, hosts.b.ssh_uri, "list")
    assert pids_under(Path(hosts.b.ssh_uri.split("keyfile=")[1].split("&")[0]), b"ssh") == []
    assert not any(p.name.startswith("pyvirt-ssh-") for p in Path(os.environ.get("TMPDIR", "/tmp")).iterdir())


def test_events_and_volume_data_travel_over_tls(hosts: TwoHosts, tmp_path: Path) -> None:
    """The streamed routes (a raw upload and download) go through the same TLS endpoint and token."""
    uri = hosts.b.tls_uri
    ok(hosts, uri, "vol-create-as", "default", "far.img", "1M", "--format", "raw")
    try:
        data = tmp_path / "in.bin"
        data.write_bytes(os.urandom(1024 * 1024))
        ok(hosts, uri, "vol-upload", "far.img", str(data), "--pool", "default")
        ok(hosts, uri, "vol-download", "far.img", str(tmp_path / "out.bin"), "--pool", "default")
        assert (tmp_path / "out.bin").read_bytes() == data.read_bytes()
    finally:
        ok(hosts, uri, "vol-delete", "far.img", "--pool", "default")


def test_tokens_are_made_listed_and_revoked(hosts: TwoHosts, tmp_path: Path) -> None:
    b = hosts.b
    assert b.daemon is not None
    secret = ok(hosts, b.tls_uri, "token-create", "ci-job", "--read-only").strip()  # an admin token may make one
    assert secret.startswith("pvt_") and len(secret.splitlines()) == 1
    listed = b.daemon.cli("token-list", check=True).stdout
    assert "ci-job" in listed and "read-only" in listed and secret.split("_")[2] not in listed
    stored = (b.daemon.root / "var/lib/pyvirt/pyvirt.db").read_bytes()
    assert secret.encode() not in stored and secret.split("_")[2].encode() not in stored  # kept hashed
    token_file = tmp_path / "ci.token"
    token_file.write_text(secret)
    uri = f"pyvirt+tls://{b.address}:{TLS_PORT}/?token_file={token_file}"
    ok(hosts, uri, "list")
    assert "Token 'ci-job'" in b.daemon.cli("token-revoke", "ci-job", check=True).stdout
    assert "the token was refused" in fails(hosts, uri, "list")


def test_a_read_only_token_reads_but_may_not_change_anything(hosts: TwoHosts, guest: GuestImage,
                                                             tmp_path: Path) -> None:
    ro = hosts.b.ro_tls_uri
    ok(hosts, ro, "list", "--all")
    ok(hosts, ro, "pool-list", "--all")
    xml = tmp_path / "d.xml"
    xml.write_text(domain_xml("ro-try", guest))
    err = fails(hosts, ro, "define", str(xml))
    assert "read-only" in err and "POST /v1/domains" in err and "admin token" in err
    assert "ro-try" not in names_on(hosts, "b")
    assert "read-only" in fails(hosts, ro, "pool-destroy", "default")
    assert "read-only" in fails(hosts, ro, "console", "nosuch")  # refused before the upgrade
    assert "read-only" in fails(hosts, ro, "token-list")


def test_no_token_and_a_wrong_token_are_refused(hosts: TwoHosts, tmp_path: Path) -> None:
    bare = f"pyvirt+tls://{hosts.b.address}:{TLS_PORT}/"
    err = fails(hosts, bare, "list")
    assert "needs a token" in err and "token-create" in err
    wrong = tmp_path / "wrong.token"
    wrong.write_text("pvt_00000000_" + "x" * 43)
    assert "the token was refused" in fails(hosts, f"{bare}?token_file={wrong}", "list")
    assert "the token was refused" in fails(hosts, bare, "list", env={"PYVIRT_TOKEN": "nonsense"})
    assert "cannot read the token file" in fails(hosts, f"{bare}?token_file={tmp_path}/none", "list")


def test_an_unknown_certificate_is_refused_until_trusted(hosts: TwoHosts, tmp_path: Path) -> None:
    b = hosts.b
    assert b.daemon is not None
    real = b.daemon.cli("tls-fingerprint", check=True).stdout.split()[-1]
    fresh = {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    err = fails(hosts, b.tls_uri, "list", env=fresh)
    assert "unknown certificate" in err and real in err and "tls-trust" in err
    other = "AA:" * 31 + "AA"
    assert "nothing was trusted" in fails(hosts, b.tls_uri, "tls-trust", other, env=fresh)
    assert not (tmp_path / "cfg/pyvirt/known_daemons").exists()
    assert "Trusted the daemon" in ok(hosts, b.tls_uri, "tls-trust", real, env=fresh)
    ok(hosts, b.tls_uri, "list", env=fresh)
    # a pin that no longer matches (the daemon's certificate changed, or someone is in the middle)
    (tmp_path / "cfg/pyvirt/known_daemons").write_text(f"{b.address}:{TLS_PORT} {other}\n")
    err = fails(hosts, b.tls_uri, "list", env=fresh)
    assert "refusing" in err and real in err and other in err


def test_unreachable_hosts_and_wrong_sockets_are_clear_errors(hosts: TwoHosts) -> None:
    b = hosts.b
    err = fails(hosts, f"pyvirt+tls://{b.address}:1/", "list")
    assert "connection refused" in err and "--listen" in err
    err = fails(hosts, "pyvirt+tls://10.99.0.77/", "list")  # nobody has that address
    assert "failed to connect to the daemon at tls://10.99.0.77:16514" in err
    err = fails(hosts, b.ssh_uri.replace(b.address, "10.99.0.77"), "list")
    assert "ssh to 10.99.0.77 failed" in err
    err = fails(hosts, b.ssh_uri.replace(f"socket={b.daemon.socket}" if b.daemon else "", "socket=/nonexistent.sock"),
                "list")
    assert "/nonexistent.sock" in err and "is pyvirtd running there" in err


def test_failed_tokens_are_rate_limited_per_peer(hosts: TwoHosts) -> None:
    """Run from b against a's daemon: b's address is the one blocked, the other tests' client is not."""
    a = hosts.a
    bare = f"pyvirt+tls://{a.address}:{TLS_PORT}/"
    bad = {"PYVIRT_TOKEN": "pvt_00000000_guess"}
    for _ in range(10):
        r = hosts.cli(hosts.b, bare, "list", env=bad)
        assert r.returncode == 1 and "the token was refused" in r.stderr
    r = hosts.cli(hosts.b, a.tls_uri, "list")  # even a good token, from that peer, for a while
    assert r.returncode == 1 and "too many failed authentications" in r.stderr and "try again in" in r.stderr
    assert ok(hosts, a.tls_uri, "list") is not None  # another peer (a itself) is not blocked
