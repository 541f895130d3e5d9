"""die_with_parent: a helper process gets SIGKILL when the process that started it dies, even by SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pyvirt.children import die_with_parent

pytestmark = pytest.mark.timeout(30)

# A parent that starts `sleep` (with or without the preexec), prints its pid and waits to be killed.
PARENT = textwrap.dedent("""
    import subprocess, sys, time
    from pyvirt.children import die_with_parent
    guarded = sys.argv[1] == "guarded"
    child = subprocess.Popen(["sleep", "60"], preexec_fn=die_with_parent() if guarded else None)
    print(child.pid, flush=True)
    time.sleep(60)
""")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def child_after_parent_killed(mode: str, wait: float) -> bool:
    """Start a parent in ``mode``, SIGKILL it, and say whether its child still runs ``wait`` s later."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + wait
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.02)
        return alive(child)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_the_child_dies_with_its_parent() -> None:
    assert child_after_parent_killed("guarded", wait=3.0) is False


def test_without_it_the_child_lives_on() -> None:
    """The control: what the guarded case would look like without PR_SET_PDEATHSIG."""
    assert child_after_parent_killed("plain", wait=0.3) is True


def test_it_is_a_preexec_function_that_lets_the_program_run() -> None:
    done = subprocess.run(["true"], preexec_fn=die_with_parent(), check=False)
    assert done.returncode == 0
