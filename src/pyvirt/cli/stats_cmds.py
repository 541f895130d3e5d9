"""Statistics and tuning of domains in virsh's layouts: domstats, dommemstat, schedinfo, memtune, blkiotune."""
from __future__ import annotations

from ..errors import InvalidArgument
from .spec import BOOL, DOMAIN, INT, MANY, STRING, Command, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx

GROUP_OPTS = (("state", "report domain state"), ("cpu-total", "report domain physical cpu usage"),
              ("balloon", "report domain balloon statistics"), ("vcpu", "report domain virtual cpu information"),
              ("interface", "report domain network interface information"),
              ("block", "report domain block device statistics"))
LIST_OPTS = (("active", "list only active domains"), ("inactive", "list only inactive domains"),
             ("persistent", "list only persistent domains"), ("transient", "list only transient domains"),
             ("running", "list only running domains"), ("paused", "list only paused domains"),
             ("shutoff", "list only shutoff domains"), ("other", "list only domains in other states"))
MEMSTAT_FIELDS = ("actual", "swap_in", "swap_out", "major_fault", "minor_fault", "unused", "available", "usable",
                  "last_update", "disk_caches", "hugetlb_pgalloc", "hugetlb_pgfail", "rss")


def domstats_text(records: list[dict[str, Any]]) -> str:
    """virsh's layout: one block per domain, a blank line between blocks."""
    blocks = [f"Domain: '{r['name']}'\n" + "".join(f"  {k}={v}\n" for k, v in r["stats"].items()) for r in records]
    return "\n".join(blocks)


def cmd_domstats(ctx: Ctx, a: dict[str, Any]) -> None:
    groups = [g for g, _ in GROUP_OPTS if a[g.replace("-", "_")]]
    lists = [f for f, _ in LIST_OPTS if a[f"list_{f}"]]
    records = ctx.conn.domain_stats(a["domain"], groups, lists)
    ctx.out.text(domstats_text(records), records)


def scope(a: dict[str, Any]) -> dict[str, bool]:
    """virsh's --current/--live/--config: neither flag (or --current) is the daemon's 'current'."""
    if a.get("current") and (a["live"] or a["config"]):
        raise InvalidArgument("Options --current and --live or --config are mutually exclusive")
    return {"live": bool(a["live"]), "config": bool(a["config"])}


def cmd_dommemstat(ctx: Ctx, a: dict[str, Any]) -> None:
    dom = ctx.domain(a["domain"])
    if a["period"] is not None:
        ctx.out.text("", dom.set_memory_stats_period(a["period"], **scope(a)))
        return
    if a["live"] or a["config"] or a["current"]:
        raise InvalidArgument("--live, --config and --current go with --period")
    m = dom.memory_stats()
    ctx.out.text("".join(f"{k} {m[k]}\n" for k in MEMSTAT_FIELDS if m.get(k) is not None), m)


def _note(info: dict[str, Any], running: bool) -> str:
    return f"{'note':<15}: not in force: {info['note']}\n" if running and not info["applied"] else ""


def _running(ctx: Ctx, ref: str) -> bool:
    return ctx.domain(ref).state()[0] != "shut off"


def cmd_schedinfo(ctx: Ctx, a: dict[str, Any]) -> None:
    dom = ctx.domain(a["domain"])
    params: dict[str, Any] = {}
    for item in a["set"]:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidArgument(f"Invalid syntax for --set, expecting name=value: '{item}'")
        params[key] = value
    for name in ("weight", "cap"):
        if a[name] is not None:
            raise InvalidArgument(f"--{name} is a Xen scheduler parameter; QEMU guests use --set cpu_shares=N")
    if params:
        info = dom.set_schedinfo(params, **scope(a))
    else:
        info = dom.schedinfo(inactive=bool(a["config"]))
    rows = [("Scheduler", info["scheduler"]),
            ("cpu_shares", info["cpu_shares"] if info["cpu_shares"] is not None else 1024),
            ("vcpu_period", info["vcpu_period"] if info["vcpu_period"] is not None else 100000),
            ("vcpu_quota", info["vcpu_quota"] if info["vcpu_quota"] is not None else -1)]
    text = "".join(f"{k:<15}: {v}\n" for k, v in rows) + _note(info, _running(ctx, a["domain"]) and not a["config"])
    ctx.out.text(text, info)


