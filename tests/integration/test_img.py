"""pyvirt.qemu.img and `pyvirt img` against the real qemu-img, in tmp_path."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvirt.errors import InvalidArgument, NotFound, QemuError
from pyvirt.qemu import img

pytestmark = pytest.mark.integration

G = 1024**3
M = 1024**2
PYVIRT = str(Path(sys.executable).parent / "pyvirt")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_create_qcow2_and_info_fields(tmp_path):
    disk = tmp_path / "d.qcow2"
    img.create(disk, "qcow2", G, options={"cluster_size": "128k"})
    i = img.info(disk, "qcow2")
    assert i.filename == str(disk)
    assert i.format == "qcow2"
    assert i.virtual_size == G
    assert i.actual_size is not None and 0 < i.actual_size < M
    assert i.cluster_size == 128 * 1024
    assert i.backing_filename is None and i.snapshots == [] and i.dirty_flag is False
    assert img.check(disk, "qcow2")["check-errors"] == 0


def test_backing_file_shows_the_chain(tmp_path):
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    img.create(base, "qcow2", 64 * M)
    img.create(top, "qcow2", None, backing=str(base), backing_fmt="qcow2")
    i = img.info(top, "qcow2", backing_chain=True)
    assert i.backing_filename == str(base) and i.backing_format == "qcow2"
    assert i.virtual_size == 64 * M
    assert [c.filename for c in i.chain] == [str(base)]
    assert i.chain[0].backing_filename is None
    assert img.info(top, "qcow2").chain == []


def test_create_backing_without_format_refused(tmp_path):
    base = tmp_path / "base.qcow2"
    img.create(base, "qcow2", M)
    with pytest.raises(InvalidArgument, match="backing"):
        img.create(tmp_path / "t.qcow2", "qcow2", None, backing=str(base))
    assert not (tmp_path / "t.qcow2").exists()


def test_qemu_error_carries_stderr_and_names_file(tmp_path):
    disk = tmp_path / "d.img"
    with pytest.raises(QemuError) as exc:
        img.create(disk, "qcow2", M, options={"no_such_option": "1"})
    assert str(disk) in exc.value.message
    assert exc.value.detail and "no_such_option" in exc.value.detail
    with pytest.raises(NotFound):
        img.info(tmp_path / "missing.qcow2", "qcow2")


def test_resize_grow(tmp_path):
    disk = tmp_path / "d.qcow2"
    img.create(disk, "qcow2", G)
    assert img.resize(disk, "+1G", fmt="qcow2") == 2 * G
    assert img.info(disk, "qcow2").virtual_size == 2 * G


def test_shrink_refused_without_flag_then_allowed(tmp_path):
    disk = tmp_path / "d.raw"
    img.create(disk, "raw", 2 * M)
    disk.write_bytes(b"\xab" * (2 * M))
    before = digest(disk)
    with pytest.raises(InvalidArgument, match="--shrink"):
        img.resize(disk, "-1M", fmt="raw")
    assert digest(disk) == before and disk.stat().st_size == 2 * M
    assert img.resize(disk, "-1M", fmt="raw", shrink=True) == M
    assert img.info(disk, "raw").virtual_size == M
    assert disk.read_bytes() == b"\xab" * M


def test_convert_qcow2_to_raw_with_progress(tmp_path):
    src, dst = tmp_path / "s.qcow2", tmp_path / "d.raw"
    img.create(src, "qcow2", 8 * M)
    seen: list[float] = []
    img.convert(src, dst, src_fmt="qcow2", dst_fmt="raw", progress_cb=seen.append)
    assert seen and seen[-1] == 100.0
    assert seen == sorted(seen)
    i = img.info(dst, "raw")
    assert (i.format, i.virtual_size) == ("raw", 8 * M)


def test_convert_onto_itself_refused(tmp_path):
    src = tmp_path / "s.qcow2"
    img.create(src, "qcow2", M)
    before = digest(src)
    with pytest.raises(InvalidArgument, match="onto itself"):
        img.convert(src, tmp_path / "." / "s.qcow2", src_fmt="qcow2", dst_fmt="raw")
    assert digest(src) == before and img.info(src, "qcow2").format == "qcow2"


@pytest.fixture
def full_dir(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: qemu-img creates its output there, then runs out of space writing it."""
    path = tmp_path / "full"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pvtest", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_failed_convert_leaves_no_destination(tmp_path, full_dir):
    src, dst = tmp_path / "s.qcow2", tmp_path / "d.raw"
    img.create(src, "qcow2", M)
    with pytest.raises(QemuError) as exc:
        img.convert(src, dst, src_fmt="qcow2", dst_fmt="raw", options={"no_such_option": "1"})
    assert exc.value.detail
    assert not dst.exists()
    # a failure after qemu-img made the file: the cleanup removes what it wrote
    raw, dst = tmp_path / "s.raw", full_dir / "d.raw"
    raw.write_bytes(os.urandom(4 * M))  # random: nothing qemu-img may skip as zeroes
    seen: list[bool] = []
    with pytest.raises(QemuError) as exc:
        img.convert(raw, dst, src_fmt="raw", dst_fmt="raw", progress_cb=lambda _: seen.append(dst.exists()))
    assert "No space left on device" in (exc.value.detail or ""), exc.value.detail
    assert True in seen  # the destination existed while qemu-img ran
    assert not dst.exists()


