"""Every way a QEMU start can fail ends in one error with QEMU's own words, and leaves nothing behind.

The paths are made deterministic by a fake QEMU (tests/integration/fake_qemu.py) placed as the
domain's <emulator>: it fails at one chosen step (before the monitor exists, after binding it,
resetting the handshake, at cont, or hanging so the start times out), each time printing a
line in QEMU's format. The real cases of issue 14 run on real QEMU. After each failure: the CLI
said `error:` with the step and QEMU's line, the domain is shut off, and no process, socket,
pidfile, channel directory or tap of the start is left.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guest.build import GuestImage

from .conftest import DaemonHandle, domain_xml, fails
from .fake_qemu import REASONS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FAKE = Path(__file__).with_name("fake_qemu.py")
START_TIMEOUT = 1.5  # qemu_start_timeout of this module's daemon: the hang paths end quickly


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, Path]]:
    """One executable per mode of the fake QEMU, to name as a domain's <emulator>; in a directory the
    unprivileged QEMU user can reach (pytest's own temporary directories are private)."""
    where = Path(tempfile.mkdtemp(prefix="pvfq", dir="/tmp"))
    where.chmod(0o755)
    out = {}
    for mode in REASONS:
        script = where / f"qemu-{mode}"
        script.write_text(f'#!/bin/sh\nexec {sys.executable} {FAKE} {mode} "$@"\n')
        script.chmod(0o755)
        out[mode] = script
    try:
        yield out
    finally:
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(caps_cache: Path, fakes: dict[str, Path]) -> Iterator[DaemonHandle]:
    """A daemon of this module's own with a short qemu_start_timeout, allowed to run the fakes (pyvirt.toml)."""
    root = Path(tempfile.mkdtemp(prefix="pvsf", dir="/tmp"))
    root.chmod(0o755)
    (root / "var/lib/pyvirt/cache").mkdir(parents=True)
    shutil.copy(caps_cache, root / "var/lib/pyvirt/cache/host-caps.json")
    (root / "etc/pyvirt").mkdir(parents=True)
    emulators = ", ".join(f"'{p}'" for p in fakes.values())
    (root / "etc/pyvirt/pyvirt.toml").write_text(
        f"default_network = false\nqemu_start_timeout = {START_TIMEOUT}\nemulators = [{emulators}]\n")
    handle = DaemonHandle(root)
    try:
        handle.start()
        yield handle
    finally:
        handle.cleanup()


def uuid_of(d: DaemonHandle, name: str) -> str:
    return d.cli("domuuid", name, check=True).stdout.strip()


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (a domain's uuid is in its QEMU's argv)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text.encode() in cmdline and state != "Z":
            words = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry}: {words[:200]}")
    return found


def leftovers(d: DaemonHandle, uuid: str, tap: str | None = None) -> list[str]:
    """What a failed start of the domain ``uuid`` left: processes, runtime files, its tap."""
    run = d.root / "run/pyvirt/qemu"
    found = [f"file {p}" for p in run.iterdir() if p.name.startswith(uuid)] if run.exists() else []
    found += [f"process {p}" for p in processes_mentioning(uuid)]
    if tap and Path(f"/sys/class/net/{tap}").exists():
        found.append(f"tap {tap}")
    return found


def fake_domain(name: str, guest: GuestImage, emulator: Path, tap: str, mac: str, uuid: str | None = None) -> str:
    nic = (f"<interface type='ethernet'><mac address='{mac}'/><target dev='{tap}'/><model type='virtio'/>"
           "<link state='down'/></interface>")
    return domain_xml(name, guest, extra_devices=f"<emulator>{emulator}</emulator>{nic}", uuid=uuid)


# step named in the message, and the hint pyvirt adds for the fake's line (None: it cannot tell)
PATHS = {
    "exit-early": ("(exit status 1) before opening its monitor", None),
    "exit-after-bind": ("(exit status 1) during the QMP handshake", "<driver type='raw'/>"),
    "reset-handshake": ("(exit status 1) during the QMP handshake", "no feature 'fakeflag'"),
    "exit-at-cont": ("(exit status 1) at cont", None),
    "hang-before-monitor": ((f"before opening its monitor: it did not open its QMP socket "
                             f"{{qmp}} within {START_TIMEOUT:g} s"), None),
    "hang-handshake": ((f"during the QMP handshake: cannot connect to the QEMU monitor of {{name}} at {{qmp}}: "
                        f"no QMP greeting within {START_TIMEOUT:g} s"), None),
}


