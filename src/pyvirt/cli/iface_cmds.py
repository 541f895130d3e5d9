"""Domain interface commands: domiflist, domifaddr, domifstat, domif-getlink/-setlink,
attach-interface and detach-interface, with virsh 9.0's output.

attach-interface sends (and --print-xml prints) a model ``Interface`` rendered by
the model's formatter, in the child order virsh's attach-interface writes.
"""
from __future__ import annotations

from ..errors import InvalidArgument
from .scope import SCOPE, scope
from .spec import BOOL, DOMAIN, STRING, Command, Opt
from .table import render

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..model.domain import Interface
    from .context import Ctx

IFACE_TYPES = ("network", "bridge", "direct", "ethernet", "user")
STAT_KEYS = ("rx_bytes", "rx_packets", "rx_errs", "rx_drop", "tx_bytes", "tx_packets", "tx_errs", "tx_drop")


def cmd_domiflist(ctx: Ctx, a: dict[str, Any]) -> None:
    rows = ctx.domain(a["domain"]).interfaces(inactive=a["inactive"])
    table = [[r.get("target") or "-", r["type"], r.get("source") or "-", r.get("model") or "-", r["mac"]]
             for r in rows]
    ctx.out.text(render(["Interface", "Type", "Source", "Model", "MAC"], table, quiet=ctx.out.quiet), rows)


def cmd_domifaddr(ctx: Ctx, a: dict[str, Any]) -> None:
    source = a["source"] or "lease"
    ifaces = ctx.domain(a["domain"]).interface_addresses(source)
    if a["interface"]:
        ifaces = [i for i in ifaces if i["name"] == a["interface"]]
        if not ifaces:
            raise InvalidArgument(f"No interface with name '{a['interface']}' was found; see "
                                  f"`pyvirt domiflist {a['domain']}`")
    lines = [] if ctx.out.quiet else [f" {'Name':<10} {'MAC address':<17}    {'Protocol':<12} Address", "-" * 79]
    for iface in ifaces:
        for n, addr in enumerate(iface["addrs"]):
            first = n == 0 or a["full"]
            name, mac = (iface["name"] or "-", iface["mac"]) if first else ("-", "-")
            lines.append(f" {name:<10} {mac:<17}    {addr['type']:<12} {addr['addr']}/{addr['prefix']}")
    ctx.out.text("".join(line + "\n" for line in lines), ifaces)  # virsh's fixed-width printf layout


def cmd_domifstat(ctx: Ctx, a: dict[str, Any]) -> None:
    stats = ctx.domain(a["domain"]).interface_stats(a["interface"])
    dev = stats.get("device", a["interface"])
    ctx.out.text("".join(f"{dev} {key} {stats[key]}\n" for key in STAT_KEYS if key in stats), stats)


def cmd_domif_getlink(ctx: Ctx, a: dict[str, Any]) -> None:
    state = ctx.domain(a["domain"]).get_link(a["interface"], inactive=a["config"])
    ctx.out.blank_after = False  # virsh prints no empty line after "vnet0 up"
    ctx.out.text(f"{a['interface']} {state}", {"interface": a["interface"], "state": state})


def cmd_domif_setlink(ctx: Ctx, a: dict[str, Any]) -> None:
    state = a["state"].lower()
    if state not in ("up", "down"):
        raise InvalidArgument(f"invalid link state '{a['state']}'; use up or down")
    ctx.domain(a["domain"]).set_link(a["interface"], state, live=not a["config"], config=a["config"])
    ctx.out.message("Device updated successfully", {"result": "Device updated successfully"})


# --type -> the <source> attribute that takes the source argument (ethernet and user have no <source>)
SOURCE_ATTR = {"network": "network", "bridge": "bridge", "direct": "dev"}
# attach-interface option -> Interface field, as given (an empty one is not given)
IFACE_OPTIONS = (("mac", "mac"), ("model", "model"))


