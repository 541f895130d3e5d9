"""The one way domain checks report a problem: '<path> in domain 'x': what is wrong; what to do'.

Shared by ``validate`` (names, sizes, values) and ``validate_hw`` (the hardware virt-install writes:
NUMA, memory devices, USB companions, Hyper-V, TPM, shares), so both read alike.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

from ..errors import InvalidArgument, UnsupportedConfig
from .domain import Domain
from .storage import JSON_FILENAME_HINT, is_json_filename
from .tokens import control_char, qemu_name_problem


class Check:
    """Raises at the first problem: '<path> in domain 'x': what is wrong; what to do'."""

    def __init__(self, d: Domain) -> None:
        self.who = f"domain '{d.name}'"

    def fail(self, path: str, what: str, fix: str, cls: type[InvalidArgument] = InvalidArgument) -> NoReturn:
        raise cls(f"{path} in {self.who}: {what}; {fix}")

    def one_of(self, path: str, field: str, value: str | None, allowed: Iterable[str], optional: bool = True) -> None:
        allowed = tuple(allowed)
        if value is None and optional:
            return
        if value not in allowed:
            self.fail(path, f"{field} '{value}' is not supported", f"use one of {', '.join(allowed)}",
                      UnsupportedConfig)

    def qemu_name(self, path: str, what: str, value: str | None, example: str) -> None:
        """A name QEMU reads inside a comma-separated option (-cpu MODEL,+FEATURE): plain, or refused."""
        problem = None if value is None else qemu_name_problem(value)
        if problem is not None:
            self.fail(path, f"{what} {value!r} is not a QEMU name: {problem}", f"write e.g. {example}")

    def no_control(self, path: str, what: str, value: str | None) -> None:
        # a path is written into logs, option strings and fd-set labels, where a newline starts a new line
        if value is not None and (bad := control_char(value)) is not None:
            self.fail(path, f"{what} {value!r} contains the control character {bad!r}", "rename the file")

    def absolute(self, path: str, what: str, value: str | None) -> None:
        if value is not None and is_json_filename(value):
            self.fail(path, f"{what} '{value[:60]}' is refused", JSON_FILENAME_HINT)
        elif value is not None and not value.startswith("/"):
            self.fail(path, f"{what} '{value}' is not an absolute path", "write the full path, starting with /")
        self.no_control(path, what, value)
