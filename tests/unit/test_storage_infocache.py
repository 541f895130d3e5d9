"""storage/infocache.py: a qemu-img info answer is reused only while its file is provably unchanged."""
from __future__ import annotations

import os
from pathlib import Path

from pyvirt.qemu.img import ImageInfo
from pyvirt.storage.infocache import ImageInfoCache


class Reader:
    """Stands in for `qemu-img info`: counts the reads, answers the file's current size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reads = 0

    def __call__(self) -> ImageInfo:
        self.reads += 1
        return ImageInfo(str(self.path), "raw", self.path.stat().st_size, None)


def settled_cache() -> ImageInfoCache:
    return ImageInfoCache(racy_ns=-10**12)  # every file counts as settled: the reuse rules alone are tested


def test_an_unchanged_file_is_read_once(tmp_path):
    f = tmp_path / "a.raw"
    f.write_bytes(b"x" * 512)
    cache, read = settled_cache(), Reader(f)
    first = cache.get(str(f), "raw", read)
    assert cache.get(str(f), "raw", read) is first and read.reads == 1


def test_a_write_a_new_mtime_or_a_replaced_file_is_read_again(tmp_path):
    f = tmp_path / "a.raw"
    f.write_bytes(b"x" * 512)
    cache, read = settled_cache(), Reader(f)
    cache.get(str(f), "raw", read)
    with open(f, "ab") as fh:
        fh.write(b"y" * 512)
    assert cache.get(str(f), "raw", read).virtual_size == 1024 and read.reads == 2
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns - 5_000_000_000))  # same size, other mtime (and ctime)
    cache.get(str(f), "raw", read)
    assert read.reads == 3
    other = tmp_path / "b.raw"
    other.write_bytes(b"z" * 1024)  # the same size again, but another inode
    os.replace(other, f)
    cache.get(str(f), "raw", read)
    assert read.reads == 4
    cache.get(str(f), "raw", read)
    assert read.reads == 4


def test_a_file_changed_lately_is_read_every_time(tmp_path):
    f = tmp_path / "a.raw"
    f.write_bytes(b"x" * 512)  # its ctime is now: within the racy window of the default cache
    cache, read = ImageInfoCache(), Reader(f)
    cache.get(str(f), "raw", read)
    cache.get(str(f), "raw", read)
    assert read.reads == 2


def test_retain_forgets_the_files_that_went(tmp_path):
    a, b = tmp_path / "a.raw", tmp_path / "b.raw"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    cache, read_a, read_b = settled_cache(), Reader(a), Reader(b)
    cache.get(str(a), "raw", read_a)
    cache.get(str(b), "raw", read_b)
    cache.retain([str(a)])
    cache.get(str(a), "raw", read_a)
    cache.get(str(b), "raw", read_b)
    assert (read_a.reads, read_b.reads) == (1, 2)


def test_another_recorded_format_is_read_again(tmp_path):
    """vol-set-format changes how the same bytes are read: the answer for the old format is not reused."""
    f = tmp_path / "a.img"
    f.write_bytes(b"x" * 512)
    cache, read = settled_cache(), Reader(f)
    cache.get(str(f), "raw", read)
    cache.get(str(f), "qcow2", read)
    assert read.reads == 2
