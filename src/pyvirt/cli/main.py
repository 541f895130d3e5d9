"""`pyvirt`: virsh's commands, options and output on top of pyvirt.client.

    pyvirt [-c URI] [-q] [--json | -o json] COMMAND [ARGS...]

Start-up time matters (`pyvirt list` should cost about what `virsh list` does):
this path imports only the standard library, pyvirt.errors, pyvirt.client and
pyvirt.cli. Console, edit and websockets load inside the commands that use them.
"""
from __future__ import annotations

import sys
from _collections_abc import Mapping  # what collections.abc re-exports; that import loads collections (~1 ms)

from .. import __version__
from ..errors import PyvirtError
from . import help
from .context import Ctx
from .output import Output
from .spec import Command, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import NoReturn

# Command modules in the order `help` shows their groups' commands. Only the module a
# command lives in is imported when it runs (each costs ~2 ms): `pyvirt list` stays light.
MODULES = ("domain_cmds", "save_cmds", "disk_cmds", "iface_cmds", "monitor_cmds", "stats_cmds", "vcpu_cmds",
           "top_cmds", "net_cmds", "pool_cmds", "vol_cmds", "host_cmds", "node_cmds", "ksm_cmds", "snapshot_cmds",
           "img_cmds", "libvirt_cmds", "remote_cmds", "help")
CORE = ("domain_cmds", "monitor_cmds", "host_cmds", "help")
PREFIXES = (("net-", "net_cmds"), ("pool-", "pool_cmds"), ("vol-", "vol_cmds"), ("snapshot-", "snapshot_cmds"),
            ("img", "img_cmds"), ("domif", "iface_cmds"), ("domblk", "disk_cmds"), ("node", "node_cmds"),
            ("save-image-", "save_cmds"), ("managedsave", "save_cmds"), ("token-", "remote_cmds"),
            ("tls-", "remote_cmds"))
NAMED = {"attach-interface": "iface_cmds", "detach-interface": "iface_cmds", "attach-disk": "disk_cmds",
         "detach-disk": "disk_cmds", "attach-device": "disk_cmds", "detach-device": "disk_cmds",
         "change-media": "disk_cmds", "blockresize": "disk_cmds", "freecell": "node_cmds", "freepages": "node_cmds",
         "allocpages": "node_cmds", "domcapabilities": "node_cmds", "ksm": "ksm_cmds", "domstats": "stats_cmds",
         "dommemstat": "stats_cmds", "schedinfo": "stats_cmds", "memtune": "stats_cmds", "blkiotune": "stats_cmds",
         "top": "top_cmds", "save": "save_cmds", "restore": "save_cmds",
         "domxml-to-native": "libvirt_cmds", "import-libvirt": "libvirt_cmds",  # issue 10
         # vcpu11: memory size and vCPUs
         "setmem": "vcpu_cmds", "setmaxmem": "vcpu_cmds", "setvcpus": "vcpu_cmds", "vcpucount": "vcpu_cmds",
         "vcpuinfo": "vcpu_cmds", "vcpupin": "vcpu_cmds", "emulatorpin": "vcpu_cmds"}


def module_for(name: str) -> str | None:
    """The module that defines command ``name`` (None: one of the core modules)."""
    if name in NAMED:
        return NAMED[name]
    return next((module for prefix, module in PREFIXES if name.startswith(prefix)), None)


class CommandTable(Mapping[str, Command]):
    """name -> Command, importing command modules only as they are needed."""

    def __init__(self) -> None:
        self._loaded: dict[str, dict[str, Command]] = {}

    def _load(self, module: str) -> dict[str, Command]:
        if module not in self._loaded:
            name = f"{__package__}.{module}"
            __import__(name)  # importlib.import_module's job, without importing importlib (and warnings)
            self._loaded[module] = {c.name: c for c in sys.modules[name].COMMANDS}
        return self._loaded[module]

    def find(self, name: str) -> Command | None:
        routed = module_for(name)
        for module in (routed,) if routed else CORE:
            if name in self._load(module):
                return self._loaded[module][name]
        return self._all().get(name)  # a name the routing does not know: look everywhere

    def _all(self) -> dict[str, Command]:
        return {name: c for module in MODULES for name, c in self._load(module).items()}

    def __getitem__(self, name: str) -> Command:
        cmd = self.find(name)
        if cmd is None:
            raise KeyError(name)
        return cmd

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


COMMANDS = CommandTable()
OUTPUT_FORMATS = ("text", "json")
OWN_DASH_O = {"img"}  # commands whose `-o` is their own option (qemu-img's -o k=v), not --output


class Globals:
    """The options before the command (and --json / -o json anywhere)."""

    def __init__(self) -> None:
        self.uri: str | None = None
        self.quiet = False
        self.json = False
        self.show: str | None = None  # "help", "version", "long-version"
        self.command: str | None = None
        self.args: list[str] = []


