"""Remote access without root or a second host: the real API served over TLS on 127.0.0.1 (a certificate
made by daemon/tlscert.py) and over a unix socket, driven by the real client (pyvirt+tls://).

Tokens (hashed, scoped, revoked), the failure limit, certificate pinning, URI parsing and the ssh
command line are checked here; two real hosts and a real sshd: tests/integration/test_remote.py.
"""
from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

import pyvirt
from pyvirt.api.auth import FailureLimiter
from pyvirt.api.remote_routes import RemoteInfo
from pyvirt.api.server import Api
from pyvirt.client import uri as U
from pyvirt.client.ssh import ssh_argv
from pyvirt.client.tls import KnownDaemons, normalize_fingerprint
from pyvirt.config import Config
from pyvirt.daemon import services
from pyvirt.daemon.tlscert import server_certificate, server_context
from pyvirt.errors import (
    AlreadyExists,
    ConnectionFailed,
    Forbidden,
    InvalidArgument,
    NotFound,
    RateLimited,
    Unauthorized,
)
from tests.openapi_check import Contract

DOMAIN = "<domain type='qemu'><name>{}</name><memory unit='MiB'>64</memory></domain>"


@dataclass
class World:
    root: Path
    tls_uri: str
    unix_uri: str
    fingerprint: str
    admin: str
    read_only: str
    services: services.Services


