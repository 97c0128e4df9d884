"""Figures for RELIABILITY.md, recorded by the tests that measure them.

A reliability test calls :func:`record` with what it measured (rows lost in a crash, a
secret's occurrences in one place, the seconds a slow request took), as well as asserting
on it; each call appends one JSON line to ``test-artifacts/reliability/<section>.jsonl``.
``python -m tests.reliability_report`` renders those lines into RELIABILITY.md
(``make reliability`` runs the tests, then the report). A case recorded twice keeps its
last figures.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "test-artifacts" / "reliability"
# Each section of the report, and the figures a record of it carries beside its case.
SECTIONS: dict[str, tuple[str, ...]] = {
    "crash": ("kind", "point", "warehouse", "kills", "rows", "lost", "duplicated", "changed"),
    "concurrent": ("warehouse", "runs", "outcome", "rows", "ids", "duplicated"),
    "hostile": ("payload", "expected", "observed", "detail"),
    "secrets": ("secret", "place", "occurrences"),
    "deadlines": ("limit", "observed", "requests"),
}


def records_dir() -> Path:
    """Where records go: ``$HEADWATER_RELIABILITY_RECORDS``, else test-artifacts."""
    return Path(os.environ.get("HEADWATER_RELIABILITY_RECORDS") or RECORDS)


def record(section: str, case: str, **figures: Any) -> None:
    """Append one case's figures to ``section`` (its keys must be the section's)."""
    expected = SECTIONS[section]
    if set(figures) != set(expected):
        raise ValueError(f"a {section} record has {sorted(expected)}, got {sorted(figures)}")
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    line = {"case": case, **figures, "test": test,
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    folder = records_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{section}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps(line, default=str) + "\n")


def load(folder: Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every section's records, the last of each case, in the order cases first
    appeared."""
    folder = folder or records_dir()
    sections: dict[str, list[dict[str, Any]]] = {}
    for section in SECTIONS:
        path = folder / f"{section}.jsonl"
        cases: dict[str, dict[str, Any]] = {}
        if path.exists():
            for line in path.read_text("utf-8").splitlines():
                if line.strip():
                    item = json.loads(line)
                    cases[item["case"]] = item
        sections[section] = list(cases.values())
    return sections
