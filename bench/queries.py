"""Read-only CLI queries, pyvirt against virsh, pair by pair: `python -m bench.run --only queries`.

Each row runs one `pyvirt` query and its reference in turn (A B A B ..., after one
warm-up run of each) and prints both medians, the median of the per-pair
differences and of the per-pair ratios: pairing keeps the comparison fair when
the machine's speed drifts. The reference is `virsh -c test:///default`
(libvirt's test driver: no daemon, its objects in memory), except for vol-list
and vol-info: test:///default has no volume, so those use a test-driver node
file holding one pool with one volume. Without virsh the rows show pyvirt alone
and say so. The target (issue 13): every query within 10 ms of virsh.

Then `pyvirt list --all` with 1000 domains defined (target: under 50 ms). It has
no virsh row: the test driver would parse 1000 definitions on every run (~270 ms
here), which is not what libvirtd's list costs.

pyvirt's modules are byte-compiled first, as an install does: with
PYTHONDONTWRITEBYTECODE set and no __pycache__, every run would compile them.
"""
from __future__ import annotations

import compileall
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.guest.build import GuestImage
from tests.integration.conftest import PYVIRT, DaemonHandle, domain_xml

Row = dict[str, object]
VIRSH = shutil.which("virsh")
VIRSH_URI = "test:///default"
MANY = 1000

# A node file for libvirt's test driver: one dir pool with one qcow2 volume, for vol-list / vol-info.
VIRSH_NODE = """<node>
  <pool type='dir'>
    <name>default-pool</name>
    <capacity unit='GiB'>100</capacity>
    <allocation>0</allocation>
    <available unit='GiB'>100</available>
    <target><path>/default-pool</path></target>
    <volume type='file'>
      <name>disk1.qcow2</name>
      <capacity unit='MiB'>16</capacity>
      <allocation unit='KiB'>196</allocation>
      <target><path>/default-pool/disk1.qcow2</path><format type='qcow2'/></target>
    </volume>
  </pool>
</node>
"""


def queries(dom_id: str, node: Path) -> list[tuple[str, list[str], list[str]]]:
    """(label, pyvirt arguments, virsh arguments): the same question to each side's own objects."""
    default, on_node = ["-c", VIRSH_URI], ["-c", f"test://{node}"]
    rows = [
        ("list --all", ["list", "--all"], ["list", "--all"]),
        ("dominfo", ["dominfo", "bq"], ["dominfo", "test"]),
        ("domstate", ["domstate", "bq"], ["domstate", "test"]),
        ("domid", ["domid", "bq"], ["domid", "test"]),
        ("domuuid", ["domuuid", "bq"], ["domuuid", "test"]),
        ("domname", ["domname", dom_id], ["domname", "1"]),
        ("dumpxml", ["dumpxml", "bq"], ["dumpxml", "test"]),
        ("net-list --all", ["net-list", "--all"], ["net-list", "--all"]),
        ("net-info", ["net-info", "bqnet"], ["net-info", "default"]),
        ("pool-list --all", ["pool-list", "--all"], ["pool-list", "--all"]),
        ("pool-info", ["pool-info", "bqpool"], ["pool-info", "default-pool"]),
        ("vol-list", ["vol-list", "bqpool"], ["vol-list", "default-pool"]),
        ("vol-info", ["vol-info", "disk1.qcow2", "--pool", "bqpool"],
         ["vol-info", "disk1.qcow2", "--pool", "default-pool"]),
        ("domblklist", ["domblklist", "bq"], ["domblklist", "test"]),
        ("domiflist", ["domiflist", "bq"], ["domiflist", "test"]),
    ]
    return [(label, mine, [*(on_node if label.startswith("vol-") else default), *ref]) for label, mine, ref in rows]


