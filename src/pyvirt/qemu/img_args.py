"""How pyvirt calls qemu-img and names an image to it: always with its format, never as a json:
description; short commands run with a timeout, their failure a QemuError naming the image.

Shared by every qemu-img call (img.py) and the copy (img_convert.py), and
light on purpose (no dataclasses, no storage model unless a chain is stated),
so `pyvirt img convert` starts quickly.
"""
from __future__ import annotations

import json
import os
import re
import subprocess

from ..children import die_with_parent
from ..errors import HostError, InvalidArgument, NotFound, QemuError
from ..model.formats import COW_FORMATS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ..model.storage import ImageLayer

    #: What a caller passes as ``backing``: the chain as recorded (nearest first; () for none), or None for
    #: "as the image's header says" (only for images a person names on the command line).
    Chain = Sequence[ImageLayer] | None

QEMU_IMG = "/usr/bin/qemu-img"
TIMEOUT = 600  # seconds for the short commands (info/create/check/resize)
_FMT_RE = re.compile(r"^[a-z0-9_]+$")


def encode_options(options: dict[str, Any]) -> str:
    """{'cluster_size': '64k', 'lazy_refcounts': 'on'} -> 'cluster_size=64k,lazy_refcounts=on' (',' doubled)."""
    parts = []
    for key, value in options.items():
        if not key or not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise InvalidArgument(f"image option name '{key}' is not valid; use names like cluster_size")
        if isinstance(value, bool):
            value = "on" if value else "off"
        parts.append(f"{key}={str(value).replace(',', ',,')}")
    return ",".join(parts)


def refuse_pseudo_filename(path: str, what: str = "image") -> None:
    """``json:{...}`` names no file: qemu-img and QEMU read it as a description of what to open."""
    if path.startswith("json:"):
        raise InvalidArgument(f"{what} '{path[:60]}' is a json: pseudo-filename, which can make qemu-img open any "
                              "host file or device; pyvirt refuses it: give the image's path")


def file_arg(path: str | os.PathLike[str]) -> str:
    """A path qemu-img reads as a plain file: '-x' is not an option and 'nbd:x' no protocol ('./...')."""
    text = os.fspath(path)
    refuse_pseudo_filename(text)
    head = text.split("/", 1)[0]
    return f"./{text}" if text.startswith("-") or ":" in head else text


def check_fmt(fmt: str, what: str = "format") -> str:
    if not _FMT_RE.match(fmt):
        raise InvalidArgument(f"image {what} '{fmt}' is not a format name; use e.g. qcow2 or raw")
    return fmt


def image_args(path: str, fmt: str, backing: Chain = None, *, block: bool = False) -> list[str]:
    """``-f FMT FILE``; with ``backing`` given, FILE is a json: filename stating the chain (or its absence)."""
    check_fmt(fmt)
    if backing is None or fmt not in COW_FORMATS:
        return ["-f", fmt, file_arg(path)]
    refuse_pseudo_filename(path)
    from ..model.storage import ImageLayer  # here: only pyvirt's own copies state a chain
    from .chains import json_filename

    return ["-f", fmt, json_filename(ImageLayer(os.path.abspath(path), fmt, block), backing)]


def need_format(fmt: str | None, path: str, doing: str) -> str:
    """The format a caller must name: pyvirt never lets qemu-img guess it from the content."""
    if not fmt:
        raise InvalidArgument(f"cannot {doing} '{path}' without its format: name it (-f raw or -f qcow2); pyvirt "
                              "never guesses a format from an image's content, which whoever wrote the image "
                              "chooses")
    return check_fmt(fmt)


def need_file(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    refuse_pseudo_filename(text)
    if not os.path.exists(text):
        raise NotFound(f"image '{text}' does not exist; check the path")
    return text


def run(args: list[str], path: str, doing: str, ok: tuple[int, ...] = (0,),
         binary: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run qemu-img (``binary``, default QEMU_IMG); a status outside ``ok`` becomes a QemuError naming ``path``."""
    exe = binary or QEMU_IMG
    argv = [exe, *args]
    try:
        proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL, preexec_fn=die_with_parent())
    except FileNotFoundError as exc:
        raise HostError(f"cannot run {exe}: not installed; install Debian's qemu-utils") from exc
    except subprocess.TimeoutExpired as exc:
        raise QemuError(f"qemu-img {doing} '{path}' did not finish in {TIMEOUT}s") from exc
    if proc.returncode not in ok:
        raise QemuError(f"qemu-img could not {doing} '{path}' (exit status {proc.returncode})",
                        detail=proc.stderr.strip() or None)
    return proc


def info_json(path: str | os.PathLike[str], fmt: str | None, *, backing_chain: bool = False, probe: bool = False,
              force_share: bool = False, qemu_img: str | None = None) -> Any:
    """`qemu-img info -f FMT --output=json`, parsed (a list with ``backing_chain``); img.info types it."""
    p = need_file(path)
    args = ["info", "--output=json"]
    if backing_chain:
        args.append("--backing-chain")
    if force_share:
        args.append("-U")
    if fmt is not None or not probe:
        args += ["-f", need_format(fmt, p, "read image")]
    proc = run([*args, file_arg(p)], p, "read", binary=qemu_img)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise QemuError(f"qemu-img info '{p}' printed no JSON", detail=proc.stdout[:500]) from exc
