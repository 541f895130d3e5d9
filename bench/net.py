"""Network benchmarks: net-start / net-destroy latency, guest start to DHCP lease, and
guest-to-guest / guest-to-host TCP throughput with iperf3 for virtio, e1000 and rtl8139.

The tiny guest gets iperf3 through a second initramfs archive appended to its
own (the kernel unpacks concatenated cpio archives): the host's /usr/bin/iperf3
with the shared libraries ldd lists. TCG numbers: compare the models' ratios.
"""
from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.guest.build import GuestImage
from tests.guest.cpio import NewcWriter
from tests.integration.conftest import DaemonHandle, domain_xml

Row = dict[str, object]
IPERF = "/usr/bin/iperf3"
SECONDS = 5

NET_XML = """<network>
  <name>bnet</name>
  <forward mode='nat'/>
  <bridge name='pvbench0'/>
  <ip address='10.127.0.1' prefix='24'>
    <dhcp><range start='10.127.0.10' end='10.127.0.200'/></dhcp>
  </ip>
</network>
"""


def iperf_initrd(guest: GuestImage, out: Path) -> Path:
    """The guest's initrd with iperf3 and its libraries appended as a second archive."""
    libs = re.findall(r"(/\S+\.so[.\d]*) ", subprocess.run(["ldd", IPERF], capture_output=True,
                                                            text=True, check=True).stdout)
    buf = io.BytesIO()
    w = NewcWriter(buf)
    made: set[str] = set()
    for path in [IPERF, *libs]:
        real = Path(path).resolve()
        parts = Path(path).parent.parts[1:]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in made:
                w.add_dir(d)
                made.add(d)
        w.add_file(path.lstrip("/"), real.read_bytes(), 0o755)
    w.close()
    target = out / "initrd-iperf.img"
    target.write_bytes(guest.initrd.read_bytes() + gzip.compress(buf.getvalue(), 1))
    return target


def cli(d: DaemonHandle, *args: str) -> subprocess.CompletedProcess[str]:
    r = d.cli(*args)
    if r.returncode:
        raise RuntimeError(f"pyvirt {' '.join(args)}: {r.stderr}")
    return r


def lease_of(d: DaemonHandle, name: str, timeout: float = 60.0, start: int = 0) -> str:
    text = d.wait_serial(name, "PYVIRT-GUEST-LEASE eth0 ", timeout=timeout, start=start)
    return re.search(r"PYVIRT-GUEST-LEASE eth0 (\S+)", text).group(1)  # type: ignore[union-attr]


def bench_net(d: DaemonHandle, guest: GuestImage, rows: list[Row], runs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="pvbn"))
    try:
        (tmp / "n.xml").write_text(NET_XML)
        cli(d, "net-define", str(tmp / "n.xml"))
        starts, stops = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            cli(d, "net-start", "bnet")
            starts.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            cli(d, "net-destroy", "bnet")
            stops.append((time.perf_counter() - t0) * 1000)
        rows.append({"what": "net-start (bridge + dnsmasq + nft + DNS check)",
                     "ms": round(sorted(starts)[runs // 2], 1)})
        rows.append({"what": "net-destroy", "ms": round(sorted(stops)[runs // 2], 1)})
        cli(d, "net-start", "bnet")
        leases = []
        for i in range(runs):
            (tmp / "l.xml").write_text(domain_xml(f"lease{i}", guest, extra_devices=_nic(f"52:54:00:7f:00:{i:02x}")))
            cli(d, "define", str(tmp / "l.xml"))
            t0 = time.perf_counter()
            cli(d, "start", f"lease{i}")
            lease_of(d, f"lease{i}")
            leases.append((time.perf_counter() - t0) * 1000)
            cli(d, "destroy", f"lease{i}")
        rows.append({"what": "guest start -> DHCP lease (microvm, TCG, STP bridge)",
                     "ms": round(sorted(leases)[runs // 2], 1)})
        leases_nostp = []
        cli(d, "net-destroy", "bnet")
        (tmp / "n2.xml").write_text(NET_XML.replace("<bridge name='pvbench0'/>", "<bridge name='pvbench0' stp='off'/>"))
        cli(d, "net-define", str(tmp / "n2.xml"))
        cli(d, "net-start", "bnet")
        for i in range(runs):
            log = d.serial_log(f"lease{i}")
            start = log.stat().st_size if log.exists() else 0
            t0 = time.perf_counter()
            cli(d, "start", f"lease{i}")
            lease_of(d, f"lease{i}", start=start)
            leases_nostp.append((time.perf_counter() - t0) * 1000)
            cli(d, "destroy", f"lease{i}")
        rows.append({"what": "guest start -> DHCP lease (microvm, TCG, stp='off')",
                     "ms": round(sorted(leases_nostp)[runs // 2], 1)})
        fast = GuestImage(guest.kernel, iperf_initrd(guest, tmp), guest.cmdline)
        for model in ("virtio", "e1000", "rtl8139"):
            _throughput(d, fast, tmp, model, rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _nic(mac: str, model: str = "virtio") -> str:
    return (f"<interface type='network'><source network='bnet'/><mac address='{mac}'/>"
            f"<model type='{model}'/></interface>")


def _throughput(d: DaemonHandle, guest: GuestImage, tmp: Path, model: str, rows: list[Row]) -> None:
    names = [f"ip{model}{n}" for n in (1, 2)]
    machine = "q35"  # the same machine for every model, so only the NIC differs
    for n, name in enumerate(names):
        mac = f"52:54:00:7e:{len(model):02x}:{n:02x}"
        (tmp / f"{name}.xml").write_text(domain_xml(name, guest, machine=machine, memory_mib=256,
                                                    extra_devices=_nic(mac, model)))
        cli(d, "create", str(tmp / f"{name}.xml"))
    try:
        server_ip = lease_of(d, names[0])
        lease_of(d, names[1])
        d.guest_run(names[0], "iperf3 -s -D >/dev/null 2>&1")
        _, out = d.guest_run(names[1], f"iperf3 -c {server_ip} -t {SECONDS} -J > /tmp/r.json; "
                                       "grep -o '\"bits_per_second\":[[:space:]]*[0-9.e+]*' /tmp/r.json | tail -1",
                             timeout=SECONDS + 40)
        g2g = _bps(out)
        host = subprocess.Popen(["iperf3", "-s", "-1", "-B", "10.127.0.1"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            _, out = d.guest_run(names[1], f"iperf3 -c 10.127.0.1 -t {SECONDS} -J > /tmp/h.json; "
                                           "grep -o '\"bits_per_second\":[[:space:]]*[0-9.e+]*' /tmp/h.json | tail -1",
                                 timeout=SECONDS + 40)
            g2h = _bps(out)
        finally:
            host.kill()
            host.wait()
        rows.append({"what": f"iperf3 guest->guest, {model} (Mbit/s)", "ms": round(g2g / 1e6, 1)})
        rows.append({"what": f"iperf3 guest->host, {model} (Mbit/s)", "ms": round(g2h / 1e6, 1)})
    finally:
        for name in names:
            d.cli("destroy", name)


def _bps(text: str) -> float:
    found = re.findall(r'"bits_per_second":\s*([0-9.e+]+)', text)
    return float(found[-1]) if found else 0.0


def report(rows: list[Row]) -> str:
    return json.dumps(rows, indent=1)
