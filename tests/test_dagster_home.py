"""The demo's Dagster instance runs one run at a time: DuckDB takes one writing process."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance

HOME = Path(__file__).resolve().parent.parent / "dagster_home"


def test_the_demo_instance_queues_runs_one_at_a_time(monkeypatch, tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((HOME / "dagster.yaml").read_text("utf-8"), "utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.get() as instance:
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 1
