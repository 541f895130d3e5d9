"""The argv golden cases, run by the real QEMU 7.2 (TCG).

Every case starts paused (-S), so no guest code runs: if QEMU opens its QMP
socket and is still alive, it accepted every option (a bad option, device or
property makes it exit at once with a message). Two cases then boot the tiny
test guest for real and read its console from the serial log, which proves
the console wiring (serial socket + logfile) on q35 and microvm.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pyvirt.qemu.argv import LaunchContext, build_argv
from tests.guest.build import READY_MARKER, GuestImage
from tests.unit.argv_cases import CASES, base_ctx

pytestmark = pytest.mark.integration

QEMU = shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"
QEMU_IMG = shutil.which("qemu-img") or "/usr/bin/qemu-img"
START_TIMEOUT = 5.0
# KVM is broken on these hosts (see MACHINE-NOTES.md): only TCG cases run.
TCG_CASES = [name for name in CASES if name != "host_passthrough_kvm"]


def fake_kernel(path: Path) -> None:
    """A bzImage header QEMU accepts for -kernel/-initrd; with -S it never runs."""
    data = bytearray(1 << 20)
    data[0x1F1] = 4  # setup sectors
    data[0x1FE:0x200] = b"\x55\xaa"
    data[0x202:0x206] = b"HdrS"
    data[0x206:0x208] = (0x020F).to_bytes(2, "little")  # boot protocol 2.15
    data[0x211] = 1  # loaded high
    data[0x22C:0x230] = (0x7FFFFFFF).to_bytes(4, "little")  # initrd_addr_max
    data[0x238:0x23C] = (2048).to_bytes(4, "little")  # cmdline_size
    path.write_bytes(bytes(data))


def make_image(path: Path) -> None:
    """Files the cases refer to: qcow2/raw images via qemu-img, the rest as plain files."""
    name = path.name
    if name == "vmlinuz":
        fake_kernel(path)
    elif name.endswith(".qcow2"):
        subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    elif name.endswith(".fd"):
        path.write_bytes(b"\0" * (2 << 20))  # pflash: any size that is a whole number of sectors
    elif name.endswith((".raw", ".iso")):
        subprocess.run([QEMU_IMG, "create", "-q", "-f", "raw", str(path), "16M"], check=True)
    else:
        path.write_bytes(b"\0" * 4096)


def qemu_has_spice() -> bool:
    """Debian 12's qemu-system-common ships the SPICE modules (ui-spice-core);
    Debian 13 and later split them into qemu-system-modules-spice."""
    out = subprocess.run([QEMU, "-spice", "help"], capture_output=True, text=True, timeout=10, check=False)
    return "disable-ticketing" in out.stdout + out.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Short: unix socket paths may not exceed 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="pva"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def real_ctx(work: Path, **over: object) -> LaunchContext:
    ctx = base_ctx(**over)
    (work / "ch").mkdir(exist_ok=True)
    return replace(
        ctx,
        qemu_binary=QEMU,
        qmp_socket=str(work / "qmp"),
        serial_socket=str(work / "serial"),
        serial_log=str(work / "serial.log"),
        pidfile=str(work / "pid"),
        vnc_socket=str(work / "vnc"),
        channel_dir=str(work / "ch"),
        machine_aliases={},
        spice_port=free_port() if ctx.spice_port else None,
    )


class Qemu:
    """One QEMU process; always killed and reaped by ``stop``."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def qmp_status(sock: Path) -> str:
    """Handshake and query-status over a raw QMP socket. QMP answers only once
    the machine and all its devices are created, so an answer proves start-up."""
    import json

    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(START_TIMEOUT)
        s.connect(str(sock))
        reader = s.makefile("rb")
        assert b'"QMP"' in reader.readline()
        s.sendall(b'{"execute":"qmp_capabilities"}\n')
        assert "return" in json.loads(reader.readline())
        s.sendall(b'{"execute":"query-status"}\n')
        while True:
            msg = json.loads(reader.readline())
            if "return" in msg:
                return str(msg["return"]["status"])


def wait_for_qmp(qemu: Qemu, sock: Path, timeout: float) -> str:
    """QEMU's run state once its QMP socket answers; fails if QEMU exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if qemu.proc.poll() is not None:
            pytest.fail(f"QEMU exited with {qemu.proc.returncode}:\n{qemu.output()}")
        if sock.exists():
            try:
                return qmp_status(sock)
            except ConnectionRefusedError:
                pass
        time.sleep(0.02)
    pytest.fail(f"QEMU opened no QMP socket within {timeout} s:\n{qemu.output()}")


@pytest.mark.parametrize("name", TCG_CASES)
def test_qemu_accepts_case(name: str, workdir: Path) -> None:
    images = workdir / "img"
    images.mkdir()
    domain, over = CASES[name](lambda n: str(images / n))
    for disk in domain.devices.disks:
        for path in [disk.source, *(layer.path for layer in disk.backing_chain)]:
            if path:
                make_image(Path(path))
    for path in (domain.os.kernel, domain.os.initrd):
        if path:
            make_image(Path(path))
    if domain.os.loader:
        make_image(Path(domain.os.loader.path))
        if domain.os.loader.nvram:
            make_image(Path(domain.os.loader.nvram))
    if over.get("has_spice") and not qemu_has_spice():
        pytest.skip("this QEMU has no SPICE (Debian 13+: apt-get install qemu-system-modules-spice)")
    ctx = real_ctx(workdir, **over)
    cmd = build_argv(domain, ctx)
    qemu = Qemu(cmd.argv + ["-display", "none"], workdir / "qemu.log")
    try:
        assert wait_for_qmp(qemu, Path(ctx.qmp_socket), START_TIMEOUT) == "prelaunch"  # -S: paused
        assert qemu.proc.poll() is None, qemu.output()
        assert Path(ctx.pidfile).read_text().strip() == str(qemu.proc.pid)
    finally:
        qemu.stop()


@pytest.mark.parametrize("name", ["minimal_q35_tcg", "microvm_direct_kernel"])
def test_guest_console_reaches_serial_log(name: str, workdir: Path, guest: GuestImage) -> None:
    """Without -S the tiny guest boots and its console lands in ctx.serial_log."""
    domain, over = CASES[name](lambda n: str(workdir / n))
    domain = replace(domain, os=replace(domain.os, kernel=str(guest.kernel), initrd=str(guest.initrd),
                                        cmdline=guest.cmdline))
    for disk in domain.devices.disks:
        if disk.source:
            make_image(Path(disk.source))
    ctx = real_ctx(workdir, **over)
    argv = [a for a in build_argv(domain, ctx).argv if a != "-S"]
    qemu = Qemu(argv, workdir / "qemu.log")
    log = Path(ctx.serial_log)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if log.exists() and READY_MARKER in log.read_text(errors="replace"):
                break
            if qemu.proc.poll() is not None:
                pytest.fail(f"QEMU exited with {qemu.proc.returncode}:\n{qemu.output()}")
            time.sleep(0.2)
        else:
            pytest.fail(f"no {READY_MARKER} in {log}:\n{log.read_text(errors='replace') if log.exists() else ''}")
    finally:
        qemu.stop()
