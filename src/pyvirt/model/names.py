"""Names of domains (and later networks, pools, volumes): libvirt's rules, one checker.

A name ends up in file names (logs, sockets, nvram copies) and on command
lines, so it must not contain '/', must not be '.' or '..', and must not hold
control characters; 64 characters keeps every derived path short.
"""
from __future__ import annotations

from ..errors import InvalidArgument

MAX_NAME_LENGTH = 64


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid object name, or None when it is."""
    if not name:
        return "it is empty"
    if name != name.strip():
        return "it starts or ends with white space"
    if "/" in name:
        return "it contains '/'"
    if name in (".", ".."):
        return f"it is '{name}'"
    bad = next((c for c in name if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        return f"it contains the control character {bad!r}"
    if len(name) > MAX_NAME_LENGTH:
        return f"it has {len(name)} characters, more than {MAX_NAME_LENGTH}"
    return None


def check_name(name: str, kind: str = "domain") -> str:
    """Return ``name`` when valid, else raise InvalidArgument saying the rule."""
    problem = name_problem(name)
    if problem is not None:
        shown = f" {name!r}" if name else ""
        raise InvalidArgument(
            f"invalid {kind} name{shown}: {problem}; a {kind} name must be 1-{MAX_NAME_LENGTH} characters "
            "without '/', control characters or surrounding spaces, and not '.' or '..'"
        )
    return name
