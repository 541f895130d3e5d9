"""JSON on the client's wire: json.loads and json.dumps without importing `json` up front.

Why: `import json` compiles the module's regular expressions, and so imports re
and enum: ~9 ms of CPU here, on every `pyvirt` command, about half of what a
whole `virsh` query costs. The C scanner that does json.loads' real work,
``_json.make_scanner`` (what json.decoder.JSONDecoder builds around it), imports
in microseconds. ``loads`` drives that scanner with json.loads' default
settings, so it accepts and returns exactly what json.loads does. ``dumps`` is
needed only for request bodies (commands that change something) and --json
output, and imports json when first called. On a Python without _json,
``loads`` is json.loads.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing costs import time on the `pyvirt list` path
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

WHITESPACE = " \t\n\r"  # JSON's own (json.decoder.WHITESPACE)


class _Defaults:
    """The settings _json's scanner reads from a json.JSONDecoder: those of json.loads."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _c_scanner() -> Callable[[str, int], tuple[Any, int]] | None:
    try:
        from _json import make_scanner
    except ImportError:
        return None
    scan: Callable[[str, int], tuple[Any, int]] = make_scanner(_Defaults())  # type: ignore[arg-type]
    return scan


_scan = _c_scanner()


def loads(data: bytes | str) -> Any:
    """json.loads for UTF-8 JSON text; a ValueError (json.JSONDecodeError, UnicodeDecodeError) if it is not."""
    text = data.decode() if isinstance(data, bytes) else data
    if _scan is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError(f"expecting a JSON value at character {start}") from None
    if text[end:].strip(WHITESPACE):
        raise ValueError(f"extra data after the JSON value, at character {end}")
    return value


def dumps(value: Any, **options: Any) -> str:
    """json.dumps (imports json at the first call)."""
    import json

    return json.dumps(value, **options)
