"""Recorded volume formats through a real pyvirtd: found files are raw, owners say otherwise, uploads
and copies keep what is recorded. No guests boot here (test_format_attack.py has the attack itself)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import DaemonHandle, fails, ok

pytestmark = pytest.mark.integration
M = 1024 * 1024


def vol_json(d: DaemonHandle, vol: str, pool: str = "default") -> dict:
    return json.loads(ok(d, "--json", "vol-info", vol, "--pool", pool))


def qcow2(path: Path, size: str = "8M", backing: Path | None = None) -> None:
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing is not None:
        args += ["-u", "-b", str(backing), "-F", "raw"]
    subprocess.run([*args, str(path), size], check=True)


def name_backing_without_format(path: Path, backing: Path) -> None:
    """What older tools wrote and qemu-img no longer does: a header naming a backing file but not its format.
    The name goes into the unused end of the header cluster (qcow2 spec: backing_file_offset at byte 8,
    backing_file_size at byte 16, both big-endian)."""
    name = str(backing).encode()
    with open(path, "r+b") as f:
        f.seek(1024)
        f.write(name)
        f.seek(8)
        f.write((1024).to_bytes(8, "big") + len(name).to_bytes(4, "big"))


def test_a_found_file_is_raw_until_its_owner_says_otherwise(daemon: DaemonHandle, tmp_path: Path) -> None:
    d = daemon
    pool_dir = Path(ok(d, "--json", "pool-info", "default") and json.loads(
        ok(d, "--json", "pool-info", "default"))["target"])
    found = pool_dir / "pvvf-found.qcow2"
    qcow2(found, "8M")
    try:
        ok(d, "pool-refresh", "default")
        info = vol_json(d, "pvvf-found.qcow2")
        assert info["format"] == "raw" and info["capacity"] == found.stat().st_size  # the file's bytes
        assert "<format type='raw'/>" in ok(d, "vol-dumpxml", "--pool", "default", "pvvf-found.qcow2")
        out = ok(d, "vol-set-format", "pvvf-found.qcow2", "qcow2", "--pool", "default")
        assert out == "Vol pvvf-found.qcow2 recorded as qcow2\n\n"
        info = vol_json(d, "pvvf-found.qcow2")
        assert (info["format"], info["capacity"], info["backing"]) == ("qcow2", 8 * M, None)
        err = fails(d, "vol-set-format", "pvvf-found.qcow2", "vmdk", "--pool", "default")
        assert "not supported" in err
        ok(d, "vol-set-format", "pvvf-found.qcow2", "raw", "--pool", "default")
        assert vol_json(d, "pvvf-found.qcow2")["format"] == "raw"
    finally:
        found.unlink(missing_ok=True)


def test_an_imported_overlay_needs_its_backing_format_named(daemon: DaemonHandle, tmp_path: Path) -> None:
    d = daemon
    pool_dir = Path(json.loads(ok(d, "--json", "pool-info", "default"))["target"])
    base = tmp_path / "base.raw"
    base.write_bytes(bytes(M))
    top = pool_dir / "pvvf-top.qcow2"
    qcow2(top, "1M")
    name_backing_without_format(top, base)
    try:
        err = fails(d, "vol-set-format", "pvvf-top.qcow2", "qcow2", "--pool", "default")
        assert "without its format" in err and "never" in err
        assert vol_json(d, "pvvf-top.qcow2")["format"] == "raw"
        ok(d, "vol-set-format", "pvvf-top.qcow2", "qcow2", "--pool", "default", "--backing-format", "raw")
        assert vol_json(d, "pvvf-top.qcow2")["backing"] == {"path": str(base), "format": "raw"}
    finally:
        top.unlink(missing_ok=True)


def test_an_uploaded_qcow2_must_keep_the_recorded_backing(daemon: DaemonHandle, tmp_path: Path) -> None:
    d = daemon
    ok(d, "vol-create-as", "default", "pvvf-up.qcow2", "4M", "--format", "qcow2")
    path = Path(ok(d, "vol-path", "pvvf-up.qcow2", "--pool", "default").strip())
    before = path.read_bytes()
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"S" * M)
    evil, notqcow, good = tmp_path / "evil.qcow2", tmp_path / "plain.raw", tmp_path / "good.qcow2"
    qcow2(evil, "4M", backing=secret)
    notqcow.write_bytes(b"\0" * M)
    qcow2(good, "16M")
    try:
        err = fails(d, "vol-upload", "pvvf-up.qcow2", str(evil), "--pool", "default")
        assert "names backing file" in err and "unchanged" in err
        err = fails(d, "vol-upload", "pvvf-up.qcow2", str(notqcow), "--pool", "default")
        assert "is not a qcow2 image" in err
        assert path.read_bytes() == before
        ok(d, "vol-upload", "pvvf-up.qcow2", str(good), "--pool", "default")
        assert path.read_bytes() == good.read_bytes() and vol_json(d, "pvvf-up.qcow2")["capacity"] == 16 * M
        assert not [p for p in path.parent.iterdir() if p.name.startswith(".pyvirt-tmp-")]
    finally:
        d.cli("vol-delete", "pvvf-up.qcow2", "--pool", "default")


def test_a_copy_of_an_overlay_reads_the_recorded_chain(daemon: DaemonHandle, tmp_path: Path) -> None:
    """vol-clone of a linked clone is a full copy holding the base's data, even when the overlay's header was
    rewritten to name another file."""
    d = daemon
    ok(d, "vol-create-as", "default", "pvvf-base.img", "1M")
    base = Path(ok(d, "vol-path", "pvvf-base.img", "--pool", "default").strip())
    base.write_bytes(b"B" * M)
    ok(d, "vol-clone", "pvvf-base.img", "pvvf-ov.qcow2", "--pool", "default", "--linked")
    other = tmp_path / "other.raw"
    other.write_bytes(b"X" * M)
    overlay = base.parent / "pvvf-ov.qcow2"
    subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", str(other), "-F", "raw", str(overlay)],
                   check=True)
    try:
        ok(d, "vol-clone", "pvvf-ov.qcow2", "pvvf-flat.qcow2", "--pool", "default")
        flat = base.parent / "pvvf-flat.qcow2"
        raw = tmp_path / "flat.raw"
        subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(flat), str(raw)], check=True)
        assert raw.read_bytes() == b"B" * M
        assert vol_json(d, "pvvf-flat.qcow2")["backing"] is None
    finally:
        for v in ("pvvf-flat.qcow2", "pvvf-ov.qcow2", "pvvf-base.img"):
            d.cli("vol-delete", v, "--pool", "default")
