"""pyvirt benchmarks, side by side in one run: `python -m bench.run` (or `make bench`).

Prints a table and writes bench/results/latest.json. Numbers here are TCG
numbers. Nothing here is asserted: targets are in the issue notes.

Rows: bare qemu-system (same argv) vs `pyvirt start` to the guest's ready
line; start/destroy/dominfo/define latency; `list --all` with 1, 100, 1000
domains; kill -9 of QEMU to the state change; daemon restart to the first
answered `list`; pyvirtd RSS idle, with 1000 defined and with 5 running;
save and restore of an idle 256 MiB guest against QEMU's migration to a file by hand (bench/save.py).
`--only xml` (bench/xml.py, issue 10): define/dumpxml of the largest corpus file against the small
test XML, import-libvirt of 200 domains.
`--only remote` (bench/remote.py): `pyvirt list` over pyvirt+tls:// and pyvirt+ssh:// vs the unix socket.
`--only queries` (bench/queries.py): every read-only CLI query against virsh, pair by pair.
`--only host` (bench/host.py, not in the default run: it changes KSM for minutes):
KSM by hand vs the tuner, the tuner's CPU, /metrics and domstats times.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.guest.build import READY_MARKER, build  # noqa: E402
from tests.integration.conftest import DaemonHandle, domain_xml, qemu_pids_under  # noqa: E402

BIN = REPO / ".venv/bin"
PYVIRT = str(BIN / "pyvirt")

Row = dict[str, object]


def timed(fn, repeat: int = 5) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def cli(d: DaemonHandle, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([PYVIRT, "-c", d.uri, *args], check=False, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"pyvirt {' '.join(args)}: {r.stderr}")
    return r


def wait_ready(path: Path, start: int, t0: float, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                f.seek(start)
                if READY_MARKER.encode() in f.read():
                    return (time.perf_counter() - t0) * 1000
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    raise RuntimeError(f"no ready line in {path}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def daemon_pid(d: DaemonHandle) -> int:
    assert d.proc is not None
    return d.proc.pid


def med(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def bare_argv(argv: list[str], guest) -> list[str]:  # type: ignore[no-untyped-def]
    """pyvirt's argv for a QEMU started by hand: the paths the daemon opened and passed as fds put back
    (fd sets by their -add-fd opaque "rw:PATH", the sealed kernel and initrd copies by the guest's files)."""
    sets: dict[str, str] = {}
    out: list[str] = []
    words = iter(argv)
    for word in words:
        if word == "-add-fd":
            fields = dict(f.split("=", 1) for f in next(words).split(","))
            sets[f"/dev/fdset/{fields['set']}"] = fields["opaque"].split(":", 1)[1]
            continue
        if word in ("-kernel", "-initrd"):
            out += [word, str(guest.kernel if word == "-kernel" else guest.initrd)]
            next(words)
            continue
        out.append(word)
    for fdset, path in sets.items():
        out = [re.sub(re.escape(fdset) + r"(?![0-9])", path, w) for w in out]
    return out


def bench_start(d: DaemonHandle, guest, tmp: Path, rows: list[Row], runs: int) -> None:  # type: ignore[no-untyped-def]
    xml = tmp / "b.xml"
    xml.write_text(domain_xml("bstart", guest, machine="microvm"))
    cli(d, "define", str(xml))
    serial = d.serial_log("bstart")
    start_ms, ready_ms, destroy_ms = [], [], []
    for _ in range(runs):
        size = serial.stat().st_size if serial.exists() else 0
        t0 = time.perf_counter()
        cli(d, "start", "bstart")
        start_ms.append((time.perf_counter() - t0) * 1000)
        ready_ms.append(wait_ready(serial, size, t0))
        destroy_ms.extend(timed(lambda: cli(d, "destroy", "bstart"), 1))
    # bare QEMU with the argv pyvirt used (read back from the per-VM log header)
    log = (d.root / "var/log/pyvirt/qemu/bstart.log").read_text().splitlines()
    header = [line for line in log if " -uuid " in line][-1]
    words = shlex.split(header)
    argv = bare_argv([a for a in words[next(i for i, w in enumerate(words) if "qemu-system" in w):] if a != "-S"],
                     guest)
    uuid = argv[argv.index("-uuid") + 1]
    (d.root / "run/pyvirt/qemu" / uuid).mkdir(exist_ok=True)  # the guest's directory, gone with pyvirt's QEMU
    bare_ms = []
    for _ in range(runs):
        size = serial.stat().st_size
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bare_ms.append(wait_ready(serial, size, t0))
        proc.kill()
        proc.wait()
    rows += [
        {"what": "bare qemu-system to ready line (microvm, TCG)", "ms": med(bare_ms)},
        {"what": "pyvirt start to ready line", "ms": med(ready_ms)},
        {"what": "  start overhead over bare QEMU", "ms": round(med(ready_ms) - med(bare_ms), 1)},
        {"what": "pyvirt start (command returns)", "ms": med(start_ms)},
        {"what": "pyvirt destroy", "ms": med(destroy_ms)},
    ]
    cli(d, "start", "bstart")
    rows.append({"what": "pyvirt dominfo (running)", "ms": med(timed(lambda: cli(d, "dominfo", "bstart"), 10))})
    [pid] = qemu_pids_under(d.root)
    t0 = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    conn = d.connect()
    try:
        while conn.domain("bstart").state()[0] != "shut off":
            pass
    finally:
        conn.close()
    rows.append({"what": "kill -9 of QEMU to state change (as seen by a client)",
                 "ms": round((time.perf_counter() - t0) * 1000, 1)})
    cli(d, "undefine", "bstart")


def bench_list(d: DaemonHandle, guest, tmp: Path, rows: list[Row]) -> None:  # type: ignore[no-untyped-def]
    rows.append({"what": "pyvirtd RSS idle (MiB)", "ms": round(rss_mib(daemon_pid(d)), 1)})
    conn = d.connect()
    defined = 0
    define_ms: list[float] = []
    try:
        for target in (1, 100, 1000):
            while defined < target:
                text = domain_xml(f"l{defined:04d}", guest)
                t0 = time.perf_counter()
                conn.define_xml(text)
                define_ms.append((time.perf_counter() - t0) * 1000)
                defined += 1
            rows.append({"what": f"pyvirt list --all, {target} domains",
                         "ms": med(timed(lambda: cli(d, "list", "--all"), 7))})
    finally:
        conn.close()
    xml = tmp / "one.xml"
    xml.write_text(domain_xml("defone", guest))

    def define_undefine() -> None:
        cli(d, "define", str(xml))
        cli(d, "undefine", "defone")

    rows.append({"what": "pyvirt define (CLI, 1000 defined)", "ms": med(timed(define_undefine, 5)) / 2})
    rows.append({"what": "define through the client (API only)", "ms": med(define_ms)})
    rows.append({"what": "pyvirtd RSS with 1000 defined (MiB)", "ms": round(rss_mib(daemon_pid(d)), 1)})
    d.stop()
    t0 = time.perf_counter()
    d.start()
    while subprocess.run([PYVIRT, "-c", d.uri, "list"], check=False, capture_output=True).returncode != 0:
        pass
    rows.append({"what": "daemon restart to first answered list (1000 defined)",
                 "ms": round((time.perf_counter() - t0) * 1000, 1)})


def bench_running(d: DaemonHandle, guest, tmp: Path, rows: list[Row]) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        xml = tmp / f"r{i}.xml"
        xml.write_text(domain_xml(f"run{i}", guest))
        cli(d, "define", str(xml))
        cli(d, "start", f"run{i}")
    time.sleep(2)
    rows.append({"what": "pyvirtd RSS with 5 running guests (MiB)", "ms": round(rss_mib(daemon_pid(d)), 1)})
    for i in range(5):
        cli(d, "destroy", f"run{i}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the 1000-domain rows")
    parser.add_argument("--only", choices=("domains", "net", "storage", "copies", "host", "xml", "save", "remote",
                                           "queries"), help="run one group of rows")
    args = parser.parse_args()
    guest = build()
    rows: list[Row] = []
    from tests.integration.conftest import make_daemon

    caps_root = Path(tempfile.mkdtemp(prefix="pvbc"))
    try:
        from pyvirt.config import Config
        from pyvirt.host.probe import load_or_probe

        config = Config.for_root(caps_root)
        config.paths.make_dirs()
        load_or_probe(config.paths, config.settings.qemu_binary, kvm_timeout=config.settings.kvm_probe_timeout)
        caps = config.paths.cache / "host-caps.json"
        from bench.copies import bench_copies
        from bench.host import bench_host
        from bench.net import bench_net
        from bench.queries import bench_queries
        from bench.save import bench_save
        from bench.storage import bench_storage
        from bench.xml import bench_xml

        if args.only == "host":  # its daemons have settings of their own (KSM, --metrics-listen)
            bench_host(caps, guest, rows)
        if args.only == "remote":  # two hosts in network namespaces and an sshd (bench/remote.py)
            from bench.remote import bench_remote

            bench_remote(caps, rows, args.runs)

        steps = {"domains": (bench_start, bench_running, bench_list), "net": (bench_net,),
                 "storage": (bench_storage,), "copies": (bench_copies,), "xml": (bench_xml,), "save": (bench_save,),
                 "queries": (bench_queries,)}
        chosen = () if args.only in ("host", "remote") else steps[args.only] if args.only else tuple(
            s for group in steps.values() for s in group)
        for step in chosen:
            d = make_daemon(caps)
            tmp = Path(tempfile.mkdtemp(prefix="pvb"))
            try:
                if step is bench_start:
                    step(d, guest, tmp, rows, args.runs)
                elif step in (bench_net, bench_storage, bench_xml, bench_save):
                    step(d, guest, rows, args.runs)
                elif step is bench_copies:
                    bench_copies(d, rows, args.runs)
                elif step is bench_list and args.quick:
                    continue
                elif step is bench_queries:
                    bench_queries(d, guest, rows, args.runs, many=not args.quick)
                else:
                    step(d, guest, tmp, rows)
            finally:
                d.cleanup()
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        shutil.rmtree(caps_root, ignore_errors=True)
    width = max(len(str(r["what"])) for r in rows)
    print(f"{'benchmark'.ljust(width)}   value (ms, or MiB)")
    for r in rows:
        print(f"{str(r['what']).ljust(width)}   {r['ms']}")
    out = REPO / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps({"time": time.time(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
