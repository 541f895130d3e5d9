"""Command table entries and virsh's option syntax.

A command is data: its name, help group, help texts, options and a handler.
Options follow virsh: `--name value`, `--name=value`, booleans `--flag`, and
positional data filling the options marked positional in order (`start web1`
is `start --domain web1`). Errors use virsh's own wording. argparse is not used:
its wording differs from virsh and it costs start-up time.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing costs import time on the `pyvirt list` path
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Handler = Callable[..., "int | None"]

BOOL, STRING, INT, NUMBER = "bool", "string", "int", "number"
SCALED = "scaled"  # virsh's scaled integer ('512M', default unit KiB): shown as <number>, kept as text to parse
MANY = "many"  # a positional option that takes every data argument left (virsh's `[<domain>]...`), a list


class UsageError(Exception):
    """Bad command line: printed as `error: <message>`, exit 1, nothing on stdout."""


class Opt:
    """One option of a command (virsh's vshCmdOptDef)."""

    __slots__ = ("name", "kind", "help", "required", "positional")

    def __init__(self, name: str, kind: str = BOOL, help: str = "", *, required: bool = False,
                 positional: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.help = help
        self.required = required
        self.positional = positional

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def metavar(self) -> str:
        return "<number>" if self.kind in (INT, NUMBER, SCALED) else "<string>"

    def synopsis(self) -> str:
        if self.kind == BOOL:
            return f"[--{self.name}]"
        if self.kind == MANY:
            return f"[<{self.name}>]..."
        if self.positional and self.required:
            return f"<{self.name}>"
        if self.required:
            return f"--{self.name} {self.metavar}"
        return f"[--{self.name} {self.metavar}]"

    def label(self) -> str:
        """The left column of `help COMMAND`'s OPTIONS."""
        if self.kind == BOOL:
            return f"--{self.name}"
        if self.positional and (self.required or self.kind == MANY):  # virsh brackets the name of required data
            return f"[--{self.name}] {self.metavar}"
        return f"--{self.name} {self.metavar}"


class Command:
    """One entry of the command table: what `help` shows and what runs."""

    __slots__ = ("name", "group", "summary", "description", "opts", "handler", "needs_conn")

    def __init__(self, name: str, group: str, summary: str, handler: Handler, opts: tuple[Opt, ...] = (),
                 description: str = "", needs_conn: bool = True) -> None:
        self.name = name
        self.group = group
        self.summary = summary
        self.description = description
        self.opts = opts
        self.handler = handler
        self.needs_conn = needs_conn

    def opt(self, name: str) -> Opt | None:
        for o in self.opts:
            if o.name == name:
                return o
        return None

    def parse(self, argv: list[str]) -> dict[str, Any]:
        """virsh's rules: named options, positional data in order, required ones checked last."""
        values: dict[str, Any] = {o.dest: (False if o.kind == BOOL else [] if o.kind == MANY else None)
                                  for o in self.opts}
        seen: set[str] = set()
        positional = [o for o in self.opts if o.positional]
        data_only = False
        i = 0
        while i < len(argv):
            tok = argv[i]
            i += 1
            if not data_only and tok == "--":
                data_only = True
                continue
            if not data_only and tok.startswith("--") and len(tok) > 2:
                name, eq, inline = tok[2:].partition("=")
                opt = self.opt(name)
                if opt is None:
                    raise UsageError(f"command '{self.name}' doesn't support option --{name}")
                if opt.name in seen and opt.kind != MANY:
                    raise UsageError(f"option --{opt.name} already seen")
                seen.add(opt.name)
                if opt.kind == BOOL:
                    if eq:
                        raise UsageError(f"invalid '=' after option --{opt.name}")
                    values[opt.dest] = True
                    continue
                if eq:
                    raw = inline
                elif i < len(argv):
                    raw = argv[i]
                    i += 1
                else:
                    raise UsageError(f"expected syntax: --{opt.name} {opt.metavar}")
                if opt.kind == MANY:
                    values[opt.dest].append(raw)
                else:
                    values[opt.dest] = _convert(opt, raw)
                continue
            target = next((o for o in positional if o.name not in seen or o.kind == MANY), None)
            if target is None:
                raise UsageError(f"unexpected data '{tok}'")
            seen.add(target.name)
            if target.kind == MANY:
                values[target.dest].append(tok)
            else:
                values[target.dest] = _convert(target, tok)
        for o in self.opts:
            if o.required and o.name not in seen:
                shown = f"<{o.name}>" if o.positional else f"--{o.name}"
                raise UsageError(f"command '{self.name}' requires {shown} option")
        return values

    def synopsis(self) -> str:
        return " ".join([self.name, *(o.synopsis() for o in self.opts)])


def _convert(opt: Opt, raw: str) -> Any:
    if opt.kind == INT:
        try:
            value = int(raw, 10)
        except ValueError:
            value = -1
        if value < 0:
            raise UsageError(f"Numeric value '{raw}' for <{opt.name}> option is malformed or out of range")
        return value
    if opt.kind == NUMBER:
        try:
            number = float(raw)
        except ValueError:
            number = -1.0
        if not number >= 0:  # also rejects nan
            raise UsageError(f"Numeric value '{raw}' for <{opt.name}> option is malformed or out of range")
        return number
    return raw


DOMAIN = Opt("domain", STRING, "domain name, id or uuid", required=True, positional=True)
FILE = Opt("file", STRING, "file containing an XML domain description", required=True, positional=True)
