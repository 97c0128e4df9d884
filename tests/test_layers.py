"""The layer rules of DESIGN.md, checked on every import statement in the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# layer -> top-level modules it must never import
FORBIDDEN = {
    "connectors": {"pandas", "pandera", "dagster", "normalization", "pipelines",
                   "dagster_project"},
    "normalization": {"connectors", "dagster", "pipelines", "dagster_project"},
    "pipelines": {"dagster", "dagster_project"},
    "dagster_project": set(),
}


def imported_modules(source: str) -> set[str]:
    """Top-level names of every module imported anywhere in ``source``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def layer_violations(layer: str) -> list[str]:
    found = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        bad = imported_modules(path.read_text("utf-8")) & FORBIDDEN[layer]
        found.extend(f"{path.relative_to(ROOT)} imports {name}" for name in sorted(bad))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downwards(layer: str) -> None:
    assert (ROOT / layer).is_dir()
    assert layer_violations(layer) == []


def test_nothing_imports_dagster_project() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for layer in ("connectors", "normalization", "pipelines", "tests", "bench")
        for path in (ROOT / layer).rglob("*.py")
        if (ROOT / layer).is_dir()
        and "dagster_project" in imported_modules(path.read_text("utf-8"))
        and not path.name.startswith("test_dagster")
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import dagster", {"dagster"}),
        ("from dagster import asset", {"dagster"}),
        ("import pandas.core.frame as f", {"pandas"}),
        ("from . import sibling", set()),
        ("def f():\n    import pandera\n", {"pandera"}),
    ],
)
def test_import_scanner_sees_every_form(source: str, expected: set[str]) -> None:
    assert imported_modules(source) == expected


def test_importing_connectors_loads_no_pandas_pandera_or_dagster() -> None:
    import subprocess
    import sys

    probe = ("import sys, connectors, connectors.sql, connectors.testing; "
             "print(sorted(m for m in ('pandas', 'pandera', 'dagster') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
