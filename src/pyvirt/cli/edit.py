"""`pyvirt edit NAME`: $VISUAL/$EDITOR (default vi) on a temporary copy of the inactive XML.

As virsh edit: unchanged -> `Domain 'x' XML configuration not changed.`; a rejected
definition prints the error and, on a terminal, asks `Failed. Try again?
[y,n,i,f,?]:`. Without a terminal it fails at once. The old definition stays
whenever the new one is refused (the daemon replaces it only when valid).
"""
from __future__ import annotations

import os
import sys

from ..errors import PyvirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .context import Ctx

PROMPT = "Failed. Try again? [y,n,i,f,?]: "
PROMPT_HELP = (
    "y - yes, start editor again\n"
    "n - no, throw away my changes\n"
    "i - turn off validation and try to redefine again\n"
    "f - force, try to redefine again\n"
    "? - print this help\n"
)


def editor() -> str:
    return os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"


def run_editor(path: str) -> None:
    """Run the editor; EDITOR may carry arguments ("emacs -nw"), split as a shell would, with no shell."""
    import shlex
    import subprocess

    cmd = f"{editor()} {shlex.quote(path)}"
    code = subprocess.call([*shlex.split(editor()), path])
    if code != 0:
        raise PyvirtError(f"the editor `{cmd}` exited with status {code}; the domain definition was not changed")


def ask(ctx: Ctx) -> str:
    """virsh's re-edit question; 'n' at end of input."""
    while True:
        ctx.out.stdout.write(PROMPT)
        ctx.out.stdout.flush()
        answer = sys.stdin.readline()
        if not answer:
            return "n"
        choice = answer.strip()[:1].lower()
        if choice in ("y", "n", "i", "f"):
            return choice
        ctx.out.stdout.write(PROMPT_HELP)


def _stdin_is_tty() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (ValueError, OSError, AttributeError):
        return False


def edit_domain(ctx: Ctx, ref: str) -> int | None:
    dom = ctx.domain(ref)
    # as virsh edit: the definition with its secrets, or saving it would drop the graphics passwords
    return edit_object(ctx, dom, "Domain '{}'", lambda: dom.last.to_dict() if dom.last else None,
                       read=lambda: dom.xml(inactive=True, security_info=True))


def edit_object(ctx: Ctx, dom: Any, label: str, summary: Callable[[], Any],
                read: Callable[[], str] | None = None) -> int | None:
    """The edit loop for anything with xml(inactive=True), set_xml() and name (domains, networks)."""
    import tempfile

    original = read() if read is not None else dom.xml(inactive=True)
    fd, path = tempfile.mkstemp(prefix="pyvirt", suffix=".xml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(original)
        edit = True
        while True:
            if edit:
                run_editor(path)
            with open(path, encoding="utf-8") as fh:
                new = fh.read()
            if new == original:
                ctx.out.message(f"{label.format(dom.name)} XML configuration not changed.")
                return None
            try:
                dom.set_xml(new)
            except PyvirtError as exc:
                ctx.out.error(exc)
                if not (_stdin_is_tty() and not ctx.out.json):
                    return 1
                choice = ask(ctx)
                if choice == "n":
                    return 1
                edit = choice == "y"  # i and f: pyvirt always validates; they retry the definition
                continue
            text = f"{label.format(dom.name)} XML configuration edited."
            ctx.out.message(text, {"result": text, "object": summary()})
            return None
    finally:
        os.unlink(path)
