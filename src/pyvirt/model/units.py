"""Sizes: libvirt's unit names and virsh/qemu-img style suffixes, to bytes and back.

libvirt's rule (case-insensitive): 'b'/'bytes' are bytes; a single letter
('k', 'M', 'G', ...) or the letter + 'iB' is a power of 1024; the letter +
'B' ('KB', 'MB') is a power of 1000. The model stores KiB, rounded up, as
libvirt does.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

from ..errors import InvalidArgument

_POWERS = "kmgtpe"
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


def unit_multiplier(unit: str) -> int:
    """Bytes in one ``unit`` ('KiB' -> 1024, 'KB' -> 1000, 'bytes' -> 1)."""
    u = unit.strip().lower()
    if u in ("b", "byte", "bytes"):
        return 1
    if u and u[0] in _POWERS:
        exp = _POWERS.index(u[0]) + 1
        rest = u[1:]
        if rest in ("", "ib"):
            return int(1024**exp)  # int ** int is typed as Any: a negative power is a float
        if rest == "b":
            return int(1000**exp)
    raise InvalidArgument(
        f"unknown size unit '{unit}'; use b, KiB/k, MiB/M, GiB/G, TiB/T (powers of 1024) "
        "or KB, MB, GB, TB (powers of 1000)"
    )


def scale(value: int, unit: str | None, default_unit: str = "KiB") -> int:
    """``value`` ``unit``s in bytes; a missing unit means ``default_unit``."""
    if value < 0:
        raise InvalidArgument(f"size {value} is negative")
    return value * unit_multiplier(unit if unit is not None else default_unit)


def bytes_to_kib(n: int) -> int:
    """Bytes to KiB, rounding up as libvirt does."""
    return -(-n // 1024)


def parse_size(text: str, default_unit: str = "KiB", *, what: str | None = None) -> int:
    """'512M', '1.5G', '2 GiB', '4096' (in ``default_unit``) -> bytes.

    Decimals are allowed (qemu-img style); a fraction of a byte rounds up.
    ``what`` names the value in virsh's words for a command-line option ("Malformed
    allocation 1.2.3: ..."); without it the message quotes the text ("size '1.2.3' ...").
    """
    match = _SIZE_RE.match(text)
    if match is None:
        if what is not None:
            raise InvalidArgument(f"Malformed {what} {text}: {_size_help(default_unit)}")
        raise InvalidArgument(f"size '{text}' is not a number with an optional unit; write e.g. 512M, 1.5G or 2GiB")
    number, unit = match.groups()
    try:
        mult = unit_multiplier(unit or default_unit)
    except InvalidArgument:
        if what is None:
            raise
        raise InvalidArgument(f"Malformed {what} {text}: unknown suffix '{unit}'; {_size_help(default_unit)}") from None
    return math.ceil(Fraction(number) * mult)


def _size_help(default_unit: str) -> str:
    plain = "bytes" if unit_multiplier(default_unit) == 1 else default_unit
    return (f"write a whole number of {plain} or one with a suffix: k/KiB, M/MiB, G/GiB, T/TiB (powers of 1024) "
            "or KB, MB, GB, TB (powers of 1000), e.g. 512M or 10G")


def parse_size_kib(text: str, default_unit: str = "KiB") -> int:
    """Like parse_size but in KiB (rounded up), the unit the model stores."""
    return bytes_to_kib(parse_size(text, default_unit))


def parse_xml_size_kib(value: str, unit: str | None) -> int:
    """An XML size such as <memory unit='MiB'>512</memory>: whole number + unit -> KiB."""
    v = value.strip()
    if not v.isdigit():
        raise InvalidArgument(f"size '{value}' is not a whole number")
    return bytes_to_kib(scale(int(v), unit))


_HUMAN = (("TiB", 1024**3), ("GiB", 1024**2), ("MiB", 1024), ("KiB", 1))


def format_kib(kib: int) -> str:
    """A readable size: 2097152 -> '2 GiB', 1572864 -> '1.5 GiB', 1000 -> '1000 KiB'."""
    for name, size in _HUMAN:
        if kib >= size and (kib * 10) % size == 0:
            whole, rest = divmod(kib, size)
            return f"{whole} {name}" if rest == 0 else f"{whole}.{rest * 10 // size} {name}"
    return f"{kib} KiB"


def format_bytes(n: int) -> str:
    """Bytes readable: exact KiB multiples as format_kib, otherwise '<n> B'."""
    if n % 1024 == 0:
        return format_kib(n // 1024)
    return f"{n} B"
