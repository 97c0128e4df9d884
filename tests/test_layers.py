"""The layer rules of DESIGN.md, checked on every import statement in the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRODUCT = ("connectors", "normalization", "pipelines", "dagster_project")
DEMO = "headwater_demo"
# layer -> top-level modules it must never import (no product layer imports the demo)
FORBIDDEN = {
    "connectors": {"pandas", "pandera", "dagster", "normalization", "pipelines",
                   "dagster_project", DEMO},
    "normalization": {"dagster", "pipelines", "dagster_project", DEMO},
    "pipelines": {"dagster", "dagster_project", DEMO},
    "dagster_project": {DEMO},
}
# normalization shares connectors' error tree, and takes nothing else from that layer.
ERROR_TREE = {"HeadwaterError", "ConfigurationError", "DataContractError"}


def imported_modules(source: str) -> set[str]:
    """Top-level names of every module imported anywhere in ``source``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def imported_names(source: str, module: str) -> set[str]:
    """Names ``source`` imports from ``module`` (``module`` itself for ``import module``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == module)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == module:
            names.update(f"{node.module}:{a.name}" if node.module != module else a.name
                         for a in node.names)
    return names


def layer_violations(layer: str) -> list[str]:
    found = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        source = path.read_text("utf-8")
        bad = imported_modules(source) & FORBIDDEN[layer]
        if layer == "normalization":
            bad |= {f"connectors ({name})" for name in imported_names(source, "connectors")
                    if name not in ERROR_TREE}
        found.extend(f"{path.relative_to(ROOT)} imports {name}" for name in sorted(bad))
    return found


def private_product_imports(source: str) -> set[str]:
    """Private modules or names of the product that ``source`` imports."""
    found = set()
    for layer in PRODUCT:
        for name in imported_names(source, layer):
            parts = name.replace(":", ".").split(".")
            if any(part.startswith("_") for part in parts):
                found.add(name)
    return found


def test_the_demo_uses_only_the_public_api() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(private_product_imports(path.read_text("utf-8")))
        for path in sorted((ROOT / DEMO).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize(
    ("source", "private"),
    [
        ("from pipelines.models._step import LINEAGE_FIELDS", {"pipelines.models._step:"
                                                               "LINEAGE_FIELDS"}),
        ("from connectors import _redaction", {"_redaction"}),
        ("import normalization._engine", {"normalization._engine"}),
        ("from pipelines.context import ContextSpec", set()),
    ],
)
def test_private_imports_are_seen(source: str, private: set[str]) -> None:
    assert private_product_imports(source) == private


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downwards(layer: str) -> None:
    assert (ROOT / layer).is_dir()
    assert layer_violations(layer) == []


def test_nothing_imports_dagster_project() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for layer in ("connectors", "normalization", "pipelines", "headwater_demo", "bench")
        for path in (ROOT / layer).rglob("*.py")
        if (ROOT / layer).is_dir()
        and "dagster_project" in imported_modules(path.read_text("utf-8"))
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
