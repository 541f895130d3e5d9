"""Storage volume commands (virsh's 'volume' help group), with virsh 9.0's messages and layouts.

A volume is named as virsh names it: by name with --pool, else by key or
path. Sizes take virsh's scaled integers (default bytes; k/KiB, M/MiB, G/GiB,
T/TiB, P, E are powers of 1024, KB/MB/GB/TB powers of 1000; read by
model.units.parse_size) and print as virsh's "1.00 GiB" (``pretty``, which
pool_cmds uses too). The <volume> sent is a model Volume rendered by the model.
"""
from __future__ import annotations

import os

from ..errors import InvalidArgument, NotFound
from .domain_cmds import read_file
from .spec import BOOL, INT, STRING, Command, Opt
from .table import render, render_keyvalue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..client.storage import StorageVolume
    from .context import Ctx

# ---------------------------------------------------------------- sizes
_PRETTY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def size_arg(text: str, what: str = "size") -> int:
    """A size option as virsh reads it (bytes without a suffix), by the model's one size parser."""
    from ..model.units import parse_size

    return parse_size(text, "b", what=what)


def pretty(n: int) -> str:
    """virsh's vshPrettyCapacity with "%.2lf %s": 0 -> '0.00 B', 1073741824 -> '1.00 GiB'."""
    value = float(n)
    for i, unit in enumerate(_PRETTY):
        if n < 1024 ** (i + 1) or unit == _PRETTY[-1]:
            value = n / 1024**i
            return f"{value:.2f} {unit}"
    return f"{value:.2f} B"  # not reached


# ---------------------------------------------------------------- layouts
def volume_xml(name: str, capacity: int, allocation: int | None, fmt: str | None,
               backing: str | None = None, backing_fmt: str | None = None) -> str:
    """The <volume> document vol-create-as sends: a model Volume in virsh's --print-xml layout."""
    from ..model.storage import BackingStore, Volume
    from ..model.storage_xml import format_volume_request_xml

    store = BackingStore(path=backing, format=backing_fmt or None) if backing else None
    return format_volume_request_xml(Volume(name=name, capacity=capacity, allocation=allocation,
                                            format=fmt or None, backing=store))


def renamed_xml(xml: str, name: str) -> str:
    """vol-clone --print-xml: the volume's XML (from vol-dumpxml) under its new name."""
    from dataclasses import replace

    from ..model.storage_xml import format_volume_xml, parse_volume_xml

    return format_volume_xml(replace(parse_volume_xml(xml), name=name))


def vol_list_text(vols: list[dict[str, Any]], details: bool, quiet: bool = False) -> str:
    if not details:
        return render(["Name", "Path"], [[v["name"], v.get("path") or "unknown"] for v in vols], quiet=quiet)
    rows = []
    for v in vols:
        alloc = v.get("allocation")
        rows.append([v["name"], v.get("path") or "unknown", v.get("type") or "unknown", pretty(v["capacity"]),
                     pretty(alloc) if alloc is not None else "unknown"])
    return render(["Name", "Path", "Type", "Capacity", "Allocation"], rows, quiet=quiet)


def vol_info_text(v: dict[str, Any], in_bytes: bool = False, physical: bool = False) -> str:
    second = "Physical:" if physical else "Allocation:"
    used = (v.get("physical") if physical else None) or v.get("allocation") or 0
    if in_bytes:
        sizes = [("Capacity:", f"{v['capacity']} bytes"), (second, f"{used} bytes")]
    else:
        sizes = [("Capacity:", pretty(v["capacity"])), (second, pretty(used))]
    return render_keyvalue([("Name:", v["name"]), ("Type:", v.get("type") or "unknown"), *sizes])


# ---------------------------------------------------------------- helpers
def lookup(ctx: Ctx, ref: str, pool: str | None) -> StorageVolume:
    """virsh's volume lookup (name in --pool, else key, else path)."""
    return ctx.conn.lookup_volume(ref, pool)


def lookup_info(ctx: Ctx, ref: str, pool: str | None) -> dict[str, Any]:
    """The volume's info as its lookup answered it: one request, where asking again would cost a second."""
    vol = lookup(ctx, ref, pool)
    return vol.last or vol.info()


def _say(ctx: Ctx, text: str, vol: Any = None) -> None:
    data: dict[str, Any] = {"result": text}
    if vol is not None:
        data["volume"] = vol
    ctx.out.message(text, data)


def _progress(ctx: Ctx) -> Any:
    """A progress bar on stderr when it is a terminal (and output is text), else None."""
    try:
        tty = os.isatty(ctx.out.stderr.fileno())
    except (AttributeError, ValueError, OSError):
        tty = False
    if not tty or ctx.out.json or ctx.out.quiet:
        return None
    from .img_cmds import ProgressBar

    bar = ProgressBar(ctx.out.stderr)

    def show(done: int, total: int) -> None:
        bar(100.0 if total == 0 else done * 100.0 / total)

    show.end = bar.end  # type: ignore[attr-defined]
    return show


