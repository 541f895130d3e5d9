"""Crash windows of volume jobs: pyvirtd is killed with SIGKILL in the middle of a copy and of an upload.

A new or rewritten volume is written under a temporary name (.pyvirt-tmp-NAME)
and renamed onto its name only when complete, so after the kill and a restart
there is no temporary file (the restart removes it), no half volume under the
final name, and the volume an upload was replacing is as it was. The copy's
qemu-img dies with the daemon instead of writing on.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import PYVIRT, DaemonHandle, ok, pids_under

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
TEMP = ".pyvirt-tmp-"


def pool_dir(d: DaemonHandle) -> Path:
    return d.root / "var/lib/pyvirt/images"


def temps(d: DaemonHandle) -> list[str]:
    return sorted(p.name for p in pool_dir(d).iterdir() if p.name.startswith(TEMP))


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def fill(path: Path, size: int) -> None:
    """Data in every block (qemu-img cannot skip it), fast: one random 4 MiB pattern repeated."""
    block = os.urandom(4 * MIB)
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)


def kill_when(d: DaemonHandle, proc: subprocess.Popen[bytes], name: str, timeout: float = 30.0) -> None:
    """SIGKILL the daemon as soon as the temporary file of ``name`` holds data (the job is under way)."""
    tmp = pool_dir(d) / f"{TEMP}{name}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if tmp.stat().st_blocks > 0:
                break
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"the job finished before it could be interrupted (make it bigger): {proc.returncode}")
        time.sleep(0.002)
    else:
        pytest.fail(f"{tmp} never appeared")
    d.stop(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode != 0  # the client saw its daemon go


def qemu_img_writing(where: Path) -> list[int]:
    return pids_under(where, b"qemu-img") + pids_under(where, b"setpriv")


def test_kill_mid_clone_leaves_no_half_volume(fresh_daemon: DaemonHandle) -> None:
    d = fresh_daemon
    src = pool_dir(d) / "pvcr-src.raw"
    fill(src, 1024 * MIB)
    ok(d, "pool-refresh", "default")
    before = digest(src)
    proc = subprocess.Popen([PYVIRT, "-c", d.uri, "vol-clone", "pvcr-src.raw", "pvcr-clone.raw", "--pool", "default"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(d, proc, "pvcr-clone.raw")
    deadline = time.monotonic() + 5
    while qemu_img_writing(pool_dir(d)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert qemu_img_writing(pool_dir(d)) == []  # the copy died with the daemon
    assert not (pool_dir(d) / "pvcr-clone.raw").exists()
    d.start()
    assert temps(d) == []
    assert [line.split()[0] for line in ok(d, "vol-list", "default").splitlines()[2:] if line.strip()] == [
        "pvcr-src.raw"]
    assert digest(src) == before
    # and the same copy, uninterrupted, works
    ok(d, "vol-clone", "pvcr-src.raw", "pvcr-clone.raw", "--pool", "default")
    assert digest(pool_dir(d) / "pvcr-clone.raw") == before and temps(d) == []


def test_kill_mid_upload_leaves_the_volume_as_it_was(fresh_daemon: DaemonHandle, tmp_path: Path) -> None:
    d = fresh_daemon
    size = 512 * MIB
    ok(d, "vol-create-as", "default", "pvcr-up.img", str(size))
    vol = pool_dir(d) / "pvcr-up.img"
    with open(vol, "r+b") as f:
        f.write(b"OLD-CONTENT")
    before = digest(vol)
    data = tmp_path / "new.raw"
    fill(data, size)
    proc = subprocess.Popen([PYVIRT, "-c", d.uri, "vol-upload", "pvcr-up.img", str(data), "--pool", "default"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(d, proc, "pvcr-up.img")
    assert digest(vol) == before  # the volume was never written in place
    d.start()
    assert temps(d) == []
    assert digest(vol) == before and vol.stat().st_size == size
    ok(d, "vol-upload", "pvcr-up.img", str(data), "--pool", "default")
    assert digest(vol) == digest(data) and temps(d) == []


def test_a_restart_removes_stale_temporary_volumes_only(fresh_daemon: DaemonHandle) -> None:
    d = fresh_daemon
    d.stop(signal.SIGKILL)
    stale, kept = pool_dir(d) / f"{TEMP}gone.qcow2", pool_dir(d) / "pvcr-kept.img"
    stale.write_bytes(b"half a copy")
    kept.write_bytes(b"a volume")
    d.start()
    assert not stale.exists() and kept.read_bytes() == b"a volume"
    ok(d, "pool-destroy", "default")
    stale.write_bytes(b"half a copy")
    ok(d, "pool-start", "default")
    assert not stale.exists() and kept.exists()
