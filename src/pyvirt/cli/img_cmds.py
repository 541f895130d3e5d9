"""`pyvirt img VERB ...`: qemu-img's create/info/check/resize/convert with qemu-img's options.

These work on local files and need no daemon. pyvirt.qemu.img (dataclasses,
subprocess) loads inside the handler, so `pyvirt list` never pays for it.

Unlike qemu-img, pyvirt never guesses an image's format from its content:
every verb that reads an image wants -f (qemu-img warns and guesses; a guest
that owned a raw disk's bytes chooses what it guesses, CVE-2010-2237). The
error says so and names the way out. `img info --probe` is the one place that
guesses, because the person asked: it is how one finds out what a file
claims to be. snapshot, commit and rebase work on qcow2 images and name that
format themselves (commit and rebase take -f for another).
"""
from __future__ import annotations

from ..errors import InvalidArgument, QemuError
from .spec import STRING, Command, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx

USAGE = """\
pyvirt img create -f FMT [-b BACKING -F BACKING_FMT] [-o k=v,...] FILE [SIZE]
pyvirt img info (-f FMT | --probe) [--json] [-U] [--backing-chain] FILE
pyvirt img check -f FMT FILE
pyvirt img resize -f FMT [--shrink] FILE [+|-]SIZE
pyvirt img convert -f FMT -O FMT [-c] [-p] [-s SNAPSHOT] [-o k=v,...] SRC DST
pyvirt img snapshot [-c | -l | -d | -a] [TAG] FILE
pyvirt img commit [-f FMT] FILE
pyvirt img rebase [-f FMT] [-u] -b BACKING [-F BACKING_FMT] FILE
pyvirt img map -f FMT FILE
pyvirt img measure [-O FMT] [--size SIZE | -f FMT FILE]
SIZE takes qemu-img's suffixes: k, M, G, T (powers of 1024); none means bytes.
pyvirt never guesses a format from an image's content: give -f (info --probe lets qemu-img guess)."""

# verb -> (getopt short options, long options, positional names)
VERBS: dict[str, tuple[str, list[str], tuple[str, ...]]] = {
    "create": ("f:b:F:o:q", [], ("file", "size?")),
    "info": ("f:U", ["backing-chain", "force-share", "probe"], ("file",)),
    "check": ("f:q", [], ("file",)),
    "resize": ("f:q", ["shrink"], ("file", "size")),
    "convert": ("f:O:cpo:qs:", [], ("src", "dst")),
    "snapshot": ("c:d:a:lq", [], ("file",)),
    "commit": ("f:q", [], ("file",)),
    "rebase": ("f:ub:F:q", [], ("file",)),
    "map": ("f:", ["output="], ("file",)),
    "measure": ("f:O:o:", ["size=", "output="], ("file?",)),
}
VERB_NAMES = ", ".join(VERBS)


class ImgCommand(Command):
    """A command that keeps its raw arguments: qemu-img's short options are not virsh's syntax."""

    def parse(self, argv: list[str]) -> dict[str, Any]:
        return {"argv": list(argv)}

    def synopsis(self) -> str:
        return "img <verb> [options] FILE..."


def parse_verb(argv: list[str]) -> tuple[str, dict[str, str | bool], dict[str, str | None]]:
    """`['resize', '--shrink', 'a.img', '-1G']` -> ('resize', {'--shrink': True}, {'file': .., 'size': ..})."""
    import getopt

    if not argv:
        raise InvalidArgument(f"img needs a verb: {VERB_NAMES}\n{USAGE}")
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        raise InvalidArgument(f"unknown img verb '{verb}': use one of {VERB_NAMES}")
    short, long, names = VERBS[verb]
    # sizes such as '-512M' are data, not options: hide their dash from getopt, restore it after
    rest = ["\0" + t if len(t) > 1 and t[0] == "-" and t[1].isdigit() else t for t in rest]
    try:
        pairs, data = getopt.gnu_getopt(rest, short, long)
        data = [t.removeprefix("\0") for t in data]
    except getopt.GetoptError as exc:
        raise InvalidArgument(f"img {verb}: {exc}\n{USAGE}") from exc
    takes_arg = {f"-{c}" for c, nxt in zip(short, short[1:] + " ", strict=True) if nxt == ":" and c != ":"}
    takes_arg |= {f"--{name[:-1]}" for name in long if name.endswith("=")}
    opts: dict[str, str | bool] = {k: (v if k in takes_arg else True) for k, v in pairs}
    required = [n for n in names if not n.endswith("?")]
    if not len(required) <= len(data) <= len(names):
        raise InvalidArgument(f"img {verb} takes {' '.join(n.upper().rstrip('?') for n in names)}, "
                              f"got {len(data)} argument(s)\n{USAGE}")
    pos = {n.rstrip("?"): (data[i] if i < len(data) else None) for i, n in enumerate(names)}
    return verb, opts, pos