class Stop(Exception):
    pass


def test_interrupted_convert_removes_written_destination(tmp_path):
    src, dst = tmp_path / "s.qcow2", tmp_path / "d.raw"
    img.create(src, "qcow2", 8 * M)
    existed: list[bool] = []

    def stop_at_end(percent: float) -> None:
        if percent >= 100:
            existed.append(dst.exists())  # qemu-img has written it by now
            raise Stop

    with pytest.raises(Stop):
        img.convert(src, dst, src_fmt="qcow2", dst_fmt="raw", progress_cb=stop_at_end)
    assert existed == [True]
    assert not dst.exists()


def test_failed_convert_keeps_untouched_existing_destination(tmp_path):
    dst = tmp_path / "keep.raw"
    dst.write_bytes(b"precious")
    with pytest.raises(NotFound):
        img.convert(tmp_path / "missing.qcow2", dst, src_fmt="qcow2", dst_fmt="raw")
    assert dst.read_bytes() == b"precious"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYVIRT, *args], capture_output=True, text=True, timeout=120)


def test_cli_img_info_json_and_text(tmp_path):
    disk = tmp_path / "d.qcow2"
    r = run_cli("img", "create", "-f", "qcow2", "-o", "cluster_size=64k", str(disk), "1G")
    assert r.returncode == 0, r.stderr
    r = run_cli("img", "info", "-f", "qcow2", "--json", str(disk))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["format"] == "qcow2" and data["virtual_size"] == G and data["cluster_size"] == 65536
    text = run_cli("img", "info", "-f", "qcow2", str(disk)).stdout
    assert f"image: {disk}" in text and "file format: qcow2" in text
    assert "virtual size: 1 GiB (1073741824 bytes)" in text and "disk size: " in text


def test_cli_resize_shrink_and_convert_progress(tmp_path):
    disk, out = tmp_path / "d.qcow2", tmp_path / "o.raw"
    assert run_cli("img", "create", "-f", "qcow2", str(disk), "2G").returncode == 0
    r = run_cli("img", "resize", "-f", "qcow2", str(disk), "-1G")
    assert r.returncode == 1 and "--shrink" in r.stderr
    assert img.info(disk, "qcow2").virtual_size == 2 * G
    assert run_cli("img", "resize", "-f", "qcow2", "--shrink", str(disk), "-1G").returncode == 0
    assert img.info(disk, "qcow2").virtual_size == G
    r = run_cli("img", "convert", "-p", "-f", "qcow2", "-O", "raw", str(disk), str(out))
    assert r.returncode == 0, r.stderr
    assert "100.00%" in r.stderr and img.info(out, "raw").format == "raw"


