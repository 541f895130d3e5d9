"""qemu-img as typed calls: info, create, check, resize, convert (img_convert.py) and the rest.

qemu-img's JSON output (``--output=json``) is parsed instead of its text, and
its stderr goes into ``QemuError.detail`` unchanged. The destructive cases that
qemu-img lets through or words poorly (shrinking without --shrink, converting
an image onto itself or onto its own backing file) are refused here, before
qemu-img runs, with a message that says what to do.

Every call names the image's format (``-f``): qemu-img would otherwise guess it
from the content, and a guest that owned a raw disk's bytes decides what that
guess is (issue 9; libvirt's CVE-2010-2237). Only ``info(probe=True)`` guesses,
for a person who asked for it. Where the data of a copy-on-write image is read
for pyvirt itself (convert, resize, internal snapshots), its backing chain is
given explicitly (``backing``, see chains.py), never taken from the header.
``json:`` filenames are refused: they let qemu-img open any host file or device.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, replace

from ..errors import InvalidArgument, NotFound, QemuError
from .img_args import check_fmt, file_arg, info_json, need_file, run

# re-exported: callers use pyvirt.qemu.img for every qemu-img call (the copy and the argument rules live apart
# so `pyvirt img convert` loads only those)
from .img_args import encode_options as encode_options
from .img_args import image_args as image_args
from .img_args import need_format as need_format
from .img_args import refuse_pseudo_filename as refuse_pseudo_filename
from .img_convert import ProgressCallback as ProgressCallback
from .img_convert import convert as convert

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


_RESIZE_RE = re.compile(r"^\s*([+-]?)\s*(.+)$")



@dataclass(frozen=True)
class Snapshot:
    """One internal snapshot of a qcow2 image (`qemu-img snapshot -l`)."""

    id: str
    name: str
    vm_state_size: int
    date_sec: int
    vm_clock_nsec: int


@dataclass(frozen=True)
class ImageInfo:
    """What `qemu-img info` says about one image; ``chain`` holds its backing images in order."""

    filename: str
    format: str
    virtual_size: int
    actual_size: int | None
    backing_filename: str | None = None
    backing_format: str | None = None
    full_backing_filename: str | None = None
    snapshots: list[Snapshot] = field(default_factory=list)
    dirty_flag: bool = False
    cluster_size: int | None = None
    chain: list[ImageInfo] = field(default_factory=list)
    data_file: str | None = None  # a qcow2 image's external data file, if its header names one

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for one in (out, *out["chain"]):
            if one["data_file"] is None:  # the JSON shape `pyvirt img info --json` always had
                del one["data_file"]
        return out


def _snapshot(d: dict[str, Any]) -> Snapshot:
    return Snapshot(
        id=str(d.get("id", "")),
        name=str(d.get("name", "")),
        vm_state_size=int(d.get("vm-state-size", 0)),
        date_sec=int(d.get("date-sec", 0)),
        vm_clock_nsec=int(d.get("vm-clock-sec", 0)) * 1_000_000_000 + int(d.get("vm-clock-nsec", 0)),
    )


def parse_info(d: dict[str, Any]) -> ImageInfo:
    """One element of qemu-img's info JSON to an ImageInfo (``chain`` left empty)."""
    return ImageInfo(
        filename=d["filename"],
        format=d["format"],
        virtual_size=int(d["virtual-size"]),
        actual_size=d.get("actual-size"),
        backing_filename=d.get("backing-filename"),
        backing_format=d.get("backing-filename-format"),
        full_backing_filename=d.get("full-backing-filename"),
        snapshots=[_snapshot(s) for s in d.get("snapshots", [])],
        dirty_flag=bool(d.get("dirty-flag", False)),
        cluster_size=d.get("cluster-size"),
        data_file=((d.get("format-specific") or {}).get("data") or {}).get("data-file"),
    )


