"""Command-line options as data, and their one deterministic rendering.

Builders return ``Option`` values instead of strings so the renderer is the
only place that knows QEMU's quoting rules (a comma inside a key=value value
is doubled; JSON values are compact and keep insertion order), and so checks
that look at every ``-device`` (is the driver available?) need no parsing.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Value = str | int | bool | None


def escape(value: str) -> str:
    """Quote a value for QEMU's key=value parser: a literal comma is ``,,``."""
    return value.replace(",", ",,")


def _render_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int):
        return str(value)
    return escape(value)


@dataclass(frozen=True)
class KeyVal:
    """``head,key=value,...`` (e.g. ``socket,id=x,path=/p``); ``None`` values are left out."""

    head: str | None
    props: tuple[tuple[str, Value], ...] = ()

    def render(self) -> str:
        parts = [escape(self.head)] if self.head is not None else []
        parts += [f"{key}={_render_value(val)}" for key, val in self.props if val is not None]
        return ",".join(parts)

    def get(self, key: str) -> Value:
        for k, v in self.props:
            if k == key:
                return v
        return None


def kv(head: str | None, *props: tuple[str, Value]) -> KeyVal:
    return KeyVal(head, tuple(props))


@dataclass(frozen=True)
class Json:
    """A JSON option value (-blockdev, -object, -audiodev), as libvirt writes them."""

    data: dict[str, Any]

    def render(self) -> str:
        return json.dumps(self.data, separators=(",", ":"))


@dataclass(frozen=True)
class Option:
    """One command-line option: a flag and at most one value."""

    flag: str
    value: str | KeyVal | Json | None = None

    def render(self) -> list[str]:
        if self.value is None:
            return [self.flag]
        if isinstance(self.value, str):
            return [self.flag, self.value]
        return [self.flag, self.value.render()]

    @property
    def device_driver(self) -> str | None:
        """The QEMU device name when this is a ``-device``, else None."""
        if self.flag == "-device" and isinstance(self.value, KeyVal):
            return self.value.head
        return None


def render(options: Iterable[Option]) -> list[str]:
    out: list[str] = []
    for opt in options:
        out += opt.render()
    return out