def run_img(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYVIRT, "img", *args], capture_output=True, text=True, cwd=cwd)


def write_at(path: Path, offset: int, data: bytes, fmt: str = "qcow2") -> None:
    subprocess.run(["qemu-io", "-f", fmt, "-c", f"write -P {data[0]} {offset} {len(data)}", str(path)],
                   check=True, capture_output=True)


def test_internal_snapshots_create_list_apply_delete(tmp_path):
    disk = tmp_path / "s.qcow2"
    img.create(disk, "qcow2", 16 * M)
    write_at(disk, 0, b"\x41" * 65536)
    assert run_img("snapshot", "-c", "before", "s.qcow2", cwd=tmp_path).returncode == 0
    write_at(disk, 0, b"\x42" * 65536)
    listing = run_img("snapshot", "-l", "s.qcow2", cwd=tmp_path).stdout
    assert "before" in listing and listing.startswith("Snapshot list:")
    again = run_img("snapshot", "-c", "before", "s.qcow2", cwd=tmp_path)
    assert again.returncode == 1 and "already has a snapshot named 'before'" in again.stderr
    raw = tmp_path / "at-before.raw"
    assert run_img("convert", "-f", "qcow2", "-O", "raw", "-s", "before", "s.qcow2", "at-before.raw",
                   cwd=tmp_path).returncode == 0
    assert raw.read_bytes()[:4] == b"AAAA"  # extracted the snapshot, not the current data
    assert run_img("snapshot", "-a", "before", "s.qcow2", cwd=tmp_path).returncode == 0
    current = tmp_path / "now.raw"
    img.convert(disk, current, src_fmt="qcow2", dst_fmt="raw")
    assert current.read_bytes()[:4] == b"AAAA"
    assert run_img("snapshot", "-d", "before", "s.qcow2", cwd=tmp_path).returncode == 0
    missing = run_img("snapshot", "-a", "before", "s.qcow2", cwd=tmp_path)
    assert missing.returncode == 1 and "has no snapshot 'before'" in missing.stderr


def test_snapshot_of_a_raw_image_is_refused_with_the_reason(tmp_path):
    img.create(tmp_path / "r.raw", "raw", M)
    r = run_img("snapshot", "-c", "x", "r.raw", cwd=tmp_path)
    assert r.returncode == 1 and "only qcow2 images hold internal snapshots" in r.stderr
    assert "is not a qcow2 image" in r.stderr


def test_commit_and_rebase(tmp_path):
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    img.create(base, "qcow2", 16 * M)
    img.create(top, "qcow2", None, backing=str(base), backing_fmt="qcow2")
    write_at(top, 0, b"\x43" * 65536)
    assert run_img("commit", "top.qcow2", cwd=tmp_path).returncode == 0
    out = tmp_path / "base.raw"
    img.convert(base, out, src_fmt="qcow2", dst_fmt="raw")
    assert out.read_bytes()[:2] == b"CC"  # the overlay's write reached the base
    assert run_img("rebase", "-b", "", "top.qcow2", cwd=tmp_path).returncode == 0  # safe: copies data in
    assert img.info(top, "qcow2").backing_filename is None
    base.unlink()
    img.convert(top, tmp_path / "top.raw", src_fmt="qcow2", dst_fmt="raw")
    assert (tmp_path / "top.raw").read_bytes()[:2] == b"CC"
    no_backing = run_img("commit", "top.qcow2", cwd=tmp_path)
    assert no_backing.returncode == 1 and "has no backing file" in no_backing.stderr


def test_map_and_measure(tmp_path):
    disk = tmp_path / "m.qcow2"
    img.create(disk, "qcow2", 16 * M)
    write_at(disk, M, b"\x44" * 65536)
    extents = img.map_image(disk, fmt="qcow2")
    data = [e for e in extents if e["data"]]
    assert data and data[0]["start"] == M and data[0]["length"] == 65536
    measured = img.measure(size_bytes=G, out_fmt="qcow2")
    assert measured["fully-allocated"] > G > measured["required"] > 0
    text = run_img("measure", "-f", "qcow2", "-O", "raw", "m.qcow2", cwd=tmp_path).stdout
    assert f"required size: {16 * M}" in text


