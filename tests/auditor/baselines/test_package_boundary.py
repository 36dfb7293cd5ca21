"""auditor.baselines is a library: it must not import Django or the service around it."""
from __future__ import annotations

import ast
from pathlib import Path

import auditor.baselines

PACKAGE_DIR = Path(auditor.baselines.__file__).parent


def imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_module_imports_django_or_the_service() -> None:
    files = sorted(PACKAGE_DIR.glob("*.py"))
    assert len(files) >= 8
    for path in files:
        for module in imported_modules(path.read_text()):
            top = module.split(".")[0]
            assert top not in {"django", "rest_framework", "celery"}, f"{path.name} imports {module}"
            assert not (top == "auditor" and not module.startswith("auditor.baselines")), f"{path.name} imports {module}"
