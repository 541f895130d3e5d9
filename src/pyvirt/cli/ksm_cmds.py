"""`pyvirt ksm status | start | stop | tune KEY=VALUE ... | mode off|on|auto|advisor|unmanaged`."""
from __future__ import annotations

from ..errors import InvalidArgument
from .spec import BOOL, MANY, STRING, Command, Opt
from .table import render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx

ACTIONS = ("status", "start", "stop", "tune", "mode")
MODE_WORDS = {
    "unmanaged": "pyvirt leaves KSM as the host set it",
    "off": "ksmd stopped",
    "on": "ksmd runs with its settings as they are",
    "auto": "the built-in tuner (ksmtuned's algorithm) runs it",
    "advisor": "the kernel's scan-time advisor sets pages_to_scan",
}
TUNER_NAMES = ("monitor_interval", "sleep_msec", "npages_boost", "npages_decay", "npages_min", "npages_max",
               "thres_coef", "thres_const")


def size(n: float) -> str:
    """Bytes as virt-top and free print them: 178.2 MiB."""
    for unit, scale in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def status_text(s: dict[str, Any]) -> str:
    values = {f["name"]: f["value"] for f in s["fields"]}
    lines = [
        ("Mode:", f"{s['mode']} ({MODE_WORDS.get(s['mode'], '')}); modes here: {', '.join(s['modes'])}"),
        ("Running:", "yes" if s["running"] else "no"),
        ("Memory saved:", (f"{size(s['saved_bytes'])} ({values.get('pages_sharing', 0)} pages sharing "
                           f"{values.get('pages_shared', 0)} KSM pages of {s['page_size']} bytes)")),
        ("Sharing ratio:", "-" if s["sharing_ratio"] is None else f"{s['sharing_ratio']:.2f} pages per KSM page"),
    ]
    if s["profit_bytes"] is not None:
        lines.append(("Profit:", f"{size(s['profit_bytes'])} (saved minus ksmd's bookkeeping)"))
    if s["ksmd_cpu_seconds"] is not None:
        pays = ("" if s["saved_per_cpu_second"] is None
                else f"; {size(s['saved_per_cpu_second'])} saved per ksmd CPU second")
        lines.append(("ksmd CPU:", f"{s['ksmd_cpu_seconds']:.1f} s since boot{pays}"))
    if not s["writable"]:
        lines.append(("Writable:", "no (/sys is read-only here: status only)"))
    t = s["tuner"]
    lines.append(("Tuner:", " ".join(f"KSM_{k.upper()}={t[k]}" for k in TUNER_NAMES)))
    d = s.get("last_decision")
    if d:
        lines.append(("Last decision:", f"{d['action']}: total {d['total_kib']} kB, free {d['free_kib']} kB, "
                                        f"committed {d['committed_kib']} kB, threshold {d['threshold_kib']} kB -> "
                                        + (f"pages_to_scan {d['pages_to_scan']}, sleep {d['sleep_millisecs']} ms"
                                           if d["run"] else "KSM stopped")))
    out = "".join(f"{k:<16} {v}\n" for k, v in lines)
    if s["domains"]:
        out += "\nDomains sharing memory:\n" + render(
            ["Domain", "Merged"], [[d["domain"], size(d["merged_bytes"])] for d in s["domains"]])
    out += "\n" + render(["Field", "Value", "Meaning"],
                         [[f["name"], str(f["value"]), f["meaning"]] for f in s["fields"]])
    out += f"\nWarning: {s['warning']}\n"
    return out


def notes_text(s: dict[str, Any]) -> str:
    return "".join(f"Note: {n}\n" for n in s.get("notes", ()))


def parse_pairs(words: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"'{word}' is not KEY=VALUE; write e.g. pages_to_scan=1000 or KSM_NPAGES_MAX=2500")
        if key in pairs:
            raise InvalidArgument(f"'{key}' is given twice")
        pairs[key] = value
    return pairs


def cmd_ksm(ctx: Ctx, a: dict[str, Any]) -> None:
    action, args = a["action"] or "status", a["args"]
    conn = ctx.conn
    if action not in ACTIONS:
        raise InvalidArgument(f"unknown ksm action '{action}'; use {', '.join(ACTIONS)}")
    if action in ("status", "start") and args:
        raise InvalidArgument(f"`ksm {action}` takes no arguments")
    if a["unmerge"] and action != "stop":
        raise InvalidArgument("--unmerge goes with `ksm stop`")
    if action == "status":
        s = conn.ksm()
        ctx.out.text(status_text(s), s)
    elif action == "start":
        s = conn.ksm_start()
        ctx.out.message("KSM started (mode on: ksmd runs with its settings as they are)", s)
    elif action == "stop":
        if args:
            raise InvalidArgument("`ksm stop` takes no arguments (--unmerge also splits every merged page)")
        s = conn.ksm_stop(a["unmerge"])
        ctx.out.message("KSM stopped (mode off)" + "".join(f"; {n}" for n in s["notes"]), s)
    elif action == "mode":
        if len(args) != 1:
            raise InvalidArgument("`ksm mode` takes one mode: unmanaged, off, on, auto or advisor")
        s = conn.ksm_mode(args[0])
        ctx.out.message(f"KSM mode {s['mode']}: {MODE_WORDS[s['mode']]}\n" + notes_text(s).rstrip("\n"), s)
    else:
        s = conn.ksm_tune(parse_pairs(args))
        ctx.out.message(("KSM settings changed\n" + notes_text(s)).rstrip("\n"), s)


COMMANDS = (
    Command("ksm", "host", "see and tune kernel samepage merging", cmd_ksm,
            (Opt("action", STRING, "status (default), start, stop, tune or mode", positional=True),
             Opt("unmerge", BOOL, "with stop: split every merged page again"),
             Opt("args", MANY, "tune: KEY=VALUE...; mode: unmanaged, off, on, auto or advisor", positional=True)),
            "KSM merges identical memory pages of guests (QEMU marks guest RAM mergeable unless the domain has\n"
            "<memoryBacking><nosharepages/>). status shows every field of /sys/kernel/mm/ksm with its meaning,\n"
            "the memory saved, whether scanning pays and which domains share. tune takes sysfs fields\n"
            "(pages_to_scan=1000) and the tuner's ksmtuned settings (KSM_NPAGES_BOOST=300 ...). mode auto hands\n"
            "KSM to the built-in tuner; advisor to the kernel's own advisor where there is one.\n"
            "Merging guests of different owners opens a side channel between them."),
)
