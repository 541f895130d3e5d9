"""Pure parts of pyvirt.qemu.img and `pyvirt img`: size arithmetic, the shrink guard,
option encoding, size text, progress parsing and the verb parser (no qemu-img run)."""
from __future__ import annotations

import io

import pytest

from pyvirt.cli.img_cmds import parse_verb
from pyvirt.errors import InvalidArgument
from pyvirt.qemu.img import check_shrink, encode_options, human_size, resize_target
from pyvirt.qemu.img_convert import read_progress

G = 1024**3
M = 1024**2


@pytest.mark.parametrize("spec, expected", [
    ("+1G", 3 * G),
    ("-512M", 2 * G - 512 * M),
    ("2G", 2 * G),
    ("4G", 4 * G),
    ("1.5G", G + 512 * M),
    ("+0", 2 * G),
    ("1048576", M),          # no suffix: bytes, as qemu-img
    ("+4096k", 2 * G + 4 * M),
    (" +1 G", 3 * G),
])
def test_resize_target(spec, expected):
    assert resize_target(2 * G, spec) == expected


@pytest.mark.parametrize("spec", ["-2G", "-3G", "0", "", "+", "-", "+abc", "1Q"])
def test_resize_target_rejects(spec):
    with pytest.raises(InvalidArgument):
        resize_target(2 * G, spec)


def test_shrink_refused_without_flag_names_loss_and_option():
    with pytest.raises(InvalidArgument) as exc:
        check_shrink("/tmp/d.qcow2", 2 * G, G, shrink=False)
    msg = str(exc.value)
    assert "/tmp/d.qcow2" in msg and "lost" in msg and "--shrink" in msg


def test_shrink_allowed_with_flag_and_grow_always():
    check_shrink("d", 2 * G, G, shrink=True)
    check_shrink("d", G, 2 * G, shrink=False)
    check_shrink("d", G, G, shrink=False)


def test_encode_options_doubles_commas_and_maps_bools():
    assert encode_options({"cluster_size": "64k", "lazy_refcounts": True, "x": "a,b"}) == \
        "cluster_size=64k,lazy_refcounts=on,x=a,,b"
    with pytest.raises(InvalidArgument):
        encode_options({"bad key": "1"})


@pytest.mark.parametrize("n, text", [
    (G, "1 GiB"), (512, "512 B"), (200704, "196 KiB"), (G + 512 * M, "1.5 GiB"), (64 * M, "64 MiB"),
])
def test_human_size(n, text):
    assert human_size(n) == text


def test_progress_lines_parsed_and_deduplicated():
    seen: list[float] = []
    raw = b"    (0.00/100%)\r    (0.00/100%)\r    (45.50/100%)\r    (100.00/100%)\r\n"
    read_progress(io.BytesIO(raw), seen.append)
    assert seen == [0.0, 45.5, 100.0]


def test_progress_without_trailing_separator():
    seen: list[float] = []
    read_progress(io.BytesIO(b"(12.00/100%)\r(99.99/100%)"), seen.append)
    assert seen == [12.0, 99.99]


def test_parse_verb_options_and_negative_size():
    verb, opts, pos = parse_verb(["resize", "--shrink", "a.img", "-512M"])
    assert (verb, opts, pos) == ("resize", {"--shrink": True}, {"file": "a.img", "size": "-512M"})
    verb, opts, pos = parse_verb(["create", "-f", "qcow2", "-b", "base", "-F", "raw", "-o", "a=1", "top"])
    assert opts == {"-f": "qcow2", "-b": "base", "-F": "raw", "-o": "a=1"}
    assert pos == {"file": "top", "size": None}
    verb, opts, pos = parse_verb(["convert", "-p", "-c", "-O", "raw", "s", "d"])
    assert opts == {"-p": True, "-c": True, "-O": "raw"} and pos == {"src": "s", "dst": "d"}


@pytest.mark.parametrize("argv", [[], ["frob"], ["info"], ["info", "a", "b"], ["create", "-z", "f"],
                                  ["resize", "f"]])
def test_parse_verb_rejects(argv):
    with pytest.raises(InvalidArgument):
        parse_verb(argv)


def test_parse_verb_option_after_negative_size():
    assert parse_verb(["resize", "a.img", "-1G", "--shrink"])[1:] == (
        {"--shrink": True}, {"file": "a.img", "size": "-1G"})
