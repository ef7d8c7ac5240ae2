"""The package's shape: data flows one way, no import cycles, no reaching into another module's privates.

The layers and the cycle rule are import-linter contracts (``.importlinter``);
the other rules are read here from the source with ``ast``.
"""

import ast
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

PACKAGE = ROOT / "dedup"
# the dashboard needs the optional 'web' extra (FastAPI, Jinja2): commands import it only when asked for it
OPTIONAL = ("web",)


def modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(PACKAGE.rglob("*.py"))]


def internal(node: ast.ImportFrom) -> bool:
    return node.level > 0 or (node.module or "").split(".")[0] == "dedup"


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_module_imports_another_modules_private_names():
    found = [f"{p.relative_to(ROOT)}:{node.lineno} imports {alias.name}"
             for p, tree in modules() for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and internal(node)
             for alias in node.names if alias.name.startswith("_") and alias.name != "__version__"]
    assert found == []


def test_modules_import_each_other_at_the_top_only_optional_extras_late():
    found = []
    for p, tree in modules():
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and internal(node):
                        target = (node.module or "").removeprefix("dedup.")
                        here = p.relative_to(PACKAGE).parts
                        if not (target.split(".")[0] in OPTIONAL or here[0] in OPTIONAL):
                            found.append(f"{p.relative_to(ROOT)}:{node.lineno} imports {node.module} late")
    assert found == []


# public names that start with "_": named tuples' API (so as not to clash with field names), and os._exit
PUBLIC = {"_make", "_replace", "_asdict", "_fields", "_field_defaults", "_exit"}


def private_names_defined(tree: ast.Module) -> set[str]:
    """The '_' names a module defines: functions, classes, class attributes and attributes it assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {n for n in names if n.startswith("_")}


def owner_is_self(value: ast.expr) -> bool:
    """``self.x``, ``cls.x`` and ``super().x``: an object's own names, wherever the class is defined."""
    if isinstance(value, ast.Name):
        return value.id in ("self", "cls")
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super"


def test_no_module_reaches_into_another_objects_private_names():
    """``other._name`` is allowed only where ``_name`` is defined: a helper class may use the private
    methods of the class beside it in the same module, but a module that needs something of an object
    defined elsewhere asks for it through that object's public interface."""
    found = []
    for p, tree in modules():
        own = private_names_defined(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.attr not in PUBLIC and not owner_is_self(node.value)
                    and node.attr not in own):
                found.append(f"{p.relative_to(ROOT)}:{node.lineno} uses {ast.unparse(node)}")
    assert found == []
