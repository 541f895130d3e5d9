"""`pyvirt list` must start fast: its import path holds only the standard library
and pyvirt's light modules (no aiohttp, websockets, qemu.qmp, pydantic or XML)."""
from __future__ import annotations

import json
import subprocess
import sys

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


def test_import_pyvirt_is_cheap():
    loaded = loaded_after("import json, sys; import pyvirt; print(json.dumps(sorted(sys.modules)))")
    assert not {"pyvirt.client", "typing", "socket"} & loaded


def test_console_is_the_only_websockets_user():
    loaded = loaded_after("import json, sys; import pyvirt.client.console; print(json.dumps(sorted(sys.modules)))")
    assert "websockets" not in loaded  # imported inside ConsoleStream, at connect time
