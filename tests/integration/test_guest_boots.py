"""The tiny test guest boots under bare QEMU (TCG), takes DHCP leases and powers off.

These run QEMU directly, without pyvirt, so a failure here means the guest
(or the host's QEMU) is broken, not the code under test elsewhere.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.guest.build import LEASE_MARKER, POWEROFF_MARKER, READY_MARKER, GuestImage, build

pytestmark = pytest.mark.integration

QEMU = "qemu-system-x86_64"
READY = re.compile(rf"^{READY_MARKER} uptime=(\d+\.\d+)$", re.M)
BOOT_TIMEOUT = 60.0


class Console:
    """A QEMU process whose serial console (stdio) is collected in the background."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._text = ""
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in iter(lambda: self.proc.stdout.read1(4096), b""):  # type: ignore[union-attr]
            with self._changed:
                self._text += raw.decode(errors="replace").replace("\r", "")
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return self._text

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` in the console output, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = pattern.search(self._text)
                if match:
                    return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"{pattern.pattern!r} not seen on the console within {timeout:.0f} s "
                        f"(QEMU exit code {self.proc.poll()})\n"
                        f"argv: {' '.join(self.argv)}\nconsole:\n{self._text[-4000:]}")
                self._changed.wait(min(left, 0.5))

    def wait_exit(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"QEMU still running after {timeout:.0f} s\n"
                                 f"console:\n{self.text[-4000:]}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture(scope="session")
def guest() -> GuestImage:
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} is not installed")
    return build()


@pytest.fixture
def boot(guest: GuestImage) -> Iterator:
    """Start QEMU on the test guest; every QEMU started is killed at the end."""
    started: list[Console] = []

    def start(machine: str, *extra: str, kernel: Path | None = None,
              append: str = "") -> Console:
        argv = [QEMU, "-accel", "tcg", "-M", machine, "-m", "256", "-nodefaults",
                "-no-user-config", "-display", "none", "-serial", "stdio",
                "-kernel", str(kernel or guest.kernel), "-initrd", str(guest.initrd),
                "-append", f"{guest.cmdline} {append}".strip(), *extra]
        console = Console(argv)
        started.append(console)
        return console

    try:
        yield start
    finally:
        for console in started:
            console.kill()


def _ready(console: Console) -> float:
    """Wait for the ready line; returns the wall time from QEMU start to it."""
    match = console.wait_for(READY, BOOT_TIMEOUT)
    assert float(match.group(1)) > 0
    return time.monotonic() - console.started


def _qmp(path: Path, command: str, timeout: float = 10.0) -> dict:
    """Run one QMP command over a fresh connection (the socket may still be coming up)."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(str(path))
            break
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with sock, sock.makefile("rwb") as stream:
        assert "QMP" in json.loads(stream.readline())
        for name in ("qmp_capabilities", command):
            stream.write(json.dumps({"execute": name}).encode() + b"\n")
            stream.flush()
            while True:
                reply = json.loads(stream.readline())
                if "error" in reply:
                    raise AssertionError(f"QMP {name} failed: {reply['error']}")
                if "return" in reply:
                    break
    return reply["return"]


def test_q35_boots_to_ready_once(boot) -> None:
    console = boot("q35")
    seconds = _ready(console)
    # The shell prompt comes after the marker; by then a second marker would show.
    console.wait_for(re.compile(r"built-in shell"), 30)
    assert len(READY.findall(console.text)) == 1
    print(f"q35: ready {seconds:.2f} s after QEMU start")


def test_q35_boots_the_debian_bzimage(boot, guest: GuestImage) -> None:
    assert guest.bzimage is not None
    console = boot("q35", kernel=guest.bzimage)
    print(f"q35 (bzImage): ready {_ready(console):.2f} s after QEMU start")


def test_microvm_boots_with_virtio_mmio_devices(boot) -> None:
    console = boot("microvm", "-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0",
                   "-device", "virtio-rng-device")
    seconds = _ready(console)
    console.wait_for(re.compile(rf"{LEASE_MARKER} eth0 10\.0\.2\.15\b"), 30)
    print(f"microvm: ready {seconds:.2f} s after QEMU start")


def test_acpi_power_button_powers_off(boot, tmp_path: Path) -> None:
    qmp = tmp_path / "qmp.sock"
    console = boot("q35", "-qmp", f"unix:{qmp},server=on,wait=off")
    _ready(console)
    assert _qmp(qmp, "system_powerdown") == {}
    assert console.wait_exit(30) == 0
    assert f"{POWEROFF_MARKER} acpi" in console.text


def test_poweroff_after_from_the_command_line(boot) -> None:
    console = boot("microvm", append="pyvirt.poweroff_after=1")
    _ready(console)
    assert console.wait_exit(30) == 0
    assert f"{POWEROFF_MARKER} timer" in console.text


@pytest.mark.parametrize("model", ["virtio-net-pci", "e1000", "e1000e", "rtl8139"])
def test_nic_gets_a_dhcp_lease(boot, model: str) -> None:
    console = boot("q35", "-netdev", "user,id=n0", "-device", f"{model},netdev=n0")
    _ready(console)
    console.wait_for(re.compile(rf"{LEASE_MARKER} eth0 10\.0\.2\.15\b"), 30)
