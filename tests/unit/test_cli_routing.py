"""The CLI imports only the module of the command it runs: every command must be found there."""
from __future__ import annotations

import importlib

from pyvirt.cli import main


def test_every_command_is_routed_to_the_module_that_defines_it() -> None:
    seen = {}
    for module in main.MODULES:
        for cmd in importlib.import_module(f"pyvirt.cli.{module}").COMMANDS:
            assert cmd.name not in seen, f"{cmd.name} is defined in {seen[cmd.name]} and {module}"
            seen[cmd.name] = module
    for name, module in seen.items():
        routed = main.module_for(name)
        assert (routed or module) == module and (routed is not None or module in main.CORE), name


def test_a_lookup_imports_only_the_routed_module() -> None:
    table = main.CommandTable()
    assert table.get("net-list") is not None
    assert set(table._loaded) == {"net_cmds"}
    assert table.get("no-such-command") is None  # unknown names look everywhere, then give up
    assert set(table._loaded) == set(main.MODULES)
