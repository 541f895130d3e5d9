"""The header of a pyvirt save image (``pyvirt save``, ``managedsave``): encoded and decoded, no I/O.

A save image is one file: this fixed header, the domain XML as its QEMU was
launched, free room (so ``save-image-define`` can rewrite a longer XML in
place), then QEMU's migration stream from ``data_offset`` to the end::

    0   magic       16 bytes  b"PyvirtSaveImage\\0"
    16  version     u32       FORMAT_VERSION; a newer one is refused, not guessed at
    20  flags       u32       FLAG_RUNNING: the guest ran when saved (restore resumes it)
    24  xml_len     u64       bytes of UTF-8 XML at HEADER_SIZE
    32  data_offset u64       where QEMU's stream begins (a multiple of ALIGN)
    40  stream_len  u64       bytes of QEMU's stream; written last, once the stream is complete
    48  xml_crc     u32       CRC-32 of the XML
    52  reserved    12 bytes  zero

All integers little-endian. ``stream_len`` lets a restore refuse a truncated
file before any QEMU starts, and says how much to read.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..errors import InvalidArgument

MAGIC = b"PyvirtSaveImage\0"
FORMAT_VERSION = 1
HEADER_SIZE = 64
ALIGN = 4096
XML_ROOM = 4096  # spare bytes after the XML, for a longer one from save-image-define
FLAG_RUNNING = 1
_LAYOUT = struct.Struct("<16sIIQQQI12x")
assert _LAYOUT.size == HEADER_SIZE


@dataclass(frozen=True)
class SaveHeader:
    """What a save image says about itself (the XML is read separately: it may be long)."""

    running: bool
    xml_len: int
    data_offset: int
    stream_len: int
    xml_crc: int
    version: int = FORMAT_VERSION

    @property
    def xml_room(self) -> int:
        """The longest XML that fits before the stream."""
        return self.data_offset - HEADER_SIZE

    def encode(self) -> bytes:
        return _LAYOUT.pack(MAGIC, self.version, FLAG_RUNNING if self.running else 0, self.xml_len,
                            self.data_offset, self.stream_len, self.xml_crc)


def data_offset_for(xml_len: int) -> int:
    """Where the stream starts for an XML of ``xml_len`` bytes: after it and XML_ROOM, ALIGN-aligned."""
    end = HEADER_SIZE + xml_len + XML_ROOM
    return (end + ALIGN - 1) // ALIGN * ALIGN


def new_header(xml: bytes, running: bool, data_offset: int | None = None) -> SaveHeader:
    """The header of a save being written (``stream_len`` 0 until the stream is complete)."""
    offset = data_offset if data_offset is not None else data_offset_for(len(xml))
    if HEADER_SIZE + len(xml) > offset:
        raise InvalidArgument(f"the domain XML ({len(xml)} bytes) does not fit before the saved state "
                              f"({offset - HEADER_SIZE} bytes of room)")
    return SaveHeader(running=running, xml_len=len(xml), data_offset=offset, stream_len=0,
                      xml_crc=zlib.crc32(xml))


def decode_header(raw: bytes, where: str) -> SaveHeader:
    """The header of the image at ``where`` (named in errors); refuses what is not one this pyvirt reads."""
    if len(raw) < HEADER_SIZE:
        raise InvalidArgument(f"{where} is not a pyvirt save image: it is only {len(raw)} bytes long "
                              "(truncated, or not a save image)")
    magic, version, flags, xml_len, data_offset, stream_len, crc = _LAYOUT.unpack(raw[:HEADER_SIZE])
    if magic != MAGIC:
        raise InvalidArgument(f"{where} is not a pyvirt save image (no pyvirt save header); give a file "
                              "written by `pyvirt save` or `pyvirt managedsave`")
    if version > FORMAT_VERSION:
        raise InvalidArgument(f"{where} was written by a newer pyvirt (save format {version}); this pyvirt reads "
                              f"format {FORMAT_VERSION}: restore it with the pyvirt that saved it")
    if version < 1 or data_offset % ALIGN or HEADER_SIZE + xml_len > data_offset:
        raise InvalidArgument(f"{where} has a damaged save header (version {version}, XML of {xml_len} bytes, "
                              f"state at offset {data_offset})")
    if stream_len == 0:
        raise InvalidArgument(f"{where} is an incomplete save image: the save that wrote it did not finish")
    return SaveHeader(running=bool(flags & FLAG_RUNNING), xml_len=xml_len, data_offset=data_offset,
                      stream_len=stream_len, xml_crc=crc, version=version)


def decode_xml(header: SaveHeader, raw: bytes, where: str) -> str:
    """The domain XML of the image, checked against its CRC."""
    if len(raw) != header.xml_len or zlib.crc32(raw) != header.xml_crc:
        raise InvalidArgument(f"{where} has a damaged domain XML (its checksum does not match); the image "
                              "cannot be restored")
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"{where} has a damaged domain XML (not UTF-8)") from exc
