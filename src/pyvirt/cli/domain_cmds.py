"""Domain management commands (virsh's 'domain' help group): one small handler each.

Messages are virsh 9.0's. As virsh does, most name the domain as the user wrote
it (name, id or UUID); start, define and create name it by its real name.
"""
from __future__ import annotations

from ..errors import InvalidArgument
from .spec import BOOL, DOMAIN, FILE, NUMBER, Command, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx

CONSOLE = Opt("console", BOOL, "attach to console after creation")
PAUSED = Opt("paused", BOOL, "leave the guest paused after creation")
VALIDATE = Opt("validate", BOOL, "validate the XML against the schema")


def read_file(path: str) -> str:
    """The file's text, or virsh's `Failed to open file` error."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise InvalidArgument(f"Failed to open file '{path}': {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"file '{path}' is not UTF-8 text: {exc}; domain XML must be UTF-8") from exc


def _done(ctx: Ctx, text: str, summary: Any = None) -> None:
    """A status message; JSON adds the domain's new summary when there is one."""
    data: dict[str, Any] = {"result": text}
    if summary is not None:
        data["domain"] = summary.to_dict()
    ctx.out.message(text, data)


def _console(ctx: Ctx, ref: str, force: bool = False) -> int | None:
    from .console import run_console

    return run_console(ctx, ref, force=force)


def cmd_define(ctx: Ctx, a: dict[str, Any]) -> None:
    dom = ctx.conn.define_xml(read_file(a["file"]))
    _done(ctx, f"Domain '{dom.name}' defined from {a['file']}", dom.last)


def cmd_create(ctx: Ctx, a: dict[str, Any]) -> int | None:
    dom = ctx.conn.create_xml(read_file(a["file"]), paused=a["paused"])
    _done(ctx, f"Domain '{dom.name}' created from {a['file']}", dom.last)
    return _console(ctx, dom.name) if a["console"] else None


def cmd_start(ctx: Ctx, a: dict[str, Any]) -> int | None:
    dom = ctx.domain(a["domain"]).start(paused=a["paused"], force_boot=a["force_boot"])
    _done(ctx, f"Domain '{dom.name}' started", dom.last)
    return _console(ctx, dom.name) if a["console"] else None


def cmd_shutdown(ctx: Ctx, a: dict[str, Any]) -> None:
    ref, timeout = a["domain"], a["timeout"]
    result = ctx.domain(ref).shutdown(timeout=timeout)
    if timeout is None:
        ctx.out.message(f"Domain '{ref}' is being shutdown", {"result": f"Domain '{ref}' is being shutdown", **result})
    elif result.get("destroyed"):
        text = f"Domain '{ref}' did not shut down within {timeout:g} s and was destroyed"
        ctx.out.message(text, {"result": text, **result})
    else:
        ctx.out.message(f"Domain '{ref}' is shut off", {"result": f"Domain '{ref}' is shut off", **result})


def _simple(action: str, template: str) -> Any:
    """A handler for the actions that answer a summary and print one message."""
    def handler(ctx: Ctx, a: dict[str, Any]) -> None:
        dom = getattr(ctx.domain(a["domain"]), action)()
        _done(ctx, template.format(a["domain"]), dom.last)

    handler.__name__ = f"cmd_{action}"
    return handler


def cmd_undefine(ctx: Ctx, a: dict[str, Any]) -> None:
    result = ctx.domain(a["domain"]).undefine(snapshots_metadata=a["snapshots_metadata"],
                                              managed_save=a["managed_save"])
    text = f"Domain '{a['domain']}' has been undefined"
    ctx.out.message(text, {"result": text, **result})


def cmd_autostart(ctx: Ctx, a: dict[str, Any]) -> None:
    dom = ctx.domain(a["domain"]).set_autostart(not a["disable"])
    what = "unmarked as autostarted" if a["disable"] else "marked as autostarted"
    _done(ctx, f"Domain '{a['domain']}' {what}", dom.last)


def cmd_domid(ctx: Ctx, a: dict[str, Any]) -> None:
    s = ctx.domain(a["domain"]).summary()
    ctx.out.text("-" if s.id is None else str(s.id), {"id": s.id})


