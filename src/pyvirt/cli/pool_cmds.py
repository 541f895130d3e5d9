"""Storage pool commands (virsh's 'pool' help group), with virsh 9.0's messages and layouts.

pool-define-as/pool-create-as fill a model ``Pool`` from their options and send
it in virsh's layout (the model's request formatter); pyvirt also takes
--source-dev more than once (a logical pool on several PVs).
"""
from __future__ import annotations

from ..errors import InvalidArgument
from .domain_cmds import read_file
from .spec import BOOL, STRING, Command, Opt, UsageError
from .table import render, render_keyvalue
from .vol_cmds import pretty

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..model.storage import Pool
    from .context import Ctx

# libvirt's pool types: --type accepts them all (pyvirt has pools of the first six only).
POOL_TYPES = ("dir", "fs", "netfs", "logical", "disk", "iscsi", "iscsi-direct", "scsi", "mpath", "rbd",
              "sheepdog", "gluster", "zfs", "vstorage")
REPEATABLE = ("source-dev",)


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def _say(ctx: Ctx, text: str, data: Any = None) -> None:
    ctx.out.message(text, {"result": text, **({"pool": data} if data is not None else {})})


# ---------------------------------------------------------------- layouts
# pool-define-as option -> PoolSource field, as given (an empty one is not given); --source-dev is a list
SOURCE_OPTIONS = (("source_host", "host"), ("source_path", "dir"), ("source_name", "name"),
                  ("source_format", "format"), ("source_initiator", "iqn"))


def define_as_pool(a: dict[str, Any]) -> Pool:
    """The Pool pool-define-as / pool-create-as ask for (no --target: an empty path, left to the daemon)."""
    from ..model.storage import Pool, PoolSource, PoolTarget

    source = PoolSource(devices=tuple(a.get("source_dev") or ()),
                        **{field: a[opt] for opt, field in SOURCE_OPTIONS if a.get(opt)})
    return Pool(name=a["name"], type=a["type"], target=PoolTarget(path=a.get("target") or ""), source=source)


def pool_xml(a: dict[str, Any]) -> str:
    """The <pool> document pool-define-as / pool-create-as send (virsh's vshBuildPoolXML layout)."""
    from ..model.storage_xml import format_pool_request_xml

    return format_pool_request_xml(define_as_pool(a))


def _sizes(p: dict[str, Any]) -> list[str]:
    if p.get("capacity") is None:
        return ["-", "-", "-"]
    return [pretty(p["capacity"]), pretty(p["allocation"]), pretty(p["available"])]


def pool_list_text(pools: list[dict[str, Any]], details: bool, quiet: bool = False) -> str:
    if not details:
        rows = [[p["name"], "active" if p["active"] else "inactive", _yes(p["autostart"])] for p in pools]
        return render(["Name", "State", "Autostart"], rows, quiet=quiet)
    rows = [[p["name"], p["state"], _yes(p["autostart"]), _yes(p["persistent"]), *_sizes(p)] for p in pools]
    return render(["Name", "State", "Autostart", "Persistent", "Capacity", "Allocation", "Available"], rows,
                  quiet=quiet)


def pool_info_text(p: dict[str, Any], in_bytes: bool = False) -> str:
    pairs = [("Name:", p["name"]), ("UUID:", p["uuid"]), ("State:", p["state"]),
             ("Persistent:", _yes(p["persistent"])), ("Autostart:", _yes(p["autostart"]))]
    if p["state"] == "running" and p.get("capacity") is not None:
        for key in ("capacity", "allocation", "available"):
            value = str(p[key]) if in_bytes else pretty(p[key])
            pairs.append((f"{key.capitalize()}:", value))
    return render_keyvalue(pairs)


