"""The XML corpus (virt-install's files and libvirt's dumpxml of them) in a real daemon: every file
defines, its dumpxml defines again to the same, and it starts paused under TCG (then is destroyed), or it is
on the reviewed refusal list with the exact error (tests/data/virt-install/refusals.toml;
tests/xml_corpus.py). One daemon for the whole corpus.

Also domxml-to-native on the corpus, and import-libvirt of a libvirt directory made from the corpus.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.guest.build import GuestImage
from tests.xml_corpus import (
    CORPUS,
    Refusal,
    corpus_files,
    key,
    known_reason,
    load_refusals,
    pointed,
    write_refusals,
)

from .conftest import DaemonHandle, fails, ok, qemu_pids_under

pytestmark = pytest.mark.integration

SCRATCH = "SCRATCH"  # the scratch directory in refusal texts
REGEN = os.environ.get("PYVIRT_REGEN") == "1"  # rewrite the start refusals (the unit test does define's)


def make_scratch(xml: str, scratch: Path) -> None:
    """The images a corpus file's disks name (<source file=...>), made small, and the directories its shares
    name (<source dir=...>); logs, sockets and NVRAM are the daemon's to make."""
    text = pointed(xml, scratch)
    found = re.findall(r"""<source (file|dir)=["'](/tmp/[^"']+)["']""", text)
    found += [("nvdimm", p) for p in re.findall(r"<path>(/tmp/[^<]+)</path>", text)]  # <memory model='nvdimm'>
    for attr, path in found:
        target = Path(path)
        if target.exists() or not path.startswith(str(scratch)):
            continue
        if attr == "dir":
            target.mkdir()
        elif attr == "nvdimm":
            subprocess.run(["truncate", "-s", "512M", path], check=True)
        elif target.suffix == ".qcow2":
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, "64M"], check=True)
        else:
            subprocess.run(["truncate", "-s", "1M", path], check=True)


def try_file(d: DaemonHandle, path: Path, scratch: Path, guest: GuestImage) -> tuple[str, str]:
    """(stage reached: define | start | ok, error text with the scratch dir as SCRATCH)."""
    xml = path.read_text()
    make_scratch(xml, scratch)
    text = pointed(xml, scratch, str(guest.kernel), str(guest.initrd))
    src = scratch / "in.xml"
    src.write_text(text)
    name = re.search(r"<name>(.*?)</name>", text).group(1)  # type: ignore[union-attr]
    r = d.cli("define", str(src))
    if r.returncode:
        return "define", r.stderr.removeprefix("error: ").strip().replace(str(scratch), SCRATCH)
    try:
        first = ok(d, "dumpxml", name)
        again = scratch / "dump.xml"
        again.write_text(first)
        ok(d, "define", str(again))
        assert ok(d, "dumpxml", name) == first, f"{name}: dumpxml of the redefined domain differs"
        r = d.cli("start", "--paused", name)
        if r.returncode:
            return "start", r.stderr.removeprefix("error: ").strip().replace(str(scratch), SCRATCH)
        assert ok(d, "domstate", name).strip() == "paused"
        ok(d, "destroy", name)
        return "ok", ""
    finally:
        d.cli("destroy", name)
        d.cli("undefine", name)


