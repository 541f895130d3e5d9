"""Storage benchmarks: `pyvirt img convert` and `vol-clone` against bare qemu-img on the
same files, against `dd` (the disk's own sequential copy speed, the physical limit), and
snapshot create / revert latency for a domain with a 1 GiB qcow2 disk.

The source image is 1 GiB of random data, so neither side can skip zeroes; the page
cache is dropped before each copy so every tool reads from the disk alike.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml

Row = dict[str, object]
SIZE = 1024**3
BIN = Path(__file__).resolve().parents[1] / ".venv/bin"


def _drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    with contextlib.suppress(OSError):  # not allowed here: all tools then read from the page cache alike
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def _timed(argv: list[str]) -> float:
    _drop_caches()
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - t0


def _mibps(seconds: float) -> float:
    return round(SIZE / 1024**2 / seconds, 1)


def bench_storage(d: DaemonHandle, guest: GuestImage, rows: list[Row], runs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pvbs", dir=d.root / "var/lib/pyvirt/images"))
    try:
        src = tmp / "src.raw"
        with open(src, "wb") as f:
            for _ in range(SIZE // (16 * 1024**2)):
                f.write(os.urandom(16 * 1024**2))
        pyvirt = str(BIN / "pyvirt")
        cases = {
            "dd (sequential copy, the disk's limit)": lambda i: ["dd", f"if={src}", f"of={tmp}/dd{i}.raw",
                                                                 "bs=4M", "conv=fsync", "status=none"],
            "qemu-img convert raw->qcow2": lambda i: ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(src),
                                                      f"{tmp}/q{i}.qcow2"],
            "pyvirt img convert raw->qcow2": lambda i: [pyvirt, "img", "convert", "-f", "raw", "-O", "qcow2",
                                                        str(src), f"{tmp}/p{i}.qcow2"],
        }
        for what, argv in cases.items():
            times = []
            for i in range(runs):
                times.append(_timed(argv(i)))
                for leftover in tmp.glob(f"*{i}.*"):
                    if leftover != src:
                        leftover.unlink()
            rows.append({"what": f"{what} (MiB/s)", "ms": _mibps(sorted(times)[runs // 2])})
        # vol-clone through the daemon (default pool) vs qemu-img convert of the same volume
        d.cli("pool-refresh", "default")
        clone_times, qimg_times = [], []
        base = d.root / "var/lib/pyvirt/images/bbase.qcow2"
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(src), str(base)], check=True)
        d.cli("pool-refresh", "default")
        d.cli("vol-set-format", "bbase.qcow2", "qcow2", "--pool", "default")  # a found file is raw until then
        for i in range(runs):
            _drop_caches()
            t0 = time.perf_counter()
            r = d.cli("vol-clone", "bbase.qcow2", f"bclone{i}.qcow2", "--pool", "default")
            if r.returncode:
                raise RuntimeError(r.stderr)
            clone_times.append(time.perf_counter() - t0)
            d.cli("vol-delete", f"bclone{i}.qcow2", "--pool", "default")
            qimg_times.append(_timed(["qemu-img", "convert", "-f", "qcow2", "-O", "qcow2",
                                      str(d.root / "var/lib/pyvirt/images/bbase.qcow2"), str(tmp / f"qc{i}.qcow2")]))
            (tmp / f"qc{i}.qcow2").unlink()
        rows.append({"what": "pyvirt vol-clone 1 GiB qcow2 (MiB/s)", "ms": _mibps(sorted(clone_times)[runs // 2])})
        rows.append({"what": "qemu-img convert same volume (MiB/s)", "ms": _mibps(sorted(qimg_times)[runs // 2])})
        _snapshot_latency(d, guest, tmp, rows, runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        (d.root / "var/lib/pyvirt/images/bbase.qcow2").unlink(missing_ok=True)


def _snapshot_latency(d: DaemonHandle, guest: GuestImage, tmp: Path, rows: list[Row], runs: int) -> None:
    disk = tmp / "snap.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(tmp / "src.raw"), str(disk)], check=True)
    xml = tmp / "s.xml"
    xml.write_text(domain_xml("bsnap", guest, memory_mib=256, extra_devices=(
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>"
        "<target dev='vda' bus='virtio'/></disk>")))
    d.cli("define", str(xml))
    try:
        offline_c, offline_r = [], []
        for i in range(runs):
            t0 = time.perf_counter()
            d.cli("snapshot-create-as", "bsnap", f"off{i}")
            offline_c.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            d.cli("snapshot-revert", "bsnap", f"off{i}")
            offline_r.append((time.perf_counter() - t0) * 1000)
        rows.append({"what": "snapshot-create-as, shut off, 1 GiB qcow2", "ms": round(sorted(offline_c)[runs // 2], 1)})
        rows.append({"what": "snapshot-revert, shut off, 1 GiB qcow2", "ms": round(sorted(offline_r)[runs // 2], 1)})
        d.cli("start", "bsnap")
        d.wait_serial("bsnap")
        live_c, live_r = [], []
        for i in range(runs):
            t0 = time.perf_counter()
            r = d.cli("snapshot-create-as", "bsnap", f"live{i}")
            if r.returncode:
                raise RuntimeError(r.stderr)
            live_c.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            d.cli("snapshot-revert", "bsnap", f"live{i}")
            live_r.append((time.perf_counter() - t0) * 1000)
        rows.append({"what": "snapshot-create-as, running 256 MiB guest + memory",
                     "ms": round(sorted(live_c)[runs // 2], 1)})
        rows.append({"what": "snapshot-revert, running 256 MiB guest + memory",
                     "ms": round(sorted(live_r)[runs // 2], 1)})
    finally:
        d.cli("destroy", "bsnap")
        d.cli("undefine", "bsnap", "--snapshots-metadata")