def select(pools: list[dict[str, Any]], a: dict[str, Any]) -> list[dict[str, Any]]:
    """pool-list's filters: active by default; --all, --inactive; persistence, autostart and type."""
    if a["all"]:
        picked = list(pools)
    elif a["inactive"]:
        picked = [p for p in pools if not p["active"]]
    else:
        picked = [p for p in pools if p["active"]]
    if a["persistent"] or a["transient"]:
        picked = [p for p in picked
                  if (a["persistent"] and p["persistent"]) or (a["transient"] and not p["persistent"])]
    if a["autostart"] or a["no_autostart"]:
        picked = [p for p in picked
                  if (a["autostart"] and p["autostart"]) or (a["no_autostart"] and not p["autostart"])]
    if a["type"]:
        types = parse_types(a["type"])
        picked = [p for p in picked if p["type"] in types]
    return picked


def parse_types(text: str) -> set[str]:
    types = {t.strip() for t in text.split(",") if t.strip()}
    for t in sorted(types):
        if t not in POOL_TYPES:
            raise InvalidArgument(f"Invalid pool type '{t}'; use one or more of {', '.join(POOL_TYPES)}, "
                                  "separated by commas")
    return types


def names_text(pools: list[dict[str, Any]], name: bool, uuid: bool) -> str:
    """--name / --uuid: virsh pads names to 20 columns ("%-20s"), uuid first when both."""
    if name and uuid:
        return "".join(f"{p['uuid']} {p['name']:<20}\n" for p in pools)
    if uuid:
        return "".join(f"{p['uuid']}\n" for p in pools)
    return "".join(f"{p['name']:<20}\n" for p in pools)


# ---------------------------------------------------------------- commands
def _overwrite(a: dict[str, Any]) -> tuple[bool, bool]:
    if a.get("overwrite") and a.get("no_overwrite"):
        raise InvalidArgument("--overwrite and --no-overwrite are mutually exclusive")
    return bool(a.get("overwrite")), bool(a.get("no_overwrite"))


def cmd_pool_list(ctx: Ctx, a: dict[str, Any]) -> None:
    for flag in ("name", "uuid"):
        if a["details"] and a[flag]:
            raise InvalidArgument(f"Options --details and --{flag} are mutually exclusive")
    if a["type"]:
        parse_types(a["type"])  # a bad type is an error even before the list is fetched
    pools = select(ctx.conn.list_pools(), a)
    if ctx.out.json:
        ctx.out.dump(pools)
    elif a["name"] or a["uuid"]:
        ctx.out.text(names_text(pools, a["name"], a["uuid"]))
    else:
        ctx.out.text(pool_list_text(pools, a["details"], ctx.out.quiet))


def cmd_pool_info(ctx: Ctx, a: dict[str, Any]) -> None:
    p = ctx.conn.pool(a["pool"]).info()
    ctx.out.text(pool_info_text(p, a["bytes"]), p)


def cmd_pool_define(ctx: Ctx, a: dict[str, Any]) -> None:
    pool = ctx.conn.define_pool(read_file(a["file"]))
    _say(ctx, f"Pool {pool.name} defined from {a['file']}", pool.last)