def _fmt(o: dict[str, str | bool], verb: str, path: str | None) -> str:
    """The -f a verb that reads an image must have: pyvirt never lets qemu-img guess."""
    fmt = o.get("-f")
    if isinstance(fmt, str) and fmt:
        return fmt
    hint = "; `pyvirt img info --probe FILE` shows what qemu-img would guess" if verb != "info" else \
        ", or --probe to let qemu-img guess from the content (only for images no guest or stranger wrote)"
    raise InvalidArgument(f"img {verb} needs the format of '{path}': give -f raw or -f qcow2. pyvirt never guesses "
                          "a format from an image's content, since whoever wrote the image chooses the guess (a "
                          f"raw disk can be made to look like a qcow2 image on any host file){hint}")


def _options(text: str | bool | None) -> dict[str, str]:
    if not isinstance(text, str) or not text:
        return {}
    out: dict[str, str] = {}
    for part in text.replace(",,", "\0").split(","):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"image option '{part}' is not KEY=VALUE (e.g. cluster_size=64k)")
        out[key] = value.replace("\0", ",")
    return out


def info_text(i: Any) -> str:
    """`qemu-img info`'s layout for one image."""
    from ..qemu.img import human_size

    lines = [f"image: {i.filename}", f"file format: {i.format}",
             f"virtual size: {human_size(i.virtual_size)} ({i.virtual_size} bytes)",
             f"disk size: {human_size(i.actual_size) if i.actual_size is not None else 'unavailable'}"]
    if i.cluster_size is not None:
        lines.append(f"cluster_size: {i.cluster_size}")
    if i.backing_filename:
        full = i.full_backing_filename
        extra = f" (actual path: {full})" if full and full != i.backing_filename else ""
        lines.append(f"backing file: {i.backing_filename}{extra}")
    if i.backing_format:
        lines.append(f"backing file format: {i.backing_format}")
    if i.snapshots:
        lines.append("Snapshot list:")
        lines.append(f"{'ID':<8}{'TAG':<24}{'VM SIZE':>10}")
        lines += [f"{s.id:<8}{s.name:<24}{human_size(s.vm_state_size):>10}" for s in i.snapshots]
    if i.dirty_flag:
        lines.append("dirty flag: true")
    return "\n".join(lines)


