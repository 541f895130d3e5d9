"""Fixtures for integration tests: real pyvirtd daemons in temp roots, the tiny guest.

Each daemon is a real `pyvirtd --root DIR` process (so kill -9 and restarts
are real). Teardown kills whatever QEMU a test left running under that root
and removes the root: a failing test leaks nothing.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guest.build import READY_MARKER, GuestImage, build

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PYVIRT = str(VENV_BIN / "pyvirt")
PYVIRTD = str(VENV_BIN / "pyvirtd")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="integration tests need root (QEMU, taps, the daemon's socket)")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def guest() -> GuestImage:
    return build()


@pytest.fixture(scope="session")
def caps_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Probe the host once per session (the KVM probe takes up to its timeout) and share it."""
    root = Path(tempfile.mkdtemp(prefix="pvcaps"))
    try:
        from pyvirt.config import Config
        from pyvirt.host.probe import load_or_probe

        config = Config.for_root(root)
        config.paths.make_dirs()
        load_or_probe(config.paths, config.settings.qemu_binary, kvm_timeout=config.settings.kvm_probe_timeout)
        cached = tmp_path_factory.mktemp("caps") / "host-caps.json"
        shutil.copy(config.paths.cache / "host-caps.json", cached)
        return cached
    finally:
        shutil.rmtree(root, ignore_errors=True)


def qemu_pids_under(root: Path) -> list[int]:
    """QEMU processes whose command line mentions this daemon root (its sockets live there)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline.split(b"\0")[0] and str(root).encode() in cmdline:
            pids.append(int(entry))
    return pids


class DaemonHandle:
    """One pyvirtd process and helpers to talk to it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "run/pyvirt/pyvirtd.sock"
        self.uri = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        log = open(self.root / "pyvirtd.stderr", "ab")
        self.proc = subprocess.Popen([PYVIRTD, "--root", str(self.root)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"pyvirtd exited with {self.proc.returncode}: {self.stderr()}")
            time.sleep(0.01)
        raise RuntimeError(f"pyvirtd did not open {self.socket} within {timeout} s: {self.stderr()}")

    def answers(self) -> bool:
        """True once the daemon accepts on its socket (a killed daemon leaves a stale file)."""
        import socket

        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(self.socket))
            except OSError:
                return False
        return True

    def stderr(self) -> str:
        return (self.root / "pyvirtd.stderr").read_text(errors="replace")[-3000:]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def connect(self):  # type: ignore[no-untyped-def]
        import pyvirt

        return pyvirt.connect(self.uri)

    def cli(self, *args: str, input: str | None = None, check: bool = False,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run the real `pyvirt` command against this daemon."""
        result = subprocess.run([PYVIRT, "-c", self.uri, *args], capture_output=True, text=True,
                                input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"pyvirt {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def serial_log(self, name: str) -> Path:
        return self.root / f"var/log/pyvirt/qemu/{name}.serial.log"

    def wait_serial(self, name: str, marker: str = READY_MARKER, timeout: float = 60.0, start: int = 0) -> str:
        """Wait until the guest's serial log holds ``marker`` (after byte ``start``)."""
        path = self.serial_log(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                text = path.read_bytes()[start:].decode(errors="replace")
                if marker in text:
                    return text
            time.sleep(0.05)
        text = path.read_text(errors="replace") if path.exists() else "<no serial log>"
        raise AssertionError(f"guest {name} did not print {marker!r} within {timeout} s; serial log:\n{text[-2000:]}")

    def cleanup(self) -> None:
        self.stop(signal.SIGKILL)
        for pid in qemu_pids_under(self.root):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while qemu_pids_under(self.root) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)


def make_daemon(caps_cache: Path) -> DaemonHandle:
    # Short root: unix socket paths (QMP, serial) must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="pv", dir="/tmp"))
    cache = root / "var/lib/pyvirt/cache"
    cache.mkdir(parents=True)
    shutil.copy(caps_cache, cache / "host-caps.json")
    handle = DaemonHandle(root)
    handle.start()
    return handle


@pytest.fixture(scope="module")
def daemon(caps_cache: Path) -> Iterator[DaemonHandle]:
    """A daemon shared by the tests of one module (each test uses its own domain names)."""
    handle = make_daemon(caps_cache)
    try:
        yield handle
    finally:
        handle.cleanup()


@pytest.fixture()
def fresh_daemon(caps_cache: Path) -> Iterator[DaemonHandle]:
    """A daemon of the test's own, for tests that kill or restart it."""
    handle = make_daemon(caps_cache)
    try:
        yield handle
    finally:
        handle.cleanup()


def domain_xml(name: str, guest: GuestImage, *, machine: str = "microvm", memory_mib: int = 128,
               acpi: bool = True, extra_devices: str = "", cmdline: str | None = None,
               on_crash: str = "destroy", dom_type: str = "qemu", uuid: str | None = None) -> str:
    """A domain of the tiny guest; microvm boots fastest under TCG."""
    features = "<features><acpi/></features>" if acpi else ""
    uuid_el = f"<uuid>{uuid}</uuid>" if uuid else ""
    return f"""<domain type='{dom_type}'>
  <name>{name}</name>{uuid_el}
  <memory unit='MiB'>{memory_mib}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='{machine}'>hvm</type>
    <kernel>{guest.kernel}</kernel>
    <initrd>{guest.initrd}</initrd>
    <cmdline>{cmdline or guest.cmdline}</cmdline>
  </os>
  {features}
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>{on_crash}</on_crash>
  <devices>
    <serial type='pty'><target port='0'/></serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
    {extra_devices}
  </devices>
</domain>
"""
