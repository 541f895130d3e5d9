"""`pyvirt list` must start fast: its import path holds only the standard library
and pyvirt's light modules (no aiohttp, websockets, qemu.qmp, pydantic or XML).

A read-only query through the installed `pyvirt` command imports less still: not
re, enum, json, socket, collections or importlib either (client/wirejson.py,
client/transport.py and bin/pyvirt say why), checked with `-X importtime`
against the fake daemon.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.fakepyvirtd import fake_daemon

HEAVY = ["aiohttp", "websockets", "qemu", "qemu.qmp", "pydantic", "xml.etree", "xml.etree.ElementTree",
         "http.client", "ssl", "email", "argparse", "asyncio", "typing", "dataclasses", "pathlib",
         "tomllib", "pyvirt.config", "pyvirt.model", "pyvirt.daemon", "pyvirt.api", "pyvirt.pyvirtd", "yaml",
         "jsonschema", "referencing", "openapi_spec_validator", "openapi_schema_validator"]

PROBE = """
import json, sys
import pyvirt.cli.main as m
cmd = m.COMMANDS["list"]
args = cmd.parse(["--all", "--name"])
import pyvirt.client  # what the command runs with, minus the socket
print(json.dumps(sorted(sys.modules)))
"""


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(out.stdout))


def test_cli_list_path_imports_nothing_heavy():
    loaded = loaded_after(PROBE)
    assert "pyvirt.client.transport" in loaded  # the probe really loaded the client
    assert sorted(m for m in HEAVY if m in loaded) == []


# Standard-library modules whose import alone costs milliseconds (enum ~5 ms of CPU here, re ~7 ms with it,
# json ~9 ms with both), kept off the path of a query in text mode.
COSTLY_STDLIB = ["re", "enum", "json", "socket", "selectors", "collections", "functools", "importlib", "warnings",
                 "typing", "dataclasses", "pathlib", "subprocess", "urllib", "urllib.parse", "datetime", "locale"]
PYVIRT_SCRIPT = Path(sys.executable).parent / "pyvirt"


def imported_by_command(uri: str, *argv: str) -> tuple[set[str], str]:
    """The modules the installed `pyvirt` script imports to run ``argv`` (from -X importtime), and its output."""
    done = subprocess.run([sys.executable, "-X", "importtime", str(PYVIRT_SCRIPT), "-c", uri, *argv],
                          capture_output=True, text=True, timeout=60, check=True)
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {line.rpartition("|")[2].strip() for line in lines[1:]}, done.stdout


def test_the_installed_command_is_the_light_script():
    """pip installed bin/pyvirt (not an entry-point wrapper, which imports re) for this interpreter;
    it ends through exit_now (tests/unit/test_cli_exit.py checks what that keeps)."""
    shebang, *body = PYVIRT_SCRIPT.read_text().splitlines()
    assert Path(shebang.removeprefix("#!")).resolve() == Path(sys.executable).resolve()
    assert "from pyvirt.cli.main import exit_now, main" in body and "import re" not in body
    assert body[-1] == "exit_now(main())"


@pytest.mark.parametrize("argv, answer", [(("list", "--all"), " 1    demo   running"), (("dominfo", "demo"), "demo"),
                                          (("domstate", "demo"), "running"), (("dumpxml", "demo"), "<name>demo"),
                                          (("domuuid", "1"), "6695eb01-")])
def test_a_query_imports_no_costly_module(argv, answer):
    with fake_daemon() as (uri, st):
        st.add("demo", id=1, state="running")
        loaded, out = imported_by_command(uri, *argv)
    assert answer in out  # the command really ran and answered
    assert "pyvirt.client.transport" in loaded
    assert sorted(m for m in COSTLY_STDLIB + HEAVY if m in loaded) == []


def test_import_pyvirt_is_cheap():
    loaded = loaded_after("import json, sys; import pyvirt; print(json.dumps(sorted(sys.modules)))")
    assert not {"pyvirt.client", "typing", "socket"} & loaded


def test_console_is_the_only_websockets_user():
    loaded = loaded_after("import json, sys; import pyvirt.client.console; print(json.dumps(sorted(sys.modules)))")
    assert "websockets" not in loaded  # imported inside ConsoleStream, at connect time
