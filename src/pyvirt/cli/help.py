"""`help`, `help GROUP`, `help COMMAND` and `--help`, laid out as virsh's."""
from __future__ import annotations

from .. import __version__
from ..errors import InvalidArgument
from .spec import STRING, Command, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .context import Ctx

# help keyword -> title, in virsh's order
GROUPS = {
    "domain": "Domain Management",
    "monitor": "Domain Monitoring",
    "events": "Domain Events",
    "host": "Host and Hypervisor",
    "network": "Networking",
    "pool": "Storage Pool",
    "volume": "Storage Volume",
    "snapshot": "Snapshot",
    "pyvirt": "Pyvirt itself",
}
GROUP_ALIASES = {"virsh": "pyvirt"}

USAGE = """\
pyvirt [options]... <command> [args...]

  options:
    -c | --connect=URI      daemon connection URI (default: $PYVIRT_DEFAULT_URI or qemu:///system)
    -h | --help             this help
    -q | --quiet            quiet mode
    -o | --output=FORMAT    output format: text (default) or json
         --json             same as --output=json
    -v                      short version
    -V                      long version
         --version[=TYPE]   version, TYPE is short or long (default short)
  commands (non interactive mode):

"""

LONG_VERSION = f"pyvirt command line tool {__version__}\n"


def group_block(commands: Mapping[str, Command], key: str, colon: bool = True) -> str:
    """One group's heading and command lines, by name as virsh lists them."""
    head = f" {GROUPS[key]} (help keyword '{key}')" + (":" if colon else "")
    lines = [f"    {c.name:<30} {c.summary}" for c in sorted(commands.values(), key=lambda c: c.name)
             if c.group == key]
    return "".join(line + "\n" for line in [head, *lines])


def grouped(commands: Mapping[str, Command], colon: bool = True) -> str:
    used = {c.group for c in commands.values()}
    return "".join(group_block(commands, k, colon) + "\n" for k in GROUPS if k in used)


def usage(commands: Mapping[str, Command]) -> str:
    return (USAGE + grouped(commands, colon=False)
            + "\n  (specify help <group> for details about the commands in the group)\n"
            + "\n  (specify help <command> for details about the command)\n\n")


def command_help(cmd: Command) -> str:
    out = f"  NAME\n    {cmd.name} - {cmd.summary}\n\n  SYNOPSIS\n    {cmd.synopsis()}\n\n"
    if cmd.description:
        out += "  DESCRIPTION\n" + "".join(f"    {line}\n" for line in cmd.description.splitlines()) + "\n"
    if cmd.opts:
        out += "  OPTIONS\n" + "".join(f"    {o.label():<15}  {o.help}\n" for o in cmd.opts) + "\n"
    return out


def cmd_help(ctx: Ctx, a: dict[str, Any]) -> None:
    topic = a["command"]
    commands = ctx.commands
    if topic is None:
        ctx.out.text("Grouped commands:\n\n" + grouped(commands),
                     {"groups": {k: [c.name for c in commands.values() if c.group == k] for k in GROUPS}})
    elif topic in commands:
        cmd = commands[topic]
        ctx.out.text(command_help(cmd), {"name": cmd.name, "summary": cmd.summary, "synopsis": cmd.synopsis(),
                                         "description": cmd.description,
                                         "options": [{"name": o.name, "help": o.help} for o in cmd.opts]})
    elif GROUP_ALIASES.get(topic, topic) in GROUPS:
        key = GROUP_ALIASES.get(topic, topic)
        ctx.out.text(group_block(commands, key),
                     {"group": key, "commands": [c.name for c in commands.values() if c.group == key]})
    else:
        raise InvalidArgument(f"command or command group '{topic}' doesn't exist")


COMMANDS = (
    Command("help", "pyvirt", "print help", cmd_help,
            (Opt("command", STRING,
                 "Prints global help, command specific help, or help for a group of related commands",
                 positional=True),),
            "Prints global help, command specific help, or help for a\ngroup of related commands", needs_conn=False),
)
