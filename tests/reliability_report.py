"""RELIABILITY.md, rendered from the figures the reliability tests record.

``make reliability`` runs ``pytest -m reliability`` (each test appends what it measured
to ``test-artifacts/reliability/*.jsonl``, see :mod:`tests._reliability`), then
``python -m tests.reliability_report``, which writes RELIABILITY.md at the repository
root and exits 1, listing them, if the figures show a row lost, duplicated or changed,
a secret found, a hang, a hostile input not handled as expected, or a missing case.

The file holds every figure it is made of, so :func:`parse` reads it back into the same
:class:`Report` and :func:`render` of that gives the file again; the suite checks both
that and :func:`problems` on the committed file (tests/test_reliability_report.py).
"""

from __future__ import annotations

import argparse
import itertools
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests._reliability import ROOT, SECTIONS, load, records_dir

OUTPUT = ROOT / "RELIABILITY.md"
# The crash matrix the suite runs (tests/test_crash_matrix.py): every cell must be there.
KINDS = ("sql", "odbc", "rest", "soap")
POINTS = ("startup", "read", "merge", "commit", "state", "close")
WAREHOUSES = ("duckdb", "postgresql")
PLACES = ("command output", "log records", "Dagster event log", "Dagster instance storage",
          "state table", "DuckDB warehouse tables", "PostgreSQL warehouse tables")
SLACK = 1.0  # a slow case hangs if it ran past its limit plus this

TITLES = {
    "crash": "Crash matrix",
    "concurrent": "Concurrent runs",
    "hostile": "Hostile inputs",
    "secrets": "Secrets scan",
    "deadlines": "Deadlines",
}
POINT_TEXT = {
    "startup": "start-up: the stream's lock held, its state being loaded",
    "read": "mid-read: the third batch taken from the reader, more in flight",
    "merge": "inside the second merge: rows and state written, before COMMIT",
    "commit": "racing the second COMMIT: killed within 4 ms of it starting",
    "state": "inside the second state write: the rows of its transaction written",
    "close": "racing the warehouse's close (DuckDB checkpoints its log)",
}
INTRO = {
    "crash": (
        "`headwater run` in a child process, killed with SIGKILL at a kill point twice "
        "(a killed run has committed once before it dies, except at start-up), then run "
        "to completion; the landed table is compared with the source row by row. *Lost*: "
        "source keys the table lacks; *duplicated*: rows beyond one per key; *changed*: "
        "rows whose values differ from the source's, or whose key it lacks. Sources: a "
        "300-row PostgreSQL table read by the SQL and the ODBC connector, the demo CRM's "
        "tickets (REST, OAuth2, `Link` pages of 20) and the demo logistics service's "
        "shipments (SOAP, WS-Security, pages of 20); commits every 50 rows. Kill points:"),
    "concurrent": (
        "Runs of one stream, or of several, at the same instant (child processes released "
        "together, or threads); rows and distinct ids over every table the case landed."),
    "hostile": (
        "Sources on 127.0.0.1 built to misbehave. *Observed* is what the read raised (or "
        "`answered`) and how many requests the source saw."),
    "secrets": (
        "Every kind of credential headwater takes, in one configuration, through `check`, "
        "`discover`, `run` (with `HEADWATER_DEBUG=1` and `HEADWATER_LOG_LEVEL=DEBUG`), a run "
        "killed mid-read and its resumption, `state show`, `lineage`, `run` and `check` with "
        "wrong credentials, on a DuckDB and on a PostgreSQL warehouse, then a Dagster "
        "materialization of every raw asset, and one with wrong credentials, on an instance "
        "that captures the headwater, zeep, urllib3 and authlib loggers. Each cell counts "
        "the secret's occurrences, raw, URL-encoded, XML-escaped or base64 (and basic "
        "auth's base64 `user:password`), in every text of that place."),
    "deadlines": (
        "Servers that drip their answer a byte at a time (headers or body) or go silent. "
        "*Hang*: the call ran past its limit plus one second."),
}


@dataclass
class Report:
    """Every figure of RELIABILITY.md: the records of each section, the tests that
    recorded them, and the date of the run."""

    date: str
    sections: dict[str, list[dict[str, Any]]]
    sources: dict[str, list[str]] = field(default_factory=dict)


def from_records(loaded: dict[str, list[dict[str, Any]]]) -> Report:
    """A report of the records :func:`tests._reliability.load` read."""
    dates = [r["recorded_at"][:10] for records in loaded.values() for r in records]
    sources = {}
    for section, records in loaded.items():
        tests = [r.get("test", "").split("[")[0] for r in records]
        sources[section] = sorted({t for t in tests if t})
    sections = {s: [{k: r[k] for k in ("case", *SECTIONS[s])} for r in records]
                for s, records in loaded.items()}
    for row in sections.get("deadlines", []):
        row["observed"] = round(row["observed"], 2)  # as the report shows it
    return Report(max(dates, default="never"), sections, sources)


