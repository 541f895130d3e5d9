"""Domain monitoring commands (virsh's 'monitor' group): list, dominfo, domstate."""
from __future__ import annotations

from .spec import BOOL, DOMAIN, Command, Opt
from .table import render, render_keyvalue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..client import DomainSummary
    from .context import Ctx

NAMED_STATES = ("running", "paused", "shut off")

# list's filters: option -> test on a summary. Options of one family are OR'ed,
# families are AND'ed (as virConnectListAllDomains' flags).
FILTERS: dict[str, dict[str, Any]] = {
    "state": {
        "state_running": lambda s: s.state == "running",
        "state_paused": lambda s: s.state == "paused",
        "state_shutoff": lambda s: s.state == "shut off",
        "state_other": lambda s: s.state not in NAMED_STATES,
    },
    "persistence": {
        "persistent": lambda s: s.persistent,
        "transient": lambda s: not s.persistent,
    },
    "autostart": {
        "autostart": lambda s: s.autostart,
        "no_autostart": lambda s: not s.autostart,
    },
    # a summary has no managed-save field: cmd_list asks the daemon once and marks the summaries
    "managed_save": {
        "with_managed_save": lambda s: s.extra.get("managed_save", False),
        "without_managed_save": lambda s: not s.extra.get("managed_save", False),
    },
}


def select(domains: list[DomainSummary], a: dict[str, Any]) -> list[DomainSummary]:
    """The domains `list` shows. Default: active ones; a state filter looks at all."""
    if a["all"] or any(a[k] for k in FILTERS["state"]):
        picked = list(domains)
    elif a["inactive"]:
        picked = [d for d in domains if not d.active]
    else:
        picked = [d for d in domains if d.active]
    for family in FILTERS.values():
        tests = [test for opt, test in family.items() if a[opt]]
        if tests:
            picked = [d for d in picked if any(t(d) for t in tests)]
    return picked


def cmd_list(ctx: Ctx, a: dict[str, Any]) -> None:
    domains = ctx.conn.list_domains()
    if a["managed_save"] or a["with_managed_save"] or a["without_managed_save"]:
        saved = ctx.conn.managed_saves()
        for d in domains:
            d.extra["managed_save"] = d.uuid in saved
    domains = select(domains, a)
    if ctx.out.json:
        ctx.out.dump([d.to_dict() for d in domains])
        return
    if a["name"] or a["uuid"] or a["id"]:
        lines = []
        for d in domains:
            if a["id"] and d.id is None:
                continue
            fields = (([d.uuid] if a["uuid"] else []) + ([str(d.id)] if a["id"] else [])
                      + ([d.name] if a["name"] else []))
            lines.append(" ".join(fields) + "\n")
        ctx.out.text("".join(lines))
        return
    header = ["Id", "Name", "State"] + (["Title"] if a["title"] else [])
    rows = [["-" if d.id is None else str(d.id), d.name, _shown_state(d, a["managed_save"])]
            + ([d.title] if a["title"] else []) for d in domains]
    ctx.out.text(render(header, rows, quiet=ctx.out.quiet))


def _shown_state(d: DomainSummary, mark_saved: bool) -> str:
    """--managed-save: a shut-off domain with a managed save image shows as `saved` (as virsh does)."""
    return "saved" if mark_saved and d.extra.get("managed_save") and not d.active else d.state


def dominfo_lines(info: dict[str, Any]) -> list[tuple[str, str]]:
    """virsh dominfo's lines in its order, then pyvirt's own (accelerator, CPU note)."""
    yes = {True: "yes", False: "no"}
    pairs = [
        ("Id:", "-" if info.get("id") is None else str(info["id"])),
        ("Name:", info["name"]),
        ("UUID:", info.get("uuid", "")),
        ("OS Type:", info.get("os_type", "")),
        ("State:", info.get("state", "")),
        ("CPU(s):", str(info.get("vcpus", ""))),
    ]
    if info.get("cpu_time_ns"):
        pairs.append(("CPU time:", f"{info['cpu_time_ns'] / 1e9:.1f}s"))
    pairs += [
        ("Max memory:", f"{info.get('max_memory_kib', 0)} KiB"),
        ("Used memory:", f"{info.get('used_memory_kib', 0)} KiB"),
        ("Persistent:", yes[bool(info.get("persistent"))]),
        ("Autostart:", "enable" if info.get("autostart") else "disable"),
        ("Managed save:", yes[bool(info.get("managed_save"))]),
    ]
    if info.get("security_model"):
        pairs += [("Security model:", info["security_model"]), ("Security DOI:", str(info.get("security_doi", "")))]
    if info.get("accel"):
        pairs.append(("Accelerator:", info["accel"]))
    if info.get("cpu_note"):
        pairs.append(("CPU note:", info["cpu_note"]))
    return pairs


def cmd_dominfo(ctx: Ctx, a: dict[str, Any]) -> None:
    info = ctx.domain(a["domain"]).info()
    ctx.out.text(render_keyvalue(dominfo_lines(info)), info)


def cmd_domstate(ctx: Ctx, a: dict[str, Any]) -> None:
    state, reason = ctx.domain(a["domain"]).state()
    text = f"{state} ({reason or 'unknown'})" if a["reason"] else state
    ctx.out.text(text, {"state": state, "reason": reason})


LIST_OPTS = (
    Opt("inactive", BOOL, "list inactive domains"),
    Opt("all", BOOL, "list inactive & active domains"),
    Opt("transient", BOOL, "list transient domains"),
    Opt("persistent", BOOL, "list persistent domains"),
    Opt("state-running", BOOL, "list domains in running state"),
    Opt("state-paused", BOOL, "list domains in paused state"),
    Opt("state-shutoff", BOOL, "list domains in shutoff state"),
    Opt("state-other", BOOL, "list domains in other states"),
    Opt("autostart", BOOL, "list domains with autostart enabled"),
    Opt("no-autostart", BOOL, "list domains with autostart disabled"),
    Opt("with-managed-save", BOOL, "list domains with managed save state"),
    Opt("without-managed-save", BOOL, "list domains without managed save"),
    Opt("uuid", BOOL, "list uuid's only"),
    Opt("name", BOOL, "list domain names only"),
    Opt("id", BOOL, "list domain IDs only"),
    Opt("table", BOOL, "list table (default)"),
    Opt("managed-save", BOOL, "mark inactive domains with managed save state"),
    Opt("title", BOOL, "show domain title"),
)

COMMANDS = (
    Command("dominfo", "monitor", "domain information", cmd_dominfo, (DOMAIN,),
            "Returns basic information about the domain."),
    Command("domstate", "monitor", "domain state", cmd_domstate,
            (DOMAIN, Opt("reason", BOOL, "also print reason for the state")), "Returns state about a domain."),
    Command("list", "monitor", "list domains", cmd_list, LIST_OPTS, "Returns list of domains."),
)
