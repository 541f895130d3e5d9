"""Domain snapshots against real guests and real qcow2 images.

Offline: the guest writes a marker to its raw virtio disk, the domain is shut
off and snapshotted with qemu-img, the guest overwrites the marker, and after
snapshot-revert a fresh boot reads the old marker back. Live: QEMU's
snapshot-save keeps the guest's memory too, so after snapshot-revert the shell
the guest was running goes on from the snapshot's moment (a variable set
before the snapshot and changed after it has its old value again), and both of
its disks hold the old marker (a second disk holds no VM state: a revert of the
first disk alone shows there). Markers are read with O_DIRECT: the guest's page
cache is part of the memory the revert restores, and the check must not rest on
the kernel dropping a block device's cache when its last opener closes. The rest
(metadata after a daemon restart, the tree and re-parenting, refusals) needs
no boot: an offline snapshot is only qemu-img, and a paused QEMU takes live ones.
"""
from __future__ import annotations

import contextlib
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.qemu import img
from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml, fails, ok

pytestmark = pytest.mark.integration

WRITE = "echo {m} | dd of=/dev/{dev} bs=512 count=1 conv=sync 2>/dev/null && sync"
# O_DIRECT: from the disk itself, never from the guest's page cache (which a live revert restores with RAM)
READ = "set -o pipefail; dd if=/dev/{dev} bs=512 count=1 iflag=direct 2>/dev/null | head -c 1; echo"
TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}"