def resize_target(current: int, size_spec: str) -> int:
    """The new size in bytes for qemu-img's size argument: '+1G' and '-512M' are relative, '2G' absolute.

    Suffixes are qemu-img's (k, M, G, T: powers of 1024); no suffix means bytes.
    """
    from ..model.units import parse_size  # here: `pyvirt img convert` never needs it

    match = _RESIZE_RE.match(size_spec)
    if match is None or not match.group(2).strip():
        raise InvalidArgument(f"size '{size_spec}' is empty; write e.g. 2G, +1G or -512M")
    sign, body = match.groups()
    amount = parse_size(body, default_unit="b")
    new = current + amount if sign == "+" else current - amount if sign == "-" else amount
    if new <= 0:
        raise InvalidArgument(
            f"resize '{size_spec}' would make the image {new} bytes (it is {current} bytes now); "
            "the new size must be above zero"
        )
    return new


def check_shrink(path: str, current: int, new: int, shrink: bool) -> None:
    """Refuse a shrink the caller did not ask for: the data past the new end is lost."""
    if new < current and not shrink:
        raise InvalidArgument(
            f"resizing '{path}' from {current} to {new} bytes shrinks it: data past the new end "
            f"({current - new} bytes) is lost; pass --shrink (shrink=True) if that is intended"
        )


def info(path: str | os.PathLike[str], fmt: str | None = None, *, backing_chain: bool = False,
         probe: bool = False, force_share: bool = False, qemu_img: str | None = None) -> ImageInfo:
    """`qemu-img info -f FMT`; ``force_share`` (-U) reads an image a running QEMU holds open.

    Without ``backing_chain`` qemu-img opens no backing file (it reports the header's names only).
    ``fmt`` None is refused unless ``probe``: then qemu-img guesses, for a person who asked.
    """
    data = info_json(path, fmt, backing_chain=backing_chain, probe=probe, force_share=force_share,
                     qemu_img=qemu_img)
    if not backing_chain:
        return parse_info(data)
    top, *rest = [parse_info(d) for d in data]
    return replace(top, chain=rest)


def virtual_size(path: str | os.PathLike[str], fmt: str, *, qemu_img: str | None = None) -> int:
    """The guest-visible size: a raw image's (or block device's) own size, else what qemu-img reads."""
    p = need_file(path)
    if fmt != "raw":
        return info(p, fmt, force_share=True, qemu_img=qemu_img).virtual_size
    fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.lseek(fd, 0, os.SEEK_END)  # a block device's size too
    finally:
        os.close(fd)


def create(path: str | os.PathLike[str], fmt: str, size_bytes: int | None, *, backing: str | None = None,
           backing_fmt: str | None = None, options: dict[str, Any] | None = None,
           qemu_img: str | None = None) -> None:
    """`qemu-img create`; with ``backing`` the size may be None (the backing file's size)."""
    p = os.fspath(path)
    args = ["create", "-q", "-f", check_fmt(fmt)]
    if backing is not None:
        refuse_pseudo_filename(backing, "backing file")
        if backing_fmt is None:
            raise InvalidArgument(f"creating '{p}' on backing file '{backing}' needs its format "
                                  "(backing_fmt / -F), e.g. qcow2 or raw; qemu-img no longer probes it")
        args += ["-b", backing, "-F", check_fmt(backing_fmt, "backing format")]
    elif size_bytes is None:
        raise InvalidArgument(f"creating '{p}' needs a size (or a backing file)")
    if options:
        args += ["-o", encode_options(options)]
    args.append(file_arg(p))
    if size_bytes is not None:
        if size_bytes < 0:
            raise InvalidArgument(f"size {size_bytes} for '{p}' is negative")
        args.append(str(size_bytes))
    run(args, p, "create", binary=qemu_img)


def check(path: str | os.PathLike[str], fmt: str | None) -> dict[str, Any]:
    """`qemu-img check -f FMT`: its JSON report (check-errors, corruptions, leaks, image-end-offset).

    Exit statuses 2 (corruptions) and 3 (leaks) still give a report: the caller
    reads it. A format without checks (raw) is an OperationInvalid-like QemuError.
    """
    p = need_file(path)
    fmt = need_format(fmt, p, "check")
    proc = run(["check", "--output=json", *image_args(p, fmt)], p, "check", ok=(0, 2, 3))
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise QemuError(f"qemu-img check '{p}' printed no JSON", detail=proc.stderr.strip() or None) from exc
    return report