def cmd_memtune(ctx: Ctx, a: dict[str, Any]) -> None:
    dom = ctx.domain(a["domain"])
    for name in ("swap_hard_limit", "min_guarantee"):
        if a[name] is not None:
            raise InvalidArgument(f"--{name.replace('_', '-')} is not supported; pyvirt sets --hard-limit and "
                                  "--soft-limit")
    if a["hard_limit"] is not None or a["soft_limit"] is not None:
        ctx.out.text("", dom.set_memtune(_kib(a["hard_limit"]), _kib(a["soft_limit"]), **scope(a)))
        return
    info = dom.memtune(inactive=bool(a["config"]))

    def show(v: int | None) -> str:
        return "unlimited" if v is None else str(v)

    rows = [("hard_limit", show(info["hard_limit_kib"])), ("soft_limit", show(info["soft_limit_kib"])),
            ("swap_hard_limit", "unlimited")]
    text = "".join(f"{k:<15}: {v}\n" for k, v in rows) + _note(info, _running(ctx, a["domain"]) and not a["config"])
    ctx.out.text(text, info)


def _kib(raw: str | None) -> int | None:
    """A limit in KiB (virsh's scaled --hard-limit 1G too); -1 is unlimited."""
    if raw is None:
        return None
    if raw.strip() == "-1":
        return -1
    from ..model.units import parse_size

    return -(-parse_size(raw, "KiB", what="limit") // 1024)


def cmd_blkiotune(ctx: Ctx, a: dict[str, Any]) -> None:
    dom = ctx.domain(a["domain"])
    for name in ("device_weights", "device_read_iops_sec", "device_write_iops_sec", "device_read_bytes_sec",
                 "device_write_bytes_sec"):
        if a[name] is not None:
            raise InvalidArgument(f"--{name.replace('_', '-')} is not supported; pyvirt sets --weight")
    if a["weight"] is not None:
        ctx.out.text("", dom.set_blkiotune(a["weight"], **scope(a)))
        return
    info = dom.blkiotune(inactive=bool(a["config"]))
    text = f"{'weight':<15}: {info['weight'] if info['weight'] is not None else 0}\n"
    ctx.out.text(text + _note(info, _running(ctx, a["domain"]) and not a["config"]), info)


SCOPE = (Opt("config", BOOL, "affect next boot"), Opt("live", BOOL, "affect running domain"),
         Opt("current", BOOL, "affect current domain"))
COMMANDS = (
    Command("domstats", "monitor", "get statistics about one or multiple domains", cmd_domstats,
            (*(Opt(g, BOOL, h) for g, h in GROUP_OPTS), *(Opt(f"list-{f}", BOOL, h) for f, h in LIST_OPTS),
             Opt("raw", BOOL, "do not pretty-print the fields"),
             Opt("enforce", BOOL, "enforce requested stats parameters"),
             Opt("nowait", BOOL, "report only stats that are accessible instantly"),
             Opt("domain", MANY, "list of domains to get stats for", positional=True)),
            "Gets statistics about one or more (or all) domains. A running domain's groups are read in one\n"
            "QMP round trip. Groups: state, cpu-total, balloon, vcpu, interface, block (all without any)."),
    Command("dommemstat", "monitor", "get memory statistics for a domain", cmd_dommemstat,
            (DOMAIN, Opt("period", INT, "period in seconds to set collection"), *SCOPE),
            "Get memory statistics for a running domain."),
    Command("schedinfo", "domain", "show/set scheduler parameters", cmd_schedinfo,
            (DOMAIN, Opt("weight", INT, "weight for XEN_CREDIT"), Opt("cap", INT, "cap for XEN_CREDIT"), *SCOPE,
             Opt("set", MANY, "parameter=value: cpu_shares, vcpu_period, vcpu_quota", positional=True)),
            "Show/Set scheduler parameters (<cputune>: cgroup v2 cpu.weight and cpu.max)."),
    Command("memtune", "domain", "Get or set memory parameters", cmd_memtune,
            (DOMAIN, Opt("hard-limit", STRING, "Max memory, as scaled integer (default KiB); -1 for unlimited"),
             Opt("soft-limit", STRING, "Memory during contention, as scaled integer (default KiB)"),
             Opt("swap-hard-limit", STRING, "Max memory plus swap, as scaled integer (default KiB)"),
             Opt("min-guarantee", STRING, "Min guaranteed memory, as scaled integer (default KiB)"), *SCOPE),
            "Get or set the current memory parameters for a guest domain (<memtune>: cgroup v2 memory.max and\n"
            "memory.high). A hard limit below what the guest uses is refused."),
    Command("blkiotune", "domain", "Get or set blkio parameters", cmd_blkiotune,
            (DOMAIN, Opt("weight", INT, "IO Weight"), Opt("device-weights", STRING, "per-device IO Weights"),
             Opt("device-read-iops-sec", STRING, "per-device read I/O limit per second"),
             Opt("device-write-iops-sec", STRING, "per-device write I/O limit per second"),
             Opt("device-read-bytes-sec", STRING, "per-device bytes read per second"),
             Opt("device-write-bytes-sec", STRING, "per-device bytes wrote per second"), *SCOPE),
            "Get or set the current blkio parameters for a guest domain (<blkiotune>: cgroup v2 io.weight)."),
)
