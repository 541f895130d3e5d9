"""save, restore, managedsave, managedsave-remove, save-image-define, save-image-dumpxml (virsh's wording).

Files are paths on the daemon's host; a relative one is made absolute here
(the daemon has no idea of the caller's directory). ``--verbose`` on a
terminal draws virsh's progress line from the daemon's ``progress`` events.
"""
from __future__ import annotations

import os
import sys
import threading

from ..errors import InvalidArgument
from .domain_cmds import read_file
from .spec import BOOL, DOMAIN, STRING, Command, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx

BYPASS = Opt("bypass-cache", BOOL, "avoid file system cache when saving")
RUNNING = Opt("running", BOOL, "set domain to be running on restore")
PAUSED = Opt("paused", BOOL, "set domain to be paused on restore")
RESTORE_RUNNING = Opt("running", BOOL, "restore domain into running state")
RESTORE_PAUSED = Opt("paused", BOOL, "restore domain into paused state")
NEXT_RUNNING = Opt("running", BOOL, "set domain to be running on next start")
NEXT_PAUSED = Opt("paused", BOOL, "set domain to be paused on next start")
VERBOSE = Opt("verbose", BOOL, "display the progress of save")


def _path(raw: str) -> str:
    return os.path.abspath(os.path.expanduser(raw))


def _state(a: dict[str, Any]) -> dict[str, bool]:
    if a.get("running") and a.get("paused"):
        raise InvalidArgument("Options --running and --paused are mutually exclusive")
    return {"running": bool(a.get("running")), "paused": bool(a.get("paused"))}


class _Progress:
    """virsh's `Save: [ 42 %]` on stderr, fed by the domain's progress events in a thread of its own."""

    def __init__(self, ctx: Ctx, ref: str, label: str, verb: str) -> None:
        self.label, self.verb = label, verb
        self.on = sys.stderr.isatty() and not ctx.out.json
        if self.on:
            events = ctx.conn.events(ref)  # subscribed now: no event of the save is missed
            threading.Thread(target=self._follow, args=(events,), daemon=True).start()

    def _follow(self, events: Any) -> None:
        try:
            for record in events:
                word, _, pct = str(record.get("detail", "")).partition(" ")
                if record.get("event") == "progress" and word == self.verb and pct.endswith("%"):
                    self.draw(int(pct[:-1]))
        except Exception:  # noqa: BLE001 - the bar is decoration: the save's own answer decides
            return

    def draw(self, pct: int) -> None:
        sys.stderr.write(f"\r{self.label}: [{pct:3d} %]")
        sys.stderr.flush()

    def done(self) -> None:
        if self.on:
            self.draw(100)
            sys.stderr.write("\n")


def cmd_save(ctx: Ctx, a: dict[str, Any]) -> None:
    path = _path(a["file"])
    xml = read_file(a["xml"]) if a["xml"] else None
    state = _state(a)
    bar = _Progress(ctx, a["domain"], "Save", "save") if a["verbose"] else None
    result = ctx.domain(a["domain"]).save(path, xml=xml, bypass_cache=a["bypass_cache"], **state)
    if bar is not None:
        bar.done()
    text = f"\nDomain '{a['domain']}' saved to {path}"
    ctx.out.message(text, {"result": text.strip(), **result})


def cmd_restore(ctx: Ctx, a: dict[str, Any]) -> None:
    path = _path(a["file"])
    xml = read_file(a["xml"]) if a["xml"] else None
    dom = ctx.conn.restore(path, xml=xml, bypass_cache=a["bypass_cache"], **_state(a))
    text = f"Domain restored from {path}"
    ctx.out.message(text, {"result": text, "domain": dom.last.to_dict() if dom.last else None})


def cmd_managedsave(ctx: Ctx, a: dict[str, Any]) -> None:
    bar = _Progress(ctx, a["domain"], "Managedsave", "save") if a["verbose"] else None
    result = ctx.domain(a["domain"]).managed_save(bypass_cache=a["bypass_cache"], **_state(a))
    if bar is not None:
        bar.done()
    text = f"\nDomain '{a['domain']}' state saved by pyvirt"
    ctx.out.message(text, {"result": text.strip(), **result})


def cmd_managedsave_remove(ctx: Ctx, a: dict[str, Any]) -> None:
    ref = a["domain"]
    ctx.out.blank_after = False  # as virsh: no empty line after either message
    if ctx.domain(ref).managed_save_remove():
        text = f"Removed managedsave image for domain '{ref}'"
    else:
        text = f"Domain '{ref}' has no manage save image; removal skipped"
    ctx.out.message(text, {"result": text})


def cmd_save_image_dumpxml(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = ctx.conn.save_image_xml(_path(a["file"]), security_info=a["security_info"])
    ctx.out.text(xml, {"xml": xml})


def cmd_save_image_define(ctx: Ctx, a: dict[str, Any]) -> None:
    path = _path(a["file"])
    ctx.conn.save_image_define(path, read_file(a["xml"]), **_state(a))
    text = f"State file {path} updated."
    ctx.out.message(text, {"result": text})


SAVED_FILE = Opt("file", STRING, "where to save the data", required=True, positional=True)
STATE_FILE = Opt("file", STRING, "saved state file to read", required=True, positional=True)

COMMANDS = (
    Command("save", "domain", "save a domain state to a file", cmd_save,
            (DOMAIN, SAVED_FILE, BYPASS, Opt("xml", STRING, "filename containing updated XML for the target"),
             RUNNING, PAUSED, VERBOSE),
            "Save the RAM state of a running domain."),
    Command("restore", "domain", "restore a domain from a saved state in a file", cmd_restore,
            (Opt("file", STRING, "the state to restore", required=True, positional=True),
             Opt("bypass-cache", BOOL, "avoid file system cache when restoring"),
             Opt("xml", STRING, "filename containing updated XML for the target"), RESTORE_RUNNING, RESTORE_PAUSED),
            "Restore a domain."),
    Command("managedsave", "domain", "managed save of a domain state", cmd_managedsave,
            (DOMAIN, BYPASS, NEXT_RUNNING, NEXT_PAUSED, VERBOSE),
            "Save and destroy a running domain, so it can be restarted from\n"
            "the same state at a later time.  When the pyvirt 'start'\n"
            "command is next run for the domain, it will automatically\n"
            "be started from this saved state."),
    Command("managedsave-remove", "domain", "Remove managed save of a domain", cmd_managedsave_remove,
            (DOMAIN,), "Remove an existing managed save state file from a domain"),
    Command("save-image-dumpxml", "domain", "saved state domain information in XML", cmd_save_image_dumpxml,
            (STATE_FILE, Opt("security-info", BOOL, "include security sensitive information in XML dump")),
            "Dump XML of domain information for a saved state file to stdout."),
    Command("save-image-define", "domain", "redefine the XML for a domain's saved state file",
            cmd_save_image_define,
            (Opt("file", STRING, "saved state file to modify", required=True, positional=True),
             Opt("xml", STRING, "filename containing updated XML for the target", required=True, positional=True),
             RUNNING, PAUSED),
            "Replace the domain XML associated with a saved state file"),
)
