"""Object names: libvirt's rules, and messages that say the rule."""
from __future__ import annotations

import pytest

from pyvirt.errors import InvalidArgument
from pyvirt.model.names import MAX_NAME_LENGTH, check_name, name_problem


@pytest.mark.parametrize(
    "name", ["web1", "a", "uefi,vm", "with space", "x" * MAX_NAME_LENGTH, "ünïcødé", "a.b-c_d"]
)
def test_valid(name: str) -> None:
    assert name_problem(name) is None
    assert check_name(name) == name


@pytest.mark.parametrize(("name", "why"), [
    ("", "empty"),
    ("a/b", "'/'"),
    (".", "'.'"),
    ("..", "'..'"),
    ("tab\there", "control character"),
    ("nl\n", "white space"),
    ("bell\x07", "control character"),
    ("del\x7f", "control character"),
    ("x" * (MAX_NAME_LENGTH + 1), "more than 64"),
    (" lead", "white space"),
])
def test_invalid(name: str, why: str) -> None:
    problem = name_problem(name)
    assert problem is not None and why in problem
    with pytest.raises(InvalidArgument) as info:
        check_name(name, "network")
    msg = str(info.value)
    assert msg.startswith("invalid network name")
    assert why in msg and "1-64 characters" in msg  # says the rule