def _set_output(g: Globals, fmt: str) -> None:
    if fmt not in OUTPUT_FORMATS:
        raise UsageError(f"unsupported output format '{fmt}': use text or json")
    g.json = fmt == "json"


def parse_globals(argv: list[str]) -> Globals:
    g = Globals()
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        if not tok.startswith("-") or tok == "-":
            g.command, rest = tok, argv[i:]
            g.args = _take_output_opts(g, rest, short_o=tok not in OWN_DASH_O)
            return g
        name, eq, inline = tok.partition("=") if tok.startswith("--") else (tok[:2], "", tok[2:])
        if name in ("-c", "--connect", "-o", "--output"):
            if inline or eq:
                value = inline
            elif i < len(argv):
                value = argv[i]
                i += 1
            else:
                long = "--connect" if name in ("-c", "--connect") else "--output"
                raise UsageError(f"option '{long[1:3]}'/'{long}' requires an argument")
            if name in ("-c", "--connect"):
                g.uri = value
            else:
                _set_output(g, value)
        elif inline and not eq:
            raise UsageError(f"unsupported option '{tok}'. See --help.")
        elif name in ("-q", "--quiet"):
            g.quiet = True
        elif name == "--json":
            g.json = True
        elif name in ("-h", "--help"):
            g.show = "help"
        elif name == "-v" or (name == "--version" and inline in ("", "short")):
            g.show = "version"
        elif name == "-V" or (name == "--version" and inline == "long"):
            g.show = "long-version"
        else:
            raise UsageError(f"unsupported option '{tok}'. See --help.")
        if g.show:
            return g
    return g


def _take_output_opts(g: Globals, rest: list[str], short_o: bool = True) -> list[str]:
    """Accept `--json` / `-o json` after the command too (before any `--`)."""
    out: list[str] = []
    i = 0
    while i < len(rest):
        tok = rest[i]
        i += 1
        if tok == "--":
            out += rest[i - 1:]
            break
        if tok == "--json":
            g.json = True
        elif tok in ("-o", "--output")[0 if short_o else 1:] and i < len(rest):
            _set_output(g, rest[i])
            i += 1
        elif tok.startswith(("-o=", "--output=")):
            _set_output(g, tok.partition("=")[2])
        else:
            out.append(tok)
    return out


def main(argv: list[str] | None = None, *, stdout: object = None, stderr: object = None) -> int:
    """Run one command; the exit status is 0 or 1 as virsh's."""
    argv = sys.argv[1:] if argv is None else list(argv)
    out = Output(stdout=stdout, stderr=stderr)  # type: ignore[arg-type]
    try:
        g = parse_globals(argv)
    except UsageError as exc:
        out.json = "--json" in argv
        out.error(exc)
        return 1
    out.quiet, out.json = g.quiet, g.json
    if g.show == "version":
        out.text(__version__, {"version": __version__})
        return 0
    if g.show == "long-version":
        out.text(help.LONG_VERSION, {"version": __version__})
        return 0
    if g.show == "help" or g.command is None:
        out.text(help.usage(COMMANDS))
        return 0
    return run(g, out)


def run(g: Globals, out: Output) -> int:
    cmd = COMMANDS.get(g.command or "")
    if cmd is None:
        out.error(f"unknown command: '{g.command}'")
        return 1
    ctx = Ctx(out, g.uri, COMMANDS)
    try:
        args = cmd.parse(g.args)
        if cmd.needs_conn:
            ctx.conn  # noqa: B018 -- connect first: a dead daemon is reported before the command runs
    except (UsageError, PyvirtError) as exc:
        out.error(exc)
        ctx.close()
        return 1
    rc = 0
    try:
        rc = cmd.handler(ctx, args) or 0
    except PyvirtError as exc:
        out.error(exc)
        rc = 1
    except KeyboardInterrupt:
        out.error("interrupted")
        rc = 1
    except BrokenPipeError:
        _silence_stdout()
        return 1
    finally:
        ctx.close()
    try:
        out.end_command()
    except BrokenPipeError:
        _silence_stdout()
    return rc


def exit_now(status: int) -> NoReturn:
    """End the process with ``status`` once stdout and stderr are flushed, skipping the interpreter's teardown.

    Why: freeing every module and object of a finished command costs ~2 ms here, a
    tenth of a whole query. Nothing is lost by skipping it: the command's sockets and
    files were closed by its own `finally` blocks (the kernel closes any left), its
    output is flushed here, and the CLI registers no atexit handler (the only one
    that can load, logging's with websockets in `console`, has no handler to flush).
    A flush that fails (stdout closed, no reader left) takes the normal exit, which
    deals with it as Python always does.
    """
    import os

    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(status)
    os._exit(status)


def _silence_stdout() -> None:
    """The reader of our stdout went away (`pyvirt list | head`): stop writing, quietly."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    exit_now(main())