def resize(path: str | os.PathLike[str], size_spec: str, *, fmt: str | None, shrink: bool = False,
           qemu_img: str | None = None) -> int:
    """`qemu-img resize -f FMT`; returns the new virtual size. Shrinking needs ``shrink=True``.

    A copy-on-write image is opened with no backing file: a resize changes its own header only.
    """
    p = need_file(path)
    fmt = need_format(fmt, p, "resize")
    current = virtual_size(p, fmt, qemu_img=qemu_img)
    new = resize_target(current, size_spec)
    check_shrink(p, current, new, shrink)
    args = ["resize", "-q"]
    if new < current:
        args.append("--shrink")
    run([*args, *image_args(p, fmt, ()), str(new)], p, "resize", binary=qemu_img)
    return new


def human_size(n: int) -> str:
    """qemu-img's size text: 3 significant digits, powers of 1024 ('196 KiB', '1.5 GiB', '512 B')."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    i = 0
    while i + 1 < len(units) and n >= 1000 * 1024**i:
        i += 1
    return f"{n / 1024**i:.3g} {units[i]}"


# ---------------------------------------------------------------- internal snapshots (qemu-img snapshot)
def snapshot_image(path: str | os.PathLike[str], fmt: str = "qcow2", file_driver: str = "file") -> str:
    """The image as a json: filename naming its format and no backing file.

    `qemu-img snapshot` has no -f and, given a plain name, opens the backing file its header names;
    internal snapshots live in the image itself, so the backing is never needed.
    ``file_driver`` is 'file' or 'host_device'.
    """
    if file_driver not in ("file", "host_device"):
        raise InvalidArgument(f"image protocol driver '{file_driver}' is not supported; use file or host_device")
    p = os.fspath(path)
    refuse_pseudo_filename(p)
    from ..model.storage import ImageLayer
    from .chains import json_filename

    return json_filename(ImageLayer(os.path.abspath(p), check_fmt(fmt), file_driver == "host_device"), ())


def snapshot_list(path: str | os.PathLike[str], *, fmt: str = "qcow2", file_driver: str = "file",
                  force_share: bool = False, qemu_img: str | None = None) -> list[Snapshot]:
    """The internal snapshots an image holds (from `qemu-img info --output=json`, format given)."""
    p = need_file(path)
    args = ["info", "--output=json", "-f", check_fmt(fmt)]
    if force_share:
        args.append("-U")
    proc = run([*args, snapshot_image(p, fmt, file_driver)], p, "read", binary=qemu_img)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise QemuError(f"qemu-img info '{p}' printed no JSON", detail=proc.stdout[:500]) from exc
    return [_snapshot(s) for s in data.get("snapshots", [])]


def _snapshot_op(flag: str, doing: str, path: str | os.PathLike[str], tag: str, fmt: str, file_driver: str,
                 qemu_img: str | None) -> None:
    p = need_file(path)
    if not tag:
        raise InvalidArgument(f"cannot {doing} in '{p}': the snapshot name is empty")
    run(["snapshot", "-q", flag, tag, snapshot_image(p, fmt, file_driver)], p, f"{doing} '{tag}' in",
         binary=qemu_img)


def snapshot_create(path: str | os.PathLike[str], tag: str, *, fmt: str = "qcow2", file_driver: str = "file",
                    qemu_img: str | None = None) -> None:
    """`qemu-img snapshot -c TAG`: qemu-img allows a second snapshot of the same tag; callers check first."""
    _snapshot_op("-c", "create snapshot", path, tag, fmt, file_driver, qemu_img)


def snapshot_apply(path: str | os.PathLike[str], tag: str, *, fmt: str = "qcow2", file_driver: str = "file",
                   qemu_img: str | None = None) -> None:
    """`qemu-img snapshot -a TAG`: the image's data becomes what it was at the snapshot."""
    _snapshot_op("-a", "apply snapshot", path, tag, fmt, file_driver, qemu_img)


