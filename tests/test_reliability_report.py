"""RELIABILITY.md is what the generator renders from the figures it holds, those figures
hold (nothing lost, duplicated or changed, no secret found, no hang, every hostile input
handled as expected, every crash cell and secret place present), and the generator
finds it when they do not."""

from __future__ import annotations

import copy
import re

import pytest

from tests import reliability_report as generator
from tests._reliability import load, record
from tests.reliability_report import OUTPUT, from_records, parse, problems, render


def committed() -> str:
    return OUTPUT.read_text("utf-8")


def test_the_committed_report_is_what_the_generator_renders_from_its_figures() -> None:
    text = committed()
    assert render(parse(text)) == text


def test_the_committed_report_states_nothing_lost_duplicated_leaked_or_hung() -> None:
    text = committed()
    assert problems(parse(text)) == []
    assert re.search(r"\d+ SIGKILLs in 48 cells \(.*\): 0 rows lost, 0 duplicated, "
                     r"0 changed", text)
    assert re.search(r"runs: 0 rows duplicated", text)
    assert re.search(r"\d+ kinds of secret x 7 places: 0 occurrences", text)
    assert re.search(r"\d+ slow calls: 0 hangs", text)
    hostile = re.search(r"(\d+) payloads: (\d+) handled as expected", text)
    assert hostile and hostile.group(1) == hostile.group(2)


def test_the_report_covers_what_the_suite_runs() -> None:
    from tests import test_crash_matrix, test_secrets_scan

    assert generator.KINDS == test_crash_matrix.KINDS
    assert tuple(test_crash_matrix.POINTS) == generator.POINTS
    assert generator.WAREHOUSES == test_crash_matrix.WAREHOUSES
    assert generator.PLACES == test_secrets_scan.PLACES
    report = parse(committed())
    assert set(report.sources) == set(generator.SECTIONS)
    for tests in report.sources.values():
        assert tests
        for test in tests:
            path, name = test.split("::")
            source = (generator.ROOT / path).read_text("utf-8")
            assert f"def {name}(" in source, test


def test_bad_figures_are_problems() -> None:
    report = parse(committed())
    bad = copy.deepcopy(report)
    sections = bad.sections
    sections["crash"][0]["lost"] = 1
    dropped = sections["crash"].pop()
    sections["concurrent"][0]["duplicated"] = 2
    sections["hostile"][0]["observed"] = "answered, 99 request(s)"
    sections["secrets"][0]["occurrences"] = 3
    sections["deadlines"][0]["observed"] = sections["deadlines"][0]["limit"] + 2

    found = problems(bad)

    first = sections["crash"][0]
    assert found == [
        f"crash {first['kind']}/{first['point']}/{first['warehouse']}: {first['kills']} "
        f"kills, 1 lost, 0 duplicated, 0 changed of {first['rows']}",
        f"crash {dropped['kind']}/{dropped['point']}/{dropped['warehouse']}: no figures",
        f"concurrent {sections['concurrent'][0]['case']}: 2 duplicated",
        f"hostile {sections['hostile'][0]['case']}: expected "
        f"{sections['hostile'][0]['expected']}, observed answered, 99 request(s)",
        f"secrets {sections['secrets'][0]['secret']} in {sections['secrets'][0]['place']}: "
        "3 occurrences",
        f"deadline {sections['deadlines'][0]['case']}: "
        f"{sections['deadlines'][0]['observed']:.2f} s against a limit of "
        f"{sections['deadlines'][0]['limit']:g} s",
    ]


def test_recorded_figures_render_and_read_back(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_RELIABILITY_RECORDS", str(tmp_path))
    record("crash", "sql/merge/duckdb", kind="sql", point="merge", warehouse="duckdb",
           kills=1, rows=300, lost=5, duplicated=0, changed=0)
    record("crash", "sql/merge/duckdb", kind="sql", point="merge", warehouse="duckdb",
           kills=2, rows=300, lost=0, duplicated=0, changed=0)  # the last one counts
    record("concurrent", "two | runs", warehouse="duckdb", runs=2, outcome="exit 0, 1",
           rows=10, ids=10, duplicated=0)
    record("hostile", "a payload", payload="a payload", expected="answered, 1 request(s)",
           observed="answered, 1 request(s)", detail="")
    record("secrets", "key/log records", secret="key", place="log records", occurrences=0)
    record("deadlines", "slow", limit=3, observed=1.234, requests=2)
    with pytest.raises(ValueError, match="a deadlines record has"):
        record("deadlines", "slow", limit=3, observed=1.2)

    report = from_records(load())
    assert report.sections["crash"][0]["kills"] == 2
    assert parse(render(report)) == report
    assert report.sources["crash"] == [
        "tests/test_reliability_report.py::test_recorded_figures_render_and_read_back"]

    output = tmp_path / "RELIABILITY.md"
    # Most crash cells and secret places are missing: written, but not passed.
    assert generator.main(["--records", str(tmp_path), "--output", str(output)]) == 1
    assert output.read_text("utf-8") == render(report)
    assert generator.main(["--records", str(tmp_path), "--output", str(output),
                           "--check"]) == 0