def run_ms(argv: list[str]) -> float:
    """One whole process, start to exit, in ms; a failure stops the benchmark with its stderr."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    ms = (time.perf_counter() - t0) * 1000
    if done.returncode:
        raise RuntimeError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.decode().strip()}")
    return ms


def paired(a: list[str], b: list[str] | None, runs: int) -> Row:
    """A and B in turn, ``runs`` pairs after one warm-up each: medians, and the per-pair difference and ratio."""
    run_ms(a)
    if b is not None:
        run_ms(b)
    a_ms, b_ms = [], []
    for _ in range(runs):
        a_ms.append(run_ms(a))
        if b is not None:
            b_ms.append(run_ms(b))
    row: Row = {"ms": round(statistics.median(a_ms), 1)}
    if b_ms:
        row["virsh_ms"] = round(statistics.median(b_ms), 1)
        row["diff_ms"] = round(statistics.median(x - y for x, y in zip(a_ms, b_ms, strict=True)), 1)
        row["ratio"] = round(statistics.median(x / y for x, y in zip(a_ms, b_ms, strict=True)), 2)
    return row


def populate(d: DaemonHandle, guest: GuestImage, tmp: Path) -> str:
    """A running domain `bq` with a volume disk and a NIC, pool `bqpool`, network `bqnet`; its id."""
    conn = d.connect()
    try:
        pool_dir = tmp / "bqpool"
        pool_dir.mkdir()
        pool = conn.define_pool(f"<pool type='dir'><name>bqpool</name><target><path>{pool_dir}</path></target>"
                                "</pool>")
        pool.start()
        vol = pool.create_volume("<volume><name>disk1.qcow2</name><capacity unit='MiB'>16</capacity>"
                                 "<target><format type='qcow2'/></target></volume>")
        conn.define_network("<network><name>bqnet</name><bridge name='pvbq0'/>"
                            "<ip address='10.126.0.1' prefix='24'/></network>")
        devices = (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{vol.path}'/>"
                   "<target dev='vda' bus='virtio'/></disk>"
                   "<interface type='user'><mac address='52:54:00:12:34:56'/><model type='virtio'/></interface>")
        dom = conn.define_xml(domain_xml("bq", guest, extra_devices=devices))
        dom.start()
        return str(dom.summary().id)
    finally:
        conn.close()


def define_many(d: DaemonHandle, guest: GuestImage, count: int) -> None:
    conn = d.connect()
    try:
        for i in range(count):
            conn.define_xml(domain_xml(f"l{i:04d}", guest))
    finally:
        conn.close()


def print_table(rows: list[Row]) -> None:
    width = max(len(str(r["what"])) for r in rows)
    print(f"{'query'.ljust(width)}  pyvirt ms  virsh ms  diff ms  ratio")
    for r in rows:
        ref = (f"{r['virsh_ms']:>8}  {r['diff_ms']:>+7}  {r['ratio']:>5}" if "virsh_ms" in r
               else f"{'-':>8}  {'-':>7}  {'-':>5}")
        print(f"{str(r['what']).removeprefix('query ').ljust(width)}  {r['ms']:>9}  {ref}")


def bench_queries(d: DaemonHandle, guest: GuestImage, rows: list[Row], runs: int, many: bool = True) -> None:
    import pyvirt

    compileall.compile_dir(str(Path(pyvirt.__file__).parent), quiet=1)
    runs = max(runs, 15)  # one query is ~20 ms: more pairs cost little and steady the medians
    tmp = Path(tempfile.mkdtemp(prefix="pvbq"))
    try:
        dom_id = populate(d, guest, tmp)
        node = tmp / "virsh-node.xml"
        node.write_text(VIRSH_NODE)
        if VIRSH is None:
            print("queries: virsh is not installed (Debian: libvirt-clients): pyvirt rows only, no reference")
        mine: list[Row] = []
        for label, args, ref in queries(dom_id, node):
            b = [VIRSH, *ref] if VIRSH else None
            mine.append({"what": f"query {label}", **paired([PYVIRT, "-c", d.uri, *args], b, runs)})
        if many:
            define_many(d, guest, MANY - 1)
            mine.append({"what": f"query list --all, {MANY} domains (target < 50 ms)",
                         **paired([PYVIRT, "-c", d.uri, "list", "--all"], None, runs)})
        if VIRSH:
            version = subprocess.run([VIRSH, "--version"], capture_output=True, text=True, check=False).stdout
            print(f"queries: {runs} pairs each against virsh {version.strip()} -c {VIRSH_URI}")
        print_table(mine)
        rows += mine
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
