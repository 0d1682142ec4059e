"""The architecture, pinned: ``api`` → ``layers`` → ``gis``, never back.

``gis`` has no web and no database session; ``layers`` has no HTTP. Read from the source
with :mod:`ast`, so an import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Package → top-level modules it must never import.
FORBIDDEN = {
    "gis": {"api", "layers", "fastapi", "starlette", "sqlalchemy", "psycopg", "geoalchemy2"},
    "layers": {"api", "fastapi", "starlette"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_one_way(package):
    wrong = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) & FORBIDDEN[package]
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert wrong == {}, f"{package} imports what it must not: {wrong}"


def test_the_check_sees_a_forbidden_import(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from api.deps import get_engine\n", "utf-8")
    assert "api" in _imports(sample)