def _finish(progress: Any) -> None:
    if progress is not None:
        progress.end()


def _backing_path(ctx: Ctx, pool: str, ref: str) -> str:
    """--backing-vol as virsh reads it: a volume name in the pool, else a key, else a path."""
    try:
        info = ctx.conn.pool(pool).volume(ref).info() if "/" not in ref else None
    except (NotFound, InvalidArgument):
        info = None
    if info is None:
        try:
            info = ctx.conn.lookup_volume(ref).info()
        except NotFound:
            raise NotFound(f"failed to get vol '{ref}': no volume of that name in pool '{pool}' and no volume "
                           "with that key or path; see `pyvirt vol-list POOL`") from None
    return str(info["path"])


# ---------------------------------------------------------------- commands
def cmd_vol_create_as(ctx: Ctx, a: dict[str, Any]) -> None:
    capacity = size_arg(a["capacity"])
    allocation = size_arg(a["allocation"], "allocation") if a["allocation"] is not None else None
    if a["backing_vol_format"] and not a["backing_vol"]:
        raise InvalidArgument("--backing-vol-format needs --backing-vol (the volume to build on)")
    backing = _backing_path(ctx, a["pool"], a["backing_vol"]) if a["backing_vol"] else None
    xml = volume_xml(a["name"], capacity, allocation, a["format"], backing, a["backing_vol_format"])
    if a["print_xml"]:
        ctx.out.text(xml, {"xml": xml})
        return
    data = ctx.conn.pool(a["pool"]).create_volume(xml).last
    _say(ctx, f"Vol {a['name']} created", data)


def cmd_vol_create(ctx: Ctx, a: dict[str, Any]) -> None:
    vol = ctx.conn.pool(a["pool"]).create_volume(read_file(a["file"]))
    _say(ctx, f"Vol {vol.name} created from {a['file']}", vol.last)


def cmd_vol_create_from(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = read_file(a["file"])
    source = lookup(ctx, a["vol"], a["inputpool"])
    vol = ctx.conn.pool(a["pool"]).create_volume_from(xml, source)
    _say(ctx, f"Vol {vol.name} created from input vol {source.name}", vol.last)


def cmd_vol_clone(ctx: Ctx, a: dict[str, Any]) -> None:
    source = lookup(ctx, a["vol"], a["pool"])
    if a["print_xml"]:
        xml = renamed_xml(source.xml(), a["newname"])
        ctx.out.text(xml, {"xml": xml})
        return
    vol = source.clone(a["newname"], linked=a["linked"])
    _say(ctx, f"Vol {vol.name} cloned from {source.name}", vol.last)


def cmd_vol_delete(ctx: Ctx, a: dict[str, Any]) -> None:
    data = lookup(ctx, a["vol"], a["pool"]).delete()
    _say(ctx, f"Vol {a['vol']} deleted", data)


def cmd_vol_resize(ctx: Ctx, a: dict[str, Any]) -> None:
    text, delta, shrink = a["capacity"].strip(), a["delta"], a["shrink"]
    if a["allocate"]:
        raise InvalidArgument("vol-resize --allocate is not supported: the new space stays sparse; resize "
                              "without it")
    if text.startswith("-"):
        if not shrink:
            raise InvalidArgument("negative size requires --shrink")
        text, delta = text[1:], True
    capacity = size_arg(text)
    vol = lookup(ctx, a["vol"], a["pool"])
    vol.resize(capacity, delta=delta, shrink=shrink)
    how = "by" if delta else "to"
    _say(ctx, f"Size of volume '{vol.name}' successfully changed {how} {text}", vol.last)


def cmd_vol_wipe(ctx: Ctx, a: dict[str, Any]) -> None:
    vol = lookup(ctx, a["vol"], a["pool"]).wipe(a["algorithm"])
    _say(ctx, f"Vol {a['vol']} wiped", vol.last)


def cmd_vol_set_format(ctx: Ctx, a: dict[str, Any]) -> None:
    if a["pool"]:  # by name, not looked up: reading the volume as its current record may be what fails
        from ..client.storage import StorageVolume

        target = StorageVolume(ctx.conn, a["pool"], a["vol"])
    else:
        target = lookup(ctx, a["vol"], a["pool"])
    vol = target.set_format(a["format"], a["backing_format"])
    backing = (vol.last or {}).get("backing") if isinstance(vol.last, dict) else None
    on = f" on {backing['path']} ({backing['format']})" if backing else ""
    _say(ctx, f"Vol {a['vol']} recorded as {a['format']}{on}", vol.last)


def cmd_vol_upload(ctx: Ctx, a: dict[str, Any]) -> None:
    from ..client.storage import file_size

    vol = lookup(ctx, a["vol"], a["pool"])
    path = a["file"]
    try:
        fh = open(path, "rb")  # noqa: SIM115 -- closed below, after the stream
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror or exc}") from exc
    progress = None
    try:
        size = file_size(fh)
        length = a["length"] or size
        if length > size:
            raise InvalidArgument(f"file '{path}' holds {size} bytes; --length {length} asks for more; give at "
                                  f"most {size}")
        progress = _progress(ctx)
        sent = vol.upload(fh, length, offset=a["offset"] or 0, progress=progress)
    finally:
        _finish(progress)
        fh.close()
    if ctx.out.json:
        ctx.out.dump({"pool": vol.pool, "volume": vol.name, "offset": a["offset"] or 0, "bytes": sent})


