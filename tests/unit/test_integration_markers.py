"""Every integration module carries the `integration` marker, so `-m "not integration"` leaves out
every test that needs root, QEMU or the tiny guest (eight modules once lacked it)."""
from __future__ import annotations

import ast
from pathlib import Path

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"


def marks_integration(module: ast.Module) -> bool:
    """True when the module assigns ``pytestmark`` a value that names ``pytest.mark.integration``."""
    for node in module.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                for t in node.targets):
            return any(isinstance(n, ast.Attribute) and n.attr == "integration"
                       and isinstance(n.value, ast.Attribute) and n.value.attr == "mark"
                       for n in ast.walk(node.value))
    return False


def test_every_integration_module_is_marked() -> None:
    modules = sorted(INTEGRATION.glob("test_*.py"))
    assert modules
    unmarked = [p.name for p in modules if not marks_integration(ast.parse(p.read_text(encoding="utf-8")))]
    assert unmarked == [], f"add `pytestmark = pytest.mark.integration` to: {', '.join(unmarked)}"
