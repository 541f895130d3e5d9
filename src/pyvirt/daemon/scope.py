"""virsh's --live/--config/--current for the changes of a domain's sizes and pinning.

Neither flag is --current: the running domain, else its definition. What each
scope needs is checked before anything changes, so a refused request leaves
both the guest and the definition as they were.
"""
from __future__ import annotations

from ..errors import OperationInvalid
from .domain_table import DomainEntry


def resolve(entry: DomainEntry, live: bool, config: bool) -> tuple[bool, bool]:
    """(live, config) after --current; OperationInvalid when the domain lacks what a flag names."""
    if not live and not config:
        live, config = entry.running is not None, entry.running is None
    if live and entry.running is None:
        raise OperationInvalid(f"domain '{entry.name}' is not running; use --config to change its definition "
                               f"(or start it with `pyvirt start {entry.name}`)")
    if config and not entry.persistent:
        raise OperationInvalid(f"domain '{entry.name}' is transient: it has no definition; leave out --config")
    return live, config
