"""qemu-img as typed calls: info, create, check, resize and convert.

qemu-img's JSON output (``--output=json``) is parsed instead of its text, and
its stderr goes into ``QemuError.detail`` unchanged. The destructive cases that
qemu-img lets through or words poorly (shrinking without --shrink, converting
an image onto itself or onto its own backing file) are refused here, before
qemu-img runs, with a message that says what to do. qemu-img dies with the
process that started it (children.py): a daemon killed mid-convert leaves no
qemu-img holding a lock on the volume.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..children import die_with_parent
from ..errors import HostError, InvalidArgument, NotFound, QemuError
from ..model.units import parse_size

QEMU_IMG = "/usr/bin/qemu-img"
TIMEOUT = 600  # seconds for the short commands (info/create/check/resize)

_FMT_RE = re.compile(r"^[a-z0-9_]+$")
_PROGRESS_RE = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
_RESIZE_RE = re.compile(r"^\s*([+-]?)\s*(.+)$")

ProgressCallback = Callable[[float], None]


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    )


def resize_target(current: int, size_spec: str) -> int:
    """The new size in bytes for qemu-img's size argument: '+1G' and '-512M' are relative, '2G' absolute.

    Suffixes are qemu-img's (k, M, G, T: powers of 1024); no suffix means bytes.
    """
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


def _file_arg(path: str | os.PathLike[str]) -> str:
    """A path qemu-img cannot take for an option ('-x' becomes './-x')."""
    text = os.fspath(path)
    return f"./{text}" if text.startswith("-") else text


def _check_fmt(fmt: str, what: str = "format") -> str:
    if not _FMT_RE.match(fmt):
        raise InvalidArgument(f"image {what} '{fmt}' is not a format name; use e.g. qcow2 or raw")
    return fmt


def _need_file(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if not os.path.exists(text):
        raise NotFound(f"image '{text}' does not exist; check the path")
    return text


def _run(args: list[str], path: str, doing: str, ok: tuple[int, ...] = (0,),
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


def info(path: str | os.PathLike[str], backing_chain: bool = False, *, force_share: bool = False,
         qemu_img: str | None = None) -> ImageInfo:
    """`qemu-img info`; ``force_share`` (-U) reads an image a running QEMU holds open."""
    p = _need_file(path)
    args = ["info", "--output=json"]
    if backing_chain:
        args.append("--backing-chain")
    if force_share:
        args.append("-U")
    proc = _run([*args, _file_arg(p)], p, "read", binary=qemu_img)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise QemuError(f"qemu-img info '{p}' printed no JSON", detail=proc.stdout[:500]) from exc
    if not backing_chain:
        return parse_info(data)
    top, *rest = [parse_info(d) for d in data]
    return replace(top, chain=rest)


def create(path: str | os.PathLike[str], fmt: str, size_bytes: int | None, *, backing: str | None = None,
           backing_fmt: str | None = None, options: dict[str, Any] | None = None,
           qemu_img: str | None = None) -> None:
    """`qemu-img create`; with ``backing`` the size may be None (the backing file's size)."""
    p = os.fspath(path)
    args = ["create", "-q", "-f", _check_fmt(fmt)]
    if backing is not None:
        if backing_fmt is None:
            raise InvalidArgument(f"creating '{p}' on backing file '{backing}' needs its format "
                                  "(backing_fmt / -F), e.g. qcow2 or raw; qemu-img no longer probes it")
        args += ["-b", backing, "-F", _check_fmt(backing_fmt, "backing format")]
    elif size_bytes is None:
        raise InvalidArgument(f"creating '{p}' needs a size (or a backing file)")
    if options:
        args += ["-o", encode_options(options)]
    args.append(_file_arg(p))
    if size_bytes is not None:
        if size_bytes < 0:
            raise InvalidArgument(f"size {size_bytes} for '{p}' is negative")
        args.append(str(size_bytes))
    _run(args, p, "create", binary=qemu_img)


def check(path: str | os.PathLike[str], fmt: str | None = None) -> dict[str, Any]:
    """`qemu-img check`: its JSON report (check-errors, corruptions, leaks, image-end-offset).

    Exit statuses 2 (corruptions) and 3 (leaks) still give a report: the caller
    reads it. A format without checks (raw) is an OperationInvalid-like QemuError.
    """
    p = _need_file(path)
    args = ["check", "--output=json"]
    if fmt:
        args += ["-f", _check_fmt(fmt)]
    proc = _run([*args, _file_arg(p)], p, "check", ok=(0, 2, 3))
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise QemuError(f"qemu-img check '{p}' printed no JSON", detail=proc.stderr.strip() or None) from exc
    return report


def resize(path: str | os.PathLike[str], size_spec: str, *, shrink: bool = False,
           qemu_img: str | None = None) -> int:
    """`qemu-img resize`; returns the new virtual size. Shrinking needs ``shrink=True``."""
    p = _need_file(path)
    current = info(p, qemu_img=qemu_img)
    new = resize_target(current.virtual_size, size_spec)
    check_shrink(p, current.virtual_size, new, shrink)
    args = ["resize", "-q", "-f", _check_fmt(current.format)]
    if new < current.virtual_size:
        args.append("--shrink")
    _run([*args, _file_arg(p), str(new)], p, "resize", binary=qemu_img)
    return new


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_overwrite(src: str, dst: str, qemu_img: str | None = None) -> None:
    """Converting onto the source, or onto a file in its backing chain, destroys the data being read."""
    if _same_file(src, dst):
        raise InvalidArgument(f"cannot convert '{src}' onto itself ('{dst}' is the same file); "
                              "write the converted image to another path, then rename it")
    if not os.path.exists(dst):
        return
    for layer in info(src, backing_chain=True, qemu_img=qemu_img).chain:
        if _same_file(layer.filename, dst):
            raise InvalidArgument(f"cannot convert '{src}' onto '{dst}': it is a backing file of '{src}'; "
                                  "choose another destination")


def _stat_key(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def convert(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, src_fmt: str | None = None,
            dst_fmt: str, compress: bool = False, options: dict[str, Any] | None = None,
            progress_cb: ProgressCallback | None = None, qemu_img: str | None = None,
            snapshot: str | None = None) -> None:
    """`qemu-img convert -p`: progress percentages go to ``progress_cb`` as qemu-img reports them.

    ``snapshot`` extracts that internal snapshot (-l snapshot.name=...) instead of the current data.

    A failed or interrupted convert removes the destination it (re)wrote.
    """
    s = _need_file(src)
    d = os.fspath(dst)
    _refuse_overwrite(s, d, qemu_img)
    args = ["convert", "-p"]
    if src_fmt:
        args += ["-f", _check_fmt(src_fmt)]
    args += ["-O", _check_fmt(dst_fmt)]
    if compress:
        args.append("-c")
    if options:
        args += ["-o", encode_options(options)]
    if snapshot:
        known = [x.name for x in info(s, qemu_img=qemu_img).snapshots]
        if snapshot not in known:
            raise NotFound(f"image '{s}' has no internal snapshot '{snapshot}'"
                           + (f"; it has: {', '.join(known)}" if known else "; it has none"))
        args += ["-l", f"snapshot.name={snapshot}"]
    args += [_file_arg(s), _file_arg(d)]
    before = _stat_key(d)
    done = False
    with tempfile.TemporaryFile() as errf:
        try:
            proc = subprocess.Popen([qemu_img or QEMU_IMG, *args], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=errf, preexec_fn=die_with_parent())
        except FileNotFoundError as exc:
            raise HostError(f"cannot run {qemu_img or QEMU_IMG}: not installed; install Debian's qemu-utils") from exc
        try:
            assert proc.stdout is not None
            _read_progress(proc.stdout, progress_cb)
            rc = proc.wait()
            if rc != 0:
                errf.seek(0)
                detail = errf.read().decode(errors="replace").strip()
                raise QemuError(f"qemu-img could not convert '{s}' to '{d}' (exit status {rc})",
                                detail=detail or None)
            done = True
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
            if not done and _stat_key(d) != before and os.path.isfile(d):
                os.unlink(d)


def _read_progress(stream: Any, progress_cb: ProgressCallback | None) -> None:
    """qemu-img -p prints '    (NN.NN/100%)\\r' on stdout; call back with each new value."""
    buf = b""
    last: float | None = None
    while True:
        chunk = stream.read1(4096)
        if not chunk:
            break
        buf += chunk
        *whole, buf = re.split(rb"[\r\n]", buf)
        for piece in whole:
            m = _PROGRESS_RE.search(piece)
            if m and progress_cb is not None:
                value = float(m.group(1))
                if value != last:
                    last = value
                    progress_cb(value)
    m = _PROGRESS_RE.search(buf)
    if m and progress_cb is not None and float(m.group(1)) != last:
        progress_cb(float(m.group(1)))


def human_size(n: int) -> str:
    """qemu-img's size text: 3 significant digits, powers of 1024 ('196 KiB', '1.5 GiB', '512 B')."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    i = 0
    while i + 1 < len(units) and n >= 1000 * 1024**i:
        i += 1
    return f"{n / 1024**i:.3g} {units[i]}"


# ---------------------------------------------------------------- internal snapshots (qemu-img snapshot)
def image_opts(path: str | os.PathLike[str], fmt: str = "qcow2", file_driver: str = "file") -> str:
    """An --image-opts string that names the format: `qemu-img snapshot` has no -f, and probing is unsafe.

    Commas in the path are doubled (qemu's option syntax); ``file_driver`` is 'file' or 'host_device'.
    """
    if file_driver not in ("file", "host_device"):
        raise InvalidArgument(f"image protocol driver '{file_driver}' is not supported; use file or host_device")
    return f"driver={_check_fmt(fmt)},file.driver={file_driver},file.filename={os.fspath(path).replace(',', ',,')}"


def snapshot_list(path: str | os.PathLike[str], *, fmt: str = "qcow2", file_driver: str = "file",
                  force_share: bool = False, qemu_img: str | None = None) -> list[Snapshot]:
    """The internal snapshots an image holds (from `qemu-img info --output=json`, format given)."""
    p = _need_file(path)
    args = ["info", "--output=json", "--image-opts"]
    if force_share:
        args.append("-U")
    proc = _run([*args, image_opts(p, fmt, file_driver)], p, "read", binary=qemu_img)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise QemuError(f"qemu-img info '{p}' printed no JSON", detail=proc.stdout[:500]) from exc
    return [_snapshot(s) for s in data.get("snapshots", [])]


def _snapshot_op(flag: str, doing: str, path: str | os.PathLike[str], tag: str, fmt: str, file_driver: str,
                 qemu_img: str | None) -> None:
    p = _need_file(path)
    if not tag:
        raise InvalidArgument(f"cannot {doing} in '{p}': the snapshot name is empty")
    _run(["snapshot", "-q", "--image-opts", flag, tag, image_opts(p, fmt, file_driver)], p,
         f"{doing} '{tag}' in", binary=qemu_img)


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
def commit(path: str | os.PathLike[str], *, qemu_img: str | None = None) -> None:
    """`qemu-img commit`: write an overlay's data into its backing file (the overlay stays, emptied)."""
    p = _need_file(path)
    if info(p, qemu_img=qemu_img).backing_filename is None:
        raise InvalidArgument(f"image '{p}' has no backing file, so there is nothing to commit into")
    _run(["commit", "-q", _file_arg(p)], p, "commit", binary=qemu_img)


def rebase(path: str | os.PathLike[str], backing: str | None, *, backing_fmt: str | None = None,
           unsafe: bool = False, qemu_img: str | None = None) -> None:
    """`qemu-img rebase -b BACKING [-F FMT] [-u]`: give an overlay another backing file ("" or None: none).

    Safe mode copies what differs so the guest-visible data stays the same; -u only rewrites the header.
    """
    p = _need_file(path)
    if backing:
        base = backing if os.path.isabs(backing) else os.path.join(os.path.dirname(p), backing)
        if not os.path.exists(base):
            raise NotFound(f"new backing file '{backing}' does not exist (relative names are relative to "
                           f"the image's directory)")
    args = ["rebase", "-q"]
    if unsafe:
        args.append("-u")
    args += ["-b", backing or ""]
    if backing and backing_fmt:
        args += ["-F", _check_fmt(backing_fmt, "backing format")]
    _run([*args, _file_arg(p)], p, "rebase", binary=qemu_img)


def map_image(path: str | os.PathLike[str], *, qemu_img: str | None = None) -> list[dict[str, Any]]:
    """`qemu-img map --output=json`: extents with start, length, data, zero, offset."""
    p = _need_file(path)
    proc = _run(["map", "--output=json", _file_arg(p)], p, "map", binary=qemu_img)
    return list(json.loads(proc.stdout))


def measure(*, path: str | os.PathLike[str] | None = None, size_bytes: int | None = None, out_fmt: str = "qcow2",
            options: dict[str, Any] | None = None, qemu_img: str | None = None) -> dict[str, int]:
    """`qemu-img measure`: bytes a new image needs ("required") and at most ("fully-allocated")."""
    args = ["measure", "--output=json", "-O", _check_fmt(out_fmt)]
    if options:
        args += ["-o", encode_options(options)]
    if path is not None:
        p = _need_file(path)
        args.append(_file_arg(p))
    elif size_bytes is not None:
        p = f"{size_bytes} bytes"
        args += ["--size", str(size_bytes)]
    else:
        raise InvalidArgument("measure needs an image file or --size")
    proc = _run(args, p, "measure", binary=qemu_img)
    return {k: int(v) for k, v in json.loads(proc.stdout).items()}
