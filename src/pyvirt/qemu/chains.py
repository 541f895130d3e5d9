"""Backing chains handed to QEMU and qemu-img explicitly, as BlockdevOptions data.

A qcow2 header names its backing file (and maybe its format); an image whose
header was written by someone else (a guest that owned the bytes as a raw
disk, an uploaded file) can name any host file or device there, even a
``json:`` description. So pyvirt never lets QEMU read a chain from a header:
the "backing" option of a copy-on-write node is always given, either as the
chain pyvirt recorded (nested inline nodes, read-only) or as null ("no
backing file"). The same data serves -blockdev, QMP blockdev-add and a
``json:`` filename for qemu-img. Pure: no I/O.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ..model.storage import COW_FORMATS, ImageLayer


def protocol_driver(layer: ImageLayer) -> str:
    return "host_device" if layer.block else "file"


def backing_option(chain: Sequence[ImageLayer],
                   opened: Callable[[str], str] = lambda path: path) -> dict[str, Any] | None:
    """The value of a copy-on-write node's "backing": the first layer inline (its own backing
    likewise, to the end of the chain), or None (JSON null) for no backing file at all.

    ``opened`` maps a layer's host path to what QEMU opens instead (the daemon's /dev/fdset/N)."""
    if not chain:
        return None
    layer, rest = chain[0], chain[1:]
    node: dict[str, Any] = {
        "driver": layer.format,
        "read-only": True,
        "file": {"driver": protocol_driver(layer), "filename": opened(layer.path)},
    }
    if layer.format in COW_FORMATS:
        node["backing"] = backing_option(rest, opened)
    return node


def image_node(layer: ImageLayer, chain: Sequence[ImageLayer]) -> dict[str, Any]:
    """A whole image (format node over its protocol node) with its backing given explicitly."""
    node: dict[str, Any] = {"driver": layer.format, "file": {"driver": protocol_driver(layer), "filename": layer.path}}
    if layer.format in COW_FORMATS:
        node["backing"] = backing_option(chain)
    return node


def json_filename(layer: ImageLayer, chain: Sequence[ImageLayer]) -> str:
    """The image as a qemu-img ``json:`` filename: the only way its command line takes "backing": null."""
    return "json:" + json.dumps(image_node(layer, chain), separators=(",", ":"))