@pytest.mark.parametrize("mode", list(PATHS))
def test_each_failing_step_gives_one_error_with_qemus_words(daemon: DaemonHandle, guest: GuestImage,
                                                             fakes: dict[str, Path], tmp_path: Path,
                                                             mode: str) -> None:
    n = list(PATHS).index(mode)
    name, tap = f"sf-{mode}", f"pvsf{n}"
    xml = tmp_path / "d.xml"
    xml.write_text(fake_domain(name, guest, fakes[mode], tap, f"52:54:00:5f:14:{n:02x}"))
    daemon.cli("define", str(xml), check=True)
    uuid = uuid_of(daemon, name)
    qmp = daemon.root / f"run/pyvirt/qemu/{uuid}/qmp"
    try:
        err = fails(daemon, "start", name)
        print(f"\n{mode}: {err}")
        first = err.splitlines()[0]
        step, todo = PATHS[mode]
        assert first.startswith(f"error: cannot start domain '{name}': QEMU failed to start "), first
        assert step.format(qmp=qmp, name=name) in first
        if mode.startswith("hang-"):
            assert first.count("; it was killed") == 1
        else:
            assert REASONS[mode] in first  # QEMU's own line, in the message itself
        if todo is not None:
            assert todo in first
        assert f"QEMU's output is below and in {daemon.root}/var/log/pyvirt/qemu/{name}.log" in first
        assert REASONS[mode] in err.splitlines()[-1]  # the detail: QEMU's last lines, its reason last
        assert "starting up" not in err  # pyvirt's own log header is not QEMU's output
        assert daemon.cli("domstate", name, check=True).stdout.strip() == "shut off"
        assert leftovers(daemon, uuid, tap) == []
    finally:
        daemon.cli("undefine", name)


def test_the_same_domain_starts_after_a_failure(daemon: DaemonHandle, guest: GuestImage,
                                                fakes: dict[str, Path], tmp_path: Path) -> None:
    """Nothing of the failed start stands in the way of the next one (socket, pidfile, tap name)."""
    xml = tmp_path / "d.xml"
    tap = "pvsfagain"
    xml.write_text(fake_domain("sf-again", guest, fakes["reset-handshake"], tap, "52:54:00:5f:14:a0",
                               uuid="5f140000-0000-4000-8000-00000000a9a1"))
    daemon.cli("define", str(xml), check=True)
    try:
        fails(daemon, "start", "sf-again")
        good = xml.read_text().replace(f"<emulator>{fakes['reset-handshake']}</emulator>", "")
        xml.write_text(good)
        daemon.cli("define", str(xml), check=True)
        daemon.cli("start", "sf-again", check=True)
        assert Path(f"/sys/class/net/{tap}").exists()
        daemon.cli("destroy", "sf-again", check=True)
    finally:
        daemon.cli("destroy", "sf-again")
        daemon.cli("undefine", "sf-again")


# --------------------------------------------------------------------- real QEMU, issue 14's cases
def test_qcow2_driver_on_a_raw_file(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    image = tmp_path / "plain.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(image), "16M"], check=True)
    disk = (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{image}'/>"
            "<target dev='vda' bus='virtio'/></disk>")
    xml = tmp_path / "d.xml"
    xml.write_text(domain_xml("sf-qcow2", guest, extra_devices=disk))
    daemon.cli("define", str(xml), check=True)
    uuid = uuid_of(daemon, "sf-qcow2")
    try:
        err = fails(daemon, "start", "sf-qcow2")
        print(f"\n{err}")
        first = err.splitlines()[0]
        # found before QEMU runs: the daemon reads the image's backing chain as the disk's format says
        assert "Image is not in qcow2 format" in first  # qemu-img's own words
        assert f"disk vda: {image} is not a qcow2 image" in first and "set <driver type='raw'/>" in first
        assert leftovers(daemon, uuid) == []
    finally:
        daemon.cli("undefine", "sf-qcow2")


def test_unknown_required_cpu_feature(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    cpu = "<cpu mode='custom'><model>Nehalem-IBRS</model><feature policy='require' name='bogusflag'/></cpu>"
    xml = tmp_path / "d.xml"
    xml.write_text(domain_xml("sf-cpu", guest, machine="pc").replace("<features>", f"{cpu}<features>"))
    daemon.cli("define", str(xml), check=True)
    uuid = uuid_of(daemon, "sf-cpu")
    try:
        err = fails(daemon, "start", "sf-cpu")
        print(f"\n{err}")
        first = err.splitlines()[0]
        assert "Property 'Nehalem-IBRS-x86_64-cpu.bogusflag' not found" in first  # QEMU's own words
        assert "no feature 'bogusflag'" in first and "<feature name='bogusflag'/>" in first
        assert leftovers(daemon, uuid) == []
    finally:
        daemon.cli("undefine", "sf-cpu")
