"""`pyvirt console NAME`: the guest's serial console on this terminal.

On a terminal: raw mode, every byte goes to the guest, Ctrl-] (0x1d) detaches and
the terminal is restored whatever happens. Without a terminal (a pipe): stdin's
bytes go to the guest and its output is printed; at stdin's end the output is
still relayed until the guest has been quiet for LINGER seconds.
"""
from __future__ import annotations

import os
import select
import sys
import threading
import time

ESCAPE = 0x1D  # Ctrl-]
LINGER = float(os.environ.get("PYVIRT_CONSOLE_LINGER", "1.0"))

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..client.console import ConsoleStream
    from .context import Ctx


def run_console(ctx: Ctx, ref: str, *, force: bool = False) -> int | None:
    stream = ctx.domain(ref).console(force=force)
    try:
        ctx.out.message(f"Connected to domain '{stream.name}'")
        ctx.out.message("Escape character is ^] (Ctrl + ])")
        ctx.out.stdout.flush()
        stdin = sys.stdin.fileno()
        if os.isatty(stdin):
            _interactive(stream, stdin)
        else:
            _relay(stream, stdin, escape=False)
    finally:
        stream.close()
    if stream.close_reason:
        sys.stderr.write(f"{stream.close_reason}\n")
    return None


def _interactive(stream: ConsoleStream, fd: int) -> None:
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        _relay(stream, fd, escape=True)
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
        os.write(sys.stdout.fileno(), b"\n")


class _Pump(threading.Thread):
    """Copies console output to stdout; writes to a pipe when the console ends."""

    def __init__(self, stream: ConsoleStream) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.last_output = time.monotonic()
        self.wake_r, self.wake_w = os.pipe()

    def run(self) -> None:
        out = sys.stdout.fileno()
        try:
            while data := self.stream.read():
                self.last_output = time.monotonic()
                os.write(out, data)
        except OSError:
            pass
        finally:
            os.write(self.wake_w, b"x")


def _relay(stream: ConsoleStream, fd: int, *, escape: bool) -> None:
    pump = _Pump(stream)
    pump.start()
    stdin_open = True
    try:
        while True:
            watch = [pump.wake_r] + ([fd] if stdin_open else [])
            ready, _, _ = select.select(watch, [], [], None if stdin_open else 0.1)
            if pump.wake_r in ready:
                return  # the console ended
            if not stdin_open:
                if time.monotonic() - pump.last_output >= LINGER:
                    return
                continue
            data = os.read(fd, 4096)
            if not data:
                stdin_open = False
                pump.last_output = time.monotonic()
                continue
            cut = data.find(bytes([ESCAPE])) if escape else -1
            if cut >= 0:
                stream.write(data[:cut])
                return
            stream.write(data)
    finally:
        stream.close()
        pump.join(2.0)
        os.close(pump.wake_r)
        os.close(pump.wake_w)
