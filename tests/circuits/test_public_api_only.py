"""`circuits` uses only the public API of `vrp`: no private module, no private name."""

import ast
from pathlib import Path

import circuits

SOURCE = Path(circuits.__file__).parent


def test_circuits_imports_only_public_vrp_names() -> None:
    for path in SOURCE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vrp"):
                assert not any(part.startswith("_") for part in node.module.split(".")), path
                assert not any(alias.name.startswith("_") for alias in node.names), path
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not any(p.startswith("_") for p in alias.name.split(".")[1:]), path


def test_every_name_in_all_exists() -> None:
    for name in circuits.__all__:
        assert getattr(circuits, name) is not None