def cmd_pool_define_as(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = pool_xml(a)
    if a["print_xml"]:
        ctx.out.text(xml, {"xml": xml})
        return
    pool = ctx.conn.define_pool(xml)
    _say(ctx, f"Pool {a['name']} defined", pool.last)


def cmd_pool_create(ctx: Ctx, a: dict[str, Any]) -> None:
    overwrite, no_overwrite = _overwrite(a)
    pool = ctx.conn.create_pool(read_file(a["file"]), build=a["build"], overwrite=overwrite,
                                no_overwrite=no_overwrite)
    _say(ctx, f"Pool {pool.name} created from {a['file']}", pool.last)


def cmd_pool_create_as(ctx: Ctx, a: dict[str, Any]) -> None:
    overwrite, no_overwrite = _overwrite(a)
    xml = pool_xml(a)
    if a["print_xml"]:
        ctx.out.text(xml, {"xml": xml})
        return
    pool = ctx.conn.create_pool(xml, build=a["build"], overwrite=overwrite, no_overwrite=no_overwrite)
    _say(ctx, f"Pool {a['name']} created", pool.last)


def cmd_pool_build(ctx: Ctx, a: dict[str, Any]) -> None:
    overwrite, no_overwrite = _overwrite(a)
    pool = ctx.conn.pool(a["pool"]).build(overwrite=overwrite, no_overwrite=no_overwrite)
    _say(ctx, f"Pool {a['pool']} built", pool.last)


def cmd_pool_start(ctx: Ctx, a: dict[str, Any]) -> None:
    overwrite, no_overwrite = _overwrite(a)
    pool = ctx.conn.pool(a["pool"]).start(build=a["build"], overwrite=overwrite, no_overwrite=no_overwrite)
    _say(ctx, f"Pool {a['pool']} started", pool.last)


def _simple(action: str, template: str) -> Any:
    def handler(ctx: Ctx, a: dict[str, Any]) -> None:
        pool = getattr(ctx.conn.pool(a["pool"]), action)()
        _say(ctx, template.format(a["pool"]), pool.last)

    handler.__name__ = f"cmd_pool_{action}"
    return handler


def cmd_pool_autostart(ctx: Ctx, a: dict[str, Any]) -> None:
    pool = ctx.conn.pool(a["pool"]).set_autostart(not a["disable"])
    what = "unmarked as autostarted" if a["disable"] else "marked as autostarted"
    _say(ctx, f"Pool {a['pool']} {what}", pool.last)


def cmd_pool_dumpxml(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = ctx.conn.pool(a["pool"]).xml(inactive=a["inactive"])
    ctx.out.text(xml, {"xml": xml})


def cmd_pool_edit(ctx: Ctx, a: dict[str, Any]) -> int | None:
    from .edit import edit_object

    pool = ctx.conn.pool(a["pool"])
    return edit_object(ctx, pool, "Pool {}", lambda: pool.last)


def cmd_pool_uuid(ctx: Ctx, a: dict[str, Any]) -> None:
    p = ctx.conn.pool(a["pool"]).info()
    ctx.out.text(p["uuid"], {"uuid": p["uuid"]})


def cmd_pool_name(ctx: Ctx, a: dict[str, Any]) -> None:
    p = ctx.conn.pool(a["pool"]).info()
    ctx.out.text(p["name"], {"name": p["name"]})


class RepeatCommand(Command):
    """A command whose REPEATABLE options may be given more than once (collected into a list)."""

    __slots__ = ()

    def parse(self, argv: list[str]) -> dict[str, Any]:
        rest: list[str] = []
        found: dict[str, list[str]] = {}
        i = 0
        while i < len(argv):
            tok = argv[i]
            i += 1
            if tok == "--":
                rest += argv[i - 1:]
                break
            name, eq, inline = tok[2:].partition("=") if tok.startswith("--") else ("", "", "")
            if name in REPEATABLE:
                if eq:
                    value = inline
                elif i < len(argv):
                    value = argv[i]
                    i += 1
                else:
                    raise UsageError(f"expected syntax: --{name} <string>")
                found.setdefault(name.replace("-", "_"), []).append(value)
                continue
            rest.append(tok)
        values = super().parse(rest)
        for opt in self.opts:
            if opt.name in REPEATABLE:
                values[opt.dest] = found.get(opt.dest, [])
        return values


POOL = Opt("pool", STRING, "pool name or uuid", required=True, positional=True)
POOL_FILE = Opt("file", STRING, "file containing an XML pool description", required=True, positional=True)
BUILD_OPTS = (Opt("build", BOOL, "build the pool as normal"),
              Opt("no-overwrite", BOOL, "do not overwrite any existing data"),
              Opt("overwrite", BOOL, "overwrite any existing data"))
X_AS_OPTS = (
    Opt("name", STRING, "name of the pool", required=True, positional=True),
    Opt("type", STRING, "type of the pool", required=True, positional=True),
    Opt("print-xml", BOOL, "print XML document, but don't define/create"),
    Opt("source-host", STRING, "source-host for underlying storage"),
    Opt("source-path", STRING, "source path for underlying storage"),
    Opt("source-dev", STRING, "source device for underlying storage (pyvirt: repeat it for several devices)"),
    Opt("source-name", STRING, "source name for underlying storage"),
    Opt("target", STRING, "target for underlying storage"),
    Opt("source-format", STRING, "format for underlying storage"),
    Opt("source-initiator", STRING, "initiator iqn for underlying storage"),
)
LIST_OPTS = (
    Opt("inactive", BOOL, "list inactive pools"),
    Opt("all", BOOL, "list inactive & active pools"),
    Opt("transient", BOOL, "list transient pools"),
    Opt("persistent", BOOL, "list persistent pools"),
    Opt("autostart", BOOL, "list pools with autostart enabled"),
    Opt("no-autostart", BOOL, "list pools with autostart disabled"),
    Opt("type", STRING, "only list pool of specified type(s) (if supported)"),
    Opt("details", BOOL, "display extended details for pools"),
    Opt("uuid", BOOL, "list UUID of active pools only"),
    Opt("name", BOOL, "list name of active pools only"),
)

COMMANDS = (
    Command("pool-autostart", "pool", "autostart a pool", cmd_pool_autostart,
            (POOL, Opt("disable", BOOL, "disable autostarting")),
            "Configure a pool to be automatically started at boot."),
    Command("pool-build", "pool", "build a pool", cmd_pool_build, (POOL, *BUILD_OPTS[1:]), "Build a given pool."),
    RepeatCommand("pool-create-as", "pool", "create a pool from a set of args", cmd_pool_create_as,
                  (*X_AS_OPTS, *BUILD_OPTS), "Create a pool."),
    Command("pool-create", "pool", "create a pool from an XML file", cmd_pool_create, (POOL_FILE, *BUILD_OPTS),
            "Create a pool."),
    RepeatCommand("pool-define-as", "pool", "define a pool from a set of args", cmd_pool_define_as, X_AS_OPTS,
                  "Define a pool."),
    Command("pool-define", "pool", "define an inactive persistent storage pool or modify an existing persistent "
            "one from an XML file", cmd_pool_define,
            (POOL_FILE, Opt("validate", BOOL, "validate the XML against the schema (pyvirt always validates)")),
            "Define or modify a persistent storage pool."),
    Command("pool-delete", "pool", "delete a pool", _simple("delete", "Pool {} deleted"), (POOL,),
            "Delete a given pool."),
    Command("pool-destroy", "pool", "destroy (stop) a pool", _simple("destroy", "Pool {} destroyed"), (POOL,),
            "Forcefully stop a given pool. Raw data in the pool is untouched"),
    Command("pool-dumpxml", "pool", "pool information in XML", cmd_pool_dumpxml,
            (POOL, Opt("inactive", BOOL, "show inactive defined XML")),
            "Output the pool information as an XML dump to stdout."),
    Command("pool-edit", "pool", "edit XML configuration for a storage pool", cmd_pool_edit, (POOL,),
            "Edit the XML configuration for a storage pool."),
    Command("pool-info", "pool", "storage pool information", cmd_pool_info,
            (POOL, Opt("bytes", BOOL, "Return pool info in bytes")),
            "Returns basic information about the storage pool."),
    Command("pool-list", "pool", "list pools", cmd_pool_list, LIST_OPTS, "Returns list of pools."),
    Command("pool-name", "pool", "convert a pool UUID to pool name", cmd_pool_name, (POOL,)),
    Command("pool-refresh", "pool", "refresh a pool", _simple("refresh", "Pool {} refreshed"), (POOL,),
            "Refresh a given pool."),
    Command("pool-start", "pool", "start a (previously defined) inactive pool", cmd_pool_start,
            (POOL, *BUILD_OPTS), "Start a pool."),
    Command("pool-undefine", "pool", "undefine an inactive pool", _simple("undefine", "Pool {} has been undefined"),
            (POOL,), "Undefine the configuration for an inactive pool."),
    Command("pool-uuid", "pool", "convert a pool name to pool UUID", cmd_pool_uuid, (POOL,)),
)