def cmd_vol_download(ctx: Ctx, a: dict[str, Any]) -> None:
    vol = lookup(ctx, a["vol"], a["pool"])
    path = a["file"]
    created = False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        created = True
    except FileExistsError:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        except OSError as exc:
            raise InvalidArgument(f"cannot create {path}: {exc.strerror or exc}") from exc
    except OSError as exc:
        raise InvalidArgument(f"cannot create {path}: {exc.strerror or exc}") from exc
    progress = None
    ok = False
    try:
        with os.fdopen(fd, "wb") as sink:
            progress = _progress(ctx)
            got = vol.download(sink, offset=a["offset"] or 0, length=a["length"] or None, progress=progress)
        ok = True
    finally:
        _finish(progress)
        if not ok and created:
            os.unlink(path)
    if ctx.out.json:
        ctx.out.dump({"pool": vol.pool, "volume": vol.name, "offset": a["offset"] or 0, "bytes": got})


def cmd_vol_info(ctx: Ctx, a: dict[str, Any]) -> None:
    v = lookup_info(ctx, a["vol"], a["pool"])
    ctx.out.text(vol_info_text(v, a["bytes"], a["physical"]), v)


def cmd_vol_list(ctx: Ctx, a: dict[str, Any]) -> None:
    vols = ctx.conn.pool(a["pool"]).list_volumes()
    ctx.out.text(vol_list_text(vols, a["details"], ctx.out.quiet), vols)


