"""Storage pools and volumes end to end: the real CLI, a real pyvirtd, real files, qemu-img, LVM on loops.

Pools live under the daemon's root (names pvts-*), volume groups are named
pvts* and loop devices are detached in `finally`, so parallel runs and failed
tests leave nothing behind.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.errors import OperationBusy
from pyvirt.storage.infocache import RACY_NS
from pyvirt.storage.logical import dm_available

from .conftest import DaemonHandle, fails, ok

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


# ---------------------------------------------------------------- helpers
def pool_names(d: DaemonHandle) -> list[str]:
    return ok(d, "pool-list", "--all", "--name").split()


def pools_json(d: DaemonHandle) -> dict[str, dict]:
    return {p["name"]: p for p in json.loads(ok(d, "--json", "pool-list", "--all"))}


def vols_json(d: DaemonHandle, pool: str) -> dict[str, dict]:
    return {v["name"]: v for v in json.loads(ok(d, "--json", "vol-list", pool))}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def img_info(path: Path) -> dict:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def dir_pool(d: DaemonHandle, name: str) -> Path:
    """Define, build and start a dir pool under the daemon root; returns its directory."""
    target = d.root / f"pvts-{name}"
    ok(d, "pool-define-as", name, "dir", "--target", str(target))
    ok(d, "pool-build", name)
    ok(d, "pool-start", name)
    return target


def remove_pool(d: DaemonHandle, name: str) -> None:
    """Best-effort teardown of a test pool: delete its volumes, stop, delete, undefine."""
    if name not in pool_names(d):
        return
    if pools_json(d)[name]["active"]:
        for vol in vols_json(d, name):
            d.cli("vol-delete", vol, "--pool", name)
        d.cli("pool-destroy", name)
    d.cli("pool-delete", name)
    d.cli("pool-undefine", name)


@pytest.fixture()
def pool_names_to_remove(daemon: DaemonHandle) -> Iterator[list[str]]:
    names: list[str] = []
    try:
        yield names
    finally:
        for name in names:
            remove_pool(daemon, name)


# ---------------------------------------------------------------- default pool
def test_default_pool_exists_active_under_the_daemon_root(daemon: DaemonHandle) -> None:
    images = daemon.root / "var/lib/pyvirt/images"
    info = ok(daemon, "pool-info", "default")
    assert "State:          running\n" in info and "Autostart:      yes\n" in info
    assert "Persistent:     yes\n" in info and "Capacity:" in info
    assert f"<path>{images}</path>" in ok(daemon, "pool-dumpxml", "default")
    assert images.is_dir() and oct(images.stat().st_mode & 0o777) == "0o711"
    first = ok(daemon, "pool-list").splitlines()
    assert first[0].split() == ["Name", "State", "Autostart"]
    assert ["default", "active", "yes"] in [line.split() for line in first[2:]]


# ---------------------------------------------------------------- dir pool
def test_dir_pool_and_volume_lifecycle(daemon: DaemonHandle, tmp_path: Path,
                                       pool_names_to_remove: list[str]) -> None:
    d, name = daemon, "pvts-life"
    pool_names_to_remove.append(name)
    target = d.root / "pvts-life"
    assert ok(d, "pool-define-as", name, "dir", "--target", str(target)) == f"Pool {name} defined\n\n"
    assert pools_json(d)[name]["state"] == "inactive" and not target.exists()
    assert ok(d, "pool-build", name) == f"Pool {name} built\n\n"
    assert target.is_dir() and (target.stat().st_mode & 0o777) == 0o711
    assert ok(d, "pool-start", name) == f"Pool {name} started\n\n"
    assert ok(d, "pool-autostart", name) == f"Pool {name} marked as autostarted\n\n"
    assert ok(d, "pool-autostart", name, "--disable") == f"Pool {name} unmarked as autostarted\n\n"
    assert ok(d, "pool-refresh", name) == f"Pool {name} refreshed\n\n"

    # volumes: raw and qcow2, as qemu-img sees them
    assert ok(d, "vol-create-as", name, "raw.img", "8M") == "Vol raw.img created\n\n"
    assert ok(d, "vol-create-as", name, "disk.qcow2", "16M", "--format", "qcow2") == "Vol disk.qcow2 created\n\n"
    assert img_info(target / "raw.img")["format"] == "raw"
    assert img_info(target / "disk.qcow2")["format"] == "qcow2"
    assert img_info(target / "disk.qcow2")["virtual-size"] == 16 * MIB
    rows = [line.split() for line in ok(d, "vol-list", "--details", name).splitlines()]
    assert rows[0] == ["Name", "Path", "Type", "Capacity", "Allocation"]
    assert rows[2][:5] == ["disk.qcow2", str(target / "disk.qcow2"), "file", "16.00", "MiB"]
    assert rows[3][:5] == ["raw.img", str(target / "raw.img"), "file", "8.00", "MiB"]
    assert ok(d, "vol-info", "raw.img", "--pool", name).startswith(
        "Name:           raw.img\nType:           file\nCapacity:       8.00 MiB\nAllocation:     ")
    assert "Capacity:       8388608 bytes\n" in ok(d, "vol-info", "--bytes", str(target / "raw.img"))

    # lookups by name, key and path
    path = str(target / "raw.img")
    assert ok(d, "vol-path", "raw.img", "--pool", name) == f"{path}\n\n"
    assert ok(d, "vol-key", "raw.img", "--pool", name) == f"{path}\n\n"
    assert ok(d, "vol-name", path) == "raw.img\n\n"
    assert ok(d, "vol-pool", path) == f"{name}\n\n"
    assert ok(d, "vol-pool", "--uuid", path) == f"{pools_json(d)[name]['uuid']}\n\n"
    assert "give its pool (--pool)" in fails(d, "vol-path", "raw.img")

    # upload + download round trip, with an offset
    data = os.urandom(MIB + 3)
    src = tmp_path / "data.bin"
    src.write_bytes(data)
    assert ok(d, "vol-upload", "raw.img", str(src), "--pool", name, "--offset", "4096") == "\n"
    part = tmp_path / "part.bin"
    ok(d, "vol-download", "raw.img", str(part), "--pool", name, "--offset", "4096", "--length", str(len(data)))
    assert part.read_bytes() == data
    whole = tmp_path / "whole.bin"
    ok(d, "vol-download", path, str(whole))
    body = whole.read_bytes()
    assert len(body) == 8 * MIB and body[:4096] == bytes(4096) and body[4096:4096 + len(data)] == data

    # full clone: same bytes; linked clone: a qcow2 overlay, the base never written
    assert ok(d, "vol-clone", "raw.img", "full.img", "--pool", name) == "Vol full.img cloned from raw.img\n\n"
    assert digest(target / "full.img") == digest(target / "raw.img")
    base_before = digest(target / "disk.qcow2")
    assert ok(d, "vol-clone", "disk.qcow2", "linked.qcow2", "--pool", name, "--linked") == \
        "Vol linked.qcow2 cloned from disk.qcow2\n\n"
    info = img_info(target / "linked.qcow2")
    assert info["format"] == "qcow2" and info["virtual-size"] == 16 * MIB
    assert info["full-backing-filename"] == str(target / "disk.qcow2")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 1M", str(target / "linked.qcow2")],
                   check=True, capture_output=True)
    assert digest(target / "disk.qcow2") == base_before
    read = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-c", "read -P 0xab 0 1M",
                           str(target / "linked.qcow2")], capture_output=True, text=True)
    assert read.returncode == 0 and "Pattern verification failed" not in read.stdout, read.stdout
    dump = ok(d, "vol-dumpxml", "linked.qcow2", "--pool", name)
    assert f"<backingStore>\n    <path>{target / 'disk.qcow2'}</path>\n    <format type='qcow2'/>" in dump
    ok(d, "vol-clone", "raw.img", "over-raw.qcow2", "--pool", name, "--linked")
    assert img_info(target / "over-raw.qcow2")["backing-filename-format"] == "raw"
    assert ok(d, "vol-create-as", name, "snap.qcow2", "16M", "--backing-vol", "disk.qcow2",
              "--backing-vol-format", "qcow2") == "Vol snap.qcow2 created\n\n"
    assert img_info(target / "snap.qcow2")["full-backing-filename"] == str(target / "disk.qcow2")
    assert digest(target / "disk.qcow2") == base_before

    # resize: grow; shrink refused without --shrink; shrink by a negative delta
    assert ok(d, "vol-resize", "raw.img", "16M", "--pool", name) == \
        "Size of volume 'raw.img' successfully changed to 16M\n\n"
    assert "--shrink" in fails(d, "vol-resize", "raw.img", "8M", "--pool", name)
    assert "negative size requires --shrink" in fails(d, "vol-resize", "raw.img", "-8M", "--pool", name)
    assert img_info(target / "raw.img")["virtual-size"] == 16 * MIB
    assert ok(d, "vol-resize", "raw.img", "-8M", "--pool", name, "--shrink") == \
        "Size of volume 'raw.img' successfully changed by 8M\n\n"
    assert ok(d, "vol-resize", "raw.img", "1M", "--delta", "--pool", name) == \
        "Size of volume 'raw.img' successfully changed by 1M\n\n"
    assert img_info(target / "raw.img")["virtual-size"] == 9 * MIB

    # wipe: zeros, same size
    assert ok(d, "vol-wipe", "raw.img", "--pool", name) == "Vol raw.img wiped\n\n"
    ok(d, "vol-download", "raw.img", str(whole), "--pool", name)
    assert whole.read_bytes() == bytes(9 * MIB)

    # delete everything, then the pool
    for vol in ("snap.qcow2", "over-raw.qcow2", "linked.qcow2", "full.img", "raw.img", "disk.qcow2"):
        assert ok(d, "vol-delete", vol, "--pool", name) == f"Vol {vol} deleted\n\n"
    assert os.listdir(target) == []
    assert ok(d, "pool-destroy", name) == f"Pool {name} destroyed\n\n"
    assert "is not active" in fails(d, "vol-list", name)
    assert ok(d, "pool-delete", name) == f"Pool {name} deleted\n\n"
    assert not target.exists()
    assert ok(d, "pool-undefine", name) == f"Pool {name} has been undefined\n\n"
    assert name not in pool_names(d)


def test_volume_info_follows_every_change_of_a_kept_answer(daemon: DaemonHandle,
                                                          pool_names_to_remove: list[str]) -> None:
    """vol-info / vol-list reuse qemu-img's answer for an unchanged file (storage/infocache.py) once it has
    settled: a resize through pyvirt, one behind its back and a replaced file all show at once."""
    d, name = daemon, "pvts-kept"
    pool_names_to_remove.append(name)
    target = dir_pool(d, name)
    ok(d, "vol-create-as", name, "k.qcow2", "16M", "--format", "qcow2")
    time.sleep(RACY_NS / 1e9 + 0.3)  # past the racy window: from here qemu-img's answers are kept
    assert "Capacity:       16.00 MiB\n" in ok(d, "vol-info", "k.qcow2", "--pool", name)
    assert "Capacity:       16.00 MiB\n" in ok(d, "vol-info", "k.qcow2", "--pool", name)
    ok(d, "vol-resize", "k.qcow2", "32M", "--pool", name)
    assert "Capacity:       32.00 MiB\n" in ok(d, "vol-info", "k.qcow2", "--pool", name)
    subprocess.run(["qemu-img", "resize", "-q", str(target / "k.qcow2"), "48M"], check=True)
    assert "Capacity:       48.00 MiB\n" in ok(d, "vol-info", "k.qcow2", "--pool", name)
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(target / "new.raw"), "8M"], check=True)
    os.replace(target / "new.raw", target / "k.qcow2")
    # the record says qcow2 and pyvirt never guesses: the replaced file is read as qcow2 afresh (no kept
    # 48 MiB answer), which fails, until its owner records what it is now
    gone = d.cli("vol-info", "k.qcow2", "--pool", name)
    assert gone.returncode != 0 and "48.00 MiB" not in gone.stdout, gone
    ok(d, "vol-set-format", "k.qcow2", "raw", "--pool", name)
    assert vols_json(d, name)["k.qcow2"]["format"] == "raw"
    assert vols_json(d, name)["k.qcow2"]["capacity"] == 8 * MIB


def test_vol_create_from_another_pool_and_pool_edit(daemon: DaemonHandle, tmp_path: Path,
                                                     pool_names_to_remove: list[str]) -> None:
    d = daemon
    pool_names_to_remove += ["pvts-src", "pvts-dst"]
    src_dir, dst_dir = dir_pool(d, "pvts-src"), dir_pool(d, "pvts-dst")
    ok(d, "vol-create-as", "pvts-src", "base.img", "4M")
    data = os.urandom(4 * MIB)
    (tmp_path / "d").write_bytes(data)
    ok(d, "vol-upload", "base.img", str(tmp_path / "d"), "--pool", "pvts-src")
    xml = tmp_path / "vol.xml"
    xml.write_text("<volume><name>copy.qcow2</name><target><format type='qcow2'/></target></volume>")
    assert ok(d, "vol-create-from", "pvts-dst", str(xml), "base.img", "--inputpool", "pvts-src") == \
        "Vol copy.qcow2 created from input vol base.img\n\n"
    assert img_info(dst_dir / "copy.qcow2")["format"] == "qcow2"
    converted = tmp_path / "copy.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(dst_dir / "copy.qcow2"), str(converted)], check=True)
    assert converted.read_bytes() == data
    assert "not in pool 'pvts-dst'" in fails(d, "vol-info", str(src_dir / "base.img"), "--pool", "pvts-dst")

    vol_xml = tmp_path / "new.xml"
    vol_xml.write_text("<volume><name>fromxml.img</name><capacity unit='M'>2</capacity></volume>")
    assert ok(d, "vol-create", "pvts-dst", str(vol_xml)) == f"Vol fromxml.img created from {vol_xml}\n\n"
    assert (dst_dir / "fromxml.img").stat().st_size == 2 * MIB

    # pool-edit through $EDITOR: the definition changes, the running pool keeps its own
    script = tmp_path / "ed.sh"
    script.write_text("#!/bin/sh\nsed -i 's#</target>#<permissions><mode>0750</mode></permissions></target>#' \"$1\"\n")
    script.chmod(0o755)
    r = edit(d, "pvts-dst", script)
    assert r.returncode == 0 and r.stdout == "Pool pvts-dst XML configuration edited.\n\n", r.stderr
    assert "<mode>0750</mode>" in ok(d, "pool-dumpxml", "--inactive", "pvts-dst")


def edit(d: DaemonHandle, pool: str, editor: Path) -> subprocess.CompletedProcess[str]:
    from .conftest import PYVIRT

    return subprocess.run([PYVIRT, "-c", d.uri, "pool-edit", pool], capture_output=True, text=True,
                          env={**os.environ, "EDITOR": str(editor)}, timeout=60, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(("name", "why"), [("a/b", "contains '/'"), ("..", "it is '..'")])
def test_bad_pool_names(daemon: DaemonHandle, name: str, why: str) -> None:
    before = pool_names(daemon)
    target = daemon.root / "pvts-badname"
    err = fails(daemon, "pool-define-as", name, "dir", "--target", str(target))
    assert why in err and "pool name" in err
    assert pool_names(daemon) == before and not target.exists()


def test_bad_input_is_refused_and_leaves_nothing(daemon: DaemonHandle, pool_names_to_remove: list[str]) -> None:
    d = daemon
    pool_names_to_remove.append("pvts-bad")
    target = dir_pool(d, "pvts-bad")
    before = pool_names(d)

    # a target path used by another pool (also written differently) is refused, naming that pool
    for path in (str(target), str(target) + "/", str(target).replace("/pvts-bad", "//pvts-bad")):
        err = fails(d, "pool-define-as", "pvts-other", "dir", "--target", path)
        assert "already used by pool 'pvts-bad'" in err, err
    err = fails(d, "pool-define-as", "pvts-other", "dir", "--target", str(d.root / "var/lib/pyvirt/images"))
    assert "already used by pool 'default'" in err
    assert "relative" in fails(d, "pool-define-as", "pvts-other", "dir", "--target", "rel/dir")
    assert "not supported" in fails(d, "pool-define-as", "pvts-other", "zfs", "--target", "/x")
    # a transient pool whose directory does not exist: refused, and not left defined
    assert "pool-build" in fails(d, "pool-create-as", "pvts-other", "dir", "--target", str(d.root / "pvts-nodir"))
    assert pool_names(d) == before and not (d.root / "pvts-nodir").exists()

    # volumes: names, sizes, formats, space
    for vol, why in (("x/y", "contains '/'"), ("..", "it is '..'"), (".", "it is '.'")):
        assert why in fails(d, "vol-create-as", "pvts-bad", vol, "1M")
    assert "Malformed size 1Q" in fails(d, "vol-create-as", "pvts-bad", "v.img", "1Q")
    assert "Malformed allocation 1.2.3" in fails(d, "vol-create-as", "pvts-bad", "v.img", "1M", "--allocation", "1.2.3")
    assert "vmdk" in fails(d, "vol-create-as", "pvts-bad", "v.img", "1M", "--format", "vmdk")
    assert "failed to get vol 'nosuch.qcow2'" in fails(d, "vol-create-as", "pvts-bad", "v.img", "1M",
                                                       "--backing-vol", "nosuch.qcow2")
    xml = d.root / "pvts-backing.xml"
    xml.write_text("<volume><name>o.qcow2</name><capacity>1048576</capacity>"
                   "<backingStore><path>/etc/passwd</path></backingStore></volume>")
    assert "is not a volume of any active pool" in fails(d, "vol-create", "pvts-bad", str(xml))
    assert "out of space in pool 'pvts-bad'" in fails(d, "vol-create-as", "pvts-bad", "huge.img", "1E",
                                                       "--allocation", "1E")
    assert os.listdir(target) == []

    # state errors
    ok(d, "vol-create-as", "pvts-bad", "v.img", "2M")
    assert "already exists" in fails(d, "vol-create-as", "pvts-bad", "v.img", "1M")
    assert "--shrink" in fails(d, "vol-resize", "v.img", "1M", "--pool", "pvts-bad")
    assert img_info(target / "v.img")["virtual-size"] == 2 * MIB
    assert "unknown wipe algorithm 'bogus'" in fails(d, "vol-wipe", "v.img", "--pool", "pvts-bad", "--algorithm",
                                                     "bogus")
    assert "already active" in fails(d, "pool-start", "pvts-bad")
    assert "still active" in fails(d, "pool-undefine", "pvts-bad")
    assert "still active" in fails(d, "pool-delete", "pvts-bad")
    assert "failed to get pool 'pvts-nosuch'" in fails(d, "pool-info", "pvts-nosuch")
    assert "Invalid pool type 'foo'" in fails(d, "pool-list", "--type", "foo")
    assert sorted(os.listdir(target)) == ["v.img"]
    ok(d, "pool-destroy", "pvts-bad")
    assert "holds 1 entries (v.img)" in fails(d, "pool-delete", "pvts-bad")
    assert target.is_dir() and pool_names(d) == before


def test_deleting_a_volume_a_domain_uses_is_refused(daemon: DaemonHandle, tmp_path: Path,
                                                    pool_names_to_remove: list[str]) -> None:
    d = daemon
    pool_names_to_remove.append("pvts-used")
    target = dir_pool(d, "pvts-used")
    ok(d, "vol-create-as", "pvts-used", "disk.img", "1M")
    xml = tmp_path / "dom.xml"
    xml.write_text(f"""<domain type='qemu'>
  <name>pvts-user</name>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{target / "disk.img"}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
