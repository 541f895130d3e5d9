"""Virtual network commands (virsh's 'network' help group), with virsh 9.0's messages."""
from __future__ import annotations

from ..errors import InvalidArgument
from .domain_cmds import read_file
from .spec import BOOL, STRING, Command, Opt
from .table import render, render_keyvalue

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx

NETWORK = Opt("network", STRING, "network name or uuid", required=True, positional=True)
NET_FILE = Opt("file", STRING, "file containing an XML network description", required=True, positional=True)
UPDATE_COMMANDS = {"add": "add-last", "add-last": "add-last", "add-first": "add-first", "delete": "delete",
                   "modify": "modify"}
UPDATE_SECTIONS = ("ip-dhcp-host",)


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def _say(ctx: Ctx, text: str, data: Any = None) -> None:
    ctx.out.message(text, {"result": text, **({"network": data} if data is not None else {})})


def select(nets: list[dict[str, Any]], a: dict[str, Any]) -> list[dict[str, Any]]:
    """net-list's filters: active by default; --all, --inactive; persistence and autostart families."""
    if a["all"]:
        picked = list(nets)
    elif a["inactive"]:
        picked = [n for n in nets if not n["active"]]
    else:
        picked = [n for n in nets if n["active"]]
    if a["persistent"] or a["transient"]:
        picked = [n for n in picked
                  if (a["persistent"] and n["persistent"]) or (a["transient"] and not n["persistent"])]
    if a["autostart"] or a["no_autostart"]:
        picked = [n for n in picked
                  if (a["autostart"] and n["autostart"]) or (a["no_autostart"] and not n["autostart"])]
    return picked


def cmd_net_list(ctx: Ctx, a: dict[str, Any]) -> None:
    nets = select(ctx.conn.list_networks(), a)
    if ctx.out.json:
        ctx.out.dump(nets)
        return
    if a["name"] or a["uuid"]:
        key = "name" if a["name"] else "uuid"
        ctx.out.text("".join(f"{n[key]}\n" for n in nets))
        return
    rows = [[n["name"], "active" if n["active"] else "inactive", _yes(n["autostart"]), _yes(n["persistent"])]
            for n in nets]
    ctx.out.text(render(["Name", "State", "Autostart", "Persistent"], rows, quiet=ctx.out.quiet))


def cmd_net_info(ctx: Ctx, a: dict[str, Any]) -> None:
    n = ctx.conn.network(a["network"]).info()
    pairs = [("Name:", n["name"]), ("UUID:", n["uuid"]), ("Active:", _yes(n["active"])),
             ("Persistent:", _yes(n["persistent"])), ("Autostart:", _yes(n["autostart"]))]
    if n.get("bridge"):
        pairs.append(("Bridge:", n["bridge"]))
    ctx.out.text(render_keyvalue(pairs), n)


def cmd_net_define(ctx: Ctx, a: dict[str, Any]) -> None:
    net = ctx.conn.define_network(read_file(a["file"]))
    _say(ctx, f"Network {net.name} defined from {a['file']}", net.last)


def cmd_net_create(ctx: Ctx, a: dict[str, Any]) -> None:
    net = ctx.conn.create_network(read_file(a["file"]))
    _say(ctx, f"Network {net.name} created from {a['file']}", net.last)


def cmd_net_start(ctx: Ctx, a: dict[str, Any]) -> None:
    net = ctx.conn.network(a["network"]).start()
    _say(ctx, f"Network {a['network']} started", net.last)


def cmd_net_destroy(ctx: Ctx, a: dict[str, Any]) -> None:
    result = ctx.conn.network(a["network"]).destroy(force=a["force"])
    lines = [f"Network {a['network']} destroyed"]
    for lost in result.get("disconnected", []):
        dev = lost.get("interface") or "?"
        lines.append(f"warning: domain '{lost['domain']}' lost the link of interface {dev}")
    ctx.out.message("\n".join(lines), {"result": lines[0], **result})


def cmd_net_undefine(ctx: Ctx, a: dict[str, Any]) -> None:
    net = ctx.conn.network(a["network"]).undefine()
    _say(ctx, f"Network {a['network']} has been undefined", net.last)


def cmd_net_autostart(ctx: Ctx, a: dict[str, Any]) -> None:
    net = ctx.conn.network(a["network"]).set_autostart(not a["disable"])
    what = "unmarked as autostarted" if a["disable"] else "marked as autostarted"
    _say(ctx, f"Network {a['network']} {what}", net.last)


def cmd_net_dumpxml(ctx: Ctx, a: dict[str, Any]) -> None:
    xml = ctx.conn.network(a["network"]).xml(inactive=a["inactive"])
    ctx.out.text(xml, {"xml": xml})


def cmd_net_edit(ctx: Ctx, a: dict[str, Any]) -> int | None:
    from .edit import edit_object

    net = ctx.conn.network(a["network"])
    return edit_object(ctx, net, "Network {}", lambda: net.last)


def cmd_net_uuid(ctx: Ctx, a: dict[str, Any]) -> None:
    n = ctx.conn.network(a["network"]).info()
    ctx.out.text(n["uuid"], {"uuid": n["uuid"]})


def cmd_net_name(ctx: Ctx, a: dict[str, Any]) -> None:
    n = ctx.conn.network(a["network"]).info()
    ctx.out.text(n["name"], {"name": n["name"]})


