"""virsh's --live/--config/--persistent/--current for device changes, shared by the
interface and disk commands."""
from __future__ import annotations

from ..errors import InvalidArgument
from .spec import BOOL, Opt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .context import Ctx

SCOPE = (
    Opt("persistent", BOOL, "make live change persistent"),
    Opt("config", BOOL, "affect next boot"),
    Opt("live", BOOL, "affect running domain"),
    Opt("current", BOOL, "affect current domain"),
)


def scope(ctx: Ctx, a: dict[str, Any]) -> tuple[bool, bool]:
    """(live, config); the default (--current) is live if the domain runs, else config."""
    live, config, current, persistent = a["live"], a["config"], a["current"], a.get("persistent", False)
    if current and (live or config or persistent):
        raise InvalidArgument("--current is exclusive with --live, --config and --persistent")
    if persistent:
        return ctx.domain(a["domain"]).is_active(), True
    if live or config:
        return live, config
    return (True, False) if ctx.domain(a["domain"]).is_active() else (False, True)