def cmd_vol_dumpxml(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = lookup(ctx, a["vol"], a["pool"]).xml()
    ctx.out.text(xml, {"xml": xml})


def _field(name: str) -> Any:
    def handler(ctx: Ctx, a: dict[str, Any]) -> None:
        v = lookup_info(ctx, a["vol"], a.get("pool"))
        ctx.out.text(str(v[name]), {name: v[name]})

    handler.__name__ = f"cmd_vol_{name}"
    return handler


def cmd_vol_pool(ctx: Ctx, a: dict[str, Any]) -> None:
    vol = lookup(ctx, a["vol"], None)
    if a["uuid"]:
        uuid = ctx.conn.pool(vol.pool).info()["uuid"]
        ctx.out.text(uuid, {"uuid": uuid})
    else:
        ctx.out.text(vol.pool, {"pool": vol.pool})


VOL = Opt("vol", STRING, "vol name, key or path", required=True, positional=True)
POOL_OPT = Opt("pool", STRING, "pool name or uuid")
POOL_NAME = Opt("pool", STRING, "pool name", required=True, positional=True)
POOL_FULL = Opt("pool", STRING, "pool name or uuid", required=True, positional=True)
VOL_FILE = Opt("file", STRING, "file containing an XML vol description", required=True, positional=True)
VALIDATE = Opt("validate", BOOL, "validate the XML against the schema (pyvirt always validates)")
PRINT_XML = Opt("print-xml", BOOL, "print XML document, but don't define/create")

COMMANDS = (
    Command("vol-clone", "volume", "clone a volume.", cmd_vol_clone,
            (VOL, Opt("newname", STRING, "clone name", required=True, positional=True), POOL_OPT,
             Opt("linked", BOOL, "pyvirt: make a qcow2 overlay backed by the volume instead of a full copy"),
             Opt("print-xml", BOOL, "print XML document rather than clone the volume")),
            "Clone an existing volume within the parent pool.\n"
            "pyvirt adds --linked: a thin qcow2 clone whose backing store is the original (left unchanged)."),
    Command("vol-create-as", "volume", "create a volume from a set of args", cmd_vol_create_as,
            (POOL_NAME, Opt("name", STRING, "name of the volume", required=True, positional=True),
             Opt("capacity", STRING, "size of the vol, as scaled integer (default bytes)", required=True,
                 positional=True),
             Opt("allocation", STRING, "initial allocation size, as scaled integer (default bytes)"),
             Opt("format", STRING, "file format type raw,qcow2"),
             Opt("backing-vol", STRING, "the backing volume if taking a snapshot"),
             Opt("backing-vol-format", STRING, "format of backing volume if taking a snapshot"),
             PRINT_XML),
            "Create a vol."),
    Command("vol-create", "volume", "create a vol from an XML file", cmd_vol_create,
            (POOL_NAME, VOL_FILE, VALIDATE), "Create a vol."),
    Command("vol-create-from", "volume", "create a vol, using another volume as input", cmd_vol_create_from,
            (POOL_FULL, VOL_FILE, VOL,
             Opt("inputpool", STRING, "pool name or uuid of the input volume's pool"), VALIDATE),
            "Create a vol from an existing volume."),
    Command("vol-delete", "volume", "delete a vol", cmd_vol_delete, (VOL, POOL_OPT), "Delete a given vol."),
    Command("vol-download", "volume", "download volume contents to a file", cmd_vol_download,
            (VOL, Opt("file", STRING, "file", required=True, positional=True), POOL_OPT,
             Opt("offset", INT, "volume offset to download from"),
             Opt("length", INT, "amount of data to download")),
            "Download volume contents to a file"),
    Command("vol-dumpxml", "volume", "vol information in XML", cmd_vol_dumpxml, (VOL, POOL_OPT),
            "Output the vol information as an XML dump to stdout."),
    Command("vol-info", "volume", "storage vol information", cmd_vol_info,
            (VOL, POOL_OPT, Opt("bytes", BOOL, "sizes are represented in bytes rather than pretty units"),
             Opt("physical", BOOL, "return the physical size of the volume in allocation field")),
            "Returns basic information about the storage vol."),
    Command("vol-key", "volume", "returns the volume key for a given volume name or path", _field("key"),
            (Opt("vol", STRING, "volume name or path", required=True, positional=True), POOL_OPT)),
    Command("vol-list", "volume", "list vols", cmd_vol_list,
            (POOL_FULL, Opt("details", BOOL, "display extended details for volumes")),
            "Returns list of vols by pool."),
    Command("vol-name", "volume", "returns the volume name for a given volume key or path", _field("name"),
            (Opt("vol", STRING, "volume key or path", required=True, positional=True),)),
    Command("vol-path", "volume", "returns the volume path for a given volume name or key", _field("path"),
            (Opt("vol", STRING, "volume name or key", required=True, positional=True), POOL_OPT)),
    Command("vol-pool", "volume", "returns the storage pool for a given volume key or path", cmd_vol_pool,
            (Opt("vol", STRING, "volume key or path", required=True, positional=True),
             Opt("uuid", BOOL, "return the pool uuid rather than pool name"))),
    Command("vol-resize", "volume", "resize a vol", cmd_vol_resize,
            (VOL, Opt("capacity", STRING, "new capacity for the vol, as scaled integer (default bytes)",
                      required=True, positional=True),
             POOL_OPT, Opt("allocate", BOOL, "allocate the new capacity, rather than leaving it sparse"),
             Opt("delta", BOOL, "use capacity as a delta to current size, rather than the new size"),
             Opt("shrink", BOOL, "allow the resize to shrink the volume")),
            "Resizes a storage volume. This is safe only for storage volumes not in use by an active guest.\n"
            "See blockresize for live resizing."),
    Command("vol-set-format", "volume", "record the format of a volume (pyvirt never guesses one)",
            cmd_vol_set_format,
            (VOL, Opt("format", STRING, "raw or qcow2", required=True, positional=True), POOL_OPT,
             Opt("backing-format", STRING, "format of the backing file a qcow2 header names without one")),
            "pyvirt opens a volume as the format it made it with; a file it found in a pool is raw. This records\n"
            "another format for it (a qcow2 image copied into the pool); the image's backing file, if any, is\n"
            "read from its header and recorded too. pyvirt extension (virsh has no such command)."),
    Command("vol-upload", "volume", "upload file contents to a volume", cmd_vol_upload,
            (VOL, Opt("file", STRING, "file", required=True, positional=True), POOL_OPT,
             Opt("offset", INT, "volume offset to upload to"), Opt("length", INT, "amount of data to upload")),
            "Upload file contents to a volume"),
    Command("vol-wipe", "volume", "wipe a vol", cmd_vol_wipe,
            (VOL, POOL_OPT, Opt("algorithm", STRING, "perform selected wiping algorithm (pyvirt: zero only)")),
            "Ensure data previously on a volume is not accessible to future reads"),
)
