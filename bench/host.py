"""Host benchmarks: KSM by hand at full speed against the built-in tuner (memory saved, ksmd CPU) with 4 and 8
identical guests, the tuner's own CPU per hour, /metrics scrape time with 100 defined and 10 running domains,
and domstats of 10 running domains.

KSM rows change /sys/kernel/mm/ksm and put it back after each run (run them under the integration lock:
other guests on the host would be merged too). `virsh domstats` is timed beside ours only where a libvirtd
answers on qemu:///system.
"""
from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from pyvirt.host.ksm import PAGE_SIZE, KsmSysfs, cpu_seconds, find_ksmd
from pyvirt.host.ksm_policy import MemoryReading, TunerSettings
from pyvirt.host.node import NodeFs, process_rss_kib
from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml
from tests.integration.host_helpers import daemon_with, ksm_restored

Row = dict[str, object]
KSM = Path("/sys/kernel/mm/ksm")
WINDOW = 45.0  # seconds of KSM measured per run (as the by-hand measurement this compares with): by hand from
# turning it on after the guests booted, the tuner from the first guest start (it runs KSM while they boot)
BY_HAND = {"pages_to_scan": 10000, "sleep_millisecs": 10}  # ~1M pages/s: as fast as ksmd goes without a busy loop


def _cli(d: DaemonHandle, *args: str) -> str:
    r = d.cli(*args)
    if r.returncode:
        raise RuntimeError(f"pyvirt {' '.join(args)}: {r.stderr}")
    return r.stdout


def _start(d: DaemonHandle, guest: GuestImage, tmp: Path, names: list[str], wait: bool = True) -> None:
    for name in names:
        (tmp / f"{name}.xml").write_text(domain_xml(name, guest, memory_mib=128))
        _cli(d, "define", str(tmp / f"{name}.xml"))
        _cli(d, "start", name)
    if wait:
        for name in names:
            d.wait_serial(name, timeout=120)


def _ksm_run(caps: Path, guest: GuestImage, n: int, toml: str, by_hand: bool, seconds: float,
             enough: float | None = None) -> list[tuple[float, float, float]]:
    """Start n guests, let KSM merge (by hand, or as ``toml`` configures the daemon) and sample every 5 s:
    [(seconds, MiB saved, ksmd CPU seconds)], until ``seconds`` or until ``enough`` MiB are saved."""
    ksmd = find_ksmd()
    sysfs = KsmSysfs(KSM)
    with ksm_restored(), daemon_with(caps, toml) as d:
        tmp = Path(tempfile.mkdtemp(prefix="pvbk"))
        try:
            # From nothing merged, and counted from before the guests start: the tuner runs KSM from the first
            # guest start (the event wakes it), by hand it is turned on once every guest has booted.
            sysfs.write({"run": 2})
            sharing0 = sysfs.read_int("pages_sharing")
            cpu0 = (cpu_seconds(ksmd) or 0.0) if ksmd else 0.0
            t0 = time.monotonic()
            _start(d, guest, tmp, [f"k{i}" for i in range(n)])
            if by_hand:
                sysfs.write({**BY_HAND, "run": 1})
                t0 = time.monotonic()
            out = []
            while time.monotonic() - t0 < seconds:
                time.sleep(5)
                saved = (sysfs.read_int("pages_sharing") - sharing0) * PAGE_SIZE / 2**20
                cpu = ((cpu_seconds(ksmd) or 0.0) if ksmd else 0.0) - cpu0
                out.append((time.monotonic() - t0, saved, cpu))
                if enough is not None and saved >= enough:
                    break
            return out
        finally:
            with contextlib.suppress(Exception):
                sysfs.write({"run": 2})
            shutil.rmtree(tmp, ignore_errors=True)


TUNERS = (("tuner, ksmtuned's defaults", "[ksm]\nmode = 'auto'\nthres_coef = 100\n"),
          ("tuner, KSM_NPAGES_BOOST=1000 KSM_NPAGES_MAX=5000",
           "[ksm]\nmode = 'auto'\nthres_coef = 100\nnpages_boost = 1000\nnpages_max = 5000\n"))


def bench_ksm(caps: Path, guest: GuestImage, rows: list[Row]) -> None:
    if not (KSM / "run").exists():
        rows.append({"what": "KSM rows skipped: this kernel has no /sys/kernel/mm/ksm", "ms": "-"})
        return
    for n in (4, 8):
        hand = _ksm_run(caps, guest, n, "[ksm]\nmode = 'unmanaged'\n", True, WINDOW)[-1]
        rows.append({"what": f"KSM {n} guests by hand (pages_to_scan 10000, sleep 10 ms): MiB saved in "
                             f"{hand[0]:.0f} s", "ms": round(hand[1], 1)})
        rows.append({"what": f"KSM {n} guests by hand: ksmd CPU seconds in {hand[0]:.0f} s", "ms": round(hand[2], 2)})
        target = 0.9 * hand[1]
        for label, toml in TUNERS:
            series = _ksm_run(caps, guest, n, toml, False, 180, enough=target)
            at45 = next((p for p in series if p[0] >= WINDOW - 1), series[-1])
            rows.append({"what": f"KSM {n} guests {label}: MiB saved in {at45[0]:.0f} s "
                                 f"({at45[1] / hand[1] * 100:.0f}% of by hand)", "ms": round(at45[1], 1)})
            rows.append({"what": f"KSM {n} guests {label}: ksmd CPU seconds in {at45[0]:.0f} s",
                         "ms": round(at45[2], 2)})
            end = series[-1]
            reached = end[1] >= target
            rows.append({"what": f"KSM {n} guests {label}: seconds to 90% of by hand's saving "
                                 f"({'reached' if reached else 'not reached'}; ksmd CPU by then {end[2]:.2f} s)",
                         "ms": round(end[0], 0) if reached else f">{end[0]:.0f}"})


