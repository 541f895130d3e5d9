"""pyvirt.client against a FAKE pyvirtd (tests/unit/fakepyvirtd.py: a real HTTP/1.1
server on a real unix socket; fake because the real daemon is written concurrently)."""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator

import pytest

import pyvirt
from pyvirt.client import Connection, DomainSummary, connect
from pyvirt.client import connection as connmod
from pyvirt.errors import ConnectionFailed, InternalError, NotFound, OperationInvalid, XMLSyntaxError
from tests.unit.fakepyvirtd import FakeState, domain_xml, fake_daemon


@pytest.fixture
def daemon() -> Iterator[tuple[str, FakeState]]:
    with fake_daemon() as (uri, state):
        yield uri, state


def test_connect_uses_default_uri_env(daemon, monkeypatch):
    uri, _ = daemon
    monkeypatch.setenv("PYVIRT_DEFAULT_URI", uri)
    with pyvirt.connect() as conn:
        assert isinstance(conn, Connection)
        assert conn.uri() == uri
        assert conn.hostname() == "fakehost"


def test_host_calls(daemon):
    uri, _ = daemon
    with connect(uri) as conn:
        assert conn.version()["hypervisor_version"] == "7.2.22"
        assert conn.host_info()["accel"] == "tcg"
        assert conn.capabilities().startswith("<capabilities>")
        assert [c["status"] for c in conn.host_validate()] == ["WARN", "PASS"]


def test_one_keep_alive_connection_for_many_requests(daemon):
    uri, st = daemon
    st.add("demo", id=1, state="running")
    with connect(uri) as conn:
        for _ in range(5):
            conn.list_domains()
        conn.domain("demo").info()
    assert st.connections == 1
    assert len(st.requests) == 6


def test_domain_handle_is_lazy(daemon):
    uri, st = daemon
    with connect(uri) as conn:
        dom = conn.domain("ghost")
        assert dom.name == "ghost" and st.requests == []
        with pytest.raises(NotFound) as info:
            dom.info()
    assert "domain 'ghost' not found" in str(info.value)


def test_define_start_and_state_round_trip(daemon):
    uri, st = daemon
    with connect(uri) as conn:
        dom = conn.define_xml(domain_xml("demo"))
        assert dom.name == "demo" and dom.last is not None and dom.last.state == "shut off"
        assert dom.id() is None
        dom.start()
        assert dom.state() == ("running", "booted")
        assert dom.id() == 1 and dom.uuid() == st.domains["demo"]["uuid"]
        dom.suspend()
        assert dom.last.state == "paused"
        dom.resume()
        assert dom.set_autostart(True).last.autostart is True
        assert dom.xml(inactive=True) == domain_xml("demo")
        dom.set_xml(domain_xml("demo", vcpus=2))
        assert "<vcpu>2</vcpu>" in dom.xml()
        assert dom.shutdown() == {"state": "running", "destroyed": False}
        dom.reboot()
        dom.reset()
        dom.destroy()
        assert dom.state()[0] == "shut off"
        assert dom.undefine() == {"name": "demo", "transient": False}
        assert conn.list_domains() == []


def test_create_xml_is_transient_and_listed(daemon):
    uri, _ = daemon
    with connect(uri) as conn:
        dom = conn.create_xml(domain_xml("temp"), paused=True)
        [s] = conn.list_domains()
        assert isinstance(s, DomainSummary)
        assert (s.name, s.id, s.state, s.persistent, s.active) == ("temp", 1, "paused", False, True)
        assert dom.last == s


def test_daemon_errors_come_back_as_their_class(daemon):
    uri, st = daemon
    st.add("demo")
    with connect(uri) as conn:
        with pytest.raises(OperationInvalid, match="is not running"):
            conn.domain("demo").suspend()
        with pytest.raises(XMLSyntaxError):
            conn.define_xml("junk")
        with pytest.raises(NotFound):
            conn.request("GET", "/v1/nothing")
    # the fake answers from docs/openapi.yaml: a route outside it is a violation, named
    assert st.take_violations() == ["GET /v1/nothing -> 404: no path of the document matches (an undocumented route)"]