""")
    ok(d, "define", str(xml))
    try:
        for ref in (["disk.img", "--pool", "pvts-used"], [str(target / "disk.img")]):
            err = fails(d, "vol-delete", *ref)
            assert "is used by domain pvts-user" in err, err
        assert (target / "disk.img").exists()
    finally:
        d.cli("undefine", "pvts-user")
    assert ok(d, "vol-delete", "disk.img", "--pool", "pvts-used") == "Vol disk.img deleted\n\n"
    assert not (target / "disk.img").exists()


# ---------------------------------------------------------------- Python client, streaming, jobs
class SlowReader:
    """Gives one 4 MiB chunk, then waits until released: an upload held open part way.

    The chunk is far larger than a unix socket's buffer, so the client's send of it returns only
    once the daemon is reading the body, that is once it has registered the upload job."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.reads = 0
        self.sent_first = threading.Event()
        self.release = threading.Event()

    def read(self, n: int) -> bytes:
        self.reads += 1
        if self.reads > 1:
            self.sent_first.set()
            assert self.release.wait(30)
        n = min(n, self.left)
        self.left -= n
        return b"\x5a" * n


def test_client_stream_progress_and_busy_volume(daemon: DaemonHandle, pool_names_to_remove: list[str]) -> None:
    d = daemon
    pool_names_to_remove.append("pvts-cli")
    target = dir_pool(d, "pvts-cli")
    ok(d, "vol-create-as", "pvts-cli", "s.img", "6M")
    data = os.urandom(5 * MIB + 17)
    seen: list[tuple[int, int]] = []
    with d.connect() as conn:
        vol = conn.pool("pvts-cli").volume("s.img")
        sent = vol.upload(io.BytesIO(data), len(data), offset=11, progress=lambda a, b: seen.append((a, b)))
        assert sent == len(data)
        assert seen[-1] == (len(data), len(data)) and len(seen) >= 2
        sink = io.BytesIO()
        assert vol.download(sink, offset=11, length=len(data)) == len(data)
        assert sink.getvalue() == data
        assert conn.volume_by_path(str(target / "s.img")).name == "s.img"
        assert conn.volume_by_key(str(target / "s.img")).pool == "pvts-cli"

        # an upload in progress: the volume and the pool refuse other jobs until it ends
        slow = SlowReader(5 * MIB)
        result: dict[str, object] = {}

        def upload() -> None:
            with d.connect() as c2:
                result["n"] = c2.pool("pvts-cli").volume("s.img").upload(slow, 5 * MIB)  # type: ignore[arg-type]

        t = threading.Thread(target=upload)
        t.start()
        try:
            assert slow.sent_first.wait(10)
            with pytest.raises(OperationBusy, match="busy"):
                vol.delete()
            with pytest.raises(OperationBusy, match=r"upload of 's\.img'"):
                conn.pool("pvts-cli").destroy()
        finally:
            slow.release.set()
            t.join(30)
        assert result["n"] == 5 * MIB
    assert (target / "s.img").read_bytes()[:5 * MIB] == b"\x5a" * 5 * MIB


