"""No format guessed: records, explicit chains and json: refusals, without qemu-img or QEMU."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyvirt.errors import InvalidArgument, NotFound
from pyvirt.model.domain_xml import parse_domain_xml
from pyvirt.model.storage import BackingStore, FormatRecord, ImageLayer
from pyvirt.model.storage_xml import parse_pool_xml, parse_volume_xml
from pyvirt.model.validate import validate_domain
from pyvirt.qemu import img
from pyvirt.qemu.chains import backing_option, json_filename
from pyvirt.state.store import FormatRow, Store
from pyvirt.storage.base import MemoryBook, temp_name
from pyvirt.storage.chain import MAX_DEPTH, chain_of, resolve_chain

JSON = 'json:{"driver":"host_device","filename":"/dev/sda"}'


def test_backing_option_is_the_chain_inline_or_null() -> None:
    assert backing_option(()) is None
    chain = (ImageLayer("/p/mid.qcow2", "qcow2"), ImageLayer("/dev/vg/base", "raw", block=True))
    assert backing_option(chain) == {
        "driver": "qcow2", "read-only": True, "file": {"driver": "file", "filename": "/p/mid.qcow2"},
        "backing": {"driver": "raw", "read-only": True, "file": {"driver": "host_device", "filename": "/dev/vg/base"}},
    }


def test_qemu_img_gets_a_json_filename_only_for_a_stated_chain() -> None:
    assert img.image_args("/p/a.raw", "raw", ()) == ["-f", "raw", "/p/a.raw"]
    assert img.image_args("/p/a.qcow2", "qcow2") == ["-f", "qcow2", "/p/a.qcow2"]  # a person's image: header
    flag, fmt, name = img.image_args("/p/a,b.qcow2", "qcow2", ())
    assert (flag, fmt) == ("-f", "qcow2") and name.startswith("json:")
    assert json.loads(name[5:]) == {"driver": "qcow2", "file": {"driver": "file", "filename": "/p/a,b.qcow2"},
                                    "backing": None}
    raw = json_filename(ImageLayer("/x", "raw"), ())
    assert raw == 'json:{"driver":"raw","file":{"driver":"file","filename":"/x"}}'


@pytest.mark.parametrize(("name", "arg"), [("-x.img", "./-x.img"), ("nbd:host", "./nbd:host"),
                                           ("d/nbd:x", "d/nbd:x"), ("/abs/nbd:x", "/abs/nbd:x")])
def test_relative_names_are_never_options_or_protocols(name: str, arg: str) -> None:
    assert img.image_args(name, "raw") == ["-f", "raw", arg]


def test_no_format_no_call(tmp_path: Path) -> None:
    path = tmp_path / "a.img"
    path.write_bytes(b"QFI\xfb" + bytes(508))
    for call in (lambda: img.info(path), lambda: img.check(path, None), lambda: img.resize(path, "1M", fmt=None),
                 lambda: img.convert(path, tmp_path / "b", src_fmt=None, dst_fmt="raw"),
                 lambda: img.map_image(path, fmt=None), lambda: img.measure(path=path)):
        with pytest.raises(InvalidArgument, match="never guesses"):
            call()
    assert not (tmp_path / "b").exists()


def test_json_filenames_are_refused_everywhere(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="json: pseudo-filename"):
        img.info(JSON, "raw")
    with pytest.raises(InvalidArgument, match="json: pseudo-filename"):
        img.create(tmp_path / "t.qcow2", "qcow2", None, backing=JSON, backing_fmt="raw")
    with pytest.raises(InvalidArgument, match="json: pseudo-filename"):
        parse_volume_xml("<volume><name>t</name><capacity>0</capacity><target><format type='qcow2'/></target>"
                         f"<backingStore><path>{JSON}</path></backingStore></volume>")
    with pytest.raises(InvalidArgument, match="json: pseudo-filename"):
        parse_pool_xml(f"<pool type='dir'><name>p</name><target><path>{JSON}</path></target></pool>")
    with pytest.raises(InvalidArgument, match="json: pseudo-filename"):
        validate_domain(parse_domain_xml(
            "<domain type='qemu'><name>j</name><memory>65536</memory><os><type machine='q35'>hvm</type></os>"
            f"<devices><disk type='file'><source file='{JSON}'/><target dev='vda' bus='virtio'/></disk></devices>"
            "</domain>"))


def test_resolve_chain_follows_records_and_stops_where_formats_disagree(tmp_path: Path) -> None:
    base, mid, top = (tmp_path / n for n in ("base.img", "mid.qcow2", "top.qcow2"))
    for p in (base, mid, top):
        p.write_bytes(b"")
    book = MemoryBook()
    book.put(str(mid), FormatRecord("qcow2", BackingStore(str(base), "raw")))
    book.put(str(top), FormatRecord("qcow2", BackingStore(str(mid), "qcow2")))
    book.put(str(base), FormatRecord("raw"))
    assert chain_of(book, str(top), "qcow2", who="t") == (ImageLayer(str(mid), "qcow2"), ImageLayer(str(base), "raw"))
    assert chain_of(book, str(top), "raw", who="t") == ()
    # a disk that says qcow2 on a volume recorded raw: opened with no backing file at all
    assert chain_of(book, str(base), "qcow2", who="t") == ()


def test_resolve_chain_refuses_loops_depth_and_missing_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    a.write_bytes(b"")
    b.write_bytes(b"")
    book = MemoryBook()
    book.put(str(a), FormatRecord("qcow2", BackingStore(str(b), "qcow2")))
    book.put(str(b), FormatRecord("qcow2", BackingStore(str(a), "qcow2")))
    with pytest.raises(InvalidArgument, match="loops back"):
        resolve_chain(book, BackingStore(str(a), "qcow2"), who="t")
    with pytest.raises(NotFound, match="does not exist"):
        resolve_chain(book, BackingStore(str(tmp_path / "gone"), "raw"), who="t")
    with pytest.raises(InvalidArgument, match="json: pseudo-filename"):
        resolve_chain(book, BackingStore(JSON, "raw"), who="t")
    deep = MemoryBook()
    files = [tmp_path / f"d{i}.qcow2" for i in range(MAX_DEPTH + 2)]
    for i, f in enumerate(files):
        f.write_bytes(b"")
        nxt = files[i + 1] if i + 1 < len(files) else None
        deep.put(str(f), FormatRecord("qcow2", BackingStore(str(nxt), "qcow2") if nxt else None))
    with pytest.raises(InvalidArgument, match="deeper than"):
        resolve_chain(deep, BackingStore(str(files[0]), "qcow2"), who="t")


def test_store_keeps_format_rows_per_directory(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.put_volume_format(FormatRow("/pool/a.qcow2", "qcow2", "/pool/base.img", "raw"))
    store.put_volume_format(FormatRow("/pool/sub/b.img", "raw"))
    store.put_volume_format(FormatRow("/pool2/c.img", "raw"))
    assert store.volume_format("/pool/a.qcow2") == FormatRow("/pool/a.qcow2", "qcow2", "/pool/base.img", "raw")
    assert [r.path for r in store.volume_formats_in("/pool")] == ["/pool/a.qcow2"]
    store.delete_volume_format("/pool/a.qcow2")
    assert store.volume_format("/pool/a.qcow2") is None
    store.close()


def test_temp_names_are_recognisable_and_fit() -> None:
    assert temp_name("disk.img") == ".pyvirt-tmp-disk.img"
    long = "x" * 250
    assert temp_name(long).startswith(".pyvirt-tmp-") and len(temp_name(long)) <= 255


def test_a_dir_pool_records_found_files_raw_and_forgets_gone_ones(tmp_path: Path) -> None:
    from pyvirt.model.storage import Pool, PoolTarget
    from pyvirt.storage.dir import DirBackend

    pool = tmp_path / "pool"
    pool.mkdir()
    backend = DirBackend(Pool("p", "dir", PoolTarget(str(pool))))
    (pool / "found.img").write_bytes(b"QFI\xfb" + bytes(1020))  # looks like qcow2; pyvirt did not make it
    (pool / temp_name("busy.qcow2")).write_bytes(b"")  # a copy being published under that name
    backend.book.put(str(pool / "busy.qcow2"), FormatRecord("qcow2"))
    backend.book.put(str(pool / "gone.qcow2"), FormatRecord("qcow2"))
    [found] = backend.list_volumes()  # temporaries are no volumes
    assert (found.name, found.format, found.capacity) == ("found.img", "raw", 1024)
    assert backend.book.get(str(pool / "found.img")) == FormatRecord("raw")
    assert backend.book.get(str(pool / "busy.qcow2")) == FormatRecord("qcow2")  # kept: its rename is coming
    assert backend.book.get(str(pool / "gone.qcow2")) is None
    assert backend.remove_stale() == [temp_name("busy.qcow2")] and not (pool / temp_name("busy.qcow2")).exists()