def test_events_stream_on_its_own_connection(daemon):
    uri, st = daemon
    st.add("demo")
    with connect(uri) as conn:
        events = list(conn.events())
        assert [e["event"] for e in events] == ["started", "suspended"]
        assert [e["domain"] for e in conn.domain("demo").events()] == ["demo", "demo"]
    assert st.connections == 3


def test_missing_socket_message(tmp_path):
    with pytest.raises(ConnectionFailed) as info:
        connect(f"unix://{tmp_path}/pyvirtd.sock")
    where = f"unix://{tmp_path}/pyvirtd.sock"
    assert str(info.value).startswith(f"failed to connect to the daemon at {where}: no such file")


def test_system_socket_message_tells_how_to_start():
    from pyvirt.client.transport import daemon_hint

    assert daemon_hint("/run/pyvirt/pyvirtd.sock") == "is pyvirtd running? start it with `pyvirtd` or `pyvirtd -d`"


def test_permission_denied_says_root_only(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root is never refused by file permissions")
    path = tmp_path / "s.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.listen()
    os.chmod(path, 0)
    try:
        with pytest.raises(ConnectionFailed, match="root-only; run pyvirt with sudo"):
            connect(f"unix://{path}")
    finally:
        s.close()


def test_reconnects_when_the_daemon_closed_an_idle_connection(tmp_path):
    """A keep-alive socket the server already closed: the client reopens and resends once."""
    path = str(tmp_path / "s.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()
    answer = b'HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{"domains": []}\n'

    def serve() -> None:
        first, _ = srv.accept()
        first.close()  # idle connection dropped before any request
        second, _ = srv.accept()
        second.recv(4096)
        second.sendall(answer)
        second.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        conn = connect(f"unix://{path}")
        assert conn.list_domains() == []
        conn.close()
    finally:
        t.join(5)
        srv.close()


def test_non_json_error_answer(tmp_path):
    path = str(tmp_path / "s.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()

    def serve() -> None:
        c, _ = srv.accept()
        c.recv(4096)
        c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 4\r\n\r\noops")
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    try:
        with connect(f"unix://{path}") as conn, pytest.raises(InternalError) as info:
            conn.version()
    finally:
        t.join(5)
        srv.close()
    assert str(info.value) == "the daemon answered GET /v1/version with HTTP 502 Bad Gateway: oops"


def test_autostart_spawns_the_daemon_command(tmp_path, monkeypatch):
    """The system-socket autostart runs `pyvirtd --detach` and waits for the socket."""
    path = tmp_path / "pyvirtd.sock"
    pidfile = tmp_path / "pid"
    script = tmp_path / "fake-pyvirtd"
    script.write_text(
        f"#!{sys.executable}\n"
        "import socket, sys, os, time\n"
        "assert sys.argv[1:] == ['--detach']\n"
        "if os.fork(): sys.exit(0)\n"
        f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
        f"s = socket.socket(socket.AF_UNIX); s.bind({str(path)!r}); s.listen(); time.sleep(30)\n"
    )
    script.chmod(0o755)
    monkeypatch.setattr(connmod, "daemon_command", lambda: [str(script), "--detach"])
    try:
        connmod.start_system_daemon(str(path), wait=5)
        assert path.exists()
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


def test_autostart_reports_a_failing_daemon(tmp_path, monkeypatch):
    monkeypatch.setattr(connmod, "daemon_command", lambda: ["/bin/sh", "-c", "echo cannot start >&2; exit 3"])
    with pytest.raises(ConnectionFailed, match="exited with status 3: cannot start"):
        connmod.start_system_daemon(str(tmp_path / "none.sock"), wait=5)


def test_daemon_command_prefers_the_venv_pyvirtd():
    argv = connmod.daemon_command()
    assert argv[-1] == "--detach"
    assert argv[0] in (os.path.join(os.path.dirname(sys.executable), "pyvirtd"), sys.executable)
