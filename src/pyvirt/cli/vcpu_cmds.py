"""Memory size and vCPUs in virsh's words and layouts: setmem, setmaxmem, setvcpus, vcpucount, vcpuinfo,
vcpupin, emulatorpin.

virsh's scopes: setmem and setvcpus without a flag change the running guest only
(virDomainSetMemory/virDomainSetVcpus); --current is the running domain, else
its definition, which the daemon picks when neither --live nor --config comes.
"""
from __future__ import annotations

from ..errors import InvalidArgument
from .spec import BOOL, DOMAIN, INT, SCALED, STRING, Command, Opt
from .table import render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx


def exclusive(a: dict[str, Any], *pairs: tuple[str, str]) -> None:
    """virsh's VSH_EXCLUSIVE_OPTIONS: the first pair given together is the error."""
    for one, other in pairs:
        if a.get(one.replace("-", "_")) and a.get(other.replace("-", "_")):
            raise InvalidArgument(f"Options --{one} and --{other} are mutually exclusive")


SCOPE_PAIRS = (("current", "live"), ("current", "config"))


def size_kib(text: str) -> int:
    """virsh's scaled integer (default KiB), rounded up to whole KiB."""
    from ..model.units import parse_size

    try:
        size = parse_size(text, "KiB")
    except InvalidArgument:
        size = -1
    if size < 0:
        raise InvalidArgument(f"Scaled numeric value '{text}' for <size> option is malformed or out of range")
    return -(-size // 1024)


def _set_scope(a: dict[str, Any], live_by_default: bool) -> dict[str, bool]:
    """(live, config) for the daemon; no flag at all is live-only where virsh calls the flagless API."""
    exclusive(a, *SCOPE_PAIRS)
    if live_by_default and not (a["current"] or a["live"] or a["config"]):
        return {"live": True, "config": False}
    return {"live": bool(a["live"]), "config": bool(a["config"])}


def cmd_setmem(ctx: Ctx, a: dict[str, Any]) -> None:
    kib = size_kib(a["size"])
    ctx.out.text("", ctx.domain(a["domain"]).set_memory(kib, **_set_scope(a, live_by_default=True)))


def cmd_setmaxmem(ctx: Ctx, a: dict[str, Any]) -> None:
    kib = size_kib(a["size"])
    ctx.out.text("", ctx.domain(a["domain"]).set_max_memory(kib, **_set_scope(a, live_by_default=False)))


def cmd_setvcpus(ctx: Ctx, a: dict[str, Any]) -> None:
    exclusive(a, *SCOPE_PAIRS, ("guest", "config"))
    if a["maximum"] and not a["config"]:
        raise InvalidArgument("Option --config is required by option --maximum")
    if a["hotpluggable"] and a["config"]:
        raise InvalidArgument("--hotpluggable with --config needs per-vCPU settings (<vcpus>), which pyvirt does not "
                              "support; vCPUs added live are hot-unpluggable without it")
    scope = _set_scope(a, live_by_default=True)
    result = ctx.domain(a["domain"]).set_vcpus(a["count"], maximum=a["maximum"], guest=a["guest"], **scope)
    ctx.out.text("", result)


def vcpucount_text(counts: dict[str, Any]) -> str:
    """The table without flags: maximum config, maximum live, current config, current live (those there are)."""
    rows = (("maximum", "config"), ("maximum", "live"), ("current", "config"), ("current", "live"))
    return "".join(f"{which:<12} {state:<12} {counts[f'{which}_{state}']:>3}\n" for which, state in rows
                   if counts.get(f"{which}_{state}"))


def cmd_vcpucount(ctx: Ctx, a: dict[str, Any]) -> None:
    exclusive(a, ("active", "maximum"), ("guest", "config"), *SCOPE_PAIRS, ("live", "config"))
    if a["guest"]:
        raise InvalidArgument("vcpucount --guest asks the QEMU guest agent, which pyvirt does not use; read "
                              "/sys/devices/system/cpu/online inside the guest")
    dom = ctx.domain(a["domain"])
    counts = dom.vcpu_count()
    if not (a["maximum"] or a["active"] or a["live"] or a["config"] or a["current"]):
        ctx.out.text(vcpucount_text(counts), counts)
        return
    which = "maximum" if a["maximum"] else "current"
    state = "live" if a["live"] else "config" if a["config"] else \
        ("live" if counts["current_live"] is not None else "config")
    value = counts[f"{which}_{state}"]
    if value is None:
        name = dom.name
        raise InvalidArgument(f"domain '{name}' is not running; use --config" if state == "live" else
                              f"domain '{name}' is transient: it has no definition; leave out --config")
    ctx.out.text(f"{value}\n", {"count": value})


def affinity_text(cpus: list[int], host_cpus: int, pretty: bool) -> str:
    from ..model.cpuset import format_cpuset

    if pretty:
        return f"{format_cpuset(cpus)} (out of {host_cpus})"
    chosen = set(cpus)
    return "".join("y" if i in chosen else "-" for i in range(host_cpus))


def vcpuinfo_text(info: dict[str, Any], pretty: bool) -> str:
    """virsh's blocks, an empty line between them; 'CPU time' keeps virsh's missing colon when N/A."""
    blocks = []
    for row in info["vcpus"]:
        time = ("CPU time:", f"{row['cpu_time_ns'] / 1e9:.1f}s") if row["cpu_time_ns"] is not None else \
            ("CPU time", "N/A")
        pairs = [("VCPU:", str(row["vcpu"])), ("CPU:", str(row["cpu"]) if row["cpu"] is not None else "N/A"),
                 ("State:", row["state"]), time,
                 ("CPU Affinity:", affinity_text(row["affinity"], info["host_cpus"], pretty))]
        blocks.append("".join(f"{k:<15} {v}\n" for k, v in pairs))
    return "\n".join(blocks)


def cmd_vcpuinfo(ctx: Ctx, a: dict[str, Any]) -> None:
    info = ctx.domain(a["domain"]).vcpu_info()
    ctx.out.text(vcpuinfo_text(info, a["pretty"]), info)


def vcpupin_text(rows: list[dict[str, Any]], quiet: bool) -> str:
    from ..model.cpuset import format_cpuset

    return render(("VCPU", "CPU Affinity"), [(str(r["vcpu"]), format_cpuset(r["cpus"])) for r in rows], quiet=quiet)


def cmd_vcpupin(ctx: Ctx, a: dict[str, Any]) -> None:
    exclusive(a, *SCOPE_PAIRS)
    dom = ctx.domain(a["domain"])
    if a["cpulist"] is not None:
        if a["vcpu"] is None:
            raise InvalidArgument("vcpupin: Missing vCPU number in pin mode.")
        ctx.out.text("", dom.pin_vcpu(a["vcpu"], a["cpulist"], live=a["live"], config=a["config"]))
        return
    exclusive(a, ("live", "config"))
    info = dom.vcpu_pinning(live=a["live"], config=a["config"])
    rows = info["vcpus"]
    if a["vcpu"] is not None:
        rows = [r for r in rows if r["vcpu"] == a["vcpu"]]
        if not rows:
            where = "persistent" if a["config"] or not dom.is_active() else "live"
            raise InvalidArgument(f"vcpu {a['vcpu']} is out of range of {where} cpu count {len(info['vcpus'])}")
    ctx.out.text(vcpupin_text(rows, ctx.out.quiet), {**info, "vcpus": rows})


def cmd_emulatorpin(ctx: Ctx, a: dict[str, Any]) -> None:
    from ..model.cpuset import format_cpuset

    exclusive(a, *SCOPE_PAIRS)
    dom = ctx.domain(a["domain"])
    if a["cpulist"] is not None:
        ctx.out.text("", dom.pin_emulator(a["cpulist"], live=a["live"], config=a["config"]))
        return
    exclusive(a, ("live", "config"))
    info = dom.emulator_pinning(live=a["live"], config=a["config"])
    head = "" if ctx.out.quiet else "emulator: CPU Affinity\n----------------------------------\n       *: "
    ctx.out.text(f"{head}{format_cpuset(info['cpus'])}\n", info)


SCOPE = (Opt("config", BOOL, "affect next boot"), Opt("live", BOOL, "affect running domain"),
         Opt("current", BOOL, "affect current domain"))
CPULIST = Opt("cpulist", STRING, "host cpu number(s) to set, or omit option to query", positional=True)
COMMANDS = (
    Command("setmem", "domain", "change memory allocation", cmd_setmem,
            (DOMAIN, Opt("size", SCALED, "new memory size, as scaled integer (default KiB)", required=True,
                         positional=True), *SCOPE),
            "Change the current memory allocation in the guest domain."),
    Command("setmaxmem", "domain", "change maximum memory limit", cmd_setmaxmem,
            (DOMAIN, Opt("size", SCALED, "new maximum memory size, as scaled integer (default KiB)", required=True,
                         positional=True), *SCOPE),
            "Change the maximum memory allocation limit in the guest domain."),
    Command("setvcpus", "domain", "change number of virtual CPUs", cmd_setvcpus,
            (DOMAIN, Opt("count", INT, "number of virtual CPUs", required=True, positional=True),
             Opt("maximum", BOOL, "set maximum limit on next boot"), *SCOPE,
             Opt("guest", BOOL, "modify cpu state in the guest"),
             Opt("hotpluggable", BOOL, "make added vcpus hot(un)pluggable")),
            "Change the number of virtual CPUs in the guest domain."),
    Command("vcpucount", "domain", "domain vcpu counts", cmd_vcpucount,
            (DOMAIN, Opt("maximum", BOOL, "get maximum count of vcpus"),
             Opt("active", BOOL, "get number of currently active vcpus"),
             Opt("live", BOOL, "get value from running domain"),
             Opt("config", BOOL, "get value to be used on next boot"),
             Opt("current", BOOL, "get value according to current domain state"),
             Opt("guest", BOOL, "retrieve vcpu count from the guest instead of the hypervisor")),
            "Returns the number of virtual CPUs used by the domain."),
    Command("vcpuinfo", "domain", "detailed domain vcpu information", cmd_vcpuinfo,
            (DOMAIN, Opt("pretty", BOOL, "return human readable output")),
            "Returns basic information about the domain virtual CPUs."),
    Command("vcpupin", "domain", "control or query domain vcpu affinity", cmd_vcpupin,
            (DOMAIN, Opt("vcpu", INT, "vcpu number", positional=True), CPULIST, *SCOPE),
            "Pin domain VCPUs to host physical CPUs."),
    Command("emulatorpin", "domain", "control or query domain emulator affinity", cmd_emulatorpin,
            (DOMAIN, CPULIST, *SCOPE),
            "Pin domain emulator threads to host physical CPUs."),
)
