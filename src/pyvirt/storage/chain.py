"""The backing chain of an image, as recorded: what QEMU and qemu-img are told to open under it.

A layer's backing comes from the FormatBook when pyvirt recorded the layer.
For an image pyvirt has no record of (a file a domain names directly, or the
backing file of an imported overlay) the format is the one its user named,
and its header is read with that format named (qemu-img opens no backing file
then); the header must name its backing file's format too, since guessing it
is exactly the hole a guest-written header exploits. ``json:`` backing names
are refused, and so are chains that loop or run deeper than MAX_DEPTH.
"""
from __future__ import annotations

import os
import stat

from ..errors import InvalidArgument, NotFound, QemuError
from ..model.storage import COW_FORMATS, VOLUME_FORMATS, BackingStore, ImageLayer
from ..qemu import img
from .base import FormatBook

MAX_DEPTH = 16


def _is_block(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def header_backing(path: str, fmt: str, *, backing_format: str | None = None,
                   qemu_img: str | None = None) -> BackingStore | None:
    """The backing file a copy-on-write image's header names, with its format: ``backing_format`` (its
    owner's word) or the one the header names; neither is an error."""
    if fmt not in COW_FORMATS:
        return None
    found = img.info(path, fmt, force_share=True, qemu_img=qemu_img)
    if found.data_file:
        raise InvalidArgument(f"image '{path}' keeps its data in an external file ('{found.data_file}'); pyvirt "
                              "does not open qcow2 data files: convert it to a plain qcow2 image first")
    if not found.backing_filename:
        return None
    name = found.full_backing_filename or found.backing_filename
    img.refuse_pseudo_filename(name, f"the backing file named in the header of '{path}'")
    backing_fmt = backing_format or found.backing_format
    if not backing_fmt:
        raise InvalidArgument(f"image '{path}' names backing file '{name}' without its format, and pyvirt never "
                              "guesses one; name it (vol-set-format --backing-format, or `pyvirt img rebase -u "
                              "-b BACKING -F raw|qcow2 IMAGE`)")
    if backing_fmt not in VOLUME_FORMATS:
        raise InvalidArgument(f"image '{path}' names backing file '{name}' of format {backing_fmt}; "
                              "pyvirt opens raw and qcow2 images only")
    return BackingStore(path=name, format=backing_fmt)


def resolve_chain(book: FormatBook, first: BackingStore | None, *, who: str,
                  qemu_img: str | None = None) -> tuple[ImageLayer, ...]:
    """The layers under an image whose backing is ``first``, nearest first (empty: no backing file)."""
    layers: list[ImageLayer] = []
    seen: set[str] = set()
    current = first
    while current is not None:
        if len(layers) >= MAX_DEPTH:
            raise InvalidArgument(f"{who}: the backing chain is deeper than {MAX_DEPTH} images; flatten it "
                                  "(`pyvirt vol-create-from` makes a full copy)")
        path, fmt = current.path, current.format or "raw"
        img.refuse_pseudo_filename(path, f"{who}: backing file")
        real = os.path.realpath(path)
        if real in seen:
            raise InvalidArgument(f"{who}: the backing chain loops back to '{path}'")
        seen.add(real)
        if not os.path.exists(path):
            raise NotFound(f"{who}: backing file '{path}' does not exist; the image depends on it")
        layers.append(ImageLayer(path=path, format=fmt, block=_is_block(path)))
        record = book.get(path)
        if record is not None:
            current = record.backing if record.format == fmt else None
        else:
            current = header_backing(path, fmt, qemu_img=qemu_img)
    return tuple(layers)


def chain_of(book: FormatBook, path: str, fmt: str, *, who: str, qemu_img: str | None = None) -> tuple[ImageLayer, ...]:
    """The backing layers of the image at ``path`` opened as ``fmt``: from its record when pyvirt has one
    (a disk whose driver type differs from the record gets none), else from its header read as ``fmt``."""
    if fmt not in COW_FORMATS:
        return ()
    record = book.get(path)
    if record is not None:
        first = record.backing if record.format == fmt else None
    else:
        try:
            first = header_backing(path, fmt, qemu_img=qemu_img)
        except QemuError as exc:  # the file is not what its <driver type> says: the user's mistake, said so
            words = (exc.detail or exc.message).splitlines()[-1].split("': ", 1)[-1]
            raise QemuError(f"{who}: {path} is not a {fmt} image, as its <driver type='{fmt}'/> says ({words}); "
                            "if the file is raw, set <driver type='raw'/> (`pyvirt img info --probe "
                            f"{path}` shows what qemu-img takes it for)", detail=exc.detail) from None
    return resolve_chain(book, first, who=who, qemu_img=qemu_img)
