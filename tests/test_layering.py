"""Layering: the engine and the trainer never import Qt or the GUI (import-linter contracts in pyproject).

import-linter reads ``import`` statements only, so a module loaded by name would pass
it unseen; the lower layers therefore may not load modules by name at all.
"""

from __future__ import annotations

import ast
import pkgutil
import tomllib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    command = [str(lint)] if lint.exists() else [shutil.which("lint-imports") or "lint-imports"]
    run = subprocess.run(command + ["--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "broken" in run.stdout.lower() and "0 broken" in run.stdout.lower()


def test_loading_every_core_module_leaves_qt_unloaded():
    import core

    names = [m.name for m in pkgutil.walk_packages(core.__path__, "core.") if not m.name.endswith("__main__")]
    code = ("import importlib, sys\n"
            f"for n in {names!r}: importlib.import_module(n)\n"
            "bad = [m for m in sys.modules if m.startswith(('PySide6', 'app'))]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(names) >= 8


def _dynamic_imports(path: Path) -> list[str]:
    """Calls that load a module by name: ``importlib.import_module(...)``, ``__import__(...)``."""
    found = []
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                found.append(f"{where}:{node.lineno}")
        elif isinstance(node, ast.ImportFrom) and node.module == "importlib" and any(
                alias.name == "import_module" for alias in node.names):
            found.append(f"{where}:{node.lineno}")
    return found


def test_engine_and_trainer_load_no_module_by_name():
    files = sorted((ROOT / "core").rglob("*.py")) + sorted((ROOT / "trainer").rglob("*.py"))
    assert len(files) > 20
    found = [hit for path in files for hit in _dynamic_imports(path)]
    assert found == [], f"modules loaded by name hide imports from the layering check: {found}"


def test_dynamic_import_finder_sees_both_spellings(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import importlib\nfrom importlib import import_module\n"
                      "importlib.import_module('app.main')\n__import__('PySide6')\n")
    assert len(_dynamic_imports(sample)) == 3


def test_console_script_enters_above_both_layers():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["aladin"] == "app.launcher:main"
    spec = (ROOT / "aladin.spec").read_text(encoding="utf-8")
    assert "app/launcher.py" in spec or '"app" / "launcher.py"' in spec
