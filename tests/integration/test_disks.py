"""Disks of real guests: pool volumes and block devices at boot, hot-plug, resize,
media changes, statistics, and the bad input around them.

Two guests are booted once per module and shared: a microvm with a volume of
the default pool (vda) and a loop device (vdb), and a q35 with a raw vda, a
SATA CD-ROM, two spare pcie-root-ports and a virtio-scsi controller. Domains
are named pvdk-*, the loop device is detached and every file removed in
`finally`. The first CD-ROM medium is a raw file (QEMU serves it the same);
the one inserted later is a real ISO 9660 image made with pycdlib, which the
guest mounts.
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guest.build import GuestImage
from tests.integration.conftest import DaemonHandle, domain_xml, fails, ok, qemu_pids_under

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
ROOT_PORTS = ("<controller type='pci' index='0' model='pcie-root'/>"
              "<controller type='pci' index='1' model='pcie-root-port'/>"
              "<controller type='pci' index='2' model='pcie-root-port'/>")


def raw(path: Path, size: int, head: bytes = b"") -> Path:
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


def file_disk(path: Path, dev: str, fmt: str = "raw", extra: str = "") -> str:
    return (f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/><source file='{path}'/>"
            f"<target dev='{dev}' bus='virtio'/>{extra}</disk>")


def make_iso(path: Path, files: dict[str, bytes], label: str = "PVDK") -> Path:
    """An ISO 9660 image holding ``files`` (8.3 names), as a CD-ROM medium."""
    import io

    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident=label)
    for name, data in files.items():
        iso.add_fp(io.BytesIO(data), len(data), f"/{name.upper()};1")
    iso.write(str(path))
    iso.close()
    return path


def wait_guest(d: DaemonHandle, name: str, command: str, want: str, tries: int = 20) -> str:
    """Run ``command`` in the guest until its output holds ``want`` (device changes take a moment)."""
    out = ""
    for _ in range(tries):
        _, out = d.guest_run(name, command)
        if want in out:
            return out
        time.sleep(0.25)
    raise AssertionError(f"guest {name}: `{command}` never printed {want!r}; last output: {out!r}")


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pvdk"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def loop(work: Path) -> Iterator[str]:
    """A 3 MiB loop device (a real block device for <disk type='block'>)."""
    backing = raw(work / "loop.img", 3 * MIB, b"PVDK-LOOP")
    dev = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


@pytest.fixture(scope="module")
def boot_guest(daemon: DaemonHandle, guest: GuestImage, work: Path, loop: str) -> Iterator[str]:
    """microvm 'pvdk-boot': vda a raw volume of the default pool, vdb the loop device."""
    name = "pvdk-boot"
    ok(daemon, "vol-create-as", "default", "pvdk-root.raw", "4M", "--format", "raw")
    disks = ("<disk type='volume' device='disk'><source pool='default' volume='pvdk-root.raw'/>"
             "<target dev='vda' bus='virtio'/></disk>"
             f"<disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='{loop}'/>"
             "<target dev='vdb' bus='virtio'/></disk>")
    (work / "boot.xml").write_text(domain_xml(name, guest, extra_devices=disks))
    try:
        ok(daemon, "create", str(work / "boot.xml"))
        daemon.wait_serial(name)
        yield name
    finally:
        daemon.cli("destroy", name)
        daemon.cli("vol-delete", "pvdk-root.raw", "--pool", "default")


@pytest.fixture(scope="module")
def q35_guest(daemon: DaemonHandle, guest: GuestImage, work: Path) -> Iterator[str]:
    """q35 'pvdk-q35': raw vda, SATA CD-ROM sda, two free pcie-root-ports, a virtio-scsi controller."""
    name = "pvdk-q35"
    raw(work / "q35-root.raw", MIB)
    raw(work / "cd1.iso", 2 * MIB, b"PVDK-MEDIA-1")
    devices = (ROOT_PORTS + "<controller type='scsi' index='0' model='virtio-scsi'/>"
               + file_disk(work / "q35-root.raw", "vda")
               + f"<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='{work}/cd1.iso'/>"
               "<target dev='sda' bus='sata'/><readonly/></disk>")
    (work / "q35.xml").write_text(domain_xml(name, guest, machine="q35", extra_devices=devices))
    try:
        ok(daemon, "create", str(work / "q35.xml"))
        daemon.wait_serial(name)
        yield name
    finally:
        daemon.cli("destroy", name)


# ------------------------------------------------------------------ boot with volume and block disks
def test_guest_boots_with_a_pool_volume_and_a_block_device(daemon: DaemonHandle, boot_guest: str, loop: str) -> None:
    out = wait_guest(daemon, boot_guest, "cat /sys/block/vda/size /sys/block/vdb/size", "6144")
    assert re.search(r"^8192\s*$", out, re.M) and re.search(r"^6144\s*$", out, re.M), out  # 4 MiB, 3 MiB
    xml = ok(daemon, "dumpxml", boot_guest)
    assert "<source pool='default' volume='pvdk-root.raw' index='1'/>" in xml  # the live XML keeps the volume
    assert f"<source dev='{loop}' index='2'/>" in xml
    lines = ok(daemon, "domblklist", boot_guest, "--details").splitlines()
    assert [line.split() for line in lines[:1] + lines[2:4]] == [
        ["Type", "Device", "Target", "Source"], ["volume", "disk", "vda", "pvdk-root.raw"],
        ["block", "disk", "vdb", loop]]
    assert ok(daemon, "domblkinfo", boot_guest, "vda").startswith("Capacity:       4194304\n")
    info = ok(daemon, "domblkinfo", boot_guest, "--all")
    assert re.search(rf"^ vdb\s+{3 * MIB}\s+{3 * MIB}\s+{3 * MIB}$", info, re.M), info


def test_domblkstat_counts_what_the_guest_reads(daemon: DaemonHandle, boot_guest: str) -> None:
    def stats() -> dict[str, int]:
        text = ok(daemon, "domblkstat", boot_guest, "vdb")
        return {m[1]: int(m[2]) for m in re.finditer(r"^vdb (\w+) (\d+)$", text, re.M)}

    before = stats()
    assert list(before)[:4] == ["rd_req", "rd_bytes", "wr_req", "wr_bytes"] and "flush_operations" in before
    status, out = daemon.guest_run(boot_guest, "dd if=/dev/vdb of=/dev/null bs=4096 count=256 iflag=direct")
    assert status == 0, out
    after = stats()
    assert after["rd_req"] > before["rd_req"] and after["rd_bytes"] - before["rd_bytes"] >= 256 * 4096
    total = ok(daemon, "domblkstat", boot_guest)
    assert re.search(r"^ rd_bytes (\d+)$", total, re.M) and int(re.search(r"^ rd_bytes (\d+)$", total, re.M)[1]) \
        >= after["rd_bytes"]  # the sum over the disks
    assert "Device: vdb\n number of read operations:" in ok(daemon, "domblkstat", boot_guest, "vdb", "--human")


def test_a_volume_in_use_cannot_be_deleted(daemon: DaemonHandle, boot_guest: str) -> None:
    err = fails(daemon, "vol-delete", "pvdk-root.raw", "--pool", "default")
    assert "used by domain pvdk-boot" in err, err


def test_a_second_writer_of_an_image_is_refused(daemon: DaemonHandle, guest: GuestImage, boot_guest: str,
                                                work: Path, loop: str) -> None:
    volume_path = ok(daemon, "vol-path", "pvdk-root.raw", "--pool", "default").strip()
    cases = {
        "pvdk-two": f"<disk type='block'><driver name='qemu' type='raw'/><source dev='{loop}'/>"
                    "<target dev='vda' bus='virtio'/><shareable/></disk>",  # shareable on one side only
        "pvdk-three": file_disk(Path(volume_path), "vda"),  # the volume by its path
    }
    for name, disk in cases.items():
        (work / f"{name}.xml").write_text(domain_xml(name, guest, extra_devices=disk))
        ok(daemon, "define", str(work / f"{name}.xml"))
        try:
            err = fails(daemon, "start", name)
            assert "running domain 'pvdk-boot'" in err and "<shareable/>" in err, err
            assert ok(daemon, "domstate", name) == "shut off\n\n"
        finally:
            daemon.cli("undefine", name)
    reader = file_disk(Path(volume_path), "vda", extra="<readonly/>")  # a reader of a written image: refused too
    (work / "pvdk-four.xml").write_text(domain_xml("pvdk-four", guest, extra_devices=reader))
    err = fails(daemon, "create", str(work / "pvdk-four.xml"))
    assert "which running domain 'pvdk-boot' writes to (its disk vda)" in err, err


# ------------------------------------------------------------------ hot-plug on q35
def test_hotplug_resize_and_unplug_a_virtio_disk(daemon: DaemonHandle, q35_guest: str, work: Path) -> None:
    d, name = daemon, q35_guest
    image = work / "hot.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    mark = d.serial_log(name).stat().st_size
    assert ok(d, "attach-disk", name, str(image), "vdb", "--subdriver", "qcow2", "--targetbus", "virtio") \
        == "Disk attached successfully\n\n"
    d.wait_serial(name, f"PYVIRT-GUEST-DISK-ADDED vdb {16 * MIB}", start=mark)
    assert re.search(rf"^ vdb\s+{image}$", ok(d, "domblklist", name), re.M)
    assert "already has a disk with target vdb" in fails(d, "attach-disk", name, str(image), "vdb")

    assert ok(d, "blockresize", name, "vdb", "32M") == "Block device 'vdb' is resized\n\n"
    wait_guest(d, name, "cat /sys/block/vdb/size", str(32 * MIB // 512))
    assert ok(d, "domblkinfo", name, "vdb").startswith(f"Capacity:       {32 * MIB}\n")
    assert "only grows disks" in fails(d, "blockresize", name, "vdb", "16M")

    mark = d.serial_log(name).stat().st_size
    assert ok(d, "detach-disk", name, "vdb") == "Disk detached successfully\n\n"
    d.wait_serial(name, "PYVIRT-GUEST-DISK-REMOVED vdb", start=mark)
    assert " vdb " not in ok(d, "domblklist", name)
    err = fails(d, "detach-disk", name, "vdb")
    assert "No disk found whose source path or target is vdb" in err, err
    # the freed pcie-root-port takes the next disk, by path this time
    mark = d.serial_log(name).stat().st_size
    ok(d, "attach-disk", name, str(image), "vdc", "--subdriver", "qcow2")
    d.wait_serial(name, f"PYVIRT-GUEST-DISK-ADDED vdb {32 * MIB}", start=mark)  # the guest names it vdb again
    ok(d, "detach-disk", name, str(image))
    d.wait_serial(name, "PYVIRT-GUEST-DISK-REMOVED vdb", start=mark)


def test_hotplug_a_scsi_disk_and_refuse_sata(daemon: DaemonHandle, q35_guest: str, work: Path) -> None:
    d, name = daemon, q35_guest
    disk = raw(work / "scsi.raw", 8 * MIB)
    mark = d.serial_log(name).stat().st_size
    ok(d, "attach-disk", name, str(disk), "sdb", "--targetbus", "scsi", "--driver", "qemu", "--subdriver", "raw")
    d.wait_serial(name, f"PYVIRT-GUEST-DISK-ADDED sda {8 * MIB}", start=mark)  # the guest's first SCSI disk
    assert re.search(rf"^ file\s+disk\s+sdb\s+{disk}$", ok(d, "domblklist", name, "--details"), re.M)
    ok(d, "detach-disk", name, "sdb")
    d.wait_serial(name, "PYVIRT-GUEST-DISK-REMOVED sda", start=mark)
    err = fails(d, "attach-disk", name, str(disk), "sdc", "--targetbus", "sata")
    assert "SATA disks cannot be hot-plugged" in err, err
    assert "does not exist" in fails(d, "attach-disk", name, str(work / "missing.raw"), "vdd")
    assert " vdd " not in ok(d, "domblklist", name)


def test_change_media_of_a_sata_cdrom(daemon: DaemonHandle, q35_guest: str, work: Path) -> None:
    d, name = daemon, q35_guest
    wait_guest(d, name, "head -c 12 /dev/sr0", "PVDK-MEDIA-1")
    assert ok(d, "change-media", name, "sda", "--eject") == "Successfully ejected media.\n\n"
    assert re.search(r"^ sda\s+-$", ok(d, "domblklist", name), re.M)
    assert "doesn't have media" in fails(d, "change-media", name, "sda", "--eject")
    status, _ = d.guest_run(name, "head -c 12 /dev/sr0")
    assert status != 0  # no medium
    second = make_iso(work / "cd2.iso", {"media2.txt": b"PVDK-MEDIA-2\n"})
    assert ok(d, "change-media", name, "sda", str(second), "--insert") == "Successfully inserted media.\n\n"
    # the first read after a change may fail; then the guest mounts the ISO and reads its file
    wait_guest(d, name, "mkdir -p /tmp/cd && mount -t iso9660 -o ro /dev/sr0 /tmp/cd && cat /tmp/cd/media2.txt;"
                        " umount /tmp/cd", "PVDK-MEDIA-2")
    assert f"<source file='{second}'" in ok(d, "dumpxml", name)
    assert "already has media" in fails(d, "change-media", name, "sda", str(second), "--insert")
    assert ok(d, "change-media", name, "sda", str(work / "cd1.iso"), "--update") == "Successfully updated media.\n\n"
    wait_guest(d, name, "head -c 12 /dev/sr0", "PVDK-MEDIA-1")
    assert "not removable" in fails(d, "change-media", name, "vda", "--eject")


# ------------------------------------------------------------------ definitions and bad input
def test_config_changes_of_a_defined_domain(daemon: DaemonHandle, guest: GuestImage, work: Path) -> None:
    d, name = daemon, "pvdk-def"
    (work / "def.xml").write_text(domain_xml(name, guest))
    ok(d, "define", str(work / "def.xml"))
    try:
        image = raw(work / "def.raw", MIB)
        assert ok(d, "attach-disk", name, str(image), "vdb", "--mode", "readonly") == "Disk attached successfully\n\n"
        (work / "vol.xml").write_text("<disk type='volume'><source pool='default' volume='pvdk-none.qcow2'/>"
                                      "<target dev='vdc' bus='virtio'/></disk>")
        assert ok(d, "attach-device", name, str(work / "vol.xml")) == "Device attached successfully\n\n"
        (work / "nic.xml").write_text("<interface type='user'><mac address='52:54:00:d1:5c:01'/></interface>")
        ok(d, "attach-device", name, str(work / "nic.xml"))
        xml = ok(d, "dumpxml", name, "--inactive")
        assert f"<source file='{image}'/>" in xml and "<readonly/>" in xml
        assert ok(d, "domblkinfo", name, "vdb").startswith(f"Capacity:       {MIB}\n")  # from the file itself
        assert "is not running" in fails(d, "domblkstat", name, "vdb")
        assert "<source pool='default' volume='pvdk-none.qcow2'/>" in xml and "52:54:00:d1:5c:01" in xml
        # the missing volume stops the start, naming it
        err = fails(d, "start", name)
        assert "disk vdc" in err and "pvdk-none.qcow2" in err, err
        assert ok(d, "detach-device", name, str(work / "vol.xml")) == "Device detached successfully\n\n"
        ok(d, "detach-device", name, str(work / "nic.xml"))
        assert ok(d, "detach-disk", name, "vdb") == "Disk detached successfully\n\n"
        xml = ok(d, "dumpxml", name, "--inactive")
        assert "<disk" not in xml and "<interface" not in xml
        assert "No disk found" in fails(d, "detach-disk", name, "vdb")
    finally:
        d.cli("undefine", name)


def test_a_missing_disk_path_stops_the_start(daemon: DaemonHandle, guest: GuestImage, work: Path) -> None:
    qemus = qemu_pids_under(daemon.root)  # the module's shared guest may run
    missing = work / "nope" / "gone.raw"
    (work / "miss.xml").write_text(domain_xml("pvdk-miss", guest, extra_devices=file_disk(missing, "vda")))
    err = fails(daemon, "create", str(work / "miss.xml"))
    assert str(missing) in err and "does not exist" in err, err
    assert qemu_pids_under(daemon.root) == qemus  # no QEMU started for it, or none left
    blockless = ("<disk type='block'><driver name='qemu' type='raw'/>"
                 f"<source dev='{raw(work / 'notblock.raw', MIB)}'/><target dev='vda' bus='virtio'/></disk>")
    (work / "nb.xml").write_text(domain_xml("pvdk-nb", guest, extra_devices=blockless))
    assert "is not a block device" in fails(daemon, "create", str(work / "nb.xml"))
    assert qemu_pids_under(daemon.root) == qemus
    assert "pvdk-miss" not in ok(daemon, "list", "--all") and "pvdk-nb" not in ok(daemon, "list", "--all")


def test_a_volume_disk_after_a_daemon_restart(fresh_daemon: DaemonHandle, guest: GuestImage, work: Path) -> None:
    """The live XML holds no volume path: a restarted daemon finds it again in the pool."""
    d, name = fresh_daemon, "pvdk-rs"
    ok(d, "vol-create-as", "default", "pvdk-rs.raw", "2M", "--format", "raw")
    disk = ("<disk type='volume'><driver name='qemu' type='raw'/><source pool='default' volume='pvdk-rs.raw'/>"
            "<target dev='vda' bus='virtio'/></disk>")
    (work / "rs.xml").write_text(domain_xml(name, guest, extra_devices=disk))
    ok(d, "create", str(work / "rs.xml"))
    d.wait_serial(name)
    d.stop(signal.SIGKILL)
    d.start()
    assert "used by domain pvdk-rs" in fails(d, "vol-delete", "pvdk-rs.raw", "--pool", "default")
    assert ok(d, "blockresize", name, "vda", "4096") == "Block device 'vda' is resized\n\n"  # KiB
    wait_guest(d, name, "cat /sys/block/vda/size", "8192")
    assert ok(d, "domblkinfo", name, "vda").startswith("Capacity:       4194304\n")
    assert re.search(r"^vda rd_req [1-9]", ok(d, "domblkstat", name, "vda"), re.M)
    ok(d, "destroy", name)
    ok(d, "vol-delete", "pvdk-rs.raw", "--pool", "default")