@pytest.fixture()
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The API on a unix socket and on TLS at 127.0.0.1:PORT, in a thread of its own."""
    (tmp_path / "etc/pyvirt").mkdir(parents=True)
    (tmp_path / "etc/pyvirt/pyvirt.toml").write_text("default_network = false\n")
    config = Config.for_root(tmp_path)
    config.paths.make_dirs()
    s = services.build(config, f"unix://{config.paths.socket}")
    cert = server_certificate(config, "127.0.0.1")
    assert cert.made and server_certificate(config, "127.0.0.1") == cert.__class__(cert.cert, cert.key,
                                                                                   cert.fingerprint, made=False)
    admin = s.tokens.create("admin1", "admin").token
    read_only = s.tokens.create("reader", "read-only").token
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        await s.load()
        app = Api(s, RemoteInfo(f"127.0.0.1:{port}", cert.fingerprint)).app()
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.UnixSite(runner, str(config.paths.socket)).start()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context(cert)).start()
        ready.set()
        await stop.wait()
        await runner.cleanup()
        await s.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(20)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PYVIRT_TOKEN", raising=False)
    try:
        yield World(tmp_path, f"pyvirt+tls://127.0.0.1:{port}/", f"unix://{config.paths.socket}", cert.fingerprint,
                    admin, read_only, s)
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(20)
        loop.close()


def pin(w: World) -> None:
    KnownDaemons().pin(w.tls_uri.split("//")[1].rstrip("/"), w.fingerprint)


def test_an_admin_token_does_everything_over_tls(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pin(world)
    monkeypatch.setenv("PYVIRT_TOKEN", world.admin)
    with pyvirt.connect(world.tls_uri) as conn:
        events = conn.events()  # a stream of its own: a second TLS connection with the token
        conn.define_xml(DOMAIN.format("far1"))
        assert next(events)["event"] == "defined"
        events.close()
        assert [d.name for d in conn.list_domains()] == ["far1"]
        with pytest.raises(NotFound):  # the websocket upgrade goes through; the greeting says no such domain
            conn.domain("nosuch").console()
        assert conn.remote_info() == {"listen": world.tls_uri[13:-1], "fingerprint": world.fingerprint}
        conn.domain("far1").undefine()
        assert conn.list_domains() == []


def test_the_unix_socket_needs_no_token(world: World) -> None:
    with pyvirt.connect(world.unix_uri) as conn:
        assert conn.list_domains() == []
        assert {t["name"] for t in conn.list_tokens()} == {"admin1", "reader"}


def test_a_read_only_token_reads_and_is_refused_every_change(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pin(world)
    monkeypatch.setenv("PYVIRT_TOKEN", world.read_only)
    with pyvirt.connect(world.tls_uri) as conn:
        assert conn.list_domains() == []
        with pytest.raises(Forbidden, match="token 'reader' is read-only and POST /v1/domains needs an admin token"):
            conn.define_xml(DOMAIN.format("nope"))
        with pytest.raises(Forbidden, match="security_info"):
            conn.request("GET", "/v1/domains/x/xml?security_info=1")
        with pytest.raises(Forbidden, match="tokens are the daemon's keys"):
            conn.list_tokens()
        with pytest.raises(Forbidden):
            conn.domain("x").console()
    with pyvirt.connect(world.unix_uri) as conn:
        assert conn.list_domains() == []  # nothing was made


def test_no_token_a_wrong_one_and_a_revoked_one_are_401(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pin(world)
    with pyvirt.connect(world.tls_uri) as conn, pytest.raises(Unauthorized, match="needs a token over TCP"):
        conn.list_domains()
    monkeypatch.setenv("PYVIRT_TOKEN", world.admin[:-2] + "xx")
    with pyvirt.connect(world.tls_uri) as conn, pytest.raises(Unauthorized, match="the token was refused"):
        conn.list_domains()
    world.services.tokens.revoke("admin1")
    monkeypatch.setenv("PYVIRT_TOKEN", world.admin)
    with pyvirt.connect(world.tls_uri) as conn, pytest.raises(Unauthorized, match="the token was refused"):
        conn.list_domains()


def test_failed_tokens_are_limited_per_peer(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pin(world)
    monkeypatch.setenv("PYVIRT_TOKEN", "pvt_00000000_guess")
    with pyvirt.connect(world.tls_uri) as conn:
        for _ in range(10):
            with pytest.raises(Unauthorized):
                conn.list_domains()
        monkeypatch.setenv("PYVIRT_TOKEN", world.admin)
    with pyvirt.connect(world.tls_uri) as conn, pytest.raises(RateLimited, match="try again in"):
        conn.list_domains()


def test_an_unknown_or_changed_certificate_is_refused(world: World) -> None:
    with pytest.raises(ConnectionFailed) as info:
        pyvirt.connect(world.tls_uri)
    assert "unknown certificate" in str(info.value) and world.fingerprint in str(info.value)
    assert f"tls-trust {world.fingerprint}" in str(info.value)
    KnownDaemons().pin(world.tls_uri.split("//")[1].rstrip("/"), "AB:" * 31 + "AB")
    with pytest.raises(ConnectionFailed, match="refusing"):
        pyvirt.connect(world.tls_uri)


def test_tokens_are_kept_hashed_and_named_once(world: World) -> None:
    db = (world.root / "var/lib/pyvirt/pyvirt.db").read_bytes()
    secret = world.admin.split("_", 2)[2]
    assert secret.encode() not in db
    tokens = world.services.tokens
    assert tokens.verify(world.admin) is not None and tokens.verify(world.admin + "x") is None
    assert tokens.verify("pvt__") is None and tokens.verify("") is None
    with pytest.raises(AlreadyExists):
        tokens.create("admin1", "admin")
    with pytest.raises(InvalidArgument, match="scope"):
        tokens.create("x", "root")
    with pytest.raises(InvalidArgument, match="not valid"):
        tokens.create("-rf", "admin")
    with pytest.raises(NotFound):
        tokens.revoke("nosuch")


def test_the_failure_limiter_forgets_after_its_window() -> None:
    now = [0.0]
    limiter = FailureLimiter(max_failures=3, window=10, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.wait("p") == 0
        limiter.failed("p")
    assert limiter.wait("p") == 10 and limiter.wait("q") == 0
    now[0] = 10.5
    assert limiter.wait("p") == 0


@pytest.mark.parametrize("uri, kind, user, host, port, params", [
    ("pyvirt+tls://h1/", "tls", "", "h1", 0, {}),
    ("pyvirt+tls://h1:1234/?token_file=/t", "tls", "", "h1", 1234, {"token_file": "/t"}),
    ("pyvirt+tls://[::1]:99/", "tls", "", "::1", 99, {}),
    ("pyvirt+ssh://me@h2", "ssh", "me", "h2", 0, {}),
    ("qemu+ssh://root@h2:2222/system?socket=/s.sock&no_tty=1", "ssh", "root", "h2", 2222,
     {"socket": "/s.sock", "no_tty": "1"}),
])
def test_remote_uris(uri: str, kind: str, user: str, host: str, port: int, params: dict[str, str]) -> None:
    far = U.remote(uri)
    assert far is not None
    assert (far.kind, far.user, far.host, far.port, far.params) == (kind, user, host, port, params)
    assert U.remote("qemu:///system") is None


@pytest.mark.parametrize("uri, words", [
    ("pyvirt+tls:///", "names no host"),
    ("pyvirt+tls://h:0/", "port '0'"),
    ("pyvirt+tls://h:x/", "port 'x'"),
    ("pyvirt+tls://u@h/", "takes no user"),
    ("pyvirt+tls://h/other", "the path must be /"),
    ("pyvirt+ssh://h/?token_file=/x", "unsupported parameter(s) token_file"),
])
def test_bad_remote_uris_say_what_is_wrong(uri: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        U.remote(uri)
    assert words in str(info.value) and uri in str(info.value)


def test_the_ssh_command_line_cannot_be_steered_by_a_host_name() -> None:
    far = U.remote("pyvirt+ssh://root@-oProxyCommand=x:22/?keyfile=/k&known_hosts=/kh&no_tty=1")
    assert far is not None
    argv = ssh_argv(far, "/tmp/l.sock")
    assert argv[-2:] == ["--", "-oProxyCommand=x"]
    assert argv[argv.index("-L"):argv.index("-L") + 2] == ["-L", "/tmp/l.sock:/run/pyvirt/pyvirtd.sock"]
    assert {"-i", "/k", "UserKnownHostsFile=/kh", "BatchMode=yes", "ExitOnForwardFailure=yes"} <= set(argv)
    assert argv[argv.index("-p") + 1] == "22" and argv[argv.index("-l") + 1] == "root"


def test_fingerprints_are_read_in_every_usual_spelling() -> None:
    canon = "AB:" * 31 + "CD"
    for text in (canon, canon.lower(), canon.replace(":", ""), f"SHA256:{canon}", f"sha256 Fingerprint={canon}"):
        assert normalize_fingerprint(text) == canon
    with pytest.raises(InvalidArgument, match="not a SHA-256 fingerprint"):
        normalize_fingerprint("AB:CD")


def test_every_operation_documents_the_refusals_of_the_tls_listener() -> None:
    """401 and 429 can answer any request over TCP; 403 any a read-only token may not make (api/auth.py)."""
    admin_gets = {"/v1/domains/{ref}/console", "/v1/domains/{ref}/xml", "/v1/pools/{pool}/volumes/{vol}/data",
                  "/v1/tokens", "/v1/save-image/xml"}
    missing = []
    for op in Contract.load().operations():
        want = {"401", "429"} | ({"403"} if op.method != "GET" or op.template in admin_gets else set())
        if lacking := want - set(op.spec["responses"]):
            missing.append(f"{op.method} {op.template}: {', '.join(sorted(lacking))}")
    assert missing == []


def test_listener_settings_that_cannot_work_are_refused_by_name(tmp_path: Path) -> None:
    from pyvirt.errors import PyvirtError
    from pyvirt.pyvirtd import parse_listen

    assert parse_listen("10.0.0.1:16514", "--listen") == ("10.0.0.1", 16514)
    assert parse_listen(":16514", "--listen") == ("0.0.0.0", 16514)
    with pytest.raises(PyvirtError, match="--listen '16514' is not ADDRESS:PORT"):
        parse_listen("16514", "--listen", "0.0.0.0:16514")
    (tmp_path / "etc/pyvirt").mkdir(parents=True)
    (tmp_path / "etc/pyvirt/pyvirt.toml").write_text('tls_cert = "/nonexistent.pem"\n')
    with pytest.raises(InvalidArgument, match="only one of tls_cert and tls_key"):
        server_certificate(Config.for_root(tmp_path), "0.0.0.0")
    (tmp_path / "etc/pyvirt/pyvirt.toml").write_text('tls_cert = "/nonexistent.pem"\ntls_key = "/k.pem"\n')
    with pytest.raises(InvalidArgument, match=r"cannot read the TLS certificate /nonexistent\.pem"):
        server_certificate(Config.for_root(tmp_path), "0.0.0.0")
