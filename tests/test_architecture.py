"""The house rules that import-linter checks (.importlinter): no import cycles, libraries without Django, the
service's layers, and the small surface of `auditor` that `reader_study` uses. Plus the layout rule that
auditor/'s top level holds only the Django project files and access.py."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PROJECT_FILES = {"__init__.py", "settings.py", "urls.py", "wsgi.py", "celery.py", "apps.py", "admin.py", "access.py"}
DOMAINS = {"ingestion", "audits", "detection", "generation", "reporting", "models", "api", "web", "management"}


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_every_import_contract_is_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_the_cycle_contract_catches_a_cycle(tmp_path: Path) -> None:
    """The negative control: the same contract type breaks on a package whose two modules import each other
    (one of the imports inside a function, as the cycles this repository had were)."""
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "first.py").write_text("def a():\n    from cyclic import second\n")
    (package / "second.py").write_text("from cyclic import first\n")
    (tmp_path / ".importlinter").write_text(textwrap.dedent("""
        [importlinter]
        root_package = cyclic
        [importlinter:contract:no-cycles]
        name = no cycles
        type = acyclic_siblings
        ancestors = cyclic
    """))
    result = lint_imports(tmp_path)
    assert result.returncode == 1 and "BROKEN" in result.stdout, result.stdout + result.stderr


def test_the_auditor_top_level_holds_only_project_files_and_domain_packages() -> None:
    modules = {p.name for p in (ROOT / "auditor").glob("*.py")}
    assert modules <= PROJECT_FILES, f"modules outside a domain package: {sorted(modules - PROJECT_FILES)}"
    packages = {p.parent.name for p in (ROOT / "auditor").glob("*/__init__.py")} - {"migrations"}
    assert packages == DOMAINS