class ProgressBar:
    """A one-line bar on stderr, redrawn in place: `[#######.......]  50.00%  ETA 0:12`."""

    WIDTH = 40

    def __init__(self, stream: Any) -> None:
        import time

        self.stream = stream
        self.clock = time.monotonic
        self.started = self.clock()

    def __call__(self, percent: float) -> None:
        filled = int(self.WIDTH * percent / 100)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {percent:6.2f}%{self.eta(percent)}")
        self.stream.flush()

    def eta(self, percent: float) -> str:
        """Time left at the rate so far (shown once there is a rate to go by)."""
        elapsed = self.clock() - self.started
        if percent <= 0 or percent >= 100 or elapsed < 0.5:
            return "  ETA --:--" if percent < 100 else "  done     "
        left = int(elapsed * (100 - percent) / percent)
        return f"  ETA {left // 60}:{left % 60:02d}"

    def end(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def cmd_img(ctx: Ctx, a: dict[str, Any]) -> int:
    verb, o, pos = parse_verb(a["argv"])
    if verb == "convert":
        return _convert(ctx, o, pos)
    from ..qemu import img

    out = ctx.out
    if verb == "create":
        fmt = o.get("-f")
        if not isinstance(fmt, str):
            raise InvalidArgument("img create needs the image format: -f qcow2 or -f raw")
        from ..model.units import parse_size  # here, not for every verb: it loads fractions and decimal

        size = parse_size(pos["size"], default_unit="b") if pos["size"] else None
        backing, bfmt = o.get("-b"), o.get("-F")
        img.create(pos["file"] or "", fmt, size, backing=backing if isinstance(backing, str) else None,
                   backing_fmt=bfmt if isinstance(bfmt, str) else None, options=_options(o.get("-o")))
        shown = f" size={size}" if size is not None else ""
        out.message(f"Formatting '{pos['file']}', fmt={fmt}{shown}", {"file": pos["file"], "format": fmt,
                                                                     "size": size})
    elif verb == "info":
        chain = "--backing-chain" in o
        probe = "--probe" in o
        if probe and "-f" in o:
            raise InvalidArgument("img info takes -f FMT or --probe, not both")
        fmt = None if probe else _fmt(o, verb, pos["file"])
        i = img.info(pos["file"] or "", fmt, probe=probe, backing_chain=chain,
                     force_share="-U" in o or "--force-share" in o)
        layers = [i, *i.chain]
        data: Any = [x.to_dict() for x in layers] if chain else i.to_dict()
        out.text("\n\n".join(info_text(x) for x in layers), data)
    elif verb == "check":
        report = img.check(pos["file"] or "", _fmt(o, verb, pos["file"]))
        bad = report.get("corruptions", 0) + report.get("check-errors", 0)
        lines = [f"{bad} errors were found on the image." if bad else "No errors were found on the image."]
        if report.get("leaks"):
            lines.append(f"{report['leaks']} leaked clusters were found on the image.")
        if "image-end-offset" in report:
            lines.append(f"Image end offset: {report['image-end-offset']}")
        out.text("\n".join(lines), report)
        return 1 if bad else 0
    elif verb == "resize":
        new = img.resize(pos["file"] or "", pos["size"] or "", fmt=_fmt(o, verb, pos["file"]), shrink="--shrink" in o)
        out.message("Image resized.", {"file": pos["file"], "virtual_size": new})
    else:
        return _other_verb(ctx, verb, o, pos)
    return 0


def _convert(ctx: Ctx, o: dict[str, str | bool], pos: dict[str, str | None]) -> int:
    """img convert loads the copy alone (qemu/img_convert.py): its start is part of every copy's time."""
    from ..qemu.img_convert import convert

    out = ctx.out
    dst_fmt = o.get("-O")
    if not isinstance(dst_fmt, str):
        raise InvalidArgument("img convert needs the output format: -O qcow2 or -O raw")
    src_fmt, snap = _fmt(o, "convert", pos["src"]), o.get("-s")
    bar = ProgressBar(out.stderr) if "-p" in o else None
    try:
        convert(pos["src"] or "", pos["dst"] or "", src_fmt=src_fmt, dst_fmt=dst_fmt, compress="-c" in o,
                options=_options(o.get("-o")), progress_cb=bar, snapshot=snap if isinstance(snap, str) else None)
    finally:
        if bar is not None:
            bar.end()
    out.message(f"Converted '{pos['src']}' to '{pos['dst']}' ({dst_fmt})",
                {"src": pos["src"], "dst": pos["dst"], "format": dst_fmt})
    return 0


def _other_verb(ctx: Ctx, verb: str, o: dict[str, str | bool], pos: dict[str, str | None]) -> int:
    """snapshot, commit, rebase, map and measure."""
    from ..model.units import parse_size
    from ..qemu import img

    out, path = ctx.out, pos.get("file") or ""
    if verb == "snapshot":
        return _snapshot_verb(ctx, o, path)
    fmt = o.get("-f")
    if verb == "commit":
        img.commit(path, fmt=fmt if isinstance(fmt, str) else "qcow2")
        out.message("Image committed.", {"file": path})
    elif verb == "rebase":
        backing, bfmt = o.get("-b"), o.get("-F")
        if not isinstance(backing, str):
            raise InvalidArgument("img rebase needs -b BACKING (-b '' removes the backing file)")
        img.rebase(path, backing, fmt=fmt if isinstance(fmt, str) else "qcow2",
                   backing_fmt=bfmt if isinstance(bfmt, str) else None, unsafe="-u" in o)
        out.message(f"Rebased '{path}' onto '{backing}'" if backing else f"'{path}' has no backing file now",
                    {"file": path, "backing": backing})
    elif verb == "map":
        extents = img.map_image(path, fmt=_fmt(o, verb, path))
        lines = [f"{'Offset':<20}{'Length':<20}{'Mapped to':<20}File"]
        lines += [f"{e['start']:<#20x}{e['length']:<#20x}{e.get('offset', 0):<#20x}{path}"
                  for e in extents if e.get("data")]
        out.text("\n".join(lines), extents)
    else:  # measure
        size = o.get("--size")
        out_fmt = o.get("-O") if isinstance(o.get("-O"), str) else "qcow2"
        file = pos.get("file") or None
        result = img.measure(path=file, fmt=_fmt(o, verb, file) if file else None, out_fmt=str(out_fmt),
                             options=_options(o.get("-o")),
                             size_bytes=parse_size(size, default_unit="b") if isinstance(size, str) else None)
        out.text(f"required size: {result['required']}\nfully allocated size: {result['fully-allocated']}", result)
    return 0


def _snapshot_verb(ctx: Ctx, o: dict[str, str | bool], path: str) -> int:
    from ..qemu import img

    out = ctx.out
    fmt = "qcow2"  # the one format of ours with internal snapshots: named, not guessed
    ops = [k for k in ("-c", "-d", "-a", "-l") if k in o]
    if len(ops) > 1:
        raise InvalidArgument("img snapshot takes one of -c, -l, -d, -a")
    try:
        img.info(path, fmt)
    except QemuError as exc:
        if "not in qcow2 format" in (exc.detail or ""):
            raise InvalidArgument(f"image '{path}' is not a qcow2 image: only qcow2 images hold internal "
                                  "snapshots; convert it with `pyvirt img convert -f raw -O qcow2`") from None
        raise
    op = ops[0] if ops else "-l"
    if op == "-l":
        snaps = img.snapshot_list(path, fmt=fmt)
        lines = ["Snapshot list:", f"{'ID':<8}{'TAG':<24}{'VM SIZE':>10}"]
        lines += [f"{s.id:<8}{s.name:<24}{img.human_size(s.vm_state_size):>10}" for s in snaps]
        out.text("\n".join(lines) if snaps else "", [s.__dict__ for s in snaps])
        return 0
    tag = str(o[op])
    if op == "-c":
        if any(s.name == tag for s in img.snapshot_list(path, fmt=fmt)):
            raise InvalidArgument(f"image '{path}' already has a snapshot named '{tag}'; pick another name")
        img.snapshot_create(path, tag, fmt=fmt)
        out.message(f"Snapshot '{tag}' created.", {"file": path, "snapshot": tag})
    elif op == "-d":
        _need_snapshot(path, tag, fmt)
        img.snapshot_delete(path, tag, fmt=fmt)
        out.message(f"Snapshot '{tag}' deleted.", {"file": path, "snapshot": tag})
    else:
        _need_snapshot(path, tag, fmt)
        img.snapshot_apply(path, tag, fmt=fmt)
        out.message(f"Snapshot '{tag}' applied.", {"file": path, "snapshot": tag})
    return 0


def _need_snapshot(path: str, tag: str, fmt: str) -> None:
    from ..errors import NotFound
    from ..qemu import img

    names = [s.name for s in img.snapshot_list(path, fmt=fmt)]
    if tag not in names:
        raise NotFound(f"image '{path}' has no snapshot '{tag}'" + (f"; it has: {', '.join(names)}" if names else ""))


COMMANDS = (
    ImgCommand("img", "pyvirt", "create, inspect, check, resize, convert and snapshot disk images (qemu-img)",
               cmd_img, (Opt("verb", STRING, VERB_NAMES, required=True, positional=True),),
               "Runs qemu-img on local image files; no daemon needed.\n" + USAGE, needs_conn=False),
)
