"""VMs outlive the daemon; QEMU crashes are seen at once; autostart; events."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import DaemonHandle, domain_xml, qemu_pids_under

pytestmark = pytest.mark.integration


def define_start(daemon: DaemonHandle, tmp_path, name: str, **kw) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{name}.xml"
    path.write_text(domain_xml(name, daemon_guest(), **kw))
    daemon.cli("define", str(path), check=True)
    daemon.cli("start", name, check=True)


_GUEST = None


def daemon_guest():  # type: ignore[no-untyped-def]
    return _GUEST


@pytest.fixture(autouse=True)
def _set_guest(guest) -> None:  # type: ignore[no-untyped-def]
    global _GUEST
    _GUEST = guest


def runtime_pids(daemon: DaemonHandle) -> dict[str, int]:
    """The QEMU pid of each runtime record in the daemon's store, by domain uuid (read with the daemon
    running: SQLite lets a reader in)."""
    with sqlite3.connect(daemon.root / "var/lib/pyvirt/pyvirt.db") as db:
        return {uuid: json.loads(data)["pid"] for uuid, data in db.execute("SELECT uuid, data FROM runtime")}


def set_runtime_pid(daemon: DaemonHandle, uuid: str, pid: int) -> None:
    """Rewrite a runtime record's pid while the daemon is down (what a host reboot makes of it)."""
    with sqlite3.connect(daemon.root / "var/lib/pyvirt/pyvirt.db") as db:
        (data,) = db.execute("SELECT data FROM runtime WHERE uuid=?", (uuid,)).fetchone()
        db.execute("UPDATE runtime SET data=? WHERE uuid=?", (json.dumps({**json.loads(data), "pid": pid}), uuid))


def qmp_status(path: Path) -> str:
    """QEMU's run state asked over its QMP socket directly (no daemon holds it while one is down)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        stream = sock.makefile("rwb")
        stream.readline()  # the greeting
        reply: dict = {}
        for command in ("qmp_capabilities", "query-status"):
            stream.write(json.dumps({"execute": command}).encode() + b"\n")
            stream.flush()
            reply = {}
            while "return" not in reply and "error" not in reply:
                reply = json.loads(stream.readline())
        return str(reply["return"]["status"])


def state_stays(daemon: DaemonHandle, name: str, state: str, qemus: list[int], seconds: float = 2.0) -> None:
    """``name`` keeps ``state`` and the root keeps exactly the QEMU processes ``qemus`` for ``seconds``:
    autostart runs in the background after the daemon answers, so a wrong start may still be in flight."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert daemon.cli("domstate", name, check=True).stdout.strip() == state
        assert qemu_pids_under(daemon.root) == qemus, f"a QEMU appeared while {name} should stay {state}"
        time.sleep(0.2)


