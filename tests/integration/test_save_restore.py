"""save / restore / managedsave against real guests (the tiny guest under TCG).

The guest runs a counter on its console (``TICK n`` every 0.2 s). After a save
the domain is shut off and the image is private; after the restore the same
counter goes on from the next number, and the guest never printed its boot
marker again: it continued, it did not reboot. Bad images (truncated, foreign,
newer format) are refused before any QEMU starts; a save that cannot be
written (a full tmpfs, an unwritable directory) leaves no file and the guest
running. A daemon killed mid-save leaves, after its restart, the guest running
and no partial file.
"""
from __future__ import annotations

import os
import re
import signal
import stat
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.model import save_image as fmt
from tests.guest.build import READY_MARKER, GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml, fails, ok, qemu_pids_under

pytestmark = pytest.mark.integration

COUNTER = '(i=0; while true; do echo "TI""CK $i"; i=$((i+1)); sleep 0.2; done) >/dev/console 2>&1 & true'
TICK = re.compile(r"TICK (\d+)")


def ticks(d: DaemonHandle, name: str, start: int = 0) -> list[int]:
    return [int(n) for n in TICK.findall(d.serial_log(name).read_bytes()[start:].decode(errors="replace"))]


def wait_ticks(d: DaemonHandle, name: str, start: int, count: int, timeout: float = 30.0) -> list[int]:
    """The counter's numbers printed after byte ``start``, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = ticks(d, name, start)
        if len(seen) >= count:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"guest {name} printed {ticks(d, name, start)} after byte {start}, not {count} ticks")


def boot_counting(d: DaemonHandle, name: str, guest: GuestImage, tmp_path: Path, *, persistent: bool = True) -> None:
    xml = tmp_path / f"{name}.xml"
    xml.write_text(domain_xml(name, guest))
    ok(d, "define" if persistent else "create", str(xml))
    if persistent:
        ok(d, "start", name)
    d.wait_serial(name)
    d.guest_run(name, COUNTER)
    wait_ticks(d, name, 0, 3)


def state(d: DaemonHandle, name: str) -> str:
    return ok(d, "domstate", "--reason", name).strip()


@pytest.fixture()
def counting(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"sv-{request.node.name[5:25].replace('_', '-').strip('-[]')}"
    try:
        boot_counting(daemon, name, guest, tmp_path)
        yield name
    finally:
        daemon.cli("destroy", name)
        daemon.cli("undefine", "--managed-save", name)


def test_save_then_restore_continues_the_guest(daemon: DaemonHandle, counting: str, tmp_path: Path) -> None:
    name, image = counting, tmp_path / "saved.img"
    out = ok(daemon, "save", name, str(image))
    assert out == f"\nDomain '{name}' saved to {image}\n\n"  # virsh's blank lines
    assert state(daemon, name) == "shut off (saved)"
    assert stat.S_IMODE(image.stat().st_mode) == 0o600 and image.stat().st_size > fmt.HEADER_SIZE
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    last = max(ticks(daemon, name))
    mark = daemon.serial_log(name).stat().st_size
    assert not qemu_pids_under(daemon.root)
    time.sleep(1)  # a guest that went on counting while "saved" would show here

    assert ok(daemon, "restore", str(image)) == f"Domain restored from {image}\n\n"
    assert state(daemon, name) == "running (restored)"
    after = wait_ticks(daemon, name, mark, 3)
    assert after[0] == last + 1, f"counter went {last} -> {after[:3]}: not where it was saved"
    assert after == list(range(after[0], after[0] + len(after)))
    assert READY_MARKER not in daemon.serial_log(name).read_bytes()[mark:].decode(errors="replace")
    xml = ok(daemon, "save-image-dumpxml", str(image))
    assert f"<name>{name}</name>" in xml


def test_managedsave_then_start_restores_and_drops_the_image(daemon: DaemonHandle, counting: str) -> None:
    name = counting
    assert ok(daemon, "managedsave", name) == f"\nDomain '{name}' state saved by pyvirt\n\n"
    assert "Managed save:   yes" in ok(daemon, "dominfo", name)
    assert name in ok(daemon, "list", "--all", "--with-managed-save", "--name")
    assert name not in ok(daemon, "list", "--all", "--without-managed-save", "--name")
    assert re.search(rf"{name}\s+saved", ok(daemon, "list", "--all", "--managed-save"))
    assert "managed save image exists" in fails(daemon, "undefine", name)
    last = max(ticks(daemon, name))
    mark = daemon.serial_log(name).stat().st_size
    assert ok(daemon, "start", name) == f"Domain '{name}' started\n\n"
    assert state(daemon, name) == "running (restored)"
    assert wait_ticks(daemon, name, mark, 2)[0] == last + 1
    assert "Managed save:   no" in ok(daemon, "dominfo", name)


def test_managedsave_remove_then_start_boots(daemon: DaemonHandle, counting: str) -> None:
    name = counting
    ok(daemon, "managedsave", name, "--paused")
    assert ok(daemon, "managedsave-remove", name) == f"Removed managedsave image for domain '{name}'\n"
    assert "removal skipped" in ok(daemon, "managedsave-remove", name)
    mark = daemon.serial_log(name).stat().st_size
    ok(daemon, "start", name)
    assert state(daemon, name) == "running (booted)"
    daemon.wait_serial(name, start=mark)  # a fresh boot prints its marker again


def test_restore_paused_and_save_image_define(daemon: DaemonHandle, counting: str, tmp_path: Path) -> None:
    name, image = counting, tmp_path / "p.img"
    ok(daemon, "save", name, str(image))
    xml = ok(daemon, "save-image-dumpxml", "--security-info", str(image))
    edited = tmp_path / "edited.xml"
    edited.write_text(xml.replace("</domain>", "<description>restored copy</description></domain>", 1)
                      if "<description>" not in xml else xml)
    assert ok(daemon, "save-image-define", str(image), str(edited), "--paused") == f"State file {image} updated.\n\n"
    assert "restored copy" in ok(daemon, "save-image-dumpxml", str(image))
    other = tmp_path / "other.xml"
    bigger, changed = re.subn(r"<memory unit='KiB'>\d+</memory>", "<memory unit='KiB'>262144</memory>", xml)
    assert changed == 1, xml
    other.write_text(bigger)
    assert "changes what the guest sees" in fails(daemon, "save-image-define", str(image), str(other))
    ok(daemon, "restore", str(image))
    assert state(daemon, name) == "paused (user)"
    ok(daemon, "resume", name)
    assert state(daemon, name) == "running (unpaused)"


def test_restore_of_a_domain_not_defined_is_transient(daemon: DaemonHandle, guest: GuestImage,
                                                     tmp_path: Path) -> None:
    name, image = "sv-transient", tmp_path / "t.img"
    boot_counting(daemon, name, guest, tmp_path, persistent=False)
    ok(daemon, "save", name, str(image))
    assert name not in ok(daemon, "list", "--all", "--name")  # a transient domain is gone once shut off
    try:
        ok(daemon, "restore", str(image))
        assert "Persistent:     no" in ok(daemon, "dominfo", name)
    finally:
        daemon.cli("destroy", name)


# ---------------------------------------------------------------- bad input
def _image_bytes(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path) -> bytes:
    name, image = "sv-bad-src", tmp_path / "good.img"
    (tmp_path / "bad.xml").write_text(domain_xml(name, guest))
    ok(daemon, "create", "--paused", str(tmp_path / "bad.xml"))
    ok(daemon, "save", name, str(image))
    return image.read_bytes()


def test_bad_images_are_refused_before_any_qemu(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    good = _image_bytes(daemon, guest, tmp_path)
    offset = fmt.decode_header(good[:fmt.HEADER_SIZE], "good").data_offset
    version = struct.pack("<I", fmt.FORMAT_VERSION + 1)
    cases = {
        "truncated": (good[:len(good) // 2], "is truncated"),
        "foreign": (b"QEVM" + good[4:], "is not a pyvirt save image"),
        "newer": (good[:16] + version + good[20:], "written by a newer pyvirt"),
        "empty": (b"", "is not a pyvirt save image"),
        # a sound header over a stream QEMU refuses: QEMU starts, says why, and nothing of it stays
        "stream": (good[:offset] + b"JUNK" + good[offset + 4:], "QEMU could not load the saved state"),
    }
    for what, (data, message) in cases.items():
        path = tmp_path / f"{what}.img"
        path.write_bytes(data)
        assert message in fails(daemon, "restore", str(path)), what
        assert "sv-bad-src" not in ok(daemon, "list", "--all", "--name"), what
        assert not qemu_pids_under(daemon.root), what
    assert "does not exist" in fails(daemon, "restore", str(tmp_path / "missing.img"))


@pytest.fixture()
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_save_that_cannot_be_written_leaves_no_file_and_the_guest_running(
        daemon: DaemonHandle, counting: str, small_tmpfs: Path, tmp_path: Path) -> None:
    name = counting
    message = fails(daemon, "save", name, str(small_tmpfs / "full.img"))
    assert "keeps running" in message and "No space left" in message, message
    assert list(small_tmpfs.iterdir()) == []
    assert state(daemon, name).startswith("running")
    mark = daemon.serial_log(name).stat().st_size
    wait_ticks(daemon, name, mark, 2)  # still counting

    locked = tmp_path / "locked"
    locked.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(locked)], check=True)
    try:
        message = fails(daemon, "save", name, str(locked / "x.img"))
        assert "read-only" in message and "keeps running" in message, message
    finally:
        subprocess.run(["umount", "-l", str(locked)], check=False)
    assert "does not exist" in fails(daemon, "save", name, str(tmp_path / "no/such/dir/x.img"))
    assert state(daemon, name).startswith("running")


# ------------------------------------------------------------- crash safety
@pytest.mark.parametrize("fault", ["save:streamed", "save:written"])
def test_a_daemon_killed_mid_save_leaves_no_partial_file(fresh_daemon: DaemonHandle, guest: GuestImage,
                                                         tmp_path: Path, fault: str) -> None:
    """Killed before the image was complete: the guest keeps running and no file stays. Killed after it was
    renamed into place: the restarted daemon finishes the save (the guest ends, the image restores)."""
    d, name, image = fresh_daemon, "sv-crash", tmp_path / "crash.img"
    d.stop()
    d.start(env={"PYVIRT_FAULT": fault})
    boot_counting(d, name, guest, tmp_path)
    r = d.cli("save", name, str(image))
    assert r.returncode != 0  # the daemon died under it
    assert d.proc is not None and d.proc.wait(10) == -signal.SIGKILL
    d.start()
    assert [p for p in tmp_path.iterdir() if "partial" in p.name] == []
    if fault == "save:streamed":
        assert state(d, name).startswith("running") and not image.exists()
        wait_ticks(d, name, d.serial_log(name).stat().st_size, 2)
    else:
        assert state(d, name) == "shut off (saved)" and not qemu_pids_under(d.root)
        last = max(ticks(d, name))
        mark = d.serial_log(name).stat().st_size
        ok(d, "restore", str(image))
        assert wait_ticks(d, name, mark, 2)[0] == last + 1
    ok(d, "destroy", name)
    assert os.path.exists(d.serial_log(name))