def qcow2(path: Path, size: str = "16M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def disk(path: Path, dev: str = "vda", fmt: str = "qcow2", extra: str = "") -> str:
    return (f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/><source file='{path}'/>"
            f"<target dev='{dev}' bus='virtio'/>{extra}</disk>")


def tags(path: Path) -> list[str]:
    """Internal snapshots in the image, read by qemu-img (-U: a running QEMU may hold it)."""
    return [s.name for s in img.snapshot_list(path, force_share=True)]


@contextlib.contextmanager
def defined(d: DaemonHandle, name: str, xml: str, tmp_path: Path) -> Iterator[str]:
    """A defined domain that is destroyed and undefined (with its snapshot metadata) afterwards."""
    f = tmp_path / f"{name}.xml"
    f.write_text(xml)
    ok(d, "define", str(f))
    try:
        yield name
    finally:
        d.cli("destroy", name)
        for snap in d.cli("snapshot-list", name, "--name").stdout.split():
            d.cli("snapshot-delete", name, snap, "--metadata")
        d.cli("undefine", name)


def boot(d: DaemonHandle, name: str) -> None:
    start = d.serial_log(name).stat().st_size if d.serial_log(name).exists() else 0
    ok(d, "start", name)
    d.wait_serial(name, start=start)


def run(d: DaemonHandle, name: str, command: str) -> str:
    status, out = d.guest_run(name, command)
    assert status == 0, f"`{command}` in {name} failed ({status}): {out}"
    return out


def write(d: DaemonHandle, name: str, m: str, devs: tuple[str, ...] = ("vda",)) -> None:
    run(d, name, " && ".join(WRITE.format(m=m, dev=dev) for dev in devs))


def marker(d: DaemonHandle, name: str, dev: str = "vda") -> str:
    return run(d, name, READ.format(dev=dev)).strip()[-1:]


def test_offline_snapshot_brings_the_disk_back(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    d = daemon
    image = qcow2(tmp_path / "off.qcow2")
    with defined(d, "pvsnap-off", domain_xml("pvsnap-off", guest, extra_devices=disk(image)), tmp_path) as name:
        boot(d, name)
        write(d, name, "A")
        ok(d, "destroy", name)
        # no empty line after it, as virsh
        assert ok(d, "snapshot-create-as", name, "s1", "before B") == "Domain snapshot s1 created\n"
        assert tags(image) == ["s1"]
        listing = ok(d, "snapshot-list", name)
        assert re.fullmatch(rf" Name   Creation Time               State\n-{{45}}\n s1     {TIME}   shutoff\n\n",
                            listing), listing
        boot(d, name)
        write(d, name, "B")
        assert marker(d, name) == "B"
        ok(d, "destroy", name)
        assert ok(d, "snapshot-revert", name, "s1") == "Domain snapshot s1 reverted\n\n"
        assert ok(d, "domstate", name) == "shut off\n\n"
        boot(d, name)
        assert marker(d, name) == "A"

        info = ok(d, "snapshot-info", name, "--current")
        assert info == (f"Name:           s1\nDomain:         {name}\nCurrent:        yes\nState:          shutoff\n"
                        "Location:       internal\nParent:         -\nChildren:       0\nDescendants:    0\n"
                        "Metadata:       yes\n\n")
        xml = ok(d, "snapshot-dumpxml", name, "s1")
        assert "  <description>before B</description>\n  <state>shutoff</state>\n" in xml
        assert "  <memory snapshot='no'/>\n  <disks>\n    <disk name='vda' snapshot='internal'/>\n" in xml
        assert f"\n  <domain type='qemu'>\n    <name>{name}</name>\n" in xml
        ok(d, "destroy", name)
        err = fails(d, "undefine", name)
        assert f"cannot undefine domain '{name}': it has 1 snapshot(s)" in err and "--snapshots-metadata" in err
        assert ok(d, "snapshot-delete", name, "s1") == "Domain snapshot s1 deleted\n\n"
        assert tags(image) == []
        assert ok(d, "snapshot-list", name, "--name") == "\n"


def test_live_snapshot_resumes_the_guest_where_it_was(daemon: DaemonHandle, guest: GuestImage,
                                                      tmp_path: Path) -> None:
    d = daemon
    image = qcow2(tmp_path / "live.qcow2")
    data = qcow2(tmp_path / "live-data.qcow2")  # the VM state goes to the first disk only: both must revert
    disks = disk(image) + disk(data, dev="vdb")
    with defined(d, "pvsnap-live", domain_xml("pvsnap-live", guest, extra_devices=disks), tmp_path) as name:
        boot(d, name)
        run(d, name, "X=before")
        write(d, name, "A", ("vda", "vdb"))
        assert ok(d, "snapshot-create-as", name, "--name", "live1") == "Domain snapshot live1 created\n"
        assert ok(d, "domstate", name) == "running\n\n"
        run(d, name, "X=after")
        write(d, name, "B", ("vda", "vdb"))
        assert run(d, name, "echo X=$X").split()[-1] == "X=after"
        assert (marker(d, name, "vda"), marker(d, name, "vdb")) == ("B", "B")

        assert ok(d, "snapshot-revert", name, "live1") == "Domain snapshot live1 reverted\n\n"
        assert ok(d, "domstate", name) == "running\n\n"
        assert run(d, name, "echo X=$X").split()[-1] == "X=before"
        assert (marker(d, name, "vda"), marker(d, name, "vdb")) == ("A", "A")
        assert ok(d, "snapshot-list", name, "--parent").splitlines()[2].split()[-1] == "running"

        # a paused guest: the snapshot remembers "paused", and reverting keeps it paused unless --running
        ok(d, "suspend", name)
        ok(d, "snapshot-create-as", name, "p1")
        assert "\nState:          paused\n" in ok(d, "snapshot-info", name, "p1")
        assert "\nParent:         live1\n" in ok(d, "snapshot-info", name, "p1")
        ok(d, "resume", name)
        ok(d, "snapshot-revert", name, "p1")
        assert ok(d, "domstate", name) == "paused\n\n"
        ok(d, "snapshot-revert", name, "--current", "--running")
        assert ok(d, "domstate", name) == "running\n\n"
        assert run(d, name, "echo X=$X").split()[-1] == "X=before"
        assert sorted(tags(image)) == sorted(tags(data)) == ["live1", "p1"]

        # deleting live1 hands p1 to live1's parent (none): p1 becomes a root; QEMU drops the image's copy
        assert ok(d, "snapshot-delete", name, "live1") == "Domain snapshot live1 deleted\n\n"
        assert tags(image) == ["p1"]
        assert ok(d, "snapshot-list", name, "--roots", "--name") == "p1\n\n"

        # a shut-off snapshot taken later, reverted to while running: the guest is stopped first
        ok(d, "destroy", name)
        ok(d, "snapshot-create-as", name, "cold")
        ok(d, "start", name, "--paused")
        ok(d, "snapshot-revert", name, "cold")
        assert ok(d, "domstate", name) == "shut off\n\n"
        # and a running snapshot reverted to while shut off: QEMU starts at the snapshot's moment
        ok(d, "snapshot-revert", name, "p1", "--running")
        assert ok(d, "domstate", name) == "running\n\n"
        assert run(d, name, "echo X=$X").split()[-1] == "X=before"


def test_metadata_survives_a_daemon_restart(fresh_daemon: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    d = fresh_daemon
    image = qcow2(tmp_path / "keep.qcow2")
    with defined(d, "pvsnap-keep", domain_xml("pvsnap-keep", guest, extra_devices=disk(image)), tmp_path) as name:
        ok(d, "snapshot-create-as", name, "one", "the first")
        ok(d, "snapshot-create-as", name, "two")
        before = ok(d, "snapshot-list", name, "--parent")
        d.stop(signal.SIGKILL)
        d.start()
        assert ok(d, "snapshot-list", name, "--parent") == before
        assert ok(d, "snapshot-current", name, "--name") == "two\n"
        assert ok(d, "snapshot-parent", name, "two") == "one\n"
        assert "<description>the first</description>" in ok(d, "snapshot-dumpxml", name, "one")
        changed = tmp_path / "changed.xml"
        uuid = ok(d, "domuuid", name).strip()
        changed.write_text(domain_xml(name, guest, memory_mib=96, extra_devices=disk(image), uuid=uuid))
        ok(d, "define", str(changed))
        assert "<memory unit='KiB'>98304</memory>" in ok(d, "dumpxml", name)
        ok(d, "snapshot-revert", name, "one")  # libvirt's revert restores the definition of the time too
        assert "<memory unit='KiB'>131072</memory>" in ok(d, "dumpxml", name)
        ok(d, "snapshot-delete", name, "--current")
        assert ok(d, "snapshot-list", name, "--name") == "two\n\n"
        assert tags(image) == ["two"]


def test_tree_reparenting_and_children(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    d = daemon
    image = qcow2(tmp_path / "tree.qcow2")
    with defined(d, "pvsnap-tree", domain_xml("pvsnap-tree", guest, extra_devices=disk(image)), tmp_path) as name:
        for snap in ("a", "b", "c"):
            ok(d, "snapshot-create-as", name, snap)
        ok(d, "snapshot-revert", name, "a")
        ok(d, "snapshot-create-as", name, "d")
        ok(d, "snapshot-create-as", name, "e")
        assert ok(d, "snapshot-list", name, "--tree") == (
            "a\n  |\n  +- b\n  |   |\n  |   +- c\n  |     \n  +- d\n      |\n      +- e\n        \n\n")
        assert ok(d, "snapshot-info", name, "a").split("\n")[5:8] == [
            "Parent:         -", "Children:       2", "Descendants:    4"]
        assert ok(d, "snapshot-list", name, "--from", "a", "--name") == "b\nd\n\n"
        assert ok(d, "snapshot-list", name, "--leaves", "--name") == "c\ne\n\n"
        assert ok(d, "snapshot-current", name, "--name") == "e\n"
        assert ok(d, "snapshot-current", name, "b") == "Snapshot b set as current\n\n"

        # deleting b (the current one) gives c to a, and makes a current, as libvirt does
        ok(d, "snapshot-delete", name, "b")
        rows = [line.split() for line in ok(d, "snapshot-list", name, "--parent").splitlines()[2:] if line.strip()]
        parents = {r[0]: r[5] if len(r) == 6 else "" for r in rows}
        assert parents == {"a": "", "c": "a", "d": "a", "e": "d"}
        assert ok(d, "snapshot-current", name, "--name") == "a\n"
        assert sorted(tags(image)) == ["a", "c", "d", "e"]

        # --children-only and --children take subtrees; --metadata keeps the image's snapshot
        assert ok(d, "snapshot-delete", name, "d", "--children-only") == "Domain snapshot d children deleted\n\n"
        assert sorted(tags(image)) == ["a", "c", "d"]
        ok(d, "snapshot-delete", name, "c", "--metadata")
        assert sorted(tags(image)) == ["a", "c", "d"]
        assert ok(d, "snapshot-list", name, "--name") == "a\nd\n\n"
        assert ok(d, "snapshot-delete", name, "a", "--children") == "Domain snapshot a deleted\n\n"
        assert ok(d, "snapshot-list", name, "--name") == "\n"
        assert tags(image) == ["c"]
        err = fails(d, "snapshot-create-as", name, "c")
        assert "already holds an internal snapshot named 'c'" in err


def test_refusals_say_what_to_do(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    d = daemon
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\0" * 1024 * 1024)
    xml = domain_xml("pvsnap-raw", guest, extra_devices=disk(raw, fmt="raw"))
    with defined(d, "pvsnap-raw", xml, tmp_path) as name:
        err = fails(d, "snapshot-create-as", name, "x")
        assert "disk vda" in err and "only qcow2 images can hold internal snapshots" in err, err
        assert f"pyvirt img convert -f raw -O qcow2 {raw}" in err
        assert ok(d, "snapshot-list", name, "--name") == "\n"

    with defined(d, "pvsnap-nodisk", domain_xml("pvsnap-nodisk", guest), tmp_path) as name:
        assert "has no writable qcow2 disk" in fails(d, "snapshot-create-as", name)

    image = qcow2(tmp_path / "ro.qcow2")
    extra = disk(image) + disk(raw, dev="vdb", fmt="raw", extra="<readonly/>")
    with defined(d, "pvsnap-ro", domain_xml("pvsnap-ro", guest, extra_devices=extra), tmp_path) as name:
        ok(d, "snapshot-create-as", name, "x")  # the read-only raw disk is left out
        assert "<disk name='vdb' snapshot='no'/>" in ok(d, "snapshot-dumpxml", name, "x")
        assert "already exists" in fails(d, "snapshot-create-as", name, "x")
        assert "a later release" in fails(d, "snapshot-create-as", name, "y", "--disk-only")
        assert "a later release" in fails(d, "snapshot-create-as", name, "y", "--live")
        assert "no domain snapshot with matching name 'nosuch'" in fails(d, "snapshot-revert", name, "nosuch")
        assert "--snapshotname or --current is required" in fails(d, "snapshot-delete", name)
        assert "contains '/'" in fails(d, "snapshot-create-as", name, "a/b")
        spec = tmp_path / "snap.xml"
        spec.write_text("<domainsnapshot><name>fromfile</name><disks><disk name='vdb' snapshot='internal'/>"
                        "</disks></domainsnapshot>")
        assert "is read-only" in fails(d, "snapshot-create", name, str(spec))
        spec.write_text("<domainsnapshot><name>fromfile</name><memory snapshot='no'/></domainsnapshot>")
        assert ok(d, "snapshot-create", name, str(spec)) == f"Domain snapshot fromfile created from '{spec}'\n"
        epoch = re.fullmatch(r"Domain snapshot (\d{10}) created\n", ok(d, "snapshot-create-as", name))
        assert epoch is not None and abs(int(epoch.group(1)) - time.time()) < 60  # libvirt's default name
        assert sorted(tags(image)) == sorted(["fromfile", "x", epoch.group(1)])


def test_transient_domain_takes_its_snapshot_metadata_along(daemon: DaemonHandle, guest: GuestImage,
                                                            tmp_path: Path) -> None:
    d = daemon
    image = qcow2(tmp_path / "tr.qcow2")
    f = tmp_path / "tr.xml"
    f.write_text(domain_xml("pvsnap-tr", guest, extra_devices=disk(image)))
    ok(d, "create", str(f), "--paused")
    try:
        ok(d, "snapshot-create-as", "pvsnap-tr", "t1")  # a paused QEMU: QMP snapshot-save, no boot needed
        assert ok(d, "snapshot-list", "pvsnap-tr", "--name") == "t1\n\n"
        uuid = ok(d, "domuuid", "pvsnap-tr").strip()
        assert snapshot_rows(d, uuid) == 1
        ok(d, "snapshot-delete", "pvsnap-tr", "t1", "--metadata")  # QEMU's image keeps it: no second t1
        assert "already holds an internal snapshot named 't1'" in fails(d, "snapshot-create-as", "pvsnap-tr", "t1")
        ok(d, "snapshot-create-as", "pvsnap-tr", "t2", "--halt")  # --halt: the guest stops once it is taken
        assert "failed to get domain 'pvsnap-tr'" in fails(d, "domstate", "pvsnap-tr")  # transient: gone
    finally:
        d.cli("destroy", "pvsnap-tr")
    assert tags(image) == ["t1", "t2"]  # the image keeps them; only the metadata goes with the domain
    deadline = time.monotonic() + 5
    while snapshot_rows(d, uuid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert snapshot_rows(d, uuid) == 0


def snapshot_rows(d: DaemonHandle, uuid: str) -> int:
    with contextlib.closing(sqlite3.connect(d.root / "var/lib/pyvirt/pyvirt.db")) as db:
        return int(db.execute("SELECT count(*) FROM objects WHERE kind=?", (f"snapshot:{uuid}",)).fetchone()[0])


def test_undefine_with_snapshots_metadata(daemon: DaemonHandle, guest: GuestImage, tmp_path: Path) -> None:
    d = daemon
    image = qcow2(tmp_path / "u.qcow2")
    f = tmp_path / "u.xml"
    f.write_text(domain_xml("pvsnap-undef", guest, extra_devices=disk(image)))
    ok(d, "define", str(f))
    ok(d, "snapshot-create-as", "pvsnap-undef", "u1")
    uuid = ok(d, "domuuid", "pvsnap-undef").strip()
    with d.connect() as conn:
        conn.domain("pvsnap-undef").undefine(snapshots_metadata=True)
    assert snapshot_rows(d, uuid) == 0
    assert tags(image) == ["u1"]