# ---------------------------------------------------------------- restart
def test_pools_survive_a_daemon_restart(fresh_daemon: DaemonHandle) -> None:
    d = fresh_daemon
    keep = dir_pool(d, "pvts-keep")
    gone = dir_pool(d, "pvts-gone")
    ok(d, "pool-define-as", "pvts-auto", "dir", "--target", str(d.root / "pvts-auto"))
    ok(d, "pool-build", "pvts-auto")
    ok(d, "pool-autostart", "pvts-auto")
    ok(d, "pool-create-as", "pvts-trans", "dir", "--target", str(d.root / "pvts-trans"), "--build")
    ok(d, "vol-create-as", "pvts-keep", "v.img", "1M")
    d.stop(signal.SIGTERM)
    shutil.rmtree(gone)  # the host lost this pool while no daemon watched
    (d.root / "run/pyvirt/pool-autostarted").unlink()  # as after a host boot
    d.start()
    pools = pools_json(d)
    assert pools["pvts-keep"]["state"] == "running" and pools["pvts-trans"]["state"] == "running"
    assert not pools["pvts-trans"]["persistent"]
    assert pools["pvts-gone"]["state"] == "inactive"
    assert pools["pvts-auto"]["state"] == "running" and pools["pvts-auto"]["autostart"]
    assert pools["default"]["state"] == "running"
    assert list(vols_json(d, "pvts-keep")) == ["v.img"] and keep.is_dir()
    ok(d, "pool-destroy", "pvts-trans")
    assert "pvts-trans" not in pool_names(d)
    # a pool that vanishes under a running daemon: refresh says so and marks it inactive
    ok(d, "vol-delete", "v.img", "--pool", "pvts-keep")
    shutil.rmtree(keep)
    assert "no longer there" in fails(d, "pool-refresh", "pvts-keep")
    assert pools_json(d)["pvts-keep"]["state"] == "inactive"
    assert ok(d, "pool-start", "pvts-keep", "--build") == "Pool pvts-keep started\n\n" and keep.is_dir()


