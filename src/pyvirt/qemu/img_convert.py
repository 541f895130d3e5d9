"""`qemu-img convert`: the long copy, with qemu-img's own progress read from a pipe.

Split from img.py so the copy loads nothing it does not use (`pyvirt img
convert` and the daemon's vol-clone/vol-create-from pay only for this).
The destructive cases are refused first: converting onto the source or onto
a file in its backing chain.
"""
from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable

from ..errors import HostError, InvalidArgument, NotFound, QemuError
from ..model.formats import COW_FORMATS
from .img_args import (
    QEMU_IMG,
    check_fmt,
    encode_options,
    file_arg,
    image_args,
    info_json,
    need_file,
    need_format,
    refuse_pseudo_filename,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .img_args import Chain

SETPRIV = "/usr/bin/setpriv"
_PROGRESS_RE = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
ProgressCallback = Callable[[float], None]


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_overwrite(src: str, dst: str, src_fmt: str, backing: Chain, qemu_img: str | None = None) -> None:
    """Converting onto the source, or onto a file in its backing chain, destroys the data being read."""
    if _same_file(src, dst):
        raise InvalidArgument(f"cannot convert '{src}' onto itself ('{dst}' is the same file); "
                              "write the converted image to another path, then rename it")
    if not os.path.exists(dst) or src_fmt not in COW_FORMATS:
        return
    if backing is not None:
        names = [layer.path for layer in backing]
    else:  # only a person's image on an existing destination gets here
        chain = info_json(src, src_fmt, backing_chain=True, qemu_img=qemu_img)
        names = [str(layer["filename"]) for layer in chain[1:]]
    for name in names:
        if _same_file(name, dst):
            raise InvalidArgument(f"cannot convert '{src}' onto '{dst}': it is a backing file of '{src}'; "
                                  "choose another destination")


def _stat_key(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def convert(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, src_fmt: str | None,
            dst_fmt: str, backing: Chain = None, compress: bool = False, options: dict[str, Any] | None = None,
            progress_cb: ProgressCallback | None = None, qemu_img: str | None = None,
            snapshot: str | None = None, src_block: bool = False) -> None:
    """`qemu-img convert -p -f SRC_FMT -O DST_FMT`: progress goes to ``progress_cb`` as qemu-img reports it.

    ``backing`` is the source's recorded chain (copy-on-write sources); None reads it from the header
    (for images a person names). ``snapshot`` extracts that internal snapshot (-l snapshot.name=...)
    instead of the current data. Progress is read from qemu-img's own -p output on a pipe, so it costs
    the copy nothing. A failed or interrupted convert removes the destination it (re)wrote.
    """
    s = need_file(src)
    d = os.fspath(dst)
    src_fmt = need_format(src_fmt, s, "convert")
    refuse_pseudo_filename(d, "destination")
    _refuse_overwrite(s, d, src_fmt, backing, qemu_img)
    args = ["convert", *(["-p"] if progress_cb is not None else []), "-O", check_fmt(dst_fmt)]
    if compress:
        args.append("-c")
    if options:
        args += ["-o", encode_options(options)]
    if snapshot:
        found = info_json(s, src_fmt, qemu_img=qemu_img).get("snapshots", [])
        known = [str(x.get("name", "")) for x in found]
        if snapshot not in known:
            raise NotFound(f"image '{s}' has no internal snapshot '{snapshot}'"
                           + (f"; it has: {', '.join(known)}" if known else "; it has none"))
        args += ["-l", f"snapshot.name={snapshot}"]
    args += [*image_args(s, src_fmt, backing, block=src_block), file_arg(d)]
    before = _stat_key(d)
    done = False
    exe = qemu_img or QEMU_IMG
    if not os.path.exists(exe):
        raise HostError(f"cannot run {exe}: not installed; install Debian's qemu-utils")
    with os.fdopen(os.memfd_create("qemu-img-stderr", os.MFD_CLOEXEC), "w+b") as errf:
        proc = subprocess.Popen(_dies_with_caller([exe, *args]), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE if progress_cb is not None else subprocess.DEVNULL,
                                stderr=errf)
        try:
            if proc.stdout is not None:
                read_progress(proc.stdout, progress_cb)
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


def _dies_with_caller(argv: list[str]) -> list[str]:
    """argv run under `setpriv --pdeathsig KILL`: a copy must not go on writing after the process (or worker
    thread) that started it is killed, e.g. a daemon's kill -9, which leaves the copy's temporary file to the
    next start. Without setpriv (util-linux) the copy runs on, as before."""
    return [SETPRIV, "--pdeathsig", "KILL", *argv] if os.path.exists(SETPRIV) else argv


def read_progress(stream: Any, progress_cb: ProgressCallback | None) -> None:
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
