"""A partitioned backfill fanned out over Celery workers: one worker, then two.

Run with no arguments (``make bench``; RabbitMQ and PostgreSQL must be running). It builds
a 4,000,000-row table without a time column in a source database of its own, declares it
``partition = "key_range"`` with 8 partitions, and brings up the Celery deployment profile
(``deploy/celery``: PostgreSQL instance storage in a database of its own, the Dagster
daemon, a warehouse database of its own) as ``tests/_deployment.py`` does for the
acceptance test. Then it lands the partitions four times, the warehouse emptied in
between: as one run of the fan-out job (``src__items_fanout``: a step per partition), with
one worker process and with two, and as a backfill (``dagster job backfill --all``: one
run per partition), with one worker and with two. Each time it records

- the wall clock from launching the backfill to its last run finishing;
- CPU seconds by process: the workers (their process trees), the runs and the daemon
  (scheduling), and the PostgreSQL backends of the source database and of the warehouse
  database (sampled every 0.2 s from ``pg_stat_activity`` and ``/proc/<pid>/stat``;
  a backend that ends between two samples loses at most 0.2 s);
- from the event log, per step: its own time (``STEP_START`` to ``STEP_SUCCESS``), the
  time it waited in the broker for a free worker, and the scheduling and hand-off around
  it (run start to submission, the worker's start of the task to the step's start, the
  step's end to the run's end; in the fan-out run the first and last of these once).

The last line is ``RESULT scale_out speedup=<1-worker time / 2-worker time>
overhead_share=<scheduling and hand-off / step time, two workers> backfill_speedup=...
backfill_overhead_share=...``, the first two for the fan-out run. This machine has two
cores shared by both databases and the workers, so the targets here are only that fanning
out costs nothing: ``speedup >= 1.0`` and ``overhead_share <= 0.2``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import verdict  # noqa: E402

from tests._deployment import PG_SERVER, Deployment  # noqa: E402

ROWS = 4_000_000
PARTITIONS = 8
MIN_SPEEDUP = 1.0
MAX_OVERHEAD_SHARE = 0.2
TICKS = os.sysconf("SC_CLK_TCK")


def admin() -> sa.Engine:
    return sa.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")


def build_source(database: str) -> None:
    engine = admin()
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    engine.dispose()
    source = sa.create_engine(f"{PG_SERVER}/{database}")
    with source.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE items (id bigint PRIMARY KEY, account text NOT NULL, "
            "amount numeric(14, 2) NOT NULL, quantity integer NOT NULL, "
            "booked timestamptz NOT NULL, note text)"))
        conn.execute(sa.text(
            "INSERT INTO items SELECT g, 'ACC-' || (g % 5000), round((g % 100000) / 7.0, 2), "
            "g % 997, timestamptz '2020-01-01' + g * interval '1 second', "
            f"CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || g END "
            f"FROM generate_series(1, {ROWS}) g"))
        conn.execute(sa.text("ANALYZE items"))
        conn.execute(sa.text("SELECT count(*), sum(amount) FROM items"))  # warm the cache
    source.dispose()


def drop_databases(*names: str) -> None:
    engine = admin()
    with engine.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def empty_warehouse(database: str) -> None:
    engine = sa.create_engine(f"{PG_SERVER}/{database}", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@dataclass
class BackendCPU:
    """CPU seconds of the PostgreSQL backends of some databases, sampled."""

    databases: tuple[str, ...]
    seen: dict[tuple[int, str], tuple[str, float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _cpu(self, pid: int) -> float | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / TICKS

    def _sample(self) -> None:
        engine = admin()
        with engine.connect() as conn:
            while not self._stop.is_set():
                rows = conn.execute(sa.text(
                    "SELECT pid, datname, backend_start::text FROM pg_stat_activity "
                    "WHERE datname = ANY(:d) AND pid <> pg_backend_pid()"),
                    {"d": list(self.databases)}).all()
                for pid, database, started in rows:
                    cpu = self._cpu(pid)
                    if cpu is not None:
                        self.seen[(pid, started)] = (database, cpu)
                time.sleep(0.2)
        engine.dispose()

    def __enter__(self) -> BackendCPU:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def seconds(self, database: str) -> float:
        return sum(cpu for db, cpu in self.seen.values() if db == database)


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants (and children it reaped)."""
    try:
        parent = psutil.Process(pid)
        processes = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def events(instance, run):
    """(step key or None, kind, time) of a run's events, the Celery hand-offs named:
    ``SUBMIT`` (the run sends the step) and ``WORKER_START`` (a worker takes it)."""
    for record in instance.all_logs(run.run_id):
        event = record.dagster_event
        if event is None:
            continue
        kind = event.event_type.name
        message = event.message or record.user_message or ""
        if kind == "ENGINE_EVENT" and "Submitting celery task" in message:
            kind = "SUBMIT"
        elif kind == "ENGINE_EVENT" and "in celery worker" in message:
            kind = "WORKER_START"
        yield record.step_key, kind, record.timestamp


