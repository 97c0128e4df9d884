"""The Celery deployment profile brought up for real on this machine, for tests and benches.

:class:`Deployment` creates a private PostgreSQL database for the Dagster instance
(``deploy/celery/dagster.yaml``), a private warehouse schema, a headwater configuration
made of ``deploy/celery/headwater.toml`` plus the estate under test, and a private Celery
queue on the local RabbitMQ; it starts Celery workers and the Dagster daemon as process
groups of their own, launches backfills with ``dagster job backfill``, and stops and drops
everything it started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "deploy" / "celery"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def port_open(port: int) -> bool:
    import socket

    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


@dataclass
class Worker:
    """One Celery worker: its node name, process group and log."""

    name: str
    process: subprocess.Popen
    log: Path

    def pids(self) -> set[int]:
        import psutil

        try:
            parent = psutil.Process(self.process.pid)
            return {parent.pid, *(p.pid for p in parent.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()


@dataclass
class Deployment:
    """The profile around one estate: ``estate`` is TOML appended to the profile's
    headwater.toml (its connectors and streams)."""

    root: Path
    estate: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    warehouse: str | None = None  # a warehouse URL of the caller's (default: a schema)
    processes: list[subprocess.Popen] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.instance_db = f"hw_dagster_{self.tag}"
        self.warehouse_schema = f"hw_wh_{self.tag}"
        self.queue = f"headwater_{self.tag}"
        self.home = self.root / "dagster_home"
        self.config = self.root / "headwater.toml"

    # -- set up and tear down ----------------------------------------------------------

    def __enter__(self) -> Deployment:
        if not port_open(5672):
            raise RuntimeError("RabbitMQ is not running on 127.0.0.1:5672 (.ci/run starts it: "
                               "rabbitmq-server -detached)")
        server = sa.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
        with server.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.instance_db}"'))
        server.dispose()
        self.home.mkdir(parents=True)
        shutil.copy(PROFILE / "dagster.yaml", self.home / "dagster.yaml")
        shutil.copy(PROFILE / "workspace.yaml", self.root / "workspace.yaml")
        profile = (PROFILE / "headwater.toml").read_text("utf-8")
        profile = profile.replace('backend = "rpc://"',
                                  f'backend = "rpc://"\nqueue = "{self.queue}"')
        self.config.write_text(profile + "\n" + self.estate, "utf-8")
        # The instance's tables, once, before processes that would race to create them.
        self.instance().dispose()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        with contextlib.suppress(Exception):
            self._delete_queue()
        server = sa.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.instance_db}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.warehouse_schema}" CASCADE'))
        server.dispose()

    @property
    def warehouse_url(self) -> str:
        return self.warehouse or \
            f"postgresql://postgres@127.0.0.1:5432/test?schema={self.warehouse_schema}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DAGSTER_HOME": str(self.home),
                "DAGSTER_POSTGRES_URL": (f"postgresql+psycopg2://postgres@127.0.0.1:5432/"
                                         f"{self.instance_db}"),
                "HEADWATER_CONFIG": str(self.config),
                "HEADWATER_WAREHOUSE_URL": self.warehouse_url,
                "HEADWATER_CELERY_BROKER": BROKER,
                "PYTHONUNBUFFERED": "1"}

    def _start(self, args: list[str], log: Path) -> subprocess.Popen:
        with log.open("ab") as out:
            process = subprocess.Popen(args, cwd=self.root, env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self.processes.append(process)
        return process

    def start_worker(self, name: str, concurrency: int = 1) -> Worker:
        log = self.root / f"worker-{name}.log"
        process = self._start([sys.executable, "-m", "celery", "--app", "dagster_project.worker",
                               "worker", "--concurrency", str(concurrency), "--hostname",
                               f"{name}@%h", "--without-gossip", "--without-mingle",
                               "--loglevel", "INFO"], log)
        worker = Worker(name, process, log)
        self.workers.append(worker)
        deadline = time.monotonic() + 120
        while "ready." not in log.read_text("utf-8", "replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        return worker

    def start_daemon(self) -> subprocess.Popen:
        return self._start([str(Path(sys.executable).with_name("dagster-daemon")), "run",
                            "-w", "workspace.yaml"], self.root / "daemon.log")

    def backfill(self, job: str) -> str:
        """Launch every partition of ``job`` as queued runs; the backfill id."""
        done = subprocess.run(
            [str(Path(sys.executable).with_name("dagster")), "job", "backfill", "-w",
             "workspace.yaml", "-j", job, "--all", "TRUE", "--noprompt"],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise RuntimeError(f"backfill failed: {done.stdout}\n{done.stderr}")
        for line in done.stdout.splitlines():
            if line.startswith("Launched backfill job"):
                return line.split("`")[1]
        raise RuntimeError(f"no backfill id in: {done.stdout}")

    def launch(self, job: str) -> None:
        """Launch one run of ``job`` (queued; the daemon starts it)."""
        done = subprocess.run(
            [str(Path(sys.executable).with_name("dagster")), "job", "launch", "-w",
             "workspace.yaml", "-j", job],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise RuntimeError(f"launch failed: {done.stdout}\n{done.stderr}")

    def kill(self, worker: Worker) -> None:
        """SIGKILL a worker's whole process group, as a machine that dies would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=30)

    def stop(self) -> None:
        """End every process group started, politely first."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self.processes.clear()

    def _delete_queue(self) -> None:
        from kombu import Connection

        with Connection(BROKER) as conn:
            conn.default_channel.queue_delete(self.queue)

    # -- looking in --------------------------------------------------------------------

    def instance(self) -> Any:
        from dagster import DagsterInstance

        os.environ["DAGSTER_POSTGRES_URL"] = self.env["DAGSTER_POSTGRES_URL"]
        return DagsterInstance.from_config(str(self.home))

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text('utf-8', 'replace')[-4000:]}"
                         for p in sorted(self.root.glob("*.log")))