def test_corpus_defines_and_starts(daemon: DaemonHandle, guest: GuestImage,
                                   record_property: pytest.RecordProperty) -> None:
    refusals = load_refusals()
    files = corpus_files()
    reached: dict[str, str] = {}
    wrong: list[str] = []
    seen: dict[str, Refusal] = {}
    for path in files:
        scratch = Path(tempfile.mkdtemp(prefix="pvc"))  # the run's short TMPDIR: socket paths stay short
        try:
            stage, error = try_file(daemon, path, scratch, guest)
        finally:
            subprocess.run(["rm", "-rf", str(scratch)], check=True)
        reached[key(path)] = stage
        refusal = refusals.get(key(path))
        if stage == "start":
            kept = refusal if refusal is not None and refusal.error == error else None
            seen[key(path)] = kept or Refusal(key(path), "start", error, *known_reason(error))
        if stage == "ok":
            if refusal is not None:
                wrong.append(f"{key(path)}: starts now, but is on the refusal list ({refusal.stage}); drop it")
        elif refusal is None or refusal.stage != stage:
            wrong.append(f"{key(path)}: refused at {stage} and not listed so: {error}")
        elif refusal.error != error:
            wrong.append(f"{key(path)}: {stage} error changed:\n  now:    {error}\n  listed: {refusal.error}")
    assert not qemu_pids_under(daemon.root)
    if REGEN:
        write_refusals({**{n: r for n, r in refusals.items() if r.stage == "define"}, **seen})
        wrong = [w for w in wrong if " refused at define " in w]  # define's are the unit test's to rewrite
    defined = sum(1 for s in reached.values() if s != "define")
    started = sum(1 for s in reached.values() if s == "ok")
    record_property("define_percent", round(100 * defined / len(files), 1))
    record_property("start_percent", round(100 * started / len(files), 1))
    print(f"\nXML corpus in pyvirtd: {defined}/{len(files)} define ({100 * defined / len(files):.1f}%), "
          f"{started}/{len(files)} start paused ({100 * started / len(files):.1f}%)")
    assert not wrong, "\n".join(wrong)


def test_domxml_to_native(daemon: DaemonHandle, tmp_path: Path) -> None:
    """virsh's command and layout; the argv is the golden one's when the host's machine aliases match."""
    name = next(p.stem for p in corpus_files() if p.parent == CORPUS and key(p) not in load_refusals())
    out = ok(daemon, "domxml-to-native", "qemu-argv", str(CORPUS / f"{name}.xml"))
    lines = out.split("\n")
    assert lines[0].endswith("qemu-system-x86_64 \\"), lines[0]
    assert lines[-2:] == ["", ""] and not lines[-3].endswith("\\")  # the last option, then virsh's empty line
    assert all(line.endswith(" \\") for line in lines[:-3]), out
    assert f"-name guest={name},debug-threads=on \\" in lines
    assert re.search(r"^-add-fd fd=100,set=1,opaque=rw:/tmp/pyvirt-corpus/\S+ \\$", out, re.M), out
    assert ok(daemon, "domxml-to-native", "qemu-argv", str(CORPUS / f"{name}.xml")) == out  # stable
    assert name not in ok(daemon, "list", "--all")  # nothing defined
    assert "unsupported format 'xen-xm'" in fails(daemon, "domxml-to-native", "xen-xm", str(CORPUS / f"{name}.xml"))
    refused = next(r for r in load_refusals().values() if r.stage == "define")
    err = fails(daemon, "domxml-to-native", "qemu-argv", str(CORPUS.parent / f"{refused.name}.xml"))
    assert refused.error in err


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


NETWORK = """<!--
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:
  virsh net-edit {name}
-->

<network>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <forward mode='nat'/>
  <bridge name='pvimp{n}' stp='on' delay='0'/>
  <mac address='52:54:00:ae:3b:{n:02x}'/>
  <ip address='192.168.{n}.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.{n}.2' end='192.168.{n}.254'/>
    </dhcp>
  </ip>
</network>
"""
POOL = """<!--
WARNING: THIS IS AN AUTO-GENERATED FILE.
-->

<pool type='dir'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <capacity unit='bytes'>0</capacity>
  <allocation unit='bytes'>0</allocation>
  <available unit='bytes'>0</available>
  <source>
  </source>
  <target>
    <path>{path}</path>
    <permissions>
      <mode>0711</mode>
      <owner>0</owner>
      <group>0</group>
    </permissions>
  </target>
</pool>
"""


