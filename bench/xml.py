"""XML benchmarks (issue 10): `define` and `dumpxml` of the largest corpus file that defines (the
many-devices kind, tests/data/virt-install) against the small test XML, the codec alone in-process, and
`import-libvirt` of 200 domains from a libvirt directory made from the corpus (and its --dry-run).
"""
from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml
from tests.xml_corpus import CORPUS, corpus_files, key, load_refusals

Row = dict[str, object]
BIN = Path(__file__).resolve().parents[1] / ".venv/bin"
IMPORTED = 200


def _ms(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def _cli(d: DaemonHandle, *args: str) -> str:
    r = subprocess.run([str(BIN / "pyvirt"), "-c", d.uri, *args], capture_output=True, text=True, check=False)
    if r.returncode not in (0,):
        raise RuntimeError(f"pyvirt {' '.join(args)}: {r.stderr}")
    return r.stdout


def largest_defining() -> Path:
    refused = load_refusals()
    return max((p for p in corpus_files() if p.parent == CORPUS and key(p) not in refused),
               key=lambda p: p.stat().st_size)


def _renamed(xml: str, name: str) -> str:
    """The corpus file as another domain: its own name, uuid and MACs."""
    xml = re.sub(r"<name>.*?</name>", f"<name>{name}</name>", xml, count=1)
    xml = re.sub(r"<uuid>.*?</uuid>", f"<uuid>{uuid.uuid4()}</uuid>", xml, count=1)
    return re.sub(r'<mac address="[^"]+"/>', "", xml)  # the daemon picks free ones


def bench_xml(d: DaemonHandle, guest: GuestImage, rows: list[Row], runs: int) -> None:
    from pyvirt.model.domain_xml import format_domain_xml, parse_domain_xml

    tmp = Path(tempfile.mkdtemp(prefix="pvbx"))
    try:
        big = largest_defining()
        small = tmp / "small.xml"
        small.write_text(domain_xml("bxsmall", guest))
        cases = {f"largest corpus file ({big.stem}, {big.stat().st_size} B)": (big, big.stem),
                 f"small test XML ({small.stat().st_size} B)": (small, "bxsmall")}
        for what, (path, name) in cases.items():
            def define_undefine(path: Path = path, name: str = name) -> None:
                _cli(d, "define", str(path))
                _cli(d, "undefine", name)

            rows.append({"what": f"pyvirt define + undefine, {what}", "ms": _ms(define_undefine, runs)})
            _cli(d, "define", str(path))
            rows.append({"what": f"pyvirt dumpxml, {what}", "ms": _ms(lambda name=name: _cli(d, "dumpxml", name),
                                                                       runs)})
            _cli(d, "undefine", name)
            text = path.read_text()
            rows.append({"what": f"  codec only: parse + format, {what}",
                         "ms": _ms(lambda text=text: format_domain_xml(parse_domain_xml(text)), 50)})
        etc = tmp / "libvirt"
        (etc / "qemu/autostart").mkdir(parents=True)
        text = big.read_text()
        for i in range(IMPORTED):
            (etc / f"qemu/bximp{i:03d}.xml").write_text(_renamed(text, f"bximp{i:03d}"))
        t0 = time.perf_counter()
        _cli(d, "import-libvirt", "--dir", str(etc), "--dry-run")
        rows.append({"what": f"pyvirt import-libvirt --dry-run, {IMPORTED} domains",
                     "ms": round((time.perf_counter() - t0) * 1000, 1)})
        t0 = time.perf_counter()
        out = _cli(d, "import-libvirt", "--dir", str(etc))
        rows.append({"what": f"pyvirt import-libvirt, {IMPORTED} domains",
                     "ms": round((time.perf_counter() - t0) * 1000, 1)})
        assert out.count(" imported ") == IMPORTED, out
        conn = d.connect()
        try:
            for i in range(IMPORTED):
                conn.domain(f"bximp{i:03d}").undefine()
        finally:
            conn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
