"""The installed `pyvirt` command ends without the interpreter's teardown (cli/main.py exit_now):
its output must still arrive whole, its exit status be main()'s, and a reader that goes away
(`pyvirt list --all | head -1`) end it quietly, as before."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from pyvirt.cli.main import main
from tests.unit.fakepyvirtd import fake_daemon

PYVIRT_SCRIPT = Path(sys.executable).parent / "pyvirt"
MANY = 2000  # ~100 KB of `list --all`: more than any pipe or stdio buffer holds


def test_the_cli_registers_no_atexit_handler():
    """exit_now skips atexit handlers: loading every command module and the client registers none."""
    code = ("import atexit, json; seen = []\n"
            "atexit.register = lambda func, *a, **k: seen.append(f'{func.__module__}.{func.__qualname__}')\n"
            "import pyvirt.cli.main as m\n"
            "for name in m.MODULES: __import__('pyvirt.cli.' + name)\n"
            "import pyvirt.client, pyvirt.cli.console, pyvirt.cli.edit, pyvirt.cli.scope\n"
            "print(json.dumps([len(m.COMMANDS), seen]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    commands, registered = json.loads(done.stdout)
    assert commands > 50 and registered == []


def in_process(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_a_long_answer_arrives_whole_through_a_pipe():
    with fake_daemon() as (uri, st):
        for i in range(MANY):
            running = i % 2 == 1
            st.add(f"dom-with-a-longer-name-{i:05d}", id=i + 1 if running else None,
                   state="running" if running else "shut off")
        done = subprocess.run([str(PYVIRT_SCRIPT), "-c", uri, "list", "--all"], capture_output=True, text=True,
                              timeout=60)
        expected = in_process("-c", uri, "list", "--all")
    assert (done.returncode, done.stdout, done.stderr) == expected
    assert done.stdout.count("\n") == MANY + 3  # header, dashes, the rows, the closing empty line


def test_an_error_keeps_its_status_and_message():
    with fake_daemon() as (uri, _):
        done = subprocess.run([str(PYVIRT_SCRIPT), "-c", uri, "domstate", "nosuch"], capture_output=True,
                              text=True, timeout=60)
        expected = in_process("-c", uri, "domstate", "nosuch")
    assert expected[0] == 1 and "nosuch" in expected[2]
    assert (done.returncode, done.stdout, done.stderr) == expected


def test_a_reader_that_goes_away_ends_it_quietly():
    with fake_daemon() as (uri, st):
        for i in range(MANY):
            st.add(f"dom-with-a-longer-name-{i:05d}", state="shut off")
        proc = subprocess.Popen([str(PYVIRT_SCRIPT), "-c", uri, "list", "--all"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # what `| head -1` does
        err = proc.stderr.read()
        rc = proc.wait(timeout=60)
    assert first == b" Id   Name                           State\n"
    assert (rc, err) == (0, b"")  # as before exit_now: Output writes the answer when the command ends
