"""Turn Debian's bzImage into an uncompressed ELF that QEMU boots through PVH.

Under TCG the bzImage's own xz decompressor runs emulated and costs ~2 s
per boot. The same kernel, decompressed once here, carries a PVH entry point
(a Xen ELF note, type 18: XEN_ELFNOTE_PHYS32_ENTRY) that QEMU's ``-kernel``
jumps to directly on pc, q35 and microvm.
"""
from __future__ import annotations

import lzma
import struct
import zlib

_XZ_MAGIC = b"\xfd7zXZ\x00"
_GZIP_MAGIC = b"\x1f\x8b\x08"
_ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_PROGRAM_HEADER = struct.Struct("<IIQQQQQQ")
_PT_NOTE = 4
_XEN_ELFNOTE_PHYS32_ENTRY = 18


def has_pvh_entry(elf: bytes) -> bool:
    """Whether a 64-bit ELF kernel has a PVH entry note."""
    if len(elf) < _ELF_HEADER.size or elf[:4] != b"\x7fELF" or elf[4] != 2:
        return False
    fields = _ELF_HEADER.unpack_from(elf)
    phoff, phentsize, phnum = fields[5], fields[9], fields[10]
    for index in range(phnum):
        start = phoff + index * phentsize
        if start + _PROGRAM_HEADER.size > len(elf):
            return False
        p_type, _flags, offset, _vaddr, _paddr, filesz, *_ = \
            _PROGRAM_HEADER.unpack_from(elf, start)
        if p_type != _PT_NOTE:
            continue
        pos, end = offset, min(offset + filesz, len(elf))
        while pos + 12 <= end:
            namesz, descsz, note_type = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz]
            if name == b"Xen\0" and note_type == _XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def pvh_elf(bzimage: bytes) -> bytes | None:
    """The uncompressed kernel ELF inside ``bzimage`` if it has a PVH entry, else None.

    The payload is found by its compression magic (xz or gzip) and decoded
    up to the end of its stream; data after it is ignored.
    """
    for magic, decode in ((_XZ_MAGIC, _xz), (_GZIP_MAGIC, _gzip)):
        start = bzimage.find(magic)
        while start != -1:
            try:
                elf = decode(bzimage[start:])
            except (lzma.LZMAError, zlib.error, EOFError):
                elf = b""
            if elf[:4] == b"\x7fELF":
                return elf if has_pvh_entry(elf) else None
            start = bzimage.find(magic, start + 1)
    return None


def _xz(data: bytes) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)


def _gzip(data: bytes) -> bytes:
    # A decompressobj stops at the end of the first stream, ignoring what follows.
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS).decompress(data)