def cmd_net_dhcp_leases(ctx: Ctx, a: dict[str, Any]) -> None:
    leases = ctx.conn.network(a["network"]).dhcp_leases(mac=a["mac"])
    rows = [[lease["expiry_time"], lease["mac"], lease["type"], f"{lease['ipaddr']}/{lease['prefix']}",
             lease.get("hostname") or "-", lease.get("clientid") or "-"] for lease in leases]
    header = ["Expiry Time", "MAC address", "Protocol", "IP address", "Hostname", "Client ID or DUID"]
    ctx.out.text(render(header, rows, quiet=ctx.out.quiet), leases)


def cmd_net_update(ctx: Ctx, a: dict[str, Any]) -> None:
    command = UPDATE_COMMANDS.get(a["command"])
    if command is None:
        raise InvalidArgument(f"unknown net-update command '{a['command']}'; use add, add-first, add-last, "
                              "delete or modify")
    if a["section"] not in UPDATE_SECTIONS:
        raise InvalidArgument(f"net-update section '{a['section']}' is not supported; supported: "
                              f"{', '.join(UPDATE_SECTIONS)}")
    xml = a["xml"] if a["xml"].lstrip().startswith("<") else read_file(a["xml"])
    live, config = a["live"], a["config"]
    if a["current"] and (live or config):
        raise InvalidArgument("--current is exclusive with --live and --config")
    net = ctx.conn.network(a["network"])
    if not (live or config):  # --current: the running network if active, else its definition
        active = net.info()["active"]
        live, config = active, not active
    net.update(command, a["section"], xml, live=live, config=config)
    what = " and ".join(x for x in ("persistent config" if config else "", "live state" if live else "") if x)
    _say(ctx, f"Updated network {net.name} {what}", net.last)


LIST_OPTS = (
    Opt("inactive", BOOL, "list inactive networks"),
    Opt("all", BOOL, "list inactive & active networks"),
    Opt("persistent", BOOL, "list persistent networks"),
    Opt("transient", BOOL, "list transient networks"),
    Opt("autostart", BOOL, "list networks with autostart enabled"),
    Opt("no-autostart", BOOL, "list networks with autostart disabled"),
    Opt("uuid", BOOL, "list uuid's only"),
    Opt("name", BOOL, "list network names only"),
)

COMMANDS = (
    Command("net-autostart", "network", "autostart a network", cmd_net_autostart,
            (NETWORK, Opt("disable", BOOL, "disable autostarting")),
            "Configure a network to be automatically started at boot."),
    Command("net-create", "network", "create a network from an XML file", cmd_net_create,
            (NET_FILE,), "Create a network."),
    Command("net-define", "network", "define an inactive persistent virtual network or modify an existing "
            "persistent one from an XML file", cmd_net_define, (NET_FILE,),
            "Define or modify a persistent virtual network."),
    Command("net-destroy", "network", "destroy (stop) a network", cmd_net_destroy,
            (NETWORK, Opt("force", BOOL, "stop it even if running domains use it (they lose their links)")),
            "Forcefully stop a given network."),
    Command("net-dhcp-leases", "network", "print lease info for a given network", cmd_net_dhcp_leases,
            (NETWORK, Opt("mac", STRING, "MAC address")), "Print lease info for a given network"),
    Command("net-dumpxml", "network", "network information in XML", cmd_net_dumpxml,
            (NETWORK, Opt("inactive", BOOL, "show inactive defined XML")),
            "Output the network information as an XML dump to stdout."),
    Command("net-edit", "network", "edit XML configuration for a network", cmd_net_edit,
            (NETWORK,), "Edit the XML configuration for a network."),
    Command("net-info", "network", "network information", cmd_net_info,
            (NETWORK,), "Returns basic information about the network"),
    Command("net-list", "network", "list networks", cmd_net_list, LIST_OPTS, "Returns list of networks."),
    Command("net-name", "network", "convert a network UUID to network name", cmd_net_name,
            (Opt("network", STRING, "network uuid", required=True, positional=True),)),
    Command("net-start", "network", "start a (previously defined) inactive network", cmd_net_start,
            (NETWORK,), "Start a network."),
    Command("net-undefine", "network", "undefine a persistent network", cmd_net_undefine,
            (NETWORK,), "Undefine the configuration for a persistent network."),
    Command("net-update", "network", "update parts of an existing network's configuration", cmd_net_update,
            (NETWORK,
             Opt("command", STRING, "type of update (add-first, add-last (add), delete, or modify)",
                 required=True, positional=True),
             Opt("section", STRING, "which section of network configuration to update", required=True,
                 positional=True),
             Opt("xml", STRING, "name of file containing xml (or, if it starts with '<', the complete xml element "
                 "itself) to add/modify, or to be matched for search", required=True, positional=True),
             Opt("parent-index", STRING, "which parent object to search through"),
             Opt("config", BOOL, "affect next network startup"),
             Opt("live", BOOL, "affect running network"),
             Opt("current", BOOL, "affect current state of network")),
            "Update part of an existing network's configuration."),
    Command("net-uuid", "network", "convert a network name to network UUID", cmd_net_uuid,
            (Opt("network", STRING, "network name", required=True, positional=True),)),
)