def test_default_pool_can_be_turned_off(caps_cache: Path) -> None:
    from .conftest import make_daemon

    handle = make_daemon(caps_cache)
    try:
        handle.stop()
        (handle.root / "etc/pyvirt/pyvirt.toml").write_text("default_network = false\ndefault_pool = false\n")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                (handle.root / f"var/lib/pyvirt/pyvirt.db{suffix}").unlink()
        handle.start()
        assert pool_names(handle) == []
    finally:
        handle.cleanup()


# ---------------------------------------------------------------- logical pools on loop devices
@pytest.fixture()
def two_loops(tmp_path: Path) -> Iterator[list[str]]:
    loops: list[str] = []
    try:
        for i in range(2):
            backing = tmp_path / f"pv{i}.img"
            with open(backing, "wb") as f:
                f.truncate(64 * MIB)
            out = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True, text=True, check=True)
            loops.append(out.stdout.strip())
        yield loops
    finally:
        for loop in loops:
            subprocess.run(["losetup", "-d", loop], capture_output=True)


def lvm(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}
    if not dm_available():
        args = (args[0], "--config", "global { activation = 0 }", *args[1:])
    return subprocess.run(list(args), capture_output=True, text=True, env=env)


def remove_vg(vg: str, loops: list[str]) -> None:
    lvm("vgremove", "-f", "--yes", vg)
    for loop in loops:
        lvm("pvremove", "--yes", loop)


