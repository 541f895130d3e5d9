"""Host and hypervisor commands (virsh's 'host' group) and host-validate."""
from __future__ import annotations

from .. import __version__
from .spec import BOOL, Command, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx

VALIDATE_WIDTH = 69  # virt-host-validate: "  QEMU: " + "Checking %-60s" + ": PASS"


def cmd_version(ctx: Ctx, a: dict[str, Any]) -> None:
    v = ctx.conn.version()
    hyper = v.get("hypervisor", "QEMU")
    lines = [
        f"Compiled against library: pyvirt {__version__}",
        f"Using library: pyvirt {__version__}",
        f"Using API: {hyper} {v.get('library', __version__)}",
        f"Running hypervisor: {hyper} {v.get('hypervisor_version', 'unknown')}",
    ]
    if a["daemon"]:
        lines.append(f"Running against daemon: {v.get('daemon', 'unknown')}")
    ctx.out.text("\n".join(lines), {"client": __version__, **v})


def cmd_uri(ctx: Ctx, a: dict[str, Any]) -> None:
    uri = ctx.conn.uri()
    ctx.out.text(uri, {"uri": uri})


def cmd_hostname(ctx: Ctx, a: dict[str, Any]) -> None:
    name = ctx.conn.hostname()
    ctx.out.text(name, {"hostname": name})


def cmd_capabilities(ctx: Ctx, a: dict[str, Any]) -> None:
    """libvirt's XML; with --json the same facts as data (host CPU and features, NUMA cells, guests)."""
    data = ctx.conn.capabilities_data()
    ctx.out.text(data["xml"], data.get("capabilities", {"xml": data["xml"]}))


def validate_line(check: dict[str, str]) -> str:
    status = check.get("status", "")
    detail = check.get("detail") or ""
    tail = f"{status} ({detail})" if detail and status != "PASS" else status
    return f"{'QEMU':>6}: {check.get('name', ''):<{VALIDATE_WIDTH}}: {tail}"


def cmd_host_validate(ctx: Ctx, a: dict[str, Any]) -> int:
    checks = ctx.conn.host_validate()
    ctx.out.text("".join(validate_line(c) + "\n" for c in checks), checks)
    return 1 if any(c.get("status") == "FAIL" for c in checks) else 0


COMMANDS = (
    Command("capabilities", "host", "capabilities", cmd_capabilities, (),
            "Returns capabilities of hypervisor/driver."),
    Command("hostname", "host", "print the hypervisor hostname", cmd_hostname),
    Command("host-validate", "host", "validate the host for running QEMU guests", cmd_host_validate, (),
            "Runs virt-host-validate's QEMU checks in the daemon. Exits 1 if a check FAILs."),
    Command("uri", "host", "print the hypervisor canonical URI", cmd_uri),
    Command("version", "host", "show version", cmd_version,
            (Opt("daemon", BOOL, "report daemon version too"),), "Display the system version information."),
)