def attach_interface(a: dict[str, Any]) -> Interface:
    """The Interface attach-interface asks for."""
    from ..model.domain import Interface

    kind = a["type"]
    if kind not in IFACE_TYPES:
        raise InvalidArgument(f"unknown interface type '{kind}'; use one of {', '.join(IFACE_TYPES)}")
    source = a["source"] or ""
    attrs: tuple[tuple[str, str], ...] = ()
    if kind in SOURCE_ATTR:
        attrs = ((SOURCE_ATTR[kind], source),)
    if kind == "direct":
        attrs += (("mode", a["source_mode"] or "vepa"),)
    # an ethernet interface's source is its tap, unless --target names it
    target = a["target"] or (source if kind == "ethernet" else None) or None
    given = {field: a[opt] for opt, field in IFACE_OPTIONS if a[opt]}
    return Interface(type=kind, source=attrs, target_dev=target, **given)


def interface_xml(a: dict[str, Any]) -> str:
    """The <interface> attach-interface sends, laid out as its --print-xml prints it."""
    from ..model.domain_xml_format import format_interface_xml

    return format_interface_xml(attach_interface(a), attach=True)


def cmd_attach_interface(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = interface_xml(a)
    if a["print_xml"]:
        ctx.out.text(xml.rstrip("\n"), {"xml": xml})
        return
    live, config = scope(ctx, a)
    result = ctx.domain(a["domain"]).attach_interface(xml, live=live, config=config)
    ctx.out.message("Interface attached successfully", {"result": "Interface attached successfully", **result})


def cmd_detach_interface(ctx: Ctx, a: dict[str, Any]) -> None:
    live, config = scope(ctx, a)
    result = ctx.domain(a["domain"]).detach_interface(type=a["type"], mac=a["mac"], live=live, config=config)
    ctx.out.message("Interface detached successfully", {"result": "Interface detached successfully", **result})



COMMANDS = (
    Command("attach-interface", "domain", "attach network interface", cmd_attach_interface,
            (DOMAIN,
             Opt("type", STRING, "network interface type", required=True, positional=True),
             Opt("source", STRING, "source of network interface", required=True, positional=True),
             Opt("target", STRING, "target network name"),
             Opt("mac", STRING, "MAC address"),
             Opt("model", STRING, "model type"),
             *SCOPE,
             Opt("print-xml", BOOL, "print XML document rather than attach the interface"),
             Opt("source-mode", STRING, "mode attribute of <source/> element")),
            "Attach new network interface."),
    Command("detach-interface", "domain", "detach network interface", cmd_detach_interface,
            (DOMAIN,
             Opt("type", STRING, "network interface type", required=True, positional=True),
             Opt("mac", STRING, "MAC address"),
             *SCOPE),
            "Detach network interface."),
    Command("domif-getlink", "monitor", "get link state of a virtual interface", cmd_domif_getlink,
            (DOMAIN, Opt("interface", STRING, "interface device (MAC Address)", required=True, positional=True),
             Opt("config", BOOL, "Get persistent interface state")),
            "Get link state of a domain's virtual interface."),
    Command("domif-setlink", "domain", "set link state of a virtual interface", cmd_domif_setlink,
            (DOMAIN, Opt("interface", STRING, "interface device (MAC Address)", required=True, positional=True),
             Opt("state", STRING, "new state of the device", required=True, positional=True),
             Opt("config", BOOL, "affect next boot")),
            "Set link state of a domain's virtual interface."),
    Command("domifaddr", "monitor", "Get network interfaces' addresses for a running domain", cmd_domifaddr,
            (DOMAIN, Opt("interface", STRING, "network interface name"),
             Opt("full", BOOL, "always display names and MACs of interfaces"),
             Opt("source", STRING, "address source: 'lease', 'agent', or 'arp'")),
            "Get network interfaces' addresses for a running domain"),
    Command("domiflist", "monitor", "list all domain virtual interfaces", cmd_domiflist,
            (DOMAIN, Opt("inactive", BOOL, "get inactive rather than running configuration")),
            "Get network interfaces of a domain."),
    Command("domifstat", "monitor", "get network interface stats for a domain", cmd_domifstat,
            (DOMAIN, Opt("interface", STRING, "interface device specified by name or MAC Address",
                         required=True, positional=True)),
            "Get network interface stats for a running domain."),
)