def timings(instance, runs) -> dict[str, float]:
    """Seconds summed over runs of one step each: the steps, their wait for a worker,
    and the scheduling and hand-off around them."""
    totals = {"step": 0.0, "broker wait": 0.0, "hand-off": 0.0, "run to submission": 0.0,
              "worker to step": 0.0, "step to run end": 0.0}
    for run in runs:
        at: dict[str, float] = {}
        for _, kind, timestamp in events(instance, run):
            at.setdefault(kind, timestamp)
            if kind in ("STEP_SUCCESS", "RUN_SUCCESS"):
                at[kind] = timestamp
        step = at["STEP_SUCCESS"] - at["STEP_START"]
        totals["step"] += step
        totals["broker wait"] += at["WORKER_START"] - at["SUBMIT"]
        totals["run to submission"] += at["SUBMIT"] - at["RUN_START"]
        totals["worker to step"] += at["STEP_START"] - at["WORKER_START"]
        totals["step to run end"] += at["RUN_SUCCESS"] - at["STEP_SUCCESS"]
    totals["hand-off"] = (totals["run to submission"] + totals["worker to step"]
                          + totals["step to run end"])
    return totals


def step_timings(instance, run) -> dict[str, float]:
    """Seconds in one run of the fan-out job, a step per partition: the steps, their
    wait for a worker, and the scheduling and hand-off around them (run start to the
    first submission, each worker's start of its task to the step's start, the last
    step's end to the run's end)."""
    steps: dict[str, dict[str, float]] = {}
    run_at: dict[str, float] = {}
    for step_key, kind, timestamp in events(instance, run):
        if step_key:
            at = steps.setdefault(step_key, {})
            if kind == "STEP_SUCCESS" or kind not in at:
                at[kind] = timestamp
        elif kind in ("RUN_START", "RUN_SUCCESS"):
            run_at[kind] = timestamp
    step = sum(at["STEP_SUCCESS"] - at["STEP_START"] for at in steps.values())
    wait = sum(at["WORKER_START"] - at["SUBMIT"] for at in steps.values())
    to_submission = min(at["SUBMIT"] for at in steps.values()) - run_at["RUN_START"]
    to_step = sum(at["STEP_START"] - at["WORKER_START"] for at in steps.values())
    to_end = run_at["RUN_SUCCESS"] - max(at["STEP_SUCCESS"] for at in steps.values())
    return {"step": step, "broker wait": wait, "run to submission": to_submission,
            "worker to step": to_step, "step to run end": to_end,
            "hand-off": to_submission + to_step + to_end}


def backfill(deployment: Deployment, workers: int, source_db: str, warehouse_db: str,
             fanout: bool) -> dict:
    """Land every partition with ``workers`` Celery workers: as one run with a step per
    partition (``fanout``), or as a backfill of a run per partition."""
    from dagster import DagsterRunStatus, RunsFilter

    started_workers = [deployment.start_worker(f"w{i}-{workers}") for i in range(workers)]
    instance = deployment.instance()
    daemon_pid = deployment.processes[0].pid
    cpu_before = {w.name: tree_cpu(w.process.pid) for w in started_workers}
    daemon_before = tree_cpu(daemon_pid)
    with BackendCPU((source_db, warehouse_db)) as backends:
        started = time.perf_counter()
        if fanout:
            before = {r.run_id for r in instance.get_runs(
                filters=RunsFilter(job_name="src__items_fanout"))}
            deployment.launch("src__items_fanout")
            expected, filters = 1, RunsFilter(job_name="src__items_fanout")
        else:
            before = set()
            backfill_id = deployment.backfill("src__items_partitions")
            expected, filters = PARTITIONS, RunsFilter(tags={"dagster/backfill": backfill_id})
        while True:
            runs = [r for r in instance.get_runs(filters=filters) if r.run_id not in before]
            if len(runs) == expected and all(r.is_finished for r in runs):
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - started
    failed = [r.run_id for r in runs if r.status != DagsterRunStatus.SUCCESS]
    if failed:
        raise SystemExit(f"runs failed: {failed}\n{deployment.logs()}")
    result = {
        "seconds": seconds,
        "worker cpu": sum(tree_cpu(w.process.pid) - cpu_before[w.name]
                          for w in started_workers),
        "scheduling cpu": tree_cpu(daemon_pid) - daemon_before,
        "source db cpu": backends.seconds(source_db),
        "warehouse db cpu": backends.seconds(warehouse_db),
        **(step_timings(instance, runs[0]) if fanout else timings(instance, runs)),
    }
    instance.dispose()
    for worker in started_workers:
        deployment.kill(worker)
        deployment.processes.remove(worker.process)
    deployment.workers.clear()
    landed = sa.create_engine(f"{PG_SERVER}/{warehouse_db}")
    with landed.connect() as conn:
        result["rows"] = conn.execute(sa.text("SELECT count(*) FROM raw_src__items")).scalar()
    landed.dispose()
    if result["rows"] != ROWS:
        raise SystemExit(f"landed {result['rows']:,} rows, not {ROWS:,}")
    return result


