"""VMs outlive the daemon; QEMU crashes are seen at once; autostart; events."""
from __future__ import annotations

import os
import re
import shutil
import signal
import time

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


def test_guest_survives_daemon_kill(fresh_daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = fresh_daemon
    define_start(d, tmp_path, "keep1")
    d.wait_serial("keep1")
    [pid] = qemu_pids_under(d.root)
    d.stop(signal.SIGKILL)
    assert os.path.exists(f"/proc/{pid}")
    d.start()
    r = d.cli("list", check=True)
    assert re.search(r"^ \d+\s+keep1\s+running\s*$", r.stdout, re.M), r.stdout
    # manageable after the restart: suspend/resume and a clean ACPI shutdown
    d.cli("suspend", "keep1", check=True)
    assert d.cli("domstate", "keep1", check=True).stdout.strip() == "paused"
    d.cli("resume", "keep1", check=True)
    d.cli("shutdown", "keep1", "--timeout", "30", check=True)
    assert d.cli("domstate", "--reason", "keep1", check=True).stdout.strip() == "shut off (shutdown)"
    assert not qemu_pids_under(d.root)


def test_guest_powered_off_while_daemon_down(fresh_daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = fresh_daemon
    define_start(d, tmp_path, "keep2", cmdline=None)
    d.wait_serial("keep2")
    [pid] = qemu_pids_under(d.root)
    d.stop(signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    d.start()
    assert d.cli("domstate", "keep2", check=True).stdout.strip() == "shut off"
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
    path = tmp_path / "auto1.xml"
    path.write_text(domain_xml("auto1", daemon_guest()))
    d.cli("define", str(path), check=True)
    assert "Domain 'auto1' marked as autostarted" in d.cli("autostart", "auto1", check=True).stdout
    assert re.search(r"^Autostart:\s+enable$", d.cli("dominfo", "auto1", check=True).stdout, re.M)
    d.stop()
    # a host reboot empties /run: the daemon's first start after it autostarts
    shutil.rmtree(d.root / "run")
    d.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and d.cli("domstate", "auto1", check=True).stdout.strip() != "running":
        time.sleep(0.1)
    assert d.cli("domstate", "auto1", check=True).stdout.strip() == "running"
    # a plain daemon restart does not start again what the user stopped
    d.cli("destroy", "auto1", check=True)
    d.stop()
    d.start()
    time.sleep(0.5)
    assert d.cli("domstate", "auto1", check=True).stdout.strip() == "shut off"
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