# -- problems ------------------------------------------------------------------------------

def problems(report: Report) -> list[str]:
    """What the figures show wrong, or missing; empty when the report holds."""
    found = [f"{TITLES[s]}: no figures (run make reliability)"
             for s in SECTIONS if not report.sections.get(s)]
    crash = {(r["kind"], r["point"], r["warehouse"]): r for r in report.sections["crash"]}
    for cell in itertools.product(KINDS, POINTS, WAREHOUSES):
        row = crash.get(cell)
        if row is None:
            found.append(f"crash {'/'.join(cell)}: no figures")
        elif row["kills"] < 1 or row["rows"] < 1 or row["lost"] or row["duplicated"] \
                or row["changed"]:
            found.append(f"crash {'/'.join(cell)}: {row['kills']} kills, {row['lost']} "
                         f"lost, {row['duplicated']} duplicated, {row['changed']} changed "
                         f"of {row['rows']}")
    found += [f"concurrent {r['case']}: {r['duplicated']} duplicated"
              for r in report.sections["concurrent"] if r["duplicated"] or r["rows"] < 1]
    found += [f"hostile {r['case']}: expected {r['expected']}, observed {r['observed']}"
              for r in report.sections["hostile"] if r["expected"] != r["observed"]]
    secrets = {(r["secret"], r["place"]): r["occurrences"] for r in report.sections["secrets"]}
    for kind in dict.fromkeys(r["secret"] for r in report.sections["secrets"]):
        for place in PLACES:
            if secrets.get((kind, place)) is None:
                found.append(f"secrets {kind} in {place}: not searched")
            elif secrets[(kind, place)]:
                found.append(f"secrets {kind} in {place}: {secrets[(kind, place)]} "
                             "occurrences")
    found += [f"deadline {r['case']}: {r['observed']:.2f} s against a limit of "
              f"{r['limit']:g} s" for r in report.sections["deadlines"] if _hung(r)]
    return found


def _hung(row: dict[str, Any]) -> bool:
    return row["observed"] > row["limit"] + SLACK


# -- rendering -----------------------------------------------------------------------------

def _cell(value: Any) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _summary(report: Report) -> list[list[str]]:
    crash, concurrent = report.sections["crash"], report.sections["concurrent"]
    hostile, secrets = report.sections["hostile"], report.sections["secrets"]
    deadlines = report.sections["deadlines"]
    total = {k: sum(r[k] for r in crash) for k in ("kills", "lost", "duplicated", "changed")}
    kinds = len({r["secret"] for r in secrets})
    places = len({r["place"] for r in secrets})
    return [
        ["crash matrix", f"{total['kills']} SIGKILLs in {len(crash)} cells (source kind x "
                         f"kill point x warehouse): {total['lost']} rows lost, "
                         f"{total['duplicated']} duplicated, {total['changed']} changed"],
        ["concurrent runs", f"{len(concurrent)} cases, {sum(r['runs'] for r in concurrent)} "
                            f"runs: {sum(r['duplicated'] for r in concurrent)} rows "
                            "duplicated"],
        ["hostile inputs", f"{len(hostile)} payloads: "
                           f"{sum(r['expected'] == r['observed'] for r in hostile)} handled "
                           "as expected"],
        ["secrets scan", f"{kinds} kinds of secret x {places} places: "
                         f"{sum(r['occurrences'] for r in secrets)} occurrences"],
        ["deadlines", f"{len(deadlines)} slow calls: {sum(map(_hung, deadlines))} hangs "
                      "(past the limit plus 1 s)"],
    ]


def _crash(records: list[dict[str, Any]]) -> list[str]:
    lines = [f"- `{point}`: {text}" for point, text in POINT_TEXT.items()] + [""]
    def order(row: dict[str, Any]) -> tuple[int, ...]:
        return tuple(known.index(row[k]) if row[k] in known else len(known)
                     for k, known in (("kind", KINDS), ("point", POINTS),
                                      ("warehouse", WAREHOUSES)))

    rows = [[r["kind"], r["point"], r["warehouse"], r["kills"], r["rows"], r["lost"],
             r["duplicated"], r["changed"]] for r in sorted(records, key=order)]
    return lines + _table(["source", "kill point", "warehouse", "kills", "rows", "lost",
                           "duplicated", "changed"], rows)


def _secrets(records: list[dict[str, Any]]) -> list[str]:
    places = list(dict.fromkeys(r["place"] for r in records))
    counts = {(r["secret"], r["place"]): r["occurrences"] for r in records}
    kinds = list(dict.fromkeys(r["secret"] for r in records))
    return _table(["secret", *places],
                  [[kind, *(counts.get((kind, p), "") for p in places)] for kind in kinds])