def define_logical(d: DaemonHandle, name: str, vg: str, loops: list[str]) -> None:
    out = ok(d, "pool-define-as", name, "logical", "--source-dev", loops[0], "--source-dev", loops[1],
             "--source-name", vg)
    assert out == f"Pool {name} defined\n\n"
    xml = ok(d, "pool-dumpxml", name)
    assert f"<device path='{loops[0]}'/>\n    <device path='{loops[1]}'/>" in xml
    assert f"<path>/dev/{vg}</path>" in xml


@pytest.mark.skipif(not dm_available(), reason="this kernel has no device-mapper: LVM cannot activate a VG, so "
                    "a logical pool cannot start (test_logical_pool_without_device_mapper covers that case)")
def test_logical_pool_on_two_loop_devices(daemon: DaemonHandle, two_loops: list[str]) -> None:
    d, name, vg = daemon, "pvts-lvm", f"pvts{uuidlib.uuid4().hex[:8]}"
    try:
        define_logical(d, name, vg, two_loops)
        assert ok(d, "pool-build", name) == f"Pool {name} built\n\n"
        assert ok(d, "pool-start", name) == f"Pool {name} started\n\n"
        info = ok(d, "pool-info", "--bytes", name)
        assert "State:          running" in info
        assert ok(d, "vol-create-as", name, "lv1", "8M") == "Vol lv1 created\n\n"
        vols = vols_json(d, name)
        assert vols["lv1"]["type"] == "block" and vols["lv1"]["capacity"] == 8 * MIB
        assert vols["lv1"]["path"] == f"/dev/{vg}/lv1"
        assert lvm("lvs", f"{vg}/lv1").returncode == 0
        assert "qcow2" in fails(d, "vol-create-as", name, "lv2", "8M", "--format", "qcow2")
        assert ok(d, "vol-delete", "lv1", "--pool", name) == "Vol lv1 deleted\n\n"
        assert lvm("lvs", f"{vg}/lv1").returncode != 0
        assert ok(d, "pool-destroy", name) == f"Pool {name} destroyed\n\n"
        assert ok(d, "pool-delete", name) == f"Pool {name} deleted\n\n"
        assert lvm("vgs", vg).returncode != 0
        assert ok(d, "pool-undefine", name) == f"Pool {name} has been undefined\n\n"
    finally:
        d.cli("pool-destroy", name)
        d.cli("pool-undefine", name)
        remove_vg(vg, two_loops)


