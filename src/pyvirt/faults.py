"""Test-only fault points: the daemon kills itself (SIGKILL) at a named step of a verb.

The crash-window tests start a daemon with ``PYVIRT_FAULT=<step>``; when the
daemon reaches ``point("<step>")`` it dies on the spot, as a power cut or an
OOM kill would stop it, and the test restarts it and checks that nothing was
left half-done. Without the variable (every real daemon) a point is one
comparison against None.
"""
from __future__ import annotations

import os
import signal

ENV = "PYVIRT_FAULT"
_WANTED = os.environ.get(ENV) or None


def point(step: str) -> None:
    """Die here if the tests asked for this step (see the module's docstring)."""
    if _WANTED is not None and step == _WANTED:
        os.kill(os.getpid(), signal.SIGKILL)