def cmd_domname(ctx: Ctx, a: dict[str, Any]) -> None:
    s = ctx.domain(a["domain"]).summary()
    ctx.out.text(s.name, {"name": s.name})


def cmd_domuuid(ctx: Ctx, a: dict[str, Any]) -> None:
    s = ctx.domain(a["domain"]).summary()
    ctx.out.text(s.uuid, {"uuid": s.uuid})


def cmd_dumpxml(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = ctx.domain(a["domain"]).xml(inactive=a["inactive"], security_info=a["security_info"])
    ctx.out.text(xml, {"xml": xml})


def cmd_edit(ctx: Ctx, a: dict[str, Any]) -> int | None:
    from .edit import edit_domain

    return edit_domain(ctx, a["domain"])


def cmd_console(ctx: Ctx, a: dict[str, Any]) -> int | None:
    return _console(ctx, a["domain"], force=a["force"])


COMMANDS = (
    Command("autostart", "domain", "autostart a domain", cmd_autostart,
            (DOMAIN, Opt("disable", BOOL, "disable autostarting")),
            "Configure a domain to be automatically started at boot."),
    Command("console", "domain", "connect to the guest console", cmd_console,
            (DOMAIN, Opt("force", BOOL, "force console connection (disconnect already connected sessions)")),
            "Connect the virtual serial console for the guest"),
    Command("create", "domain", "create a domain from an XML file", cmd_create,
            (FILE, CONSOLE, PAUSED, VALIDATE), "Create a domain."),
    Command("define", "domain", "define (but don't start) a domain from an XML file", cmd_define,
            (FILE, VALIDATE), "Define a domain."),
    Command("destroy", "domain", "destroy (stop) a domain", _simple("destroy", "Domain '{}' destroyed"),
            (DOMAIN,), "Forcefully stop a given domain, but leave its resources intact."),
    Command("domid", "domain", "convert a domain name or UUID to domain id", cmd_domid,
            (Opt("domain", "string", "domain name or uuid", required=True, positional=True),)),
    Command("domname", "domain", "convert a domain id or UUID to domain name", cmd_domname,
            (Opt("domain", "string", "domain id or uuid", required=True, positional=True),)),
    Command("domuuid", "domain", "convert a domain name or id to domain UUID", cmd_domuuid,
            (Opt("domain", "string", "domain id or name", required=True, positional=True),)),
    Command("dumpxml", "domain", "domain information in XML", cmd_dumpxml,
            (DOMAIN, Opt("inactive", BOOL, "show inactive defined XML"),
             Opt("security-info", BOOL, "include security sensitive information in XML dump")),
            "Output the domain information as an XML dump to stdout."),
    Command("edit", "domain", "edit XML configuration for a domain", cmd_edit,
            (DOMAIN,), "Edit the XML configuration for a domain."),
    Command("reboot", "domain", "reboot a domain", _simple("reboot", "Domain '{}' is being rebooted"),
            (DOMAIN,), "Run a reboot command in the target domain."),
    Command("reset", "domain", "reset a domain", _simple("reset", "Domain '{}' was reset"),
            (DOMAIN,), "Reset the target domain as if by power button"),
    Command("resume", "domain", "resume a domain", _simple("resume", "Domain '{}' resumed"),
            (DOMAIN,), "Resume a previously suspended domain."),
    Command("shutdown", "domain", "gracefully shutdown a domain", cmd_shutdown,
            (DOMAIN, Opt("timeout", NUMBER, "wait up to this many seconds, then destroy the domain")),
            "Run shutdown in the target domain."),
    Command("start", "domain", "start a (previously defined) inactive domain", cmd_start,
            (Opt("domain", "string", "name of the inactive domain", required=True, positional=True), CONSOLE, PAUSED,
             Opt("force-boot", BOOL, "force fresh boot by discarding any managed save")),
            "Start a domain."),
    Command("suspend", "domain", "suspend a domain", _simple("suspend", "Domain '{}' suspended"),
            (DOMAIN,), "Suspend a running domain."),
    Command("undefine", "domain", "undefine a domain", cmd_undefine,
            (DOMAIN, Opt("managed-save", BOOL, "remove domain managed state file"),
             Opt("snapshots-metadata", BOOL, "remove all domain snapshot metadata (vm must be inactive)")),
            "Undefine an inactive domain, or convert persistent to transient."),
)
