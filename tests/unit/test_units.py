"""Sizes: libvirt unit rules, virsh/qemu-img suffixes, KiB rounding, readable output."""
from __future__ import annotations

import pytest

from pyvirt.errors import InvalidArgument
from pyvirt.model.units import (
    bytes_to_kib,
    format_bytes,
    format_kib,
    parse_size,
    parse_size_kib,
    parse_xml_size_kib,
    scale,
    unit_multiplier,
)


@pytest.mark.parametrize(("unit", "mult"), [
    ("b", 1), ("bytes", 1), ("k", 1024), ("KiB", 1024), ("K", 1024), ("KB", 1000), ("kb", 1000),
    ("M", 1024**2), ("MiB", 1024**2), ("MB", 1000**2), ("G", 1024**3), ("GiB", 1024**3), ("GB", 1000**3),
    ("T", 1024**4), ("TiB", 1024**4), ("TB", 1000**4), ("gib", 1024**3),
])
def test_unit_multiplier(unit: str, mult: int) -> None:
    assert unit_multiplier(unit) == mult


@pytest.mark.parametrize("unit", ["", "x", "KiBB", "Kb2", "iB", "mega"])
def test_unknown_unit(unit: str) -> None:
    with pytest.raises(InvalidArgument, match="unknown size unit"):
        unit_multiplier(unit)


@pytest.mark.parametrize(("text", "expected"), [
    ("512M", 512 * 1024**2), ("1G", 1024**3), ("1.5G", 1536 * 1024**2), ("2 GiB", 2 * 1024**3),
    ("4096", 4096 * 1024), ("10KB", 10000), ("0.5k", 512), ("1b", 1), (".5M", 512 * 1024), ("3 MB", 3_000_000),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_default_unit_and_rounding() -> None:
    assert parse_size("100", default_unit="MiB") == 100 * 1024**2
    assert parse_size("0.3b") == 1  # fractions of a byte round up
    assert parse_size_kib("1500b") == 2  # KiB round up, as libvirt stores them
    assert parse_size_kib("1G") == 1024 * 1024


@pytest.mark.parametrize("text", ["", "M", "-1G", "1,5G", "1G2", "ten"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_size(text)


def test_xml_sizes() -> None:
    assert parse_xml_size_kib("2", "GiB") == 2 * 1024 * 1024
    assert parse_xml_size_kib(" 1024 ", None) == 1024  # default unit KiB
    assert parse_xml_size_kib("1000", "KB") == 977  # 1,000,000 bytes, rounded up
    assert parse_xml_size_kib("1", "b") == 1
    with pytest.raises(InvalidArgument, match="whole number"):
        parse_xml_size_kib("1.5", "G")  # libvirt takes whole numbers only
    with pytest.raises(InvalidArgument):
        scale(-1, "KiB")


def test_bytes_to_kib() -> None:
    assert [bytes_to_kib(n) for n in (0, 1, 1024, 1025)] == [0, 1, 1, 2]


@pytest.mark.parametrize(("kib", "text"), [
    (2097152, "2 GiB"), (1572864, "1.5 GiB"), (1000, "1000 KiB"), (512 * 1024, "512 MiB"),
    (1024**3, "1 TiB"), (0, "0 KiB"), (1536, "1.5 MiB"), (1025, "1025 KiB"),
])
def test_format_kib(kib: int, text: str) -> None:
    assert format_kib(kib) == text


def test_format_bytes() -> None:
    assert format_bytes(1024**3) == "1 GiB"
    assert format_bytes(1000) == "1000 B"