def report(label: str, figures: dict) -> None:
    per = {k: figures[k] / PARTITIONS for k in ("worker cpu", "source db cpu",
                                                "warehouse db cpu", "scheduling cpu")}
    print(f"{label}: {figures['seconds']:.1f} s wall; CPU s per partition: worker "
          f"{per['worker cpu']:.2f}, source db {per['source db cpu']:.2f}, warehouse db "
          f"{per['warehouse db cpu']:.2f}, scheduling (daemon and runs) "
          f"{per['scheduling cpu']:.2f}; step time {figures['step']:.1f} s, broker wait "
          f"{figures['broker wait']:.1f} s, hand-off {figures['hand-off']:.1f} s (run start to "
          f"submission {figures['run to submission']:.1f}, worker to step start "
          f"{figures['worker to step']:.1f}, step end to run end "
          f"{figures['step to run end']:.1f})", flush=True)


def main() -> None:
    tag = uuid.uuid4().hex[:8]
    source_db, warehouse_db = f"hw_scale_src_{tag}", f"hw_scale_wh_{tag}"
    estate = f'''
[connectors.src]
url = "postgresql+psycopg://postgres@127.0.0.1:5432/{source_db}"

[[connectors.src.streams]]
name = "items"
table = "items"
partition = "key_range"
partition_key = "id"
partitions = {PARTITIONS}
'''
    try:
        started = time.perf_counter()
        build_source(source_db)
        drop_databases(warehouse_db)
        engine = admin()
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{warehouse_db}"'))
        engine.dispose()
        print(f"built {ROWS:,} rows in {source_db} in {time.perf_counter() - started:.0f} s",
              flush=True)
        with tempfile.TemporaryDirectory(prefix="hw-bench-scale-") as folder, Deployment(
                Path(folder), estate, tag=tag,
                warehouse=f"postgresql://postgres@127.0.0.1:5432/{warehouse_db}") as deployment:
            deployment.start_daemon()
            figures = {}
            for fanout in (True, False):
                for workers in (1, 2):
                    label = (f"{'fan-out run' if fanout else 'backfill'}, {workers} "
                             f"worker{'s' if workers > 1 else ' '}")
                    figures[fanout, workers] = backfill(deployment, workers, source_db,
                                                        warehouse_db, fanout)
                    report(label, figures[fanout, workers])
                    empty_warehouse(warehouse_db)
    finally:
        drop_databases(source_db, warehouse_db)
    speedup = figures[True, 1]["seconds"] / figures[True, 2]["seconds"]
    share = figures[True, 2]["hand-off"] / figures[True, 2]["step"]
    runs_speedup = figures[False, 1]["seconds"] / figures[False, 2]["seconds"]
    runs_share = figures[False, 2]["hand-off"] / figures[False, 2]["step"]
    print(f"backfill of a run per partition: speedup {runs_speedup:.2f}, overhead share "
          f"{runs_share:.3f}; the fan-out run takes {figures[True, 2]['seconds']:.1f} s "
          f"where the backfill takes {figures[False, 2]['seconds']:.1f} s (2 workers)")
    print(f"target speedup >= {MIN_SPEEDUP}: {speedup:.2f} -> {verdict(speedup >= MIN_SPEEDUP)}; "
          f"target overhead_share <= {MAX_OVERHEAD_SHARE}: {share:.3f} -> "
          f"{verdict(share <= MAX_OVERHEAD_SHARE)}")
    print(f"RESULT scale_out speedup={speedup:.2f} overhead_share={share:.3f} "
          f"backfill_speedup={runs_speedup:.2f} backfill_overhead_share={runs_share:.3f}")


if __name__ == "__main__":
    main()