def _section(name: str, records: list[dict[str, Any]]) -> list[str]:
    if name == "crash":
        return _crash(records)
    if name == "secrets":
        return _secrets(records)
    if name == "concurrent":
        return _table(["case", "warehouse", "runs", "outcome", "rows", "distinct ids",
                       "duplicated"],
                      [[r["case"], r["warehouse"], r["runs"], r["outcome"], r["rows"],
                        r["ids"], r["duplicated"]] for r in records])
    if name == "hostile":
        return _table(["payload", "expected", "observed", "as expected", "detail"],
                      [[r["payload"], r["expected"], r["observed"],
                        "yes" if r["expected"] == r["observed"] else "NO", r["detail"]]
                       for r in records])
    return _table(["case", "limit (s)", "observed (s)", "requests", "hang"],
                  [[r["case"], f"{r['limit']:g}", f"{r['observed']:.2f}", r["requests"],
                    "YES" if _hung(r) else "no"] for r in records])


def render(report: Report) -> str:
    """RELIABILITY.md for ``report``."""
    lines = [
        "# Reliability",
        "",
        "Generated by `make reliability` from the figures the reliability tests record "
        "(`pytest -m reliability`, then `python -m tests.reliability_report`); do not edit "
        f"it by hand. Figures of the run of {report.date}. Each comes from a test that "
        "fails when the figure is wrong, and `tests/test_reliability_report.py` checks that "
        "this file is what the generator renders from its figures and that they hold.",
        "",
        "## Summary",
        "",
        *_table(["", "figures"], _summary(report)),
    ]
    for name in SECTIONS:
        lines += ["", f"## {TITLES[name]}", "", INTRO[name], "",
                  *_section(name, report.sections[name])]
    lines += ["", "## Where the figures come from", ""]
    for name in SECTIONS:
        tests = ", ".join(f"`{t}`" for t in report.sources.get(name, [])) or "(none)"
        lines.append(f"- {TITLES[name]}: {tests}")
    return "\n".join(lines) + "\n"


# -- parsing -------------------------------------------------------------------------------

def _rows(block: list[str]) -> list[list[str]]:
    """The body rows of the first table in ``block``, cells unescaped."""
    table = [line for line in block if line.startswith("|")]
    return [[cell.strip().replace("\\|", "|")
             for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]] for line in table[2:]]


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def parse(text: str) -> Report:
    """The :class:`Report` a RELIABILITY.md renders (the inverse of :func:`render`)."""
    date = re.search(r"Figures of the run of (\S+?)\.", text)
    blocks: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:]
            blocks[current] = []
        elif current is not None:
            blocks[current].append(line)
    sections: dict[str, list[dict[str, Any]]] = {}
    for name, title in TITLES.items():
        sections[name] = _parse_section(name, _rows(blocks.get(title, [])),
                                        blocks.get(title, []))
    sources = {}
    for line in blocks.get("Where the figures come from", []):
        for name, title in TITLES.items():
            if line.startswith(f"- {title}: "):
                sources[name] = re.findall(r"`([^`]+)`", line)
    return Report(date.group(1) if date else "never", sections, sources)


def _parse_section(name: str, rows: list[list[str]], block: list[str]
                   ) -> list[dict[str, Any]]:
    if name == "crash":
        keys = ("kills", "rows", "lost", "duplicated", "changed")
        return [{"case": f"{k}/{p}/{w}", "kind": k, "point": p, "warehouse": w,
                 **dict(zip(keys, map(int, rest), strict=True))} for k, p, w, *rest in rows]
    if name == "concurrent":
        return [{"case": c, "warehouse": w, "runs": int(n), "outcome": o, "rows": int(r),
                 "ids": int(i), "duplicated": int(d)} for c, w, n, o, r, i, d in rows]
    if name == "hostile":
        return [{"case": p, "payload": p, "expected": e, "observed": o, "detail": d}
                for p, e, o, _, d in rows]
    if name == "secrets":
        header = next((line for line in block if line.startswith("| secret |")), "")
        places = [cell.strip() for cell in header.strip().split("|")[2:-1]]
        return [{"case": f"{row[0]}/{place}", "secret": row[0], "place": place,
                 "occurrences": int(count)}
                for row in rows for place, count in zip(places, row[1:], strict=True)
                if count != ""]
    return [{"case": c, "limit": _number(limit), "observed": float(observed),
             "requests": int(n)} for c, limit, observed, n, _ in rows]


# -- the command ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability_report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, default=None,
                        help="where the tests recorded their figures (default: "
                             "test-artifacts/reliability)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="only compare: exit 1 if the output file differs")
    args = parser.parse_args(argv)
    folder = args.records or records_dir()
    report = from_records(load(folder))
    text = render(report)
    if args.check:
        same = args.output.exists() and args.output.read_text("utf-8") == text
        print(f"{args.output}: {'up to date' if same else 'differs from the records'}")
        return 0 if same else 1
    args.output.write_text(text, "utf-8")
    wrong = problems(report)
    print(f"{args.output}: written from the records in {folder}")
    for problem in wrong:
        print(f"reliability: {problem}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