def libvirt_dir(root: Path, names: list[str], pool_dir: Path) -> Path:
    """/etc/libvirt as libvirt keeps it: the corpus files as domains (with libvirt's warning comment), one
    autostart link per kind, an isolated network and a dir pool."""
    etc = root / "libvirt"
    for sub in ("qemu/autostart", "qemu/networks/autostart", "storage/autostart"):
        (etc / sub).mkdir(parents=True)
    for name in names:
        text = (CORPUS / f"{name}.xml").read_text()
        (etc / f"qemu/{name}.xml").write_text(
            f"<!--\nWARNING: THIS IS AN AUTO-GENERATED FILE.\n  virsh edit {name}\n-->\n{text}")
    (etc / f"qemu/autostart/{names[0]}.xml").symlink_to(etc / f"qemu/{names[0]}.xml")
    (etc / "qemu/networks/pvimpnet.xml").write_text(
        NETWORK.format(name="pvimpnet", uuid="4c0a2a0e-1b43-4f43-9a4e-0d1e7f3d8a11", n=213))
    (etc / "qemu/networks/autostart/pvimpnet.xml").symlink_to(etc / "qemu/networks/pvimpnet.xml")
    (etc / "storage/pvimppool.xml").write_text(
        POOL.format(name="pvimppool", uuid="0e7c1c8e-29b5-4e8f-8a55-5b8f1c6a7d21", path=pool_dir))
    (etc / "storage/autostart/pvimppool.xml").symlink_to(etc / "storage/pvimppool.xml")
    return etc


def test_import_libvirt(daemon: DaemonHandle, tmp_path: Path) -> None:
    refusals = load_refusals()
    good = [p.stem for p in corpus_files() if p.parent == CORPUS and key(p) not in refusals]
    bad = sorted(n.split("/")[1] for n, r in refusals.items() if r.stage == "define" and n.startswith("virt-"))[:3]
    pool_dir = tmp_path / "pool"
    pool_dir.mkdir()
    etc = libvirt_dir(tmp_path, good + bad, pool_dir)
    before = digest(etc)

    dry = daemon.cli("import-libvirt", "--dir", str(etc), "--dry-run")
    assert dry.returncode == 1  # some are refused
    for name in good:
        assert re.search(rf"^ domain +{re.escape(name)} +would import ", dry.stdout, re.M), dry.stdout
    for name in bad:
        assert re.search(rf"^ domain +{re.escape(name)} +refused ", dry.stdout, re.M), dry.stdout
        assert refusals[f"virt-install/{name}"].error in dry.stdout
    assert good[0] not in ok(daemon, "list", "--all") and "pvimpnet" not in ok(daemon, "net-list", "--all")

    try:
        r = daemon.cli("import-libvirt", "--dir", str(etc))
        assert r.returncode == 1, r.stderr
        assert re.search(r"^ network +pvimpnet +imported +yes", r.stdout, re.M), r.stdout
        assert re.search(r"^ pool +pvimppool +imported +yes", r.stdout, re.M), r.stdout
        assert re.search(rf"^ domain +{re.escape(good[0])} +imported +yes", r.stdout, re.M), r.stdout
        for name in good:
            xml = (CORPUS / f"{name}.xml").read_text()
            uuid = re.search(r"<uuid>(.*?)</uuid>", xml).group(1)  # type: ignore[union-attr]
            assert ok(daemon, "domuuid", name).strip() == uuid
            dumped = ok(daemon, "dumpxml", name)
            for mac in re.findall(r'<mac address="([0-9a-f:]+)"/>', xml):
                assert mac in dumped
        assert "enable" in ok(daemon, "dominfo", good[0]).split("Autostart:")[1].split("\n")[0]
        assert ok(daemon, "net-uuid", "pvimpnet").strip() == "4c0a2a0e-1b43-4f43-9a4e-0d1e7f3d8a11"
        assert "52:54:00:ae:3b:d5" in ok(daemon, "net-dumpxml", "pvimpnet")
        assert re.search(r"^Autostart: +yes", ok(daemon, "pool-info", "pvimppool"), re.M)
        for name in bad:
            assert name not in ok(daemon, "list", "--all", "--name")
        assert digest(etc) == before  # libvirt's files untouched
        again = daemon.cli("import-libvirt", "--dir", str(etc))
        assert f"pyvirt already has a domain named '{good[0]}'" in again.stdout
        assert "no libvirt configuration directory" in fails(daemon, "import-libvirt", "--dir", str(tmp_path / "no"))
    finally:
        for name in good:
            daemon.cli("undefine", name)
        daemon.cli("net-undefine", "pvimpnet")
        daemon.cli("pool-undefine", "pvimppool")
