"""The Celery deployment profile for real: PostgreSQL instance storage and warehouse, the
local RabbitMQ, two Celery worker processes and the Dagster daemon, a backfill of a
key-range-partitioned stream fanned out over the workers, one worker killed mid-partition;
and a source's connection budget (``max_concurrent_reads``) held by a concurrency pool."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from pipelines.warehouse import open_warehouse, quote
from tests._deployment import PG_SERVER, Deployment

ROWS = 16_000
PARTITIONS = 8


@pytest.fixture
def slow_source():
    """A private schema with ``items`` and a view over it that costs about 0.4 ms a row
    (so a partition takes seconds and a worker can be killed in the middle of one)."""
    schema = f"hw_src_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(f"{PG_SERVER}/test")
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(sa.text(f'SET search_path TO "{schema}"'))
        conn.execute(sa.text("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, "
                             "amount numeric(12, 2) NOT NULL)"))
        conn.execute(sa.text(
            "INSERT INTO items SELECT g, 'item ' || g, round((g * 7919 % 100000) / 100.0, 2) "
            f"FROM generate_series(1, {ROWS}) g"))
        conn.execute(sa.text(
            "CREATE FUNCTION slow(v numeric) RETURNS numeric LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.0004); RETURN v; END $$"))
        conn.execute(sa.text("CREATE VIEW items_slow AS SELECT id, name, "
                             "slow(amount)::numeric(12, 2) AS amount FROM items"))
    try:
        yield schema, engine
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def estate(schema: str, extra: str = "", application: str = "headwater") -> str:
    return f'''
[connectors.src]
url = "postgresql+psycopg://postgres@127.0.0.1:5432/test?application_name={application}"
schema = "{schema}"
chunk_size = 400
{extra}

[[connectors.src.streams]]
name = "items"
table = "items_slow"
primary_key = ["id"]
partition = "key_range"
partition_key = "id"
partitions = {PARTITIONS}
'''


def checksum(engine: sa.Engine, table: str) -> tuple:
    """Row count, distinct ids, sum of amounts and an md5 over every row in id order."""
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text(
            "SELECT count(*), count(DISTINCT id), sum(amount), md5(string_agg("
            f"id || '|' || name || '|' || amount::text, ',' ORDER BY id)) FROM {table}")).one())


def rows(engine: sa.Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            f"SELECT id, name, amount::text FROM {table} ORDER BY id"))]


def wait_for_runs(instance, backfill: str, deployment: Deployment, timeout: float = 420):
    """The backfill's runs (retries included) once none is queued or going."""
    from dagster import DagsterRunStatus, RunsFilter

    finished = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill}))
        by_partition: dict[str, list] = {}
        for run in runs:
            by_partition.setdefault(run.tags["dagster/partition"], []).append(run)
        settled = len(by_partition) == PARTITIONS and all(
            any(r.status == DagsterRunStatus.SUCCESS for r in group)
            or (all(r.status in finished for r in group) and not _retry_pending(group))
            for group in by_partition.values())
        if settled:
            return by_partition
        time.sleep(2)
    raise AssertionError(f"the backfill did not finish in {timeout:.0f}s\n{deployment.logs()}")


def _retry_pending(group) -> bool:
    # A failed run is retried by the daemon (run_retries): not final while retries remain.
    return len(group) <= 2


def step_workers(instance, run_ids) -> set[str]:
    """The Celery workers (node names) that executed steps of these runs."""
    found = set()
    for run_id in run_ids:
        for record in instance.all_logs(run_id):
            event = record.dagster_event
            if event is None or not event.is_engine_event:
                continue
            data = event.engine_event_data.metadata or {}
            if "Celery worker" in data:
                found.add(data["Celery worker"].value.split("@")[0])
    return found


def partition_in_flight(url: str) -> tuple[str, int] | None:
    """(state key, PostgreSQL backend pid of its holder) of a partition that has stored a
    checkpoint and is still landing."""
    with open_warehouse(url) as warehouse:
        if "_headwater_locks" not in warehouse.tables():
            return None
        holders = warehouse.query("SELECT stream, pid FROM " + quote(warehouse.schema) +
                                  ".\"_headwater_locks\"").to_pylist()
        states = warehouse.states()
    for holder in holders:
        state = states.get(holder["stream"], {}).get("state") or {}
        if "@id[" in holder["stream"] and state.get("resume"):
            return holder["stream"], holder["pid"]
    return None


def worker_of_backend(deployment: Deployment, backend_pid: int):
    """The worker whose processes hold the PostgreSQL connection of ``backend_pid``."""
    import psutil

    engine = sa.create_engine(f"{PG_SERVER}/test")
    with engine.connect() as conn:
        port = conn.execute(sa.text("SELECT client_port FROM pg_stat_activity WHERE pid = :p"),
                            {"p": backend_pid}).scalar()
    engine.dispose()
    for worker in deployment.workers:
        for pid in worker.pids():
            try:
                connections = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.Error:
                continue
            if any(c.laddr and c.laddr.port == port for c in connections):
                return worker
    return None


