"""A daemon killed with SIGKILL during its KVM probe leaves no probe QEMU running and no probe files.

The probe is made slow deterministically: the daemon's qemu_binary is a fake that sleeps for
every question (the `-X help` queries and the KVM boot alike) and kvm_probe_timeout is long,
so the daemon is certainly mid-probe when it is killed. Its children die with it
(PR_SET_PDEATHSIG); the probe's files sit in the daemon's run directory, not in /tmp, and the
next start of the daemon removes them.
"""
from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DaemonHandle

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                       reason="needs a readable and writable /dev/kvm: the KVM boot probe only runs where it exists"),
]

MARK = "pyvirt-fake-slow-qemu"


def fakes_alive() -> dict[int, str]:
    """Live processes of the slow fake (pid -> command line); zombies do not count."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if MARK.encode() in cmdline and state != "Z":
            found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def wait_for(what: str, check, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} (waited {timeout} s)")


@pytest.fixture
def daemon() -> Iterator[DaemonHandle]:
    """The test's daemon, stopped (whatever the test left running) and its root removed after."""
    handle = DaemonHandle(Path(tempfile.mkdtemp(prefix="pvpk", dir="/tmp")))
    try:
        yield handle
    finally:
        for pid in fakes_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        handle.cleanup()


def test_sigkill_during_the_kvm_probe_leaves_nothing(daemon: DaemonHandle) -> None:
    d, root = daemon, daemon.root
    fake = root / "slow-qemu"
    fake.write_text(f"#!/bin/sh\nexec /usr/bin/python3 -c 'import time; time.sleep(600)' {MARK} \"$@\"\n")
    fake.chmod(0o755)
    settings = root / "etc/pyvirt/pyvirt.toml"
    settings.parent.mkdir(parents=True)
    settings.write_text(f"default_network = false\nqemu_binary = '{fake}'\nkvm_probe_timeout = 300\n")
    tmp_before = set(Path(tempfile.gettempdir()).glob("pyvirt-kvmprobe-*"))
    d.start()
    probe_run = root / "run/pyvirt/probe"
    probe = wait_for("the daemon's KVM probe QEMU did not start",
                     lambda: [p for p, cmd in fakes_alive().items() if "isa-debug-exit" in cmd])
    queries = wait_for("the daemon's QEMU queries did not start",
                       lambda: [p for p, cmd in fakes_alive().items() if " help" in cmd])
    [workdir] = list(probe_run.iterdir())  # the probe's files: in the daemon's run directory
    assert (workdir / "boot.img").stat().st_size == 512
    assert set(Path(tempfile.gettempdir()).glob("pyvirt-kvmprobe-*")) == tmp_before  # none in /tmp
    print(f"\nprobe pid {probe}, query pids {queries}; killing pyvirtd {d.proc.pid if d.proc else '?'} with SIGKILL")

    d.stop(signal.SIGKILL)
    wait_for("the probe's QEMU and queries outlived the daemon", lambda: not fakes_alive(), timeout=5.0)

    settings.write_text("default_network = false\n")  # the real QEMU: the restarted daemon's probe finishes
    d.start()
    with d.connect() as conn:
        conn.host_info()  # answers once the probe is done
    assert list(probe_run.iterdir()) == []  # the killed daemon's probe files are gone, and the new probe's