def bench_tuner_cpu(rows: list[Row]) -> None:
    """The cost of one decision (read /proc/meminfo, the guests' RSS, sysfs; decide; write), on a copy of sysfs."""
    from pyvirt.daemon.ksm_tuner import KsmTuner

    tmp = Path(tempfile.mkdtemp(prefix="pvbt"))
    try:
        for name, value in (("run", "0"), ("pages_to_scan", "100"), ("sleep_millisecs", "20")):
            (tmp / name).write_text(value + "\n")
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()][:10]  # ten processes' RSS
        node = NodeFs()
        settings = TunerSettings(thres_coef=100)
        tuner = KsmTuner(KsmSysfs(tmp), settings=lambda: settings,
                         memory=lambda: MemoryReading.from_meminfo(node.meminfo()),
                         committed_kib=lambda: sum(process_rss_kib(p) for p in pids), events=_no_events)
        import logging

        logging.getLogger("pyvirt.daemon.ksm_tuner").setLevel(logging.WARNING)
        t0 = time.process_time()
        for _ in range(2000):
            tuner.step()
        per = (time.process_time() - t0) / 2000
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows.append({"what": "KSM tuner: CPU ms per decision (10 guests)", "ms": round(per * 1000, 3)})
    rows.append({"what": "KSM tuner: CPU ms per hour at KSM_MONITOR_INTERVAL=60", "ms": round(per * 60 * 1000, 2)})


async def _no_events():  # type: ignore[no-untyped-def]
    return
    yield


def bench_metrics_and_domstats(caps: Path, guest: GuestImage, rows: list[Row]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with daemon_with(caps, args=("--metrics-listen", f"127.0.0.1:{port}")) as d:
        tmp = Path(tempfile.mkdtemp(prefix="pvbm"))
        try:
            for i in range(90):
                (tmp / f"idle{i}.xml").write_text(domain_xml(f"idle{i}", guest))
                _cli(d, "define", str(tmp / f"idle{i}.xml"))
            _start(d, guest, tmp, [f"run{i}" for i in range(10)])

            def scrape() -> float:
                t0 = time.perf_counter()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                    resp.read()
                return (time.perf_counter() - t0) * 1000

            scrape()
            times = [scrape() for _ in range(30)]
            rows.append({"what": "/metrics scrape, 100 defined + 10 running domains (median ms)",
                         "ms": round(statistics.median(times), 1)})
            rows.append({"what": "/metrics scrape, 100 defined + 10 running domains (max ms of 30)",
                         "ms": round(max(times), 1)})
            with d.connect() as conn:
                conn.domain_stats()
                api = []
                for _ in range(20):
                    t0 = time.perf_counter()
                    conn.domain_stats(lists=["running"])
                    api.append((time.perf_counter() - t0) * 1000)
            rows.append({"what": "domstats of 10 running domains, one API call (median ms)",
                         "ms": round(statistics.median(api), 1)})
            cli = []
            for _ in range(10):
                t0 = time.perf_counter()
                _cli(d, "domstats", "--list-running")
                cli.append((time.perf_counter() - t0) * 1000)
            rows.append({"what": "pyvirt domstats --list-running, 10 running (median ms, whole command)",
                         "ms": round(statistics.median(cli), 1)})
            virsh = shutil.which("virsh")
            answers = virsh and subprocess.run([virsh, "-c", "qemu:///system", "uri"], capture_output=True,
                                               timeout=20, check=False).returncode == 0
            if answers:
                t = []
                for _ in range(10):
                    t0 = time.perf_counter()
                    subprocess.run([virsh, "-c", "qemu:///system", "domstats", "--list-running"],
                                   capture_output=True, check=False)
                    t.append((time.perf_counter() - t0) * 1000)
                rows.append({"what": "virsh domstats --list-running (libvirtd's own guests; median ms)",
                             "ms": round(statistics.median(t), 1)})
            else:
                rows.append({"what": "virsh domstats: not measured (no libvirtd answers on qemu:///system)",
                             "ms": "-"})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def bench_host(caps: Path, guest: GuestImage, rows: list[Row], ksm: bool = True) -> None:
    bench_tuner_cpu(rows)
    bench_metrics_and_domstats(caps, guest, rows)
    if ksm:
        bench_ksm(caps, guest, rows)
