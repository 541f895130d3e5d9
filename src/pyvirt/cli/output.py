"""Where command output goes: virsh's text layout, or JSON with --json / -o json.

Text mode follows virsh: a command's output, then an empty line (left out with
--quiet); "extra" messages (`Domain 'x' started`) are left out with --quiet too;
errors are `error: <message>` lines on stderr. JSON mode prints one document per
result (`{"result": "..."}` for messages) and errors as {"error": {...}} on stderr.
`json` is imported only in JSON mode: its import costs ~9 ms (see client/wirejson.py).
"""
from __future__ import annotations

import sys

from ..errors import PyvirtError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


class Output:
    def __init__(self, *, quiet: bool = False, json_mode: bool = False,
                 stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.quiet = quiet
        self.json = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        # virsh ends most commands' output with an empty line; the few that do not clear this
        self.blank_after = True

    def text(self, text: str, data: Any = None) -> None:
        """A command's main output: ``text`` as is (newline-terminated), or ``data`` as JSON."""
        if self.json:
            self.dump(data if data is not None else {"result": text.rstrip("\n")})
            return
        if text and not text.endswith("\n"):
            text += "\n"
        self.stdout.write(text)

    def message(self, text: str, data: Any = None) -> None:
        """A status message (vshPrintExtra): silent with --quiet."""
        if self.json:
            self.dump(data if data is not None else {"result": text})
        elif not self.quiet:
            self.stdout.write(text + "\n")

    def dump(self, data: Any) -> None:
        import json

        self.stdout.write(json.dumps(data, indent=2) + "\n")

    def end_command(self) -> None:
        """virsh's empty line after each command's output."""
        if not self.json and not self.quiet and self.blank_after:
            self.stdout.write("\n")
        self.stdout.flush()

    def error(self, err: BaseException | str) -> None:
        """`error: <message>` on stderr (JSON: {"error": {code, message[, detail]}})."""
        self.stdout.flush()
        if self.json:
            import json

            body = err.to_dict() if isinstance(err, PyvirtError) else {"code": "usage", "message": str(err)}
            self.stderr.write(json.dumps({"error": body}) + "\n")
        else:
            self.stderr.write(f"error: {err}\n")
        self.stderr.flush()
