"""The VM life cycle through the real `pyvirt` CLI, a real pyvirtd and real QEMU (TCG)."""
from __future__ import annotations

import json
import re
import time

import pytest

from .conftest import DaemonHandle, domain_xml, qemu_pids_under

pytestmark = pytest.mark.integration


def define(daemon: DaemonHandle, tmp_path, name: str, xml: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{name}.xml"
    path.write_text(xml)
    r = daemon.cli("define", str(path))
    assert r.returncode == 0, r.stderr
    assert f"Domain '{name}' defined from {path}" in r.stdout


def state(daemon: DaemonHandle, name: str) -> str:
    return daemon.cli("domstate", "--reason", name, check=True).stdout.strip()


def wait_state(daemon: DaemonHandle, name: str, want: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    current = ""
    while time.monotonic() < deadline:
        current = state(daemon, name)
        if current == want:
            return current
        time.sleep(0.1)
    raise AssertionError(f"domain {name} is '{current}', expected '{want}' within {timeout} s")


def test_define_start_list_info_shutdown(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    define(daemon, tmp_path, "life1", domain_xml("life1", guest))
    r = daemon.cli("list", "--all", check=True)
    assert re.search(r"^ -\s+life1\s+shut off\s*$", r.stdout, re.M), r.stdout

    r = daemon.cli("start", "life1", check=True)
    assert "Domain 'life1' started" in r.stdout
    daemon.wait_serial("life1")

    r = daemon.cli("list", check=True)
    assert re.search(r"^ \d+\s+life1\s+running\s*$", r.stdout, re.M), r.stdout
    info = daemon.cli("dominfo", "life1", check=True).stdout
    assert re.search(r"^State:\s+running$", info, re.M), info
    assert re.search(r"^Max memory:\s+131072 KiB$", info, re.M), info
    assert re.search(r"^Persistent:\s+yes$", info, re.M), info
    assert state(daemon, "life1") == "running (booted)"
    dom_id = daemon.cli("domid", "life1", check=True).stdout.strip()
    assert dom_id.isdigit()
    assert daemon.cli("domname", dom_id, check=True).stdout.strip() == "life1"

    r = daemon.cli("shutdown", "life1", check=True)
    assert "Domain 'life1' is being shutdown" in r.stdout
    assert wait_state(daemon, "life1", "shut off (shutdown)")
    assert not qemu_pids_under(daemon.root)
    daemon.cli("undefine", "life1", check=True)


def test_suspend_resume_reset_destroy(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    define(daemon, tmp_path, "life2", domain_xml("life2", guest))
    daemon.cli("start", "life2", check=True)
    daemon.wait_serial("life2")
    assert "Domain 'life2' suspended" in daemon.cli("suspend", "life2", check=True).stdout
    assert state(daemon, "life2") == "paused (user)"
    r = daemon.cli("suspend", "life2")
    assert r.returncode != 0 and "already paused" in r.stderr
    assert "Domain 'life2' resumed" in daemon.cli("resume", "life2", check=True).stdout
    assert state(daemon, "life2") == "running (unpaused)"

    size = daemon.serial_log("life2").stat().st_size
    assert "Domain 'life2' was reset" in daemon.cli("reset", "life2", check=True).stdout
    daemon.wait_serial("life2", start=size)  # booted again

    assert "Domain 'life2' destroyed" in daemon.cli("destroy", "life2", check=True).stdout
    assert state(daemon, "life2") == "shut off (destroyed)"
    r = daemon.cli("destroy", "life2")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "not running" in r.stderr
    daemon.cli("undefine", "life2", check=True)


def test_reboot_through_acpi(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    define(daemon, tmp_path, "life3", domain_xml("life3", guest))
    daemon.cli("start", "life3", check=True)
    daemon.wait_serial("life3")
    size = daemon.serial_log("life3").stat().st_size
    assert "Domain 'life3' is being rebooted" in daemon.cli("reboot", "life3", check=True).stdout
    daemon.wait_serial("life3", start=size)
    assert state(daemon, "life3").startswith("running")
    daemon.cli("destroy", "life3", check=True)
    daemon.cli("undefine", "life3", check=True)


def test_transient_create_and_undefine_running(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "tr.xml"
    path.write_text(domain_xml("life4", guest))
    r = daemon.cli("create", str(path), check=True)
    assert f"Domain 'life4' created from {path}" in r.stdout
    info = daemon.cli("dominfo", "life4", check=True).stdout
    assert re.search(r"^Persistent:\s+no$", info, re.M)
    daemon.cli("destroy", "life4", check=True)
    r = daemon.cli("dominfo", "life4")
    assert r.returncode == 1 and "life4" in r.stderr

    define(daemon, tmp_path, "life5", domain_xml("life5", guest))
    daemon.cli("start", "life5", check=True)
    assert "Domain 'life5' has been undefined" in daemon.cli("undefine", "life5", check=True).stdout
    assert re.search(r"^Persistent:\s+no$", daemon.cli("dominfo", "life5", check=True).stdout, re.M)
    daemon.cli("destroy", "life5", check=True)
    assert "life5" not in daemon.cli("list", "--all", check=True).stdout


def test_dumpxml_and_ids(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uuid = "3e1f1a9c-5b7d-4d6e-9a1b-2c3d4e5f6a7b"
    define(daemon, tmp_path, "life6", domain_xml("life6", guest, uuid=uuid))
    assert daemon.cli("domuuid", "life6", check=True).stdout.strip() == uuid
    assert daemon.cli("domname", uuid, check=True).stdout.strip() == "life6"
    xml = daemon.cli("dumpxml", "life6", check=True).stdout
    assert f"<uuid>{uuid}</uuid>" in xml and "<memory unit='KiB'>131072</memory>" in xml
    # what dumpxml prints defines again unchanged
    (tmp_path / "again.xml").write_text(xml)
    daemon.cli("define", str(tmp_path / "again.xml"), check=True)
    assert daemon.cli("dumpxml", "life6", check=True).stdout == xml
    daemon.cli("start", "life6", check=True)
    live = daemon.cli("dumpxml", "life6", check=True).stdout
    assert re.search(r"<domain type='qemu' id='\d+'>", live), live[:200]
    assert "id=" not in daemon.cli("dumpxml", "--inactive", "life6", check=True).stdout.splitlines()[0]
    daemon.cli("destroy", "life6", check=True)
    daemon.cli("undefine", "life6", check=True)


def test_json_output(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    define(daemon, tmp_path, "life7", domain_xml("life7", guest))
    rows = json.loads(daemon.cli("list", "--all", "--json", check=True).stdout)
    assert any(r["name"] == "life7" and r["state"] == "shut off" for r in rows)
    info = json.loads(daemon.cli("dominfo", "life7", "--json", check=True).stdout)
    assert info["name"] == "life7" and info["max_memory_kib"] == 131072
    daemon.cli("undefine", "life7", check=True)


def test_console_through_api(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    define(daemon, tmp_path, "life8", domain_xml("life8", guest))
    daemon.cli("start", "life8", check=True)
    daemon.wait_serial("life8")
    conn = daemon.connect()
    try:
        console = conn.domain("life8").console()
        try:
            console.write(b"\necho con$((40+2))sole\n")
            seen = b""
            deadline = time.monotonic() + 20
            while b"con42sole" not in seen and time.monotonic() < deadline:
                seen += console.read(timeout=1.0) or b""
            assert b"con42sole" in seen, seen[-500:]
        finally:
            console.close()
    finally:
        conn.close()
    daemon.cli("destroy", "life8", check=True)
    daemon.cli("undefine", "life8", check=True)


def test_console_cli_pipe_mode(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    define(daemon, tmp_path, "life9", domain_xml("life9", guest))
    daemon.cli("start", "life9", check=True)
    daemon.wait_serial("life9")
    # stdin is not a tty: pyvirt console forwards it and prints what the guest says until stdin ends
    r = daemon.cli("console", "life9", input="\necho pipe$((6*7))mode\nsleep 1\n", timeout=30)
    assert "pipe42mode" in r.stdout, r.stdout + r.stderr
    daemon.cli("destroy", "life9", check=True)
    daemon.cli("undefine", "life9", check=True)