def test_guest_survives_daemon_kill(fresh_daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = fresh_daemon
    define_start(d, tmp_path, "keep1")
    d.wait_serial("keep1")
    [pid] = qemu_pids_under(d.root)
    uuid = d.cli("domuuid", "keep1", check=True).stdout.strip()
    d.stop(signal.SIGKILL)
    assert os.path.exists(f"/proc/{pid}")
    d.start()
    r = d.cli("list", check=True)
    assert re.search(r"^ \d+\s+keep1\s+running\s*$", r.stdout, re.M), r.stdout
    # the very same QEMU, adopted: no other started, and the runtime record names it
    assert qemu_pids_under(d.root) == [pid]
    assert runtime_pids(d) == {uuid: pid}
    # manageable after the restart: suspend/resume and a clean ACPI shutdown
    d.cli("suspend", "keep1", check=True)
    assert d.cli("domstate", "keep1", check=True).stdout.strip() == "paused"
    d.cli("resume", "keep1", check=True)
    assert qemu_pids_under(d.root) == [pid]
    d.cli("shutdown", "keep1", "--timeout", "30", check=True)
    assert d.cli("domstate", "--reason", "keep1", check=True).stdout.strip() == "shut off (shutdown)"
    assert not qemu_pids_under(d.root)


def test_guest_powered_off_while_daemon_down(fresh_daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = fresh_daemon
    define_start(d, tmp_path, "keep2")
    d.wait_serial("keep2")
    [pid] = qemu_pids_under(d.root)
    uuid = d.cli("domuuid", "keep2", check=True).stdout.strip()
    start = d.guest_poweroff("keep2", after=1)  # a second from now, when no daemon watches
    d.stop(signal.SIGKILL)
    d.wait_serial("keep2", "PYVIRT-GUEST-POWEROFF console", start=start)
    qmp = d.root / f"run/pyvirt/qemu/{uuid}/qmp"
    deadline = time.monotonic() + 10
    while qmp_status(qmp) != "shutdown" and time.monotonic() < deadline:
        time.sleep(0.1)
    # -action shutdown=pause: the guest is off, its QEMU stays, waiting for a daemon to decide
    assert qmp_status(qmp) == "shutdown"
    assert qemu_pids_under(d.root) == [pid]
    d.start()
    deadline = time.monotonic() + 10
    while d.cli("domstate", "keep2", check=True).stdout.strip() != "shut off" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert d.cli("domstate", "--reason", "keep2", check=True).stdout.strip() == "shut off (shutdown)"
    assert not qemu_pids_under(d.root)
    assert sorted(p.name for p in (d.root / "run/pyvirt/qemu").glob(f"{uuid}*")) == []  # pidfile, sockets
    assert runtime_pids(d) == {}
    d.cli("start", "keep2", check=True)
    d.cli("destroy", "keep2", check=True)


def test_qemu_kill_is_seen_as_crash(daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    define_start(daemon, tmp_path, "crash1")
    [pid] = qemu_pids_under(daemon.root)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 1.0
    state = ""
    while time.monotonic() < deadline:
        state = daemon.cli("domstate", "--reason", "crash1", check=True).stdout.strip()
        if state.startswith("shut off"):
            break
    assert state == "shut off (crashed)"
    daemon.cli("undefine", "crash1", check=True)


def test_on_crash_restart(daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    define_start(daemon, tmp_path, "crash2", on_crash="restart")
    [pid] = qemu_pids_under(daemon.root)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pids = qemu_pids_under(daemon.root)
        if pids and pids != [pid]:
            break
        time.sleep(0.05)
    assert qemu_pids_under(daemon.root) and qemu_pids_under(daemon.root) != [pid]
    state = ""
    while time.monotonic() < deadline:  # the new QEMU exists before its start has finished
        state = daemon.cli("domstate", "crash2", check=True).stdout.strip()
        if state == "running":
            break
        time.sleep(0.05)
    assert state == "running"
    daemon.cli("destroy", "crash2", check=True)
    daemon.cli("undefine", "crash2", check=True)


def test_autostart_after_host_restart(fresh_daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = fresh_daemon
    for name in ("auto1", "plain1"):
        path = tmp_path / f"{name}.xml"
        path.write_text(domain_xml(name, daemon_guest()))
        d.cli("define", str(path), check=True)
    assert "Domain 'auto1' marked as autostarted" in d.cli("autostart", "auto1", check=True).stdout
    assert re.search(r"^Autostart:\s+enable$", d.cli("dominfo", "auto1", check=True).stdout, re.M)
    d.cli("start", "auto1", check=True)
    d.cli("start", "plain1", check=True)
    uuids = {name: d.cli("domuuid", name, check=True).stdout.strip() for name in ("auto1", "plain1")}
    # the host loses power: daemon and guests die, /run is emptied, the runtime records stay with
    # their pids; after a reboot plain1's old pid belongs to some other process
    d.stop(signal.SIGKILL)
    old = qemu_pids_under(d.root)
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(d.root / "run")
    other = subprocess.Popen(["sleep", "60"])
    try:
        set_runtime_pid(d, uuids["plain1"], other.pid)
        d.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and d.cli("domstate", "auto1", check=True).stdout.strip() != "running":
            time.sleep(0.1)
        assert d.cli("domstate", "auto1", check=True).stdout.strip() == "running"
        [pid] = qemu_pids_under(d.root)
        assert pid not in old and uuids["auto1"] in Path(f"/proc/{pid}/cmdline").read_text()
        # plain1's stale record was not taken for a live guest, nor started, and its pid's owner lives on
        state_stays(d, "plain1", "shut off", [pid])
        assert other.poll() is None
        assert set(runtime_pids(d)) == {uuids["auto1"]}
    finally:
        other.kill()
        other.wait()
    # a plain daemon restart does not start again what the user stopped: watched for a while,
    # since autostart runs in the background after the daemon answers
    d.cli("destroy", "auto1", check=True)
    d.stop()
    d.start()
    state_stays(d, "auto1", "shut off", [])
    assert "unmarked as autostarted" in d.cli("autostart", "--disable", "auto1", check=True).stdout


def test_events_are_recorded_and_streamed(daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    conn = daemon.connect()
    try:
        stream = conn.events()
        define_start(daemon, tmp_path, "ev1")
        daemon.cli("suspend", "ev1", check=True)
        daemon.cli("destroy", "ev1", check=True)
        seen = []
        for record in stream:
            if record["domain"] == "ev1":
                seen.append(record["event"])
            if seen and seen[-1] == "stopped":
                break
        assert seen == ["defined", "started", "suspended", "stopped"], seen
    finally:
        conn.close()
    daemon.cli("undefine", "ev1", check=True)