def test_no_verb_guesses_a_format_unless_asked(tmp_path):
    """A raw image whose first bytes are a qcow2 header (what a guest can write) is read as raw when -f raw is
    given; without -f every reading verb is refused; info --probe shows qemu-img's guess because it was asked."""
    secret, disguised = tmp_path / "secret.raw", tmp_path / "disguised.img"
    secret.write_bytes(b"HOST-SECRET" * 100)
    img.create(disguised, "qcow2", M, backing=str(secret), backing_fmt="raw")
    for args in (("info", "disguised.img"), ("check", "disguised.img"), ("resize", "disguised.img", "2M"),
                 ("convert", "-O", "raw", "disguised.img", "out.raw"), ("map", "disguised.img"),
                 ("measure", "-O", "raw", "disguised.img")):
        r = run_img(*args, cwd=tmp_path)
        assert r.returncode == 1 and "-f raw or -f qcow2" in r.stderr and "never guesses" in r.stderr, (args, r)
    assert not (tmp_path / "out.raw").exists()
    with pytest.raises(InvalidArgument, match="without its format"):
        img.info(disguised)
    assert img.info(disguised, "raw").format == "raw"
    assert run_img("convert", "-f", "raw", "-O", "raw", "disguised.img", "out.raw", cwd=tmp_path).returncode == 0
    assert b"HOST-SECRET" not in (tmp_path / "out.raw").read_bytes()  # the header's bytes, not the backing file
    guessed = json.loads(run_img("info", "--probe", "--json", "disguised.img", cwd=tmp_path).stdout)
    assert guessed["format"] == "qcow2" and guessed["backing_filename"] == str(secret)
    both = run_img("info", "--probe", "-f", "raw", "disguised.img", cwd=tmp_path)
    assert both.returncode == 1 and "not both" in both.stderr


def test_json_pseudo_filenames_are_refused(tmp_path):
    spec = 'json:{"driver":"file","filename":"/etc/hostname"}'
    r = run_img("info", "-f", "raw", spec, cwd=tmp_path)
    assert r.returncode == 1 and "json: pseudo-filename" in r.stderr
    r = run_img("create", "-f", "qcow2", "-b", spec, "-F", "raw", "t.qcow2", "1M", cwd=tmp_path)
    assert r.returncode == 1 and "json: pseudo-filename" in r.stderr and not (tmp_path / "t.qcow2").exists()
    img.create(tmp_path / "x.raw", "raw", M)
    with pytest.raises(InvalidArgument, match="json: pseudo-filename"):
        img.convert(tmp_path / "x.raw", spec, src_fmt="raw", dst_fmt="raw")


def test_a_relative_name_with_a_colon_is_a_file_not_a_protocol(tmp_path):
    assert run_img("create", "-f", "raw", "nbd:x.raw", "1M", cwd=tmp_path).returncode == 0
    assert (tmp_path / "nbd:x.raw").stat().st_size == M
    assert json.loads(run_img("info", "-f", "raw", "--json", "nbd:x.raw", cwd=tmp_path).stdout)["virtual_size"] == M


def test_rebase_needs_the_new_backing_format(tmp_path):
    base, top = tmp_path / "base.raw", tmp_path / "top.qcow2"
    img.create(base, "raw", M)
    img.create(top, "qcow2", M)
    r = run_img("rebase", "-u", "-b", "base.raw", "top.qcow2", cwd=tmp_path)
    assert r.returncode == 1 and "-F raw or" in r.stderr
    assert img.info(top, "qcow2").backing_filename is None
    assert run_img("rebase", "-u", "-b", "base.raw", "-F", "raw", "top.qcow2", cwd=tmp_path).returncode == 0
    assert img.info(top, "qcow2").backing_format == "raw"
