"""Commands for coming from libvirt (issue 10): domxml-to-native and import-libvirt."""
from __future__ import annotations

import shlex

from ..errors import InvalidArgument
from .domain_cmds import read_file
from .spec import BOOL, STRING, Command, Opt
from .table import render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx

DEFAULT_DIR = "/etc/libvirt"


def argv_lines(env: dict[str, str], argv: list[str]) -> str:
    """virsh's layout: one variable, the binary, then one option with its value per line, ' \\' between."""
    lines = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    current: list[str] = []
    for i, arg in enumerate(argv):
        if current and (i == 1 or arg.startswith("-")):
            lines.append(" ".join(current))
            current = []
        current.append(shlex.quote(arg))
    if current:
        lines.append(" ".join(current))
    return " \\\n".join(lines) + "\n"


def cmd_domxml_to_native(ctx: Ctx, a: dict[str, Any]) -> None:
    if a["format"] != "qemu-argv":
        raise InvalidArgument(f"unsupported format '{a['format']}': pyvirt converts domain XML to qemu-argv only")
    native = ctx.conn.domain_xml_to_native(a["format"], read_file(a["xml"]))
    ctx.out.text(argv_lines(native["env"], native["argv"]), native)


def cmd_import_libvirt(ctx: Ctx, a: dict[str, Any]) -> int:
    from pathlib import Path

    from ..client.libvirt_import import run_import

    root = Path(a["dir"] or DEFAULT_DIR)
    try:
        outcomes = run_import(ctx.conn, root, dry_run=a["dry_run"])
    except FileNotFoundError as exc:
        raise InvalidArgument(str(exc)) from exc
    rows = [[o.kind, o.name, o.result, "yes" if o.autostart else "no", o.reason] for o in outcomes]
    data = {"dir": str(root), "dry_run": a["dry_run"],
            "objects": [{"kind": o.kind, "name": o.name, "result": o.result, "autostart": o.autostart,
                         "reason": o.reason} for o in outcomes]}
    ctx.out.text(render(["Type", "Name", "Result", "Autostart", "Reason"], rows, quiet=ctx.out.quiet)
                 if rows else f"no persistent domains, networks or pools under {root}\n", data)
    return 1 if any(o.result == "refused" for o in outcomes) else 0


COMMANDS = (
    Command("domxml-to-native", "domain", "Convert domain XML to native config", cmd_domxml_to_native,
            (Opt("format", STRING, "target config data type format", required=True, positional=True),
             Opt("xml", STRING, "xml data file to import from", required=True, positional=True)),
            "Convert domain XML config to a native guest configuration format (the QEMU command line a start "
            "would run; descriptors the daemon would open are numbered from 100)."),
    Command("import-libvirt", "domain", "import libvirt's persistent domains, networks and pools",
            cmd_import_libvirt,
            (Opt("dir", STRING, f"libvirt's configuration directory (default {DEFAULT_DIR})"),
             Opt("dry-run", BOOL, "only check and list what would be imported")),
            "Define in pyvirt every persistent domain, network and storage pool of libvirt's configuration "
            "directory, keeping names, uuids, MACs and autostart. libvirt's files are only read."),
)