@pytest.mark.skipif(dm_available(), reason="the kernel has device-mapper: test_logical_pool_on_two_loop_devices "
                    "runs the whole flow instead")
def test_logical_pool_without_device_mapper(daemon: DaemonHandle, two_loops: list[str]) -> None:
    """Here LVM metadata works but nothing can be activated: start is refused, saying why; build and
    delete still make and remove the VG and the PV labels."""
    d, name, vg = daemon, "pvts-lvm", f"pvts{uuidlib.uuid4().hex[:8]}"
    try:
        define_logical(d, name, vg, two_loops)
        assert ok(d, "pool-build", name) == f"Pool {name} built\n\n"
        vgs = lvm("vgs", "--noheadings", "-o", "pv_count", vg)
        assert vgs.returncode == 0 and vgs.stdout.strip() == "2", vgs.stderr
        err = fails(d, "pool-start", name)
        assert "device-mapper" in err and name in err
        assert pools_json(d)[name]["state"] == "inactive"
        assert "is not active" in fails(d, "vol-create-as", name, "lv1", "8M")
        assert "already exists" in fails(d, "pool-build", name)
        assert ok(d, "pool-delete", name) == f"Pool {name} deleted\n\n"
        assert lvm("vgs", vg).returncode != 0
        assert all(lvm("pvs", loop).returncode != 0 for loop in two_loops)
        assert ok(d, "pool-undefine", name) == f"Pool {name} has been undefined\n\n"
        assert name not in pool_names(d)
    finally:
        d.cli("pool-undefine", name)
        remove_vg(vg, two_loops)