def kill_a_worker_mid_partition(deployment: Deployment) -> str:
    """SIGKILL the worker landing a partition that has stored a checkpoint; the
    partition's state key."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        found = partition_in_flight(deployment.warehouse_url)
        victim = found and worker_of_backend(deployment, found[1])
        if found is not None and victim is not None:
            deployment.kill(victim)
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no partition in flight to kill\n{deployment.logs()}")


@pytest.mark.slow
@pytest.mark.postgres
def test_a_backfill_fans_out_over_two_celery_workers_and_survives_a_killed_one(
        tmp_path, slow_source) -> None:
    schema, source = slow_source
    with Deployment(tmp_path, estate(schema)) as deployment:
        deployment.start_worker("w1")
        deployment.start_worker("w2")
        deployment.start_daemon()
        backfill = deployment.backfill("src__items_partitions")
        killed_partition = kill_a_worker_mid_partition(deployment)

        instance = deployment.instance()
        runs = wait_for_runs(instance, backfill, deployment)
        succeeded = {p: [r for r in g if r.status.value == "SUCCESS"] for p, g in runs.items()}
        assert all(succeeded.values()), (runs, deployment.logs())
        workers = step_workers(instance, [r.run_id for g in runs.values() for r in g])
        instance.dispose()
        assert workers == {"w1", "w2"}

        landed = rows(source, f'"{deployment.warehouse_schema}"."raw_src__items"')
        expected = rows(source, f'"{schema}".items')
        assert len(landed) == len(expected) == ROWS  # 0 lost, 0 duplicated
        assert landed == expected  # the same ids, names and exact amounts
        assert checksum(source, f'"{deployment.warehouse_schema}"."raw_src__items"') == \
            checksum(source, f'"{schema}".items')
        with open_warehouse(deployment.warehouse_url) as warehouse:
            states = warehouse.states()
            low, high = _bounds(killed_partition)
            attempts = warehouse.query(
                'SELECT count(DISTINCT "_hw_extracted_at") AS n FROM "raw_src__items" '
                f"WHERE id >= {low} AND id < {high}").to_pylist()
    partitions = {k for k in states if k.startswith("src.items@id[")}
    assert len(partitions) == PARTITIONS and killed_partition in partitions
    assert not states[killed_partition]["state"].get("resume")  # finished
    assert attempts[0]["n"] >= 2  # rows of the killed attempt kept, the rest resumed


def _bounds(key: str) -> tuple[int, int]:
    low, high = key.split("[")[1].rstrip(")").split(",")
    return int(low or 0), int(high or 2**62)


class SourceReads:
    """Samples how many reads run at the source at once, every 20 ms: the queries
    ``pg_stat_activity`` shows active on the source connector's connections (they carry
    an application name of their own; a step may hold two connections, SQLAlchemy's and
    the ADBC fast path's, but runs one query at a time)."""

    def __init__(self, application: str) -> None:
        self.application = application
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        engine = sa.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            while not self._stop.is_set():
                now = conn.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :a "
                    "AND state = 'active'"), {"a": self.application}).scalar()
                self.peak = max(self.peak, now)
                self.samples += 1
                time.sleep(0.02)
        engine.dispose()

    def __enter__(self) -> SourceReads:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_source_never_sees_more_reads_than_its_budget(tmp_path, slow_source) -> None:
    schema, source = slow_source
    application = f"hw_budget_{uuid.uuid4().hex[:8]}"
    budget = 2
    with Deployment(tmp_path, estate(schema, f"max_concurrent_reads = {budget}",
                                     application)) as deployment:
        deployment.start_worker("w1", concurrency=2)
        deployment.start_worker("w2", concurrency=2)  # 4 step slots, twice the budget
        deployment.start_daemon()
        instance = deployment.instance()
        deadline = time.monotonic() + 120  # the headwater_pool_limits sensor's first tick
        while instance.event_log_storage.get_concurrency_info("source/src").slot_count \
                != budget:
            assert time.monotonic() < deadline, deployment.logs()
            time.sleep(1)
        with SourceReads(application) as reads:
            backfill = deployment.backfill("src__items_partitions")
            runs = wait_for_runs(instance, backfill, deployment)
        instance.dispose()
        assert all(any(r.status.value == "SUCCESS" for r in g) for g in runs.values()), \
            deployment.logs()
        assert checksum(source, f'"{deployment.warehouse_schema}"."raw_src__items"') == \
            checksum(source, f'"{schema}".items')
    assert reads.samples > 100
    assert reads.peak == budget, reads.peak  # reached, never passed


@pytest.mark.slow
@pytest.mark.postgres
def test_a_fan_out_run_lands_every_partition_over_two_workers_and_survives_a_killed_one(
        tmp_path, slow_source) -> None:
    from dagster import AssetKey, DagsterRunStatus, RunsFilter

    schema, source = slow_source
    with Deployment(tmp_path, estate(schema)) as deployment:
        deployment.start_worker("w1")
        deployment.start_worker("w2")
        deployment.start_daemon()
        deployment.launch("src__items_fanout")
        kill_a_worker_mid_partition(deployment)

        instance = deployment.instance()
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            runs = instance.get_runs(filters=RunsFilter(job_name="src__items_fanout"))
            if runs and all(r.is_finished for r in runs):
                break
            time.sleep(2)
        assert len(runs) == 1 and runs[0].status == DagsterRunStatus.SUCCESS, deployment.logs()
        workers = step_workers(instance, [runs[0].run_id])
        partitions = instance.get_materialized_partitions(AssetKey(["raw", "src", "items"]))
        instance.dispose()
        assert workers == {"w1", "w2"}
        assert len(partitions) == PARTITIONS

        table = f'"{deployment.warehouse_schema}"."raw_src__items"'
        assert rows(source, table) == rows(source, f'"{schema}".items')  # 0 lost or doubled
        assert checksum(source, table) == checksum(source, f'"{schema}".items')
