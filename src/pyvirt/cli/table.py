"""virsh's vshTable layout, the format of `list` and friends.

    " Id   Name   State"        one leading space, 3 spaces between columns,
    "----------------------"    sum(column widths) + 3 per column dashes,
    " 1    demo   running"      cells padded to the widest, the last one not.

With --quiet the header and the dashes go, and widths come from the rows alone.
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing costs import time on the `pyvirt list` path
if TYPE_CHECKING:
    from collections.abc import Sequence


def render(header: Sequence[str], rows: Sequence[Sequence[str]], *, quiet: bool = False) -> str:
    """The table as text, each line ending in a newline."""
    lines = list(rows) if quiet else [list(header), *rows]
    if not lines:
        return ""
    ncols = len(header)
    widths = [max(len(str(line[c])) for line in lines) for c in range(ncols)]
    out = []
    for n, line in enumerate(lines):
        cells = [str(cell).ljust(widths[c]) if c < ncols - 1 else str(cell) for c, cell in enumerate(line)]
        out.append(" " + "   ".join(cells))
        if n == 0 and not quiet:
            out.append("-" * (sum(widths) + 3 * ncols))
    return "".join(line + "\n" for line in out)


def render_keyvalue(pairs: Sequence[tuple[str, str]]) -> str:
    """dominfo's `Key:           value` lines: the key padded to 15, the value at column 16."""
    return "".join(f"{key:<15} {value}\n" for key, value in pairs)
