"""Bad input through the real CLI and daemon: a clear error, exit 1, nothing stored or leaked."""
from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import sqlite3

import pytest

from .conftest import DaemonHandle, domain_xml, qemu_pids_under

pytestmark = pytest.mark.integration


def define_text(daemon: DaemonHandle, tmp_path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.xml"
    path.write_text(text)
    return daemon.cli("define", str(path))


def names(daemon: DaemonHandle) -> set[str]:
    return set(daemon.cli("list", "--all", "--name", check=True).stdout.split())


def test_malformed_xml_names_line_and_column(daemon: DaemonHandle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    before = names(daemon)
    r = define_text(daemon, tmp_path, "<domain type='qemu'>\n  <name>x</name>\n  <memory>1</memory\n</domain>")
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and "line 3" in r.stderr and "column" in r.stderr, r.stderr
    assert names(daemon) == before


def test_unsupported_element_is_named(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    xml = domain_xml("bad1", guest, extra_devices="<frobnicator/>")
    r = define_text(daemon, tmp_path, xml)
    assert r.returncode == 1 and "frobnicator" in r.stderr, r.stderr
    xml = domain_xml("bad1", guest, extra_devices="<hostdev mode='subsystem' type='pci'/>")
    r = define_text(daemon, tmp_path, xml)
    assert r.returncode == 1 and "hostdev" in r.stderr, r.stderr
    assert "bad1" not in names(daemon)


def stored_domains(daemon: DaemonHandle) -> list[tuple[str, str]]:
    """(uuid, name) of every domain row in the daemon's store, read from its database."""
    with contextlib.closing(sqlite3.connect(daemon.root / "var/lib/pyvirt/pyvirt.db")) as db:
        return sorted(db.execute("SELECT uuid, name FROM domains").fetchall())


@pytest.mark.parametrize("name", ["", "a/b", "..", "tab\there", "x" * 65])
def test_invalid_names(daemon: DaemonHandle, guest, tmp_path, name: str) -> None:  # type: ignore[no-untyped-def]
    before, rows = names(daemon), stored_domains(daemon)
    r = define_text(daemon, tmp_path, domain_xml(name, guest))
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "name" in r.stderr.lower(), r.stderr
    assert r.stdout.strip() == ""
    assert names(daemon) == before and stored_domains(daemon) == rows  # nothing stored


def test_duplicate_name_and_uuid(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uuid = "0b6a8f7e-1111-4222-8333-944455556666"
    assert define_text(daemon, tmp_path, domain_xml("dup1", guest, uuid=uuid)).returncode == 0
    r = define_text(daemon, tmp_path, domain_xml("dup1", guest))
    assert r.returncode == 1 and "already exists" in r.stderr, r.stderr
    r = define_text(daemon, tmp_path, domain_xml("dup2", guest, uuid=uuid))
    assert r.returncode == 1 and uuid in r.stderr, r.stderr
    assert "dup2" not in names(daemon)
    daemon.cli("undefine", "dup1", check=True)


def test_memory_larger_than_host(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = define_text(daemon, tmp_path, domain_xml("huge", guest, memory_mib=64 * 1024 * 1024))
    assert r.returncode == 1 and "memory" in r.stderr and "host" in r.stderr, r.stderr
    assert "huge" not in names(daemon)


def test_missing_kernel_keeps_domain_defined(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    xml = domain_xml("nokernel", guest).replace(str(guest.kernel), "/nonexistent/vmlinuz")
    assert define_text(daemon, tmp_path, xml).returncode == 0
    r = daemon.cli("start", "nokernel")
    assert r.returncode == 1 and "/nonexistent/vmlinuz" in r.stderr and "does not exist" in r.stderr, r.stderr
    assert daemon.cli("domstate", "nokernel", check=True).stdout.strip() == "shut off"
    assert not qemu_pids_under(daemon.root)
    daemon.cli("undefine", "nokernel", check=True)


def test_kvm_type_on_host_without_usable_kvm(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    conn = daemon.connect()
    try:
        kvm_ok = conn.host_info()["kvm_usable"]
    finally:
        conn.close()
    if kvm_ok:
        pytest.skip("this host has a usable KVM: the error path needs a host where KVM hangs or is absent")
    assert define_text(daemon, tmp_path, domain_xml("kvmtype", guest, dom_type="kvm")).returncode == 0
    r = daemon.cli("start", "kvmtype")
    assert r.returncode == 1 and "KVM is not usable" in r.stderr and "type='qemu'" in r.stderr, r.stderr
    daemon.cli("undefine", "kvmtype", check=True)


def test_start_running_and_concurrent_starts(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert define_text(daemon, tmp_path, domain_xml("twice", guest)).returncode == 0
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: daemon.cli("start", "twice"), range(2)))
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 1], [(r.returncode, r.stdout, r.stderr) for r in results]
    loser = next(r for r in results if r.returncode == 1)
    assert "already active" in loser.stderr, loser.stderr
    assert len(qemu_pids_under(daemon.root)) == 1
    daemon.cli("destroy", "twice", check=True)
    daemon.cli("undefine", "twice", check=True)


def test_shutdown_needs_acpi(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert define_text(daemon, tmp_path, domain_xml("noacpi", guest, machine="q35", acpi=False)).returncode == 0
    daemon.cli("start", "noacpi", check=True)
    r = daemon.cli("shutdown", "noacpi")
    assert r.returncode == 1 and "acpi" in r.stderr.lower(), r.stderr
    daemon.cli("destroy", "noacpi", check=True)
    daemon.cli("undefine", "noacpi", check=True)


def test_shutdown_timeout_falls_back_to_destroy(daemon: DaemonHandle, guest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Right after start the guest's acpid is not running yet: the button press is lost.
    assert define_text(daemon, tmp_path, domain_xml("stubborn", guest)).returncode == 0
    daemon.cli("start", "stubborn", "--paused", check=True)
    r = daemon.cli("shutdown", "stubborn", "--timeout", "1")
    assert r.returncode == 0, r.stderr
    assert "destroy" in r.stdout.lower(), r.stdout
    assert daemon.cli("domstate", "stubborn", check=True).stdout.strip() == "shut off"
    daemon.cli("undefine", "stubborn", check=True)


def test_no_daemon_and_unreadable_socket(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from .conftest import PYVIRT

    sock = tmp_path / "none.sock"
    r = subprocess.run([PYVIRT, "-c", f"unix://{sock}", "list"], capture_output=True, text=True)
    assert r.returncode == 1 and "pyvirtd" in r.stderr and str(sock) in r.stderr, r.stderr
    if os.geteuid() == 0:
        # a socket the user may not open: run the CLI as nobody
        import socket as s

        srv = s.socket(s.AF_UNIX)
        srv.bind(str(sock))
        srv.listen()
        os.chmod(sock, 0o600)
        os.chmod(tmp_path, 0o755)
        try:
            r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", PYVIRT,
                                "-c", f"unix://{sock}", "list"], capture_output=True, text=True)
        finally:
            srv.close()
        assert r.returncode == 1 and re.search(r"permission|root", r.stderr, re.I), r.stderr