def snapshot_delete(path: str | os.PathLike[str], tag: str, *, fmt: str = "qcow2", file_driver: str = "file",
                    qemu_img: str | None = None) -> None:
    """`qemu-img snapshot -d TAG` (the first snapshot whose id or name is TAG)."""
    _snapshot_op("-d", "delete snapshot", path, tag, fmt, file_driver, qemu_img)


# ---------------------------------------------------------------- commit, rebase, map, measure
def commit(path: str | os.PathLike[str], *, fmt: str = "qcow2", qemu_img: str | None = None) -> None:
    """`qemu-img commit -f FMT`: write an overlay's data into its backing file (the overlay stays, emptied).

    The format is named (qcow2 unless told): only copy-on-write images have something to commit.
    """
    p = need_file(path)
    if info(p, fmt, qemu_img=qemu_img).backing_filename is None:
        raise InvalidArgument(f"image '{p}' has no backing file, so there is nothing to commit into")
    run(["commit", "-q", *image_args(p, fmt)], p, "commit", binary=qemu_img)


def rebase(path: str | os.PathLike[str], backing: str | None, *, fmt: str = "qcow2", backing_fmt: str | None = None,
           unsafe: bool = False, qemu_img: str | None = None) -> None:
    """`qemu-img rebase -f FMT -b BACKING -F BACKING_FMT [-u]`: give an overlay another backing file
    ("" or None: none). The new backing file's format must be named: qemu-img would guess it.

    Safe mode copies what differs so the guest-visible data stays the same; -u only rewrites the header.
    """
    p = need_file(path)
    args = ["rebase", "-q"]
    if unsafe:
        args.append("-u")
    args += ["-b", backing or ""]
    if backing:
        refuse_pseudo_filename(backing, "backing file")
        base = backing if os.path.isabs(backing) else os.path.join(os.path.dirname(p), backing)
        if not os.path.exists(base):
            raise NotFound(f"new backing file '{backing}' does not exist (relative names are relative to "
                           f"the image's directory)")
        if not backing_fmt:
            raise InvalidArgument(f"rebasing '{p}' onto '{backing}' needs the backing file's format (-F raw or "
                                  "-F qcow2); pyvirt never lets qemu-img guess it")
        args += ["-F", check_fmt(backing_fmt, "backing format")]
    run([*args, *image_args(p, fmt)], p, "rebase", binary=qemu_img)


def map_image(path: str | os.PathLike[str], *, fmt: str | None, qemu_img: str | None = None) -> list[dict[str, Any]]:
    """`qemu-img map -f FMT --output=json`: extents with start, length, data, zero, offset."""
    p = need_file(path)
    proc = run(["map", "--output=json", *image_args(p, need_format(fmt, p, "map"))], p, "map", binary=qemu_img)
    return list(json.loads(proc.stdout))


def measure(*, path: str | os.PathLike[str] | None = None, fmt: str | None = None, size_bytes: int | None = None,
            out_fmt: str = "qcow2", options: dict[str, Any] | None = None,
            qemu_img: str | None = None) -> dict[str, int]:
    """`qemu-img measure`: bytes a new image needs ("required") and at most ("fully-allocated").

    An image file's own format (``fmt``) must be named."""
    args = ["measure", "--output=json", "-O", check_fmt(out_fmt)]
    if options:
        args += ["-o", encode_options(options)]
    if path is not None:
        p = need_file(path)
        args += image_args(p, need_format(fmt, p, "measure"))
    elif size_bytes is not None:
        p = f"{size_bytes} bytes"
        args += ["--size", str(size_bytes)]
    else:
        raise InvalidArgument("measure needs an image file or --size")
    proc = run(args, p, "measure", binary=qemu_img)
    return {k: int(v) for k, v in json.loads(proc.stdout).items()}
