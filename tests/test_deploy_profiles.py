"""The deployment profiles as files: the Dagster instances validate against the pinned
dagster, dagster-postgres, dagster-celery and dagster-k8s schemas, and selecting an
executor is configuration only (no cluster, broker or database is contacted)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dagster._config import validate_config

from connectors import ConfigurationError
from dagster_project import build_definitions
from pipelines.config import embedded_config_text, read_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ENV = {"DAGSTER_POSTGRES_URL": "postgresql+psycopg2://dagster:secret@db:5432/dagster",
       "HEADWATER_WAREHOUSE_URL": "postgresql://headwater:secret@db:5432/warehouse"}


def instance(profile: str) -> dict:
    return yaml.safe_load((DEPLOY / profile / "dagster.yaml").read_text("utf-8"))


def estate_with(profile: str, tmp_path) -> object:
    """The demo estate with the profile's [warehouse] and [dagster] tables instead."""
    demo = embedded_config_text().replace(".headwater/", f"{tmp_path.as_posix()}/")
    demo = demo[demo.index("[connectors"):] if "[connectors" in demo else demo
    text = (DEPLOY / profile / "headwater.toml").read_text("utf-8") + "\n" + demo
    return read_config(text, f"{profile}/headwater.toml", tmp_path)


@pytest.mark.parametrize("profile", ["celery", "k8s"])
def test_the_instance_validates_against_the_pinned_dagster(profile, monkeypatch, tmp_path) -> None:
    from dagster._core.instance.config import dagster_instance_config

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((DEPLOY / profile / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(home))
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert config["concurrency"]["pools"]["granularity"] == "op"


def test_the_k8s_run_launcher_config_validates_with_the_pinned_dagster_k8s() -> None:
    from dagster_k8s import K8sRunLauncher

    launcher = instance("k8s")["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    checked = validate_config(K8sRunLauncher.config_type(), launcher["config"])
    assert checked.success, checked.errors
    broken = validate_config(K8sRunLauncher.config_type(), {**launcher["config"],
                                                            "env_secret": ["typo"]})
    assert not broken.success  # the schema is strict: a misspelt key is caught here


def test_the_k8s_executor_is_configuration_only(tmp_path, monkeypatch) -> None:
    from dagster_k8s import k8s_job_executor

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = estate_with("k8s", tmp_path)
    settings = config.dagster
    assert settings.executor == "k8s"
    checked = validate_config(k8s_job_executor.config_schema.config_type, dict(settings.k8s))
    assert checked.success, checked.errors
    # The same secrets reach run pods (launcher) and step pods (executor).
    assert settings.k8s["env_secrets"] == instance("k8s")["run_launcher"]["config"][
        "env_secrets"]
    defs = build_definitions(config)
    job = defs.resolve_job_def("__ASSET_JOB")
    assert job.executor_def.name == "headwater_k8s"


def test_the_celery_executor_is_configuration_only(tmp_path, monkeypatch) -> None:
    from dagster_celery import celery_executor

    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config = estate_with("celery", tmp_path)
    defs = build_definitions(config)
    executor = defs.resolve_job_def("__ASSET_JOB").executor_def
    assert executor.name == "headwater_celery"
    from dagster_project._deploy import celery_executor_config

    given = celery_executor_config(config.dagster)
    assert given["broker"] == "amqp://guest:guest@127.0.0.1:5672//"
    assert given["config_source"]["task_acks_late"] is True
    checked = validate_config(celery_executor.config_schema.config_type, given)
    assert checked.success, checked.errors


@pytest.mark.parametrize(("table", "message"), [
    ('[dagster]\nexecutor = "celery"', "needs broker"),
    ('[dagster]\nexecutor = "celery"\nbroker = "http://x"', r"amqp:// \(RabbitMQ\) or redis://"),
    ('[dagster]\nexecutor = "dask"', "dagster.executor"),
    ('[dagster]\nexecuter = "celery"', "did you mean 'executor'"),
])
def test_a_wrong_dagster_table_is_one_line_naming_the_key(table, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        read_config(f'[warehouse]\nurl = "duckdb:///x.duckdb"\n{table}\n', "t.toml", None)


def test_a_distributed_executor_refuses_a_duckdb_warehouse(tmp_path) -> None:
    text = embedded_config_text().replace(".headwater/", f"{tmp_path.as_posix()}/")
    text = text.replace("[dagster]\n", '[dagster]\nexecutor = "multiprocess"\n')
    with pytest.raises(ConfigurationError, match="a DuckDB file takes one writer"):
        build_definitions(read_config(text, "demo.toml", tmp_path))
